"""Kenward-Roger adjusted covariance and denominator df (as pbkrtest, used by lmerTest).

Kenward & Roger (1997), Biometrics 53(3): with the marginal covariance written
linearly in its parameters, ``V = sum_r gamma_r G_r`` (every element of each
random-effect covariance matrix, then the residual variance), the small-sample
bias of ``Phi = (X'V^-1 X)^-1`` is corrected with ``P_r = -X'V^-1 G_r V^-1 X``,
``Q_rs = X'V^-1 G_r V^-1 G_s V^-1 X`` and twice the expected REML information
``I_rs = tr(V^-1 G_r V^-1 G_s) - 2 tr(Phi Q_rs) + tr(Phi P_r Phi P_s)``
(``W = 2 I^-1`` estimates the covariance of the gammas); the df of a contrast
come from matching the moments of the scaled Wald statistic to an F.
With ``G_r = Z E_r Z'`` (``E_r`` selecting covariance element r in every level) and
Woodbury's identity for ``V^-1``, every trace and product reduces to ``q x q``
algebra in the number of random effects: memory ``O(q^2 + n p)``, never ``n x n``;
above ``KR_MAX_Q`` random effects it refuses.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy import stats

from ...errors import EstimationError
from .pls import SparsePLS

__all__ = ["kenward_roger", "lb_ddf", "kr_statistics", "contest_kenward_roger", "KR_MAX_Q"]


#: Largest number of random effects ``q`` for which Kenward-Roger is computed: the
#: algebra below holds a few dense ``q x q`` matrices (about 10 of 8 q^2 bytes).
KR_MAX_Q = 5000


def _selectors(re) -> list[sp.csr_matrix]:
    """Sparse ``q x q`` selectors ``E_r`` with ``G_r = Z E_r Z'``, one per covariance element.

    In the order of theta's lower triangles (column-major per term), which is the
    order of the ``gamma_r``.
    """
    q, off, out = re.q, 0, []
    for t in re.terms:
        base = off + np.arange(t.nl) * t.k
        for j in range(t.k):
            for i in range(j, t.k):
                r, c = base + i, base + j
                if i != j:
                    r, c = np.concatenate([r, c]), np.concatenate([c, r])
                out.append(sp.csr_matrix((np.ones(r.size), (r, c)), shape=(q, q)))
        off += t.k * t.nl
    return out


def _gammas(re, theta: np.ndarray, sigma: float) -> np.ndarray:
    """Coefficients ``gamma_r`` of ``V = sum_r gamma_r G_r`` (residual variance last)."""
    gam = []
    for t, T in zip(re.terms, re.T_list(theta), strict=True):
        Sig = sigma**2 * T @ T.T
        gam.extend(Sig[i, j] for j in range(t.k) for i in range(j, t.k))
    return np.array([*gam, sigma**2])


def _woodbury(pls, theta: np.ndarray, sigma: float) -> dict:
    """``V^-1`` products through ``q x q`` algebra (no ``n x n`` matrix).

    With ``U = Z Lambda`` and ``C = U'U + I``, ``V^-1 = (I - U C^-1 U') / sigma^2``;
    so ``M = Z'V^-1 Z``, ``M2 = Z'V^-2 Z`` and ``tr(V^-2)`` follow from ``Z'Z``,
    ``N = Z'Z Lambda`` and ``C^-1``.
    """
    sparse = pls._sparse if pls._sparse is not None else SparsePLS(pls)
    s2 = sigma**2
    Lam = sparse.Lambda(theta)
    Z = sparse.Z
    ZtZ = sparse.ZtZ.toarray()
    N = np.asarray((Lam.T @ ZtZ.T).T)                           # Z'Z Lambda
    C = np.asarray(Lam.T @ N)
    C[np.diag_indices_from(C)] += 1.0
    Ci = sla.cho_solve(sla.cho_factor(C, lower=True), np.eye(C.shape[0]))
    NCi = N @ Ci
    NCiN = NCi @ N.T

    def vinv(Y):
        return (Y - Z @ (Lam @ (Ci @ (Lam.T @ (Z.T @ Y))))) / s2

    TT = vinv(pls.X)
    return dict(
        M=(ZtZ - NCiN) / s2,
        M2=(ZtZ - NCiN - NCi @ NCi.T) / s2**2,
        trV2=(pls.n - C.shape[0] + np.sum(Ci * Ci)) / s2**2,
        F=np.asarray(Z.T @ TT), F2=np.asarray(Z.T @ vinv(TT)),
        XV2X=TT.T @ TT, XV3X=TT.T @ vinv(TT))


def _moments(pls, theta: np.ndarray, sigma: float):
    """P_r, Q_rs and tr(V^-1 G_r V^-1 G_s) for the random parameters, then the residual."""
    w = _woodbury(pls, theta, sigma)
    E = _selectors(pls.re)
    F, F2, M = w["F"], w["F2"], w["M"]
    EF = [Er @ F for Er in E]                                  # E_r Z'V^-1 X
    ME = [np.asarray((Er.T @ M.T).T) for Er in E]              # M E_r
    m = len(E) + 1
    P = [-(F.T @ ef) for ef in EF] + [-w["XV2X"]]
    P = [(a + a.T) / 2 for a in P]
    Q, K = {}, np.empty((m, m))
    for r in range(m - 1):
        for s in range(r, m - 1):
            Q[r, s] = F.T @ (E[r] @ (M @ EF[s]))
            K[r, s] = K[s, r] = np.sum(ME[r].T * ME[s])
        Q[r, m - 1] = EF[r].T @ F2
        K[r, m - 1] = K[m - 1, r] = float(np.sum(E[r].multiply(w["M2"])))
    Q[m - 1, m - 1] = w["XV3X"]
    K[m - 1, m - 1] = w["trV2"]
    return P, Q, K


def kenward_roger(pls, theta: np.ndarray, sigma: float, Phi: np.ndarray):
    """Compute the adjusted covariance ``PhiA``, the KR df of each fixed effect, P, W.

    Raises
    ------
    EstimationError
        Above ``KR_MAX_Q`` random effects (the dense ``q x q`` algebra).
    """
    if pls.re.q > KR_MAX_Q:
        raise EstimationError(
            f"lmer: Kenward-Roger needs dense q x q matrices in the number of random "
            f"effects q; q = {pls.re.q} exceeds {KR_MAX_Q}. Use ddf='Satterthwaite'.")
    p = pls.X.shape[1]
    P, Q, K = _moments(pls, theta, sigma)
    m = len(P)
    IE = np.empty((m, m))
    for r in range(m):
        PhiP = Phi @ P[r]
        for s in range(r, m):
            IE[r, s] = IE[s, r] = K[r, s] - 2 * np.sum(Phi * Q[r, s]) + \
                np.sum(PhiP * (P[s] @ Phi))
    cond = np.min(np.abs(np.linalg.eigvalsh(IE)))
    W = 2 * (np.linalg.inv(IE) if cond > 1e-10 else np.linalg.pinv(IE))
    U = np.zeros((p, p))
    for r in range(m - 1):
        for s in range(r + 1, m):
            U += W[r, s] * (Q[r, s] - P[r] @ Phi @ P[s])
    U = U + U.T
    for r in range(m):
        U += W[r, r] * (Q[r, r] - P[r] @ Phi @ P[r])
    PhiA = Phi + 2 * Phi @ U @ Phi
    df = np.array([lb_ddf(np.eye(p)[j:j + 1], Phi, P, W) for j in range(p)])
    return PhiA, df, P, W


def kr_statistics(L: np.ndarray, V0: np.ndarray, P, W) -> tuple[float, float]:
    """Kenward and Roger's ``A1`` and ``A2`` for the contrast rows ``L`` (full row rank)."""
    Theta = L.T @ np.linalg.solve(L @ V0 @ L.T, L)
    TV = Theta @ V0
    u = [TV @ Pi @ V0 for Pi in P]
    m = len(P)
    A1 = A2 = 0.0
    for i in range(m):
        for j in range(i, m):
            e = 1.0 if i == j else 2.0
            A1 += e * W[i, j] * np.trace(u[i]) * np.trace(u[j])
            A2 += e * W[i, j] * np.sum(u[i] * u[j].T)
    return A1, A2


