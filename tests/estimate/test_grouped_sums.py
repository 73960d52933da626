"""Group codes and grouped sums used by the kernels."""

from __future__ import annotations

import numpy as np
import pytest

from declaredesign.groups import GroupIndex


def test_cluster_codes_sorted_and_unsorted_rows_give_dense_sim_key_ranks():
    rng = np.random.default_rng(3)
    for _ in range(200):
        S = int(rng.integers(1, 6))
        n = int(rng.integers(1, 60))
        sim = np.sort(rng.integers(0, S, n))
        key = rng.integers(-3, 4, n)
        if rng.random() < 0.5:                      # rows in (sim, key) order
            o = np.lexsort((key, sim))
            sim, key = sim[o], key[o]
        g = GroupIndex.from_keys(sim, S, key)
        codes, cl_sim = g.codes, g.group_sim
        u, inv = np.unique(np.stack([sim, key], 1), axis=0, return_inverse=True)
        np.testing.assert_array_equal(codes, inv.ravel())
        np.testing.assert_array_equal(cl_sim, u[:, 0])


def test_group_sums_by_reduceat_equal_bincount():
    rng = np.random.default_rng(4)
    for _ in range(100):
        n_groups = int(rng.integers(1, 8))
        codes = rng.integers(0, n_groups, int(rng.integers(1, 40)))
        if rng.random() < 0.6:
            codes = np.sort(codes)                  # sorted, maybe with empty groups
        v = rng.normal(size=codes.size)
        np.testing.assert_allclose(GroupIndex(codes, np.zeros(n_groups), 1).sum(v),
                                   np.bincount(codes, weights=v, minlength=n_groups),
                                   rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("layout", ["in order", "shuffled"])
def test_columns_as_one_array_give_the_sums_of_the_list_bit_for_bit(layout):
    # a (k, n) array is summed row by row in one reduceat call: the same numbers as the
    # per-column loop over a list of the same columns (and as bincount when out of order)
    from declaredesign.estimate.grouped_sums import column_sums, outer_sums, sim_index
    rng = np.random.default_rng(4)
    sim = np.repeat(np.arange(30), rng.integers(1, 60, size=30))
    if layout == "shuffled":
        sim = rng.permutation(sim)
    n = len(sim)
    C = rng.normal(size=(6, n)) * rng.uniform(0.1, 100, size=(6, 1))
    v = rng.uniform(0.5, 2, size=n)
    index = sim_index(sim, 30)
    for w in (None, v):
        np.testing.assert_array_equal(outer_sums(index, C, w), outer_sums(index, list(C), w))
        np.testing.assert_array_equal(column_sums(index, C, w), column_sums(index, list(C), w))
        assert column_sums(index, C, w).flags.c_contiguous
