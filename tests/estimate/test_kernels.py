"""Batched kernels == standalone path, on batches of varied data sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import difference_in_means, lm_robust
from declaredesign.estimate.grouped_sums import sim_index
from declaredesign.estimate.sandwich import sandwich
from declaredesign.estimate.stacked_ols import lm_core
from declaredesign.groups import GroupIndex

from ._util import NUM, batched, compare, standalone


def _frames(seed, n_sims=6, min_j=3, max_j=14):
    """Data sets of different sizes and numbers of clusters (sizes 1 to 30)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_sims):
        J = int(rng.integers(min_j, max_j))
        sizes = rng.integers(1, 30, size=J)
        cl = np.repeat(np.arange(J), sizes)
        n = len(cl)
        zc = rng.permutation(np.arange(J) % 2)[cl].astype(float)
        x = rng.normal(size=n) * 3 + 1
        g = rng.choice(["a", "b", "c"], size=n).astype(object)
        y = 1 + zc + 0.5 * x + rng.normal(size=n) * (1 + zc) + rng.normal(size=J)[cl]
        order = rng.permutation(n)   # clusters need not be contiguous
        frames.append(pd.DataFrame({"y": y, "z": zc, "x": x, "g": g, "cl": cl,
                                    "w": rng.uniform(0.3, 3, size=n)}).iloc[order]
                      .reset_index(drop=True))
    return frames





LM_KW = [
    {}, {"se_type": "classical"}, {"se_type": "HC0"}, {"se_type": "HC1"}, {"se_type": "HC3"},
    {"clusters": "cl"}, {"clusters": "cl", "se_type": "CR0"},
    {"clusters": "cl", "se_type": "stata"}, {"weights": "w"},
    {"weights": "w", "se_type": "classical"},
    {"weights": "w", "clusters": "cl", "se_type": "CR0"},
    {"weights": "w", "clusters": "cl", "se_type": "stata"},
    {"clusters": "cl", "alpha": 0.2},
]


@pytest.mark.parametrize("formula", ["y ~ z + x", "y ~ z * x + g"])
@pytest.mark.parametrize("kw", LM_KW, ids=[str(k) for k in LM_KW])
def test_lm_robust_kernel_equals_standalone(formula, kw, no_fallback):
    frames = _frames(1)
    out = batched(lm_robust)(Batch.from_frames(frames), formula, **kw)
    compare(out, standalone(lm_robust, formula, frames, **kw))


FE_KW = [{}, {"se_type": "HC0"}, {"se_type": "HC1"}, {"se_type": "HC3"},
         {"se_type": "classical"}, {"weights": "w"}, {"weights": "w", "se_type": "HC3"},
         {"clusters": "cl", "se_type": "CR0"}, {"clusters": "cl", "se_type": "stata"},
         {"clusters": "cl"}, {"weights": "w", "clusters": "cl", "se_type": "stata"}]


@pytest.mark.parametrize("kw", FE_KW, ids=[str(k) for k in FE_KW])
def test_fixed_effects_kernel_equals_standalone(kw, request):
    if not ("clusters" in kw and "se_type" not in kw):   # FE + CR2 is per simulation
        request.getfixturevalue("no_fallback")
    frames = _frames(12, n_sims=5)
    for f in frames:
        f["blk"] = np.asarray(f["g"])
    kw = dict(kw, fixed_effects="~ blk")
    out = batched(lm_robust)(Batch.from_frames(frames), "y ~ z + x", **kw)
    compare(out, standalone(lm_robust, "y ~ z + x", frames, **kw))


@pytest.mark.parametrize("formula", ["y ~ z + x", "y ~ z * x + g"])
@pytest.mark.parametrize("weights_vary", ["within", "between"])
def test_weighted_cr2_kernel_equals_standalone(formula, weights_vary, no_fallback):
    frames = _frames(2, n_sims=5)
    if weights_vary == "between":        # constant within clusters (cluster-level IPW)
        frames = [f.assign(w=(1 + f["cl"] % 3) * 0.7) for f in frames]
    out = batched(lm_robust)(Batch.from_frames(frames), formula, clusters="cl",
                                 weights="w")
    assert out["error"].isna().all()   # no simulation failed
    compare(out, standalone(lm_robust, formula, frames, clusters="cl", weights="w"))


