"""Sums within groups of stacked simulations, the sufficient statistics of the kernels.

The batched kernels compute everything from per-simulation and per-(simulation, cluster)
sums of products of columns. Groups come as a :class:`~declaredesign.groups.GroupIndex`
(memoised on the batch), whose ``sum`` uses ``np.add.reduceat`` over the group starts
when rows are in group order and a weighted ``np.bincount`` otherwise.
"""

from __future__ import annotations

import numpy as np

from ..groups import GroupIndex

__all__ = ["column_sums", "outer_sums", "sim_index", "stack_sums"]


def sim_index(sim: np.ndarray, n_sims: int) -> GroupIndex:
    """One group per simulation, numbered by the simulation itself (empty ones kept)."""
    return GroupIndex(sim, np.arange(n_sims, dtype=np.int64), n_sims)


def column_sums(index: GroupIndex, cols: list[np.ndarray], v: np.ndarray | None = None
                ) -> np.ndarray:
    """Per-group sums of each column (times ``v``): shape ``(n_groups, k)``."""
    out = np.empty((index.n_groups, len(cols)))
    for j, c in enumerate(cols):
        out[:, j] = index.sum(c if v is None else c * v)
    return out


def outer_sums(index: GroupIndex, cols: list[np.ndarray], v: np.ndarray | None = None
               ) -> np.ndarray:
    """Per-group ``X_g' diag(v) X_g`` as a ``(n_groups, k, k)`` stack."""
    k = len(cols)
    out = np.empty((index.n_groups, k, k))
    for a in range(k):
        ca = cols[a] if v is None else cols[a] * v
        for b in range(a, k):
            s_ = index.sum(ca * cols[b])
            out[:, a, b] = s_
            out[:, b, a] = s_
    return out


def stack_sums(codes: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Sum the rows of a stack by sorted ``codes`` (clusters -> simulations)."""
    out = np.zeros((n, *values.shape[1:]))
    if len(codes) == 0:
        return out
    starts = np.searchsorted(codes, np.arange(n))
    nz = np.bincount(codes, minlength=n) > 0
    out[nz] = np.add.reduceat(values, starts[nz], axis=0)
    return out
