"""lmerTest's ``anova()`` of an lmer fit: Type III hypotheses and their F tests.

Type III hypotheses (as lmerTest builds them for treatment-coded factors, R's and our
default): with ``X`` the model matrix and ``X_full`` the over-parameterised one (an
intercept and, for every term, a column per cell: all levels of each factor in the term,
times its numeric variables), ``L0 = (pinv(X) X_full)'`` expresses every cell parameter in
the model's coefficients. For each term the columns of ``L0`` that belong to it are
replaced by their residuals after projection on the columns of the terms that contain it
(same numeric variables, more factors), highest-order terms first; a term's hypothesis
is then its columns of ``L0``, on the rows of the model's coefficients, transposed.
lmerTest rounds the intermediate matrices to 7 significant digits (R's ``zapsmall``);
so do we, to test the same hypotheses.

Each hypothesis is tested by an F test with Satterthwaite's denominator df (the
eigen-decomposed contrasts of :func:`.satterthwaite.contest_satterthwaite`) or with
Kenward and Roger's adjusted covariance, scaled F and df (pbkrtest's ``KRmodcomp``, as
lmerTest calls it). Sums of squares are lmerTest's: ``mean_sq = F sigma^2`` (the
unscaled F for Kenward-Roger), ``sum_sq = mean_sq num_df``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...errors import EstimationError
from ..model_frame import model_frame

__all__ = ["type3_contrasts", "anova_table", "ANOVA_COLUMNS"]

#: Columns of :func:`anova_table` (lmerTest's, in snake_case).
ANOVA_COLUMNS = ["term", "sum_sq", "mean_sq", "num_df", "den_df", "statistic", "p_value"]


def zapsmall(a: np.ndarray, digits: int = 7) -> np.ndarray:
    """Round to ``digits`` significant digits of the largest entry (R's ``zapsmall``)."""
    a = np.asarray(a, dtype=float)
    mx = np.max(np.abs(a)) if a.size else 0.0
    if not mx > 0:
        return a
    return np.round(a, max(0, digits - int(np.ceil(np.log10(mx)))))


def _term_blocks(response: str, term_names: list[str], data: pd.DataFrame):
    """Each term's full cell columns (``~ 0 + term``) with R's names."""
    blocks = {}
    for t in term_names:
        mf = model_frame(f"{response} ~ 0 + {t}", data, func="anova")
        blocks[t] = (mf.X, list(mf.columns))
    return blocks


def _is_numeric(var: str, response: str, data: pd.DataFrame) -> bool:
    """Whether a variable of a term is numeric (one column named as itself)."""
    mf = model_frame(f"{response} ~ 0 + {var}", data, func="anova")
    return list(mf.columns) == [var]


def _containment(term_names: list[str], response: str, data: pd.DataFrame):
    """For each term, the terms that contain it (more factors, same numeric variables)."""
    vars_ = {t: set(t.split(":")) for t in term_names}
    numeric = {v: _is_numeric(v, response, data) for t in term_names for v in vars_[t]}
    nums = {t: {v for v in vars_[t] if numeric[v]} for t in term_names}
    return {t: [o for o in term_names if vars_[t] < vars_[o] and nums[t] == nums[o]]
            for t in term_names}


def type3_contrasts(response: str, X: np.ndarray, xnames: list[str],
                    terms: dict[str, list[str]], data: pd.DataFrame) -> dict[str, np.ndarray]:
    """LmerTest's Type III hypothesis matrices, one ``(rows, p)`` matrix per term.

    Parameters
    ----------
    response : str
        The response, for the model frames of the terms.
    X : ndarray, shape (n, p)
        The fixed-effects model matrix (full column rank).
    xnames : list of str
        Its column names.
    terms : dict
        Each term label (``"(Intercept)"`` included) to the names of its columns.
    data : pandas.DataFrame
        The rows the model was fitted on.

    Returns
    -------
    dict of str to ndarray
    """
    term_names = [t for t in terms if t != "(Intercept)"]
    pos = {c: i for i, c in enumerate(xnames)}
    cols = {t: [pos[c] for c in terms[t] if c in pos] for t in term_names}
    p = len(xnames)
    if p <= 1 or len(term_names) <= 1:
        # One term: its coefficients are all tested (lmerTest's Type I contrasts).
        return {t: np.eye(p)[cols[t]] for t in term_names}
    blocks = _term_blocks(response, term_names, data)
    names = (["(Intercept)"] if "(Intercept)" in terms else []) + \
        [c for t in term_names for c in blocks[t][1]]
    full = np.column_stack(([np.ones(X.shape[0])] if "(Intercept)" in terms else [])
                           + [blocks[t][0] for t in term_names])
    L = zapsmall(np.linalg.pinv(X) @ full).T                   # (cells, p)
    contains = _containment(term_names, response, data)
    order = sorted(term_names, key=lambda t: -len(t.split(":")))
    for t in order:
        if contains[t] and cols[t]:
            other = [j for o in contains[t] for j in cols[o]]
            A, Y = L[:, other], L[:, cols[t]]
            coef = np.linalg.lstsq(A, Y, rcond=None)[0]
            L[:, cols[t]] = zapsmall(Y - A @ coef)
    first = {}
    for i, c in enumerate(names):
        first.setdefault(c, i)
    missing = [c for c in xnames if c not in first]
    if missing:
        raise EstimationError(
            f"lmer: anova's Type III hypotheses need treatment-coded factors; the "
            f"column(s) {', '.join(map(repr, missing))} are not cells of their terms.")
    L = L[[first[c] for c in xnames]]                          # (p, p)
    out = {}
    for t in term_names:
        Lt = L[:, cols[t]].T
        out[t] = Lt[np.sum(np.abs(Lt), axis=1) > 1e-8]
    return out


def anova_table(fit, ddf: str) -> pd.DataFrame:
    """Type III F tests of every term of an :class:`~.lmer.LmerFit` (see module doc)."""
    if fit._data is None:
        raise EstimationError("lmer: this fit holds no model frame for anova.")
    hyp = type3_contrasts(fit.response, fit._X, list(fit.fixef.index), fit.fixed_terms,
                          fit._data)
    s2 = fit.sigma ** 2
    rows = []
    for t, L in hyp.items():
        if L.shape[0] == 0:   # every column of the term aliased
            rows.append((t, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan))
            continue
        r = fit.contest(L, ddf=ddf)
        F_u = r.get("F_unscaled", r["F"])
        rows.append((t, F_u * s2 * r["NumDF"], F_u * s2, r["NumDF"], r["DenDF"], r["F"],
                     r["p_value"]))
    return pd.DataFrame(rows, columns=ANOVA_COLUMNS)
