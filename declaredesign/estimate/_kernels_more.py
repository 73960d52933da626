"""Batched kernels for ``lm_lin``, ``iv_robust`` and ``horvitz_thompson``.

* ``lm_lin``: covariates are centred on per-simulation (weighted) means with
  ``np.bincount``, interacted with a 0/1 treatment, and the stacked design goes through
  :func:`._kernels.lm_core`. Multi-valued or factor treatments, models without an
  intercept and ``se_type="none"`` use the standalone function per simulation.
* ``iv_robust``: the first stage is solved per simulation from stacked ``Z'WZ`` and
  ``Z'WX`` (one refinement step), then :func:`._kernels.lm_core` fits ``y`` on the
  fitted regressors with the structural residuals. Fixed effects and ``se_type="none"``
  use the standalone function per simulation.
* ``horvitz_thompson``: designs learned from the arguments (simple or complete, with
  or without blocks and clusters, probabilities given or learned) and two-arm
  declarations whose blocks/clusters are column names reduce to sums per
  (simulation, block) because the joint probabilities take three values within a
  block; explicit ``condition_pr_mat`` (and declarations when rows are dropped for
  missing values) use the standalone function.

Simulations the closed forms cannot take (rank-deficient, probabilities varying where
a complete design needs them constant...) are fitted one by one with the standalone
function, as in :mod:`._kernels`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..batch import Batch
from .model_frame import _is_missing, formula_variables, model_frame
from ._kernels import (
    _assemble,
    _cluster_codes,
    _columns_for,
    _couter,
    _csum,
    _fallback,
    _solve_normal,
    _subset_view,
    lm_core,
)
from ._lm_robust import (
    check_alpha,
    check_column_arg,
    check_numeric,
    check_se_type,
    check_weights,
    subset_mask,
)

__all__ = ["lm_lin_kernel", "iv_robust_kernel", "horvitz_thompson_kernel"]


def _all_fallback(func, batch, formula, kwargs):
    return pd.concat(_fallback(func, batch, np.arange(batch.n_sims), formula, kwargs, None),
                     ignore_index=True)


def _frame(func: str, batch: Batch, formula: str, subset: Any, extra: list[str]):
    """Model frame of ``formula`` on the batch (subset applied) and the rows' sims."""
    lhs, rhs = formula_variables(formula)
    sub = subset_mask(func, subset, _subset_view(batch, subset), batch.n_rows)
    view = _columns_for(batch, rhs)
    sim = batch.sim
    if subset is not None:
        view = {k_: v[sub] for k_, v in view.items()}
        sim = sim[sub]
    mf = model_frame(formula, view, extra_columns=[c for c in extra if c], func=func)
    for name in lhs:
        check_numeric(func, "formula", name, np.asarray(view[name]))
    return mf, view, sim[mf.mask]


def _weights_clusters(func, batch, view, mf, sim, weights, clusters):
    w = None
    if weights is not None:
        check_numeric(func, "weights", weights, np.asarray(view[weights]))
        w = np.asarray(view[weights], dtype=float)[mf.mask]
        check_weights(func, weights, w)
    cl_codes = cl_sim = None
    if clusters is not None:
        cl_codes, cl_sim = _cluster_codes(sim, batch.n_sims,
                                          np.asarray(view[clusters])[mf.mask])
    return w, cl_codes, cl_sim


# ------------------------------------------------------------------------------ lm_lin
def _lm_lin_keywords(formula, data, **kwargs):
    from ._lm_lin import lm_lin
    return lm_lin(formula, data=data, **kwargs)