def test_cr2_clusters_of_size_one_and_singular_blocks(no_fallback):
    # a dummy that is non-zero in one singleton cluster makes I - H_gg singular there
    frames = _frames(3, n_sims=4)
    for f in frames:
        f["d"] = (f["cl"] == f["cl"].iloc[0]).astype(float)
    out = batched(lm_robust)(Batch.from_frames(frames), "y ~ z + x + d", clusters="cl")
    compare(out, standalone(lm_robust, "y ~ z + x + d", frames, clusters="cl"))


def test_rank_deficient_sims_follow_the_exact_path():
    frames = _frames(4, n_sims=5)
    for i, f in enumerate(frames):
        f["x2"] = 2 * f["x"] if i in (1, 3) else f["x"] ** 2
    frames[2]["z"] = 0.0      # treatment constant: its column is dropped
    frames[4] = frames[4].iloc[:4]   # too few rows for the fast path, but full rank
    out = batched(lm_robust)(Batch.from_frames(frames), "y ~ z + x + x2", clusters="cl")
    ref = standalone(lm_robust, "y ~ z + x + x2", frames, clusters="cl")
    compare(out, ref)
    assert out.loc[out["sim"] == 2, "estimate"].isna().sum() == 1
    warned = out.groupby("sim")["warning"].apply(lambda v: v.notna().all())
    assert warned.tolist() == [False, True, True, True, False]
    assert out["warning"].dropna().str.contains("rank deficient").all()


def test_failing_sim_gives_nan_rows_with_error():
    frames = _frames(5, n_sims=3)
    frames[1] = frames[1].iloc[:2]           # 2 rows, 3 coefficients: cannot be fitted
    frames[1].loc[:, "y"] = np.nan           # ... and no complete rows at all
    out = batched(lm_robust)(Batch.from_frames(frames), "y ~ z + x", clusters="cl")
    assert set(out["sim"]) == {0, 1, 2}
    bad = out[out["sim"] == 1]
    assert bad[NUM].isna().all().all()
    assert bad["error"].str.len().gt(0).all()
    assert (bad["outcome"] == "y").all()
    assert out.loc[out["sim"] != 1, "error"].isna().all()


def test_kernel_respects_subset_and_na():
    frames = _frames(6, n_sims=4)
    for f in frames:
        f.loc[f.index[:3], "x"] = np.nan
    kw = {"clusters": "cl", "subset": "x > -2"}
    out = batched(lm_robust)(Batch.from_frames(frames), "y ~ z + x", **kw)
    compare(out, standalone(lm_robust, "y ~ z + x", frames, **kw))


def test_cr2_kxk_pieces_equal_direct_computation():
    """The k x k CR2 formulas (vcov and Bell-McCaffrey df) against the n_g x n_g route."""
    rng = np.random.default_rng(7)
    sizes = np.array([1, 1, 2, 5, 9, 17, 40])
    cl = np.repeat(np.arange(len(sizes)), sizes)
    n = len(cl)
    X = np.column_stack([np.ones(n), rng.normal(size=n), (cl % 2).astype(float),
                         rng.normal(size=n) ** 2])
    y = X @ np.array([1.0, 0.5, -1.0, 0.2]) + rng.normal(size=n)
    clusters = GroupIndex(cl, np.zeros(len(sizes), dtype=np.int64), 1)
    res = lm_core(sim_index(np.zeros(n, dtype=np.int64), 1), y, X, clusters=clusters,
                  se_type="CR2")
    M = np.linalg.inv(X.T @ X)
    b = M @ X.T @ y
    direct = sandwich(X, y - X @ b, M, "CR2", cluster=cl)
    np.testing.assert_allclose(res["coef"][0], b, rtol=1e-11)
    np.testing.assert_allclose(res["se"][0], np.sqrt(np.diag(direct.vcov)), rtol=1e-11)
    np.testing.assert_allclose(res["df"][0], direct.df, rtol=1e-10)


DIM_KW = [{}, {"clusters": "cl"}, {"weights": "w"}, {"alpha": 0.01},
          {"clusters": "cl", "weights": "w"}]


@pytest.mark.parametrize("kw", DIM_KW, ids=[str(k) for k in DIM_KW])
def test_difference_in_means_kernel_equals_standalone(kw, no_fallback):
    frames = _frames(8)
    out = batched(difference_in_means)(Batch.from_frames(frames), "y ~ z", **kw)
    compare(out, standalone(difference_in_means, "y ~ z", frames, **kw))


