"""``iv_robust``: two-stage least squares with robust standard errors (estimatr).

``"y ~ x + w | z + w"``: regressors left of ``|``, instruments right of it (exogenous
regressors must appear on both sides). The first stage projects every regressor on
the instruments, ``X_hat = Z (Z'Z)^{-1} Z'X`` (weighted when ``weights`` are given);
the second regresses ``y`` on ``X_hat``. The variance is ``lm_robust``'s sandwich with
``X_hat`` as the design and the *structural* residuals ``y - X b`` (not ``y - X_hat b``),
so every ``se_type`` (HC0-HC3, classical, CR0, CR2, stata), clusters, weights and
fixed effects carry over from ``lm_robust`` unchanged.

``diagnostics=True`` adds estimatr's tests: the first-stage (weak-instrument) F test of
the excluded instruments for each endogenous regressor, the regression-based
Wu-Hausman test (Wald test of the first-stage residuals added to the structural
equation) and, with more instruments than endogenous regressors and no weights, an
overidentification test (Sargan's ``n R^2`` with classical SEs, Wooldridge's robust
score test otherwise), each with the ``se_type`` of the fit.

The kernel solves the first stage per simulation from stacked ``Z'WZ`` and ``Z'WX`` (one
refinement step), then fits ``y`` on the fitted regressors with the structural residuals
(:func:`.stacked_ols.lm_core`); it declines fixed effects, ``se_type="none"``, rows
dropped differently by the two stages and the simulations the normal equations cannot
take.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import fail
from ..batch import Batch
from ..errors import DeclarationError, FitWarning
from ..formula import parse_formula
from .arguments import (
    bind_vectors,
    check_alpha,
    check_column_arg,
    check_finite_frame,
    check_numeric,
    check_se_type,
    data_columns,
    spec_keywords,
    subset_mask,
)
from .batch_frame import (
    columns_for,
    decline_all,
    simulations,
    subset_view,
    tidy_result,
    weights_and_clusters,
)
from .grouped_sums import column_sums, outer_sums
from .inference import rms
from .lm_robust import LMRobustFit, drop_intercept, make_fit, prepare
from .model_frame import formula_variables, model_frame
from .ols import demean, fit_arrays, pivoted_rank, wald_f
from .protocol import KernelResult, register_estimator
from .stacked_ols import identified, lm_core, solve_normal

__all__ = ["IvRobustSpec", "iv_robust", "iv_robust_kernel"]

_FUNC = "iv_robust"


@dataclass(frozen=True, eq=False)
class IvRobustSpec:
    """The validated arguments of :func:`iv_robust` (build with :meth:`parse`)."""

    formula: str
    weights: str | None = None
    subset: Any = None
    clusters: str | None = None
    fixed_effects: Any = None
    se_type: str | None = None
    ci: bool = True
    alpha: float = 0.05
    diagnostics: bool = False
    return_vcov: bool = True
    try_cholesky: bool = False

    @classmethod
    def parse(cls, formula: str, **kwargs: Any) -> IvRobustSpec:
        """Validate the arguments once (unknown keywords are a DeclarationError)."""
        kw = spec_keywords(_FUNC, cls, kwargs)
        kw["alpha"] = check_alpha(_FUNC, kw["alpha"])
        kw["se_type"] = check_se_type(_FUNC, kw["se_type"], kw["clusters"] is not None)
        split_instruments(formula)
        return cls(formula=formula, **kw)

    @property
    def outcome(self) -> str | None:
        """The formula's single outcome when it is a plain name."""
        return parse_formula(self.formula, func=_FUNC).outcome


def split_instruments(formula: Any) -> tuple[str, str]:
    """``(y ~ regressors, y ~ instruments)`` of ``y ~ regressors | instruments``."""
    rule = ("of the form 'y ~ x1 + x2 | z1 + x2' (regressors, then instruments after "
            "one '|')")
    if not isinstance(formula, str) or "~" not in formula or formula.count("|") != 1:
        fail(_FUNC, "formula", formula, rule)
    f = parse_formula(formula, func=_FUNC)
    if f.instruments is None or not f.rhs.strip() or not f.instruments.strip():
        fail(_FUNC, "formula", formula, rule)
    return f.fixed_formula, f.instrument_formula


def check_instrument_count(formula: str, xnames: list[str], znames: list[str]) -> None:
    """At least as many instrument columns as regressor columns (both paths)."""
    if len(znames) < len(xnames):
        fail(_FUNC, "formula", formula, f"given at least as many instrument columns as "
             f"regressor columns (regressors {xnames}; instruments {znames})")


