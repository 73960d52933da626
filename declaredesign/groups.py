"""Groups within simulations: one index of codes, starts and grouped sums.

Every layer needs the same few operations on a batch: number the (simulation, key)
groups densely, sum a column within each group, count rows, find each group's first
row and broadcast group values back to rows. :class:`GroupIndex` does them once per
key; :meth:`declaredesign.batch.Batch.groups` memoises it on the (immutable) batch so
an assignment, an aggregation and three estimators clustering on one column share
one index.

Groups are numbered in (simulation, key) order, so the groups of a simulation are
contiguous and simulations appear in order. When rows already come in that order
(nested levels made by ``fabricate`` do), grouped sums use ``np.add.reduceat`` over
the group starts, several times faster than a weighted ``np.bincount``.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

__all__ = ["GroupIndex", "group_codes", "offset_copies", "sim_starts", "take_owned"]


class GroupIndex:
    """Dense codes of the (simulation, key...) groups of a batch's rows.

    Parameters
    ----------
    codes : ndarray of int64, shape (n_rows,)
        Group of each row, in ``[0, n_groups)``, numbered in (simulation, key) order.
    group_sim : ndarray of int64, shape (n_groups,)
        Simulation of each group (non-decreasing).
    n_sims : int
        Number of simulations of the batch.

    Examples
    --------
    >>> import numpy as np
    >>> g = GroupIndex.from_keys(np.array([0, 0, 0, 1]), 2, np.array([2, 1, 2, 1]))
    >>> g.codes.tolist(), g.group_sim.tolist(), g.count().tolist()
    ([1, 0, 1, 2], [0, 0, 1], [1, 2, 1])
    >>> g.sum(np.array([1.0, 2.0, 3.0, 4.0])).tolist()
    [2.0, 4.0, 4.0]
    """

    __slots__ = ("codes", "group_sim", "n_sims", "__dict__")

    def __init__(self, codes: np.ndarray, group_sim: np.ndarray, n_sims: int,
                 starts: np.ndarray | None = None):
        self.codes = np.asarray(codes, dtype=np.int64)
        self.group_sim = np.asarray(group_sim, dtype=np.int64)
        self.n_sims = int(n_sims)
        if starts is not None:
            # rows known to be in group order (found while coding): no second pass
            self.__dict__["starts"] = starts

    @classmethod
    def from_keys(cls, sim: np.ndarray, n_sims: int, *keys: np.ndarray) -> GroupIndex:
        """Index the groups formed by ``sim`` and the key arrays (none: one group per sim)."""
        sim = np.asarray(sim, dtype=np.int64)
        if not keys:
            present = np.bincount(sim, minlength=n_sims) > 0
            if present.all():          # no empty simulation: the codes are the sims
                return cls(sim, np.arange(n_sims, dtype=np.int64), n_sims)
            table = np.cumsum(present, dtype=np.int64) - 1
            return cls(table[sim], np.flatnonzero(present), n_sims)
        if len(keys) == 1:
            fast = _small_int_codes(sim, n_sims, np.asarray(keys[0]))
            if fast is not None:
                codes, group_sim, starts = fast
                return cls(codes, group_sim, n_sims, starts)
        return cls(*group_codes(sim, *keys), n_sims)

    def __repr__(self) -> str:
        return f"GroupIndex(n_rows={self.codes.size}, n_groups={self.n_groups})"

    @property
    def n_groups(self) -> int:
        """Number of groups."""
        return int(self.group_sim.shape[0])

    @cached_property
    def starts(self) -> np.ndarray | None:
        """First row of each group when rows are in group order, else None."""
        codes, n = self.codes, self.n_groups
        if not (codes.size and n and codes[0] == 0 and codes[-1] == n - 1):
            return None
        if not bool((codes[1:] >= codes[:-1]).all()):
            return None
        st = np.searchsorted(codes, np.arange(n))
        # an empty group would make reduceat repeat its neighbour instead of giving 0
        return None if np.any(np.diff(st) == 0) else st

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Per-group sums of a column (or of each column of a 2-D array)."""
        values = np.asarray(values)
        st = self.starts
        if st is not None:
            return np.add.reduceat(values, st, axis=0) if values.size else \
                np.zeros((self.n_groups, *values.shape[1:]))
        if values.ndim == 1:
            return np.bincount(self.codes, weights=values, minlength=self.n_groups)
        out = np.zeros((self.n_groups, *values.shape[1:]))
        np.add.at(out, self.codes, values)
        return out

    def count_where(self, mask: np.ndarray) -> np.ndarray:
        """Count the rows of each group where a boolean ``mask`` is true (int64).

        Cheaper than summing the mask as floats: no float copy of the rows, and integer
        counts do not depend on the order of the additions.
        """
        mask = np.asarray(mask, dtype=bool)
        st = self.starts
        if st is not None:
            return np.add.reduceat(mask, st, dtype=np.int64) if mask.size else \
                np.zeros(self.n_groups, dtype=np.int64)
        return np.bincount(self.codes[mask], minlength=self.n_groups)

    def sum_by_sim(self, values: np.ndarray) -> np.ndarray:
        """Sum a column per simulation: length ``n_sims``, zero for a simulation without rows.

        Grouped sums first (``reduceat`` on rows in group order), then one short pass
        over the groups: much cheaper than a weighted ``bincount`` over every row.
        """
        return np.bincount(self.group_sim, weights=self.sum(values), minlength=self.n_sims)

    def count(self) -> np.ndarray:
        """Rows per group."""
        st = self.starts
        if st is not None:
            return np.diff(st, append=self.codes.size)
        return np.bincount(self.codes, minlength=self.n_groups)

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Per-group means (NaN for an empty group)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            n = self.count()
            s = self.sum(values)
            return s / (n if s.ndim == 1 else n[:, None])

    @cached_property
    def first(self) -> np.ndarray:
        """Row index of the first row of each group."""
        if self.starts is not None:
            return self.starts
        out = np.empty(self.n_groups, dtype=np.int64)
        rows = np.arange(self.codes.shape[0], dtype=np.int64)
        # with repeated indices the last write wins; writing in reverse keeps the first
        out[self.codes[::-1]] = rows[::-1]
        return out

    def broadcast(self, group_values: np.ndarray) -> np.ndarray:
        """Each row's value of a per-group array."""
        group_values = np.asarray(group_values)
        if group_values.ndim == 1 and self.codes.size >= 16 * self.n_groups and \
                self.starts is not None:
            # large groups in row order: repeating each value reads no per-row index
            # (np.repeat is slower than the gather for groups of a few rows)
            return np.repeat(group_values, self.count())
        return group_values[self.codes]

    def is_constant(self, values: np.ndarray) -> bool:
        """Whether ``values`` takes one value within each group (NaN equal to NaN)."""
        values = np.asarray(values)
        ref = values[self.first][self.codes]
        if values.dtype.kind == "f":
            return bool(np.all((ref == values) | (np.isnan(ref) & np.isnan(values))))
        return bool(np.all(ref == values))

    @cached_property
    def sim_group_starts(self) -> np.ndarray:
        """Offset of each simulation's first group, shape ``(n_sims + 1,)``."""
        return sim_starts(self.group_sim, self.n_sims)


