"""Least squares and sandwich variances for every simulation of a batch at once.

Everything is computed from per-simulation and per-(simulation, cluster) sufficient
statistics (grouped sums of products of columns, :mod:`.grouped_sums`), then closed forms
on stacks of ``k x k`` matrices. No Python loop runs over simulations or clusters.

Simulations the normal equations cannot take safely (rank-deficient or nearly so, too
few rows) are flagged in ``ok``; the estimators leave them to the exact single-dataset
path (:mod:`.ols`, with column-pivoting QR) through the per-simulation fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..groups import GroupIndex
from .fixed_effects import cr2_fixed_effect
from .grouped_sums import column_sums, outer_sums, stack_sums
from .inference import screen_scale, screen_unidentified
from .sandwich import LEVERAGE_ONE, cr2_stacked, cr2_weighted_stacked

__all__ = ["StackedFit", "identified", "lm_core", "model_statistics", "solve_normal"]

# Below this smallest eigenvalue of the unit-diagonal X'X a simulation goes to the exact
# (pivoting QR) path: collinear or so ill-conditioned that normal equations could lose digits.
_COND_TOL = 1e-10
_CLUSTER_SE = ("CR0", "CR2", "stata")


def solve_normal(XtX: np.ndarray, Xty: np.ndarray, n_s: np.ndarray
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


def _in_order(sim: np.ndarray) -> bool:
    """Whether rows come simulation by simulation (then per-row values are repeats)."""
    return sim.size < 2 or bool((sim[1:] >= sim[:-1]).all())


def _per_row(values: np.ndarray, sim: np.ndarray, n_s: np.ndarray | None) -> np.ndarray:
    """``values[sim]``; a repeat (no gather) when ``n_s`` counts rows in simulation order.

    ``values`` has one entry (or one row) per simulation.
    """
    return values[sim] if n_s is None else np.repeat(values, n_s, axis=0)


def _fitted(cols: list[np.ndarray], beta: np.ndarray, sim: np.ndarray,
            n_s: np.ndarray | None) -> np.ndarray:
    """``X beta`` row by row, ``beta`` one row per simulation (see :func:`_per_row`)."""
    square = _equal_sizes(n_s, len(sim))
    if square is None:
        out = cols[0] * _per_row(beta[:, 0], sim, n_s)
        for j in range(1, len(cols)):
            out += cols[j] * _per_row(beta[:, j], sim, n_s)
        return out
    # simulations of one size in order: the same products, beta broadcast per simulation
    shape = (len(n_s), square)
    out = cols[0].reshape(shape) * beta[:, 0][:, None]
    term = np.empty(shape)
    for j in range(1, len(cols)):
        np.multiply(cols[j].reshape(shape), beta[:, j][:, None], out=term)
        out += term
    return out.reshape(-1)


def _equal_sizes(n_s: np.ndarray | None, n_rows: int) -> int | None:
    """Return the common size of simulations given in order, one size each, else None."""
    if n_s is None or not len(n_s) or n_s[0] <= 0 or n_s[0] * len(n_s) != n_rows or \
            not (n_s == n_s[0]).all():
        return None
    return int(n_s[0])


@dataclass
class StackedFit:
    """Working state of :func:`lm_core`: the (weighted) design and its solution."""

    sims: GroupIndex
    raw: np.ndarray                # (k, n) columns after fixed-effect demeaning, unweighted
    cols: np.ndarray               # (k, n) columns times sqrt(weights)
    yf: np.ndarray
    sw: np.ndarray | None
    wm: np.ndarray | None
    n_s: np.ndarray
    df_res: np.ndarray
    fe_rank: np.ndarray
    #: rows per simulation when rows come in simulation order (per-row values by repeat)
    rep: np.ndarray | None = None
    M: np.ndarray | None = None
    beta: np.ndarray | None = None
    ok: np.ndarray | None = None
    e: np.ndarray | None = None
    A: np.ndarray | None = None    # per-cluster X_g'X_g
    XtE: np.ndarray | None = None  # per-cluster X_g'e_g


def _demean(y: np.ndarray, raw: np.ndarray, fe: GroupIndex, weights: np.ndarray | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove the (weighted) fixed-effect level means; also returns the level weights.

    ``raw`` and the demeaned columns returned are ``(k, n)`` arrays, one column a row.
    """
    F = fe.n_groups
    den = np.bincount(fe.codes, weights=weights, minlength=F)

    def dm(v: np.ndarray) -> np.ndarray:
        wv = v if weights is None else weights * v
        return v - (np.bincount(fe.codes, weights=wv, minlength=F) / den)[fe.codes]

    out = np.empty(raw.shape)
    for j, c in enumerate(raw):
        out[j] = dm(c)
    return dm(y), out, den


