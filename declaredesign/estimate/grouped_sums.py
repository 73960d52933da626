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


def _rows(index: GroupIndex, cols: list[np.ndarray] | np.ndarray) -> np.ndarray | None:
    """Group starts for ``reduceat`` along the rows of a 2-D ``(k, n)`` ``cols``, else None.

    Summing each row of a 2-D array with one ``np.add.reduceat(..., axis=1)`` gives every
    row the sums ``index.sum`` gives it alone (the same segments, the same order), in one
    call instead of one per column.
    """
    if not isinstance(cols, np.ndarray) or cols.ndim != 2 or not cols.shape[1]:
        return None
    return index.starts


def column_sums(index: GroupIndex, cols: list[np.ndarray] | np.ndarray,
                v: np.ndarray | None = None) -> np.ndarray:
    """Per-group sums of each column (times ``v``): shape ``(n_groups, k)``.

    ``cols`` is a list of columns or a 2-D ``(k, n)`` array of them.
    """
    st = _rows(index, cols)
    if st is not None:
        # C order, as the loop below returns it (einsum's sums depend on the layout)
        return np.ascontiguousarray(
            np.add.reduceat(cols if v is None else cols * v, st, axis=1).T)
    out = np.empty((index.n_groups, len(cols)))
    for j, c in enumerate(cols):
        out[:, j] = index.sum(c if v is None else c * v)
    return out


def outer_sums(index: GroupIndex, cols: list[np.ndarray] | np.ndarray,
               v: np.ndarray | None = None) -> np.ndarray:
    """Per-group ``X_g' diag(v) X_g`` as a ``(n_groups, k, k)`` stack.

    ``cols`` is a list of columns or a 2-D ``(k, n)`` array of them (then each row of
    products ``x_b * (x_a v)``, ``b >= a``, is made and summed in one call).
    """
    k = len(cols)
    out = np.empty((index.n_groups, k, k))
    st = _rows(index, cols)
    for a in range(k):
        ca = cols[a] if v is None else cols[a] * v
        if st is not None:
            s_ = np.add.reduceat(cols[a:] * ca, st, axis=1).T
            out[:, a, a:] = s_
            out[:, a:, a] = s_
            continue
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
