"""Group codes and grouped sums used by the kernels."""

from __future__ import annotations

import numpy as np

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
