"""``difference_in_means``: estimatr's design-based difference-in-means estimator.

Simple designs use the Welch SE and Welch-Satterthwaite df; clustered designs the CR2 SE
and Bell-McCaffrey df of ``lm_robust`` (in closed form, :func:`.two_arm.clustered_dim`, in
the kernel); blocked designs combine block estimates weighted by block size; blocks of two
units use the matched-pairs variance. The kernel vectorises simple, clustered, weighted,
blocked and matched-pair designs and declines block-clustered and weighted blocked ones
and the simulations where estimatr raises (too few units in an arm or block).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..batch import Batch
from ..errors import DeclarationError, EstimationError
from .arguments import (
    bind_vectors,
    check_alpha,
    check_column_arg,
    check_numeric,
    check_observed,
    check_weights,
    data_columns,
    outcome_and_treatment,
    parse_conditions,
    spec_keywords,
    subset_mask,
    two_sided_variables,
)
from .batch_frame import decline_all, group_index, simulations, subset_view, tidy_result
from .inference import (
    add_cis,
    apply_identification,
    rms,
    screen_scale,
    screen_unidentified,
)
from .model_frame import _finite_sum, _has_missing, _is_missing
from .ols import fit_arrays
from .protocol import KernelResult, register_estimator
from .single_estimate_fit import SingleEstimateFit
from .stacked_ols import lm_core
from .two_arm import blocked_dim, clustered_dim, welch_dim

__all__ = ["DifferenceInMeansFit", "DifferenceInMeansSpec", "difference_in_means",
           "difference_in_means_kernel"]

_FUNC = "difference_in_means"


@dataclass(frozen=True, eq=False)
class DifferenceInMeansSpec:
    """The validated arguments of :func:`difference_in_means` (build with :meth:`parse`)."""

    formula: str
    blocks: str | None = None
    clusters: str | None = None
    weights: str | None = None
    subset: Any = None
    condition1: Any = None
    condition2: Any = None
    ci: bool = True
    alpha: float = 0.05

    @classmethod
    def parse(cls, formula: str, **kwargs: Any) -> DifferenceInMeansSpec:
        """Validate the arguments once (unknown keywords are a DeclarationError)."""
        kw = spec_keywords(_FUNC, cls, kwargs)
        kw["alpha"] = check_alpha(_FUNC, kw["alpha"])
        two_sided_variables(_FUNC, formula)
        return cls(formula=formula, **kw)

    @property
    def outcome(self) -> str | None:
        """The outcome named on the formula's left-hand side."""
        return two_sided_variables(_FUNC, self.formula)[0]


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
        """Show the summary."""
        return self.summary()


# ------------------------------------------------------------------ the standalone fit
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
        if pair_matched:
            return _Part(float(y[t2].mean() - y[~t2].mean()), np.nan, np.nan, nobs, nclusters)
        # the kernel's computation with one group: the same numbers to the last bit
        _, _, diff, se, df = welch_dim(np.zeros(len(y), dtype=np.intp), 1, y, t2)
        return _Part(float(diff[0]), float(se[0]), float(df[0]), nobs, nclusters)
    if pair_matched:
        raise DeclarationError("difference_in_means(weights=...): weights cannot be used with a "
                               "matched-pairs design; got weights with blocks of size 2.")
    f = fit_arrays(y, X, weights=w, se_type="HC2")
    return _Part(f.coef[1], f.se[1], f.df[1], nobs, nclusters)


def _prepare(spec: DifferenceInMeansSpec, data: Any):
    """Columns, outcome and treatment names and the rows used (complete, in the subset)."""
    cols = data_columns(_FUNC, data)
    outcome, treat = outcome_and_treatment(_FUNC, spec.formula, cols)
    blocks = check_column_arg(_FUNC, "blocks", spec.blocks, cols)
    clusters = check_column_arg(_FUNC, "clusters", spec.clusters, cols)
    weights = check_column_arg(_FUNC, "weights", spec.weights, cols)
    check_numeric(_FUNC, "formula", outcome, np.asarray(cols[outcome]))
    if weights is not None:
        check_numeric(_FUNC, "weights", weights, np.asarray(cols[weights]))
    n = len(np.asarray(cols[outcome]))
    rows = subset_mask(_FUNC, spec.subset, cols, n)
    y_all = np.asarray(cols[outcome])
    y_used = y_all if bool(rows.all()) else y_all[rows]
    if not _finite_sum(y_used):     # NaN or infinite values somewhere: the exact checks
        check_observed(_FUNC, outcome, y_used, _is_missing(y_used))
        if y_used.dtype.kind == "f" and np.isinf(y_used).any():
            raise EstimationError(f"{_FUNC}: the outcome {outcome!r} has infinite values; "
                                  "recode or drop those rows.")
    for v in (outcome, treat, blocks, clusters, weights):
        if v is not None and _has_missing(np.asarray(cols[v])):
            rows &= ~_is_missing(np.asarray(cols[v]))
    return cols, outcome, treat, rows


