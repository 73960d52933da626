"""Batched ``lmer``: every simulation of a batch in one pass.

Fast paths (numeric fixed part): one random intercept ``(1 | g)`` through the
closed-form sufficient statistics of :mod:`._fast` (Satterthwaite or
Kenward-Roger df), and nested intercepts ``(1 | a/b)`` through
:mod:`._fast_nested` (Satterthwaite). Any other formula, and any simulation a
fast path cannot take (rank-deficient fixed effects, a single group), is fitted
one simulation at a time by the general algorithm. A simulation whose fit fails
gives rows of NaN with the reason in ``error``; a singular fit keeps its numbers
and says so in ``warning``; never an exception.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ...batch import Batch, group_codes
from .._protocol import TIDY_COLUMNS, empty_tidy
from ._fast import ri_fit, ri_kenward_roger, ri_stats
from ._fast_nested import NestedStats, nested_fit
from ._formula import fixed_matrix, parse_lmer_formula

__all__ = ["lmer_kernel"]

_SINGULAR_MSG = "boundary (singular) fit: see help('isSingular')"


def _fast_kind(f, batch: Batch, needed: list[str]):
    """("single", g) for one random intercept, ("nested", outer, inner) for
    ``(1 | a/b)`` (or ``(1 | a) + (1 | a:b)``), None otherwise."""
    if any(b.expr.strip() != "1" for b in f.bars):
        return None
    groups = [b.group for b in f.bars]
    gcols = {c for g in groups for c in g}
    if not all(batch[c].dtype.kind in "biuf" for c in needed if c not in gcols):
        return None
    if len(groups) == 1 and len(groups[0]) == 1:
        return ("single", groups[0][0])
    if len(groups) == 2:
        one = [g for g in groups if len(g) == 1]
        two = [g for g in groups if len(g) == 2]
        if len(one) == 1 and len(two) == 1 and one[0][0] in two[0]:
            outer = one[0][0]
            inner = [c for c in two[0] if c != outer]
            if len(inner) == 1:
                return ("nested", outer, inner[0])
    return None


def lmer_kernel(batch: Batch, formula: str, *, REML: bool = True, ddf: str = "Satterthwaite",
                conf_level: float = 0.95) -> pd.DataFrame:
    """Fixed-effect rows of ``lmer(formula)`` for every simulation of ``batch``.

    Returns a frame with ``sim`` and the tidy columns, plus ``error`` and
    ``warning`` (None when the fit is clean).
    """
    from .lmer import _check_common, _needed_columns

    _check_common("lmer", formula, REML, ddf, conf_level)
    f = parse_lmer_formula(formula)
    needed = _needed_columns(f, batch.names)
    if batch.n_sims == 0:
        return empty_tidy(with_messages=True)
    kind = _fast_kind(f, batch, needed)
    if ddf == "Kenward-Roger" and (kind is None or kind[0] != "single" or not REML):
        kind = None
    if kind is not None:
        return _fast_path(batch, f, needed, kind, formula, REML, ddf, conf_level)
    return _general_path(batch, formula, range(batch.n_sims), REML, ddf, conf_level)


def complete_rows(batch, needed) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The needed columns on rows without missing values (R's na.omit), the kept-row
    mask and the kept rows' simulation index."""
    cols = {c: batch[c] for c in needed}
    ok = np.ones(batch.n_rows, dtype=bool)
    for v in cols.values():
        if v.dtype.kind not in "biu":
            ok &= ~pd.isna(v)
    if not ok.all():
        cols = {c: v[ok] for c, v in cols.items()}
    return cols, ok, batch.sim[ok]


def _fast_path(batch, f, needed, kind, formula, REML, ddf, conf_level) -> pd.DataFrame:
    cols, ok, sim = complete_rows(batch, needed)
    # model_frame stacks plain numeric columns without formulaic's materialiser.
    y, X, names = fixed_matrix(f, cols)
    S, p = batch.n_sims, X.shape[1]
    if kind[0] == "single":
        gcode, gsim = _group_codes(sim, cols[kind[1]], batch.n_sims)
        st = ri_stats(X, y, gcode, gsim, S)
    else:
        acode, asim = _group_codes(sim, cols[kind[1]], batch.n_sims)
        gcode, gsim = group_codes(sim, acode, cols[kind[2]])
        b_outer = np.zeros(gsim.size, dtype=np.int64)
        b_outer[gcode] = acode
        st = ri_stats(X, y, gcode, gsim, S)
        ns = NestedStats(st, b_outer, asim)
    # Simulations the fast path cannot fit: rank-deficient X, fewer than two
    # groups, or as many groups as rows (lme4 refuses those).
    xtx = st.XtX
    scale = np.maximum(np.max(np.abs(np.diagonal(xtx, axis1=1, axis2=2)), axis=1), 1e-300)
    ev = np.linalg.eigvalsh(xtx / scale[:, None, None]) if p else np.ones((S, 1))
    good = (ev[:, 0] > 1e-10) & (st.ngrps >= 2) & (st.ngrps < st.nobs) & (st.nobs > p)
    if kind[0] == "nested":
        good &= (ns.nouter >= 2)
        if good.any() and not good.all():
            # the class sums span all sims: refit the good ones as a sub-batch
            keep = np.flatnonzero(good)
            sub = _fast_path(batch.select_sims(keep), f, needed, kind, formula, REML, ddf,
                             conf_level)
            sub["sim"] = keep[sub["sim"].to_numpy()]
            rest = _general_path(batch, formula, np.flatnonzero(~good), REML, ddf, conf_level)
            return pd.concat([sub, rest], ignore_index=True).sort_values(
                "sim", kind="stable").reset_index(drop=True)
    out = []
    if good.any():
        keep = np.flatnonzero(good)
        if kind[0] == "single":
            sub = _subset(st, keep)
            res = ri_fit(sub, REML)
            if ddf == "Kenward-Roger":
                res["vcov"], res["df"] = ri_kenward_roger(sub, res)
        else:
            res = nested_fit(ns, REML)
        out.append(_rows(keep, names, res, f.response, ddf, conf_level, REML))
    bad = np.flatnonzero(~good)
    if bad.size:
        out.append(_general_path(batch, formula, bad, REML, ddf, conf_level))
    df = pd.concat(out, ignore_index=True) if len(out) > 1 else out[0]
    if len(out) > 1:
        df = df.sort_values("sim", kind="stable").reset_index(drop=True)
    return df


