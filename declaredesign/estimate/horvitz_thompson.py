"""``horvitz_thompson``: estimatr's design-based Horvitz-Thompson estimator.

Every unit's outcome is weighted by the inverse of the probability of the condition it
is in; the variance uses the joint condition probabilities of the design
(:mod:`.condition_probabilities`, which holds the derivation). Clustered designs sum
outcomes to cluster totals first. Under simple random assignment the joint probabilities
are products of the marginals and the variance is ``(sum Y2^2 + sum Y1^2) / N^2``;
``se_type="constant"`` instead imputes the other potential outcome with a constant
effect.

The kernel handles designs learned from the arguments (simple or complete, with or
without blocks and clusters, probabilities given or learned) and two-arm declarations
whose blocks/clusters are column names: the joint probabilities then take three values
within a block, so the variance reduces to sums per (simulation, block). It declines
explicit ``condition_pr_mat`` (and declarations when rows are dropped) and the
simulations the closed forms cannot take.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._validation import fail
from ..assign import RADeclaration
from ..batch import Batch
from ..errors import DeclarationError, EstimationError, FitWarning
from .arguments import (
    bind_vectors,
    check_alpha,
    check_column_arg,
    check_numeric,
    data_columns,
    outcome_and_treatment,
    parse_conditions,
    spec_keywords,
    subset_mask,
    two_sided_variables,
)
from .batch_frame import columns_for, decline, decline_all, group_index, subset_view
from .condition_probabilities import (
    cluster_level,
    codes_of,
    covar_partial,
    declaration_to_condition_pr_mat,
    first_per_code,
    joint_complete,
    permutations_to_condition_pr_mat,
    pr_mat_design,
    resolve_column,
    var_partial,
    var_partial_sums,
)
from .inference import z_cis, z_tests
from .model_frame import _is_missing
from .protocol import KernelResult, register_estimator
from .single_estimate_fit import SingleEstimateFit

__all__ = ["HorvitzThompsonFit", "HorvitzThompsonSpec", "declaration_to_condition_pr_mat",
           "horvitz_thompson", "horvitz_thompson_kernel", "permutations_to_condition_pr_mat"]

_FUNC = "horvitz_thompson"
_SE_TYPES = ("youngs", "constant", "none")


# ------------------------------------------------------------------------------ spec
@dataclass(frozen=True, eq=False)
class HorvitzThompsonSpec:
    """The validated arguments of :func:`horvitz_thompson` (build with :meth:`parse`)."""

    formula: str
    blocks: str | None = None
    clusters: str | None = None
    simple: bool | None = None
    condition_prs: Any = None
    condition_pr_mat: Any = None
    ra_declaration: Any = None
    subset: Any = None
    condition1: Any = None
    condition2: Any = None
    se_type: str = "youngs"
    ci: bool = True
    alpha: float = 0.05
    return_condition_pr_mat: bool = False

    @classmethod
    def parse(cls, formula: str, **kwargs: Any) -> HorvitzThompsonSpec:
        """Validate the arguments once (unknown keywords are a DeclarationError)."""
        kw = spec_keywords(_FUNC, cls, kwargs)
        kw["alpha"] = check_alpha(_FUNC, kw["alpha"])
        if kw["se_type"] not in _SE_TYPES:
            fail(_FUNC, "se_type", kw["se_type"], "one of 'youngs', 'constant', 'none'")
        simple = kw["simple"]
        if simple is not None and not isinstance(simple, (bool, np.bool_)):
            fail(_FUNC, "simple", simple, "True, False or None")
        two_sided_variables(_FUNC, formula)
        if kw["ra_declaration"] is not None:
            _check_declaration(kw)
        return cls(formula=formula, **kw)

    @property
    def outcome(self) -> str | None:
        """The outcome named on the formula's left-hand side."""
        return two_sided_variables(_FUNC, self.formula)[0]