def _setup(sims: GroupIndex, y: np.ndarray, X: np.ndarray, weights: np.ndarray | None,
           fe: GroupIndex | None) -> tuple[StackedFit, np.ndarray | None]:
    S = sims.n_sims
    sim = sims.codes
    n_s = np.bincount(sim, minlength=S)
    # the columns as the rows of one (k, n) array (a transposing copy unless X is in
    # Fortran order): the grouped sums then take all products of a column in one call
    # (rows of a Fortran-ordered X, such as the fast model frame's, are already
    # contiguous columns: they are used in place)
    raw = X.T if X.ndim == 2 and X.strides[0] == X.itemsize else np.ascontiguousarray(X.T)
    fe_rank = np.zeros(S)
    den = None
    if fe is not None:
        y, raw, den = _demean(y, raw, fe, weights)
        fe_rank = np.bincount(fe.group_sim, minlength=S).astype(float)
    wm = sw = None
    if weights is not None:
        wm = np.bincount(sim, weights=weights, minlength=S) / np.maximum(n_s, 1)
        sw = np.sqrt(weights / wm[sim])
        cols = raw * sw
        yf = y * sw
    else:
        cols = raw
        yf = y
    st = StackedFit(sims=sims, raw=raw, cols=cols, yf=yf, sw=sw, wm=wm, n_s=n_s,
                    df_res=n_s - X.shape[1] - fe_rank, fe_rank=fe_rank,
                    rep=n_s if _in_order(sim) else None)
    return st, den


def _solve_by_clusters(st: StackedFit, clusters: GroupIndex, intercept_col: int | None
                       ) -> None:
    """Cluster sums are sufficient: ``X'X = sum_g A_g``, ``X_g'e_g = X_g'y_g - A_g beta``."""
    S = st.sims.n_sims
    shift = None
    yf = st.yf                      # unweighted here: the (demeaned) outcome
    if intercept_col is not None:
        # centring y per simulation moves only the intercept; cluster sums keep digits
        shift = st.sims.sum(yf) / np.maximum(st.n_s, 1)
        yf = yf - shift[st.sims.codes]
    A = outer_sums(clusters, st.cols)
    Xy_g = column_sums(clusters, st.cols, yf)
    cl_sim = clusters.group_sim
    st.M, beta, st.ok = solve_normal(stack_sums(cl_sim, S, A), stack_sums(cl_sim, S, Xy_g),
                                     st.n_s - st.fe_rank)
    st.XtE = Xy_g - np.einsum("gab,gb->ga", A, beta[cl_sim])
    if shift is not None:
        beta[:, intercept_col] += shift
    st.A, st.beta = A, beta


def _solve_by_rows(st: StackedFit, X_resid: np.ndarray | None) -> None:
    sims = st.sims
    sim = sims.codes
    st.M, beta, st.ok = solve_normal(outer_sums(sims, st.cols),
                                     column_sums(sims, st.cols, st.yf), st.n_s - st.fe_rank)
    # one step of iterative refinement recovers the digits the normal equations lose
    e = st.yf - _fitted(st.cols, beta, sim, st.rep)
    beta = beta + np.einsum("sab,sb->sa", st.M, column_sums(sims, st.cols, e))
    e = st.yf - _fitted(st.cols, beta, sim, st.rep)
    if X_resid is not None:
        rc = list(np.ascontiguousarray(X_resid.T))
        if st.sw is not None:
            rc = [c * st.sw for c in rc]
        e = st.yf - _fitted(rc, beta, sim, st.rep)
    st.beta, st.e = beta, e


