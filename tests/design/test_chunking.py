"""The README's promise: the same seed gives the same simulations however the run is chunked."""

from __future__ import annotations

import pandas as pd

import declaredesign as dd


def small() -> dd.Design:
    return (dd.declare_model(N=30, U=dd.normal())
            + dd.declare_potential_outcomes("Y ~ 0.2 * Z + U")
            + dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
            + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
            + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
            + dd.declare_estimator("Y ~ Z", inquiry="ate", label="ols"))


def test_chunk_size_250_gives_the_default_simulations():
    # Default blocks of 1,000 simulations here: 2,500 simulations are three blocks.
    default = dd.simulate_design(small(), sims=2500, seed=7, backend="serial")
    for chunk_size in (250, 2000):
        out = dd.simulate_design(small(), sims=2500, seed=7, chunk_size=chunk_size,
                                 backend="serial")
        pd.testing.assert_frame_equal(out, default, check_exact=True)
