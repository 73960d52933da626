"""``horvitz_thompson``: estimatr's design-based Horvitz-Thompson estimator.

Every unit's outcome is weighted by the inverse of the probability of the condition it
is in. The variance needs the joint probabilities of every pair of units being in every
pair of conditions: a ``2N x 2N`` *condition probability matrix* whose first ``N``
rows/columns are the control condition and last ``N`` the treatment condition
(``P[i, N + j]`` = Pr(i in control, j treated)). estimatr builds it from the design;
:func:`declaration_to_condition_pr_mat` does the same from our
:func:`~declaredesign.assign.declare_ra` declarations.

Variance (Aronow & Middleton 2013, with Young's inequality bounding the unidentified
term): with ``Y2 = y / p`` over treated units and ``Y1 = y / (1 - p)`` over controls,

    N^2 V = sum Y2^2 + sum Y1^2 + v(Y2, P11) + v(Y1, P00) - 2 c(Y2, Y1, P10)

where ``v(y, P) = sum_{i != j} y_i y_j (P_ij - P_ii P_jj) / P_ij`` (pairs that are
never jointly observed, ``P_ij = 0``, add ``y_i^2 P_ii / 2 + y_j^2 P_jj / 2`` instead of
dividing) and ``c`` the cross term. Clustered designs sum outcomes to cluster totals
first. Under simple random assignment the joint probabilities are products of the
marginals and the variance is ``(sum Y2^2 + sum Y1^2) / N^2``; ``se_type="constant"``
instead imputes the other potential outcome with a constant effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import fail
from ..errors import DeclarationError, EstimationError
from ._dim import outcome_and_treatment, parse_conditions
from .model_frame import _is_missing
from ._lm_robust import (
    check_alpha,
    check_column_arg,
    check_numeric,
    data_columns,
    subset_mask,
)
from ._protocol import batched
from ._single import SingleEstimateFit

__all__ = ["horvitz_thompson", "HorvitzThompsonFit", "declaration_to_condition_pr_mat",
           "permutations_to_condition_pr_mat"]


# ------------------------------------------------------------------ joint probabilities
def _joint_complete(p: float, n: int) -> dict[str, float]:
    """Joint probabilities of two distinct units under complete assignment (estimatr).

    ``p * n`` treated when it is whole; otherwise ``floor`` or ``floor + 1`` with the
    fractional part as probability of the larger count.
    """
    nt = p * n
    rem = nt % 1
    fl = np.floor(nt)
    nc = n - fl
    with np.errstate(divide="ignore", invalid="ignore"):
        p11 = rem * ((fl + 1) / n) * (fl / (n - 1)) + \
            (1 - rem) * (fl / n) * ((fl - 1) / (n - 1))
        p10 = rem * ((nc - 1) / n) * ((fl + 1) / (n - 1)) + \
            (1 - rem) * (nc / n) * (fl / (n - 1))
        p00 = rem * ((nc - 1) / n) * ((nc - 2) / (n - 1)) + \
            (1 - rem) * (nc / n) * ((nc - 1) / (n - 1))
    return {"11": p11, "10": p10, "00": p00}


def _expand(Pc: np.ndarray, unit_cluster: np.ndarray) -> np.ndarray:
    """Unit-level ``2n x 2n`` matrix from a cluster-level ``2k x 2k`` one."""
    k = Pc.shape[0] // 2
    idx = np.concatenate([unit_cluster, k + unit_cluster])
    return Pc[np.ix_(idx, idx)]


def _cluster_level(p2: np.ndarray, simple: bool) -> np.ndarray:
    """``2k x 2k`` matrix for k clusters (or units) with treatment probabilities ``p2``."""
    k = len(p2)
    if simple:
        v = np.concatenate([1 - p2, p2])
        P = np.outer(v, v)
    else:
        if len(np.unique(p2)) > 1:
            raise DeclarationError(
                "horvitz_thompson: treatment probabilities cannot vary within blocks for "
                "block-clustered designs and cannot vary within the whole sample for "
                "complete (cluster) randomized designs.")
        j = _joint_complete(float(p2[0]), k)
        P = np.block([[np.full((k, k), j["00"]), np.full((k, k), j["10"])],
                      [np.full((k, k), j["10"]), np.full((k, k), j["11"])]])
    i = np.arange(k)
    P[i, i] = 1 - p2
    P[k + i, k + i] = p2
    P[i, k + i] = 0.0
    P[k + i, i] = 0.0
    return P


def _codes(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values)
    if v.dtype.kind == "O":
        v = v.astype(str)
    return np.unique(v, return_inverse=True)[1].reshape(-1)


def _first_per_code(codes: np.ndarray) -> np.ndarray:
    first = np.full(int(codes.max()) + 1, -1)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    return first


def _pr_mat_design(p2: np.ndarray, *, clusters: np.ndarray | None, blocks: np.ndarray | None,
                   simple: bool, p1: np.ndarray | None = None) -> np.ndarray:
    """Condition probability matrix of a (blocked and/or clustered) design, as estimatr."""
    p2 = np.asarray(p2, dtype=float)
    n = len(p2)
    if blocks is None:
        if clusters is None:
            return _cluster_level(p2, simple)
        cl = _codes(clusters)
        return _expand(_cluster_level(p2[_first_per_code(cl)], simple), cl)
    p1 = 1 - p2 if p1 is None else np.asarray(p1, dtype=float)
    v = np.concatenate([p1, p2])
    P = np.outer(v, v)      # across blocks: independent
    bl = _codes(blocks)
    for b in range(int(bl.max()) + 1):
        ids = np.flatnonzero(bl == b)
        sub = np.concatenate([ids, n + ids])
        if clusters is None:
            if len(np.unique(p2[ids])) > 1:
                raise DeclarationError("horvitz_thompson: treatment probabilities must be "
                                       "fixed within blocks for block randomized designs.")
            Pb = _cluster_level(np.repeat(p2[ids[0]], len(ids)), False)
        else:
            cl = _codes(np.asarray(clusters)[ids])
            Pb = _expand(_cluster_level(p2[ids][_first_per_code(cl)], False), cl)
        P[np.ix_(sub, sub)] = Pb
    return P


def _names(c1: Any, c2: Any, n: int) -> list[str]:
    return [f"{c1}_{i}" for i in range(1, n + 1)] + [f"{c2}_{i}" for i in range(1, n + 1)]


def declaration_to_condition_pr_mat(ra_declaration: Any, condition1: Any = None,
                                    condition2: Any = None, prob_matrix: Any = None,
                                    data: Any = None) -> pd.DataFrame:
    """Joint condition probabilities of a random assignment declaration (estimatr).

    Parameters
    ----------
    ra_declaration : RADeclaration
        A two-arm declaration from :func:`~declaredesign.assign.declare_ra`.
    condition1, condition2 : optional
        Control and treatment labels (default: the declaration's two conditions); give
        both or neither.
    prob_matrix : array_like, optional
        ``(N, 2)`` marginal probabilities to use instead of the declaration's.
    data : pandas.DataFrame, optional
        Data for declarations that name columns (``blocks="school"``).

    Returns
    -------
    pandas.DataFrame
        ``2N x 2N``; rows and columns ``"<condition1>_1" ... "<condition2>_N"``.

    Examples
    --------
    >>> from declaredesign.assign import declare_ra
    >>> pm = declaration_to_condition_pr_mat(declare_ra(N=4, m=2))
    >>> pm.shape, round(float(pm.iloc[4, 5]), 4)
    ((8, 8), 0.1667)
    """
    from ..assign import RADeclaration

    func = "declaration_to_condition_pr_mat"
    if not isinstance(ra_declaration, RADeclaration):
        fail(func, "ra_declaration", ra_declaration, "a declaration from declare_ra()",
             shown=type(ra_declaration).__name__)
    probs = ra_declaration.probabilities(data)
    conds = list(ra_declaration.conditions_)
    if prob_matrix is None and probs.shape[1] > 2:
        fail(func, "ra_declaration", ra_declaration, "a two-arm declaration (this one has "
             f"{probs.shape[1]} conditions)", shown="<RADeclaration>")
    if (condition1 is None) != (condition2 is None):
        raise DeclarationError(f"{func}(condition1={condition1!r}, condition2={condition2!r}): "
                               "give both condition1 and condition2, or neither.")
    if condition1 is None:
        condition1, condition2 = conds[0], conds[1]
    for arg, c in (("condition1", condition1), ("condition2", condition2)):
        if c not in conds:
            fail(func, arg, c, f"one of the declaration's conditions {conds}")
    if prob_matrix is not None:
        pm = np.asarray(prob_matrix, dtype=float)
        if pm.ndim != 2 or pm.shape[1] != 2:
            fail(func, "prob_matrix", prob_matrix, "an (N, 2) matrix", shown="<array>")
        p1, p2 = pm[:, 0], pm[:, 1]
    else:
        # labels match by value (treatment 1.0 is the declaration's condition 1)
        p1 = probs[f"prob_{next(c for c in conds if c == condition1)}"].to_numpy()
        p2 = probs[f"prob_{next(c for c in conds if c == condition2)}"].to_numpy()
    mat = _declaration_matrix(func, ra_declaration, p1, p2, data)
    names = _names(condition1, condition2, len(p2))
    return pd.DataFrame(mat, index=names, columns=names)


def _resolve(decl_value: Any, data: Any) -> np.ndarray | None:
    if decl_value is None:
        return None
    if isinstance(decl_value, str):
        return np.asarray(data[decl_value])
    return np.asarray(decl_value)


def _declaration_matrix(func: str, decl: Any, p1: np.ndarray, p2: np.ndarray, data: Any
                        ) -> np.ndarray:
    kind = decl.ra_type
    blocks = _resolve(decl.blocks, data)
    clusters = _resolve(decl.clusters, data)
    if kind == "simple":
        v = np.concatenate([p1, p2])
        P = np.outer(v, v)
        n = len(p2)
        i = np.arange(n)
        P[i, i] = p1
        P[n + i, n + i] = p2
        P[i, n + i] = 0.0
        P[n + i, i] = 0.0
        return P
    if kind == "complete":
        if len(np.unique(p2)) > 1:
            raise DeclarationError(f"{func}: treatment probabilities must be fixed for "
                                   "complete randomized designs.")
        return _cluster_level(p2, False)
    if kind == "clustered":
        return _pr_mat_design(p2, clusters=clusters, blocks=None, simple=bool(decl.simple))
    return _pr_mat_design(p2, clusters=clusters, blocks=blocks, simple=False, p1=p1)


def permutations_to_condition_pr_mat(permutations: Any) -> pd.DataFrame:
    """Condition probability matrix from a ``N x R`` matrix of possible 0/1 assignments.

    Each column is one equally likely assignment (as from
    :func:`~declaredesign.assign.obtain_permutation_matrix`).

    Examples
    --------
    >>> import numpy as np
    >>> pm = permutations_to_condition_pr_mat(np.array([[1, 0], [0, 1]]))
    >>> pm.to_numpy()[2, 3]
    np.float64(0.0)
    """
    perms = np.asarray(permutations)
    if perms.ndim != 2 or not np.isin(perms, [0, 1]).all():
        fail("permutations_to_condition_pr_mat", "permutations", permutations,
             "a matrix of 0s and 1s", shown="<array>")
    stacked = np.vstack([1 - perms, perms]).astype(float)
    mat = stacked @ stacked.T / perms.shape[1]
    names = _names(0, 1, perms.shape[0])
    return pd.DataFrame(mat, index=names, columns=names)


# ------------------------------------------------------------------------- variance
def _var_partial(y: np.ndarray, P: np.ndarray) -> float:
    d = np.diag(P)
    cov = P - np.outer(d, d)
    zero = P == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(zero, np.outer(y, y) * cov + (y ** 2 * d)[:, None] / 2
                        + (y ** 2 * d)[None, :] / 2, np.outer(y, y) * cov / P)
    np.fill_diagonal(term, 0.0)
    return float(term.sum())


def _covar_partial(y1: np.ndarray, y0: np.ndarray, P10: np.ndarray, p1: np.ndarray,
                   p0: np.ndarray) -> float:
    num = np.outer(y1, y0) * (P10 - np.outer(p1, p0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.where(P10 == 0, num, num / P10).sum())


def _ht_internal(y: np.ndarray, t2: np.ndarray, p2: np.ndarray, cl: np.ndarray | None,
                 P: np.ndarray | None, se_type: str) -> tuple[float, float, int]:
    """Estimate, SE and number of units for one block (or the whole sample)."""
    N = len(y)
    se = np.nan
    if cl is not None:
        if se_type == "constant":
            raise DeclarationError("horvitz_thompson(se_type='constant'): se_type must be "
                                   "'youngs' for clustered designs ('constant' is only "
                                   "supported for simple random designs); got 'constant'.")
        codes = _codes(cl)
        first = _first_per_code(codes)
        order = np.sort(first)           # clusters in order of first appearance, as R
        k = len(order)
        totals = np.bincount(codes, weights=y)
        ct2 = t2[order]
        tot = totals[codes[order]]
        pr = p2[order]
        Y2 = tot[ct2] / pr[ct2]
        Y1 = tot[~ct2] / (1 - pr[~ct2])
        diff = (Y2.sum() - Y1.sum()) / N
        if se_type != "none":
            sub = np.concatenate([order, N + order])
            Pc = P[np.ix_(sub, sub)]
            i2, i1 = np.flatnonzero(ct2), np.flatnonzero(~ct2)
            v = (np.sum(Y2 ** 2) + np.sum(Y1 ** 2) + _var_partial(Y2, Pc[np.ix_(k + i2, k + i2)])
                 + _var_partial(Y1, Pc[np.ix_(i1, i1)])
                 - 2 * _covar_partial(Y2, Y1, Pc[np.ix_(k + i2, i1)], pr[ct2], 1 - pr[~ct2]))
            with np.errstate(invalid="ignore"):
                se = float(np.sqrt(v) / N)
        return float(diff), se, N
    Y2 = y[t2] / p2[t2]
    Y1 = y[~t2] / (1 - p2[~t2])
    diff = (Y2.sum() - Y1.sum()) / N
    if se_type == "none":
        return float(diff), se, N
    if P is None:
        if se_type == "constant":
            pp = p2
            y0 = np.where(~t2, y / (1 - pp), (y - diff) / (1 - pp))
            y1 = np.where(t2, y / pp, (y + diff) / pp)
            cross = np.sum(np.concatenate([y[t2], y[~t2] + diff])
                           * np.concatenate([y[t2] - diff, y[~t2]]))
            v = (np.sum((1 - pp) * pp * y1 ** 2) + np.sum(pp * (1 - pp) * y0 ** 2)
                 + 2 * cross)
            with np.errstate(invalid="ignore"):
                se = float(np.sqrt(v) / N)
        else:
            se = float(np.sqrt(np.sum(Y2 ** 2) + np.sum(Y1 ** 2)) / N)
        return float(diff), se, N
    if se_type == "constant":
        raise DeclarationError("horvitz_thompson(se_type='constant'): se_type must be "
                               "'youngs' unless the design is simple random assignment "
                               "('constant' is only supported for simple designs); got "
                               "'constant'.")
    i2, i1 = np.flatnonzero(t2), np.flatnonzero(~t2)
    v = (np.sum(Y2 ** 2) + np.sum(Y1 ** 2) + _var_partial(Y2, P[np.ix_(N + i2, N + i2)])
         + _var_partial(Y1, P[np.ix_(i1, i1)])
         - 2 * _covar_partial(Y2, Y1, P[np.ix_(N + i2, i1)], p2[t2], 1 - p2[~t2]))
    if np.isnan(v) or v < 0:
        import warnings

        from ..errors import FitWarning
        warnings.warn("horvitz_thompson: the variance estimate is "
                      + ("NaN (a complex condition probability matrix?)" if np.isnan(v)
                         else "below 0") + "; the standard error is NA.", FitWarning,
                      stacklevel=3)
        return float(diff), np.nan, N
    return float(diff), float(np.sqrt(v) / N), N


# --------------------------------------------------------------------------- result
@dataclass
class HorvitzThompsonFit(SingleEstimateFit):
    """Result of :func:`horvitz_thompson` (z-based inference: ``df`` is NaN)."""

    term: str
    estimate: float
    std_error: float
    statistic: float
    p_value: float
    conf_low: float
    conf_high: float
    df: float
    outcome: str
    nobs: int
    condition1: Any
    condition2: Any
    se_type: str
    alpha: float
    condition_pr_mat: np.ndarray | None = None

    def __repr__(self) -> str:
        return self.tidy().to_string(index=False)


def z_cis(est: float, se: float, alpha: float, ci: bool) -> tuple[float, float, float, float]:
    """z statistic, two-sided normal p-value and normal CI (estimatr's ttest = FALSE)."""
    if not ci:
        return np.nan, np.nan, np.nan, np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    p = 2 * stats.norm.sf(abs(z))
    crit = stats.norm.ppf(1 - alpha / 2) * se
    return float(z), float(p), float(est - crit), float(est + crit)


def _column_or_scalar(func: str, arg: str, value: Any, cols: Mapping[str, Any], n: int
                      ) -> tuple[np.ndarray | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        return np.full(n, float(value)), None
    name = check_column_arg(func, arg, value, cols)
    return np.asarray(cols[name]), name


def _horvitz_thompson_batched(batch, formula, **kwargs):
    from ._kernels_more import horvitz_thompson_kernel
    return horvitz_thompson_kernel(batch, formula, **kwargs)


@batched(_horvitz_thompson_batched)
def horvitz_thompson(formula: str, data: pd.DataFrame, blocks: str | None = None,
                     clusters: str | None = None, simple: bool | None = None,
                     condition_prs: Any = None, condition_pr_mat: Any = None,
                     ra_declaration: Any = None, subset: Any = None, condition1: Any = None,
                     condition2: Any = None, se_type: str = "youngs", ci: bool = True,
                     alpha: float = 0.05, return_condition_pr_mat: bool = False
                     ) -> HorvitzThompsonFit:
    """Horvitz-Thompson estimate of the average treatment effect (estimatr).

    Parameters
    ----------
    formula : str
        ``"outcome ~ treatment"``.
    data : pandas.DataFrame
        The data; rows with a missing value in a used column are dropped.
    blocks, clusters : str, optional
        Columns of block and cluster ids (not with ``ra_declaration``).
    simple : bool, optional
        Whether assignment was simple (independent) rather than complete; default True
        when the design is learned from the arguments.
    condition_prs : str or float, optional
        Column (or one number) of each unit's probability of being in ``condition2``.
        Without a declaration or matrix, simple assignment is assumed (unless
        ``simple=False``); without it, the probability is learned from the data.
    condition_pr_mat : array_like, optional
        ``2N x 2N`` joint condition probabilities (see
        :func:`declaration_to_condition_pr_mat`), N the rows used.
    ra_declaration : RADeclaration, optional
        The assignment procedure (:func:`~declaredesign.assign.declare_ra`); its blocks,
        clusters and probabilities are used.
    subset : str or array of bool, optional
        Rows to use.
    condition1, condition2 : optional
        Control and treatment values.
    se_type : {"youngs", "constant", "none"}
        Young's-inequality bound (default), constant-effects variance (simple designs
        only) or none.
    ci : bool
        Compute z statistics, p-values and normal confidence intervals.
    alpha : float
        Confidence level ``1 - alpha``.
    return_condition_pr_mat : bool
        Keep the condition probability matrix on the fit.

    Returns
    -------
    HorvitzThompsonFit

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0, 6.0, 5.0], "z": [0, 0, 0, 1, 1, 1],
    ...                    "p": 0.5})
    >>> fit = horvitz_thompson("y ~ z", df, condition_prs="p")
    >>> float(fit.estimate), round(fit.std_error, 4)
    (3.0, 3.1798)
    """
    func = "horvitz_thompson"
    cols = data_columns(func, data)
    alpha = check_alpha(func, alpha)
    if se_type not in ("youngs", "constant", "none"):
        fail(func, "se_type", se_type, "one of 'youngs', 'constant', 'none'")
    if simple is not None and not isinstance(simple, (bool, np.bool_)):
        fail(func, "simple", simple, "True, False or None")
    outcome, treat = outcome_and_treatment(func, formula, cols)
    check_numeric(func, "formula", outcome, np.asarray(cols[outcome]))
    n_all = len(np.asarray(cols[outcome]))
    if ra_declaration is not None:
        from ..assign import RADeclaration
        if not isinstance(ra_declaration, RADeclaration):
            fail(func, "ra_declaration", ra_declaration, "a declaration from declare_ra()",
                 shown=type(ra_declaration).__name__)
        given = [a for a, v in (("clusters", clusters), ("condition_prs", condition_prs),
                                ("blocks", blocks), ("condition_pr_mat", condition_pr_mat))
                 if v is not None]
        if given:
            fail(func, given[0], "...", "None when ra_declaration is given (the declaration "
                 "holds the design)", shown="...")
        if ra_declaration.num_arms_ > 2:
            fail(func, "ra_declaration", ra_declaration, "a two-arm declaration",
                 shown="<RADeclaration>")
        conds = list(ra_declaration.conditions_)
        if condition2 is not None and condition2 not in conds:
            fail(func, "condition2", condition2, f"one of the declaration's conditions {conds}")
        probs = ra_declaration.probabilities(data)
        if len(probs) != n_all:
            fail(func, "ra_declaration", ra_declaration, f"a declaration for the {n_all} rows "
                 f"of the data (it has {len(probs)})", shown="<RADeclaration>")
        c2_decl = conds[1] if condition2 is None else condition2
        p_decl = probs[f"prob_{next(c for c in conds if c == c2_decl)}"].to_numpy()
        bl_all = _resolve(ra_declaration.blocks, data)
        cl_all = _resolve(ra_declaration.clusters, data)
    else:
        bl_all = np.asarray(cols[check_column_arg(func, "blocks", blocks, cols)]) \
            if blocks is not None else None
        cl_all = np.asarray(cols[check_column_arg(func, "clusters", clusters, cols)]) \
            if clusters is not None else None
        p_decl, _ = _column_or_scalar(func, "condition_prs", condition_prs, cols, n_all)
        if p_decl is not None:
            check_numeric(func, "condition_prs", condition_prs, p_decl)
            p_decl = p_decl.astype(float)
    rows = subset_mask(func, subset, cols, n_all)
    for arr in (np.asarray(cols[outcome]), np.asarray(cols[treat]), bl_all, cl_all, p_decl):
        if arr is not None:
            rows &= ~_is_missing(arr)
    y = np.asarray(cols[outcome], dtype=float)[rows]
    t = np.asarray(cols[treat])[rows]
    bl = bl_all[rows] if bl_all is not None else None
    cl = cl_all[rows] if cl_all is not None else None
    p2 = p_decl[rows] if p_decl is not None else None
    if p2 is not None and np.any((p2 <= 0) | (p2 > 1)):
        fail(func, "condition_prs", condition_prs, "probabilities in (0, 1]",
             shown=repr(condition_prs) if isinstance(condition_prs, str) else "<values>")
    n = len(y)
    if n == 0:
        raise EstimationError(f"{func}: no complete rows to estimate from.")
    P = None
    c1, c2 = parse_conditions(func, t, condition1, condition2)
    if ra_declaration is not None:
        if ra_declaration.ra_type != "simple" and se_type != "none":
            full = declaration_to_condition_pr_mat(ra_declaration, c1, c2,
                                                   data=data).to_numpy()
            idx = np.flatnonzero(rows)
            P = full[np.ix_(np.r_[idx, n_all + idx], np.r_[idx, n_all + idx])]
    elif condition_pr_mat is not None:
        P = np.asarray(condition_pr_mat, dtype=float)
        if P.shape != (2 * n, 2 * n):
            raise DeclarationError(
                f"{func}(condition_pr_mat=<{P.shape[0]} x {P.shape[1] if P.ndim > 1 else 1}>): "
                f"condition_pr_mat must be 2N x 2N with N = {n}, the rows used after dropping "
                f"missing values; got {P.shape[0]} rows.")
    keep = (t == c1) | (t == c2)
    t2 = t == c2
    if ra_declaration is None and condition_pr_mat is None:
        simple_ = True if simple is None else bool(simple)
        if bl is None and cl is None:
            if simple_:
                if p2 is None:
                    p2 = np.full(n, np.mean(t2))
            else:
                if p2 is None:
                    p2 = np.full(n, np.mean(t2))
                elif len(np.unique(p2)) > 1:
                    raise DeclarationError(f"{func}(simple=False): treatment probabilities "
                                           "must be fixed for complete randomized designs.")
                if se_type != "none":
                    P = _cluster_level(np.full(n, p2[0]), False)
        elif bl is None:
            cc = _codes(cl)
            nt = np.bincount(cc, weights=t2)
            if np.any((nt > 0) & (nt < np.bincount(cc))):
                raise DeclarationError(f"{func}(clusters={clusters!r}): treatment condition "
                                       "must be constant within clusters.")
            if p2 is None:
                p2 = np.full(n, float(np.mean(nt > 0)))
            if se_type != "none":
                P = _pr_mat_design(p2, clusters=cl, blocks=None, simple=simple_)
        else:
            if p2 is None:
                bc = _codes(bl)
                if cl is None:
                    p2 = (np.bincount(bc, weights=t2) / np.bincount(bc))[bc]
                else:
                    cc = _codes(cl)
                    nt = np.bincount(cc, weights=t2)
                    if np.any((nt > 0) & (nt < np.bincount(cc))):
                        raise DeclarationError(f"{func}(clusters={clusters!r}): treatment "
                                               "condition must be constant within clusters.")
                    first = _first_per_code(cc)
                    cl_treat = nt > 0
                    cl_block = bc[first]
                    p2 = (np.bincount(cl_block, weights=cl_treat)
                          / np.bincount(cl_block))[bc]
            P = _pr_mat_design(p2, clusters=cl, blocks=bl, simple=False)
    if p2 is None:
        p2 = np.diag(P)[n:].copy()
    if cl is not None:
        cc = _codes(cl)
        first = _first_per_code(cc)
        if np.any(p2 != p2[first][cc]):
            raise DeclarationError(f"{func}(condition_prs={condition_prs!r}): condition_prs "
                                   "must be constant within clusters.")
    # units in neither condition leave the estimate (and the matrix)
    if not keep.all():
        y, t2, p2 = y[keep], t2[keep], p2[keep]
        bl = bl[keep] if bl is not None else None
        cl = cl[keep] if cl is not None else None
        if P is not None:
            ki = np.flatnonzero(keep)
            P = P[np.ix_(np.r_[ki, n + ki], np.r_[ki, n + ki])]
        n = len(y)
    if bl is None:
        est, se, nobs = _ht_internal(y, t2, p2, cl, P, se_type)
    else:
        bc = _codes(bl)
        if cl is not None:
            pairs = np.unique(np.column_stack([_codes(cl), bc]), axis=0)
            if len(np.unique(pairs[:, 0])) != len(pairs):
                raise DeclarationError(f"{func}(clusters={clusters!r}): clusters must be "
                                       "nested within blocks.")
        ests, ses, ns = [], [], []
        for b in range(int(bc.max()) + 1):
            ids = np.flatnonzero(bc == b)
            sub = np.r_[ids, n + ids]
            e_, s_, m_ = _ht_internal(y[ids], t2[ids], p2[ids],
                                      cl[ids] if cl is not None else None,
                                      P[np.ix_(sub, sub)] if P is not None else None, se_type)
            ests.append(e_)
            ses.append(s_)
            ns.append(m_)
        ests, ses, ns = np.array(ests), np.array(ses), np.array(ns, dtype=float)
        nobs = int(ns.sum())
        est = float(np.sum(ests * ns / nobs))
        se = float(np.sqrt(np.sum(ses ** 2 * (ns / nobs) ** 2))) if se_type != "none" \
            else np.nan
    z, p, lo, hi = z_cis(est, se, alpha, ci)
    add_label = not (c2 == 1 and c1 == 0)
    term = f"{treat}{c2}" if add_label else treat
    return HorvitzThompsonFit(
        term=term, estimate=est, std_error=se, statistic=z, p_value=p, conf_low=lo,
        conf_high=hi, df=np.nan, outcome=outcome, nobs=int(nobs), condition1=c1,
        condition2=c2, se_type=se_type, alpha=alpha,
        condition_pr_mat=P if return_condition_pr_mat else None)
