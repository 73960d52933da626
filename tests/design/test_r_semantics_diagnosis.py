"""A design using R's inquiry and term semantics, diagnosed against R DeclareDesign 1.0.

The R script beside it (``r/semantics_design.R``) produced ``R`` below (2,000
simulations); the Python diagnosis must agree within 3 combined Monte Carlo SEs.
"""

import numpy as np
import pytest

import declaredesign as dd

SIMS = 2000

# inquiry, estimator, term -> mean_estimand, mean_estimate, sd_estimate, power, coverage
R = {
    ("ATE", "ols", "Z"): (0.4991, 0.5040875031, 0.2036926936, 0.689, 0.9545),
    ("ATE", "shared", "Z"): (0.4991, 0.5040875031, 0.2036926936, 0.689, 0.9545),
    ("CATE_X1", "shared", "Z"): (0.8000, 0.5040875031, 0.2036926936, 0.689, 0.6990),
    ("CATE_X1", "sub", "Z"): (0.8000, 0.8060346008, 0.2896252408, 0.784, 0.9475),
    (None, "mean_Y", "(Intercept)"): (np.nan, 0.2468657711, 0.1013467794, 0.652, np.nan),
}


def _design():
    ate = dd.declare_inquiry(ATE="mean(Y_Z_1 - Y_Z_0)")
    return (dd.declare_model(N=100, U=dd.normal(), X=dd.bernoulli(0.5))
            + dd.declare_potential_outcomes("Y ~ U + 0.2 * Z + 0.6 * X * Z")
            + ate
            + dd.declare_inquiry(CATE_X1="mean(Y_Z_1 - Y_Z_0)", subset="X == 1")
            + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
            + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
            + dd.declare_estimator("Y ~ Z", inquiry=ate, label="ols")
            + dd.declare_estimator("Y ~ Z", term="Z", inquiry=["ATE", "CATE_X1"],
                                   label="shared")
            + dd.declare_estimator("Y ~ Z", subset="X == 1", inquiry="CATE_X1", label="sub")
            + dd.declare_estimator("Y ~ 1", label="mean_Y"))


@pytest.fixture(scope="module")
def diagnosis():
    return dd.diagnose_design(_design(), sims=SIMS, bootstrap_sims=0, seed=20261201)


def _row(d, inquiry, estimator):
    sel = d["estimator"] == estimator
    sel &= d["inquiry"].isna() if inquiry is None else d["inquiry"] == inquiry
    assert sel.sum() == 1, (inquiry, estimator)
    return d[sel].iloc[0]


@pytest.mark.parametrize("key", list(R), ids=lambda k: f"{k[0]}-{k[1]}")
def test_agrees_with_r(diagnosis, key):
    d = diagnosis.diagnosands
    inquiry, estimator, term = key
    row = _row(d, inquiry, estimator)
    assert row["term"] == term
    mean_estimand, mean_estimate, sd_estimate, power, coverage = R[key]
    se_mean = sd_estimate / np.sqrt(SIMS) * np.sqrt(2)
    assert row["mean_estimate"] == pytest.approx(mean_estimate, abs=3 * se_mean)
    assert row["sd_estimate"] == pytest.approx(sd_estimate, rel=3 * np.sqrt(2 / (2 * SIMS)))
    assert row["power"] == pytest.approx(power, abs=3 * np.sqrt(2 * power * (1 - power) / SIMS))
    if np.isnan(mean_estimand):
        assert np.isnan(row["mean_estimand"]) and np.isnan(row["coverage"])
        return
    # The ATE varies with the share of X == 1 (sd ~ 0.6 * 0.05 per simulation).
    assert row["mean_estimand"] == pytest.approx(mean_estimand, abs=3 * 0.03 * np.sqrt(2 / SIMS))
    assert row["coverage"] == pytest.approx(
        coverage, abs=3 * np.sqrt(2 * coverage * (1 - coverage) / SIMS))