def lm_lin_kernel(batch: Batch, formula: str, covariates: str, weights: str | None = None,
                  subset: Any = None, clusters: str | None = None,
                  se_type: str | None = None, ci: bool = True, alpha: float = 0.05,
                  return_vcov: bool = True, try_cholesky: bool = False) -> pd.DataFrame:
    """Batched :func:`~declaredesign.estimate.lm_lin`: one tidy row per (simulation, term).

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign.batch import Batch
    >>> rng = np.random.default_rng(0)
    >>> b = Batch({"y": rng.normal(size=40), "z": np.tile([0.0, 1.0], 20),
    ...            "x": rng.normal(size=40)}, sim=np.repeat([0, 1], 20), n_sims=2)
    >>> lm_lin_kernel(b, "y ~ z", "~ x")["term"].tolist()[:4]
    ['(Intercept)', 'z', 'x_c', 'z:x_c']
    """
    from ._lm_lin import _covariate_rhs
    func = "lm_lin"
    cols = batch.columns
    alpha = check_alpha(func, alpha)
    clusters = check_column_arg(func, "clusters", clusters, cols)
    weights = check_column_arg(func, "weights", weights, cols)
    se = check_se_type(func, se_type, clusters is not None)
    kwargs = dict(covariates=covariates, weights=weights, subset=subset, clusters=clusters,
                  se_type=se_type, ci=ci, alpha=alpha)
    cov_rhs = _covariate_rhs(func, covariates)
    _, rhs = formula_variables(formula)
    if len(rhs) != 1 or se == "none":
        return _all_fallback(_lm_lin_keywords, batch, formula, kwargs)
    lhs_text, rhs_text = formula.split("~", 1)
    full = f"{lhs_text.strip()} ~ {rhs_text.strip()} + {cov_rhs}"
    mf, view, sim = _frame(func, batch, full, subset, [clusters, weights])
    lhs, _ = formula_variables(formula)
    mf_t = model_frame(formula, {v: np.asarray(view[v])[mf.mask] for v in [*lhs, *rhs]},
                       func=func)
    tnames = [c for c in mf_t.columns if c != "(Intercept)"]
    if not mf.has_intercept or len(tnames) != 1:
        return _all_fallback(_lm_lin_keywords, batch, formula, kwargs)
    T = mf_t.X[:, mf_t.columns.index(tnames[0])]
    if not np.all(np.isin(T, (0.0, 1.0))):
        return _all_fallback(_lm_lin_keywords, batch, formula, kwargs)
    cov_names = [c for c in mf.columns if c != "(Intercept)" and c not in mf_t.columns]
    w, cl_codes, cl_sim = _weights_clusters(func, batch, view, mf, sim, weights, clusters)
    S = batch.n_sims
    den = np.bincount(sim, weights=w, minlength=S)
    C = mf.X[:, [mf.columns.index(c) for c in cov_names]]
    with np.errstate(invalid="ignore", divide="ignore"):
        center = np.column_stack([np.bincount(sim, weights=c if w is None else c * w,
                                              minlength=S) for c in C.T]) / den[:, None]
    Cc = C - center[sim]
    import re
    c_names = [(f"({c})" if re.search(r":|^.+\(", c) else c) + "_c" for c in cov_names]
    X = np.column_stack([np.ones(len(T)), T, Cc, T[:, None] * Cc])
    names = ["(Intercept)", tnames[0], *c_names, *[f"{tnames[0]}:{c}" for c in c_names]]
    res = lm_core(sim, S, mf.y, X, weights=w, cl_codes=cl_codes, cl_sim=cl_sim,
                  se_type=se, intercept_col=0)
    ok = res["ok"]
    bad = np.flatnonzero(~ok)
    extra = _fallback(_lm_lin_keywords, batch, bad, formula, kwargs, None) if len(bad) else []
    return _assemble(np.flatnonzero(ok), names, res, alpha, ci, mf.outcome[0], extra)


