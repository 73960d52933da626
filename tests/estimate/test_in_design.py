"""The new estimators inside a design (declare_estimator(model=...)), batched path used."""

from __future__ import annotations

import numpy as np

import declaredesign as dd
from declaredesign.estimate import horvitz_thompson, iv_robust, lm_lin


def test_new_estimators_run_in_a_design():
    design = (
        dd.declare_model(N=60, U=dd.normal(), X=dd.normal(), W=dd.normal())
        + dd.declare_potential_outcomes("Y ~ 0.3 * Z + X + U")
        + dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
        + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
        + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
        + dd.declare_estimator("Y ~ Z", model=lm_lin, covariates="~ X", inquiry="ate",
                               label="lin")
        + dd.declare_estimator("Y ~ Z", model=horvitz_thompson, simple=False, inquiry="ate",
                               label="ht")
        + dd.declare_estimator("Y ~ Z | W", model=iv_robust, inquiry="ate", label="iv")
    )
    sims = dd.simulate_design(design, sims=20, seed=3)
    for label in ("lin", "ht", "iv"):
        rows = sims[sims["estimator"] == label]
        assert len(rows) == 20 and rows["estimate"].notna().all(), label
    lin = sims[sims["estimator"] == "lin"]
    assert lin["term"].eq("Z").all() and (lin["df"] == 56).all()
    assert np.isnan(sims.loc[sims["estimator"] == "ht", "df"]).all()
