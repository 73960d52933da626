"""Enumerating every possible assignment of a declaration.

Unlike randomizr, which counts remainder allocations as ordered draws *with*
replacement, the enumeration here is the exact support of the procedure: every
distinct assignment with positive probability, once, with its probability. The
two agree whenever at most one unit is left over after flooring (every two-arm
design); see the package notes.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from .._validation import fail
from ._declaration import SeedLike, _Declaration, rng_from
from ._plan import Plan, successive_subsets

__all__ = [
    "obtain_num_permutations",
    "obtain_permutation_matrix",
    "obtain_permutation_probabilities",
]


def _plan(func: str, declaration: Any, data: Any) -> Plan:
    if not isinstance(declaration, _Declaration):
        fail(func, "declaration", declaration, "a declaration made by declare_ra() or "
             "declare_rs()", shown=type(declaration).__name__)
    return declaration.plan(declaration._to_batch(data))


def _group_support(plan: Plan, g: int) -> list[tuple[np.ndarray, float]]:
    """Possible count vectors of group ``g`` with their probabilities."""
    base = plan.floor[g]
    if plan.rem[g] == 0:
        return [(base, 1.0)]
    out = []
    for subset, p in successive_subsets(tuple(plan.weight[g]), int(plan.rem[g])):
        if p <= 0:
            continue
        c = base.copy()
        c[list(subset)] += 1
        out.append((c, p))
    return out


def _multinomial(counts: np.ndarray) -> int:
    n = int(counts.sum())
    out = 1
    for c in counts:
        out *= math.comb(n, int(c))
        n -= int(c)
    return out


def obtain_num_permutations(declaration: Any, data: Any = None) -> int:
    """Count the distinct assignments the declaration can produce.

    Parameters
    ----------
    declaration : RADeclaration or RSDeclaration
    data : DataFrame or int, optional
        Needed when the declaration names columns.

    Returns
    -------
    int
        Exact count (a Python integer, never rounded to infinity).

    Examples
    --------
    >>> from declaredesign.assign import declare_ra, obtain_num_permutations
    >>> obtain_num_permutations(declare_ra(N=5, prob=0.5))
    20
    """
    if getattr(declaration, "permutation_matrix", None) is not None:
        return int(np.shape(declaration.permutation_matrix)[1])
    plan = _plan("obtain_num_permutations", declaration, data)
    if plan.simple:
        total = 1
        for row in plan.unit_prob:
            total *= int(np.count_nonzero(row > 0))
        return total
    total = 1
    for g in range(plan.group_n.shape[0]):
        total *= sum(_multinomial(c) for c, _ in _group_support(plan, g))
    return total


def _arrangements(counts: np.ndarray) -> np.ndarray:
    """Every arrangement of a multiset with these counts, as columns (n x P)."""
    n = int(counts.sum())
    cols: list[np.ndarray] = []

    def rec(assign: np.ndarray, free: list[int], k: int) -> None:
        if k == len(counts) - 1:
            a = assign.copy()
            a[free] = k
            cols.append(a)
            return
        for chosen in itertools.combinations(free, int(counts[k])):
            a = assign.copy()
            a[list(chosen)] = k
            rest = [i for i in free if i not in set(chosen)]
            rec(a, rest, k + 1)

    rec(np.full(n, -1, dtype=np.int64), list(range(n)), 0)
    return np.column_stack(cols) if cols else np.zeros((0, 1), dtype=np.int64)


def _enumerate(plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """(n_units x P) condition indices and their P probabilities."""
    factors: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if plan.simple:
        for u, row in enumerate(plan.unit_prob):
            ks = np.flatnonzero(row > 0)
            factors.append((np.array([u]), ks[None, :], row[ks]))
    else:
        for g in range(plan.group_n.shape[0]):
            units = np.flatnonzero(plan.unit_group == g)
            mats, probs = [], []
            for c, p in _group_support(plan, g):
                arr = _arrangements(c)
                mats.append(arr)
                probs.append(np.full(arr.shape[1], p / arr.shape[1]))
            factors.append((units, np.concatenate(mats, axis=1), np.concatenate(probs)))
    out = np.zeros((plan.n_units, 1), dtype=np.int64)
    prob = np.ones(1)
    for units, mat, p in factors:
        n_old, n_new = out.shape[1], mat.shape[1]
        out = np.repeat(out, n_new, axis=1)
        out[units] = np.tile(mat, (1, n_old))
        prob = np.repeat(prob, n_new) * np.tile(p, n_old)
    return out, prob


def obtain_permutation_matrix(declaration: Any, data: Any = None, *,
                              maximum_permutations: int = 10000,
                              seed: SeedLike = None) -> np.ndarray:
    """Every possible assignment, one per column (randomizr's layout).

    When there are more than ``maximum_permutations`` assignments, returns that
    many random draws instead, as randomizr does.

    Examples
    --------
    >>> from declaredesign.assign import declare_ra, obtain_permutation_matrix
    >>> obtain_permutation_matrix(declare_ra(N=3, m=1)).tolist()
    [[0, 0, 1], [0, 1, 0], [1, 0, 0]]
    """
    if getattr(declaration, "permutation_matrix", None) is not None:
        return np.asarray(declaration.permutation_matrix)     # randomizr returns it as is
    plan = _plan("obtain_permutation_matrix", declaration, data)
    if obtain_num_permutations(declaration, data) > maximum_permutations:
        rng = rng_from(seed)
        draws = [plan.draw(rng) for _ in range(maximum_permutations)]
        return np.column_stack(draws)
    idx, _ = _enumerate(plan)
    return plan.conditions[idx[plan.row_units()]]


def obtain_permutation_probabilities(declaration: Any, data: Any = None, *,
                                     maximum_permutations: int = 10**6) -> np.ndarray:
    """Probability of each column of :func:`obtain_permutation_matrix` (they sum to 1).

    Examples
    --------
    >>> from declaredesign.assign import declare_ra, obtain_permutation_probabilities
    >>> obtain_permutation_probabilities(declare_ra(N=3, prob=0.5)).round(4).tolist()
    [0.1667, 0.1667, 0.1667, 0.1667, 0.1667, 0.1667]
    """
    n = obtain_num_permutations(declaration, data)
    if n > maximum_permutations:
        fail("obtain_permutation_probabilities", "declaration", declaration,
             f"a design with at most {maximum_permutations} assignments",
             shown=f"{declaration!r} ({n} assignments)")
    if getattr(declaration, "permutation_matrix", None) is not None:
        return np.full(n, 1.0 / n)
    plan = _plan("obtain_permutation_probabilities", declaration, data)
    return _enumerate(plan)[1]