def _blocked_frames(seed, n_sims=6):
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_sims):
        sizes = rng.integers(4, 12, size=int(rng.integers(2, 6)))
        if i % 3 == 1:
            sizes[0] = 2                       # a pair: matched-pair variance for the sim
        if i % 3 == 2:
            sizes[:] = 2                       # all pairs
        blk = np.repeat(np.arange(len(sizes)), sizes)
        t = np.concatenate([rng.permutation(np.arange(m) % 2) for m in sizes])
        y = rng.normal(size=len(blk)) + t * 0.5 + blk
        cl = np.arange(len(blk)) // 1
        frames.append(pd.DataFrame({"y": y, "t": t, "blk": rng.permutation(10)[blk] * 7,
                                    "cl": cl, "w": rng.uniform(0.5, 2, len(blk))}))
    return frames


@pytest.mark.parametrize("kw", [{"blocks": "blk"}, {"blocks": "blk", "clusters": "cl"},
                                {"blocks": "blk", "weights": "w"}],
                         ids=["blocked", "block-clustered", "blocked-weighted"])
def test_difference_in_means_kernel_blocked(kw):
    frames = _blocked_frames(9)
    if "weights" in kw:
        frames = [f for f in frames if f.groupby("blk").size().min() > 2]
    out = batched(difference_in_means)(Batch.from_frames(frames), "y ~ t", **kw)
    ref = pd.concat([difference_in_means("y ~ t", f, **kw).tidy().assign(sim=i)
                     for i, f in enumerate(frames)], ignore_index=True)
    compare(out, ref)


def test_difference_in_means_kernel_blocked_error_sim():
    frames = _blocked_frames(11, n_sims=3)
    f = frames[1]
    f.loc[f["blk"] == f["blk"].iloc[0], "t"] = 0   # a block without treated units
    out = batched(difference_in_means)(Batch.from_frames(frames), "y ~ t", blocks="blk")
    assert out.loc[out["sim"] == 1, "estimate"].isna().all()
    assert out.loc[out["sim"] == 1, "error"].str.contains("both treatment").all()
    assert out.loc[out["sim"] != 1, "estimate"].notna().all()


@pytest.mark.parametrize("se_type,cov_type,kw", [
    ("HC0", "HC0", {}), ("HC1", "HC1", {}), ("HC2", "HC2", {}), ("HC3", "HC3", {}),
    ("CR0", "cluster", {"use_correction": False}), ("stata", "cluster", {}),
])
def test_against_statsmodels(se_type, cov_type, kw):
    sm = pytest.importorskip("statsmodels.api")
    f = _frames(10, n_sims=1)[0]
    X = np.column_stack([np.ones(len(f)), f["z"], f["x"]])
    clustered = cov_type == "cluster"
    if clustered:
        kw = dict(kw, groups=f["cl"].to_numpy())
    res = sm.OLS(f["y"].to_numpy(), X).fit(cov_type=cov_type, cov_kwds=kw or None)
    fit = lm_robust("y ~ z + x", f, se_type=se_type, clusters="cl" if clustered else None)
    np.testing.assert_allclose(fit.coefficients.to_numpy(), res.params, rtol=1e-10)
    np.testing.assert_allclose(fit.vcov.to_numpy(), res.cov_params(), rtol=1e-10)


def test_level_id_columns_behave_as_in_the_split_frames():
    """IDs are int codes in a batch but fabricatr strings in data frames: same answers."""
    rng = np.random.default_rng(13)
    n_cls = np.array([6, 8, 7])
    sizes = rng.integers(3, 9, size=n_cls.sum())
    sim = np.repeat(np.repeat(np.arange(3), n_cls), sizes)
    cls = np.repeat(np.concatenate([np.arange(1, m + 1) for m in n_cls]), sizes)
    treat = np.repeat(np.concatenate([rng.permutation(np.arange(m) % 2) for m in n_cls]),
                      sizes).astype(float)
    batch = Batch({"y": rng.normal(size=len(sim)) + treat, "treat": treat, "classroom": cls},
                  sim=sim, n_sims=3, id_columns=["classroom"])
    frames = batch.split()
    for func, kw in ((lm_robust, {"clusters": "classroom", "subset": "classroom != '3'"}),
                     (difference_in_means, {"clusters": "classroom",
                                            "subset": "classroom != '3'"})):
        out = batched(func)(batch, "y ~ treat", **kw)
        compare(out, standalone(func, "y ~ treat", frames, **kw))
    # a factor made from an ID column gets fabricatr's level names (padded per sim)
    out = batched(lm_robust)(batch, "y ~ classroom")
    assert "classroom2" in set(out["term"])
    compare(out, standalone(lm_robust, "y ~ classroom", frames))