def _check_declaration(kw: Mapping[str, Any]) -> None:
    decl = kw["ra_declaration"]
    if not isinstance(decl, RADeclaration):
        fail(_FUNC, "ra_declaration", decl, "a declaration from declare_ra()",
             shown=type(decl).__name__)
    given = [a for a in ("clusters", "condition_prs", "blocks", "condition_pr_mat")
             if kw[a] is not None]
    if given:
        fail(_FUNC, given[0], "...", "None when ra_declaration is given (the declaration "
             "holds the design)", shown="...")
    if decl.num_arms_ > 2:
        fail(_FUNC, "ra_declaration", decl, "a two-arm declaration", shown="<RADeclaration>")
    conds = list(decl.conditions_)
    if kw["condition2"] is not None and kw["condition2"] not in conds:
        fail(_FUNC, "condition2", kw["condition2"],
             f"one of the declaration's conditions {conds}")


# ---------------------------------------------------------------------------- result
@dataclass
class HorvitzThompsonFit(SingleEstimateFit):
    """Result of :func:`horvitz_thompson` (z-based inference: ``df`` is NaN)."""

    #: inference is normal (z), not t: linear hypotheses follow suit
    normal_inference: ClassVar[bool] = True

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
        """Show the tidy table."""
        return self.tidy().to_string(index=False)


# ------------------------------------------------------------------ the standalone fit
def _young_variance(Y2: np.ndarray, Y1: np.ndarray, P: np.ndarray, k: int, i2: np.ndarray,
                    i1: np.ndarray, p2: np.ndarray, p1: np.ndarray) -> float:
    """``N^2 V`` from the (unit or cluster) ``2k x 2k`` matrix ``P``."""
    return (np.sum(Y2 ** 2) + np.sum(Y1 ** 2) + var_partial(Y2, P[np.ix_(k + i2, k + i2)])
            + var_partial(Y1, P[np.ix_(i1, i1)])
            - 2 * covar_partial(Y2, Y1, P[np.ix_(k + i2, i1)], p2, p1))


def _ht_clustered(y: np.ndarray, t2: np.ndarray, p2: np.ndarray, cl: np.ndarray,
                  P: np.ndarray | None, se_type: str) -> tuple[float, float, int]:
    N = len(y)
    if se_type == "constant":
        raise DeclarationError("horvitz_thompson(se_type='constant'): se_type must be "
                               "'youngs' for clustered designs ('constant' is only "
                               "supported for simple random designs); got 'constant'.")
    codes = codes_of(cl)
    order = np.sort(first_per_code(codes))   # clusters in order of first appearance, as R
    k = len(order)
    totals = np.bincount(codes, weights=y)
    ct2 = t2[order]
    tot = totals[codes[order]]
    pr = p2[order]
    Y2 = tot[ct2] / pr[ct2]
    Y1 = tot[~ct2] / (1 - pr[~ct2])
    diff = (Y2.sum() - Y1.sum()) / N
    se = np.nan
    if se_type != "none":
        sub = np.concatenate([order, N + order])
        v = _young_variance(Y2, Y1, P[np.ix_(sub, sub)], k, np.flatnonzero(ct2),
                            np.flatnonzero(~ct2), pr[ct2], 1 - pr[~ct2])
        with np.errstate(invalid="ignore"):
            se = float(np.sqrt(v) / N)
    return float(diff), se, N


def _simple_se(y: np.ndarray, t2: np.ndarray, p2: np.ndarray, Y2: np.ndarray, Y1: np.ndarray,
               diff: float, se_type: str) -> float:
    N = len(y)
    if se_type != "constant":
        return float(np.sqrt(np.sum(Y2 ** 2) + np.sum(Y1 ** 2)) / N)
    pp = p2
    y0 = np.where(~t2, y / (1 - pp), (y - diff) / (1 - pp))
    y1 = np.where(t2, y / pp, (y + diff) / pp)
    cross = np.sum(np.concatenate([y[t2], y[~t2] + diff])
                   * np.concatenate([y[t2] - diff, y[~t2]]))
    v = np.sum((1 - pp) * pp * y1 ** 2) + np.sum(pp * (1 - pp) * y0 ** 2) + 2 * cross
    with np.errstate(invalid="ignore"):
        return float(np.sqrt(v) / N)