def sim_starts(sim: np.ndarray, n_sims: int) -> np.ndarray:
    """Row offsets where each simulation starts in a sim-sorted array (length n_sims+1)."""
    return np.searchsorted(sim, np.arange(n_sims + 1), side="left")


def offset_copies(codes: np.ndarray, n: int, size: int) -> np.ndarray:
    """``n`` copies of codes in ``[0, size)``, copy ``s`` shifted by ``s * size``.

    Examples
    --------
    >>> offset_copies(np.array([0, 2]), 2, 3)
    array([0, 2, 3, 5])
    """
    return np.add.outer(np.arange(n, dtype=np.int64) * size, codes).reshape(-1)


def take_owned(owner: np.ndarray, n_owners: int,
               sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Items (groups, cells) of the simulations ``sims``, in that order, repeats allowed.

    Parameters
    ----------
    owner : ndarray of int
        Each item's simulation.
    n_owners : int
        Number of simulations.
    sims : ndarray of int
        Simulations to take.

    Returns
    -------
    items : ndarray of int
        Positions of the taken items: simulation ``sims[0]``'s items in their order,
        then ``sims[1]``'s, ...
    new_owner : ndarray of int
        Each taken item's position in ``sims``.

    Examples
    --------
    >>> take_owned(np.array([0, 1, 0, 2]), 3, np.array([2, 0, 2]))
    (array([3, 0, 2, 3]), array([0, 1, 1, 2]))
    """
    order = np.argsort(owner, kind="stable")
    count = np.bincount(owner, minlength=n_owners)
    start = np.cumsum(count) - count
    n = count[sims]
    new = np.repeat(np.arange(sims.size), n)
    offset = np.arange(new.size) - np.repeat(np.cumsum(n) - n, n)
    return order[start[sims][new] + offset], new


def _small_int_codes(sim: np.ndarray, n_sims: int, key: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Codes for a small-range integer key (level IDs are 1..n per simulation) in O(n).

    Rows already in (sim, key) order (the usual nesting) are coded by runs; otherwise one
    scatter into a lookup table and a cumulative sum replace a sort. None when the key is
    not a small-range integer.
    """
    if key.dtype.kind not in "iub" or not key.size:
        return None
    k = key.astype(np.int64, copy=False)
    lo = int(k.min())
    span = int(k.max()) - lo + 1
    if n_sims * span > max(4 * k.size, 1 << 20):
        return None
    combined = np.multiply(sim, span, dtype=np.int64)
    combined += k
    if lo:
        combined -= lo
    if combined.size == 1 or bool((combined[1:] >= combined[:-1]).all()):
        codes, starts = _run_codes(combined)
        return codes, sim[starts], starts
    present = np.zeros(n_sims * span, dtype=bool)
    present[combined] = True
    rank = np.cumsum(present, dtype=np.int64)
    rank -= 1
    return np.take(rank, combined), (np.flatnonzero(present) // span).astype(np.int64), None


def _run_codes(combined: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the runs of equal values of a sorted non-empty key, and each run's start.

    ``np.repeat`` of the run numbers writes the codes in one pass; a cumulative sum of the
    run-start flags (bool to int64) gives the same codes several times slower.
    """
    starts = np.flatnonzero(combined[1:] != combined[:-1])
    starts += 1
    starts = np.concatenate([np.zeros(1, dtype=starts.dtype), starts])
    sizes = np.diff(starts, append=combined.size)
    return np.repeat(np.arange(starts.size, dtype=np.int64), sizes), starts


def group_codes(sim: np.ndarray, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes for the groups formed by ``sim`` and ``keys``.

    Groups are numbered in order of (sim, keys...), so the groups of each
    simulation are contiguous and in simulation order.

    Returns
    -------
    codes : ndarray of int64, shape (n_rows,)
        Group code of each row, in ``[0, n_groups)``.
    group_sim : ndarray of int64, shape (n_groups,)
        The simulation each group belongs to.

    Examples
    --------
    >>> import numpy as np
    >>> codes, gsim = group_codes(np.array([0, 0, 0, 1]), np.array([2, 1, 2, 1]))
    >>> codes.tolist(), gsim.tolist()
    ([1, 0, 1, 2], [0, 0, 1])
    """
    sim = np.asarray(sim, dtype=np.int64)
    if not keys:
        return _dense_codes(sim, int(sim.max()) + 1 if sim.size else 1, 1)
    parts = [_key_part(np.asarray(k)) for k in keys]
    # Combine into one integer key when it fits; fall back to row-wise unique.
    sizes = [size for _, _, size in parts]
    total = int(sim.max()) + 1 if sim.size else 1
    for s in sizes:
        total *= s
    if total < 2**62:
        combined = sim.copy()
        for values, low, size in parts:
            # combined * size + (values - low), in place: no array per key
            combined *= size
            combined += values
            if low:
                combined -= low
        return _dense_codes(combined, total, int(np.prod(sizes)))
    key_codes = [values - low if low else values for values, low, _ in parts]
    stacked = np.column_stack([sim, *key_codes])
    uniq, codes = np.unique(stacked, axis=0, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), uniq[:, 0].astype(np.int64)


def _key_part(k: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Return ``(values, low, size)``: the key's codes are ``values - low`` in ``[0, size)``.

    Signed integers with a moderate offset are used as they are (their codes are formed
    while combining the keys, in place); other keys are coded by :func:`_key_codes`.
    """
    if k.dtype.kind == "i" and k.size:
        low, high = int(k.min()), int(k.max())
        if abs(low) < 2**31:
            return k, low, high - low + 1
    codes = _key_codes(k)
    return codes, 0, int(codes.max()) + 1 if codes.size else 1


def _key_codes(k: np.ndarray) -> np.ndarray:
    """Non-negative integer codes of a key, in the key's sort order."""
    if k.dtype.kind in "iub":
        kk = k.astype(np.int64)
        return kk - kk.min() if kk.size else kk
    if k.dtype.kind == "O":
        return _object_codes(k)
    if k.dtype.kind in "US":
        # Hashing then sorting the uniques only: the order np.unique would give.
        inv, _ = pd.factorize(k, sort=True)
        return inv.astype(np.int64)
    _, inv = np.unique(k, return_inverse=True)
    return inv.reshape(-1).astype(np.int64)


def _object_codes(k: np.ndarray) -> np.ndarray:
    """Codes of an object key in the order of its values as text; missing values apart.

    The objects are hashed as they are (no conversion of every row to text); only the
    distinct values are sorted by their text. A missing value (None, NaN) is never
    grouped with a string that prints like it, so a group's first row tells whether the
    group is missing.
    """
    codes, uniques = pd.factorize(k, use_na_sentinel=False)
    na = pd.isna(uniques)
    if all(type(u) is str for u in uniques[~na]):
        order = np.lexsort((na, uniques.astype(str)))
        rank = np.empty(order.size, dtype=np.int64)
        rank[order] = np.arange(order.size, dtype=np.int64)
        return rank[codes]
    # mixed types (1 and "1", 1 and 1.0): equal when they print alike, as np.unique on
    # the text would group them
    inv, _ = pd.factorize(k.astype(str), sort=True)
    inv = inv.astype(np.int64) * 2 + pd.isna(k)
    return np.unique(inv, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _dense_codes(combined: np.ndarray, total: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the distinct values of ``combined`` (in ``[0, total)``), in sorted order.

    Nested levels arrive already sorted, which a run-length pass handles in O(n); a key
    range not much larger than the data uses a lookup table, also O(n); only sparse
    keys pay for a sort.
    """
    n = combined.size
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if n == 1 or bool(np.all(combined[1:] >= combined[:-1])):
        codes, starts = _run_codes(combined)
        uniq = combined[starts]
    elif total <= max(4 * n, 1 << 16):
        seen = np.zeros(total, dtype=bool)
        seen[combined] = True
        uniq = np.flatnonzero(seen)
        lookup = np.cumsum(seen, dtype=np.int64)
        lookup -= 1
        codes = lookup[combined]
    else:
        uniq, codes = np.unique(combined, return_inverse=True)
        codes = codes.reshape(-1).astype(np.int64)
    return codes, (uniq // stride).astype(np.int64)