def _leverages(cols: list[np.ndarray] | np.ndarray, M: np.ndarray, sim: np.ndarray,
               n_s: np.ndarray | None) -> np.ndarray:
    """Each row's ``x_i' M x_i``: ``sum_a x_a^2 M_aa + sum_{a<b} 2 x_a x_b M_ab`` in that order.

    Every term is computed as ``(x_a * x_a) * M_aa`` or ``((2 * x_a) * x_b) * M_ab`` and
    added to the running sum in the order ``(a, b)``, ``b >= a``. The terms of one ``a``
    are made together (``cols`` a 2-D ``(k, n)`` array): the same operations on the same
    numbers, in a few calls instead of several per term.
    """
    n = len(sim)
    k = len(cols)
    if not isinstance(cols, np.ndarray) or cols.ndim != 2:
        cols = np.array(cols).reshape(k, n)
    h = np.zeros(n)
    # simulations of equal size in order: multiply by M's entries broadcast per simulation
    # (the same products as with the entries repeated row by row, without the repeats)
    size = _equal_sizes(n_s, n)
    buf = np.empty((k, n))
    for a in range(k):
        terms = buf[:k - a]
        np.multiply(cols[a], cols[a], out=terms[0])
        if a + 1 < k:
            np.multiply(cols[a + 1:], 2.0 * cols[a], out=terms[1:])
        if size is not None:
            blocks = terms.reshape(k - a, len(n_s), size)
            np.multiply(blocks, M[:, a, a:].T[:, :, None], out=blocks)
        else:
            np.multiply(terms, _per_row(M[:, a, a:], sim, n_s).T, out=terms)
        for t in terms:
            np.add(h, t, out=h)
    return h


def _hc_variance(st: StackedFit, se_type: str, fe: GroupIndex | None,
                 weights: np.ndarray | None, den: np.ndarray | None) -> np.ndarray:
    sims, cols, M = st.sims, st.cols, st.M
    sim = sims.codes
    omega = st.e ** 2
    if se_type in ("HC2", "HC3"):
        h = _leverages(cols, M, sim, st.rep)
        if fe is not None:
            # each row's share of its fixed-effect level: estimatr's appended dummies
            h += 1.0 / np.bincount(fe.codes, minlength=fe.n_groups)[fe.codes] \
                if weights is None else weights / den[fe.codes]
        with np.errstate(divide="ignore", invalid="ignore"):
            omega = omega / (1 - h) if se_type == "HC2" else omega / (1 - h) ** 2
        # leverage-one rows have e = 0 and 1 - h = 0 up to rounding; estimatr's 0/0
        # is NaN or a rounding-sized number, we use its own fallback value 0
        omega = np.where(np.isfinite(omega) & (1.0 - h > LEVERAGE_ONE), omega, 0.0)
    V = M @ outer_sums(sims, cols, omega) @ M
    if se_type == "HC1":
        V = V * (st.n_s / np.where(st.df_res > 0, st.df_res, np.nan))[:, None, None]
    return V