def _group_codes(sim, key, n_sims):
    """Dense (sim, key) codes; a lookup table instead of a sort for integer keys."""
    if key.dtype.kind in "iu" and key.size:
        lo, hi = int(key.min()), int(key.max())
        stride = hi - lo + 1
        if n_sims * stride <= 5e7:
            comb = sim * stride + (key - lo)
            present = np.zeros(n_sims * stride, dtype=bool)
            present[comb] = True
            idx = np.flatnonzero(present)
            lut = np.cumsum(present) - 1
            return lut[comb], idx // stride
    return group_codes(sim, key)


def _subset(st, keep):
    from ._fast import RIStats

    pos = np.full(st.n_sims, -1)
    pos[keep] = np.arange(keep.size)
    m = pos[st.cls_sim] >= 0
    return RIStats(st.W[keep], st.Cn[m], pos[st.cls_sim[m]], st.cls_n[m], st.cls_count[m],
                   st.nobs[keep], st.ngrps[keep], st.p, st.b0[keep], st.XtX[keep])


def _rows(sims, names, res, response, ddf, conf_level, REML) -> pd.DataFrame:
    S, p = res["beta"].shape
    est = res["beta"]
    se = np.sqrt(np.diagonal(res["vcov"], axis1=1, axis2=2))
    n = res["nobs"].astype(float)[:, None]
    if ddf in ("Satterthwaite", "Kenward-Roger"):
        df = res["df"]
    elif ddf == "residual":
        df = np.broadcast_to(n - p, (S, p))
    else:
        df = np.full((S, p), np.inf if ddf == "asymptotic" else np.nan)
    with np.errstate(all="ignore"):
        stat = est / se
        q = 1 - (1 - conf_level) / 2
        if ddf in ("asymptotic", "lme4"):
            crit = stats.norm.ppf(q)
            pv = 2 * stats.norm.sf(np.abs(stat)) if ddf == "asymptotic" else \
                np.full_like(est, np.nan)
        else:
            crit = stats.t.ppf(q, df)
            pv = 2 * stats.t.sf(np.abs(stat), df)
    th = res["theta"] if res["theta"].ndim == 2 else res["theta"][:, None]
    singular = np.any(th < 1e-4, axis=1)
    warn = np.where(singular, _SINGULAR_MSG, None)
    return pd.DataFrame({
        "sim": np.repeat(sims, p),
        "term": np.tile(np.asarray(names, dtype=object), S),
        "estimate": est.ravel(), "std_error": se.ravel(), "statistic": stat.ravel(),
        "p_value": pv.ravel(), "conf_low": (est - crit * se).ravel(),
        "conf_high": (est + crit * se).ravel(), "df": np.asarray(df, dtype=float).ravel(),
        "outcome": response, "error": None, "warning": np.repeat(warn, p),
    })


def _general_path(batch, formula, sims, REML, ddf, conf_level) -> pd.DataFrame:
    from .lmer import lmer

    return fit_each(batch, formula, sims, conf_level,
                    lambda d: lmer(formula, d, REML=REML, ddf=ddf))


def fit_each(batch, formula, sims, conf_level, fit_one) -> pd.DataFrame:
    """The general path: fit the listed simulations one at a time with ``fit_one(df)``.

    Fixed-effect rows in the kernels' layout; a simulation that fails is one NaN row
    with the reason in ``error``, and fit messages (singular, convergence) go to
    ``warning``.
    """
    import warnings

    frames = []
    for s in sims:
        d = batch.select_sims([s]).to_pandas()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = fit_one(d)
            t = fit.tidy(effects=("fixed",), conf_level=conf_level)
            t = t.drop(columns=["effect", "group"])
            if fit.dropped:
                # Keep one row per term across simulations: dropped (aliased)
                # coefficients appear as NaN, as lm_robust reports them.
                t = pd.concat([t, pd.DataFrame({"term": fit.dropped,
                                                "outcome": fit.response})],
                              ignore_index=True)
            t.insert(0, "sim", s)
            t["error"] = None
            t["warning"] = "; ".join(fit.messages) or None
        except Exception as e:  # one failed simulation must not stop the run
            t = pd.DataFrame({"sim": [s], "term": [None],
                              "outcome": [formula.split("~")[0].strip()],
                              "error": [f"{type(e).__name__}: {e}"], "warning": [None]})
        frames.append(t)
    out = pd.concat(frames, ignore_index=True) if frames else empty_tidy(with_messages=True)
    for c in TIDY_COLUMNS:
        if c not in out:
            out[c] = np.nan
    return out[["sim", *TIDY_COLUMNS, "error", "warning"]]
