"""Running designs: draw, simulate, diagnose, real data, failures, calibration."""

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.errors import DeclarationError, StepError

from .test_design import two_arm


def test_draw_data_is_reproducible_and_shaped():
    a = dd.draw_data(two_arm(n=30), seed=4)
    b = dd.draw_data(two_arm(n=30), seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["ID", "U", "Y_Z_0", "Y_Z_1", "Z", "Y"]
    assert a["Z"].sum() == 15
    assert not a.equals(dd.draw_data(two_arm(n=30), seed=5))


def test_simulate_design_table():
    sims = dd.simulate_design(two_arm(), sims=7, seed=2)
    assert list(sims.columns[:14]) == ["design", "sim_id", "inquiry", "estimand", "estimator",
                                        "term", "estimate", "std_error", "statistic", "p_value",
                                        "conf_low", "conf_high", "df", "outcome"]
    assert sims["sim_id"].tolist() == list(range(1, 8))
    assert (sims["term"] == "Z").all() and (sims["inquiry"] == "ate").all()
    # The truth is the same-sample ATE: exactly the effect here.
    np.testing.assert_allclose(sims["estimand"], 0.2, rtol=1e-12)
    pd.testing.assert_frame_equal(sims, dd.simulate_design(two_arm(), sims=7, seed=2))


def test_chunking_does_not_change_results_for_a_fixed_chunk_size():
    a = dd.simulate_design(two_arm(), sims=10, seed=3, chunk_size=4)
    b = dd.simulate_design(two_arm(), sims=10, seed=3, chunk_size=4)
    pd.testing.assert_frame_equal(a, b)
    assert a["sim_id"].tolist() == list(range(1, 11))


def test_sims_must_be_positive():
    with pytest.raises(DeclarationError, match=r"simulate_design\(sims=0\): sims must be a "
                                               r"positive integer; got 0\."):
        dd.simulate_design(two_arm(), sims=0)
    with pytest.raises(DeclarationError, match=r"diagnose_design\(sims=0\)"):
        dd.diagnose_design(two_arm(), sims=0)


def test_run_design_and_draws():
    out = dd.run_design(two_arm(), seed=1)
    assert out[["inquiry", "estimator", "term"]].iloc[0].tolist() == ["ate", "dim", "Z"]
    assert dd.draw_estimands(two_arm(), seed=1)["estimand"].iloc[0] == pytest.approx(0.2)
    est = dd.draw_estimates(two_arm(), seed=1)
    assert est["estimate"].iloc[0] == pytest.approx(out["estimate"].iloc[0])


def test_term_defaults_to_first_non_intercept_and_true_keeps_all():
    d = two_arm() + dd.declare_estimator("Y ~ Z + U", inquiry="ate", label="ols")
    assert dd.draw_estimates(d, seed=1).query("estimator == 'ols'")["term"].tolist() == ["Z"]
    d2 = two_arm() + dd.declare_estimator("Y ~ Z + U", inquiry="ate", term=True, label="all")
    assert dd.draw_estimates(d2, seed=1).query("estimator == 'all'")["term"].tolist() == \
        ["(Intercept)", "Z", "U"]


def test_pairwise_terms_and_inquiries():
    d = (dd.declare_model(N=200, U=dd.normal(), X=dd.normal())
         + dd.declare_potential_outcomes("Y ~ 0.5 * Z + U")
         + dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)", zero="0")
         + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
         + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
         + dd.declare_estimator("Y ~ Z + X", inquiry=["ate", "zero"], term=["Z", "X"],
                                label="ols"))
    out = dd.run_design(d, seed=3)
    assert dict(zip(out["term"], out["inquiry"])) == {"Z": "ate", "X": "zero"}


def test_per_dataset_user_functions_and_failures_recorded():
    calls = {"n": 0}

    def flaky(df):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise RuntimeError("boom")
        return pd.DataFrame({"term": ["mean"], "estimate": [df["Y"].mean()]})

    d = two_arm(n=20) + dd.declare_estimator(handler=flaky, inquiry="ate", label="flaky")
    sims = dd.simulate_design(d, sims=9, seed=1)
    fl = sims[sims["estimator"] == "flaky"]
    assert len(fl) == 9
    assert fl["error"].notna().sum() == 3
    assert fl.loc[fl["error"].notna(), "estimate"].isna().all()
    assert fl["error"].dropna().str.contains("boom").all()


