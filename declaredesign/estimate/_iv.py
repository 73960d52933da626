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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import fail
from ..errors import DeclarationError
from .model_frame import formula_variables, model_frame
from ._linalg import pivoted_rank
from ._lm_robust import (
    LMRobustFit,
    fit_arrays,
    make_fit,
    prepare,
    wald_f,
)
from ._protocol import batched

__all__ = ["iv_robust"]


def _split_iv(func: str, formula: Any) -> tuple[str, str]:
    if not isinstance(formula, str) or "~" not in formula or formula.count("|") != 1:
        fail(func, "formula", formula, "of the form 'y ~ x1 + x2 | z1 + x2' (regressors, "
             "then instruments after one '|')")
    lhs, rhs = formula.split("~", 1)
    reg, inst = rhs.split("|")
    if not reg.strip() or not inst.strip():
        fail(func, "formula", formula, "of the form 'y ~ x1 + x2 | z1 + x2' (regressors, "
             "then instruments after one '|')")
    return f"{lhs.strip()} ~ {reg.strip()}", f"{lhs.strip()} ~ {inst.strip()}"


def _project(Z: np.ndarray, A: np.ndarray, sw: np.ndarray | None) -> np.ndarray:
    """Fitted values of regressing the columns of ``A`` on ``Z`` (weighted), unweighted."""
    Zf = Z * sw[:, None] if sw is not None else Z
    Af = A * sw[:, None] if sw is not None else A
    kept = pivoted_rank(Zf)
    coef, *_ = np.linalg.lstsq(Zf[:, kept], Af, rcond=None)
    return Z[:, kept] @ coef


def _iv_robust_batched(batch, formula, **kwargs):
    from ._kernels_more import iv_robust_kernel
    return iv_robust_kernel(batch, formula, **kwargs)


@batched(_iv_robust_batched)
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
    func = "iv_robust"
    f_x, f_z = _split_iv(func, formula)
    _, zvars = formula_variables(f_z)
    p = prepare(func, f_x, data, weights=weights, subset=subset, clusters=clusters,
                fixed_effects=fixed_effects, se_type=se_type, alpha=alpha,
                extra_columns=zvars)
    mf = p.mf
    cols = {str(c): data[c].to_numpy() for c in data.columns} \
        if isinstance(data, pd.DataFrame) else data
    view = {k: np.asarray(v)[p.rows] for k, v in cols.items()}
    mz = model_frame(f_z, view, func=func)
    X, xnames = mf.X, list(mf.columns)
    Z, znames = mz.X, list(mz.columns)
    if Z.shape[1] < X.shape[1]:
        fail(func, "formula", formula, f"given at least as many instrument columns as "
             f"regressor columns (regressors {xnames}; instruments {znames})")
    if mf.y.ndim != 1:
        raise DeclarationError(f"{func}(formula={formula!r}): formula must have one outcome.")
    has_int = mf.has_intercept
    fe = p.fe_codes or None
    w = p.weights
    sw = np.sqrt(w / w.mean()) if w is not None else None
    if fe:
        from ._lm_robust import demean
        wd = w if w is not None else np.ones(len(mf.y))
        if has_int:
            i = xnames.index("(Intercept)")
            X = np.delete(X, i, axis=1)
            xnames.pop(i)
        if "(Intercept)" in znames:
            i = znames.index("(Intercept)")
            Z = np.delete(Z, i, axis=1)
            znames.pop(i)
        X = demean(X, fe, wd)
        Z = demean(Z, fe, wd)
        if diagnostics:
            import warnings

            from ..errors import FitWarning
            warnings.warn("iv_robust: diagnostics are not computed with fixed_effects "
                          "(as estimatr).", FitWarning, stacklevel=2)
            diagnostics = False
    Xhat = _project(Z, X, sw)
    core = fit_arrays(mf.y, Xhat, weights=w, cluster=p.cluster, se_type=p.se_type,
                      has_intercept=has_int, fe_codes=fe, X_resid=X, func=func)
    extra: dict[str, Any] = {}
    if diagnostics and p.se_type != "none":
        extra = _diagnostics(mf.y, X, xnames, Z, znames, Xhat, core, w, p.cluster,
                             p.se_type, sw)
    return make_fit(LMRobustFit, xnames, core, mf.outcome[0], p.se_type, p.alpha, ci,
                    return_vcov, w is not None, **extra)


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
