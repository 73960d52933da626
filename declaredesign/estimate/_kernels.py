"""Batched kernels: ``lm_robust`` and ``difference_in_means`` on every simulation at once.

Everything is computed from per-simulation and per-(simulation, cluster) sufficient
statistics (``np.bincount`` sums of products of columns), then closed forms on stacks
of ``k x k`` matrices. No Python loop runs over simulations or clusters on the hot path.

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

Weighted CR2 uses the same idea with a ``2k x 2k`` basis (see :func:`_cr2_weighted`).

Simulations the fast path cannot take (rank-deficient or nearly so, too few rows) and
designs without a batched form (several fixed effects, fixed effects with CR2,
block-clustered difference in means) are fitted one by one with the standalone
function, so their numbers stay R-exact; a failure there gives NaN rows with the
message in an ``error`` column, and a rank-deficient fit a ``warning``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..batch import Batch, group_codes
from ..errors import DeclarationError
from .model_frame import formula_variables, model_frame
from ._lm_robust import (
    add_cis,
    check_alpha,
    check_column_arg,
    check_numeric,
    check_se_type,
    check_weights,
    parse_fixed_effects,
    subset_mask,
)
from ._protocol import TIDY_COLUMNS

__all__ = ["lm_robust_kernel", "difference_in_means_kernel", "lm_core"]

_EIG_TOL = 1e-12
# 1 - h at or below this counts as leverage one (a perfectly fitted row)
_LEVERAGE_ONE = 1e-10
# Below this smallest eigenvalue of the unit-diagonal X'X a simulation goes to the exact
# (pivoting QR) path: collinear or so ill-conditioned that normal equations could lose digits.
_COND_TOL = 1e-10


_STARTS_CACHE: list[tuple[np.ndarray, int, np.ndarray | None]] = []


def _starts(codes: np.ndarray, n: int) -> np.ndarray | None:
    """First row of each group when ``codes`` is sorted and every group present, else None.

    Sorted codes (rows in simulation and cluster order, the usual case) let
    ``np.add.reduceat`` replace weighted ``np.bincount``, several times faster. The answer is
    cached for the last few code arrays, which the kernels reuse for many columns.
    """
    for c, m, st in _STARTS_CACHE:
        if c is codes and m == n:
            return st
    st = None
    if codes.size and n and codes[0] == 0 and codes[-1] == n - 1 and \
            bool((codes[1:] >= codes[:-1]).all()):
        st = np.searchsorted(codes, np.arange(n))
        if np.any(np.diff(st) == 0):
            st = None                      # an empty group: reduceat would not give 0
    _remember_starts(codes, n, st)
    return st


def _remember_starts(codes: np.ndarray, n: int, st: np.ndarray | None) -> None:
    # the array itself is kept, so its id cannot be reused while it is cached
    _STARTS_CACHE.insert(0, (codes, n, st))
    del _STARTS_CACHE[4:]


def _gsum(codes: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Per-group sums of ``values`` (length ``n``)."""
    st = _starts(codes, n)
    if st is None:
        return np.bincount(codes, weights=values, minlength=n)
    return np.add.reduceat(values, st)


def _gcount(codes: np.ndarray, n: int) -> np.ndarray:
    """Rows per group (length ``n``)."""
    st = _starts(codes, n)
    if st is None:
        return np.bincount(codes, minlength=n)
    return np.diff(st, append=codes.size)


def _csum(codes: np.ndarray, n: int, cols: list[np.ndarray], v: np.ndarray | None = None
          ) -> np.ndarray:
    """Per-group sums of each column (times ``v``): shape (n, k). Columns are contiguous."""
    out = np.empty((n, len(cols)))
    for j, c in enumerate(cols):
        out[:, j] = _gsum(codes, n, c if v is None else c * v)
    return out


def _couter(codes: np.ndarray, n: int, cols: list[np.ndarray], v: np.ndarray | None = None
            ) -> np.ndarray:
    """Per-group ``X_g' diag(v) X_g`` as an (n, k, k) stack from contiguous columns."""
    k = len(cols)
    out = np.empty((n, k, k))
    for a in range(k):
        ca = cols[a] if v is None else cols[a] * v
        for b in range(a, k):
            s_ = _gsum(codes, n, ca * cols[b])
            out[:, a, b] = s_
            out[:, b, a] = s_
    return out


