"""t and normal inference: statistics, two-sided p-values and confidence intervals.

estimatr reports t-based inference for regressions and difference in means
(:func:`add_cis`, estimatr's ``add_cis_pvals``) and normal-based inference for
Horvitz-Thompson (:func:`z_cis`). :func:`tidy_rows` lays the per-simulation numbers
of a batched kernel out as tidy rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["add_cis", "tidy_rows", "z_cis", "z_tests"]


def add_cis(est: np.ndarray, se: np.ndarray, df: np.ndarray, alpha: float,
            ci: bool) -> tuple[np.ndarray, ...]:
    """Compute t statistics, two-sided p-values and CIs as estimatr's ``add_cis_pvals``.

    Returns ``(statistic, p_value, conf_low, conf_high, df)``; all NaN when ``ci`` is
    false, and ``df`` NaN where it is not positive.
    """
    est, se, df = (np.asarray(a, dtype=float) for a in (est, se, df))
    if not ci:
        nan = np.full_like(est, np.nan)
        return nan, nan, nan, nan, nan
    df = np.where(df > 0, df, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = est / se
        p = 2.0 * stats.t.sf(np.abs(stat), df)
        crit = stats.t.ppf(1.0 - alpha / 2.0, df) * se
    return stat, p, est - crit, est + crit, df


def z_cis(est: float, se: float, alpha: float, ci: bool) -> tuple[float, float, float, float]:
    """Compute the z statistic, two-sided p-value and normal CI (estimatr's ttest = FALSE)."""
    if not ci:
        return np.nan, np.nan, np.nan, np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    p = 2 * stats.norm.sf(abs(z))
    crit = stats.norm.ppf(1 - alpha / 2) * se
    return float(z), float(p), float(est - crit), float(est + crit)


def z_tests(est: np.ndarray, se: np.ndarray, alpha: float, ci: bool
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`z_cis` for arrays of estimates and standard errors."""
    if not ci:
        nan = np.full(len(est), np.nan)
        return nan, nan, nan, nan
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = est / se
    pv = 2 * stats.norm.sf(np.abs(zs))
    crit = stats.norm.ppf(1 - alpha / 2) * se
    return zs, pv, est - crit, est + crit


def tidy_rows(sims: np.ndarray, terms: list[str], res: dict[str, np.ndarray], alpha: float,
              ci: bool, outcome: str) -> pd.DataFrame:
    """Tidy rows (``sim`` first) of the listed simulations from ``coef``/``se``/``df``.

    ``res`` holds ``(n_sims, k)`` arrays of estimates, standard errors and degrees of
    freedom; rows come simulation by simulation, terms in order, t-based inference, with
    empty ``error`` and ``warning`` columns.
    """
    k = len(terms)
    coef, se, df = res["coef"][sims], res["se"][sims], res["df"][sims]
    stat, p, lo, hi, dfo = add_cis(coef, se, df, alpha, ci)
    # no message on a fitted row; built here, as columns, rather than inserted later
    none = np.full(k * len(sims), None, dtype=object)
    return pd.DataFrame({
        "sim": np.repeat(sims, k), "term": np.tile(np.asarray(terms, dtype=object), len(sims)),
        "estimate": coef.ravel(), "std_error": se.ravel(), "statistic": stat.ravel(),
        "p_value": p.ravel(), "conf_low": lo.ravel(), "conf_high": hi.ravel(),
        "df": dfo.ravel(), "outcome": outcome, "error": none, "warning": none})
