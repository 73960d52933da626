"""Kenward-Roger adjusted covariance and denominator df (as pbkrtest, used by lmerTest).

Kenward & Roger (1997), Biometrics 53(3): with the marginal covariance written
linearly in its parameters, ``V = sum_r gamma_r G_r`` (every element of each
random-effect covariance matrix, then the residual variance), the small-sample
bias of ``Phi = (X'V^-1 X)^-1`` is corrected with ``P_r = -X'V^-1 G_r V^-1 X``,
``Q_rs = X'V^-1 G_r V^-1 G_s V^-1 X`` and twice the expected REML information
``I_rs = tr(V^-1 G_r V^-1 G_s) - 2 tr(Phi Q_rs) + tr(Phi P_r Phi P_s)``
(``W = 2 I^-1`` estimates the covariance of the gammas); the df of a contrast
come from matching the moments of the scaled Wald statistic to an F.
Dense ``n x n`` algebra: meant for moderate ``n`` (a few thousand rows).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy import stats

from ...errors import EstimationError

__all__ = ["kenward_roger", "lb_ddf", "contest_kenward_roger"]


def _G_list(pls, theta: np.ndarray, sigma: float):
    """Build the G_r matrices (sparse) and their coefficients gamma_r."""
    n = pls.n
    Gs, gam = [], []
    for t, T in zip(pls.re.terms, pls.re.T_list(theta), strict=True):
        Sig = sigma**2 * T @ T.T
        # Z_c: n x nl indicator of the level times the term's c-th column.
        Zc = [sp.csr_matrix((t.Xi[:, c], (np.arange(n), t.codes)), shape=(n, t.nl))
              for c in range(t.k)]
        for j in range(t.k):
            for i in range(j, t.k):
                if i == j:
                    G = Zc[i] @ Zc[i].T
                else:
                    G = Zc[i] @ Zc[j].T
                    G = G + G.T
                Gs.append(G.tocsr())
                gam.append(Sig[i, j])
    Gs.append(sp.identity(n, format="csr"))
    gam.append(sigma**2)
    return Gs, np.array(gam)


def kenward_roger(pls, theta: np.ndarray, sigma: float, Phi: np.ndarray):
    """Compute the adjusted covariance ``PhiA``, the KR df of each fixed effect, P, W."""
    X = pls.X
    p = X.shape[1]
    Gs, gam = _G_list(pls, theta, sigma)
    V = sum(g * G for g, G in zip(gam, Gs, strict=True)).toarray()
    c = sla.cho_factor(V, lower=True)
    Vinv = sla.cho_solve(c, np.eye(V.shape[0]))
    TT = Vinv @ X
    HH = [np.asarray(G @ Vinv) for G in Gs]
    OO = [H @ X for H in HH]
    m = len(Gs)
    P = [-(O.T @ TT) for O in OO]
    P = [(a + a.T) / 2 for a in P]
    VO = [Vinv @ O for O in OO]
    Q = {(r, s): OO[r].T @ VO[s] for r in range(m) for s in range(r, m)}
    K = np.empty((m, m))
    for r in range(m):
        for s in range(r, m):
            K[r, s] = K[s, r] = np.sum(HH[r].T * HH[s])
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


def lb_ddf(L: np.ndarray, V0: np.ndarray, P, W) -> float:
    """KR denominator df of the contrast rows ``L`` (pbkrtest's Lb_ddf)."""
    q = L.shape[0]
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
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0_ = 1 + c1 * B
    V1 = 1 - c2 * B
    V2 = 1 - c3 * B
    if abs(V0_) < 1e-10:
        V0_ = 0.0
    ratio = (1 - A2 / q) / V1 if V1 != 0 else 0.0
    rho = ratio**2 * V0_ / V2 / q
    return 4 + (q + 2) / (q * rho - 1)


def contest_kenward_roger(L: np.ndarray, beta: np.ndarray, PhiA: np.ndarray, V0: np.ndarray,
                          P, W) -> dict:
    """Single-df F test of ``L beta = 0`` with Kenward-Roger's adjusted covariance and df.

    Returns
    -------
    dict with ``F``, ``NumDF``, ``DenDF``, ``p_value``.
    """
    q = np.linalg.matrix_rank(L)
    if q > 1:
        # pbkrtest scales F for q > 1; only single-df tests are provided.
        raise EstimationError("lmer: multi-df Kenward-Roger F tests are not "
                              "implemented; use ddf='Satterthwaite'.")
    Lb = L @ beta
    F = float(Lb @ np.linalg.solve(L @ PhiA @ L.T, Lb))
    den = lb_ddf(L, V0, P, W)
    return dict(F=F, NumDF=1, DenDF=den, p_value=float(stats.f.sf(F, 1, den)))
