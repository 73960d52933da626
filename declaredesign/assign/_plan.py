"""Resolve a declaration against data into per-group arrays, and the batched kernels.

Every randomizr design reduces to the same shape once the data are known:

* *units* are rows, or clusters when ``clusters`` is given;
* units fall into *groups*, one per (simulation, block) (one per simulation when
  there are no blocks);
* a group either draws each unit independently from its own probability row
  ("simple" designs), or assigns fixed per-condition *counts*: a floor vector
  ``F`` plus ``R`` extra units given to ``R`` distinct conditions drawn by
  successive sampling with weights ``W`` (randomizr's ``sample(conditions, R,
  prob = W)``). Two-arm rounding mixtures are the case ``R = 1``.

Given the counts of a group, a uniformly random arrangement comes from one random
key per unit and the unit's rank within its group (a single sort over all sims).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import DeclarationError
from ..groups import offset_copies

# Bits of random key appended below the group code in the composite sort key.
_KEY_BITS = 40


@dataclass
class Plan:
    """A declaration resolved against one batch (internal).

    ``unit_of_row`` is None for the plan of ``n`` copies of one dataset
    (:meth:`repeat`): ``copy_unit_of_row`` then holds one copy's, and per-row arrays
    are gathered copy by copy (:meth:`per_row`) without an index over every row.
    """

    n_sims: int
    conditions: np.ndarray
    unit_of_row: np.ndarray | None   # (n_rows,) unit index of each row
    unit_group: np.ndarray           # (n_units,) group index of each unit
    group_sim: np.ndarray            # (n_groups,) simulation of each group
    group_n: np.ndarray              # (n_groups,) units per group
    simple: bool
    unit_prob: np.ndarray | None = None     # (n_units, K) simple designs
    floor: np.ndarray | None = None         # (n_groups, K) int
    weight: np.ndarray | None = None        # (n_groups, K) remainder weights
    rem: np.ndarray | None = None           # (n_groups,) int, extra units
    reported: np.ndarray | None = None      # (n_groups, K) condition probabilities
    rows_are_units: bool = False            # unit i is row i (no clusters)
    copy_unit_of_row: np.ndarray | None = None   # one copy's unit_of_row (plan of copies)
    _row_group: np.ndarray | None = None    # group of each row, made on first use

    @property
    def n_units(self) -> int:
        return int(self.unit_group.shape[0])

    @property
    def k(self) -> int:
        return int(self.conditions.shape[0])

    def repeat(self, n: int) -> Plan:
        """Return the plan of ``n`` copies of this plan's one-simulation data.

        What :func:`build_plan` gives on the ``n`` copies: units and groups of copy
        ``s`` numbered after those of the copies before it, per-unit and per-group
        arrays repeated.
        """
        if self.n_sims != 1:
            raise ValueError(f"Plan.repeat: the plan has {self.n_sims} simulations; expected 1.")
        n_groups = self.group_sim.shape[0]
        return Plan(n, self.conditions, None, offset_copies(self.unit_group, n, n_groups),
                    np.repeat(np.arange(n, dtype=np.int64), n_groups),
                    np.tile(self.group_n, n), self.simple,
                    unit_prob=_copies(self.unit_prob, n), floor=_copies(self.floor, n),
                    weight=_copies(self.weight, n), rem=_copies(self.rem, n),
                    reported=_copies(self.reported, n), rows_are_units=self.rows_are_units,
                    copy_unit_of_row=self.row_units())

    def row_units(self) -> np.ndarray:
        """Return the unit of each row (made on first use for a plan of copies)."""
        if self.unit_of_row is None:
            one = self.copy_unit_of_row
            self.unit_of_row = offset_copies(one, self.n_sims,
                                              self.n_units // max(self.n_sims, 1))
        return self.unit_of_row

    def per_row(self, values: np.ndarray) -> np.ndarray:
        """Return each row's entry of a per-unit array (``values[unit_of_row]``)."""
        if self.unit_of_row is not None:
            return values[self.unit_of_row]
        # copies: copy s's units are the s-th block of units
        one, n = self.copy_unit_of_row, self.n_sims
        rest = values.shape[1:]
        by_copy = values.reshape(n, values.shape[0] // n if n else 0, *rest)
        return np.take(by_copy, one, axis=1).reshape(n * one.shape[0], *rest)

    # ------------------------------------------------------------------ draws
    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Return the condition of every row, all simulations at once."""
        unit_conditions = self.conditions[self.draw_units(rng)]
        # a fresh array: rows that are the units need no gather
        return unit_conditions if self.rows_are_units else self.per_row(unit_conditions)

    def draw_units(self, rng: np.random.Generator) -> np.ndarray:
        """Condition index (0..K-1) of every unit, all simulations at once."""
        if self.simple:
            u = rng.random(self.n_units)
            cum = np.cumsum(self.unit_prob, axis=1)[:, :-1]
            return (u[:, None] >= cum).sum(axis=1)
        counts = self.draw_counts(rng)
        return arrange(counts, self.unit_group, self.group_n, rng)

    def draw_counts(self, rng: np.random.Generator) -> np.ndarray:
        """Per-group count of units in each condition (the rounding mixtures drawn)."""
        counts = self.floor.copy()
        need = self.rem > 0
        if not need.any():
            return counts
        w = self.weight[need]
        r = self.rem[need]
        if self.k == 2:
            # R is 0 or 1 with two arms: one Bernoulli draw per group decides the extra.
            u = rng.random(w.shape[0])
            extra1 = u * (w[:, 0] + w[:, 1]) < w[:, 1]
            extra = np.column_stack([~extra1, extra1]).astype(np.int64)
        else:
            # Exponential races give successive sampling without replacement
            # proportional to the weights (R's sample(..., replace = FALSE, prob =)).
            with np.errstate(divide="ignore"):
                keys = rng.standard_exponential(w.shape) / w
            ranks = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1)
            extra = (ranks < r[:, None]).astype(np.int64)
        counts[need] += extra
        return counts

    # ---------------------------------------------------------- probabilities
    def row_prob_matrix(self) -> np.ndarray:
        """(n_rows, K) probability of each condition for each row."""
        if self.simple:
            return self.per_row(self.unit_prob)
        return self.per_row(self.reported[self.unit_group])

    def row_prob_of(self, idx: np.ndarray) -> np.ndarray:
        """Probability of condition ``idx[i]`` for row ``i``."""
        # Flat indexing: much faster than 2-D fancy indexing on long batches.
        if self.simple:
            owner, table = self.row_units(), self.unit_prob
        else:
            if self._row_group is None:
                self._row_group = self.per_row(self.unit_group)
            owner, table = self._row_group, self.reported
        return np.ascontiguousarray(table).ravel()[owner * self.k + idx]


def _copies(values: np.ndarray | None, n: int) -> np.ndarray | None:
    """``n`` copies of an array stacked along its first axis (None stays None)."""
    if values is None:
        return None
    return np.tile(values, (n,) + (1,) * (values.ndim - 1))


def arrange(counts: np.ndarray, unit_group: np.ndarray, group_n: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """Uniformly random arrangement of per-group condition counts over the units.

    Units are ranked within their group by a random key (one sort for the whole
    batch); the unit at rank ``r`` gets the condition whose cumulative count first
    exceeds ``r``.
    """
    n_units = unit_group.shape[0]
    n_groups = group_n.shape[0]
    if n_units == 0:
        return np.zeros(0, dtype=np.int64)
    if n_groups < 2 ** (62 - _KEY_BITS):
        keys = rng.integers(0, 2 ** _KEY_BITS, size=n_units, dtype=np.int64)
        out = _arrange_equal_groups(counts, unit_group, group_n, keys)
        if out is not None:
            return out
        # Keys are distinct with overwhelming probability, so any sort gives the
        # same order; introsort is the fastest on int64.
        order = np.argsort((unit_group.astype(np.int64) << _KEY_BITS) | keys)
    else:  # pragma: no cover - astronomically many groups
        order = np.lexsort((rng.random(n_units), unit_group))
    g_sorted = unit_group[order]
    starts = np.concatenate([[0], np.cumsum(group_n)[:-1]])
    pos = np.arange(n_units) - starts[g_sorted]
    sorted_idx = _condition_of_rank(pos, counts[g_sorted])
    out = np.empty(n_units, dtype=np.int64)
    out[order] = sorted_idx
    return out


def _condition_of_rank(rank: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Condition of the unit at ``rank`` within its group, the group's ``counts`` given."""
    if counts.shape[-1] == 2:
        return (rank >= counts[..., 0]).astype(np.int64)
    cum = np.cumsum(counts, axis=-1)[..., :-1]
    return (rank[..., None] >= cum).sum(axis=-1)


def _arrange_equal_groups(counts: np.ndarray, unit_group: np.ndarray, group_n: np.ndarray,
                          keys: np.ndarray) -> np.ndarray | None:
    """:func:`arrange` for groups of one size whose units are contiguous, else None.

    Ranking within each group by its own small sort gives the order of the one sort of
    (group, key) for distinct keys; with a tie in a group (about one group in 10^8) the
    one sort's order is kept, so the result is always :func:`arrange`'s.
    """
    m = int(group_n[0])
    if not bool((group_n == m).all()) or not bool((unit_group[1:] >= unit_group[:-1]).all()):
        return None
    n_groups = group_n.shape[0]
    # each group's units in key order, as positions among all units
    order = np.argsort(keys.reshape(n_groups, m), axis=1)
    order += np.arange(0, n_groups * m, m, dtype=order.dtype)[:, None]
    order = order.reshape(-1)
    ordered = keys[order].reshape(n_groups, m)
    if bool((ordered[:, 1:] == ordered[:, :-1]).any()):
        return None
    out = np.empty(keys.shape[0], dtype=np.int64)
    out[order] = _condition_of_rank(np.arange(m), counts[:, None, :]).reshape(-1)
    return out


# ------------------------------------------------------- exact remainder maths
def successive_subsets(weights: tuple[float, ...], r: int) -> list[tuple[frozenset, float]]:
    """Distribution of the set of ``r`` items drawn by successive sampling."""
    return list(_successive_subsets(tuple(float(w) for w in weights), int(r)))


@lru_cache(maxsize=4096)
def _successive_subsets(weights: tuple[float, ...], r: int) -> tuple:
    if r == 0:
        return ((frozenset(), 1.0),)
    pos = [i for i, w in enumerate(weights) if w > 0]
    if len(pos) < r:
        raise DeclarationError(
            "Cannot allocate the remainder: fewer conditions with positive remainder "
            f"weight ({len(pos)}) than remaining units ({r}).")
    out: dict[frozenset, float] = {}
    total = sum(weights[i] for i in pos)
    for seq in itertools.permutations(pos, r):
        p = 1.0
        left = total
        for i in seq:
            p *= weights[i] / left
            left -= weights[i]
        s = frozenset(seq)
        out[s] = out.get(s, 0.0) + p
    return tuple(out.items())


def remainder_marginals(weights: np.ndarray, r: int) -> np.ndarray:
    """Probability that each condition receives one of the ``r`` extra units."""
    w = tuple(float(x) for x in weights)
    out = np.zeros(len(w))
    for s, p in _successive_subsets(w, int(r)):
        for i in s:
            out[i] += p
    return out
