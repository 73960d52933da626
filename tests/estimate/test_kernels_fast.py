"""Closed-form fast paths of the batched kernels == the general paths they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import difference_in_means, lm_robust, sandwich, stacked_ols
from declaredesign.estimate.grouped_sums import sim_index
from declaredesign.estimate.stacked_ols import lm_core
from declaredesign.estimate.two_arm import binary_cluster_treatment, clustered_dim
from declaredesign.groups import GroupIndex

from ._util import batched, compare, standalone
from .test_kernels import _frames


def _cluster_batch(seed, n_sims=40):
    """Stacked sims with unequal clusters, clusters of size 1, a cluster alone in its arm,
    large outcome means, unsorted rows."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(n_sims):
        J = int(rng.integers(2, 12))
        sizes = rng.integers(1, 25, size=J)
        if s % 5 == 0:
            sizes[0] = 1
        z = rng.permutation(np.arange(J) % 2)
        if s % 7 == 3 and J > 2:
            z = np.zeros(J, dtype=int)
            z[int(rng.integers(J))] = 1                     # one treated cluster
            sizes[z == 1] = max(int(sizes[z == 1][0]), 2)
        cl = np.repeat(np.arange(J), sizes)
        n = len(cl)
        zc = z[cl].astype(float)
        y = rng.normal(size=n) * (1 + zc) + rng.normal(size=J)[cl] + 1e3 * (s % 3)
        order = rng.permutation(n)
        frames.append(pd.DataFrame({"y": y, "z": zc, "cl": cl * 3 + 1}).iloc[order]
                      .reset_index(drop=True))
    return frames


def _stack(frames):
    y = np.concatenate([f["y"].to_numpy() for f in frames])
    z = np.concatenate([f["z"].to_numpy() for f in frames])
    cl = np.concatenate([f["cl"].to_numpy() for f in frames])
    sim = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
    return sim, y, z, cl


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clustered_dim_closed_form_equals_lm_core(seed):
    frames = _cluster_batch(seed)
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


@pytest.mark.usefixtures("no_fallback")
def test_clustered_dim_kernel_equals_standalone_with_odd_clusters():
    frames = [f for f in _cluster_batch(5, n_sims=25)
              if min((f["z"] == 1).sum(), (f["z"] == 0).sum()) >= 2]
    out = batched(difference_in_means)(Batch.from_frames(frames), "y ~ z", clusters="cl")
    compare(out, standalone(difference_in_means, "y ~ z", frames, clusters="cl"))


def test_clustered_dim_kernel_sim_with_one_arm_takes_exact_path():
    frames = [f for f in _cluster_batch(3, n_sims=20)
              if min((f["z"] == 1).sum(), (f["z"] == 0).sum()) >= 2][:6]
    frames[2] = frames[2].assign(z=1.0)
    out = batched(difference_in_means)(Batch.from_frames(frames), "y ~ z", clusters="cl")
    assert out["sim"].tolist() == list(range(6))
    assert np.isnan(out.loc[2, "estimate"]) and "error" in out.columns
    good = [f for i, f in enumerate(frames) if i != 2]
    ref = standalone(difference_in_means, "y ~ z", good, clusters="cl")
    np.testing.assert_allclose(out.drop(index=2)["estimate"], ref["estimate"], rtol=1e-10)


def _k2_frames(seed, n_sims=8):
    """Two-coefficient CR2 fits: size-1 clusters, a leverage-one cluster (a dummy that is
    non-zero only there), cluster-constant regressors (rank-1 ``A_g``)."""
    frames = _frames(seed, n_sims=n_sims)
    for i, f in enumerate(frames):
        f["d"] = (f["cl"] == f["cl"].iloc[0]).astype(float)
        f["xc"] = f.groupby("cl")["x"].transform("mean")
        if i % 2:
            f["y"] = f["y"] + 1e4
    return frames


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("formula", ["y ~ x", "y ~ z", "y ~ d", "y ~ xc", "y ~ 0 + x + z"])
def test_cr2_two_coefficients_equals_standalone(formula):
    frames = _k2_frames(11)
    out = batched(lm_robust)(Batch.from_frames(frames), formula, clusters="cl")
    compare(out, standalone(lm_robust, formula, frames, clusters="cl"), rtol=1e-9)


@pytest.mark.parametrize("col", ["x", "z", "d", "xc"])
def test_cr2_two_coefficients_equals_general_kxk(col, monkeypatch):
    frames = _k2_frames(12, n_sims=10)
    sim = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
    y = np.concatenate([f["y"].to_numpy() for f in frames])
    x = np.concatenate([f[col].to_numpy() for f in frames])
    cl = np.concatenate([f["cl"].to_numpy() for f in frames])
    S = len(frames)
    g = GroupIndex.from_keys(sim, S, cl)
    X = np.column_stack([np.ones(len(y)), x])
    fast = lm_core(sim_index(sim, S), y, X, clusters=g, se_type="CR2", intercept_col=0)
    monkeypatch.setattr(stacked_ols, "cr2_stacked", sandwich._cr2_general)
    ref = lm_core(sim_index(sim, S), y, X, clusters=g, se_type="CR2", intercept_col=0)
    np.testing.assert_allclose(fast["coef"], ref["coef"], rtol=1e-12)
    np.testing.assert_allclose(fast["se"], ref["se"], rtol=1e-9)
    np.testing.assert_allclose(fast["df"], ref["df"], rtol=1e-9, equal_nan=True)


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("kw", [{"clusters": "cl"}, {}, {"clusters": "cl", "subset": "y > -1"}])
def test_dim_kernel_rows_dropped_by_na_subset_and_third_condition(kw):
    frames = [f for f in _cluster_batch(8, n_sims=30)
              if min((f["z"] == 1).sum(), (f["z"] == 0).sum()) >= 4][:6]
    for i, f in enumerate(frames):
        f.loc[f.index[:2], "y"] = np.nan
        if i % 2:
            f.loc[f["cl"] == f["cl"].max(), "z"] = 2.0     # a third condition, left out
    kw = {**kw, "condition1": 0.0, "condition2": 1.0}
    # one cluster in each arm leaves SE and df as rounding noise (0/0): not comparable
    frames = [f for f in frames
              if f.query(kw.get("subset", "y == y")).query("z < 2").groupby("z")["cl"]
              .nunique().min() >= 2]
    assert len(frames) >= 3
    out = batched(difference_in_means)(Batch.from_frames(frames), "y ~ z", **kw)
    compare(out, standalone(difference_in_means, "y ~ z", frames, **kw))


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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lm_robust_binary_cluster_treatment_closed_form_equals_lm_core(seed):
    frames = _cluster_batch(seed)
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


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("kw", [{"clusters": "cl"}, {"clusters": "cl", "subset": "y > -1"},
                                {"clusters": "cl", "alpha": 0.1}])
def test_lm_robust_binary_cluster_treatment_kernel_equals_standalone(kw):
    frames = [f for f in _cluster_batch(9, n_sims=40)
              if f.query(kw.get("subset", "y == y")).groupby("z")["cl"].nunique().min() >= 2
              and f.query(kw.get("subset", "y == y"))["z"].nunique() == 2][:10]
    assert len(frames) >= 5
    out = batched(lm_robust)(Batch.from_frames(frames), "y ~ z", **kw)
    compare(out, standalone(lm_robust, "y ~ z", frames, **kw), rtol=1e-9)