def _check_clusters_constant(cl: np.ndarray, t2: np.ndarray, clusters: str) -> None:
    codes = np.unique(cl, return_inverse=True)[1].reshape(-1)
    n_t = np.bincount(codes, weights=t2)
    if np.any((n_t > 0) & (n_t < np.bincount(codes))):
        raise DeclarationError(f"{_FUNC}(clusters={clusters!r}): every unit of a cluster must "
                               "have the same treatment condition; some clusters mix them.")


def _blocked(y: np.ndarray, t2: np.ndarray, cl: np.ndarray | None, w: np.ndarray | None,
             bl: np.ndarray) -> tuple[float, float, float, float, str, int, int | None]:
    """Blocked (and matched-pair, block-clustered) estimate, SE, df, nobs and design."""
    bcodes = np.unique(bl, return_inverse=True)[1].reshape(-1)
    if cl is None:
        per_block = np.bincount(bcodes)
    else:
        pairs = np.unique(np.column_stack([bcodes, np.unique(cl, return_inverse=True)[1]
                                           .reshape(-1)]), axis=0)
        per_block = np.bincount(pairs[:, 0])
    if np.any(per_block == 1):
        raise EstimationError(f"{_FUNC}: all blocks must have multiple units (or clusters).")
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
    return est, se, df, N, design, nblocks, (int(ncl) if np.isfinite(ncl) else None)


def fit_difference_in_means(spec: DifferenceInMeansSpec, data: Any) -> DifferenceInMeansFit:
    """Return the standalone fit of a validated spec on one dataset."""
    cols, outcome, treat, rows = _prepare(spec, data)
    y = np.asarray(cols[outcome], dtype=float)[rows]
    t = np.asarray(cols[treat])[rows]
    w = np.asarray(cols[spec.weights], dtype=float)[rows] if spec.weights else None
    if w is not None:
        check_weights(_FUNC, spec.weights, w)
        w = w / w.mean()
    cl = np.asarray(cols[spec.clusters])[rows] if spec.clusters else None
    bl = np.asarray(cols[spec.blocks])[rows] if spec.blocks else None
    c1, c2 = parse_conditions(_FUNC, t, spec.condition1, spec.condition2)
    keep = (t == c1) | (t == c2)
    y, t = y[keep], t[keep]
    w = w[keep] if w is not None else None
    cl = cl[keep] if cl is not None else None
    bl = bl[keep] if bl is not None else None
    t2 = t == c2
    if cl is not None:
        _check_clusters_constant(cl, t2, spec.clusters)
    nblocks = nclusters = None
    if bl is None:
        part = _dim_internal(y, t2, cl, w, False)
        est, se, df, nobs = part.coef, part.se, part.df, part.nobs
        design = "Standard" if cl is None else "Clustered"
        if cl is not None:
            nclusters = int(part.nclusters)
    else:
        est, se, df, nobs, design, nblocks, nclusters = _blocked(y, t2, cl, w, bl)
    if w is not None:
        design += " (weighted)"
    n2 = int(t2.sum())
    se_a, df_a = apply_identification(
        _FUNC, [_term(treat, c1, c2)], np.array([se], dtype=float), np.array([df], dtype=float),
        np.array([1.0 / (len(t2) - n2) + 1.0 / n2]), rms(y), df_residual=len(y) - 2,
        n_clusters=None)
    se = float(se_a[0])
    stat, p, lo, hi, dfo = add_cis(np.array([est]), se_a, df_a, spec.alpha, spec.ci)
    return DifferenceInMeansFit(
        term=_term(treat, c1, c2), estimate=float(est), std_error=float(se),
        statistic=float(stat[0]), p_value=float(p[0]), conf_low=float(lo[0]),
        conf_high=float(hi[0]), df=float(dfo[0]), outcome=outcome, design=design,
        nobs=float(nobs), condition1=c1, condition2=c2, alpha=spec.alpha, nblocks=nblocks,
        nclusters=nclusters)


def _term(treat: str, c1: Any, c2: Any) -> str:
    """Return the term name: the treatment, with the condition pasted unless it is 0/1."""
    return treat if (c2 == 1 and c1 == 0) else f"{treat}{c2}"


# ------------------------------------------------------------------ public entry
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
    data, vec = bind_vectors(_FUNC, data, blocks=blocks, clusters=clusters, weights=weights)
    blocks, clusters, weights = vec["blocks"], vec["clusters"], vec["weights"]
    spec = DifferenceInMeansSpec.parse(formula, blocks=blocks, clusters=clusters,
                                       weights=weights, subset=subset, condition1=condition1,
                                       condition2=condition2, ci=ci, alpha=alpha)
    return fit_difference_in_means(spec, data)


# ------------------------------------------------------------------------ batched
def _two_values(t: np.ndarray) -> list[Any] | None:
    """Return the sorted values of a numeric treatment with two values (no hashing), else None."""
    if t.dtype.kind in "iuf" and t.size:
        lo, hi = t.min(), t.max()
        # integers between two consecutive values can only be one of them
        if (t.dtype.kind in "iu" and int(hi) - int(lo) <= 1) or \
                bool(((t == lo) | (t == hi)).all()):
            return sorted({lo.item(), hi.item()})
    return None


