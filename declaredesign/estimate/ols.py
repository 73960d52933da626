"""Least squares on one dataset, step by step as estimatr does it.

The reference path for every regression estimator (``lm_robust``, ``lm_lin``,
``iv_robust``, the clustered and weighted ``difference_in_means``):

* column-pivoting QR (:func:`pivoted_rank`) decides which collinear columns are dropped,
  as estimatr's Eigen ``ColPivHouseholderQR`` (replayed in Eigen's arithmetic order for
  rank-deficient designs, so exact ties break as in R);
* the coefficients of the kept columns from the QR factors, then the sandwich variance
  (:func:`~declaredesign.estimate.sandwich.sandwich`);
* fixed effects are absorbed by (weighted) demeaning (:func:`demean`), HC2/HC3/CR2 taking
  their leverages from the design with the fixed-effect dummies appended;
* fit statistics (R squared, adjusted, F) as estimatr reports them.

The batched kernels (:mod:`.stacked_ols`) compute the same numbers for many simulations
at once and send the simulations they cannot take safely here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg as sla

from ..errors import EstimationError
from .sandwich import VarianceResult, sandwich

__all__ = ["CoreFit", "demean", "fe_dummies", "fit_arrays", "pivoted_rank", "wald_f"]

_CLUSTER_SE = ("CR0", "CR2", "stata")


def pivoted_rank(X: np.ndarray, *, replay: bool = True) -> np.ndarray:
    """Return the indices of the columns kept by a column-pivoting QR, in their original order.

    The columns are those estimatr keeps: its Eigen ``ColPivHouseholderQR`` pivots on the
    largest remaining column norm and calls a pivot zero when ``|R_ii| <= eps * min(n, k)
    * max |R_jj|``; the columns pivoted last are dropped.

    LAPACK's pivoted QR decides first. Only when one of its pivots comes within a factor
    ``1e-6`` of the first (a rank-deficient design, or nearly so) is Eigen's factorisation
    replayed (:func:`_eigen_pivots`): where two columns are tied in exact arithmetic
    (``x3 = x1 - x2`` leaves ``x1`` and ``x2`` with equal residual norms) the choice is
    made by rounding, so the replay adds in Eigen's order. ``replay=False`` keeps LAPACK's
    choice, for callers that need only the column space (a hat matrix's leverages).
    """
    n, k = X.shape
    if k == 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    _, r, piv = sla.qr(X, mode="economic", pivoting=True)
    d = np.abs(np.diag(r))
    if d.size == 0 or d[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if d.size == k and d[-1] > _REPLAY_MARGIN * d[0]:
        return np.arange(k, dtype=np.int64)
    if not replay:
        rank = int(np.sum(d > np.finfo(float).eps * min(n, k) * d[0]))
        return np.sort(piv[:rank]).astype(np.int64)
    perm, rank = _eigen_pivots(X)
    return np.sort(perm[:rank]).astype(np.int64)


# A LAPACK pivot this far above zero relative to the first is full rank for Eigen too
# (Eigen's threshold is eps * min(n, k), about 1e-13 for the largest usual designs).
_REPLAY_MARGIN = 1e-6


# ----------------------------------------------------------- Eigen's arithmetic order
# estimatr's QR runs Eigen 3.3 compiled for SSE2 (packets of two doubles, no fused
# multiply-add); these helpers add in the same order so ties break as they do in R.
def _ordered_sum(x: np.ndarray) -> np.ndarray:
    """Sum along the first axis left to right (as a scalar loop adds)."""
    if x.shape[0] == 0:
        return np.zeros(x.shape[1:])
    return np.cumsum(x, axis=0)[-1]


def _eigen_sum(x: np.ndarray) -> float:
    """Sum a vector as Eigen's vectorised reduction does: four lanes, then the rest."""
    size = len(x)
    pairs, quads = (size // 2) * 2, (size // 4) * 4
    if pairs == 0:
        return float(_ordered_sum(x))
    if pairs > 2:
        lanes = [_ordered_sum(x[lane:quads:4]) for lane in range(4)]
        r0, r1 = lanes[0] + lanes[2], lanes[1] + lanes[3]
        if pairs > quads:
            r0, r1 = r0 + x[quads], r1 + x[quads + 1]
    else:
        r0, r1 = x[0], x[1]
    res = r0 + r1
    for i in range(pairs, size):
        res = res + x[i]
    return float(res)


def _eigen_norm(x: np.ndarray) -> float:
    return float(np.sqrt(_eigen_sum(x * x)))


def _eigen_row_times(e: np.ndarray, B: np.ndarray, first_aligned: int) -> np.ndarray:
    """``e' B`` as Eigen's matrix-vector kernel computes each entry.

    Each entry adds the products before the first 16-byte aligned element of ``e``, then
    two interleaved lanes over the aligned pairs, then the products left over.
    """
    depth, n_out = B.shape
    P = e[:, None] * B
    if n_out == 1:          # Eigen takes a 1 x 1 product as a dot product (a reduction)
        return np.array([_eigen_sum(P[:, 0])])
    start = min(first_aligned, depth)
    if start == depth:
        return _ordered_sum(P)
    end = start + ((depth - start) & ~1)
    acc = np.zeros(n_out)
    for j in range(start):
        acc = acc + P[j]
    if end > start:
        acc = acc + (_ordered_sum(P[start:end:2]) + _ordered_sum(P[start + 1:end:2]))
    for j in range(end, depth):
        acc = acc + P[j]
    return acc


def _reflect(A: np.ndarray, k: int) -> float:
    """Householder step ``k`` in place (Eigen's ``makeHouseholder`` and its application).

    Returns ``beta``, the new diagonal entry ``R_kk``.
    """
    rows, cols = A.shape
    c0 = A[k, k]
    tail = A[k + 1:, k]
    tail_sq = _eigen_sum(tail * tail) if rows - k > 1 else 0.0
    if tail_sq <= np.finfo(float).tiny:
        tau, beta = 0.0, float(c0)
        A[k + 1:, k] = 0.0
    else:
        beta = float(np.sqrt(c0 * c0 + tail_sq))
        beta = -beta if c0 >= 0 else beta
        A[k + 1:, k] = tail / (c0 - beta)
        tau = (beta - c0) / beta
    A[k, k] = beta
    if k + 1 >= cols or tau == 0:
        return beta
    if rows - k == 1:
        A[k, k + 1:] *= 1.0 - tau
        return beta
    ess = A[k + 1:, k]
    # the column's element k + 1 sits at flat position k * rows + k + 1 of the
    # column-major storage: 16-byte aligned when that position is even
    tmp = _eigen_row_times(ess, A[k + 1:, k + 1:], (k * rows + k + 1) % 2) + A[k, k + 1:]
    A[k, k + 1:] -= tau * tmp
    A[k + 1:, k + 1:] -= np.outer(tau * ess, tmp)
    return beta


def _downdate_norms(A: np.ndarray, k: int, updated: np.ndarray, direct: np.ndarray) -> None:
    """Update the remaining column norms after step ``k`` (LAPACK Working Note 176)."""
    limit = np.sqrt(np.finfo(float).eps)
    for j in range(k + 1, A.shape[1]):
        if updated[j] == 0:
            continue
        t = abs(A[k, j]) / updated[j]
        t = max((1.0 + t) * (1.0 - t), 0.0)
        if t * (updated[j] / direct[j]) ** 2 <= limit:
            # the downdated norm has lost its accuracy: recompute it
            direct[j] = updated[j] = _eigen_norm(A[k + 1:, j])
        else:
            updated[j] *= np.sqrt(t)


def _eigen_pivots(X: np.ndarray) -> tuple[np.ndarray, int]:
    """Replay Eigen's ``ColPivHouseholderQR``: the column order and the rank.

    At each step the column with the largest remaining norm is pivoted (the first of
    equal ones), reflected out of the others and their norms downdated; the rank counts
    the pivots above ``eps * min(n, k) * max |R_jj|`` taken before the remaining norms
    fell to rounding level.
    """
    A = np.array(X, dtype=float, order="F", copy=True)
    rows, cols = A.shape
    size = min(rows, cols)
    eps = np.finfo(float).eps
    direct = np.array([_eigen_norm(A[:, j]) for j in range(cols)])
    updated = direct.copy()
    negligible = (updated.max() * eps) ** 2 / rows
    nonzero, perm, diag = size, np.arange(cols), np.zeros(size)
    for k in range(size):
        j = k + int(np.argmax(updated[k:]))
        if nonzero == size and updated[j] ** 2 < negligible * (rows - k):
            nonzero = k
        for arr in (perm, updated, direct):
            arr[[k, j]] = arr[[j, k]]
        A[:, [k, j]] = A[:, [j, k]]
        diag[k] = _reflect(A, k)
        _downdate_norms(A, k, updated, direct)
    threshold = np.max(np.abs(diag)) * eps * size
    return perm, int(np.sum(np.abs(diag[:nonzero]) > threshold))


@dataclass
class CoreFit:
    """Numbers of one single-dataset fit, for the kept columns and overall."""

    coef: np.ndarray          # length k (NaN for dropped)
    se: np.ndarray            # length k
    df: np.ndarray            # length k
    vcov: np.ndarray          # rank x rank
    kept: np.ndarray
    nobs: int
    df_residual: int
    res_var: float
    r_squared: float
    adj_r_squared: float
    fstatistic: dict[str, float] | None
    nclusters: int | None
    proj: dict[str, Any] = field(default_factory=dict)
    # pieces for the joint vcov of several outcomes
    M: np.ndarray | None = None
    resid: np.ndarray | None = None
    half: np.ndarray | None = None
    scale: float = 1.0


def demean(A: np.ndarray, fe_codes: list[np.ndarray], w: np.ndarray,
           tol: float = 1e-13, max_iter: int = 10_000) -> np.ndarray:
    """Remove (weighted) fixed-effect means from the columns of ``A``.

    One fixed effect needs one pass; several use alternating projections until the
    change is below ``tol`` (tighter than estimatr's 1e-8-scaled criterion, so the result
    is the exact projection estimatr approximates).
    """
    out = np.array(A, dtype=float, copy=True)
    single = out.ndim == 1
    if single:
        out = out[:, None]
    wsums = [np.bincount(c, weights=w) for c in fe_codes]
    for _ in range(max_iter):
        old = out.copy()
        for c, ws in zip(fe_codes, wsums, strict=True):
            for j in range(out.shape[1]):
                out[:, j] -= (np.bincount(c, weights=w * out[:, j], minlength=len(ws)) / ws)[c]
        if len(fe_codes) == 1:
            break
        delta = np.sqrt(np.sum((old - out) ** 2, axis=0))
        if np.all(delta <= tol * np.sqrt(1.0 + np.sum(out ** 2, axis=0))):
            break
    return out[:, 0] if single else out


def fe_dummies(fe_codes: list[np.ndarray]) -> np.ndarray:
    """Build the dummy matrix of the fixed effects: all levels of the first, the others less one."""
    blocks = []
    for i, c in enumerate(fe_codes):
        D = np.zeros((len(c), int(c.max()) + 1))
        D[np.arange(len(c)), c] = 1.0
        blocks.append(D if i == 0 else D[:, 1:])
    return np.hstack(blocks)


def wald_f(bb: np.ndarray, vcov: np.ndarray, idx: np.ndarray, numdf: float) -> float:
    """``b' V^{-1} b / numdf`` as estimatr's ``compute_fstat`` (NA when V is not PD)."""
    try:
        if len(idx) == 0 or np.max(idx) >= vcov.shape[0] or np.isnan(bb).any():
            return np.nan
        V = vcov[np.ix_(idx, idx)]
        np.linalg.cholesky(V)
        return float(bb @ np.linalg.solve(V, bb) / numdf)
    except np.linalg.LinAlgError:
        return np.nan


def _solve_upper(R: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``R x = B`` for upper-triangular ``R``."""
    return sla.solve_triangular(R, B, lower=False)


@dataclass
class _Problem:
    """The inputs of one fit after fixed effects are absorbed and weights applied."""

    y: np.ndarray             # outcome (demeaned with fixed effects)
    X: np.ndarray
    X_resid: np.ndarray | None
    yf: np.ndarray            # sqrt-weighted outcome
    Xf: np.ndarray            # sqrt-weighted design
    weights: np.ndarray | None
    sw: np.ndarray | None
    wm: float
    fe_rank: int
    has_intercept: bool


def _problem(y: np.ndarray, X: np.ndarray, weights: np.ndarray | None,
             fe_codes: list[np.ndarray] | None, X_resid: np.ndarray | None,
             has_intercept: bool) -> _Problem:
    n, k = X.shape
    fe_rank = 0
    if fe_codes:
        wd = weights if weights is not None else np.ones(n)
        y = demean(y, fe_codes, wd)
        X = demean(X, fe_codes, wd) if k else X
        if X_resid is not None:
            X_resid = demean(X_resid, fe_codes, wd) if k else X_resid
        fe_rank = sum(int(c.max()) for c in fe_codes) + 1
    if weights is not None:
        wm = float(np.mean(weights))
        sw = np.sqrt(weights / wm)
        Xf, yf = X * sw[:, None], y * sw
    else:
        wm, sw, Xf, yf = 1.0, None, X, y
    return _Problem(y, X, X_resid, yf, Xf, weights, sw, wm, fe_rank, has_intercept)


def _meat_kwargs(p: _Problem, kept: np.ndarray, Xk: np.ndarray, b: np.ndarray,
                 se_type: str, fe_codes: list[np.ndarray] | None) -> dict[str, Any]:
    """Extra arguments of :func:`sandwich`: weighted CR2 pieces, fixed-effect leverages."""
    kw: dict[str, Any] = {"extra_rank": p.fe_rank}
    if p.weights is not None and se_type == "CR2":
        Xr_u = p.X_resid[:, kept] if p.X_resid is not None else p.X[:, kept]
        kw.update(X_unweighted=p.X[:, kept], e_unweighted=p.y - Xr_u @ b, sqrt_w=p.sw,
                  weight_mean=p.wm)
    if fe_codes and se_type in ("HC2", "HC3", "CR2"):
        D = fe_dummies(fe_codes)
        if p.weights is not None:
            D = D * p.sw[:, None]
        Xc = np.hstack([Xk, D])
        # leverages depend on the column space only: LAPACK's choice of columns will do
        Xc = Xc[:, pivoted_rank(Xc, replay=False)]
        Rc = np.linalg.qr(Xc, mode="r")
        Rci = _solve_upper(Rc, np.eye(Rc.shape[0]))
        kw.update(X_meat=Xc, M_meat=Rci @ Rci.T)
    return kw


def _r_squared(p: _Problem, yy: np.ndarray, yw: np.ndarray, df_res: int, res_var: float
               ) -> tuple[float, float, float]:
    """R squared, adjusted R squared and the total sum of squares (estimatr's)."""
    n = len(yy)
    if p.weights is not None:
        if p.has_intercept:
            ybar = np.sum(p.weights * yy) / np.sum(p.weights)
            tss = float(np.sum(p.weights * (yy - ybar) ** 2))
        else:
            tss = float(np.sum(yw ** 2 * p.wm))
    else:
        tss = float(np.sum((yy - yy.mean()) ** 2)) if p.has_intercept \
            else float(np.sum(yy ** 2))
    r2 = 1.0 - df_res * res_var / tss if tss > 0 else np.nan
    adj = 1.0 - (1.0 - r2) * ((n - int(p.has_intercept)) / df_res) if df_res > 0 else np.nan
    return r2, adj, tss


def _f_statistic(p: _Problem, coef: np.ndarray, vr: VarianceResult, r: int, df_res: int,
                 res_var: float, r2: float, tss: float, se_type: str, J: int | None,
                 second_stage_rss: float) -> dict[str, float] | None:
    fes = p.fe_rank > 0
    numdf = r - (0 if fes else int(p.has_intercept))
    if numdf <= 0:
        return None
    dendf = (J - 1) if se_type in _CLUSTER_SE else df_res
    if se_type == "classical" and p.X_resid is None:
        with np.errstate(divide="ignore", invalid="ignore"):   # perfect fit: Inf, not an error
            value = np.float64(r2 * df_res) / ((1.0 - r2) * numdf)
    elif se_type == "classical" and p.weights is None:
        # estimatr's IV F: explained sum of squares of the second-stage regression
        value = ((tss - second_stage_rss) / numdf) / res_var
    else:
        # estimatr indexes the full coefficient vector (dropped terms included) but
        # the kept-terms vcov with the same positions, so a dropped term among the
        # first `rank` positions makes the F statistic NA; we reproduce that.
        idx = np.arange(0 if fes else int(p.has_intercept), r)
        value = wald_f(coef[idx], vr.vcov, idx, numdf)
    return {"value": float(value), "numdf": float(numdf), "dendf": float(dendf)}


def fit_arrays(y: np.ndarray, X: np.ndarray, *, weights: np.ndarray | None = None,
               cluster: np.ndarray | None = None, se_type: str = "HC2",
               has_intercept: bool = True, fe_codes: list[np.ndarray] | None = None,
               X_resid: np.ndarray | None = None, func: str = "lm_robust") -> CoreFit:
    """Fit one dataset given the outcome, design matrix, weights and cluster codes.

    With ``fe_codes`` (integer codes of each fixed effect), ``X`` must not contain the
    intercept: outcome and design are demeaned within fixed effects first.

    ``X_resid`` is for two-stage least squares: ``X`` then holds the first-stage fitted
    regressors (used for the coefficients, the bread and the meat) and ``X_resid`` the
    original regressors, from which the (structural) residuals are computed, as
    estimatr's second stage does.
    """
    n, k = X.shape
    if n == 0:
        raise EstimationError(f"{func}: no complete rows to fit (every row has a missing "
                              "value in a used column, or the subset is empty).")
    p = _problem(y, X, weights, fe_codes, X_resid, has_intercept)
    kept = pivoted_rank(p.Xf)
    r = len(kept)
    coef, se, dfv = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
    if r == 0:
        raise EstimationError(f"{func}: the design matrix has no non-zero column.")
    Xk = p.Xf[:, kept]
    q, R = np.linalg.qr(Xk)
    b = _solve_upper(R, q.T @ p.yf)
    Rinv = _solve_upper(R, np.eye(r))
    M = Rinv @ Rinv.T
    coef[kept] = b
    if p.X_resid is not None:
        Xr = p.X_resid[:, kept]
        e = p.yf - (Xr * p.sw[:, None] if p.sw is not None else Xr) @ b
    else:
        e = p.yf - Xk @ b
    df_res = n - r - p.fe_rank
    cl = J = None
    if cluster is not None:
        cl = np.unique(cluster, return_inverse=True)[1].reshape(-1)
        J = int(cl.max()) + 1
    if se_type == "none":
        return CoreFit(coef=coef, se=se, df=dfv, vcov=np.full((r, r), np.nan), kept=kept,
                       nobs=n, df_residual=df_res, res_var=np.nan, r_squared=np.nan,
                       adj_r_squared=np.nan, fstatistic=None, nclusters=J)
    vr = sandwich(Xk, e, M, se_type, cluster=cl,
                  **_meat_kwargs(p, kept, Xk, b, se_type, fe_codes))
    se[kept] = np.sqrt(np.diag(vr.vcov))
    dfv[kept] = vr.df
    with np.errstate(divide="ignore", invalid="ignore"):   # df_res = 0: Inf as in R
        res_var = float(np.float64(np.sum(e ** 2 * p.wm)) / df_res) \
            if p.weights is not None else vr.res_var
    r2, adj, tss = _r_squared(p, p.y, p.yf, df_res, res_var)
    rss2 = float(np.sum((p.yf - Xk @ b) ** 2)) if p.X_resid is not None else np.nan
    fstat = _f_statistic(p, coef, vr, r, df_res, res_var, r2, tss, se_type, J, rss2)
    proj = {}
    if fe_codes:
        proj = {"proj_r_squared": r2, "proj_adj_r_squared": adj, "proj_fstatistic": fstat}
        yo_w = y * p.sw if p.weights is not None else y
        r2, adj, _ = _r_squared(p, y, yo_w, df_res, res_var)
        fstat = None
    return CoreFit(coef=coef, se=se, df=dfv, vcov=vr.vcov, kept=kept, nobs=n,
                   df_residual=df_res, res_var=res_var, r_squared=r2, adj_r_squared=adj,
                   fstatistic=fstat, nclusters=J, proj=proj, M=M, resid=e, half=vr.half,
                   scale=vr.scale)
