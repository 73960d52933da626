"""The forum's multilevel design against R's numbers."""

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from tests.conftest import REFERENCE

R_LABELS = {
    "Random Intercept": "lmer_student_RE",
    "Average Score": "student_means_lm_robust_CR2",
    "Test-level CR2": "lm_robust_CR2_testlevel",
    "Difference in means": "difference_in_means_cluster",
}


def test_example_draws_the_forum_structure():
    data = dd.draw_data(dd.examples.multilevel(), end="measurement", seed=1)
    assert data["school"].nunique() == 1 and data["classroom"].nunique() == 10
    per_student = data.groupby("student").size()
    assert (per_student == 3).all()
    assert data.groupby("classroom")["treatment"].nunique().eq(1).all()
    assert data.drop_duplicates("classroom")["treatment"].sum() == 5
    assert data["student"].str.len().nunique() == 1  # zero-padded IDs


def test_answer_strategy_on_r_data_matches_r(seed_data, seed_fits):
    data = seed_data.rename(columns={"class": "classroom"})
    est = dd.get_estimates(dd.examples.multilevel(), data).set_index("estimator")
    r = seed_fits["declaredesign_estimator_outputs"]
    for ours, theirs in R_LABELS.items():
        ref = r[theirs]
        row = est.loc[ours]
        for a, b in [("estimate", "estimate"), ("std_error", "std.error"),
                     ("statistic", "statistic"), ("p_value", "p.value"), ("df", "df"),
                     ("conf_low", "conf.low"), ("conf_high", "conf.high")]:
            tol = 1e-6 if ours == "Random Intercept" else 1e-8
            if a == "df" and ours == "Random Intercept":
                tol = 1e-4
            assert row[a] == pytest.approx(ref[b], rel=tol), (ours, a)


def test_example_diagnosis_agrees_with_r_within_monte_carlo_error():
    r = pd.read_csv(REFERENCE / "seed_design_diagnosis_R_5000sims.csv")
    r = r.set_index("estimator")
    dx = dd.diagnose_design(dd.examples.multilevel(), sims=5000, bootstrap_sims=100, seed=7)
    ours = dx.diagnosands.set_index("estimator")
    for label, r_label in R_LABELS.items():
        for d in ["bias", "sd_estimate", "power", "coverage"]:
            se = np.hypot(ours.loc[label, f"{d}_se"], r.loc[r_label, f"se({d})"])
            assert abs(ours.loc[label, d] - r.loc[r_label, d]) < 3 * se + 1e-12, (label, d)
