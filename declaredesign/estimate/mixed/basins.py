"""Choosing among optima started from several basins of a criterion.

Every optimiser of the mixed-model paths refines a first optimum, then restarts from
other local minima of a scan (or other start points) and keeps another optimum only
when its criterion is clearly lower, so that a dataset with one basin keeps its
numbers bit for bit. This module holds the one "clearly lower" rule and the choice
of each dataset's best candidate when candidates are stacked as datasets of their own.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CLEARLY_LOWER", "clearly_lower", "grid_local_minima", "lowest_winners"]

#: Relative margin (absolute below a criterion of 1) by which a new optimum must lie
#: below the current one to replace it: above the criterion's rounding, far below
#: any difference between basins that matters.
CLEARLY_LOWER = 1e-9


def clearly_lower(new, old):
    """Return where ``new`` lies clearly below ``old``.

    Parameters
    ----------
    new, old : float or ndarray
        Criterion values of a candidate and of the current optimum.

    Returns
    -------
    bool or ndarray of bool
        ``new < old - CLEARLY_LOWER * max(|old|, 1)``.
    """
    return new < old - CLEARLY_LOWER * np.maximum(np.abs(old), 1.0)


def lowest_winners(sims: np.ndarray, values: np.ndarray, wins: np.ndarray) -> np.ndarray:
    """Return, per dataset, the index of its lowest winning candidate.

    Parameters
    ----------
    sims : ndarray of int
        Dataset of each candidate.
    values : ndarray
        Criterion of each candidate.
    wins : ndarray of bool
        Candidates that may replace their dataset's optimum.

    Returns
    -------
    ndarray of int
        Candidate indices, one per dataset with a winner, in dataset order.
    """
    order = np.lexsort((values, sims))
    order = order[wins[order]]
    return order[np.unique(sims[order], return_index=True)[1]]


def grid_local_minima(vals: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Flag the finite grid points below their lower and not above their upper neighbours.

    Parameters
    ----------
    vals : ndarray
        Criterion at each grid point, (S, n) with ``n = prod(shape)``, the grid's
        points in C order.
    shape : tuple of int
        The grid's shape; along each axis a point is compared with its neighbours
        (a missing neighbour at an end counts as infinite).

    Returns
    -------
    ndarray of bool
        (S, n): the local minima (the first of a run of equal values).
    """
    v = vals.reshape(vals.shape[0], *shape)
    out = np.isfinite(v)
    for ax in range(1, v.ndim):
        pad = [(0, 0)] * v.ndim
        pad[ax] = (1, 1)
        w = np.pad(v, pad, constant_values=np.inf)
        lo = np.take(w, np.arange(0, v.shape[ax]), axis=ax)
        hi = np.take(w, np.arange(2, v.shape[ax] + 2), axis=ax)
        out &= (v < lo) & (v <= hi)
    return out.reshape(vals.shape)
