"""Closed forms for two arms == the general stacked least squares."""

from __future__ import annotations

import numpy as np
import pytest

from declaredesign.estimate.grouped_sums import sim_index
from declaredesign.estimate.stacked_ols import lm_core
from declaredesign.estimate.two_arm import binary_cluster_treatment, clustered_dim
from declaredesign.groups import GroupIndex

from ._util import cluster_batch


def _stack(frames):
    y = np.concatenate([f["y"].to_numpy() for f in frames])
    z = np.concatenate([f["z"].to_numpy() for f in frames])
    cl = np.concatenate([f["cl"].to_numpy() for f in frames])
    sim = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
    return sim, y, z, cl


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clustered_dim_closed_form_equals_lm_core(seed):
    frames = cluster_batch(seed)
    sim, y, z, cl = _stack(frames)
    S = len(frames)
    g = GroupIndex.from_keys(sim, S, cl)
    codes, cl_sim = g.codes, g.group_sim
    size = np.bincount(codes)
    treated = np.bincount(codes, weights=z) > 0
    est, se, df, ok = clustered_dim(S, y, g, size, treated)
    X = np.column_stack([np.ones(len(y)), z])
    ref = lm_core(sim_index(sim, S), y, X, clusters=g, se_type="CR2", intercept_col=0)
    assert ok.all() and ref["ok"].all()
    np.testing.assert_allclose(est, ref["coef"][:, 1], rtol=1e-10, atol=1e-12)
    # one cluster per arm: SE 0 here, rounding noise (1e-31) in the general path
    np.testing.assert_allclose(se, ref["se"][:, 1], rtol=1e-9, atol=1e-14)
    # one cluster in each arm: G = 0, df is 0/0 (rounding noise in the general path)
    both = np.bincount(cl_sim, minlength=S) == 2
    assert np.isnan(df[both]).all()
    np.testing.assert_allclose(df[~both], ref["df"][~both, 1], rtol=1e-9, equal_nan=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lm_robust_binary_cluster_treatment_closed_form_equals_lm_core(seed):
    frames = cluster_batch(seed)
    sim, y, z, cl = _stack(frames)
    S = len(frames)
    g = GroupIndex.from_keys(sim, S, cl)
    codes, cl_sim = g.codes, g.group_sim
    fast = binary_cluster_treatment(sim_index(sim, S), y, z, g)
    X = np.column_stack([np.ones(len(y)), z])
    ref = lm_core(sim_index(sim, S), y, X, clusters=g, se_type="CR2", intercept_col=0)
    np.testing.assert_array_equal(fast["ok"], ref["ok"])
    np.testing.assert_allclose(fast["coef"], ref["coef"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fast["se"], ref["se"], rtol=1e-9, atol=1e-14)
    both = np.bincount(cl_sim, minlength=S) == 2       # 0/0 df, noise in the general path
    np.testing.assert_allclose(fast["df"][~both], ref["df"][~both], rtol=1e-9, equal_nan=True)
    # not 0/1, or not constant within clusters: not taken
    assert binary_cluster_treatment(sim_index(sim, S), y, 2 * z, g) is None
    z2 = z.copy()
    i = np.flatnonzero(np.bincount(codes)[codes] > 1)[0]   # a row of a cluster of 2+
    z2[i] = 1 - z2[i]
    assert binary_cluster_treatment(sim_index(sim, S), y, z2, g) is None
