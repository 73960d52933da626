"""t and normal inference: statistics, two-sided p-values and confidence intervals.

estimatr reports t-based inference for regressions and difference in means
(:func:`add_cis`, estimatr's ``add_cis_pvals``) and normal-based inference for
Horvitz-Thompson (:func:`z_cis`). :func:`tidy_rows` lays the per-simulation numbers
of a batched kernel out as tidy rows.

Identification
--------------
:func:`unidentified` is THE rule deciding when a standard error is not a standard error;
every estimator applies it to its standalone fit, and every batched kernel screens its
simulations with :func:`screen_unidentified` (a looser version of the same rule) and
leaves the ones it flags to the standalone fit, so both paths report the same NaNs and
the same warning. A standard error is not identified when

* the fit has no residual degrees of freedom (as many kept terms as rows, or more);
* it is cluster-robust and the rows fall in fewer than two clusters;
* it is zero up to rounding: ``se_j <= SE_ROUNDING_TOL * sqrt(M_jj) * rms(y)``, with
  ``M = (X'X)^{-1}`` of the (normalised-weight) design and ``rms(y)`` the root mean
  square of the outcome on the rows used. ``sqrt(M_jj) * rms(y)`` is the standard error
  coefficient ``j`` would have if the residuals were as large as the outcome itself
  (for an intercept-only HC0 fit the ratio is exactly ``rms(e) / rms(y)``), so the rule
  reads "the residual variation the SE measures is below 1e-10 of the outcome's size".
  Rounding leaves residuals (and cancelled cluster scores) of about ``1e-16`` to
  ``1e-13`` of the outcome; real data only reach the threshold when the outcome's mean
  exceeds its residual spread by a factor of 1e10 (then fewer than six digits of the
  variation survive in double precision anyway). A constant outcome, a perfect fit and
  clusters whose scores cancel exactly (one cluster per arm) are caught; well-identified
  fits are untouched (their numbers are bit-identical).

The statistic, p-value and CI of such a term are NaN, its SE NaN and its df NaN, and a
:class:`~declaredesign.errors.FitWarning` (:func:`unidentified_message`) says why.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import special, stats

from ..errors import FitWarning

__all__ = ["SE_ROUNDING_TOL", "add_cis", "apply_identification", "rms", "screen_scale",
           "screen_unidentified", "tidy_rows", "unidentified", "unidentified_message", "z_cis",
           "z_tests"]

#: A standard error at or below this fraction of ``sqrt(M_jj) * rms(y)`` is rounding noise.
SE_ROUNDING_TOL = 1e-10
# Kernels screen with a looser threshold and leave what they flag to the standalone fit,
# which decides with SE_ROUNDING_TOL: rounding differences between the two paths can
# then never make them disagree.
_SCREEN_FACTOR = 1e4


def _rounding_zero(se: np.ndarray, m_diag: np.ndarray, y_rms: np.ndarray, tol: float
                   ) -> np.ndarray:
    """Return where ``se <= tol * sqrt(M_jj) * rms(y)`` (the zero-up-to-rounding rule)."""
    se, m_diag = np.asarray(se, dtype=float), np.asarray(m_diag, dtype=float)
    with np.errstate(invalid="ignore"):
        ref = np.sqrt(np.abs(m_diag)) * np.asarray(y_rms, dtype=float)
        return np.isfinite(se) & np.isfinite(ref) & (se <= tol * ref)


def unidentified(se: np.ndarray, m_diag: np.ndarray | None, y_rms: float | None, *,
                 df_residual: float, n_clusters: int | None) -> tuple[np.ndarray, str | None]:
    """Return which terms of one fit have no identified SE, and why (None when all have).

    Parameters
    ----------
    se : array (k,)
        Standard errors (NaN for dropped terms).
    m_diag : array (k,) or None
        Diagonal of ``(X'X)^{-1}`` for the same terms; None skips the rounding rule.
    y_rms : float or None
        Root mean square of the outcome on the rows used.
    df_residual : float
        Residual degrees of freedom of the fit.
    n_clusters : int or None
        Number of clusters of a cluster-robust SE (None when not clustered).

    Returns
    -------
    (mask, reason)
        ``mask`` flags the terms whose SE is not identified; ``reason`` is the phrase
        :func:`unidentified_message` uses.
    """
    se = np.asarray(se, dtype=float)
    kept = ~np.isnan(se)
    if df_residual <= 0:
        return kept, "the fit has no residual degrees of freedom"
    if n_clusters is not None and n_clusters < 2:
        return kept, f"there are fewer than two clusters ({n_clusters})"
    if m_diag is None or y_rms is None:
        return np.zeros(len(se), dtype=bool), None
    zero = _rounding_zero(se, m_diag, y_rms, SE_ROUNDING_TOL)
    if zero.any():
        return zero, "the standard error is zero up to rounding (constant outcome, perfect " \
            "fit or cluster scores that cancel)"
    return zero, None


def unidentified_message(func: str, terms: list[str], reason: str) -> str:
    """Return the warning text of terms whose standard error is not identified."""
    return (f"{func}: standard error not identified for {', '.join(terms)}: {reason}; "
            "std_error, statistic, p_value, conf_low, conf_high and df are NaN.")


def apply_identification(func: str, terms: list[str], se: np.ndarray, df: np.ndarray,
                         m_diag: np.ndarray | None, y_rms: float | None, *,
                         df_residual: float, n_clusters: int | None, stacklevel: int = 3
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(se, df)`` with unidentified terms set to NaN, warning (FitWarning) if any."""
    mask, reason = unidentified(se, m_diag, y_rms, df_residual=df_residual,
                                n_clusters=n_clusters)
    if not mask.any():
        return se, df
    se = np.where(mask, np.nan, np.asarray(se, dtype=float))
    df = np.where(mask, np.nan, np.asarray(df, dtype=float))
    warnings.warn(unidentified_message(func, [t for t, m in zip(terms, mask) if m], reason),
                  FitWarning, stacklevel=stacklevel)
    return se, df


def screen_unidentified(se: np.ndarray, m_diag: np.ndarray, y_rms: np.ndarray, *,
                        df_residual: np.ndarray, n_clusters: np.ndarray | None = None
                        ) -> np.ndarray:
    """Flag the simulations a kernel must leave to the standalone fit (identification).

    ``se`` and ``m_diag`` are ``(n_sims, k)``, the others ``(n_sims,)``. The same rules as
    :func:`unidentified` with a looser rounding threshold (:data:`_SCREEN_FACTOR`), so
    every simulation the standalone fit would flag is flagged here.
    """
    zero = _rounding_zero(se, m_diag, np.asarray(y_rms, dtype=float)[:, None],
                          SE_ROUNDING_TOL * _SCREEN_FACTOR)
    flag = zero.any(axis=1) | (np.asarray(df_residual) <= 0)
    if n_clusters is not None:
        flag |= np.asarray(n_clusters) < 2
    return flag


def screen_scale(se: np.ndarray, m_diag: np.ndarray, y: np.ndarray,
                 exact: Callable[[], np.ndarray]) -> np.ndarray:
    """Return the per-simulation outcome scale :func:`screen_unidentified` needs.

    No simulation's ``rms(y)`` exceeds the largest ``|y|`` of the batch, so when no SE
    is at the screen's threshold even at that size (the usual case: SEs are nowhere near
    rounding noise), that bound gives the same flags as the exact scale, and two
    reductions replace squaring every row and summing per simulation. Otherwise (or with
    NaN or infinite outcomes) ``exact()`` computes each simulation's ``rms(y)``.

    ``se`` and ``m_diag`` are ``(n_sims, k)``.
    """
    y = np.asarray(y, dtype=float)
    if y.size:
        # a margin far above rounding keeps the bound a bound
        top = max(abs(float(y.max())), abs(float(y.min()))) * (1.0 + 1e-6)
        bound = np.full(np.shape(se)[0], top)
        if np.isfinite(top) and not _rounding_zero(
                se, m_diag, bound[:, None], SE_ROUNDING_TOL * _SCREEN_FACTOR).any():
            return bound
    return exact()


def rms(y: np.ndarray) -> float:
    """Root mean square of ``y`` (the outcome scale of the identification rule)."""
    y = np.asarray(y, dtype=float)
    return float(np.sqrt(np.mean(y * y))) if y.size else np.nan


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
        # scipy's t distribution computes sf and ppf with these special functions; called
        # directly they skip ~0.1 ms of argument handling per call (same numbers: df is
        # positive or NaN here), which counts for a fit per simulation on small data
        p = 2.0 * special.stdtr(df, -np.abs(stat))
        crit = _t_quantile(df, 1.0 - alpha / 2.0) * se
    return stat, p, est - crit, est + crit, df


def _t_quantile(df: np.ndarray, q: float) -> np.ndarray:
    """``special.stdtrit(df, q)``, computed once per distinct ``df`` when few are distinct.

    A batch's rows share a handful of residual degrees of freedom; the inverse t is the
    costly special function, and its value for a ``df`` is the same wherever it is taken.
    """
    if df.size > 64:
        distinct, where = np.unique(df, return_inverse=True)
        if 4 * distinct.size <= df.size:
            return special.stdtrit(distinct, q)[where.reshape(df.shape)]
    return special.stdtrit(df, q)


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
