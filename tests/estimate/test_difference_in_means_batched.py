"""difference_in_means' kernel == the standalone fit, simulation by simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import difference_in_means

from ._util import batched, cluster_batch, compare, standalone, varied_frames

DIM_KW = [{}, {"clusters": "cl"}, {"weights": "w"}, {"alpha": 0.01},
          {"clusters": "cl", "weights": "w"}]


@pytest.mark.parametrize("kw", DIM_KW, ids=[str(k) for k in DIM_KW])
def test_difference_in_means_kernel_equals_standalone(kw, no_fallback):
    frames = varied_frames(8)
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


@pytest.mark.usefixtures("no_fallback")
def test_clustered_dim_kernel_equals_standalone_with_odd_clusters():
    frames = [f for f in cluster_batch(5, n_sims=25)
              if min((f["z"] == 1).sum(), (f["z"] == 0).sum()) >= 2]
    out = batched(difference_in_means)(Batch.from_frames(frames), "y ~ z", clusters="cl")
    compare(out, standalone(difference_in_means, "y ~ z", frames, clusters="cl"))


def test_clustered_dim_kernel_sim_with_one_arm_takes_exact_path():
    frames = [f for f in cluster_batch(3, n_sims=20)
              if min((f["z"] == 1).sum(), (f["z"] == 0).sum()) >= 2][:6]
    frames[2] = frames[2].assign(z=1.0)
    out = batched(difference_in_means)(Batch.from_frames(frames), "y ~ z", clusters="cl")
    assert out["sim"].tolist() == list(range(6))
    assert np.isnan(out.loc[2, "estimate"]) and "error" in out.columns
    good = [f for i, f in enumerate(frames) if i != 2]
    ref = standalone(difference_in_means, "y ~ z", good, clusters="cl")
    np.testing.assert_allclose(out.drop(index=2)["estimate"], ref["estimate"], rtol=1e-10)


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("kw", [{"clusters": "cl"}, {}, {"clusters": "cl", "subset": "y > -1"}])
def test_dim_kernel_rows_dropped_by_na_subset_and_third_condition(kw):
    frames = [f for f in cluster_batch(8, n_sims=30)
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
