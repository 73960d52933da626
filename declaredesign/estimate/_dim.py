"""``difference_in_means``: estimatr's design-based difference-in-means estimator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail
from ..errors import DeclarationError, EstimationError, FormulaError
from .model_frame import formula_variables
from ._lm_robust import (
    add_cis,
    check_alpha,
    check_column_arg,
    check_numeric,
    check_weights,
    data_columns,
    fit_arrays,
    subset_mask,
)
from ._protocol import batched
from ._single import SingleEstimateFit

__all__ = ["difference_in_means", "DifferenceInMeansFit"]


@dataclass
class DifferenceInMeansFit(SingleEstimateFit):
    """Result of :func:`difference_in_means`."""

    term: str
    estimate: float
    std_error: float
    statistic: float
    p_value: float
    conf_low: float
    conf_high: float
    df: float
    outcome: str
    design: str
    nobs: float
    condition1: Any
    condition2: Any
    alpha: float
    nblocks: int | None = None
    nclusters: int | None = None

    def summary(self) -> str:
        """Printable summary."""
        return f"Design:  {self.design}\n" + self.tidy().to_string(index=False)

    def __repr__(self) -> str:
        return self.summary()


def parse_conditions(func: str, t: np.ndarray, condition1: Any, condition2: Any,
                     values: list[Any] | None = None) -> tuple[Any, Any]:
    """Which treatment values are control (condition1) and treatment (condition2).

    ``values``, when given, are the sorted distinct values of ``t`` (already known).
    """
    names = sorted(pd.unique(t).tolist()) if values is None else values
    for arg, c in (("condition1", condition1), ("condition2", condition2)):
        if c is not None and c not in names:
            fail(func, arg, c, f"a value of the treatment variable ({names})")
    if len(names) > 2:
        if condition1 is None or condition2 is None:
            raise DeclarationError(
                f"{func}(condition1={condition1!r}, condition2={condition2!r}): the treatment "
                f"has more than 2 values ({names}); give both condition1 and condition2.")
        return condition1, condition2
    if len(names) < 2:
        raise EstimationError(f"{func}: the treatment must take two values; got {names}.")
    if condition1 is None and condition2 is None:
        return names[0], names[1]
    if condition1 is None:
        return next(v for v in names if v != condition2), condition2
    if condition2 is None:
        return condition1, next(v for v in names if v != condition1)
    return condition1, condition2


@dataclass
class _Part:
    coef: float
    se: float
    df: float
    nobs: float
    nclusters: float


def _dim_internal(y: np.ndarray, t2: np.ndarray, cl: np.ndarray | None, w: np.ndarray | None,
                  pair_matched: bool) -> _Part:
    """One block (or the whole sample): estimate, SE and df as estimatr's internal helper."""
    n2 = int(t2.sum())
    n1 = int((~t2).sum())
    if n1 == 0 or n2 == 0:
        raise EstimationError("difference_in_means: must have units with both treatment "
                              "conditions within each block.")
    if not pair_matched and (n1 == 1 or n2 == 1):
        raise EstimationError("difference_in_means: if the design is not pair-matched, every "
                              "block must have at least two treated and two control units.")
    nobs = float(w.sum()) if w is not None else float(n1 + n2)
    X = np.column_stack([np.ones(len(y)), t2.astype(float)])
    if cl is not None and not pair_matched:
        f = fit_arrays(y, X, weights=w, cluster=cl, se_type="CR2")
        return _Part(f.coef[1], f.se[1], f.df[1], nobs, float(f.nclusters))
    nclusters = 2.0 if cl is not None else np.nan
    if w is None:
        diff = float(y[t2].mean() - y[~t2].mean())
        if pair_matched:
            return _Part(diff, np.nan, np.nan, nobs, nclusters)
        v2, v1 = np.var(y[t2], ddof=1) / n2, np.var(y[~t2], ddof=1) / n1
        se = float(np.sqrt(v2 + v1))
        df = se ** 4 / (v2 ** 2 / (n2 - 1) + v1 ** 2 / (n1 - 1))
        return _Part(diff, se, float(df), nobs, nclusters)
    if pair_matched:
        raise DeclarationError("difference_in_means(weights=...): weights cannot be used with a "
                               "matched-pairs design; got weights with blocks of size 2.")
    f = fit_arrays(y, X, weights=w, se_type="HC2")
    return _Part(f.coef[1], f.se[1], f.df[1], nobs, nclusters)


