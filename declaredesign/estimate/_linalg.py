"""Single-dataset least squares and sandwich variances, step by step as estimatr does.

This is the reference ("direct") implementation: clear, one dataset at a time, with
the CR2 adjustment computed from the ``n_g x n_g`` matrices of each cluster exactly as
estimatr's C++ code does. The batched kernels in :mod:`._kernels` compute the same
quantities from ``k x k`` sufficient statistics and are tested against this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

# estimatr drops CR2 eigenvalues of (I - H_gg) at or below this value (pseudo-inverse).
CR2_EIG_TOL = 1e-12
# 1 - h at or below this counts as leverage one (a perfectly fitted row)
_LEVERAGE_ONE = 1e-10


def pivoted_rank(X: np.ndarray) -> np.ndarray:
    """Indices of the columns kept by a column-pivoting QR, in their original order.

    Mirrors Eigen's ``ColPivHouseholderQR`` used by estimatr: pivot on the largest
    remaining column norm and call a pivot zero when ``|R_ii| <= eps * min(n, k) *
    |R_11|``. The columns pivoted last are the ones dropped.
    """
    n, k = X.shape
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    _, r, piv = sla.qr(X, mode="economic", pivoting=True)
    d = np.abs(np.diag(r))
    thresh = np.finfo(float).eps * min(n, k)
    if d.size == 0 or d[0] == 0:
        return np.zeros(0, dtype=np.int64)
    rank = int(np.sum(d > thresh * d[0]))
    return np.sort(piv[:rank]).astype(np.int64)


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
        scale = (J * (n - 1)) / ((J - 1) * df_res) if se_type == "stata" else 1.0
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
