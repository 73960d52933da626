"""diagnose_simulations against R's diagnose_design on R's own 5,000 simulations,
the vectorized bootstrap against a replicate-by-replicate loop, and the Diagnosis
object's tables."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.design import diagnosis as diagnosis_module
from declaredesign.design.diagnosands import DEFAULT_DIAGNOSANDS, declare_diagnosands
from declaredesign.design.diagnosis import (
    Diagnosis,
    _loop_bootstrap,
    _sim_codes,
    bootstrap_weights,
    compare_diagnoses,
    diagnose_simulations,
    from_r_simulations,
)
from declaredesign.errors import DeclarationError

REF = Path(__file__).parents[1] / "fixtures" / "reference"
R_NAMES = list(DEFAULT_DIAGNOSANDS) + ["mean_se", "type_s_rate"]
GROUPS = ["design", "inquiry", "estimator", "outcome", "term"]
# R's simulations file has no outcome column; its diagnosis does (lmer's is NA).
OUTCOMES = {"difference_in_means_cluster": "score", "lm_robust_CR2_testlevel": "score",
            "student_means_lm_robust_CR2": "av_score", "lmer_student_RE": np.nan}


@pytest.fixture(scope="module")
def r_sims() -> pd.DataFrame:
    sims = from_r_simulations(pd.read_csv(REF / "seed_design_sims_R_5000.csv"))
    sims["outcome"] = sims["estimator"].map(OUTCOMES)
    sims.insert(0, "design", "design")
    return sims


@pytest.fixture(scope="module")
def r_diagnosis() -> pd.DataFrame:
    return pd.read_csv(REF / "seed_design_diagnosis_R_5000sims.csv")


def test_from_r_simulations_renames():
    raw = pd.read_csv(REF / "seed_design_sims_R_5000.csv", nrows=2)
    cols = list(from_r_simulations(raw).columns)
    assert cols == ["sim_id", "estimator", "term", "estimate", "std_error", "statistic", "df",
                    "p_value", "conf_low", "conf_high", "inquiry", "estimand"]
    assert "sim_ID" in raw.columns  # input not mutated


def test_diagnosands_equal_r(r_sims, r_diagnosis):
    d = diagnose_simulations(r_sims, R_NAMES, bootstrap_sims=0)
    got = d.diagnosands
    assert list(got.columns) == GROUPS + R_NAMES + ["n_sims"]
    # same groups in R's order, including lmer's NA outcome
    for c in GROUPS:
        assert got[c].astype(object).fillna("<NA>").tolist() == \
            r_diagnosis[c].astype(object).fillna("<NA>").tolist()
    for name in R_NAMES:
        np.testing.assert_allclose(got[name], r_diagnosis[name], rtol=1e-10, atol=1e-14,
                                   err_msg=name)
    assert (got["n_sims"] == r_diagnosis["n_sims"]).all()


def test_bootstrap_ses_agree_with_r(r_sims, r_diagnosis):
    # R's SEs come from 100 replicates: an SD from 99 df has a relative sampling SD of
    # about sqrt((kurtosis - 1) / (4 * 99)) ~ 0.07 for near-normal replicate
    # distributions. Ours use 2,000 replicates (relative SD ~ 0.016), so the ratio is
    # ~1 +- 0.075 and the 0.7..1.3 band is about 4 of its SDs wide on each side.
    # (Observed over seeds 0-2: 0.93 .. 1.15.)
    d = diagnose_simulations(r_sims, R_NAMES, bootstrap_sims=2000, seed=20240601)
    for name in R_NAMES:
        ratio = d.diagnosands[name + "_se"].to_numpy() / r_diagnosis[f"se({name})"].to_numpy()
        assert np.all((ratio > 0.7) & (ratio < 1.3)), (name, ratio)


@pytest.mark.parametrize("na_rm", [False, True])
def test_vectorized_bootstrap_equals_loop_given_same_weights(r_sims, na_rm):
    sims = r_sims[r_sims.sim_id <= 300].copy()
    # a failed row, an NaN p-value and a custom diagnosand exercise every path
    sims.loc[sims.index[5], ["estimate", "std_error", "p_value"]] = np.nan
    sims["error"] = None
    sims.loc[sims.index[5], "error"] = "singular"
    sims.loc[sims.index[11], "p_value"] = np.nan
    ds = declare_diagnosands(*R_NAMES, "exaggeration_ratio", "var_estimate",
                             med=lambda df: float(np.median(df.estimate)), na_rm=na_rm)
    b, seed = 20, 7
    d = diagnose_simulations(sims, ds, bootstrap_sims=b, seed=seed)
    _, k = _sim_codes(sims)
    weights = bootstrap_weights(k, b, np.random.default_rng(seed))
    ok = sims[sims.error.isna()]
    loop = _loop_bootstrap(ok, ds, weights, d.group_by)
    reps = d.bootstrap_replicates
    assert list(reps.columns) == ["bootstrap_id", *GROUPS, *ds.names]
    assert len(reps) == b * 4
    for i, frame in enumerate(loop):
        vec = reps[reps.bootstrap_id == i + 1].reset_index(drop=True)
        pd.testing.assert_frame_equal(vec[GROUPS], frame[GROUPS], check_dtype=False)
        for name in ds.names:
            np.testing.assert_allclose(vec[name], frame[name], rtol=1e-11, atol=1e-15,
                                       err_msg=name)
    # SE is R's sd() (n - 1) over the replicates
    for name in ds.names:
        sd = reps.groupby("estimator", sort=True)[name].std(ddof=1, skipna=False)
        np.testing.assert_allclose(d.diagnosands[name + "_se"], sd.to_numpy(), rtol=1e-12)


def test_bootstrap_resamples_whole_simulations_jointly():
    # Two estimators whose estimates are identical per simulation must get identical
    # replicates: rows of a simulation are drawn together (R resamples sim_ID).
    rng = np.random.default_rng(3)
    est = rng.normal(size=200)
    base = pd.DataFrame({"sim_id": np.arange(1, 201), "inquiry": "ATE", "estimand": 0.0,
                         "estimate": est, "term": "Z"})
    sims = pd.concat([base.assign(estimator="a"), base.assign(estimator="b")])
    d = diagnose_simulations(sims, ["mean_estimate"], bootstrap_sims=50, seed=1)
    reps = d.bootstrap_replicates.pivot(index="bootstrap_id", columns="estimator",
                                        values="mean_estimate")
    np.testing.assert_array_equal(reps["a"], reps["b"])
    assert reps["a"].std() > 0


def test_bootstrap_weights_are_multinomial_counts():
    w = bootstrap_weights(1000, 30, np.random.default_rng(0))
    assert w.shape == (30, 1000) and (w.sum(axis=1) == 1000).all()
    # each count is Binomial(1000, 1/1000): mean 1, variance ~ 1
    assert abs(w.mean() - 1) < 1e-12 and 0.9 < w.var() < 1.1


def test_missing_sim_ids_are_drawn_like_r():
    # R draws ids from 1..max(sim_ID); ids without rows contribute nothing
    sims = pd.DataFrame({"sim_id": [1, 2, 10], "estimator": "e", "estimate": [1., 2., 3.],
                         "estimand": 0.0})
    assert _sim_codes(sims)[1] == 10
    d = diagnose_simulations(sims, ["mean_estimate"], bootstrap_sims=200, seed=1)
    assert len(d.bootstrap_replicates) < 200  # some replicates drew none of the 3 rows


def test_determinism_under_seed(r_sims):
    a = diagnose_simulations(r_sims, bootstrap_sims=30, seed=5).diagnosands
    b = diagnose_simulations(r_sims, bootstrap_sims=30, seed=5).diagnosands
    c = diagnose_simulations(r_sims, bootstrap_sims=30, seed=6).diagnosands
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["bias_se"], c["bias_se"])
    gen = diagnose_simulations(r_sims, bootstrap_sims=30,
                               seed=np.random.default_rng(5)).diagnosands
    pd.testing.assert_frame_equal(a, gen)


def test_failed_and_warned_rows(r_sims):
    sims = r_sims[r_sims.sim_id <= 500].copy()
    lmer = sims.index[sims.estimator == "lmer_student_RE"][:7]
    num = ["estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high", "df"]
    sims.loc[lmer, num] = np.nan
    sims["error"] = None
    sims.loc[lmer, "error"] = "Model failed to converge"
    sims["warning"] = ""
    sims.loc[sims.index[:3], "warning"] = "boundary (singular) fit"
    d = diagnose_simulations(sims, R_NAMES, bootstrap_sims=20, seed=1)
    ok = diagnose_simulations(sims[sims.error.isna()], R_NAMES, bootstrap_sims=0)
    got = d.diagnosands
    for name in R_NAMES:
        np.testing.assert_allclose(got[name], ok.diagnosands[name], rtol=1e-12)
    assert np.isfinite(got[[n + "_se" for n in R_NAMES]].to_numpy()).all()
    assert got["n_sims"].tolist() == [500] * 4
    assert got.set_index("estimator")["n_failed"].to_dict() == {
        "difference_in_means_cluster": 0, "lm_robust_CR2_testlevel": 0,
        "lmer_student_RE": 7, "student_means_lm_robust_CR2": 0}
    assert got["n_warned"].sum() == 3
    text = str(d)
    assert "without errors" in text and "N Failed" in text


def test_all_rows_failed_in_a_group_gives_nan_not_crash():
    sims = pd.DataFrame({"sim_id": [1, 2, 1, 2], "estimator": ["a", "a", "b", "b"],
                         "estimate": [1., 2., np.nan, np.nan], "estimand": 0.0,
                         "error": [None, None, "x", "x"]})
    d = diagnose_simulations(sims, ["bias"], bootstrap_sims=10, seed=1).diagnosands
    assert d["bias"].iloc[0] == 1.5 and np.isnan(d["bias"].iloc[1])
    assert d["n_failed"].tolist() == [0, 2]


def test_print_contains_estimators_and_parenthesised_ses(r_sims):
    d = diagnose_simulations(r_sims, R_NAMES, bootstrap_sims=20, seed=1)
    text = str(d)
    assert repr(d) == text
    assert "based on 5000 simulations" in text and "(20 replicates)" in text
    lines = text.splitlines()
    for est in OUTCOMES:
        (i,) = [j for j, line in enumerate(lines) if est in line]
        assert lines[i + 1].strip().startswith("(")  # SEs on the next line
        assert lines[i + 1].count("(") == len(R_NAMES)
    assert "SD Estimate" in text and "RMSE" in text and "Type S Rate" in text
    assert "Power" in text and "0.049" in text  # tiny values keep 2 significant digits
    html = d._repr_html_()
    assert html.startswith("<p>Research design diagnosis") and "<table" in html
    table = d.reshape(select=["bias", "power"])
    assert list(table.columns)[-2:] == ["Bias", "Power"] and len(table) == 8
    with pytest.raises(DeclarationError, match="select must be diagnosand names"):
        d.reshape(select=["nope"])


def test_print_without_bootstrap_has_no_parentheses(r_sims):
    d = diagnose_simulations(r_sims, ["bias"], bootstrap_sims=0)
    assert "(" not in d.reshape().to_string() and d.bootstrap_replicates is None
    assert "bias_se" not in d.diagnosands.columns
    assert "std_error" not in d.tidy().columns


def test_tidy_shape_and_percentiles(r_sims):
    d = diagnose_simulations(r_sims, R_NAMES, bootstrap_sims=40, seed=2)
    t = d.tidy()
    assert t.shape == (4 * len(R_NAMES), len(GROUPS) + 5)
    assert list(t.columns) == GROUPS + ["diagnosand", "estimate", "std_error", "conf_low",
                                        "conf_high"]
    assert t["diagnosand"].tolist()[:len(R_NAMES)] == R_NAMES
    row = t[(t.estimator == "lmer_student_RE") & (t.diagnosand == "power")].iloc[0]
    reps = d.bootstrap_replicates
    vals = reps.loc[reps.estimator == "lmer_student_RE", "power"]
    assert row.conf_low == np.quantile(vals, 0.025) and row.conf_high == np.quantile(vals, 0.975)
    assert row.std_error == d.diagnosands.set_index("estimator").loc["lmer_student_RE",
                                                                      "power_se"]
    assert (t.conf_low <= t.conf_high).all()
    narrow = d.tidy(conf_level=0.5)
    assert ((narrow.conf_high - narrow.conf_low) <= (t.conf_high - t.conf_low) + 1e-15).all()
    assert d.tidy(conf_int=False).shape[1] == len(GROUPS) + 3
    pd.testing.assert_frame_equal(d.to_frame(), d.diagnosands)
    assert d.to_frame() is not d.diagnosands


def test_make_groups_and_parameters(r_sims):
    sims = r_sims[r_sims.estimator.isin(["lmer_student_RE", "lm_robust_CR2_testlevel"])]
    sims = pd.concat([sims.assign(design="design_1", n_classes=10),
                      sims.assign(design="design_2", n_classes=20)], ignore_index=True)
    d = diagnose_simulations(sims, ["bias", "power"], bootstrap_sims=10, seed=1,
                             parameters=["n_classes"],
                             make_groups={"significant": lambda df: df.p_value <= 0.05})
    got = d.diagnosands
    assert d.group_by == ["design", "n_classes", "inquiry", "estimator", "outcome", "term",
                          "significant"]
    assert len(got) == 2 * 2 * 2
    assert got["power"].tolist() == [0.0, 1.0] * 4
    assert got["n_sims"].sum() == len(sims)
    attrs = sims.copy()
    attrs.attrs["parameters"] = ["n_classes"]
    d2 = diagnose_simulations(attrs, ["bias"], bootstrap_sims=0, make_groups=["n_classes"])
    assert "n_classes" in d2.group_by and len(d2.diagnosands) == 4


def test_design_order_follows_appearance():
    base = pd.DataFrame({"sim_id": [1, 2], "estimator": "e", "estimate": [1., 2.],
                         "estimand": 0.0})
    sims = pd.concat([base.assign(design=f"design_{i}") for i in (1, 2, 10)])
    d = diagnose_simulations(sims, ["bias"], bootstrap_sims=0)
    assert d.diagnosands["design"].tolist() == ["design_1", "design_2", "design_10"]


@pytest.mark.parametrize("kwargs, match", [
    ({"bootstrap_sims": -1}, "bootstrap_sims must be a non-negative integer"),
    ({"bootstrap_sims": 1}, "bootstrap_sims must be 0 or at least 2"),
    ({"alpha": 1.5}, r"alpha must be a number in \[0, 1\]"),
    ({"parameters": ["nope"]}, "'nope' not found"),
    ({"make_groups": {"g": 3}}, "make_groups must be a column name or a function"),
])
def test_argument_errors(r_sims, kwargs, match):
    with pytest.raises(DeclarationError, match=match):
        diagnose_simulations(r_sims.head(8), **kwargs)


def test_input_errors():
    with pytest.raises(DeclarationError, match="at least one row"):
        diagnose_simulations(pd.DataFrame({"estimator": []}))
    with pytest.raises(DeclarationError, match="'estimator' or 'inquiry'"):
        diagnose_simulations(pd.DataFrame({"x": [1]}))
    with pytest.raises(DeclarationError, match="'sim_id' column"):
        diagnose_simulations(pd.DataFrame({"estimator": ["a"], "estimate": [1.0]}))


def test_compare_diagnoses(r_sims):
    d1 = diagnose_simulations(r_sims, ["bias", "power"], bootstrap_sims=100, seed=1)
    shifted = r_sims.assign(estimate=r_sims.estimate + 0.01)
    d2 = diagnose_simulations(shifted, ["bias", "power"], bootstrap_sims=100, seed=2)
    c = compare_diagnoses(d1, d2)
    assert len(c) == 8
    bias = c[c.diagnosand == "bias"]
    np.testing.assert_allclose(bias.mean_2 - bias.mean_1, 0.01, rtol=1e-10)
    assert bias.significant.all()
    np.testing.assert_allclose(bias.mean_difference, 0.01, atol=3e-4)
    same = compare_diagnoses(d1, diagnose_simulations(r_sims, ["bias"], seed=3))
    assert not same.significant.any() and set(same.diagnosand) == {"bias"}
    assert {"design_1", "design_2", "outcome_1", "outcome_2"} <= set(c.columns)
    many = compare_diagnoses(d1, d2, merge_by_estimator=False)
    assert len(many) == 4 * 4 * 2 and {"estimator_1", "estimator_2"} <= set(many.columns)
    pair = many[(many.estimator_1 == "lmer_student_RE")
                & (many.estimator_2 == "lm_robust_CR2_testlevel") & (many.diagnosand == "bias")]
    assert len(pair) == 1 and pair.significant.iloc[0]
    with pytest.raises(DeclarationError, match="bootstrapped"):
        compare_diagnoses(d1, diagnose_simulations(r_sims, ["bias"], bootstrap_sims=0))


def test_diagnoses_50k_sims_4_estimators(r_sims):
    # The scale of a forum-sized run (its speed is measured in benchmarks/components.py).
    big = pd.concat([r_sims.assign(sim_id=r_sims.sim_id + 5000 * k) for k in range(10)],
                    ignore_index=True)
    assert len(big) == 200_000
    d = diagnose_simulations(big, R_NAMES, bootstrap_sims=100, seed=1)
    assert isinstance(d, Diagnosis) and d.diagnosands["n_sims"].tolist() == [50_000] * 4
    assert d.diagnosands["bias_se"].notna().all()


# ------------------------------------------------------------ bounded memory
def _noisy_sims(n: int, groups: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    est = rng.normal(0.2, 0.1, n * groups)
    return pd.DataFrame({"sim_id": np.repeat(np.arange(1, n + 1), groups), "inquiry": "ate",
                         "estimand": 0.2, "estimator": np.tile([f"e{i}" for i in range(groups)], n),
                         "term": "Z", "estimate": est, "std_error": 0.1,
                         "p_value": rng.uniform(size=n * groups), "conf_low": est - 0.2,
                         "conf_high": est + 0.2})


def test_bootstrap_in_replicate_blocks_equals_one_block(monkeypatch):
    sims = _noisy_sims(400)
    ds = declare_diagnosands("bias", "power", "coverage",
                             med=lambda df: float(np.median(df.estimate)))
    whole = diagnose_simulations(sims, ds, bootstrap_sims=23, seed=4)
    monkeypatch.setattr(diagnosis_module, "WEIGHT_CELLS", 900)  # blocks of 2 replicates
    blocks = diagnose_simulations(sims, ds, bootstrap_sims=23, seed=4)
    # The same weights; sums of the same terms, grouped differently by BLAS.
    pd.testing.assert_frame_equal(blocks.diagnosands, whole.diagnosands, rtol=1e-12, atol=1e-15)
    pd.testing.assert_frame_equal(blocks.bootstrap_replicates, whole.bootstrap_replicates,
                                  rtol=1e-12, atol=1e-15)
    # A custom diagnosand sees the very same resampled rows.
    pd.testing.assert_series_equal(blocks.bootstrap_replicates["med"],
                                   whole.bootstrap_replicates["med"], check_exact=True)


def test_a_generator_seed_advances_as_one_draw_of_all_weights():
    sims = _noisy_sims(50)
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    diagnose_simulations(sims, ["bias"], bootstrap_sims=7, seed=a)
    bootstrap_weights(50, 7, b)
    assert a.random() == b.random()


# ------------------------------------------------------------ fits without a p-value
def test_rows_without_p_values_are_counted_and_left_out_of_power_and_coverage():
    sims = _noisy_sims(100, groups=2)
    e1 = sims.index[sims.estimator == "e1"]
    sims.loc[e1[:10], ["std_error", "p_value"]] = np.nan
    # A zero-width interval, which never covers: left out with its p-value.
    sims.loc[e1[:10], "conf_low"] = sims.loc[e1[:10], "estimate"]
    sims.loc[e1[:10], "conf_high"] = sims.loc[e1[:10], "estimate"]
    d = diagnose_simulations(sims, ["power", "coverage", "bias"], bootstrap_sims=10, seed=1)
    t = d.diagnosands.set_index("estimator")
    assert t["n_nan_p"].tolist() == [0, 10]
    rest = sims.loc[e1[10:]]
    assert t.loc["e1", "power"] == pytest.approx((rest.p_value <= 0.05).mean(), abs=1e-15)
    cov = ((rest.estimand <= rest.conf_high) & (rest.estimand >= rest.conf_low)).mean()
    assert t.loc["e1", "coverage"] == pytest.approx(cov, abs=1e-15)
    assert t.loc["e1", "bias"] == pytest.approx((sims.loc[e1].estimate - 0.2).mean())
    text = str(d)
    assert "Power and coverage use only simulations with a p-value (10 rows without one; " \
           "see N NaN P)." in text and "N NaN P" in text


def test_fits_that_all_have_p_values_keep_the_table_as_it_was():
    d = diagnose_simulations(_noisy_sims(30), ["power"], bootstrap_sims=0)
    assert "n_nan_p" not in d.diagnosands.columns and "NaN P" not in str(d)


def test_two_cluster_design_diagnoses_with_nan_p_values_counted():
    design = dd.examples.cluster_randomized(N_clusters=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the estimator may warn about its SE
        dx = dd.diagnose_design(design, sims=40, seed=1, bootstrap_sims=10)
    row = dx.diagnosands.iloc[0]
    assert row["n_sims"] == 40
    assert row["n_nan_p"] + row.get("n_failed", 0) == 40
    assert np.isnan(row["power"]) and np.isnan(row["coverage"])
    assert np.isfinite(row["bias"])
    assert "see N NaN P" in str(dx)