def _rsum(codes: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Sums of the rows of a stack by sorted ``codes`` (clusters -> simulations)."""
    out = np.zeros((n, *values.shape[1:]))
    if len(codes) == 0:
        return out
    starts = np.searchsorted(codes, np.arange(n))
    nz = np.bincount(codes, minlength=n) > 0
    out[nz] = np.add.reduceat(values, starts[nz], axis=0)
    return out


def _solve_normal(XtX: np.ndarray, Xty: np.ndarray, n_s: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-simulation ``M = (X'X)^{-1}`` and ``beta``; ``ok`` flags well-posed sims."""
    S, k, _ = XtX.shape
    d = np.sqrt(np.einsum("sii->si", XtX))
    ok = (n_s > k) & np.all(d > 0, axis=1)
    dd = np.where(d > 0, d, 1.0)
    C = XtX / (dd[:, :, None] * dd[:, None, :])
    C[~ok] = np.eye(k)
    ok &= np.linalg.eigvalsh(C)[:, 0] > _COND_TOL
    C[~ok] = np.eye(k)
    M = np.linalg.inv(C) / (dd[:, :, None] * dd[:, None, :])
    M = 0.5 * (M + np.swapaxes(M, 1, 2))
    return M, np.einsum("sab,sb->sa", M, Xty), ok


def _fitted(cols: list[np.ndarray], beta_rows: np.ndarray) -> np.ndarray:
    out = cols[0] * beta_rows[:, 0]
    for j in range(1, len(cols)):
        out += cols[j] * beta_rows[:, j]
    return out


def lm_core(sim: np.ndarray, n_sims: int, y: np.ndarray, X: np.ndarray, *,
            weights: np.ndarray | None = None, cl_codes: np.ndarray | None = None,
            cl_sim: np.ndarray | None = None, se_type: str = "HC2",
            df_for: np.ndarray | None = None, intercept_col: int | None = None,
            fe_codes: np.ndarray | None = None, fe_sim: np.ndarray | None = None,
            X_resid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """OLS + sandwich variance for every simulation of a stacked design.

    Parameters
    ----------
    sim : int array (n,)
        Simulation of each row, values in ``[0, n_sims)``.
    y, X : arrays (n,), (n, k)
        Outcome and design matrix (unweighted).
    weights : array (n,), optional
        Positive weights; normalised by their mean within each simulation.
    cl_codes, cl_sim : int arrays, optional
        Dense (simulation, cluster) codes of each row and the simulation of each code.
    se_type : str
        A resolved estimatr ``se_type``.
    df_for : bool array (k,), optional
        Coefficients that need CR2 degrees of freedom (default all).
    intercept_col : int, optional
        Index of an all-ones column; lets the clustered path centre ``y`` per simulation
        (only the intercept moves) so cluster sums lose no digits to a large mean.
    fe_codes, fe_sim : int arrays, optional
        Dense (simulation, level) codes of one fixed effect and the simulation of each
        code. ``X`` must then have no intercept; ``y`` and ``X`` are demeaned within
        levels (weighted), the absorbed rank is the number of levels, and HC2/HC3
        leverages add each row's share ``w_i / sum(w)`` of its level, which is what
        estimatr's appended dummies contribute (the demeaned ``X`` is orthogonal to them).
    X_resid : array (n, k), optional
        Two-stage least squares: ``X`` holds the first-stage fitted regressors and
        ``X_resid`` the original ones, from which the residuals are computed (no fixed
        effects; weighted CR2 not supported).

    Returns
    -------
    dict
        ``coef``, ``se``, ``df`` (n_sims, k) and ``ok`` (n_sims,), false where the
        simulation must be fitted by the exact path instead.
    """
    n, k = X.shape
    S = n_sims
    n_s = np.bincount(sim, minlength=S)
    clustered = se_type in ("CR0", "CR2", "stata")
    raw = [X[:, j] for j in range(k)]
    fe_rank = np.zeros(S)
    if fe_codes is not None:
        F = len(fe_sim)
        den = np.bincount(fe_codes, weights=weights, minlength=F)

        def dm(v):
            wv = v if weights is None else weights * v
            return v - (np.bincount(fe_codes, weights=wv, minlength=F) / den)[fe_codes]

        y = dm(y)
        raw = [dm(c) for c in raw]
        fe_rank = np.bincount(fe_sim, minlength=S).astype(float)
    if weights is not None:
        wm = np.bincount(sim, weights=weights, minlength=S) / np.maximum(n_s, 1)
        sw = np.sqrt(weights / wm[sim])
        cols = [c * sw for c in raw]
        yf = y * sw
    else:
        cols = [np.ascontiguousarray(c) for c in raw]
        yf = y
    df_res = n_s - k - fe_rank

    if clustered and weights is None and X_resid is None:
        # Cluster sums are sufficient: X'X = sum_g A_g, X_g'e_g = X_g'y_g - A_g beta.
        G = len(cl_sim)
        shift = None
        if intercept_col is not None:
            shift = _gsum(sim, S, y) / np.maximum(n_s, 1)
            yf = y - shift[sim]
        A = _couter(cl_codes, G, cols)
        Xy_g = _csum(cl_codes, G, cols, yf)
        M, beta, ok = _solve_normal(_rsum(cl_sim, S, A), _rsum(cl_sim, S, Xy_g),
                                    n_s - fe_rank)
        XtE = Xy_g - np.einsum("gab,gb->ga", A, beta[cl_sim])
        if shift is not None:
            beta[:, intercept_col] += shift
    else:
        A = XtE = None
        M, beta, ok = _solve_normal(_couter(sim, S, cols), _csum(sim, S, cols, yf),
                                    n_s - fe_rank)
        # one step of iterative refinement recovers the digits the normal equations lose
        e = yf - _fitted(cols, beta[sim])
        beta = beta + np.einsum("sab,sb->sa", M, _csum(sim, S, cols, e))
        e = yf - _fitted(cols, beta[sim])
        if X_resid is not None:
            rc = [X_resid[:, j] for j in range(k)]
            if weights is not None:
                rc = [c * sw for c in rc]
            e = yf - _fitted(rc, beta[sim])
            if clustered and se_type == "CR2":
                A = _couter(cl_codes, len(cl_sim), cols)
    if clustered:
        G = len(cl_sim)
        J = np.bincount(cl_sim, minlength=S).astype(float)
        if XtE is None:
            XtE = _csum(cl_codes, G, cols, e)
    if se_type == "classical":
        s2 = np.bincount(sim, weights=e ** 2, minlength=S) / np.where(df_res > 0, df_res, np.nan)
        V = s2[:, None, None] * M
        df = np.repeat(df_res[:, None], k, axis=1)
    elif not clustered:
        omega = e ** 2
        if se_type in ("HC2", "HC3"):
            h = np.zeros(n)
            for a in range(k):
                h += cols[a] * cols[a] * M[:, a, a][sim]
                for b in range(a + 1, k):
                    h += 2.0 * cols[a] * cols[b] * M[:, a, b][sim]
            if fe_codes is not None:
                h += 1.0 / np.bincount(fe_codes, minlength=len(fe_sim))[fe_codes] \
                    if weights is None else weights / den[fe_codes]
            with np.errstate(divide="ignore", invalid="ignore"):
                omega = omega / (1 - h) if se_type == "HC2" else omega / (1 - h) ** 2
            # leverage-one rows have e = 0 and 1 - h = 0 up to rounding; estimatr's 0/0
            # is NaN or a rounding-sized number, we use its own fallback value 0
            omega = np.where(np.isfinite(omega) & (1.0 - h > _LEVERAGE_ONE), omega, 0.0)
        V = M @ _couter(sim, S, cols, omega) @ M
        if se_type == "HC1":
            V = V * (n_s / np.where(df_res > 0, df_res, np.nan))[:, None, None]
        df = np.repeat(df_res[:, None], k, axis=1)
    elif se_type in ("CR0", "stata"):
        V = M @ _rsum(cl_sim, S, XtE[:, :, None] * XtE[:, None, :]) @ M
        if se_type == "stata":
            with np.errstate(divide="ignore", invalid="ignore"):
                fac = J * (n_s - 1) / ((J - 1) * df_res)
                V = V * fac[:, None, None]   # one cluster or no residual df: NaN/Inf as R
        df = np.repeat((J - 1)[:, None], k, axis=1)
    else:  # CR2
        if weights is not None:
            wt = weights / wm[sim]
            V, df = _cr2_weighted(M, wm, raw, wt, e / sw, cl_codes, cl_sim, S)
        else:
            V, df = _cr2(M, A, XtE, cl_sim, S)
        if df_for is not None:
            df = np.where(df_for[None, :], df, np.nan)
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.einsum("sii->si", V))
    return {"coef": beta, "se": se, "df": df, "ok": ok, "n": n_s}


def _cr2(M: np.ndarray, A: np.ndarray, XtE: np.ndarray, cl_sim: np.ndarray, S: int
         ) -> tuple[np.ndarray, np.ndarray]:
    """CR2 vcov and Bell-McCaffrey df from per-cluster ``A_g`` and ``X_g'e_g`` (module doc)."""
    if M.shape[1] == 2:
        return _cr2_k2(M, A, XtE, cl_sim, S)
    return _cr2_general(M, A, XtE, cl_sim, S)


def _cr2_general(M: np.ndarray, A: np.ndarray, XtE: np.ndarray, cl_sim: np.ndarray, S: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_cr2` for any number of coefficients, through ``B_g``'s eigenvectors."""
    L = np.linalg.cholesky(M)
    Lg = L[cl_sim]
    Mg = M[cl_sim]
    B = np.swapaxes(Lg, 1, 2) @ A @ Lg
    lam, vec = np.linalg.eigh(B)
    one_m = 1.0 - lam
    nondeg = one_m > _EIG_TOL
    s_ = np.sqrt(np.where(nondeg, one_m, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = np.where(nondeg, 1.0 / ((1.0 + s_) * s_), -1.0 / lam)
        d3 = np.where(nondeg, 0.0, -1.0 / lam)
    LV = Lg @ vec
    LVt = np.swapaxes(LV, 1, 2)
    AK1 = A @ ((LV * d1[:, None, :]) @ LVt)
    hm = XtE + np.einsum("gab,gb->ga", AK1, XtE)
    V = M @ _rsum(cl_sim, S, hm[:, :, None] * hm[:, None, :]) @ M
    U = (A + AK1 @ A) @ Mg                           # column j: u_g for coefficient j
    # G_gg = w_g'(I - H_gg) w_g: (I-H) f(I-H)^2 is the projector off the degenerate
    # directions, so no w'w - u'Mu cancellation is needed
    Q3 = A + A @ ((LV * d3[:, None, :]) @ LVt) @ A
    Gdiag = np.einsum("gaj,gab,gbj->gj", Mg, Q3, Mg)
    return V, _bm_df(Gdiag, U, Mg, M, cl_sim, S)


def _mm2(X, Y):
    """Product of two stacks of 2 x 2 matrices held as ``(x00, x01, x10, x11)`` arrays."""
    a, b, c, d = X
    e, f, g, h = Y
    return (a * e + b * g, a * f + b * h, c * e + d * g, c * f + d * h)


def _cr2_k2(M: np.ndarray, A: np.ndarray, XtE: np.ndarray, cl_sim: np.ndarray, S: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_cr2` for two coefficients, elementwise (no eigenvectors, no Cholesky).

    ``K_g = L phi(B_g) L'`` with ``B_g = L'A_gL`` only needs ``phi`` on the two
    eigenvalues ``l1 >= l2`` of ``B_g`` (those of ``M A_g``): ``phi(B) = alpha I + beta B``
    with ``beta`` the divided difference of ``phi`` over ``(l2, l1)`` and
    ``alpha = phi(l2) - beta l2``, so ``K_g = alpha M + beta M A_g M``. For
    ``phi(l) = 1 / ((1 + s) s)``, ``s = sqrt(1 - l)``, the divided difference is
    ``(1 + s1 + s2) / ((s1 + s2) (1 + s1) s1 (1 + s2) s2)``, free of cancellation even for
    equal eigenvalues. Degenerate directions (``1 - l <= 1e-12``) use ``-1/l`` as in
    :func:`_cr2`.
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
        nd1 = 1.0 - l1 > _EIG_TOL
        nd2 = 1.0 - l2 > _EIG_TOL
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
    V = M @ _rsum(cl_sim, S, C) @ M
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
    trG = _rsum(cl_sim, S, Gdiag)
    sq = _rsum(cl_sim, S, Gdiag ** 2)
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
        Cj = _rsum(cl_sim, S, np.einsum("gaj,gbj->gjab", U, U))    # (S, k, k, k)
        MC = np.einsum("sab,sjbc->sjac", M, Cj)
        off = np.einsum("sjab,sjba->sj", MC, MC) - _rsum(cl_sim, S, uMu ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return trG ** 2 / (sq + off)


def _cr2_weighted(M, wm, raw, wt, eo, cl_codes, cl_sim, S):
    """Weighted CR2 (estimatr's clubSandwich-style form) from per-cluster statistics.

    With ``W`` the normalised weights of a cluster, estimatr's adjustment matrix is
    ``A = I - XMX'W - WXMX' + XNX'`` (``N = M X'W^2X M``) applied as ``A^{+1/2} W X``.
    ``A = I + P K P'`` with ``P = [X, (W - w0) X]`` (``w0`` one weight of the cluster, so
    the second block vanishes exactly when weights are constant within clusters) and
    ``K = [[N - 2 w0 M, -M], [-M, 0]]``; its functions act on the span of ``P`` only,
    which the ``2k x 2k`` Gram matrix ``P'P`` describes.
    """
    k = len(raw)
    G = len(cl_sim)
    w0 = np.zeros(G)
    w0[cl_codes] = wt
    dw = wt - w0[cl_codes]
    Sxx = _couter(cl_codes, G, raw)
    Sxd = _couter(cl_codes, G, raw, dw)
    Sdd = _couter(cl_codes, G, raw, dw * dw)
    pe = np.concatenate([_csum(cl_codes, G, raw, eo), _csum(cl_codes, G, raw, dw * eo)], 1)
    W2 = _rsum(cl_sim, S, Sdd + 2 * w0[:, None, None] * Sxd + (w0 ** 2)[:, None, None] * Sxx)
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
    pos = one_p > _EIG_TOL
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
    V_ = M @ _rsum(cl_sim, S, hm[:, :, None] * hm[:, None, :]) @ M
    # Bell-McCaffrey pieces for every coefficient j at once (columns of C = M / wm)
    Cg = Mg / wm[cl_sim][:, None, None]
    F1 = Gp + Kd1
    a = np.swapaxes(Ex, 1, 2) @ F1 @ Ew @ Cg                         # (G, k, j)
    b = np.swapaxes(Ew, 1, 2) @ F1 @ Ew @ Cg
    p = np.einsum("gaj,gab,gbj->gj", Cg, np.swapaxes(Ew, 1, 2) @ (Gp + Kd2) @ Ew, Cg)
    q = np.einsum("gaj,gab,gbj->gj", a, Ng, a) - 2 * np.einsum("gaj,gab,gbj->gj", a, Mg, b)
    trP = _rsum(cl_sim, S, q + p)
    z = np.concatenate([a, b], axis=1)                               # (G, 2k, j)
    Sz = _rsum(cl_sim, S, np.einsum("gaj,gbj->gjab", z, z))          # (S, j, 2k, 2k)
    K = np.block([[N, -M], [-M, np.zeros_like(M)]])
    KS = np.einsum("sab,sjbc->sjac", K, Sz)
    trP2 = np.einsum("sjab,sjba->sj", KS, KS) + _rsum(cl_sim, S, 2 * q * p + p * p)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = trP ** 2 / trP2
    return V_, df


# --------------------------------------------------------------------------- helpers
def _cluster_codes(sim: np.ndarray, n_sims: int, key: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Dense (simulation, cluster) codes, in (sim, key) order, and each code's simulation.

    Integer keys with a small range (level IDs are 1..n per simulation) are coded with
    one scatter and a cumulative sum instead of a sort.
    """
    key = np.asarray(key)
    for s_, k_, n_, out in _CODES_CACHE:
        # batches are immutable (batch.py): the same arrays give the same codes, so the
        # estimators of one design clustering on one column share the work
        if s_ is sim and k_ is key and n_ == n_sims:
            return out
    out = _cluster_codes_uncached(sim, n_sims, key)
    _CODES_CACHE.insert(0, (sim, key, n_sims, out))
    del _CODES_CACHE[2:]
    return out


_CODES_CACHE: list[tuple[np.ndarray, np.ndarray, int, tuple[np.ndarray, np.ndarray]]] = []


def _cluster_codes_uncached(sim: np.ndarray, n_sims: int, key: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
    if key.dtype.kind in "iu" and key.size:
        lo, hi = int(key.min()), int(key.max())
        span = hi - lo + 1
        if n_sims * span <= max(4 * key.size, 1 << 20):
            combined = np.multiply(sim, span, dtype=np.int64)   # in place from here
            combined += key.astype(np.int64, copy=False)
            if lo:
                combined -= lo
            if combined.size > 1 and bool((combined[1:] >= combined[:-1]).all()):
                # rows already in (sim, key) order (the usual nesting): runs are the groups
                st = np.flatnonzero(combined[1:] != combined[:-1]) + 1
                st = np.concatenate([np.zeros(1, dtype=st.dtype), st])
                sizes = np.diff(st, append=combined.size)
                codes = np.repeat(np.arange(len(st), dtype=np.int64), sizes)
                _remember_starts(codes, len(st), st)
                return codes, sim[st].astype(np.int64, copy=False)
            present = np.zeros(n_sims * span, dtype=bool)
            present[combined] = True
            rank = np.cumsum(present, dtype=np.int64)
            rank -= 1
            codes = np.take(rank, combined)
            cl_sim = np.flatnonzero(present) // span
            return codes, cl_sim.astype(np.int64, copy=False)
    return group_codes(sim, key)


def _columns_for(batch: Batch, names: list[str]) -> dict[str, np.ndarray]:
    """Batch columns, with level-ID columns used as factors turned into R's strings."""
    cols = dict(batch.columns)
    for v in names:
        if v in batch.id_columns:
            cols[v] = batch.column_as_r(v)
    return cols


def _subset_view(batch: Batch, subset: Any) -> dict[str, np.ndarray]:
    """Columns for a subset expression: level IDs it names as the strings users see."""
    if not isinstance(subset, str):
        return batch.columns
    named = [v for v in batch.id_columns if re.search(rf"\b{re.escape(v)}\b", subset)]
    return _columns_for(batch, named)


def _fallback(func, batch: Batch, sims: np.ndarray, formula: str, kwargs: dict[str, Any],
              reason: str | None) -> list[pd.DataFrame]:
    """Fit the listed simulations one at a time with the standalone estimator."""
    out = []
    for s in sims:
        df = batch.select_sims([int(s)]).to_pandas()
        try:
            t = func(formula, df, **kwargs).tidy()
            n_na = int(t["estimate"].isna().sum())
            note = reason
            if n_na:
                note = (f"{n_na} coefficient(s) not defined because the design matrix is "
                        "rank deficient")
            if note:
                t["warning"] = note
        except Exception as e:  # noqa: BLE001 -- one failed sim must not kill the run
            t = pd.DataFrame({c: [np.nan] for c in TIDY_COLUMNS})
            t["term"] = None
            t["outcome"] = formula.split("~")[0].strip()
            t["error"] = f"{type(e).__name__}: {e}"
        t.insert(0, "sim", int(s))
        out.append(t)
    return out


def _assemble(sims: np.ndarray, terms: list[str], res: dict[str, np.ndarray], alpha: float,
              ci: bool, outcome: str, extra: list[pd.DataFrame]) -> pd.DataFrame:
    k = len(terms)
    coef, se, df = res["coef"][sims], res["se"][sims], res["df"][sims]
    stat, p, lo, hi, dfo = add_cis(coef, se, df, alpha, ci)
    main = pd.DataFrame({
        "sim": np.repeat(sims, k), "term": np.tile(np.asarray(terms, dtype=object), len(sims)),
        "estimate": coef.ravel(), "std_error": se.ravel(), "statistic": stat.ravel(),
        "p_value": p.ravel(), "conf_low": lo.ravel(), "conf_high": hi.ravel(),
        "df": dfo.ravel(), "outcome": outcome})
    if not extra:
        return main
    out = pd.concat([main, *extra], ignore_index=True)
    order = np.argsort(out["sim"].to_numpy(), kind="stable")
    return out.iloc[order].reset_index(drop=True)


def _welch_parts(codes: np.ndarray, G: int, y: np.ndarray, t2: np.ndarray):
    """Per-group counts, difference in means and Welch variance pieces."""
    n2 = np.bincount(codes, weights=t2, minlength=G)
    n1 = np.bincount(codes, minlength=G) - n2
    m2 = np.bincount(codes, weights=y * t2, minlength=G) / np.maximum(n2, 1)
    m1 = np.bincount(codes, weights=y * ~t2, minlength=G) / np.maximum(n1, 1)
    dev = y - np.where(t2, m2[codes], m1[codes])
    ss2 = np.bincount(codes, weights=dev ** 2 * t2, minlength=G)
    ss1 = np.bincount(codes, weights=dev ** 2 * ~t2, minlength=G)
    with np.errstate(divide="ignore", invalid="ignore"):
        v2 = ss2 / (n2 - 1) / n2
        v1 = ss1 / (n1 - 1) / n1
    return n1, n2, m2 - m1, v1, v2


def _clustered_dim(S: int, y: np.ndarray, cl_codes: np.ndarray, cl_sim: np.ndarray,
                   size: np.ndarray, treated: np.ndarray, intercept: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clustered difference in means: ``lm_robust(y ~ z)`` CR2 in closed form.

    With whole clusters treated, ``X_g = 1 x_g'`` and ``H_gg = (n_g / N_a) 1 1'`` (``N_a``
    the units in the cluster's arm), so the one non-trivial eigenvalue is
    ``l_g = n_g / N_a`` on ``1``. For the treatment coefficient ``x_g'Mc = +-1/N_a``, hence

    * ``V = sum_g (sum e_g)^2 / (N_a^2 (1 - l_g))``;
    * Bell-McCaffrey: ``G`` is block diagonal by arm, ``G_a = D - q q'`` with
      ``G_gg = n_g / N_a^2`` and ``q_g^2 = n_g^2 / (N_a^2 (N_a - n_g))``.

    A cluster alone in its arm (``l_g = 1``) contributes nothing, as estimatr's
    pseudo-inverse square root makes it. Only per-cluster and per-arm sums are needed.
    The intercept (the control mean, ``x_g'Mc = 1/N_0`` on control clusters only) uses the
    control arm's pieces alone; with ``intercept=True`` coef, se and df have two columns,
    (intercept, difference), as ``lm_robust(y ~ z, clusters=...)`` reports them.
    """
    G = len(cl_sim)
    arm = 2 * cl_sim + treated                       # (simulation, arm) of each cluster
    N = np.bincount(arm, weights=size, minlength=2 * S)
    sy = _gsum(cl_codes, G, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.bincount(arm, weights=sy, minlength=2 * S) / N
        # residual sums from centred rows keep their digits; one refinement of the means
        eg = _gsum(cl_codes, G, y - m[arm][cl_codes])
        dm = np.bincount(arm, weights=eg, minlength=2 * S) / N
        m = m + dm
        eg = eg - size * dm[arm]
        Na = N[arm]
        single = size >= Na
        rest = np.where(single, 1.0, Na - size)
        v = np.where(single, 0.0, eg ** 2 / (Na * rest))       # (sum e)^2 / (N^2 (1 - l))
        gd = np.where(single, 0.0, size / Na ** 2)
        q2 = np.where(single, 0.0, size ** 2 / (Na ** 2 * rest))
        # per-arm pieces: the difference uses both arms, the intercept (control mean) one
        var = np.bincount(arm, weights=v, minlength=2 * S).reshape(S, 2)
        trG = np.bincount(arm, weights=gd, minlength=2 * S).reshape(S, 2)
        sq2 = np.bincount(arm, weights=q2, minlength=2 * S).reshape(S, 2)
        trG2 = np.bincount(arm, weights=gd ** 2 - q2 ** 2, minlength=2 * S).reshape(S, 2) \
            + sq2 ** 2
        df = trG.sum(axis=1) ** 2 / trG2.sum(axis=1)
        est = m[1::2] - m[0::2]
        ok = (N[0::2] > 0) & (N[1::2] > 0)
        if not intercept:
            return est, np.sqrt(var.sum(axis=1)), df, ok
        coef = np.column_stack([m[0::2], est])
        se = np.sqrt(np.column_stack([var[:, 0], var.sum(axis=1)]))
        dfs = np.column_stack([trG[:, 0] ** 2 / trG2[:, 0], df])
    return coef, se, dfs, ok


def _binary_cluster_treatment(sim: np.ndarray, S: int, y: np.ndarray, z: np.ndarray,
                              cl_codes: np.ndarray, cl_sim: np.ndarray
                              ) -> dict[str, np.ndarray] | None:
    """``lm_robust(y ~ z)`` CR2 through :func:`_clustered_dim` when ``z`` is 0/1 and
    constant within clusters (cluster-assigned treatment); None when it is not."""
    if not bool(((z == 0.0) | (z == 1.0)).all()):
        return None
    G = len(cl_sim)
    n_t = _gsum(cl_codes, G, z)
    size = _gcount(cl_codes, G)
    if not bool(((n_t == 0) | (n_t == size)).all()):
        return None
    coef, se, df, ok = _clustered_dim(S, y, cl_codes, cl_sim, size, n_t > 0, intercept=True)
    # lm_core's conditions for the normal equations: more rows than coefficients
    ok = ok & (_gcount(sim, S) > 2)
    return {"coef": coef, "se": se, "df": df, "ok": ok}


def _blocked_dim(sim, S, y, t2, bl_codes, bl_sim):
    """Blocked and matched-pair difference in means for every simulation (estimatr)."""
    G = len(bl_sim)
    n1, n2, diff, v1, v2 = _welch_parts(bl_codes, G, y, t2)
    nb = n1 + n2
    pair_b = nb == 2
    pair = np.bincount(bl_sim, weights=pair_b, minlength=S) > 0
    # estimatr's errors (left to the exact path): single-unit blocks, blocks without both
    # conditions, and blocks with one treated or control unit outside matched pairs.
    bad_b = (nb == 1) | (n1 == 0) | (n2 == 0) | (~pair[bl_sim] & ((n1 == 1) | (n2 == 1)))
    ok = np.bincount(bl_sim, weights=bad_b, minlength=S) == 0
    ok &= np.bincount(bl_sim, minlength=S) > 0
    N = np.bincount(bl_sim, weights=nb, minlength=S)
    nblocks = np.bincount(bl_sim, minlength=S).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.bincount(bl_sim, weights=diff * nb, minlength=S) / N
        se_pair = np.sqrt(np.bincount(bl_sim, weights=(diff - est[bl_sim]) ** 2, minlength=S)
                          / (nblocks * (nblocks - 1)))
        se_blk = np.sqrt(np.bincount(bl_sim, weights=np.where(
            pair[bl_sim], 0.0, (v1 + v2) * (nb / N[bl_sim]) ** 2), minlength=S))
    se = np.where(pair, se_pair, se_blk)
    df = np.where(pair, nblocks - 1, N - 2 * nblocks)
    return est, se, df, ok


# ------------------------------------------------------------------------- lm_robust
def lm_robust_kernel(batch: Batch, formula: str, weights: str | None = None,
                     subset: Any = None, clusters: str | None = None,
                     fixed_effects: Any = None, se_type: str | None = None, ci: bool = True,
                     alpha: float = 0.05, return_vcov: bool = True,
                     try_cholesky: bool = False) -> pd.DataFrame:
    """Batched :func:`lm_robust`: one tidy row per (simulation, term).

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign.batch import Batch
    >>> rng = np.random.default_rng(0)
    >>> b = Batch({"y": rng.normal(size=40), "z": np.tile([0.0, 1.0], 20),
    ...            "g": np.repeat(np.arange(8), 5) % 4}, sim=np.repeat([0, 1], 20), n_sims=2)
    >>> lm_robust_kernel(b, "y ~ z", clusters="g").shape
    (4, 10)
    """
    from ._lm_robust import _CBIND, lm_robust
    func = "lm_robust"
    cols = batch.columns
    kwargs = dict(weights=weights, subset=subset, clusters=clusters, se_type=se_type,
                  ci=ci, alpha=alpha, fixed_effects=fixed_effects)
    if isinstance(formula, str) and _CBIND.match(formula):
        # several outcomes: exact per-simulation fits
        return pd.concat(_fallback(lm_robust, batch, np.arange(batch.n_sims), formula, kwargs,
                                   None), ignore_index=True)
    alpha = check_alpha(func, alpha)
    clusters = check_column_arg(func, "clusters", clusters, cols)
    weights = check_column_arg(func, "weights", weights, cols)
    se = check_se_type(func, se_type, clusters is not None)
    fe_names = parse_fixed_effects(func, fixed_effects, cols)
    lhs, rhs = formula_variables(formula)
    sub = subset_mask(func, subset, _subset_view(batch, subset), batch.n_rows)
    view = _columns_for(batch, rhs)
    sim = batch.sim
    if subset is not None:
        view = {k_: v[sub] for k_, v in view.items()}
        sim = sim[sub]
    mf = model_frame(formula, view,
                     extra_columns=[c for c in (clusters, weights, *fe_names) if c], func=func)
    for name in lhs:
        check_numeric(func, "formula", name, np.asarray(view[name]))
    if mf.y.ndim != 1:
        raise DeclarationError(f"{func}(formula={formula!r}): formula must have one outcome.")
    all_rows = bool(mf.mask.all())

    def used(v):
        return v if all_rows else v[mf.mask]

    sim = used(sim)
    w = None
    if weights is not None:
        check_numeric(func, "weights", weights, np.asarray(view[weights]))
        w = used(np.asarray(view[weights], dtype=float))
        check_weights(func, weights, w)
    cl_codes = cl_sim = None
    if clusters is not None:
        cl_codes, cl_sim = _cluster_codes(sim, batch.n_sims, used(np.asarray(view[clusters])))
    S = batch.n_sims
    kwargs = dict(weights=weights, subset=subset, clusters=clusters, se_type=se_type,
                  ci=ci, alpha=alpha, fixed_effects=fixed_effects)
    if fe_names and w is not None and se == "CR2":
        lm_robust(formula, batch.select_sims([0]).to_pandas(), **kwargs)   # raises
    if len(fe_names) > 1 or (fe_names and se == "CR2"):
        # no batched form yet: exact per-simulation fits
        return pd.concat(_fallback(lm_robust, batch, np.arange(S), formula, kwargs, None),
                         ignore_index=True)
    X, columns = mf.X, list(mf.columns)
    fe_codes = fe_sim = None
    if fe_names:
        fe_codes, fe_sim = _cluster_codes(sim, S, used(np.asarray(view[fe_names[0]])))
        if mf.has_intercept:
            i = columns.index("(Intercept)")
            X = np.delete(X, i, axis=1)
            columns.pop(i)
    icol = columns.index("(Intercept)") if "(Intercept)" in columns else None
    res = None
    if se == "CR2" and w is None and fe_codes is None and columns[:1] == ["(Intercept)"] \
            and len(columns) == 2:
        res = _binary_cluster_treatment(sim, S, mf.y, X[:, 1], cl_codes, cl_sim)
    if res is None:
        res = lm_core(sim, S, mf.y, X, weights=w, cl_codes=cl_codes, cl_sim=cl_sim,
                      se_type=se, intercept_col=icol, fe_codes=fe_codes, fe_sim=fe_sim)
    ok = res["ok"]
    bad = np.flatnonzero(~ok)
    extra = _fallback(lm_robust, batch, bad, formula, kwargs, None) if len(bad) else []
    return _assemble(np.flatnonzero(ok), columns, res, alpha, ci, mf.outcome[0], extra)


# ---------------------------------------------------------------- difference_in_means
def difference_in_means_kernel(batch: Batch, formula: str, blocks: str | None = None,
                               clusters: str | None = None, weights: str | None = None,
                               subset: Any = None, condition1: Any = None,
                               condition2: Any = None, ci: bool = True,
                               alpha: float = 0.05) -> pd.DataFrame:
    """Batched :func:`difference_in_means`.

    Simple, clustered, weighted, blocked and matched-pair designs are vectorised;
    block-clustered and weighted blocked designs run the standalone function per
    simulation.

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign.batch import Batch
    >>> b = Batch({"y": np.arange(8.0), "z": np.tile([0, 1], 4)}, sim=np.repeat([0, 1], 4),
    ...           n_sims=2)
    >>> difference_in_means_kernel(b, "y ~ z")["estimate"].tolist()
    [1.0, 1.0]
    """
    from ._dim import _prepare, difference_in_means, parse_conditions
    func = "difference_in_means"
    cols, outcome, treat, blocks, clusters, weights, rows, alpha = _prepare(
        func, formula, _subset_view(batch, subset), blocks, clusters, weights, subset,
        condition1, condition2, alpha)
    kwargs = dict(blocks=blocks, clusters=clusters, weights=weights, subset=subset,
                  condition1=condition1, condition2=condition2, ci=ci, alpha=alpha)
    S = batch.n_sims
    t_col = np.asarray(cols[treat])
    all_rows = bool(rows.all())
    t_all = t_col if all_rows else t_col[rows]
    values = None
    if t_all.dtype.kind in "iuf" and t_all.size:
        # a numeric treatment with two values (the usual 0/1) needs no hashing
        lo, hi = t_all.min(), t_all.max()
        if bool(((t_all == lo) | (t_all == hi)).all()):
            values = sorted({lo.item(), hi.item()})
    c1, c2 = parse_conditions(func, t_all, condition1, condition2, values=values)
    t2 = t_col == c2
    in_conditions = t2 | (t_col == c1)
    if not in_conditions.all():
        rows = rows & in_conditions
        all_rows = False

    def used(v):
        # the common case (no subset, no NA, two conditions) needs no row copies
        return v if all_rows else v[rows]

    sim = used(batch.sim)
    y = used(np.asarray(cols[outcome], dtype=float))
    t2 = used(t2)
    w = None
    if weights is not None:
        w = used(np.asarray(cols[weights], dtype=float))
        check_weights(func, weights, w)
    add_label = not (c2 == 1 and c1 == 0)
    term = f"{treat}{c2}" if add_label else treat
    if blocks is not None and clusters is None and w is None:
        bl_codes, bl_sim = _cluster_codes(sim, S, used(np.asarray(cols[blocks])))
        est, se, df, ok = _blocked_dim(sim, S, y, t2, bl_codes, bl_sim)
        res2 = {"coef": est[:, None], "se": se[:, None], "df": df[:, None]}
        badi = np.flatnonzero(~ok)
        extra = _fallback(difference_in_means, batch, badi, formula, kwargs, None) \
            if len(badi) else []
        return _assemble(np.flatnonzero(ok), [term], res2, alpha, ci, outcome, extra)
    if blocks is not None:
        # block-clustered and weighted blocked designs: exact per-simulation path
        return pd.concat(_fallback(difference_in_means, batch, np.arange(S), formula,
                                   kwargs, None), ignore_index=True)
    t2f = t2.astype(float)
    n2 = _gsum(sim, S, t2f)
    n1 = _gcount(sim, S) - n2
    bad = (n1 < 2) | (n2 < 2)
    if clusters is not None:
        cl_codes, cl_sim = _cluster_codes(sim, S, used(np.asarray(cols[clusters])))
        G = len(cl_sim)
        n_t = _gsum(cl_codes, G, t2f)
        size = _gcount(cl_codes, G)
        if np.any((n_t > 0) & (n_t < size)):
            raise DeclarationError(f"{func}(clusters={clusters!r}): every unit of a cluster "
                                   "must have the same treatment condition; some clusters mix "
                                   "them.")
        if w is None:
            est, se, df, ok = _clustered_dim(S, y, cl_codes, cl_sim, size, n_t > 0)
        else:
            X = np.column_stack([np.ones(len(y)), t2.astype(float)])
            res = lm_core(sim, S, y, X, weights=w, cl_codes=cl_codes, cl_sim=cl_sim,
                          se_type="CR2", df_for=np.array([False, True]), intercept_col=0)
            est, se, df, ok = res["coef"][:, 1], res["se"][:, 1], res["df"][:, 1], res["ok"]
    elif w is not None:
        X = np.column_stack([np.ones(len(y)), t2.astype(float)])
        res = lm_core(sim, S, y, X, weights=w, se_type="HC2")
        est, se, df, ok = res["coef"][:, 1], res["se"][:, 1], res["df"][:, 1], res["ok"]
    else:
        n1, n2, est, v1, v2 = _welch_parts(sim, S, y, t2)
        with np.errstate(divide="ignore", invalid="ignore"):
            se = np.sqrt(v2 + v1)
            df = se ** 4 / (v2 ** 2 / (n2 - 1) + v1 ** 2 / (n1 - 1))
        ok = np.ones(S, dtype=bool)
    ok = ok & ~bad
    res2 = {"coef": est[:, None], "se": se[:, None], "df": df[:, None]}
    badi = np.flatnonzero(~ok)
    extra = _fallback(difference_in_means, batch, badi, formula, kwargs, None) \
        if len(badi) else []
    return _assemble(np.flatnonzero(ok), [term], res2, alpha, ci, outcome, extra)

