"""``starprep``: robust statistics of several fits, ready for a regression table (estimatr).

estimatr's ``starprep(fit_1, fit_2, ...)`` gives, for each fit, the vector of one
statistic (standard errors by default) that stargazer's ``se=``/``p=``/``ci.custom=``
arguments take. Here each fit's statistic is a :class:`pandas.Series` indexed by term
(a DataFrame with ``conf_low``/``conf_high`` for ``stat="ci"``), in the order of the fits.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .._validation import fail
from .arguments import check_alpha
from .commarobust import commarobust
from .lm_robust import LMRobustFit

__all__ = ["starprep"]

_FUNC = "starprep"
# R's stat names and their attribute on LMRobustFit (Python spellings accepted too)
_STATS = {"std.error": "std_error", "statistic": "statistic", "p.value": "p_value",
          "ci": "ci", "df": "df"}
_ALIASES = {"std_error": "std.error", "p_value": "p.value"}


def _match_stat(stat: Any) -> str:
    """Resolve ``stat`` as R's ``match.arg`` does: a unique prefix of a name is enough."""
    if isinstance(stat, str):
        stat = _ALIASES.get(stat, stat)
        hits = [s for s in _STATS if s.startswith(stat)] if stat else []
        if stat in _STATS:
            return stat
        if len(hits) == 1:
            return hits[0]
    fail(_FUNC, "stat", stat, "one of " + ", ".join(repr(s) for s in _STATS)
         + " (or a unique prefix of one)")


def _robust(fit: Any, se_type: str | None, clusters: Any, alpha: float) -> LMRobustFit:
    """Return the fit with robust errors: lm_robust fits pass through, as in R."""
    if isinstance(fit, LMRobustFit):
        return fit
    if isinstance(fit, tuple) and len(fit) == 2 and isinstance(fit[0], str):
        return commarobust(fit[0], fit[1], se_type=se_type, clusters=clusters, alpha=alpha)
    if isinstance(fit, str) or not hasattr(fit, "model"):
        fail(_FUNC, "fits", fit, "LMRobustFit objects, (formula, data) pairs or fitted "
             "statsmodels OLS/WLS results", shown=f"<{type(fit).__name__}>")
    return commarobust(fit, se_type=se_type, clusters=clusters, alpha=alpha)


def _statistic(fit: LMRobustFit, stat: str) -> pd.Series | pd.DataFrame:
    if stat == "ci":
        return pd.DataFrame({"conf_low": fit.conf_low, "conf_high": fit.conf_high},
                            index=pd.Index(fit.term, name="term"))
    return pd.Series(getattr(fit, _STATS[stat]), index=pd.Index(fit.term, name="term"),
                     name=stat)


def starprep(*fits: Any, stat: str = "std.error", se_type: str | None = None,
             clusters: Any = None, alpha: float = 0.05) -> list[pd.Series | pd.DataFrame]:
    """One robust statistic per fit, for regression tables, as estimatr's ``starprep``.

    Parameters
    ----------
    *fits : LMRobustFit, (formula, data) pair or statsmodels OLS/WLS result
        The fits, comma separated or as one list. :class:`LMRobustFit` objects are
        used as they are (their own ``se_type`` and ``alpha``); the others are given
        robust errors by :func:`~declaredesign.estimate.commarobust` with ``se_type``,
        ``clusters`` and ``alpha``. A ``(formula, data)`` pair stands for R's ``lm``.
    stat : str
        ``"std.error"`` (default), ``"statistic"``, ``"p.value"``, ``"ci"`` or
        ``"df"``; a unique prefix will do (``"p"``), and ``"std_error"``/``"p_value"``
        are accepted.
    se_type : str, optional
        Standard error type for the fits that are not yet robust.
    clusters : str or array_like, optional
        Clusters for those fits (the same for each, as in R).
    alpha : float
        Level of the confidence intervals of those fits (``stat="ci"``).

    Returns
    -------
    list of pandas.Series or pandas.DataFrame
        For each fit, the statistic indexed by term; for ``stat="ci"`` a DataFrame with
        columns ``conf_low`` and ``conf_high`` (R: a two-column matrix).

    Examples
    --------
    >>> import pandas as pd
    >>> from declaredesign import lm_robust
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 2.5, 4.0, 3.0, 5.5],
    ...                    "z": [0, 0, 0, 1, 1, 1], "x": [1, 3, 2, 5, 4, 6]})
    >>> ses = starprep(("y ~ z", df), lm_robust("y ~ z + x", df))
    >>> [list(s.index) for s in ses]
    [['(Intercept)', 'z'], ['(Intercept)', 'z', 'x']]
    """
    if len(fits) == 1 and isinstance(fits[0], list):
        fits = tuple(fits[0])
    elif any(isinstance(f, list) for f in fits):
        fail(_FUNC, "fits", "<list>", "one list of fits or several comma separated fits")
    if not fits:
        fail(_FUNC, "fits", "()", "at least one fit")
    stat = _match_stat(stat)
    alpha = check_alpha(_FUNC, alpha)
    return [_statistic(_robust(f, se_type, clusters, alpha), stat) for f in fits]