def _project(Z: np.ndarray, A: np.ndarray, sw: np.ndarray | None) -> np.ndarray:
    """Fitted values of regressing the columns of ``A`` on ``Z`` (weighted), unweighted."""
    Zf = Z * sw[:, None] if sw is not None else Z
    Af = A * sw[:, None] if sw is not None else A
    kept = pivoted_rank(Zf)
    coef, *_ = np.linalg.lstsq(Zf[:, kept], Af, rcond=None)
    return Z[:, kept] @ coef


def fit_iv_robust(spec: IvRobustSpec, data: Any) -> LMRobustFit:
    """Return the standalone fit of a validated spec on one dataset."""
    f_x, f_z = split_instruments(spec.formula)
    _, zvars = formula_variables(f_z)
    p = prepare(_FUNC, f_x, data, weights=spec.weights, subset=spec.subset,
                clusters=spec.clusters, fixed_effects=spec.fixed_effects, extra_columns=zvars)
    mf = p.mf
    cols = data_columns(_FUNC, data)
    view = {k: np.asarray(v)[p.rows] for k, v in cols.items()}
    mz = model_frame(f_z, view, func=_FUNC)
    check_finite_frame(_FUNC, mf.outcome[0], mf.y, mz.X, list(mz.columns))
    X, xnames = mf.X, list(mf.columns)
    Z, znames = mz.X, list(mz.columns)
    check_instrument_count(spec.formula, xnames, znames)
    if mf.y.ndim != 1:
        raise DeclarationError(f"{_FUNC}(formula={spec.formula!r}): formula must have one "
                               "outcome.")
    fe = p.fe_codes or None
    w = p.weights
    sw = np.sqrt(w / w.mean()) if w is not None else None
    diagnostics = spec.diagnostics
    if fe:
        wd = w if w is not None else np.ones(len(mf.y))
        X, xnames = drop_intercept(X, xnames)
        Z, znames = drop_intercept(Z, znames)
        X = demean(X, fe, wd)
        Z = demean(Z, fe, wd)
        if diagnostics:
            warnings.warn("iv_robust: diagnostics are not computed with fixed_effects "
                          "(as estimatr).", FitWarning, stacklevel=3)
            diagnostics = False
    Xhat = _project(Z, X, sw)
    core = fit_arrays(mf.y, Xhat, weights=w, cluster=p.cluster, se_type=spec.se_type,
                      has_intercept=mf.has_intercept, fe_codes=fe, X_resid=X, func=_FUNC)
    extra: dict[str, Any] = {}
    if diagnostics and spec.se_type != "none":
        extra = _diagnostics(mf.y, X, xnames, Z, znames, Xhat, core, w, p.cluster,
                             spec.se_type, sw)
    return make_fit(LMRobustFit, xnames, core, mf.outcome[0], spec.se_type, spec.alpha,
                    spec.ci, spec.return_vcov, w is not None, y_rms=rms(mf.y), func=_FUNC,
                    **extra)


def _dendf(core) -> float:
    return float(core.nclusters - 1) if core.nclusters is not None else float(core.df_residual)