def _cluster_variance(st: StackedFit, se_type: str, clusters: GroupIndex,
                      weights: np.ndarray | None, fe: GroupIndex | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    S = st.sims.n_sims
    cl_sim = clusters.group_sim
    J = np.bincount(cl_sim, minlength=S).astype(float)
    k = len(st.cols)
    if st.XtE is None:
        st.XtE = column_sums(clusters, st.cols, st.e)
    if se_type in ("CR0", "stata"):
        V = st.M @ stack_sums(cl_sim, S, st.XtE[:, :, None] * st.XtE[:, None, :]) @ st.M
        if se_type == "stata":
            with np.errstate(divide="ignore", invalid="ignore"):
                fac = J * (st.n_s - 1) / ((J - 1) * st.df_res)
                V = V * fac[:, None, None]   # one cluster or no residual df: NaN/Inf as R
        return V, np.repeat((J - 1)[:, None], k, axis=1)
    if weights is not None:
        wt = weights / st.wm[st.sims.codes]
        return cr2_weighted_stacked(st.M, st.wm, st.raw, wt, st.e / st.sw, clusters, S)
    if st.A is None:
        st.A = outer_sums(clusters, st.cols)
    if fe is not None:
        return cr2_fixed_effect(st.M, st.A, st.XtE, st.cols, st.yf, st.beta, clusters, fe)
    return cr2_stacked(st.M, st.A, st.XtE, cl_sim, S)


#: Rows per block of simulations fitted together: the columns of a block stay in cache
#: through the dozens of passes the sufficient statistics and leverages make over them.
BLOCK_ROWS = 1 << 15


def lm_core(sims: GroupIndex, y: np.ndarray, X: np.ndarray, *,
            weights: np.ndarray | None = None, clusters: GroupIndex | None = None,
            se_type: str = "HC2", df_for: np.ndarray | None = None,
            intercept_col: int | None = None, fixed_effect: GroupIndex | None = None,
            X_resid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """OLS + sandwich variance for every simulation of a stacked design.

    Parameters
    ----------
    sims : GroupIndex
        One group per simulation (:func:`.grouped_sums.sim_index`): ``sims.codes`` is the
        simulation of each row.
    y, X : arrays (n,), (n, k)
        Outcome and design matrix (unweighted).
    weights : array (n,), optional
        Positive weights; normalised by their mean within each simulation.
    clusters : GroupIndex, optional
        The (simulation, cluster) groups of the rows.
    se_type : str
        A resolved estimatr ``se_type``.
    df_for : bool array (k,), optional
        Coefficients that need CR2 degrees of freedom (default all).
    intercept_col : int, optional
        Index of an all-ones column; lets the clustered path centre ``y`` per simulation
        (only the intercept moves) so cluster sums lose no digits to a large mean.
    fixed_effect : GroupIndex, optional
        The (simulation, level) groups of one fixed effect. ``X`` must then have no
        intercept; ``y`` and ``X`` are demeaned within levels (weighted), the absorbed
        rank is the number of levels, and HC2/HC3 leverages add each row's share
        ``w_i / sum(w)`` of its level, which is what estimatr's appended dummies
        contribute (the demeaned ``X`` is orthogonal to them). Unweighted CR2 needs
        every cluster within one level (:mod:`.fixed_effects`).
    X_resid : array (n, k), optional
        Two-stage least squares: ``X`` holds the first-stage fitted regressors and
        ``X_resid`` the original ones, from which the residuals are computed (no fixed
        effects; weighted CR2 not supported).

    Returns
    -------
    dict
        ``coef``, ``se``, ``df`` (n_sims, k), ``ok`` (n_sims,), false where the
        simulation must be fitted by the exact path instead, and ``n`` (rows per sim).

    Notes
    -----
    Without clusters, fixed effects or two stages, and with rows in simulation order,
    the simulations are fitted in blocks of about :data:`BLOCK_ROWS` rows: every number
    of a simulation comes from its own rows only (sums within the simulation, products
    row by row, its own ``k x k`` matrices), so a block gives each simulation the values
    the whole batch gives it, bit for bit, with the block's columns in cache.
    """
    spans = _blocks(sims) if clusters is None and fixed_effect is None and \
        X_resid is None else None
    if spans is None:
        return _lm_core(sims, y, X, weights=weights, clusters=clusters, se_type=se_type,
                        df_for=df_for, intercept_col=intercept_col,
                        fixed_effect=fixed_effect, X_resid=X_resid)
    parts = []
    for s0, s1, lo, hi in spans:
        block = GroupIndex(sims.codes[lo:hi] - s0, np.arange(s1 - s0, dtype=np.int64),
                           s1 - s0)
        parts.append(_lm_core(block, y[lo:hi], X[lo:hi], se_type=se_type, df_for=df_for,
                              weights=None if weights is None else weights[lo:hi],
                              intercept_col=intercept_col))
    return {key: None if parts[0][key] is None else np.concatenate([p[key] for p in parts])
            for key in parts[0]}


def _blocks(sims: GroupIndex) -> list[tuple[int, int, int, int]] | None:
    """Blocks ``(first sim, end sim, first row, end row)`` of about :data:`BLOCK_ROWS` rows.

    None (one fit of the whole batch) when a block would not see the sums the batch sees:
    rows not in simulation order, an empty simulation (the batch then sums with
    ``bincount``, not ``reduceat``), groups that are not the simulations, or one block.
    """
    S, n = sims.n_sims, sims.codes.size
    if n <= BLOCK_ROWS or sims.n_groups != S or sims.starts is None or \
            not np.array_equal(sims.group_sim, np.arange(S)):
        return None
    per_block = max(1, int(BLOCK_ROWS * S // n))
    edges = np.append(np.arange(0, S, per_block), S)
    rows = np.append(sims.starts, n)[edges]
    return [(int(a), int(b), int(lo), int(hi))
            for a, b, lo, hi in zip(edges[:-1], edges[1:], rows[:-1], rows[1:])]


def _lm_core(sims: GroupIndex, y: np.ndarray, X: np.ndarray, *,
             weights: np.ndarray | None = None, clusters: GroupIndex | None = None,
             se_type: str = "HC2", df_for: np.ndarray | None = None,
             intercept_col: int | None = None, fixed_effect: GroupIndex | None = None,
             X_resid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Fit every simulation of ``sims`` at once (:func:`lm_core` on one block)."""
    k = X.shape[1]
    clustered = se_type in _CLUSTER_SE
    st, den = _setup(sims, y, X, weights, fixed_effect)
    if clustered and weights is None and X_resid is None:
        _solve_by_clusters(st, clusters, intercept_col)
    else:
        _solve_by_rows(st, X_resid)
    if se_type == "classical":
        s2 = np.bincount(sims.codes, weights=st.e ** 2, minlength=sims.n_sims) / \
            np.where(st.df_res > 0, st.df_res, np.nan)
        V = s2[:, None, None] * st.M
        df = np.repeat(st.df_res[:, None], k, axis=1)
    elif not clustered:
        V = _hc_variance(st, se_type, fixed_effect, weights, den)
        df = np.repeat(st.df_res[:, None], k, axis=1)
    else:
        V, df = _cluster_variance(st, se_type, clusters, weights, fixed_effect)
        if se_type == "CR2" and df_for is not None:
            df = np.where(df_for[None, :], df, np.nan)
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.einsum("sii->si", V))
    n_clusters = np.bincount(clusters.group_sim, minlength=sims.n_sims) if clustered else None
    return {"coef": st.beta, "se": se, "df": df, "ok": st.ok, "n": st.n_s,
            "m_diag": np.einsum("sii->si", st.M), "df_res": st.df_res,
            "n_clusters": n_clusters, "vcov": V}


def model_statistics(sims: GroupIndex, y: np.ndarray, X: np.ndarray,
                     weights: np.ndarray | None, res: dict[str, np.ndarray], se_type: str,
                     has_intercept: bool) -> dict[str, np.ndarray]:
    """R squared, adjusted R squared and the model F test of every simulation (no FE).

    As the standalone fit reports them (:mod:`.ols`): ``1 - RSS / TSS`` (weighted, about
    the weighted mean with an intercept); the F statistic on the non-intercept terms,
    ``R^2 df / ((1 - R^2) numdf)`` for classical SEs, else the Wald ``b'V^{-1}b / numdf``
    with the robust ``V`` on ``J - 1`` (clusters) or ``n - k`` denominator df. ``res`` is
    what :func:`lm_core` returned; ``ok`` is false where ``V`` is not positive definite
    (the standalone fit then decides: NA).
    """
    S, k = res["coef"].shape
    sim = sims.codes
    hi = int(has_intercept)
    rep = res["n"] if _in_order(sim) else None        # lm_core's rows per simulation
    e = y - _fitted(list(np.ascontiguousarray(X.T)), res["coef"], sim, rep)
    wv = np.ones_like(y) if weights is None else weights
    n, df_res = res["n"].astype(float), res["df_res"]
    sw = sims.sum_by_sim(wv)
    if has_intercept:
        ybar = sims.sum_by_sim(wv * y) / np.where(sw > 0, sw, np.nan)
        tss = sims.sum_by_sim(wv * (y - ybar[sim]) ** 2)
    else:
        tss = sims.sum_by_sim(wv * y * y)
    with np.errstate(divide="ignore", invalid="ignore"):
        res_var = sims.sum_by_sim(wv * e * e) / np.where(df_res > 0, df_res, np.nan)
        r2 = np.where(tss > 0, 1.0 - df_res * res_var / tss, np.nan)
        adj = np.where(df_res > 0, 1.0 - (1.0 - r2) * ((n - hi) / df_res), np.nan)
    numdf = k - hi
    ok = np.ones(S, dtype=bool)
    stat = np.full(S, np.nan)
    p = np.full(S, np.nan)
    if numdf <= 0:
        return {"r_squared": r2, "adj_r_squared": adj, "statistic": stat, "p_value": p,
                "ok": ok}
    with np.errstate(divide="ignore", invalid="ignore"):
        if se_type == "classical":
            stat = r2 * df_res / ((1.0 - r2) * numdf)
        else:
            stat, ok = _wald_f(res["coef"][:, hi:], res["vcov"][:, hi:, hi:], numdf)
        dendf = res["n_clusters"] - 1.0 if se_type in _CLUSTER_SE else df_res
        p = stats.f.sf(stat, numdf, dendf)
    return {"r_squared": r2, "adj_r_squared": adj, "statistic": stat, "p_value": p, "ok": ok}


def _wald_f(b: np.ndarray, V: np.ndarray, numdf: int) -> tuple[np.ndarray, np.ndarray]:
    """``b'V^{-1}b / numdf`` per simulation; ``ok`` false where ``V`` is not clearly PD."""
    S, m = b.shape
    finite = np.isfinite(V).all(axis=(1, 2)) & np.isfinite(b).all(axis=1)
    Vs = np.where(finite[:, None, None], V, np.eye(m))
    lam = np.linalg.eigvalsh(Vs)
    ok = finite & (lam[:, 0] > 1e-10 * np.abs(lam[:, -1]))
    Vs[~ok] = np.eye(m)
    stat = np.einsum("sa,sa->s", b, np.linalg.solve(Vs, b[:, :, None])[:, :, 0]) / numdf
    return np.where(ok, stat, np.nan), ok


def identified(res: dict[str, np.ndarray], sims: GroupIndex, y: np.ndarray) -> np.ndarray:
    """Flag the simulations whose SEs are identified (the others go to the standalone fit).

    ``res`` is what :func:`lm_core` returned (or a closed form with the same keys);
    ``y`` the outcome of the rows used. The standalone fit then applies
    :func:`~.inference.unidentified` and warns, so both paths report the same NaNs.
    """
    def exact() -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(sims.sum_by_sim(y * y) / sims.count())

    y_rms = screen_scale(res["se"], res["m_diag"], y, exact)
    return ~screen_unidentified(res["se"], res["m_diag"], y_rms, df_residual=res["df_res"],
                                n_clusters=res.get("n_clusters"))