def _ht_internal(y: np.ndarray, t2: np.ndarray, p2: np.ndarray, cl: np.ndarray | None,
                 P: np.ndarray | None, se_type: str) -> tuple[float, float, int]:
    """Estimate, SE and number of units for one block (or the whole sample)."""
    if cl is not None:
        return _ht_clustered(y, t2, p2, cl, P, se_type)
    N = len(y)
    Y2 = y[t2] / p2[t2]
    Y1 = y[~t2] / (1 - p2[~t2])
    diff = (Y2.sum() - Y1.sum()) / N
    if se_type == "none":
        return float(diff), np.nan, N
    if P is None:
        return float(diff), _simple_se(y, t2, p2, Y2, Y1, diff, se_type), N
    if se_type == "constant":
        raise DeclarationError("horvitz_thompson(se_type='constant'): se_type must be "
                               "'youngs' unless the design is simple random assignment "
                               "('constant' is only supported for simple designs); got "
                               "'constant'.")
    v = _young_variance(Y2, Y1, P, N, np.flatnonzero(t2), np.flatnonzero(~t2), p2[t2],
                        1 - p2[~t2])
    if np.isnan(v) or v < 0:
        warnings.warn("horvitz_thompson: the variance estimate is "
                      + ("NaN (a complex condition probability matrix?)" if np.isnan(v)
                         else "below 0") + "; the standard error is NA.", FitWarning,
                      stacklevel=4)
        return float(diff), np.nan, N
    return float(diff), float(np.sqrt(v) / N), N


def _column_or_scalar(arg: str, value: Any, cols: Mapping[str, Any], n: int
                      ) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        return np.full(n, float(value))
    return np.asarray(cols[check_column_arg(_FUNC, arg, value, cols)])


@dataclass
class _Design:
    """One dataset's rows used, with the design's blocks, clusters and probabilities."""

    y: np.ndarray
    t: np.ndarray
    bl: np.ndarray | None
    cl: np.ndarray | None
    p2: np.ndarray | None
    rows: np.ndarray
    n_all: int


def _design(spec: HorvitzThompsonSpec, data: Any, cols: Mapping[str, Any], outcome: str,
            treat: str) -> _Design:
    """Rows used and the design's columns (from the declaration or the arguments)."""
    n_all = len(np.asarray(cols[outcome]))
    decl = spec.ra_declaration
    if decl is not None:
        conds = list(decl.conditions_)
        probs = decl.probabilities(data)
        if len(probs) != n_all:
            fail(_FUNC, "ra_declaration", decl, f"a declaration for the {n_all} rows "
                 f"of the data (it has {len(probs)})", shown="<RADeclaration>")
        c2_decl = conds[1] if spec.condition2 is None else spec.condition2
        p_decl = probs[f"prob_{next(c for c in conds if c == c2_decl)}"].to_numpy()
        bl_all = resolve_column(decl.blocks, data)
        cl_all = resolve_column(decl.clusters, data)
    else:
        bl_all = np.asarray(cols[check_column_arg(_FUNC, "blocks", spec.blocks, cols)]) \
            if spec.blocks is not None else None
        cl_all = np.asarray(cols[check_column_arg(_FUNC, "clusters", spec.clusters, cols)]) \
            if spec.clusters is not None else None
        p_decl = _column_or_scalar("condition_prs", spec.condition_prs, cols, n_all)
        if p_decl is not None:
            check_numeric(_FUNC, "condition_prs", spec.condition_prs, p_decl)
            p_decl = p_decl.astype(float)
    rows = subset_mask(_FUNC, spec.subset, cols, n_all)
    for arr in (np.asarray(cols[outcome]), np.asarray(cols[treat]), bl_all, cl_all, p_decl):
        if arr is not None:
            rows &= ~_is_missing(arr)
    return _Design(y=np.asarray(cols[outcome], dtype=float)[rows],
                   t=np.asarray(cols[treat])[rows],
                   bl=bl_all[rows] if bl_all is not None else None,
                   cl=cl_all[rows] if cl_all is not None else None,
                   p2=p_decl[rows] if p_decl is not None else None, rows=rows, n_all=n_all)


def check_probabilities(spec: HorvitzThompsonSpec, p2: np.ndarray) -> None:
    """Condition probabilities must lie in (0, 1] (both paths)."""
    if np.any((p2 <= 0) | (p2 > 1)):
        cp = spec.condition_prs
        fail(_FUNC, "condition_prs", cp, "probabilities in (0, 1]",
             shown=repr(cp) if isinstance(cp, str) else "<values>")


