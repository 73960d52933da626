"""R's ``rep()`` for the vectors R users pass to fabricatr and randomizr.

``block_prob = rep(0.5, N_blocks)``, ``prob_each = rep(0.125, 8)`` and
``strata_n = rep(c(1, 2), each = 3)`` port as ``rep(0.5, N_blocks)`` and so on.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._validation import fail

__all__ = ["rep"]


def _count(arg: str, value: Any) -> int:
    ok = isinstance(value, numbers.Integral | np.integer) and not isinstance(value, bool)
    if not ok or value < 0:
        fail("rep", arg, value, "a non-negative integer")
    return int(value)


def rep(x: Any, times: Any = 1, *, each: int = 1, length_out: int | None = None
        ) -> np.ndarray:
    """Repeat the elements of ``x`` as R's ``rep(x, times, each, length.out)`` does.

    Parameters
    ----------
    x : scalar or sequence
    times : int or sequence of int, default 1
        Repeat the whole (after ``each``) this many times, or, given one count per
        element, repeat each element that many times.
    each : int, default 1
        Repeat each element this many times first.
    length_out : int, optional
        Cut or recycle the result to this length (R's ``length.out``; ``times`` is
        then ignored).

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> rep(0.5, 3).tolist()
    [0.5, 0.5, 0.5]
    >>> rep([1, 2], each=2, times=2).tolist()
    [1, 1, 2, 2, 1, 1, 2, 2]
    >>> rep(["a", "b"], times=[1, 3]).tolist()
    ['a', 'b', 'b', 'b']
    >>> rep([1, 2, 3], length_out=7).tolist()
    [1, 2, 3, 1, 2, 3, 1]
    """
    arr = np.atleast_1d(np.asarray(x))
    if arr.ndim != 1:
        fail("rep", "x", x, "a scalar or a vector", shown=f"<array of shape {arr.shape}>")
    arr = np.repeat(arr, _count("each", each))
    if length_out is not None:
        n = _count("length_out", length_out)
        if arr.size == 0:
            fail("rep", "x", x, "non-empty when length_out is given")
        return np.resize(arr, n)
    if np.ndim(times) == 0:
        return np.tile(arr, _count("times", times))
    counts = [_count("times", t) for t in np.asarray(times).tolist()]
    if len(counts) != arr.size:
        fail("rep", "times", list(times), f"one count or one per element ({arr.size})")
    return np.repeat(arr, counts)
