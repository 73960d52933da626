"""lm_robust's kernel == the standalone fit, simulation by simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from declaredesign.batch import Batch
from declaredesign.estimate import (
    difference_in_means,
    lm_robust,
)

from ._util import NUM, batched, cluster_batch, compare, standalone, treatment_frames, varied_frames

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
    frames = varied_frames(1)
    out = batched(lm_robust)(Batch.from_frames(frames), formula, **kw)
    compare(out, standalone(lm_robust, formula, frames, **kw))


FE_KW = [{}, {"se_type": "HC0"}, {"se_type": "HC1"}, {"se_type": "HC3"},
         {"se_type": "classical"}, {"weights": "w"}, {"weights": "w", "se_type": "HC3"},
         {"clusters": "cl", "se_type": "CR0"}, {"clusters": "cl", "se_type": "stata"},
         {"clusters": "cl"}, {"weights": "w", "clusters": "cl", "se_type": "stata"}]


@pytest.mark.parametrize("kw", FE_KW, ids=[str(k) for k in FE_KW])
def test_fixed_effects_kernel_equals_standalone(kw, request):
    if not ("clusters" in kw and "se_type" not in kw):   # FE + CR2 across levels is
        request.getfixturevalue("no_fallback")             # per simulation
    frames = varied_frames(12, n_sims=5)
    for f in frames:
        f["blk"] = np.asarray(f["g"])
    kw = dict(kw, fixed_effects="~ blk")
    out = batched(lm_robust)(Batch.from_frames(frames), "y ~ z + x", **kw)
    compare(out, standalone(lm_robust, "y ~ z + x", frames, **kw))


@pytest.mark.parametrize("formula", ["y ~ z + x", "y ~ z", "y ~ z * x + g"])
@pytest.mark.parametrize("padded", [True, False])
def test_fixed_effects_cr2_nested_clusters_kernel_equals_standalone(formula, padded,
                                                                    monkeypatch, no_fallback):
    # clusters nested in the fixed effect (blocked cluster designs): batched CR2
    if not padded:   # the trace identity used for many clusters per simulation
        from declaredesign.estimate import fixed_effects
        monkeypatch.setattr(fixed_effects, "_PADDED_LIMIT", 0)
    frames = varied_frames(21, n_sims=6, min_j=6)
    for f in frames:        # both arms in every block
        f["blk"], f["z"] = f["cl"] % 3, (f["cl"] // 3 % 2).astype(float)
    frames[0]["blk"], frames[0]["z"] = frames[0]["cl"] // 2, frames[0]["cl"] % 2.0  # pairs
    kw = {"clusters": "cl", "fixed_effects": "~ blk"}
    out = batched(lm_robust)(Batch.from_frames(frames), formula, **kw)
    ref = standalone(lm_robust, formula, frames, **kw)
    compare(out, ref)


def test_fixed_effects_cr2_clusters_across_levels_go_per_simulation():
    frames = varied_frames(22, n_sims=3)
    for f in frames:
        f["blk"] = np.asarray(f["g"])
    kw = {"clusters": "cl", "fixed_effects": "~ blk"}
    out = batched(lm_robust)(Batch.from_frames(frames), "y ~ z + x", **kw)
    compare(out, standalone(lm_robust, "y ~ z + x", frames, **kw))


@pytest.mark.parametrize("formula", ["y ~ z + x", "y ~ z * x + g"])
@pytest.mark.parametrize("weights_vary", ["within", "between"])
def test_weighted_cr2_kernel_equals_standalone(formula, weights_vary, no_fallback):
    frames = varied_frames(2, n_sims=5)
    if weights_vary == "between":        # constant within clusters (cluster-level IPW)
        frames = [f.assign(w=(1 + f["cl"] % 3) * 0.7) for f in frames]
    out = batched(lm_robust)(Batch.from_frames(frames), formula, clusters="cl",
                                 weights="w")
    assert out["error"].isna().all()   # no simulation failed
    compare(out, standalone(lm_robust, formula, frames, clusters="cl", weights="w"))


def test_cr2_clusters_of_size_one_and_singular_blocks(no_fallback):
    # a dummy that is non-zero in one singleton cluster makes I - H_gg singular there
    frames = varied_frames(3, n_sims=4)
    for f in frames:
        f["d"] = (f["cl"] == f["cl"].iloc[0]).astype(float)
    out = batched(lm_robust)(Batch.from_frames(frames), "y ~ z + x + d", clusters="cl")
    compare(out, standalone(lm_robust, "y ~ z + x + d", frames, clusters="cl"))


def test_rank_deficient_sims_follow_the_exact_path():
    frames = varied_frames(4, n_sims=5)
    for i, f in enumerate(frames):
        f["x2"] = 2 * f["x"] if i in (1, 3) else f["x"] ** 2
    frames[2]["z"] = 0.0      # treatment constant: its column is dropped
    frames[4] = frames[4].iloc[:4]   # too few rows for the fast path, but full rank
    out = batched(lm_robust)(Batch.from_frames(frames), "y ~ z + x + x2", clusters="cl")
    ref = standalone(lm_robust, "y ~ z + x + x2", frames, clusters="cl")
    compare(out, ref)
    assert out.loc[out["sim"] == 2, "estimate"].isna().sum() == 1
    warned = out.groupby("sim")["warning"].apply(lambda v: v.notna().all())
    # sim 4 has as many terms as rows: no residual df, so no SE (issue 12)
    assert warned.tolist() == [False, True, True, True, True]
    assert out.loc[out["sim"] < 4, "warning"].dropna().str.contains("rank deficient").all()
    assert out.loc[out["sim"] == 4, "warning"].str.contains("no residual degrees").all()
    assert out.loc[out["sim"] == 4, "std_error"].isna().all()


def test_failing_sim_gives_nan_rows_with_error():
    frames = varied_frames(5, n_sims=3)
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
    frames = varied_frames(6, n_sims=4)
    for f in frames:
        f.loc[f.index[:3], "x"] = np.nan
    kw = {"clusters": "cl", "subset": "x > -2"}
    out = batched(lm_robust)(Batch.from_frames(frames), "y ~ z + x", **kw)
    compare(out, standalone(lm_robust, "y ~ z + x", frames, **kw))


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


def _k2_frames(seed, n_sims=8):
    """Two-coefficient CR2 fits: size-1 clusters, a leverage-one cluster (a dummy that is
    non-zero only there), cluster-constant regressors (rank-1 ``A_g``)."""
    frames = varied_frames(seed, n_sims=n_sims)
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


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("kw", [{"clusters": "cl"}, {"clusters": "cl", "subset": "y > -1"},
                                {"clusters": "cl", "alpha": 0.1}])
def test_lm_robust_binary_cluster_treatment_kernel_equals_standalone(kw):
    frames = [f for f in cluster_batch(9, n_sims=40)
              if f.query(kw.get("subset", "y == y")).groupby("z")["cl"].nunique().min() >= 2
              and f.query(kw.get("subset", "y == y"))["z"].nunique() == 2][:10]
    assert len(frames) >= 5
    out = batched(lm_robust)(Batch.from_frames(frames), "y ~ z", **kw)
    compare(out, standalone(lm_robust, "y ~ z", frames, **kw), rtol=1e-9)


def test_lm_robust_kernel_several_outcomes_per_simulation():
    from declaredesign.estimate import lm_robust
    frames = treatment_frames(9, n_sims=3)
    out = batched(lm_robust)(Batch.from_frames(frames), "cbind(y, x1) ~ z + x",
                                 clusters="cl")
    compare(out, standalone(lm_robust, "cbind(y, x1) ~ z + x", frames, clusters="cl"))
    assert out["outcome"].tolist()[:6] == ["y"] * 3 + ["x1"] * 3


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 100_000), n_sims=st.integers(1, 4),
       se=st.sampled_from(["CR2", "CR0", "stata", "HC2", "HC3", "classical"]),
       weighted=st.booleans(), factor=st.booleans())
def test_kernel_equals_standalone_on_random_designs(seed, n_sims, se, weighted, factor):
    from declaredesign.batch import Batch

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_sims):
        J = int(rng.integers(2, 8))
        cl = np.repeat(np.arange(J), rng.integers(1, 6, size=J))
        n = len(cl)
        frames.append(pd.DataFrame({
            "y": rng.normal(size=n), "x": rng.normal(size=n),
            "z": rng.integers(0, 2, size=J)[cl].astype(float),
            "g": rng.choice(["a", "b"], size=n).astype(object), "cl": cl,
            "w": rng.uniform(0.2, 3, size=n)}))
    kw = {"se_type": se, "weights": "w" if weighted else None,
          "clusters": "cl" if se in ("CR2", "CR0", "stata") else None}
    formula = "y ~ z + x + g" if factor else "y ~ z + x"
    out = batched(lm_robust)(Batch.from_frames(frames), formula, **kw)
    for s, f in enumerate(frames):
        got = out[out["sim"] == s]
        try:
            fit = lm_robust(formula, f, **kw)
        except Exception:
            assert got["error"].notna().all()
            continue
        if not 1e-20 < fit.res_var < np.inf:
            continue          # perfect fit (or no residual df): SEs are rounding noise in R too
        if kw["clusters"] and f["cl"].nunique() <= fit.rank:
            continue          # fewer clusters than coefficients: a rank-deficient meat whose
            #                   CR2 df sit on a near-singular G (df ~ 1 +- rounding noise)
        ref = fit.tidy()
        if np.nanmax(ref["std_error"]) < 1e-12 * max(1.0, np.nanmax(np.abs(ref["estimate"]))):
            continue          # SEs zero in exact arithmetic (e.g. two clusters): noise
        assert got["term"].tolist() == ref["term"].tolist()
        cols = ["estimate", "std_error", "df", "p_value"]
        np.testing.assert_allclose(got[cols].to_numpy(float), ref[cols].to_numpy(float),
                                   rtol=1e-8, atol=1e-12, equal_nan=True)


GLANCE_KW = [{}, {"se_type": "classical"}, {"se_type": "HC0"}, {"se_type": "HC1"},
             {"se_type": "HC3"}, {"clusters": "cl"}, {"clusters": "cl", "se_type": "CR0"},
             {"clusters": "cl", "se_type": "stata"}, {"weights": "w"},
             {"weights": "w", "se_type": "classical"}, {"weights": "w", "clusters": "cl"}]


@pytest.mark.parametrize("formula", ["y ~ z + x", "y ~ z * x + g", "y ~ 0 + z + x", "y ~ 1",
                                     "y ~ z"])
@pytest.mark.parametrize("kw", GLANCE_KW, ids=[str(k) for k in GLANCE_KW])
def test_glance_kernel_equals_standalone_glance(formula, kw):
    from declaredesign.design.steps.summary import glance, glance_batch
    from declaredesign.estimate.lm_robust import LmRobustSpec, lm_robust_glance_kernel
    from declaredesign.estimate.protocol import resolve_model

    frames = varied_frames(31, n_sims=5)
    batch = Batch.from_frames(frames)
    spec = LmRobustSpec.parse(formula, **kw)
    declined = lm_robust_glance_kernel(batch, spec).fallback
    # fewer clusters than terms: a singular robust V, its F left to the standalone fit
    assert len(declined) <= (1 if "clusters" in kw else 0)
    out = glance_batch(resolve_model(lm_robust)[0], spec, batch)
    ref = pd.concat([glance(lm_robust(formula, f, **kw)) for f in frames], ignore_index=True)
    assert out["sim"].tolist() == list(range(len(frames)))
    assert out["term"].isna().all() and out["estimate"].isna().all()
    for c in ["r_squared", "adj_r_squared", "statistic", "p_value", "df_residual"]:
        # R squared of an intercept-only fit is 0 up to rounding (+-2e-16) on both paths
        atol = 1e-13 if c.endswith("r_squared") else 1e-300
        np.testing.assert_allclose(out[c].to_numpy(float), ref[c].to_numpy(float), rtol=1e-9,
                                   atol=atol, equal_nan=True, err_msg=c)
    assert out["nobs"].tolist() == ref["nobs"].tolist()
    assert out["se_type"].tolist() == ref["se_type"].tolist()


def test_glance_kernel_stopped_by_numerical_trouble_fits_each_simulation(monkeypatch):
    # as fit_batch: a kernel stopped by a LinAlgError in one simulation must not end the
    # run; every simulation is then glanced on its own
    from declaredesign.design.steps import summary
    from declaredesign.estimate.lm_robust import LmRobustSpec
    from declaredesign.estimate.protocol import resolve_model

    calls = []

    def singular(batch, spec):
        calls.append(batch.n_sims)
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setitem(summary._GLANCE_KERNELS, lm_robust, singular)
    frames = varied_frames(31, n_sims=4)
    spec = LmRobustSpec.parse("y ~ x", se_type="HC2")
    out = summary.glance_batch(resolve_model(lm_robust)[0], spec, Batch.from_frames(frames))
    ref = pd.concat([summary.glance(lm_robust("y ~ x", f, se_type="HC2")) for f in frames],
                    ignore_index=True)
    assert calls == [len(frames)]
    assert out["sim"].tolist() == list(range(len(frames)))
    np.testing.assert_array_equal(out["r_squared"].to_numpy(float),
                                  ref["r_squared"].to_numpy(float))