def _diagnostics(y, X, xnames, Z, znames, Xhat, core, w, cluster, se_type, sw
                 ) -> dict[str, Any]:
    instruments = [c for c in znames if c not in xnames]
    endog = [c for c in xnames if c not in znames]
    ei = [xnames.index(c) for c in endog]
    z_int = "(Intercept)" in znames
    x_int = "(Intercept)" in xnames
    kw = dict(weights=w, cluster=cluster, func="iv_robust")

    # weak instruments: first-stage F of the excluded instruments, per endogenous regressor
    first = {}
    values = []
    nomdf = dendf = np.nan
    for j in ei:
        f1 = fit_arrays(X[:, j], Z, se_type=se_type, has_intercept=z_int, **kw)
        if all(c in instruments for c in znames):
            nomdf = float(len(f1.kept))
            val = f1.fstatistic["value"] if f1.fstatistic else np.nan
        else:
            exo = [i for i, c in enumerate(znames) if c not in instruments]
            kept0 = pivoted_rank((Z[:, exo] * sw[:, None]) if sw is not None else Z[:, exo])
            idx = np.array([i for i, c in enumerate(znames) if c in instruments])
            nomdf = float(len(f1.kept) - len(kept0))
            val = wald_f(f1.coef[idx], f1.vcov, idx, nomdf)
        dendf = _dendf(f1)
        values.append(val)
    multi = len(endog) > 1
    for name, v in zip(endog, values, strict=True):
        first[f"{name}:value" if multi else "value"] = float(v)
    first["nomdf"] = nomdf
    first["dendf"] = dendf
    for name, v in zip(endog, values, strict=True):
        first[f"{name}:p_value" if multi else "p_value"] = float(
            stats.f.sf(v, nomdf, dendf))

    # Wu-Hausman: add the first-stage residuals of every regressor, test the kept ones
    resid = X - Xhat
    Xa = np.hstack([X, resid])
    names_a = xnames + [f"resid_{c}" for c in xnames]
    kept_no = pivoted_rank(X * sw[:, None] if sw is not None else X)
    fr = fit_arrays(y, Xa, se_type=se_type, has_intercept=x_int, **kw)
    kept_names = [names_a[i] for i in fr.kept]
    no_names = {xnames[i] for i in kept_no}
    ovar = np.array([i for i, c in enumerate(kept_names) if c not in no_names])
    wh_df = float(len(fr.kept) - len(kept_no))
    b_kept = fr.coef[fr.kept]
    wh = wald_f(b_kept[ovar], fr.vcov, ovar, wh_df) if len(ovar) else np.nan
    wh_dendf = _dendf(fr)
    endo = {"value": float(wh), "numdf": wh_df, "dendf": wh_dendf,
            "p_value": float(stats.f.sf(wh, wh_df, wh_dendf))}

    # overidentification
    m = len(instruments) - len(endog)
    if m and w is None:
        e = y - X[:, core.kept] @ core.coef[core.kept]
        if se_type == "classical":
            # estimatr asks for the intercept flag of a list, so this R^2 is uncentred
            kz = pivoted_rank(Z)
            fitted = Z[:, kz] @ np.linalg.lstsq(Z[:, kz], e, rcond=None)[0]
            rss = np.sum((e - fitted) ** 2)
            chisq = float((1 - rss / np.sum(e ** 2)) * len(y))
        else:
            exog = [i for i, c in enumerate(xnames) if c not in endog]
            R = np.hstack([X[:, exog], Xhat[:, ei]])
            Q = Z[:, [znames.index(c) for c in instruments[:m]]]
            K = (Q - _project(R, Q, None)) * e[:, None]
            kk = pivoted_rank(K)
            ones = np.ones(len(y))
            g = np.linalg.lstsq(K[:, kk], ones, rcond=None)[0]
            chisq = float(len(y) - np.sum(ones - K[:, kk] @ g))
        overid = {"value": chisq, "df": float(m), "p_value": float(stats.chi2.sf(chisq, m))}
    else:
        overid = {"value": np.nan, "df": 0.0, "p_value": np.nan}
    return {"diagnostic_first_stage_fstatistic": first, "diagnostic_endogeneity_test": endo,
            "diagnostic_overid_test": overid}


# ------------------------------------------------------------------ public entry
def iv_robust(formula: str, data: pd.DataFrame, weights: str | None = None,
              subset: Any = None, clusters: str | None = None, fixed_effects: Any = None,
              se_type: str | None = None, ci: bool = True, alpha: float = 0.05,
              diagnostics: bool = False, return_vcov: bool = True,
              try_cholesky: bool = False) -> LMRobustFit:
    """Two-stage least squares with robust or cluster-robust SEs (estimatr's ``iv_robust``).

    Parameters
    ----------
    formula : str
        ``"y ~ x + w | z + w"``: regressors, then instruments after ``|``.
    data : pandas.DataFrame
        The data; rows with a missing value in any used column are dropped.
    weights, subset, clusters, fixed_effects, se_type, ci, alpha, return_vcov,
    try_cholesky
        As in :func:`~declaredesign.estimate.lm_robust` (default ``se_type`` HC2, CR2
        with clusters).
    diagnostics : bool
        Add the weak-instrument, Wu-Hausman and overidentification tests (not with
        fixed effects, as estimatr).

    Returns
    -------
    LMRobustFit
        With ``diagnostic_first_stage_fstatistic``, ``diagnostic_endogeneity_test`` and
        ``diagnostic_overid_test`` dicts when ``diagnostics=True``.

    Raises
    ------
    DeclarationError
        Without ``|``, or with fewer instrument columns than regressor columns
        (estimatr only warns and then drops regressors).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> z = rng.normal(size=200); u = rng.normal(size=200)
    >>> x = z + u + rng.normal(size=200); y = 1 + 2 * x + u
    >>> fit = iv_robust("y ~ x | z", pd.DataFrame({"y": y, "x": x, "z": z}))
    >>> round(float(fit.coefficients["x"]), 1)
    2.0
    """
    data, vec = bind_vectors(_FUNC, data, weights=weights, clusters=clusters)
    weights, clusters = vec["weights"], vec["clusters"]
    spec = IvRobustSpec.parse(formula, weights=weights, subset=subset, clusters=clusters,
                              fixed_effects=fixed_effects, se_type=se_type, ci=ci, alpha=alpha,
                              diagnostics=diagnostics, return_vcov=return_vcov,
                              try_cholesky=try_cholesky)
    return fit_iv_robust(spec, data)