def _kr_moments(q: int, A1: float, A2: float) -> tuple[float, float]:
    """KR denominator df and F scaling of a q-df test from ``A1``, ``A2`` (pbkrtest)."""
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0 = 1 + c1 * B
    V1 = 1 - c2 * B
    V2 = 1 - c3 * B
    if abs(V0) < 1e-10:
        V0 = 0.0
    x = 1 - A2 / q
    # pbkrtest takes 0/0 as 1 here
    ratio = 1.0 if abs(x) < 1e-14 and abs(V1) < 1e-14 else x / V1
    rho = ratio**2 * V0 / V2 / q
    df2 = 4 + (q + 2) / (q * rho - 1)
    scale = 1.0 if abs(df2 - 2) < 1e-2 else df2 * x / (df2 - 2)
    return df2, scale


def lb_ddf(L: np.ndarray, V0: np.ndarray, P, W) -> float:
    """KR denominator df of the contrast rows ``L`` (pbkrtest's Lb_ddf)."""
    A1, A2 = kr_statistics(L, V0, P, W)
    return _kr_moments(L.shape[0], A1, A2)[0]


def contest_kenward_roger(L: np.ndarray, beta: np.ndarray, PhiA: np.ndarray, V0: np.ndarray,
                          P, W) -> dict:
    """Kenward and Roger's F test of ``L beta = 0`` (pbkrtest's ``KRmodcomp``, as lmerTest).

    ``L`` is first reduced to a basis of its row space (the test depends on that space
    only). The Wald statistic uses the adjusted covariance ``PhiA``; ``F`` is it over
    ``q``, times Kenward and Roger's scaling.

    Returns
    -------
    dict with ``F``, ``NumDF``, ``DenDF``, ``p_value`` and ``F_unscaled`` (before scaling).
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    _, sv, vt = np.linalg.svd(L, full_matrices=False)
    q = int(np.sum(sv > max(L.shape) * np.finfo(float).eps * sv[0]))
    L = vt[:q]
    Lb = L @ beta
    F_u = float(Lb @ np.linalg.solve(L @ PhiA @ L.T, Lb)) / q
    den, scale = _kr_moments(q, *kr_statistics(L, V0, P, W))
    F = scale * F_u
    return dict(F=F, NumDF=q, DenDF=float(den), p_value=float(stats.f.sf(F, q, den)),
                F_unscaled=F_u)