def _dim_batched(batch, formula, **kwargs):
    from ._kernels import difference_in_means_kernel
    return difference_in_means_kernel(batch, formula, **kwargs)


def outcome_and_treatment(func: str, formula: str, cols: Mapping[str, Any]) -> tuple[str, str]:
    """The two names of an ``outcome ~ treatment`` formula, both columns of the data."""
    lhs, rhs = formula_variables(formula)
    if len(lhs) != 1 or len(rhs) != 1:
        fail(func, "formula", formula, "of the form 'outcome ~ treatment' (one variable on "
             "each side)")
    for v in (lhs[0], rhs[0]):
        if v not in cols:
            raise FormulaError(f"{func}(formula={formula!r}): column {v!r} named in the "
                               f"formula is not in the data; available columns are: "
                               f"{', '.join(sorted(map(str, cols)))}.")
    return lhs[0], rhs[0]


def _prepare(func: str, formula: str, data: Any, blocks: Any, clusters: Any, weights: Any,
             subset: Any, condition1: Any, condition2: Any, alpha: Any):
    cols = data_columns(func, data)
    alpha = check_alpha(func, alpha)
    outcome, treat = outcome_and_treatment(func, formula, cols)
    blocks = check_column_arg(func, "blocks", blocks, cols)
    clusters = check_column_arg(func, "clusters", clusters, cols)
    weights = check_column_arg(func, "weights", weights, cols)
    check_numeric(func, "formula", outcome, np.asarray(cols[outcome]))
    if weights is not None:
        check_numeric(func, "weights", weights, np.asarray(cols[weights]))
    n = len(np.asarray(cols[outcome]))
    rows = subset_mask(func, subset, cols, n)
    from .model_frame import _is_missing
    for v in (outcome, treat, blocks, clusters, weights):
        if v is not None:
            rows &= ~_is_missing(np.asarray(cols[v]))
    return cols, outcome, treat, blocks, clusters, weights, rows, alpha