# ------------------------------------------------------------------------ batched
def _first_stage(sims, X: np.ndarray, Z: np.ndarray, sw: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Fitted regressors of every simulation's first stage (one refinement) and ``ok``."""
    S = sims.n_sims
    sim = sims.codes
    zc = [Z[:, j] * sw for j in range(Z.shape[1])]
    Mz, _, okz = solve_normal(outer_sums(sims, zc), np.zeros((S, Z.shape[1])), sims.count())
    ZX = np.stack([column_sums(sims, zc, X[:, j] * sw) for j in range(X.shape[1])], axis=2)
    Pi = Mz @ ZX                                              # (S, kz, kx)
    Xhat = np.einsum("nj,njk->nk", Z, Pi[sim])
    R1 = (X - Xhat) * sw[:, None]
    Pi = Pi + Mz @ np.stack([column_sums(sims, zc, R1[:, j]) for j in range(X.shape[1])],
                            axis=2)
    return np.einsum("nj,njk->nk", Z, Pi[sim]), okz


def iv_robust_kernel(batch: Batch, spec: IvRobustSpec) -> KernelResult:
    """Batched :func:`iv_robust` (tidy rows; no diagnostics).

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign.batch import Batch
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=60); x = z + rng.normal(size=60)
    >>> y = 1 + 2 * x + 0.01 * rng.normal(size=60)
    >>> b = Batch({"y": y, "x": x, "z": z}, sim=np.repeat([0, 1], 30), n_sims=2)
    >>> iv_robust_kernel(b, IvRobustSpec.parse("y ~ x | z")).tidy["estimate"].round(2).tolist()
    [1.0, 2.0, 1.0, 2.0]
    """
    cols = batch.columns
    clusters = check_column_arg(_FUNC, "clusters", spec.clusters, cols)
    weights = check_column_arg(_FUNC, "weights", spec.weights, cols)
    f_x, f_z = split_instruments(spec.formula)
    if spec.fixed_effects is not None or spec.se_type == "none":
        return decline_all(batch)
    _, zvars = formula_variables(f_z)
    lhs, xvars = formula_variables(f_x)
    sub = subset_mask(_FUNC, spec.subset, subset_view(batch, spec.subset), batch.n_rows)
    view = columns_for(batch, [*xvars, *zvars])
    sim = batch.sim
    if spec.subset is not None:
        view = {k_: v[sub] for k_, v in view.items()}
        sim = sim[sub]
    mf = model_frame(f_x, view, extra_columns=[c for c in (clusters, weights, *zvars) if c],
                     func=_FUNC, groups=sim)
    mz = model_frame(f_z, view, extra_columns=[c for c in (clusters, weights, *xvars) if c],
                     func=_FUNC, groups=sim)
    for name in lhs:
        check_numeric(_FUNC, "formula", name, np.asarray(view[name]))
    check_finite_frame(_FUNC, mf.outcome[0], mf.y, mf.X, list(mf.columns))
    check_finite_frame(_FUNC, mf.outcome[0], mf.y, mz.X, list(mz.columns))
    if not np.array_equal(mz.mask, mf.mask):
        return decline_all(batch)
    check_instrument_count(spec.formula, list(mf.columns), list(mz.columns))
    sim = sim if bool(mf.mask.all()) else sim[mf.mask]
    w, cl = weights_and_clusters(_FUNC, batch, view, mf, sim, weights, clusters)
    sims = simulations(batch, sim)
    if w is not None:
        wm = np.bincount(sim, weights=w, minlength=batch.n_sims) / np.maximum(sims.count(), 1)
        sw = np.sqrt(w / wm[sim])
    else:
        sw = np.ones(len(sim))
    Xhat, okz = _first_stage(sims, mf.X, mz.X, sw)
    icol = mf.columns.index("(Intercept)") if "(Intercept)" in mf.columns else None
    res = lm_core(sims, mf.y, Xhat, weights=w, clusters=cl, se_type=spec.se_type,
                  intercept_col=icol, X_resid=mf.X)
    ok = res["ok"] & okz & identified(res, sims, mf.y)
    return tidy_result(res, ok, list(mf.columns), spec.alpha, spec.ci, mf.outcome[0])


iv_robust = register_estimator(iv_robust, parse=IvRobustSpec.parse, fit=fit_iv_robust,
                               kernel=iv_robust_kernel)
