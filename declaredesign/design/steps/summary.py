"""Summaries of a fit: what an estimator step reports (R: ``.summary`` of ``declare_estimator``).

``"tidy"`` (the default) gives one row per coefficient; ``"glance"`` one row of
model statistics (:func:`glance`); a callable ``f(fit) -> DataFrame`` anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..._validation import fail
from ...batch import Batch
from ...estimate.lm_robust import lm_robust, lm_robust_glance_kernel
from ...estimate.protocol import Estimator, call_kernel, fit_per_simulation, to_tidy

__all__ = ["check_summary", "glance", "glance_batch", "summarize_fit"]

#: estimators whose glance has a batched form: function -> kernel(batch, spec)
_GLANCE_KERNELS = {lm_robust: lm_robust_glance_kernel}


def glance(fit: Any) -> pd.DataFrame:
    """One row of model statistics for a fit (R: estimatr's / broom.mixed's ``glance``).

    Parameters
    ----------
    fit : fit object
        A fit of :func:`~declaredesign.lm_robust` (also ``lm_lin``, ``iv_robust``):
        ``r_squared, adj_r_squared, statistic, p_value, df_residual, nobs, se_type``
        (the statistic is the model's robust F test, NaN for an intercept-only model;
        ``df_residual`` is, as estimatr's, the first coefficient's degrees of freedom,
        which differ from ``n - k`` with clusters);
        of :func:`~declaredesign.difference_in_means`: ``design, df, nobs, nblocks,
        nclusters, condition2, condition1``; of :func:`~declaredesign.lmer`:
        ``nobs, sigma, logLik, AIC, BIC, REMLcrit`` (``deviance`` for ML) and
        ``df_residual``. Any other fit: its ``glance()`` method.

    Returns
    -------
    pandas.DataFrame
        One row.

    Examples
    --------
    >>> import pandas as pd
    >>> import declaredesign as dd
    >>> df = pd.DataFrame({"Y": [1.0, 2.0, 4.0, 3.0, 6.0, 5.0], "Z": [0, 0, 0, 1, 1, 1]})
    >>> list(dd.glance(dd.lm_robust("Y ~ Z", df)).columns)[:3]
    ['r_squared', 'adj_r_squared', 'statistic']
    """
    if hasattr(fit, "glance") and callable(fit.glance):
        return pd.DataFrame(fit.glance())
    if hasattr(fit, "REMLcrit") and hasattr(fit, "logLik"):
        return _glance_mixed(fit)
    if hasattr(fit, "condition1") and hasattr(fit, "design"):
        return pd.DataFrame({"design": [fit.design], "df": [_first(fit.df)],
                             "nobs": [fit.nobs], "nblocks": [_na(fit.nblocks)],
                             "nclusters": [_na(fit.nclusters)],
                             "condition2": [fit.condition2], "condition1": [fit.condition1]})
    if hasattr(fit, "r_squared") and hasattr(fit, "fstatistic"):
        return _glance_linear(fit)
    raise TypeError(f"glance() does not know a {type(fit).__name__}; give the estimator "
                    "summary= a function of the fit instead.")


def _glance_linear(fit: Any) -> pd.DataFrame:
    f = fit.fstatistic
    if f:
        stat = float(f["value"])
        p = float(stats.f.sf(stat, f["numdf"], f["dendf"]))
    else:
        stat = p = np.nan
    return pd.DataFrame({"r_squared": [fit.r_squared], "adj_r_squared": [fit.adj_r_squared],
                         "statistic": [stat], "p_value": [p],
                         "df_residual": [_first(getattr(fit, "df", fit.df_residual))],
                         "nobs": [fit.nobs],
                         "se_type": [fit.se_type]})


def _glance_mixed(fit: Any) -> pd.DataFrame:
    crit = "REMLcrit" if fit.REML else "deviance"
    return pd.DataFrame({"nobs": [fit.nobs], "sigma": [fit.sigma], "logLik": [fit.logLik],
                         "AIC": [fit.AIC], "BIC": [fit.BIC], crit: [getattr(fit, crit)],
                         "df_residual": [fit.nobs - fit.npar]})


def _first(value: Any) -> float:
    arr = np.asarray(value, dtype=float).reshape(-1)
    return float(arr[0]) if arr.size else np.nan


def _na(value: Any) -> Any:
    return np.nan if value is None else value


def check_summary(func: str, summary: Any) -> Any:
    """Validate ``summary=``: ``"tidy"``, ``"glance"`` or a callable on the fit."""
    if summary is None or summary == "tidy" or summary == "glance" or callable(summary):
        return summary
    fail(func, "summary", summary, "'tidy', 'glance' or a function of the fit returning a "
         "DataFrame")


def summarize_fit(summary: Any) -> Callable[[Any], pd.DataFrame]:
    """Return the function turning a fit into the step's rows (no terms: ``term`` None)."""
    fn = glance if summary == "glance" else summary

    def apply(fit: Any) -> pd.DataFrame:
        out = fn(fit)
        if not isinstance(out, pd.DataFrame):
            raise TypeError(f"the estimator's summary returned {type(out).__name__}; it "
                            "must return a pandas DataFrame.")
        out = to_tidy(out.assign(term=out["term"] if "term" in out else None))
        return out.reset_index(drop=True)
    return apply


def glance_batch(estimator: Estimator, spec: Any, batch: Batch,
                 outcome: str | None = None) -> pd.DataFrame | None:
    """Glance rows of every simulation from the estimator's batched glance, if it has one.

    Simulations the kernel declines (all of them, when numerical trouble stopped it)
    are fitted one by one, as without a kernel; None
    when the estimator has no batched glance.
    """
    kernel = _GLANCE_KERNELS.get(estimator.function)
    if kernel is None or batch.n_sims == 0:
        return None
    summ = summarize_fit("glance")

    def one_by_one(sims: Any) -> pd.DataFrame:
        return fit_per_simulation(lambda df: summ(estimator.fit(spec, df)), batch, sims,
                                  outcome=outcome)

    res = call_kernel(kernel, batch, spec)
    if res is None:
        return one_by_one(range(batch.n_sims))
    if not res.fallback:
        return res.tidy
    rest = one_by_one(sorted(res.fallback))
    if not len(res.tidy):
        return rest
    out = pd.concat([res.tidy, rest], ignore_index=True)
    return out.iloc[np.argsort(out["sim"].to_numpy(), kind="stable")].reset_index(drop=True)