@batched(_dim_batched)
def difference_in_means(formula: str, data: pd.DataFrame, blocks: str | None = None,
                        clusters: str | None = None, weights: str | None = None,
                        subset: Any = None, condition1: Any = None, condition2: Any = None,
                        ci: bool = True, alpha: float = 0.05) -> DifferenceInMeansFit:
    """Difference in means with design-appropriate standard errors (estimatr).

    Simple designs use the Welch (unequal-variance) SE and Welch-Satterthwaite df;
    clustered designs the CR2 SE and Bell-McCaffrey df of ``lm_robust``; blocked designs
    combine block estimates weighted by block size; blocks of two units (or clusters)
    use the matched-pairs variance.

    Parameters
    ----------
    formula : str
        ``"outcome ~ treatment"``.
    data : pandas.DataFrame
        The data; rows with a missing value in any used column are dropped.
    blocks, clusters, weights : str, optional
        Columns of block ids, cluster ids and positive weights.
    subset : str or array of bool, optional
        Rows to use.
    condition1, condition2 : optional
        Control and treatment values (default: the two sorted values of the treatment).
    ci : bool
        Compute p-values and confidence intervals.
    alpha : float
        Confidence level ``1 - alpha``.

    Returns
    -------
    DifferenceInMeansFit

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0, 6.0, 5.0], "z": [0, 0, 0, 1, 1, 1]})
    >>> fit = difference_in_means("y ~ z", df)
    >>> float(fit.estimate), fit.design
    (3.0, 'Standard')
    """
    func = "difference_in_means"
    cols, outcome, treat, blocks, clusters, weights, rows, alpha = _prepare(
        func, formula, data, blocks, clusters, weights, subset, condition1, condition2, alpha)
    y = np.asarray(cols[outcome], dtype=float)[rows]
    t = np.asarray(cols[treat])[rows]
    w = np.asarray(cols[weights], dtype=float)[rows] if weights else None
    if w is not None:
        check_weights(func, weights, w)
        w = w / w.mean()
    cl = np.asarray(cols[clusters])[rows] if clusters else None
    bl = np.asarray(cols[blocks])[rows] if blocks else None
    c1, c2 = parse_conditions(func, t, condition1, condition2)
    keep = (t == c1) | (t == c2)
    y, t = y[keep], t[keep]
    w = w[keep] if w is not None else None
    cl = cl[keep] if cl is not None else None
    bl = bl[keep] if bl is not None else None
    t2 = t == c2
    if cl is not None:
        codes = np.unique(cl, return_inverse=True)[1].reshape(-1)
        n_t = np.bincount(codes, weights=t2)
        if np.any((n_t > 0) & (n_t < np.bincount(codes))):
            raise DeclarationError(f"{func}(clusters={clusters!r}): every unit of a cluster must "
                                   "have the same treatment condition; some clusters mix them.")
    nblocks = nclusters = None
    if bl is None:
        part = _dim_internal(y, t2, cl, w, False)
        est, se, df, nobs = part.coef, part.se, part.df, part.nobs
        design = "Standard" if cl is None else "Clustered"
        if cl is not None:
            nclusters = int(part.nclusters)
    else:
        bcodes = np.unique(bl, return_inverse=True)[1].reshape(-1)
        units = bcodes if cl is None else None
        if cl is None:
            per_block = np.bincount(units)
        else:
            pairs = np.unique(np.column_stack([bcodes, np.unique(cl, return_inverse=True)[1]
                                               .reshape(-1)]), axis=0)
            per_block = np.bincount(pairs[:, 0])
        if np.any(per_block == 1):
            raise EstimationError(f"{func}: all blocks must have multiple units (or clusters).")
        pair_matched = bool(np.any(per_block == 2))
        parts = [_dim_internal(y[bcodes == b], t2[bcodes == b],
                               cl[bcodes == b] if cl is not None else None,
                               w[bcodes == b] if w is not None else None, pair_matched)
                 for b in range(len(per_block))]
        coefs = np.array([p.coef for p in parts])
        ses = np.array([p.se for p in parts])
        nobs_b = np.array([p.nobs for p in parts])
        N = nobs_b.sum()
        nblocks = len(parts)
        est = float(np.sum(coefs * nobs_b / N))
        ncl = float(np.sum([p.nclusters for p in parts]))
        if pair_matched:
            if cl is None:
                design = "Matched-pair"
                se = np.sqrt(np.sum((coefs - est) ** 2) / (nblocks * (nblocks - 1)))
            else:
                design = "Matched-pair clustered"
                se = np.sqrt(nblocks / ((nblocks - 1) * N ** 2)
                             * np.sum((nobs_b * coefs - N * est / nblocks) ** 2))
            df = nblocks - 1.0
        else:
            se = float(np.sqrt(np.sum(ses ** 2 * (nobs_b / N) ** 2)))
            if cl is None:
                design, df = "Blocked", float(len(y) - 2 * nblocks)
            else:
                design, df = "Block-clustered", ncl - 2 * nblocks
        nobs = N
        if np.isfinite(ncl):
            nclusters = int(ncl)
    if w is not None:
        design += " (weighted)"
    stat, p, lo, hi, dfo = add_cis(np.array([est]), np.array([se]), np.array([df]), alpha, ci)
    add_label = not (c2 == 1 and c1 == 0)
    term = f"{treat}{c2}" if add_label else treat
    return DifferenceInMeansFit(
        term=term, estimate=float(est), std_error=float(se), statistic=float(stat[0]),
        p_value=float(p[0]), conf_low=float(lo[0]), conf_high=float(hi[0]), df=float(dfo[0]),
        outcome=outcome, design=design, nobs=float(nobs), condition1=c1, condition2=c2,
        alpha=alpha, nblocks=nblocks, nclusters=nclusters)
