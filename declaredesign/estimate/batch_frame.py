"""The columns, model frames and groups a batched kernel reads from a batch.

Helpers shared by the regression kernels: the batch's columns as user code sees them
(level IDs as fabricatr's strings where a formula or ``subset`` uses them as factors),
the model frame of a formula over every simulation at once, and the group index of a
clustering column, taken from the batch's memo when every row is used.
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..batch import Batch
from ..groups import GroupIndex
from .arguments import (
    check_finite_frame,
    check_numeric,
    check_observed,
    check_weights,
    subset_mask,
)
from .grouped_sums import sim_index
from .inference import tidy_rows
from .model_frame import (
    ModelFrame,
    _has_missing,
    _is_missing,
    formula_variables,
    model_frame,
)
from .protocol import KernelResult, empty_tidy

__all__ = ["columns_for", "decline", "decline_all", "frame", "group_index", "simulations",
           "subset_view", "weights_and_clusters"]


def columns_for(batch: Batch, names: list[str]) -> Mapping[str, np.ndarray]:
    """Batch columns, with level-ID columns used as factors turned into R's strings.

    A view: a column is read from the batch when looked up (a batch may make its
    columns when first read), never all of them up front.
    """
    return ChainMap({v: batch.column_as_r(v) for v in names if v in batch.id_columns},
                    batch.columns)


def subset_view(batch: Batch, subset: Any) -> Mapping[str, np.ndarray]:
    """Columns for a subset expression: level IDs it names as the strings users see."""
    if not isinstance(subset, str):
        return batch.columns
    named = [v for v in batch.id_columns if re.search(rf"\b{re.escape(v)}\b", subset)]
    return columns_for(batch, named)


def group_index(batch: Batch, name: str, sim: np.ndarray, values: np.ndarray) -> GroupIndex:
    """Return the (simulation, ``values``) groups, memoised on the batch when all rows are used.

    Every estimator clustering on one column of one batch then shares one index.
    """
    if sim is batch.sim and values is batch.columns.get(name):
        return batch.groups(name)
    return GroupIndex.from_keys(sim, batch.n_sims, values)


def simulations(batch: Batch, sim: np.ndarray) -> GroupIndex:
    """One group per simulation of the rows ``sim``; the batch's memo when all rows are used."""
    if sim is batch.sim:
        g = batch.groups()
        if g.n_groups == batch.n_sims:      # no empty simulation: codes are the sims
            return g
    return sim_index(sim, batch.n_sims)


def frame(func: str, batch: Batch, formula: str, subset: Any, extra: list[Any]
          ) -> tuple[ModelFrame, Mapping[str, np.ndarray], np.ndarray]:
    """Model frame of ``formula`` on the batch (subset applied), the columns, rows' sims."""
    lhs, rhs = formula_variables(formula)
    sub = subset_mask(func, subset, subset_view(batch, subset), batch.n_rows)
    view = columns_for(batch, rhs)
    sim = batch.sim
    if subset is not None:
        view = {k_: v[sub] for k_, v in view.items()}
        sim = sim[sub]
    for name in lhs:
        if name in view:
            if _has_missing(view[name]):
                check_observed(func, name, np.asarray(view[name]), _is_missing(view[name]))
    # a factor with one level over every simulation: left to the per-simulation fits;
    # poly(), scale(), center() computed within each simulation
    mf = model_frame(formula, view, extra_columns=[c for c in extra if c], func=func,
                     check_levels=False, groups=sim)
    for name in lhs:
        check_numeric(func, "formula", name, np.asarray(view[name]))
    if not mf.finite:     # plain numeric columns already summed finite need no second pass
        check_finite_frame(func, mf.outcome[0], mf.y, mf.X, list(mf.columns))
    return mf, view, (sim if bool(mf.mask.all()) else sim[mf.mask])


def weights_and_clusters(func: str, batch: Batch, view: Mapping[str, np.ndarray], mf: ModelFrame,
                         sim: np.ndarray, weights: str | None, clusters: str | None
                         ) -> tuple[np.ndarray | None, GroupIndex | None]:
    """Return the weights and the cluster groups of the rows a model frame kept."""
    all_rows = bool(mf.mask.all())
    w = None
    if weights is not None:
        check_numeric(func, "weights", weights, np.asarray(view[weights]))
        w = np.asarray(view[weights], dtype=float)
        w = w if all_rows else w[mf.mask]
        check_weights(func, weights, w)
    groups = None
    if clusters is not None:
        key = np.asarray(view[clusters])
        groups = group_index(batch, clusters, sim, key if all_rows else key[mf.mask])
    return w, groups


def decline_all(batch: Batch, reason: str | None = None) -> KernelResult:
    """Return a kernel result leaving every simulation to the per-simulation fallback."""
    return KernelResult(empty_tidy(), {s: reason for s in range(batch.n_sims)})


def decline(tidy: Any, ok: np.ndarray, reason: str | None = None) -> KernelResult:
    """Rows fitted for the simulations flagged ``ok``; the others declined with ``reason``."""
    return KernelResult(tidy, {int(s): reason for s in np.flatnonzero(~ok)})


def tidy_result(res: dict[str, np.ndarray], ok: np.ndarray, terms: list[str], alpha: float,
                ci: bool, outcome: str) -> KernelResult:
    """Tidy rows of a stacked fit for the simulations flagged ``ok``; the others declined."""
    return decline(tidy_rows(np.flatnonzero(ok), terms, res, alpha, ci, outcome), ok)
