"""Failures are data: a fit failing in some simulations is counted, never a crash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.errors import StepError

from .designs import flaky, fussy_design


def test_an_estimator_failing_in_a_tenth_of_sims_is_counted():
    dx = dd.diagnose_design(flaky(), sims=400, seed=1, chunk_size=100, bootstrap_sims=20)
    sims = dx.simulations
    bad = sims["error"].notna()
    assert set(sims.loc[bad, "estimator"]) == {"flaky"}
    assert (sims.loc[bad, "error"] == "ValueError: flaky fit failed").all()
    assert sims.loc[bad, "estimate"].isna().all()
    n_failed = int(bad.sum())
    assert 20 <= n_failed <= 60  # Binomial(400, 0.1): mean 40, sd 6
    d = dx.diagnosands.set_index("estimator")
    assert d.loc["flaky", "n_failed"] == n_failed and d.loc["ols", "n_failed"] == 0
    assert d.loc["flaky", "n_sims"] == 400
    # Diagnosands use the rest: the mean of the successful estimates.
    ok = sims[(sims["estimator"] == "flaky") & ~bad]
    np.testing.assert_allclose(d.loc["flaky", "mean_estimate"], ok["estimate"].mean())
    assert "failed" in str(dx)


@pytest.mark.parametrize("backend", ["serial", "processes"])
def test_batched_kernel_errors_and_warnings_reach_the_diagnosis(backend):
    dx = dd.diagnose_design(fussy_design(), sims=300, seed=2, chunk_size=50, bootstrap_sims=0,
                            backend=backend, workers=None if backend == "serial" else 2)
    sims = dx.simulations
    assert sims["error"].notna().sum() > 10 and sims["warning"].notna().sum() > 10
    assert set(sims["error"].dropna()) == {"EstimationError: singular"}
    row = dx.diagnosands.iloc[0]
    assert row["n_failed"] == sims["error"].notna().sum()
    assert row["n_warned"] == sims["warning"].notna().sum()


def test_message_columns_do_not_depend_on_chunking():
    # One chunk may have no failure at all: the columns are there anyway, as None.
    a = dd.simulate_design(flaky(), sims=40, seed=3, chunk_size=5)
    b = dd.simulate_design(flaky(), sims=40, seed=3, chunk_size=5, backend="processes",
                           workers=2)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert list(a.columns[-2:]) == ["error", "warning"]
    assert a["warning"].map(lambda v: v is None).all()


def test_a_step_failing_everywhere_still_raises_naming_it():
    d = dd.declare_model(N=5, Y=dd.normal()) + dd.declare_estimator(
        handler=lambda df: 1 / 0, label="broken")
    with pytest.raises(StepError, match=r"step 2 \(estimator 'broken'\)"):
        dd.simulate_design(d, sims=6, chunk_size=3, backend="processes", workers=2)