def _clustered(batch: Batch, spec: DifferenceInMeansSpec, sims, y, t2, w, key, sim):
    clusters = group_index(batch, spec.clusters, sim, key)
    n_t = clusters.count_where(t2)
    size = clusters.count()
    if np.any((n_t > 0) & (n_t < size)):
        raise DeclarationError(f"{_FUNC}(clusters={spec.clusters!r}): every unit of a cluster "
                               "must have the same treatment condition; some clusters mix "
                               "them.")
    if w is None:
        return clustered_dim(batch.n_sims, y, clusters, size, n_t > 0)
    X = np.column_stack([np.ones(len(y)), t2.astype(float)])
    res = lm_core(sims, y, X, weights=w, clusters=clusters, se_type="CR2",
                  df_for=np.array([False, True]), intercept_col=0)
    return res["coef"][:, 1], res["se"][:, 1], res["df"][:, 1], res["ok"]


def _simple(S: int, sims, y, t2, w):
    if w is not None:
        X = np.column_stack([np.ones(len(y)), t2.astype(float)])
        res = lm_core(sims, y, X, weights=w, se_type="HC2")
        return res["coef"][:, 1], res["se"][:, 1], res["df"][:, 1], res["ok"]
    _, _, est, se, df = welch_dim(sims.codes, S, y, t2)
    return est, se, df, np.ones(S, dtype=bool)


def _screen(sims, y: np.ndarray, n: np.ndarray, n2: np.ndarray, se: np.ndarray
            ) -> np.ndarray:
    """Return the simulations the identification rule may flag (for the standalone fit).

    ``n`` and ``n2`` are the rows and the treated rows of each simulation.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        m_diag = 1.0 / (n - n2) + 1.0 / n2

    def exact() -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sqrt(sims.sum_by_sim(y * y) / n)

    y_rms = screen_scale(se[:, None], m_diag[:, None], y, exact)
    return screen_unidentified(se[:, None], m_diag[:, None], y_rms, df_residual=n - 2)


def difference_in_means_kernel(batch: Batch, spec: DifferenceInMeansSpec) -> KernelResult:
    """Batched :func:`difference_in_means`.

    Simple, clustered, weighted, blocked and matched-pair designs are vectorised;
    block-clustered and weighted blocked designs are declined (fitted per simulation).

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign.batch import Batch
    >>> b = Batch({"y": np.arange(8.0), "z": np.tile([0, 1], 4)}, sim=np.repeat([0, 1], 4),
    ...           n_sims=2)
    >>> difference_in_means_kernel(b, DifferenceInMeansSpec.parse("y ~ z")).tidy[
    ...     "estimate"].tolist()
    [1.0, 1.0]
    """
    cols, outcome, treat, rows = _prepare(spec, subset_view(batch, spec.subset))
    S = batch.n_sims
    t_col = np.asarray(cols[treat])
    all_rows = bool(rows.all())
    t_all = t_col if all_rows else t_col[rows]
    two = _two_values(t_all)
    c1, c2 = parse_conditions(_FUNC, t_all, spec.condition1, spec.condition2, values=two)
    t2 = t_col == c2
    if two is None or not {c1, c2} >= set(two):
        # rows in neither condition are left out (a treatment with two values that are
        # the two conditions has none: no second pass over the rows)
        in_conditions = t2 | (t_col == c1)
        if not in_conditions.all():
            rows = rows & in_conditions
            all_rows = False

    def used(v):
        # the common case (no subset, no NA, two conditions) needs no row copies
        return v if all_rows else v[rows]

    sim = used(batch.sim)
    y = used(np.asarray(cols[outcome], dtype=float))
    t2 = used(t2)
    w = None
    if spec.weights is not None:
        w = used(np.asarray(cols[spec.weights], dtype=float))
        check_weights(_FUNC, spec.weights, w)
    term = _term(treat, c1, c2)
    sims = simulations(batch, sim)
    if spec.blocks is not None and (spec.clusters is not None or w is not None):
        return decline_all(batch)     # block-clustered, weighted blocked: per simulation
    n = sims.count()
    n2 = sims.count_where(t2).astype(float)   # treated rows (exact integers, as a sum)
    n1 = n - n2
    if spec.blocks is not None:
        blocks = group_index(batch, spec.blocks, sim, used(np.asarray(cols[spec.blocks])))
        est, se, df, ok = blocked_dim(S, y, t2, blocks)
    else:
        if spec.clusters is not None:
            est, se, df, ok = _clustered(batch, spec, sims, y, t2, w,
                                         used(np.asarray(cols[spec.clusters])), sim)
        else:
            est, se, df, ok = _simple(S, sims, y, t2, w)
        ok = ok & ~((n1 < 2) | (n2 < 2))
    res = {"coef": est[:, None], "se": se[:, None], "df": df[:, None]}
    ok = ok & ~_screen(sims, y, n, n2, se)
    return tidy_result(res, ok, [term], spec.alpha, spec.ci, outcome)


difference_in_means = register_estimator(
    difference_in_means, parse=DifferenceInMeansSpec.parse, fit=fit_difference_in_means,
    kernel=difference_in_means_kernel)
