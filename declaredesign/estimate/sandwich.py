"""Sandwich variances: HC0-HC3, classical, CR0, CR2 and stata, with Bell-McCaffrey df.

Two implementations of the same quantities:

* :func:`sandwich`, the reference ("direct") one: one dataset at a time, with the CR2
  adjustment computed from the ``n_g x n_g`` matrices of each cluster exactly as
  estimatr's C++ code does;
* :func:`cr2_stacked` and :func:`cr2_weighted_stacked`, for every simulation of a batch
  at once from ``k x k`` per-cluster sufficient statistics (used by
  :func:`~declaredesign.estimate.stacked_ols.lm_core`), tested against the first.

CR2 without the ``n_g x n_g`` matrices
--------------------------------------
With ``M = (X'X)^{-1} = L L'`` (Cholesky), ``A_g = X_g'X_g`` and ``Z_g = X_g L``, the
cluster's hat block is ``H_gg = Z_g Z_g'``, whose non-zero eigenvalues are those of
``B_g = L' A_g L = V diag(l) V'``. For any function ``f`` with ``f(0) = 1``,
``f(I - Z Z') = I + Z V diag((f(1 - l) - 1) / l) V' Z'``. estimatr uses
``f(x) = x^{-1/2}`` (0 when ``x <= 1e-12``, a pseudo-inverse), so with
``K_g = L V diag(d) V' L'``:

* half-meat ``X_g'(I - H_gg)^{-1/2} e_g = X_g'e_g + A_g K_g X_g'e_g``, with
  ``d = (f(1-l) - 1)/l = 1 / ((1 + sqrt(1-l)) sqrt(1-l))`` (stable, 1/2 at ``l = 0``);
* Bell-McCaffrey df for coefficient ``c``: ``G = diag(w_g'w_g) - U'MU`` with
  ``w_g = (I-H_gg)^{-1/2} X_g M c`` and ``u_g = X_g'w_g = T_g M c``,
  ``T_g = A_g + A_g K_g A_g``; ``w_g'w_g = c'M Q_g M c``, ``Q_g = A_g + A_g K2_g A_g``
  where ``K2`` uses ``d2 = (f(1-l)^2 - 1)/l = 1/(1-l)``. Then
  ``tr G = sum_g (w_g'w_g - u_g'Mu_g)`` and
  ``tr G^2 = sum_g [(w_g'w_g)^2 - 2 w_g'w_g u_g'Mu_g] + tr(M C M C)``, ``C = sum_g u_g u_g'``,
  and ``df = (tr G)^2 / tr G^2``.

Weighted CR2 uses the same idea with a ``2k x 2k`` basis (see :func:`cr2_weighted_stacked`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..groups import GroupIndex
from .grouped_sums import column_sums, outer_sums, stack_sums

__all__ = ["CR2_EIG_TOL", "LEVERAGE_ONE", "VarianceResult", "cr2_factors", "cr2_stacked",
           "cr2_weighted_stacked", "sandwich"]

# estimatr drops CR2 eigenvalues of (I - H_gg) at or below this value (pseudo-inverse).
CR2_EIG_TOL = 1e-12
# 1 - h at or below this counts as leverage one (a perfectly fitted row)
LEVERAGE_ONE = 1e-10
_LEVERAGE_ONE = LEVERAGE_ONE

@dataclass
class VarianceResult:
    """Variance pieces for the kept (full-rank) columns."""

    vcov: np.ndarray
    df: np.ndarray
    res_var: float
    #: rows whose cross-product is the meat (signed, so two outcomes' halves give the
    #: cross-outcome meat) and the factor applied after the sandwich (HC1, stata)
    half: np.ndarray | None = None
    scale: float = 1.0


def _sqrt_inv_psd(A: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(A)
    inv = np.where(vals > CR2_EIG_TOL, 1.0 / np.sqrt(np.where(vals > CR2_EIG_TOL, vals, 1.0)),
                   0.0)
    return (vecs * inv) @ vecs.T


def sandwich(X: np.ndarray, e: np.ndarray, M: np.ndarray, se_type: str, *,
             cluster: np.ndarray | None = None, X_unweighted: np.ndarray | None = None,
             e_unweighted: np.ndarray | None = None, sqrt_w: np.ndarray | None = None,
             weight_mean: float = 1.0, X_meat: np.ndarray | None = None,
             M_meat: np.ndarray | None = None, extra_rank: int = 0) -> VarianceResult:
    """Variance-covariance matrix and degrees of freedom of the OLS coefficients.

    ``X`` and ``e`` are the (square-root-)weighted design and residuals; ``M`` is
    ``(X'X)^{-1}``; ``cluster`` holds integer cluster codes. For weighted CR2 the
    unweighted design and residuals and the weights are needed as estimatr uses them.

    With fixed effects, ``X`` is the demeaned design, ``extra_rank`` the rank the fixed
    effects absorb, and ``X_meat``/``M_meat`` the design with the fixed-effect dummies
    appended (collinear columns removed) and its inverse cross-product: HC2, HC3 and CR2
    take their leverages from it, as estimatr does.
    """
    n, r = X.shape
    df_res = n - r - extra_rank
    Xm = X if X_meat is None else X_meat
    Mm = M if M_meat is None else M_meat
    res_var = float(np.sum(e ** 2) / df_res) if df_res > 0 else np.nan
    clustered = se_type in ("CR0", "CR2", "stata")
    if se_type == "classical":
        vcov = res_var * M
        return VarianceResult(vcov, np.full(r, float(df_res)), res_var)
    if not clustered:
        omega = e ** 2
        if se_type in ("HC2", "HC3"):
            h = np.einsum("ij,jk,ik->i", Xm, Mm, Xm)
            with np.errstate(divide="ignore", invalid="ignore"):
                omega = omega / (1.0 - h) if se_type == "HC2" else omega / (1.0 - h) ** 2
            # leverage-one rows have e = 0 and 1 - h = 0 up to rounding; estimatr's 0/0
            # is NaN or a rounding-sized number, we use its own fallback value 0
            omega = np.where(np.isfinite(omega) & (1.0 - h > _LEVERAGE_ONE), omega, 0.0)
        with np.errstate(invalid="ignore"):
            half = X * (np.sign(e) * np.sqrt(omega))[:, None]
        vcov = M @ (half.T @ half) @ M
        scale = n / df_res if se_type == "HC1" else 1.0
        return VarianceResult(vcov * scale, np.full(r, float(df_res)), res_var, half, scale)

    order = np.argsort(cluster, kind="stable")
    cl = cluster[order]
    starts = np.flatnonzero(np.r_[True, cl[1:] != cl[:-1]])
    ends = np.r_[starts[1:], n]
    J = len(starts)
    Xs, es = X[order], e[order]
    if se_type != "CR2":
        half = np.add.reduceat(Xs * es[:, None], starts, axis=0)
        vcov = M @ (half.T @ half) @ M
        scale = 1.0
        if se_type == "stata":
            # one cluster or no residual df: Inf/NaN (not identified, see inference)
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = float(np.float64(J * (n - 1)) / np.float64((J - 1) * df_res))
        return VarianceResult(vcov * scale, np.full(r, float(J - 1)), res_var, half, scale)

    # CR2 (Bell-McCaffrey), following estimatr's clubSandwich-derived computation.
    weighted = sqrt_w is not None
    if weighted:
        # estimatr multiplies the weighted design by the weights once more here.
        Xw = (sqrt_w[:, None] * X)[order]
        Xo = X_unweighted[order]
        eo = e_unweighted[order]
    else:
        Xw = Xo = Xm[order]
        eo = es
    rf = Xw.shape[1]
    L_M = np.linalg.cholesky(Mm)
    MUWTWUM = Mm @ (Xw.T @ Xw) @ Mm
    L_O = np.linalg.cholesky(MUWTWUM)
    half = np.empty((J, r))
    H1 = np.empty((J, rf, rf))
    H2 = np.empty((J, rf, rf))
    H3 = np.empty((J, rf, rf))
    Pd = np.empty((J, rf))
    for g, (a, b) in enumerate(zip(starts, ends, strict=True)):
        Xo_g, Xw_g = Xo[a:b], Xw[a:b]
        H = Xo_g @ Mm @ Xw_g.T
        A = np.eye(b - a) - H - H.T + Xo_g @ MUWTWUM @ Xo_g.T
        AX = _sqrt_inv_psd(A) @ Xw_g
        half[g] = eo[a:b] @ AX[:, :r]
        ME = (Mm / weight_mean) @ AX.T
        Pd[g] = np.sum(ME ** 2, axis=1)
        MEU = ME @ Xo_g
        H1[g] = MEU @ L_M
        H2[g] = ME @ Xw_g @ L_M
        H3[g] = MEU @ L_O
    vcov = M @ (half.T @ half) @ M
    df = np.empty(r)
    for j in range(r):
        h1, h2, h3 = H1[:, j, :].T, H2[:, j, :].T, H3[:, j, :].T   # r x J
        uf = h1.T @ h2
        P = h3.T @ h3 - uf - uf.T + np.diag(Pd[:, j])
        with np.errstate(divide="ignore", invalid="ignore"):   # perfect fits: 0 / 0
            df[j] = np.trace(P) ** 2 / np.sum(P ** 2)
    return VarianceResult(vcov, df, res_var, half)


def cr2_stacked(M: np.ndarray, A: np.ndarray, XtE: np.ndarray, cl_sim: np.ndarray, S: int
         ) -> tuple[np.ndarray, np.ndarray]:
    """CR2 vcov and Bell-McCaffrey df from per-cluster ``A_g`` and ``X_g'e_g`` (module doc)."""
    if M.shape[1] == 2:
        return _cr2_k2(M, A, XtE, cl_sim, S)
    return _cr2_general(M, A, XtE, cl_sim, S)


def _cr2_general(M: np.ndarray, A: np.ndarray, XtE: np.ndarray, cl_sim: np.ndarray, S: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cr2_stacked` for any number of coefficients, through ``B_g``'s eigenvectors."""
    L = np.linalg.cholesky(M)
    Mg = M[cl_sim]
    AK1, Q3 = cr2_factors(L[cl_sim], A)
    hm = XtE + np.einsum("gab,gb->ga", AK1, XtE)
    V = M @ stack_sums(cl_sim, S, hm[:, :, None] * hm[:, None, :]) @ M
    U = (A + AK1 @ A) @ Mg                           # column j: u_g for coefficient j
    Gdiag = np.einsum("gaj,gab,gbj->gj", Mg, Q3, Mg)
    return V, _bm_df(Gdiag, U, Mg, M, cl_sim, S)


def cr2_factors(L: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CR2's two per-cluster matrices from the eigenvectors of ``B_g = L_g'A_gL_g``.

    With ``M = LL'`` the bread and ``A_g`` the cluster's cross-products, returns
    ``A_g K1_g`` with ``K1_g = L phi(B_g) L'``, ``phi(l) = 1 / ((1 + s) s)``,
    ``s = sqrt(1 - l)`` (so ``I + A_g K1_g`` applies ``(I - H_gg)^{-1/2}``), and
    ``Q3_g = A_g + A_g K3_g A_g`` with ``K3_g = L psi(B_g) L'``, ``psi(l) = -1/l`` on the
    degenerate directions (``1 - l <= 1e-12``, where ``phi`` is ``-1/l`` too) and 0 elsewhere:
    ``G_gg = w_g'(I - H_gg) w_g`` is then ``m'Q3 m``, since ``(I-H) f(I-H)^2`` is the
    projector off the degenerate directions, with no ``w'w - u'Mu`` cancellation.
    """
    B = np.swapaxes(L, 1, 2) @ A @ L
    lam, vec = np.linalg.eigh(B)
    one_m = 1.0 - lam
    nondeg = one_m > CR2_EIG_TOL
    s_ = np.sqrt(np.where(nondeg, one_m, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = np.where(nondeg, 1.0 / ((1.0 + s_) * s_), -1.0 / lam)
        d3 = np.where(nondeg, 0.0, -1.0 / lam)
    LV = L @ vec
    LVt = np.swapaxes(LV, 1, 2)
    AK1 = A @ ((LV * d1[:, None, :]) @ LVt)
    Q3 = A + A @ ((LV * d3[:, None, :]) @ LVt) @ A
    return AK1, Q3


def _mm2(X, Y):
    """Product of two stacks of 2 x 2 matrices held as ``(x00, x01, x10, x11)`` arrays."""
    a, b, c, d = X
    e, f, g, h = Y
    return (a * e + b * g, a * f + b * h, c * e + d * g, c * f + d * h)


def _cr2_k2(M: np.ndarray, A: np.ndarray, XtE: np.ndarray, cl_sim: np.ndarray, S: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cr2_stacked` for two coefficients, elementwise (no eigenvectors, no Cholesky).

    ``K_g = L phi(B_g) L'`` with ``B_g = L'A_gL`` only needs ``phi`` on the two
    eigenvalues ``l1 >= l2`` of ``B_g`` (those of ``M A_g``): ``phi(B) = alpha I + beta B``
    with ``beta`` the divided difference of ``phi`` over ``(l2, l1)`` and
    ``alpha = phi(l2) - beta l2``, so ``K_g = alpha M + beta M A_g M``. For
    ``phi(l) = 1 / ((1 + s) s)``, ``s = sqrt(1 - l)``, the divided difference is
    ``(1 + s1 + s2) / ((s1 + s2) (1 + s1) s1 (1 + s2) s2)``, free of cancellation even for
    equal eigenvalues. Degenerate directions (``1 - l <= 1e-12``) use ``-1/l`` as in
    :func:`cr2_stacked`.
    """
    m00, m01, m11 = M[:, 0, 0][cl_sim], M[:, 0, 1][cl_sim], M[:, 1, 1][cl_sim]
    Mg = (m00, m01, m01, m11)
    a00, a01, a11 = A[:, 0, 0], A[:, 0, 1], A[:, 1, 1]
    Ag = (a00, a01, a01, a11)
    P = _mm2(Ag, Mg)                                   # A M; M A = P'
    t = P[0] + P[3]
    det = (m00 * m11 - m01 * m01) * (a00 * a11 - a01 * a01)
    disc = np.sqrt(np.maximum(0.25 * t * t - det, 0.0))
    l1 = 0.5 * t + disc
    with np.errstate(divide="ignore", invalid="ignore"):
        l2 = np.where(l1 > 0, det / l1, 0.0)
        l2 = np.minimum(np.maximum(l2, 0.0), l1)
        nd1 = 1.0 - l1 > CR2_EIG_TOL
        nd2 = 1.0 - l2 > CR2_EIG_TOL
        s1 = np.sqrt(np.where(nd1, 1.0 - l1, 1.0))
        s2 = np.sqrt(np.where(nd2, 1.0 - l2, 1.0))
        phi2 = 1.0 / ((1.0 + s2) * s2)
        both = np.where(nd1, 0.0, 1.0 / det)           # both degenerate: -B^{-1}
        beta1 = np.where(nd1, (1.0 + s1 + s2) / ((s1 + s2) * (1.0 + s1) * s1 * (1.0 + s2) * s2),
                         np.where(nd2, (-1.0 / l1 - phi2) / (l1 - l2), both))
        alpha1 = np.where(nd2, phi2 - beta1 * l2, -t * both)
        beta3 = np.where(nd1, 0.0, np.where(nd2, (-1.0 / l1) / (l1 - l2), both))
        alpha3 = np.where(nd2, -beta3 * l2, -t * both)
    PP = _mm2(P, P)
    AK1 = tuple(alpha1 * p + beta1 * q for p, q in zip(P, PP))     # A K1
    e0, e1 = XtE[:, 0], XtE[:, 1]
    h0 = e0 + AK1[0] * e0 + AK1[1] * e1
    h1 = e1 + AK1[2] * e0 + AK1[3] * e1
    C = np.empty((len(cl_sim), 2, 2))
    C[:, 0, 0] = h0 * h0
    C[:, 0, 1] = C[:, 1, 0] = h0 * h1
    C[:, 1, 1] = h1 * h1
    V = M @ stack_sums(cl_sim, S, C) @ M
    U4 = tuple(p + q for p, q in zip(P, _mm2(AK1, P)))             # (A + A K1 A) M
    U = np.stack(U4, axis=1).reshape(-1, 2, 2)
    # diag of M Q3 M = R + alpha3 R P + beta3 R P P, R = M A M
    R = _mm2(Mg, P)
    RP = _mm2(R, P)
    RPP = _mm2(RP, P)
    Gdiag = np.column_stack([R[0] + alpha3 * RP[0] + beta3 * RPP[0],
                             R[3] + alpha3 * RP[3] + beta3 * RPP[3]])
    return V, _bm_df(Gdiag, U, np.stack(Mg, axis=1).reshape(-1, 2, 2), M, cl_sim, S)


def _bm_df(Gdiag, U, Mg, M, cl_sim, S):
    """``(tr G)^2 / tr G^2`` for ``G = diag(...) - U'MU`` (diagonal given, per coefficient).

    The off-diagonal part ``sum_{g != h} (u_g'M u_h)^2`` is summed explicitly on a padded
    (sim, cluster, cluster) array when that is small, which keeps every term positive;
    otherwise it is ``tr(MCMC) - sum_g (u_g'Mu_g)^2`` with ``C = sum_g u_g u_g'``.
    """
    G, k, kj = U.shape
    trG = stack_sums(cl_sim, S, Gdiag)
    sq = stack_sums(cl_sim, S, Gdiag ** 2)
    Jn = np.bincount(cl_sim, minlength=S)
    Jmax = int(Jn.max()) if G else 0
    if k == 2 and S * Jmax * Jmax * kj * k <= 5e7:
        # the same padded sum, elementwise: stacks of 2 x 2 products are slow in numpy
        pos = np.arange(G) - np.searchsorted(cl_sim, np.arange(S))[cl_sim]
        idx = np.arange(Jmax)
        off = np.empty((S, kj))
        for j in range(kj):
            u0 = np.zeros((S, Jmax))
            u1 = np.zeros((S, Jmax))
            u0[cl_sim, pos] = U[:, 0, j]
            u1[cl_sim, pos] = U[:, 1, j]
            mu0 = M[:, 0, 0, None] * u0 + M[:, 0, 1, None] * u1
            mu1 = M[:, 1, 0, None] * u0 + M[:, 1, 1, None] * u1
            Qp = u0[:, :, None] * mu0[:, None, :] + u1[:, :, None] * mu1[:, None, :]
            Qp[:, idx, idx] = 0.0
            off[:, j] = np.einsum("sgh,sgh->s", Qp, Qp)
    elif S * Jmax * Jmax * kj * k <= 5e7:
        pos = np.arange(G) - np.searchsorted(cl_sim, np.arange(S))[cl_sim]
        Up = np.zeros((S, Jmax, k, kj))
        Up[cl_sim, pos] = U
        MU = np.einsum("sab,sgbj->sgaj", M, Up)
        Qp = np.einsum("sgaj,shaj->sjgh", Up, MU)                    # u_g'M u_h
        idx = np.arange(Jmax)
        Qp[:, :, idx, idx] = 0.0
        off = np.einsum("sjgh,sjgh->sj", Qp, Qp)
    else:
        uMu = np.einsum("gaj,gab,gbj->gj", U, Mg, U)
        Cj = stack_sums(cl_sim, S, np.einsum("gaj,gbj->gjab", U, U))    # (S, k, k, k)
        MC = np.einsum("sab,sjbc->sjac", M, Cj)
        off = np.einsum("sjab,sjba->sj", MC, MC) - stack_sums(cl_sim, S, uMu ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return trG ** 2 / (sq + off)


def cr2_weighted_stacked(M: np.ndarray, wm: np.ndarray, raw: np.ndarray, wt: np.ndarray,
                         eo: np.ndarray, clusters: GroupIndex, S: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted CR2 (estimatr's clubSandwich-style form) from per-cluster statistics.

    With ``W`` the normalised weights of a cluster, estimatr's adjustment matrix is
    ``A = I - XMX'W - WXMX' + XNX'`` (``N = M X'W^2X M``) applied as ``A^{+1/2} W X``.
    ``A = I + P K P'`` with ``P = [X, (W - w0) X]`` (``w0`` one weight of the cluster, so
    the second block vanishes exactly when weights are constant within clusters) and
    ``K = [[N - 2 w0 M, -M], [-M, 0]]``; its functions act on the span of ``P`` only,
    which the ``2k x 2k`` Gram matrix ``P'P`` describes.
    """
    k = len(raw)
    cl_codes, cl_sim = clusters.codes, clusters.group_sim
    G = len(cl_sim)
    w0 = np.zeros(G)
    w0[cl_codes] = wt
    dw = wt - w0[cl_codes]
    Sxx = outer_sums(clusters, raw)
    Sxd = outer_sums(clusters, raw, dw)
    Sdd = outer_sums(clusters, raw, dw * dw)
    pe = np.concatenate([column_sums(clusters, raw, eo), column_sums(clusters, raw, dw * eo)], 1)
    W2 = stack_sums(cl_sim, S, Sdd + 2 * w0[:, None, None] * Sxd + (w0 ** 2)[:, None, None] * Sxx)
    N = M @ W2 @ M
    Mg, Ng = M[cl_sim], N[cl_sim]
    Gp = np.block([[Sxx, Sxd], [Sxd, Sdd]])                       # (G, 2k, 2k)
    Kp = np.block([[Ng - 2 * w0[:, None, None] * Mg, -Mg], [-Mg, np.zeros_like(Mg)]])
    s_, U = np.linalg.eigh(Gp)
    keep = s_ > 1e-12 * np.maximum(s_[:, -1:], 1e-300)
    ZtP = np.where(keep, np.sqrt(np.where(keep, s_, 0.0)), 0.0)[:, :, None] * \
        np.swapaxes(U, 1, 2)                                        # Z'P in P coordinates
    inv_s = np.where(keep, 1.0 / np.sqrt(np.where(keep, s_, 1.0)), 0.0)
    Zte = inv_s * np.einsum("gba,gb->ga", U, pe)                     # Z'e
    B = ZtP @ Kp @ np.swapaxes(ZtP, 1, 2)
    lam, V = np.linalg.eigh(0.5 * (B + np.swapaxes(B, 1, 2)))
    one_p = 1.0 + lam
    pos = one_p > CR2_EIG_TOL
    f1 = np.where(pos, 1.0 / np.sqrt(np.where(pos, one_p, 1.0)), 0.0)
    D1, D2 = f1 - 1.0, f1 * f1 - 1.0
    PV = np.swapaxes(ZtP, 1, 2) @ V                                  # P-coords of Z V
    Kd1 = (PV * D1[:, None, :]) @ np.swapaxes(PV, 1, 2)
    Kd2 = (PV * D2[:, None, :]) @ np.swapaxes(PV, 1, 2)
    eye = np.broadcast_to(np.eye(k), (G, k, k))
    Ew = np.concatenate([w0[:, None, None] * eye, eye], axis=1)      # W X = P Ew
    Ex = np.concatenate([eye, np.zeros_like(eye)], axis=1)           # X = P Ex
    # half-meat: (WX)' A^{+1/2} e
    fe_ = pe + np.einsum("gab,gb->ga", PV * D1[:, None, :],
                         np.einsum("gba,gb->ga", V, Zte))
    hm = np.einsum("gai,ga->gi", Ew, fe_)
    V_ = M @ stack_sums(cl_sim, S, hm[:, :, None] * hm[:, None, :]) @ M
    # Bell-McCaffrey pieces for every coefficient j at once (columns of C = M / wm)
    Cg = Mg / wm[cl_sim][:, None, None]
    F1 = Gp + Kd1
    a = np.swapaxes(Ex, 1, 2) @ F1 @ Ew @ Cg                         # (G, k, j)
    b = np.swapaxes(Ew, 1, 2) @ F1 @ Ew @ Cg
    p = np.einsum("gaj,gab,gbj->gj", Cg, np.swapaxes(Ew, 1, 2) @ (Gp + Kd2) @ Ew, Cg)
    q = np.einsum("gaj,gab,gbj->gj", a, Ng, a) - 2 * np.einsum("gaj,gab,gbj->gj", a, Mg, b)
    trP = stack_sums(cl_sim, S, q + p)
    z = np.concatenate([a, b], axis=1)                               # (G, 2k, j)
    Sz = stack_sums(cl_sim, S, np.einsum("gaj,gbj->gjab", z, z))          # (S, j, 2k, 2k)
    K = np.block([[N, -M], [-M, np.zeros_like(M)]])
    KS = np.einsum("sab,sjbc->sjac", K, Sz)
    trP2 = np.einsum("sjab,sjba->sj", KS, KS) + stack_sums(cl_sim, S, 2 * q * p + p * p)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = trP ** 2 / trP2
    return V_, df


# --------------------------------------------------------------------------- helpers