# --------------------------------------------------------------------------- iv_robust
def iv_robust_kernel(batch: Batch, formula: str, weights: str | None = None,
                     subset: Any = None, clusters: str | None = None,
                     fixed_effects: Any = None, se_type: str | None = None, ci: bool = True,
                     alpha: float = 0.05, diagnostics: bool = False, return_vcov: bool = True,
                     try_cholesky: bool = False) -> pd.DataFrame:
    """Batched :func:`~declaredesign.estimate.iv_robust` (tidy rows; no diagnostics).

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign.batch import Batch
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=60); x = z + rng.normal(size=60); y = 1 + 2 * x
    >>> b = Batch({"y": y, "x": x, "z": z}, sim=np.repeat([0, 1], 30), n_sims=2)
    >>> iv_robust_kernel(b, "y ~ x | z")["estimate"].round(6).tolist()
    [1.0, 2.0, 1.0, 2.0]
    """
    from ._iv import _split_iv, iv_robust
    func = "iv_robust"
    cols = batch.columns
    alpha = check_alpha(func, alpha)
    clusters = check_column_arg(func, "clusters", clusters, cols)
    weights = check_column_arg(func, "weights", weights, cols)
    se = check_se_type(func, se_type, clusters is not None)
    f_x, f_z = _split_iv(func, formula)
    kwargs = dict(weights=weights, subset=subset, clusters=clusters,
                  fixed_effects=fixed_effects, se_type=se_type, ci=ci, alpha=alpha)
    if fixed_effects is not None or se == "none":
        return _all_fallback(iv_robust, batch, formula, kwargs)
    _, zvars = formula_variables(f_z)
    _, xvars = formula_variables(f_x)
    lhs, _ = formula_variables(f_x)
    sub = subset_mask(func, subset, _subset_view(batch, subset), batch.n_rows)
    view = _columns_for(batch, [*xvars, *zvars])
    sim = batch.sim
    if subset is not None:
        view = {k_: v[sub] for k_, v in view.items()}
        sim = sim[sub]
    mf = model_frame(f_x, view, extra_columns=[c for c in (clusters, weights, *zvars) if c],
                     func=func)
    mz = model_frame(f_z, view, extra_columns=[c for c in (clusters, weights, *xvars) if c],
                     func=func)
    for name in lhs:
        check_numeric(func, "formula", name, np.asarray(view[name]))
    if not np.array_equal(mz.mask, mf.mask):
        return _all_fallback(iv_robust, batch, formula, kwargs)
    sim = sim[mf.mask]
    X, Z = mf.X, mz.X
    if Z.shape[1] < X.shape[1]:
        iv_robust(formula, batch.select_sims([0]).to_pandas(), **kwargs)   # raises
    w, cl_codes, cl_sim = _weights_clusters(func, batch, view, mf, sim, weights, clusters)
    S = batch.n_sims
    n_s = np.bincount(sim, minlength=S)
    if w is not None:
        wm = np.bincount(sim, weights=w, minlength=S) / np.maximum(n_s, 1)
        sw = np.sqrt(w / wm[sim])
    else:
        sw = np.ones(len(sim))
    zc = [Z[:, j] * sw for j in range(Z.shape[1])]
    Mz, _, okz = _solve_normal(_couter(sim, S, zc), np.zeros((S, Z.shape[1])), n_s)
    ZX = np.stack([_csum(sim, S, zc, X[:, j] * sw) for j in range(X.shape[1])], axis=2)
    Pi = Mz @ ZX                                              # (S, kz, kx)
    Xhat = np.einsum("nj,njk->nk", Z, Pi[sim])
    R1 = (X - Xhat) * sw[:, None]
    Pi = Pi + Mz @ np.stack([_csum(sim, S, zc, R1[:, j]) for j in range(X.shape[1])], axis=2)
    Xhat = np.einsum("nj,njk->nk", Z, Pi[sim])
    icol = mf.columns.index("(Intercept)") if "(Intercept)" in mf.columns else None
    res = lm_core(sim, S, mf.y, Xhat, weights=w, cl_codes=cl_codes, cl_sim=cl_sim,
                  se_type=se, intercept_col=icol, X_resid=X)
    ok = res["ok"] & okz
    bad = np.flatnonzero(~ok)
    extra = _fallback(iv_robust, batch, bad, formula, kwargs, None) if len(bad) else []
    return _assemble(np.flatnonzero(ok), list(mf.columns), res, alpha, ci, mf.outcome[0],
                     extra)