def _check_constant_in_clusters(cl: np.ndarray, t2: np.ndarray, spec: HorvitzThompsonSpec
                                ) -> tuple[np.ndarray, np.ndarray]:
    cc = codes_of(cl)
    nt = np.bincount(cc, weights=t2)
    if np.any((nt > 0) & (nt < np.bincount(cc))):
        raise DeclarationError(f"{_FUNC}(clusters={spec.clusters!r}): treatment condition "
                               "must be constant within clusters.")
    return cc, nt


def _learned_blocked(d: _Design, t2: np.ndarray, spec: HorvitzThompsonSpec) -> np.ndarray:
    """Treatment probabilities learned within blocks (of units or of clusters)."""
    bc = codes_of(d.bl)
    if d.cl is None:
        return (np.bincount(bc, weights=t2) / np.bincount(bc))[bc]
    cc, nt = _check_constant_in_clusters(d.cl, t2, spec)
    cl_block = bc[first_per_code(cc)]
    return (np.bincount(cl_block, weights=nt > 0) / np.bincount(cl_block))[bc]


def _learned_design(d: _Design, t2: np.ndarray, spec: HorvitzThompsonSpec
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities and joint matrix of a design given by blocks/clusters/simple."""
    n = len(d.y)
    simple_ = True if spec.simple is None else bool(spec.simple)
    p2, P = d.p2, None
    if d.bl is None and d.cl is None:
        if p2 is None:
            p2 = np.full(n, np.mean(t2))
        elif not simple_ and len(np.unique(p2)) > 1:
            raise DeclarationError(f"{_FUNC}(simple=False): treatment probabilities "
                                   "must be fixed for complete randomized designs.")
        if not simple_ and spec.se_type != "none":
            P = cluster_level(np.full(n, p2[0]), False)
    elif d.bl is None:
        _, nt = _check_constant_in_clusters(d.cl, t2, spec)
        if p2 is None:
            p2 = np.full(n, float(np.mean(nt > 0)))
        if spec.se_type != "none":
            P = pr_mat_design(p2, clusters=d.cl, blocks=None, simple=simple_)
    else:
        if p2 is None:
            p2 = _learned_blocked(d, t2, spec)
        P = pr_mat_design(p2, clusters=d.cl, blocks=d.bl, simple=False)
    return p2, P


def _given_matrix(spec: HorvitzThompsonSpec, data: Any, d: _Design, c1: Any, c2: Any
                  ) -> np.ndarray | None:
    """Return the joint matrix of a declaration, or the one given, on the rows used."""
    n = len(d.y)
    decl = spec.ra_declaration
    if decl is not None:
        if decl.ra_type == "simple" or spec.se_type == "none":
            return None
        full = declaration_to_condition_pr_mat(decl, c1, c2, data=data).to_numpy()
        idx = np.flatnonzero(d.rows)
        return full[np.ix_(np.r_[idx, d.n_all + idx], np.r_[idx, d.n_all + idx])]
    P = np.asarray(spec.condition_pr_mat, dtype=float)
    if P.shape != (2 * n, 2 * n):
        raise DeclarationError(
            f"{_FUNC}(condition_pr_mat=<{P.shape[0]} x {P.shape[1] if P.ndim > 1 else 1}>): "
            f"condition_pr_mat must be 2N x 2N with N = {n}, the rows used after dropping "
            f"missing values; got {P.shape[0]} rows.")
    return P


def _by_blocks(d: _Design, t2: np.ndarray, p2: np.ndarray, P: np.ndarray | None,
               spec: HorvitzThompsonSpec) -> tuple[float, float, int]:
    """Block estimates combined by block size (or the whole sample without blocks)."""
    if d.bl is None:
        return _ht_internal(d.y, t2, p2, d.cl, P, spec.se_type)
    n = len(d.y)
    bc = codes_of(d.bl)
    if d.cl is not None:
        pairs = np.unique(np.column_stack([codes_of(d.cl), bc]), axis=0)
        if len(np.unique(pairs[:, 0])) != len(pairs):
            raise DeclarationError(f"{_FUNC}(clusters={spec.clusters!r}): clusters must be "
                                   "nested within blocks.")
    ests, ses, ns = [], [], []
    for b in range(int(bc.max()) + 1):
        ids = np.flatnonzero(bc == b)
        sub = np.r_[ids, n + ids]
        e_, s_, m_ = _ht_internal(d.y[ids], t2[ids], p2[ids],
                                  d.cl[ids] if d.cl is not None else None,
                                  P[np.ix_(sub, sub)] if P is not None else None, spec.se_type)
        ests.append(e_)
        ses.append(s_)
        ns.append(m_)
    ests, ses, ns = np.array(ests), np.array(ses), np.array(ns, dtype=float)
    nobs = int(ns.sum())
    est = float(np.sum(ests * ns / nobs))
    se = float(np.sqrt(np.sum(ses ** 2 * (ns / nobs) ** 2))) if spec.se_type != "none" \
        else np.nan
    return est, se, nobs


def _keep_conditions(d: _Design, keep: np.ndarray, p2: np.ndarray, P: np.ndarray | None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Drop the units in neither condition from the design (and the matrix)."""
    n = len(d.y)
    d.y, d.t = d.y[keep], d.t[keep]
    d.bl = d.bl[keep] if d.bl is not None else None
    d.cl = d.cl[keep] if d.cl is not None else None
    if P is not None:
        ki = np.flatnonzero(keep)
        P = P[np.ix_(np.r_[ki, n + ki], np.r_[ki, n + ki])]
    return p2[keep], P


def fit_horvitz_thompson(spec: HorvitzThompsonSpec, data: Any) -> HorvitzThompsonFit:
    """Return the standalone fit of a validated spec on one dataset."""
    cols = data_columns(_FUNC, data)
    outcome, treat = outcome_and_treatment(_FUNC, spec.formula, cols)
    check_numeric(_FUNC, "formula", outcome, np.asarray(cols[outcome]))
    d = _design(spec, data, cols, outcome, treat)
    if d.p2 is not None:
        check_probabilities(spec, d.p2)
    if len(d.y) == 0:
        raise EstimationError(f"{_FUNC}: no complete rows to estimate from.")
    c1, c2 = parse_conditions(_FUNC, d.t, spec.condition1, spec.condition2)
    given = spec.ra_declaration is not None or spec.condition_pr_mat is not None
    P = _given_matrix(spec, data, d, c1, c2) if given else None
    keep = (d.t == c1) | (d.t == c2)
    t2 = d.t == c2
    if given:
        p2 = d.p2
    else:
        p2, P = _learned_design(d, t2, spec)
    if p2 is None:
        p2 = np.diag(P)[len(d.y):].copy()
    if d.cl is not None:
        cc = codes_of(d.cl)
        if np.any(p2 != p2[first_per_code(cc)][cc]):
            raise DeclarationError(f"{_FUNC}(condition_prs={spec.condition_prs!r}): "
                                   "condition_prs must be constant within clusters.")
    if not keep.all():
        t2 = t2[keep]
        p2, P = _keep_conditions(d, keep, p2, P)
    est, se, nobs = _by_blocks(d, t2, p2, P, spec)
    z, p, lo, hi = z_cis(est, se, spec.alpha, spec.ci)
    return HorvitzThompsonFit(
        term=_term(treat, c1, c2), estimate=est, std_error=se, statistic=z, p_value=p,
        conf_low=lo, conf_high=hi, df=np.nan, outcome=outcome, nobs=int(nobs),
        condition1=c1, condition2=c2, se_type=spec.se_type, alpha=spec.alpha,
        condition_pr_mat=P if spec.return_condition_pr_mat else None)


def _term(treat: str, c1: Any, c2: Any) -> str:
    return treat if (c2 == 1 and c1 == 0) else f"{treat}{c2}"


# ------------------------------------------------------------------ public entry
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
    data, vec = bind_vectors(_FUNC, data, blocks=blocks, clusters=clusters,
                             condition_prs=condition_prs)
    blocks, clusters, condition_prs = vec["blocks"], vec["clusters"], vec["condition_prs"]
    spec = HorvitzThompsonSpec.parse(
        formula, blocks=blocks, clusters=clusters, simple=simple, condition_prs=condition_prs,
        condition_pr_mat=condition_pr_mat, ra_declaration=ra_declaration, subset=subset,
        condition1=condition1, condition2=condition2, se_type=se_type, ci=ci, alpha=alpha,
        return_condition_pr_mat=return_condition_pr_mat)
    return fit_horvitz_thompson(spec, data)


# ------------------------------------------------------------------------ batched
def _declaration_design(batch: Batch, decl: Any
                        ) -> tuple[np.ndarray, Any, Any, bool] | None:
    """Row probabilities, blocks, clusters and simplicity of a declaration, or None."""
    if not isinstance(decl, RADeclaration) or decl.num_arms_ != 2:
        return None          # the standalone function raises estimatr's error
    if not all(v is None or isinstance(v, str) for v in (decl.blocks, decl.clusters)):
        return None
    try:
        probs = decl.plan(batch).row_prob_matrix()
    except Exception:  # noqa: BLE001 -- the standalone path reports it per simulation
        return None
    kind = decl.ra_type
    simple_ = kind == "simple" or (kind == "clustered" and bool(decl.simple))
    return probs, decl.blocks, decl.clusters, simple_


@dataclass
class _Stacked:
    """Units (clusters or rows) of every simulation and their groups (blocks or sims)."""

    S: int
    y: np.ndarray
    t2: np.ndarray
    sim: np.ndarray
    up: np.ndarray | None          # each unit's probability (None: learned)
    ut2: np.ndarray
    ytot: np.ndarray
    n_u: np.ndarray
    u_sim: np.ndarray
    ug: np.ndarray                 # group of each unit
    g_sim: np.ndarray
    bad_sim: np.ndarray


def _units(batch: Batch, view: Mapping[str, Any], rows: np.ndarray, y: np.ndarray,
           t2: np.ndarray, p: np.ndarray | None, clusters: str | None, blocks: str | None
           ) -> _Stacked:
    """Outcome totals of units (clusters or rows) and the (simulation, block) groups."""
    S = batch.n_sims
    sim = batch.sim[rows]
    if clusters is not None:
        units = group_index(batch, clusters, sim, np.asarray(view[clusters])[rows])
        u_codes, u_sim = units.codes, units.group_sim
    else:
        u_codes, u_sim = np.arange(len(y)), sim
    U = len(u_sim)
    first = np.full(U, -1)
    first[u_codes[::-1]] = np.arange(len(y))[::-1]
    n_u = np.bincount(u_codes, minlength=U)
    mixed = np.bincount(u_codes, weights=t2, minlength=U)
    bad_sim = np.zeros(S, dtype=bool)
    bad_sim[u_sim[(mixed > 0) & (mixed < n_u)]] = True
    if blocks is not None:
        g = group_index(batch, blocks, sim, np.asarray(view[blocks])[rows])
        ug, g_sim = g.codes[first], g.group_sim
        # clusters must sit in one block
        span = np.zeros(U, dtype=bool)
        span[u_codes[g.codes != ug[u_codes]]] = True
        bad_sim[u_sim[span]] = True
    else:
        ug, g_sim = u_sim, np.arange(S)
    up = None
    if p is not None:
        up = p[first]
        varies = p != up[u_codes]
        if np.any(varies):
            bad_sim[np.unique(sim[varies])] = True
    return _Stacked(S=S, y=y, t2=t2, sim=sim, up=up, ut2=t2[first],
                    ytot=np.bincount(u_codes, weights=y, minlength=U), n_u=n_u, u_sim=u_sim,
                    ug=ug, g_sim=g_sim, bad_sim=bad_sim)


def _group_first(ug: np.ndarray, G: int) -> np.ndarray:
    gfirst = np.full(G, -1)
    gfirst[ug[::-1]] = np.arange(len(ug))[::-1]
    return gfirst


def _complete_variance(u: _Stacked, G: int, Y: np.ndarray, sq2: np.ndarray, sq1: np.ndarray,
                       s2_1: np.ndarray, s1_1: np.ndarray) -> np.ndarray:
    """``N_g^2 V_g`` under complete assignment within each group (three joint values)."""
    ug, ut2 = u.ug, u.ut2
    k_g = np.bincount(ug, minlength=G).astype(float)
    pg = u.up[_group_first(ug, G)]
    j = joint_complete(pg, k_g)
    m2 = np.bincount(ug, weights=ut2, minlength=G)
    m1 = k_g - m2
    v = (sq2 + sq1 + var_partial_sums(j["11"], pg, pg, s2_1, sq2, m2)
         + var_partial_sums(j["00"], 1 - pg, 1 - pg, s1_1, sq1, m1))
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = np.where(j["10"] == 0, s2_1 * s1_1 * (j["10"] - pg * (1 - pg)),
                       s2_1 * s1_1 * (j["10"] - pg * (1 - pg)) / j["10"])
    cov = np.where((m2 > 0) & (m1 > 0), cov, 0.0)
    v = v - 2 * cov
    # a negative or NaN variance is NA in estimatr (with a warning): exact path
    u.bad_sim[u.g_sim[np.isnan(v) | (v < 0)]] = True
    return v


def _group_variance(u: _Stacked, G: int, Y: np.ndarray, est_g: np.ndarray, s2_1: np.ndarray,
                    s1_1: np.ndarray, se_type: str, complete: bool) -> np.ndarray:
    """``N_g^2 V_g`` of every (simulation, block) group."""
    ug, ut2 = u.ug, u.ut2
    sq2 = np.bincount(ug, weights=np.where(ut2, Y ** 2, 0.0), minlength=G)
    sq1 = np.bincount(ug, weights=np.where(ut2, 0.0, Y ** 2), minlength=G)
    if se_type == "constant":
        d, pp, ytot = est_g[ug], u.up, u.ytot
        y0 = np.where(~ut2, ytot / (1 - pp), (ytot - d) / (1 - pp))
        y1 = np.where(ut2, ytot / pp, (ytot + d) / pp)
        cross = np.where(ut2, ytot * (ytot - d), (ytot + d) * ytot)
        return np.bincount(ug, weights=(1 - pp) * pp * y1 ** 2 + pp * (1 - pp) * y0 ** 2
                           + 2 * cross, minlength=G)
    if not complete:
        return sq2 + sq1
    return _complete_variance(u, G, Y, sq2, sq1, s2_1, s1_1)


def _estimates(u: _Stacked, se_type: str, complete: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-simulation estimate and SE from the units' sums by group."""
    ug, ut2, S = u.ug, u.ut2, u.S
    G = len(u.g_sim)
    if u.up is None:
        k_g = np.bincount(ug, minlength=G)
        u.up = (np.bincount(ug, weights=ut2, minlength=G) / np.maximum(k_g, 1))[ug]
    if complete:
        varies = np.zeros(G, dtype=bool)
        varies[ug[u.up != u.up[_group_first(ug, G)[ug]]]] = True
        u.bad_sim[u.g_sim[varies]] = True
    Y = np.where(ut2, u.ytot / u.up, u.ytot / (1 - u.up))
    N_g = np.bincount(ug, weights=u.n_u.astype(float), minlength=G)
    s2_1 = np.bincount(ug, weights=np.where(ut2, Y, 0.0), minlength=G)
    s1_1 = np.bincount(ug, weights=np.where(ut2, 0.0, Y), minlength=G)
    with np.errstate(divide="ignore", invalid="ignore"):
        est_g = (s2_1 - s1_1) / N_g
    var_g = np.full(G, np.nan)
    if se_type != "none":
        v = _group_variance(u, G, Y, est_g, s2_1, s1_1, se_type, complete)
        with np.errstate(invalid="ignore"):
            var_g = v / N_g ** 2
    N = np.bincount(u.g_sim, weights=N_g, minlength=S)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.bincount(u.g_sim, weights=est_g * N_g, minlength=S) / N
        se = np.sqrt(np.bincount(u.g_sim, weights=var_g * (N_g / N[u.g_sim]) ** 2,
                                 minlength=S))
    if se_type == "none":
        se = np.full(S, np.nan)
    return est, se


def _kernel_design(batch: Batch, spec: HorvitzThompsonSpec):
    """Probabilities, blocks, clusters and simplicity for the kernel, or None to decline."""
    blocks, clusters = spec.blocks, spec.clusters
    simple_ = True if spec.simple is None else spec.simple
    decl_p = None
    if spec.ra_declaration is not None:
        # a declaration naming batch columns is the same design as its blocks, clusters
        # and probabilities given as arguments (when no row is dropped, checked later)
        found = _declaration_design(batch, spec.ra_declaration)
        if found is None:
            return None
        decl_p, blocks, clusters, simple_ = found
    exotic = (spec.condition_pr_mat is not None or not isinstance(simple_, (bool, np.bool_))
              or (spec.se_type == "constant" and (blocks is not None or clusters is not None
                                                  or not simple_))
              or not (spec.condition_prs is None or isinstance(spec.condition_prs, str)))
    return None if exotic else (decl_p, blocks, clusters, bool(simple_))


def horvitz_thompson_kernel(batch: Batch, spec: HorvitzThompsonSpec) -> KernelResult:
    """Batched :func:`horvitz_thompson`.

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign.batch import Batch
    >>> b = Batch({"y": np.arange(8.0), "z": np.tile([0, 1], 4), "p": np.full(8, 0.5)},
    ...           sim=np.repeat([0, 1], 4), n_sims=2)
    >>> spec = HorvitzThompsonSpec.parse("y ~ z", condition_prs="p")
    >>> horvitz_thompson_kernel(b, spec).tidy["estimate"].tolist()
    [1.0, 1.0]
    """
    design = _kernel_design(batch, spec)
    cols = batch.columns
    outcome, treat = two_sided_variables(_FUNC, spec.formula)
    if design is None or outcome not in cols or treat not in cols:
        return decline_all(batch)
    decl_p, blocks, clusters, simple_ = design
    blocks = check_column_arg(_FUNC, "blocks", blocks, cols)
    clusters = check_column_arg(_FUNC, "clusters", clusters, cols)
    condition_prs = check_column_arg(_FUNC, "condition_prs", spec.condition_prs, cols)
    # blocks and clusters only need codes: level IDs stay integers (no R strings)
    view = columns_for(batch, [treat])
    rows = subset_mask(_FUNC, spec.subset, subset_view(batch, spec.subset), batch.n_rows)
    for v in (outcome, treat, blocks, clusters, condition_prs):
        if v is not None:
            rows &= ~_is_missing(np.asarray(view[v]))
    check_numeric(_FUNC, "formula", outcome, np.asarray(cols[outcome]))
    if decl_p is not None and not rows.all():
        return decline_all(batch)
    t = np.asarray(view[treat])[rows]
    c1, c2 = parse_conditions(_FUNC, t, spec.condition1, spec.condition2)
    p_rows = None
    if decl_p is not None:
        conds = list(spec.ra_declaration.conditions_)
        if c2 not in conds or c1 not in conds:
            return decline_all(batch)
        p_rows = decl_p[:, next(i for i, c in enumerate(conds) if c == c2)]
    rows[np.flatnonzero(rows)[~((t == c1) | (t == c2))]] = False
    y = np.asarray(cols[outcome], dtype=float)[rows]
    t2 = np.asarray(view[treat])[rows] == c2
    p = np.asarray(cols[condition_prs], dtype=float)[rows] if condition_prs else None
    if p_rows is not None:
        p = p_rows[rows]
    if p is not None:
        check_probabilities(spec, p)
    u = _units(batch, view, rows, y, t2, p, clusters, blocks)
    est, se = _estimates(u, spec.se_type, blocks is not None or not simple_)
    S = batch.n_sims
    n_s = np.bincount(u.sim, minlength=S)
    two = np.bincount(u.sim, weights=t2, minlength=S)
    ok = (n_s > 0) & ~u.bad_sim & (two > 0) & (two < n_s)
    sims = np.flatnonzero(ok)
    zs, pv, lo, hi = z_tests(est[sims], se[sims], spec.alpha, spec.ci)
    main = pd.DataFrame({"sim": sims, "term": _term(treat, c1, c2), "estimate": est[sims],
                         "std_error": se[sims], "statistic": zs, "p_value": pv,
                         "conf_low": lo, "conf_high": hi, "df": np.nan, "outcome": outcome,
                         "error": None, "warning": None})
    return decline(main, ok)


horvitz_thompson = register_estimator(
    horvitz_thompson, parse=HorvitzThompsonSpec.parse, fit=fit_horvitz_thompson,
    kernel=horvitz_thompson_kernel)