def test_estimator_failing_everywhere_raises_naming_step():
    def broken(df):
        raise ValueError("always")

    d = two_arm(n=20) + dd.declare_estimator(handler=broken, inquiry="ate", label="broken")
    with pytest.raises(StepError, match=r"step 7 \(estimator 'broken'\).*always"):
        dd.simulate_design(d, sims=3, seed=1)


def test_custom_step_function_per_dataset():
    d = two_arm(n=20) + dd.declare_step(lambda df: df.assign(Y2=df["Y"] * 2), label="double")
    data = dd.draw_data(d, seed=1)
    np.testing.assert_allclose(data["Y2"], 2 * data["Y"])


def test_diagnosis_calibrated_for_two_arm_trial():
    # Difference in means is unbiased and its CI covers 95%: check within 4 Monte Carlo SEs.
    dx = dd.diagnose_design(two_arm(n=60, effect=0.5), sims=2000, bootstrap_sims=0, seed=11)
    row = dx.diagnosands.iloc[0]
    sims = dx.simulations
    mc_se_bias = sims["estimate"].std() / np.sqrt(len(sims))
    assert abs(row["bias"]) < 4 * mc_se_bias
    assert abs(row["coverage"] - 0.95) < 4 * np.sqrt(0.95 * 0.05 / 2000)
    # Power against the normal-approximation formula for n=60, effect .5, sd 1.
    from scipy.stats import norm, t
    se = np.sqrt(4 / 60)
    crit = t.ppf(0.975, 58)
    power = 1 - norm.cdf(crit - 0.5 / se) + norm.cdf(-crit - 0.5 / se)
    assert abs(row["power"] - power) < 4 * np.sqrt(power * (1 - power) / 2000) + 0.01


def test_failed_fits_are_counted_under_their_term_and_outcome():
    state = {"n": 0}

    def sometimes(formula, data):
        state["n"] += 1
        if state["n"] % 4 == 0:
            raise RuntimeError("no convergence")
        return dd.lm_robust(formula, data=data)

    d = two_arm(n=30) + dd.declare_estimator("Y ~ Z", model=sometimes, inquiry="ate",
                                             label="sometimes")
    sims = dd.simulate_design(d, sims=8, seed=2)
    rows = sims[sims["estimator"] == "sometimes"]
    assert len(rows) == 8 and (rows["term"] == "Z").all() and (rows["outcome"] == "Y").all()
    dx = dd.diagnose_design(sims, bootstrap_sims=0)
    row = dx.diagnosands.set_index("estimator").loc["sometimes"]
    assert row["n_failed"] == 2 and row["n_sims"] == 8


def test_designs_pickle():
    import pickle

    d = dd.examples.multilevel()
    again = pickle.loads(pickle.dumps(d))
    assert again == d and again.estimator_labels == d.estimator_labels


# ------------------------------------------------------------ chunking never changes results
def _batched_two_arm() -> dd.Design:
    return (dd.declare_model(N=30, U=dd.normal())
            + dd.declare_potential_outcomes("Y ~ 0.2 * Z + U")
            + dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
            + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
            + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
            + dd.declare_estimator("Y ~ Z", inquiry="ate", label="ols"))


def test_chunk_size_250_gives_the_default_simulations():
    # Default blocks of 1,000 simulations here: 2,500 simulations are three blocks.
    default = dd.simulate_design(_batched_two_arm(), sims=2500, seed=7, backend="serial")
    for chunk_size in (250, 2000):
        out = dd.simulate_design(_batched_two_arm(), sims=2500, seed=7, chunk_size=chunk_size,
                                 backend="serial")
        pd.testing.assert_frame_equal(out, default, check_exact=True)
    procs = dd.simulate_design(_batched_two_arm(), sims=2500, seed=7, chunk_size=250,
                               backend="processes", workers=2)
    pd.testing.assert_frame_equal(procs, default, check_exact=True)