# -------------------------------------------------------------------- horvitz_thompson
def _var_partial_sums(p_ij, pi, pj, s1, s2, m):
    """``sum_{i != j} y_i y_j (p_ij - pi pj) / p_ij`` for constant probabilities.

    ``s1 = sum y``, ``s2 = sum y^2`` over ``m`` values; pairs with ``p_ij = 0`` use
    estimatr's ``y_i^2 pi / 2 + y_j^2 pj / 2`` addition instead of dividing.
    """
    cross = s1 ** 2 - s2
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(p_ij == 0, -pi * pj * cross + pi * (m - 1) * s2,
                     cross * (p_ij - pi * pj) / p_ij)
    return np.where(m > 1, v, 0.0)


def horvitz_thompson_kernel(batch: Batch, formula: str, blocks: str | None = None,
                            clusters: str | None = None, simple: bool | None = None,
                            condition_prs: Any = None, condition_pr_mat: Any = None,
                            ra_declaration: Any = None, subset: Any = None,
                            condition1: Any = None, condition2: Any = None,
                            se_type: str = "youngs", ci: bool = True, alpha: float = 0.05,
                            return_condition_pr_mat: bool = False) -> pd.DataFrame:
    """Batched :func:`~declaredesign.estimate.horvitz_thompson`.

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign.batch import Batch
    >>> b = Batch({"y": np.arange(8.0), "z": np.tile([0, 1], 4), "p": np.full(8, 0.5)},
    ...           sim=np.repeat([0, 1], 4), n_sims=2)
    >>> horvitz_thompson_kernel(b, "y ~ z", condition_prs="p")["estimate"].tolist()
    [1.0, 1.0]
    """
    from ._dim import parse_conditions
    from ._ht import horvitz_thompson
    func = "horvitz_thompson"
    kwargs = dict(blocks=blocks, clusters=clusters, simple=simple,
                  condition_prs=condition_prs, condition_pr_mat=condition_pr_mat,
                  ra_declaration=ra_declaration, subset=subset, condition1=condition1,
                  condition2=condition2, se_type=se_type, ci=ci, alpha=alpha)
    cols = batch.columns
    S = batch.n_sims
    lhs, rhs = formula_variables(formula) if isinstance(formula, str) and "~" in formula \
        else ([], [])
    simple_ = True if simple is None else simple
    decl_p = None
    if ra_declaration is not None:
        # a declaration naming batch columns is the same design as its blocks, clusters
        # and probabilities given as arguments (when no row is dropped, checked below)
        decl_p, blocks, clusters, simple_ = _declaration_design(batch, ra_declaration, blocks,
                                                                clusters, condition_prs,
                                                                condition_pr_mat)
        if decl_p is None:
            return _all_fallback(horvitz_thompson, batch, formula, kwargs)
    exotic = (condition_pr_mat is not None
              or len(lhs) != 1 or len(rhs) != 1 or not isinstance(simple_, bool)
              or se_type not in ("youngs", "constant", "none")
              or (se_type == "constant" and (blocks is not None or clusters is not None
                                             or not simple_))
              or not (condition_prs is None or isinstance(condition_prs, str)))
    if exotic:
        return _all_fallback(horvitz_thompson, batch, formula, kwargs)
    alpha = check_alpha(func, alpha)
    outcome, treat = lhs[0], rhs[0]
    for v in (outcome, treat):
        if v not in cols:
            return _all_fallback(horvitz_thompson, batch, formula, kwargs)
    blocks = check_column_arg(func, "blocks", blocks, cols)
    clusters = check_column_arg(func, "clusters", clusters, cols)
    condition_prs = check_column_arg(func, "condition_prs", condition_prs, cols)
    # blocks and clusters only need codes: level IDs stay integers (no R strings)
    view = _columns_for(batch, [treat])
    rows = subset_mask(func, subset, _subset_view(batch, subset), batch.n_rows)
    for v in (outcome, treat, blocks, clusters, condition_prs):
        if v is not None:
            rows &= ~_is_missing(np.asarray(view[v]))
    check_numeric(func, "formula", outcome, np.asarray(cols[outcome]))
    if decl_p is not None and not rows.all():
        return _all_fallback(horvitz_thompson, batch, formula, kwargs)
    t = np.asarray(view[treat])[rows]
    c1, c2 = parse_conditions(func, t, condition1, condition2)
    if decl_p is not None:
        conds = list(ra_declaration.conditions_)
        if c2 not in conds or c1 not in conds:
            return _all_fallback(horvitz_thompson, batch, formula, kwargs)
        p_rows = decl_p[:, next(i for i, c in enumerate(conds) if c == c2)]
    keep = (t == c1) | (t == c2)
    rows[np.flatnonzero(rows)[~keep]] = False
    sim = batch.sim[rows]
    y = np.asarray(cols[outcome], dtype=float)[rows]
    t2 = np.asarray(view[treat])[rows] == c2
    p = np.asarray(cols[condition_prs], dtype=float)[rows] if condition_prs else None
    if decl_p is not None:
        p = p_rows[rows]
    if p is not None and np.any((p <= 0) | (p > 1)):
        horvitz_thompson(formula, batch.select_sims([0]).to_pandas(), **kwargs)   # raises
    # units: clusters (outcomes summed) or rows; groups: (sim, block) or sim
    if clusters is not None:
        u_codes, u_sim = _cluster_codes(sim, S, np.asarray(view[clusters])[rows])
    else:
        u_codes, u_sim = np.arange(len(y)), sim
    U = len(u_sim)
    first = np.full(U, -1)
    first[u_codes[::-1]] = np.arange(len(y))[::-1]
    n_u = np.bincount(u_codes, minlength=U)
    mixed = np.bincount(u_codes, weights=t2, minlength=U)
    bad_sim = np.zeros(S, dtype=bool)
    mix = (mixed > 0) & (mixed < n_u)
    bad_sim[u_sim[mix]] = True
    ut2 = t2[first]
    ytot = np.bincount(u_codes, weights=y, minlength=U)
    rows_per_u = n_u.astype(float)
    if blocks is not None:
        g_codes, g_sim = _cluster_codes(sim, S, np.asarray(view[blocks])[rows])
        ug = g_codes[first]
        # clusters must sit in one block
        span = np.zeros(U, dtype=bool)
        span[u_codes[g_codes != ug[u_codes]]] = True
        bad_sim[u_sim[span]] = True
    else:
        ug, g_sim = u_sim, np.arange(S)
    G = len(g_sim)
    if p is None:
        k_g = np.bincount(ug, minlength=G)
        frac = np.bincount(ug, weights=ut2, minlength=G) / np.maximum(k_g, 1)
        up = frac[ug]
    else:
        up = p[first]
        if np.any(p != up[u_codes]):
            bad_sim[np.unique(sim[p != up[u_codes]])] = True
    complete = blocks is not None or not simple_
    if complete:
        varies = np.zeros(G, dtype=bool)
        gfirst = np.full(G, -1)
        gfirst[ug[::-1]] = np.arange(U)[::-1]
        varies[ug[up != up[gfirst[ug]]]] = True
        bad_sim[g_sim[varies]] = True
    Y = np.where(ut2, ytot / up, ytot / (1 - up))
    N_g = np.bincount(ug, weights=rows_per_u, minlength=G)
    s2_1 = np.bincount(ug, weights=np.where(ut2, Y, 0.0), minlength=G)
    s1_1 = np.bincount(ug, weights=np.where(ut2, 0.0, Y), minlength=G)
    with np.errstate(divide="ignore", invalid="ignore"):
        est_g = (s2_1 - s1_1) / N_g
    var_g = np.full(G, np.nan)
    if se_type != "none":
        sq2 = np.bincount(ug, weights=np.where(ut2, Y ** 2, 0.0), minlength=G)
        sq1 = np.bincount(ug, weights=np.where(ut2, 0.0, Y ** 2), minlength=G)
        if se_type == "constant":
            d = est_g[ug]
            pp = up
            y0 = np.where(~ut2, ytot / (1 - pp), (ytot - d) / (1 - pp))
            y1 = np.where(ut2, ytot / pp, (ytot + d) / pp)
            cross = np.where(ut2, ytot * (ytot - d), (ytot + d) * ytot)
            v = np.bincount(ug, weights=(1 - pp) * pp * y1 ** 2 + pp * (1 - pp) * y0 ** 2
                            + 2 * cross, minlength=G)
        elif not complete:
            v = sq2 + sq1
        else:
            from ._ht import _joint_complete
            k_g = np.bincount(ug, minlength=G).astype(float)
            gfirst = np.full(G, -1)
            gfirst[ug[::-1]] = np.arange(U)[::-1]
            pg = up[gfirst]
            j = _joint_complete(pg, k_g)
            m2 = np.bincount(ug, weights=ut2, minlength=G)
            m1 = k_g - m2
            v = (sq2 + sq1 + _var_partial_sums(j["11"], pg, pg, s2_1, sq2, m2)
                 + _var_partial_sums(j["00"], 1 - pg, 1 - pg, s1_1, sq1, m1))
            with np.errstate(divide="ignore", invalid="ignore"):
                cov = np.where(j["10"] == 0, s2_1 * s1_1 * (j["10"] - pg * (1 - pg)),
                               s2_1 * s1_1 * (j["10"] - pg * (1 - pg)) / j["10"])
            cov = np.where((m2 > 0) & (m1 > 0), cov, 0.0)
            v = v - 2 * cov
            # a negative or NaN variance is NA in estimatr (with a warning): exact path
            bad_sim[g_sim[np.isnan(v) | (v < 0)]] = True
        with np.errstate(invalid="ignore"):
            var_g = v / N_g ** 2
    N = np.bincount(g_sim, weights=N_g, minlength=S)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.bincount(g_sim, weights=est_g * N_g, minlength=S) / N
        se = np.sqrt(np.bincount(g_sim, weights=var_g * (N_g / N[g_sim]) ** 2, minlength=S))
    if se_type == "none":
        se = np.full(S, np.nan)
    has = np.bincount(sim, minlength=S) > 0
    two = np.bincount(sim, weights=t2, minlength=S)
    ok = has & ~bad_sim & (two > 0) & (two < np.bincount(sim, minlength=S))
    sims = np.flatnonzero(ok)
    add_label = not (c2 == 1 and c1 == 0)
    term = f"{treat}{c2}" if add_label else treat
    e_, s_ = est[sims], se[sims]
    if ci:
        from scipy import stats
        with np.errstate(divide="ignore", invalid="ignore"):
            zs = e_ / s_
        pv = 2 * stats.norm.sf(np.abs(zs))
        crit = stats.norm.ppf(1 - alpha / 2) * s_
        lo, hi = e_ - crit, e_ + crit
    else:
        zs = pv = lo = hi = np.full(len(sims), np.nan)
    main = pd.DataFrame({"sim": sims, "term": term, "estimate": e_, "std_error": s_,
                         "statistic": zs, "p_value": pv, "conf_low": lo, "conf_high": hi,
                         "df": np.nan, "outcome": outcome})
    badi = np.flatnonzero(~ok)
    if not len(badi):
        return main
    out = pd.concat([main, *_fallback(horvitz_thompson, batch, badi, formula, kwargs, None)],
                    ignore_index=True)
    return out.iloc[np.argsort(out["sim"].to_numpy(), kind="stable")].reset_index(drop=True)


def _declaration_design(batch: Batch, decl: Any, blocks: Any, clusters: Any,
                        condition_prs: Any, condition_pr_mat: Any):
    """Row probabilities, blocks, clusters and simplicity of a declaration, or Nones."""
    from ..assign import RADeclaration
    none = (None, blocks, clusters, True)
    if not isinstance(decl, RADeclaration) or decl.num_arms_ != 2 or any(
            v is not None for v in (blocks, clusters, condition_prs, condition_pr_mat)):
        return none          # the standalone function raises estimatr's error
    if not all(v is None or isinstance(v, str) for v in (decl.blocks, decl.clusters)):
        return none
    try:
        probs = decl.plan(batch).row_prob_matrix()
    except Exception:  # noqa: BLE001 -- the standalone path reports it per simulation
        return none
    kind = decl.ra_type
    simple_ = kind == "simple" or (kind == "clustered" and bool(decl.simple))
    return probs, decl.blocks, decl.clusters, simple_
