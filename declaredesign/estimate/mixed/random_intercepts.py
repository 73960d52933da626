"""Random intercepts on a batch: which batched path a formula's intercepts take.

The batched lmer paths fit one random intercept (:mod:`.random_intercept`) and
intercepts for groups nested in groups (:mod:`.nested_intercepts`). lme4 reads three
spellings of the nested model as one model, with intercepts for the outer groups
``a`` and for the inner groups ``b`` within them:

* ``(1 | a/b)``, which lme4 expands to ``(1 | a) + (1 | a:b)``;
* ``(1 | a) + (1 | a:b)`` written out;
* ``(1 | a) + (1 | b)`` when every level of ``b`` lies within one level of ``a``
  (students labelled uniquely across classes), since then the levels of ``b`` and of
  ``a:b`` are the same groups. That is a property of the data, not of the formula:
  it is checked on every simulation of the batch (in either direction), and the
  model goes to the nested path only when it holds in all of them.

All three take the same path with the same inner groups, the (simulation, a, b)
groups, so they give the same numbers (to rounding: the groups within an outer
group are summed in the order of their labels). Crossed intercepts
(``b`` not nested in ``a``), and intercepts with slopes, have no batched path yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...batch import Batch
from ...groups import GroupIndex
from .bars import LmerFormula
from .nested_intercepts import NestedStats
from .random_intercept import RIStats, ri_stats

__all__ = ["InterceptLayout", "intercept_layout", "resolve_layout", "layout_statistics"]


@dataclass(frozen=True)
class InterceptLayout:
    """The random intercepts of a formula, as the batched paths see them.

    Parameters
    ----------
    kind : {"single", "nested", "pair"}
        One intercept ``(1 | outer)``; ``inner`` nested in ``outer`` by the formula's
        spelling; or two intercepts ``(1 | outer) + (1 | inner)`` whose nesting the
        data must show (:func:`resolve_layout`).
    outer : str
    inner : str or None
    """

    kind: str
    outer: str
    inner: str | None = None


def intercept_layout(f: LmerFormula, batch: Batch, needed) -> InterceptLayout | None:
    """Read the intercepts' layout from the formula (None: no batched path).

    The fixed part must be numeric columns (the batched paths stack them as they
    are); every bar must be a plain intercept ``(1 | ...)``.
    """
    if any(b.expr.strip() != "1" for b in f.bars):
        return None
    groups = [b.group for b in f.bars]
    gcols = {c for g in groups for c in g}
    if not all(batch[c].dtype.kind in "biuf" for c in needed if c not in gcols):
        return None
    if len(groups) == 1 and len(groups[0]) == 1:
        return InterceptLayout("single", groups[0][0])
    if len(groups) != 2:
        return None
    one = [g for g in groups if len(g) == 1]
    two = [g for g in groups if len(g) == 2]
    if len(one) == 2 and one[0] != one[1]:
        return InterceptLayout("pair", one[0][0], one[1][0])
    if len(one) == 1 and len(two) == 1 and one[0][0] in two[0]:
        outer = one[0][0]
        inner = [c for c in two[0] if c != outer]
        if len(inner) == 1:
            return InterceptLayout("nested", outer, inner[0])
    return None


def _group_index(batch: Batch, ok: np.ndarray, sim: np.ndarray, cols, names) -> GroupIndex:
    """Index ``names``: the batch's memoised index, or one over the complete rows."""
    if ok.all():
        return batch.groups(*names)
    return GroupIndex.from_keys(sim, batch.n_sims, *(cols[c] for c in names))


def resolve_layout(layout: InterceptLayout, batch: Batch, cols, ok: np.ndarray,
                   sim: np.ndarray) -> InterceptLayout | None:
    """Settle a ``"pair"`` layout from the data: nested one way or the other, or None.

    ``cols``, ``ok`` and ``sim`` are the complete rows (:func:`.merfit.complete_rows`).
    Two factors that nest both ways are one grouping twice (not identifiable as two
    variances): no batched path.
    """
    if layout.kind != "pair":
        return layout
    a, b = layout.outer, layout.inner
    b_in_a = _group_index(batch, ok, sim, cols, (b,)).is_constant(cols[a])
    a_in_b = _group_index(batch, ok, sim, cols, (a,)).is_constant(cols[b])
    if b_in_a and not a_in_b:
        return InterceptLayout("nested", a, b)
    if a_in_b and not b_in_a:
        return InterceptLayout("nested", b, a)
    return None


def layout_statistics(layout: InterceptLayout, X: np.ndarray, y: np.ndarray, batch: Batch,
                      cols, ok: np.ndarray, sim: np.ndarray
                      ) -> tuple[RIStats, NestedStats | None]:
    """Sufficient statistics of a resolved layout for every simulation of the batch.

    A single intercept gives :class:`RIStats` over its groups; a nested layout gives
    them over the (simulation, outer, inner) groups plus the :class:`NestedStats`
    linking each inner group to its outer one.
    """
    S = batch.n_sims
    if layout.kind == "single":
        g = _group_index(batch, ok, sim, cols, (layout.outer,))
        return ri_stats(X, y, g.codes, g.group_sim, S), None
    outer = _group_index(batch, ok, sim, cols, (layout.outer,))
    inner = _group_index(batch, ok, sim, cols, (layout.outer, layout.inner))
    b_outer = np.zeros(inner.n_groups, dtype=np.int64)
    b_outer[inner.codes] = outer.codes
    st = ri_stats(X, y, inner.codes, inner.group_sim, S)
    return st, NestedStats(st, b_outer, outer.group_sim)
