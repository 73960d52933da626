"""The regression discontinuity estimator, ``lm_robust(Y ~ poly(X, 4) * Z)``, on one data set.

R's fit (``tests/fixtures/designlibrary/regression_discontinuity_fit.csv``, made by
``make_regression_discontinuity_fit.R`` beside it): every term's estimate, HC2 standard
error, p-value and df, for our standalone fit and for the design's batched fit of the same
data set stacked with others (``poly()`` computed within each simulation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import declaredesign as dd
from declaredesign.batch import Batch
from declaredesign.design.design import _estimate

from .regression_discontinuity import estimator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "designlibrary"
FORMULA = "Y ~ poly(X, 4) * Z"


def _r_fit() -> pd.DataFrame:
    r = pd.read_csv(FIXTURES / "regression_discontinuity_fit.csv")
    r["term"] = r["term"].str.strip()
    return r


def _data() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "regression_discontinuity_data.csv")


def _check(ours: pd.DataFrame, r: pd.DataFrame) -> None:
    assert list(ours["term"]) == list(r["term"])
    # the Z terms are ill-conditioned (an intercept shift in an orthogonal basis)
    np.testing.assert_allclose(ours["estimate"], r["estimate"], rtol=1e-8)
    np.testing.assert_allclose(ours["std_error"], r["std.error"], rtol=1e-8)
    np.testing.assert_allclose(ours["p_value"], r["p.value"], rtol=1e-7, atol=1e-12)
    np.testing.assert_array_equal(ours["df"], r["df"])


def test_standalone_fit_matches_estimatr():
    tidy = dd.lm_robust(FORMULA, _data()).tidy()
    tidy = tidy.reset_index() if "term" not in tidy.columns else tidy
    _check(tidy, _r_fit())


def test_design_batched_fit_matches_estimatr_in_every_simulation():
    # the data set three times, between other rows: each simulation's poly() is its own
    d = _data()
    rng = np.random.default_rng(0)
    other = d.assign(X=rng.uniform(-0.5, 0.5, len(d)), Y=rng.normal(size=len(d)))
    stacked = pd.concat([d, other.iloc[:400], d, other, d], ignore_index=True)
    sim = np.repeat([0, 1, 2, 3, 4], [len(d), 400, len(d), len(d), len(d)])
    batch = Batch({c: stacked[c].to_numpy() for c in stacked.columns}, sim=sim, n_sims=5)
    tidy = _estimate(estimator, batch, rng)
    r = _r_fit()
    for s in (0, 2, 4):
        z = tidy[tidy["sim"] == s]
        assert list(z["term"]) == ["Z"]
        row = r[r["term"] == "Z"]
        np.testing.assert_allclose(z["estimate"], row["estimate"], rtol=1e-8)
        np.testing.assert_allclose(z["std_error"], row["std.error"], rtol=1e-8)
        np.testing.assert_allclose(z["p_value"], row["p.value"], rtol=1e-7)
        np.testing.assert_array_equal(z["df"], row["df"])


def test_design_simulations_are_those_of_the_plain_paths_bit_for_bit(monkeypatch):
    # the fast frame (no formulaic), poly and least squares in cache-sized blocks: the
    # simulations equal those of the general frame fitted as one batch, exactly
    import importlib

    from declaredesign.estimate import stacked_ols

    from .regression_discontinuity import regression_discontinuity_design as design

    model_frame = importlib.import_module("declaredesign.estimate.model_frame")

    def run():
        return dd.simulate_design(design, sims=40, seed=3, backend="serial", progress=False)

    monkeypatch.setattr(stacked_ols, "BLOCK_ROWS", 2000)
    monkeypatch.setattr(model_frame, "POLY_BLOCK_ROWS", 1500)
    fast = run()
    monkeypatch.setattr(stacked_ols, "BLOCK_ROWS", 10 ** 9)
    monkeypatch.setattr(model_frame, "POLY_BLOCK_ROWS", 10 ** 9)
    monkeypatch.setattr(model_frame, "_fast_path", lambda f, arrays: None)
    plain = run()
    pd.testing.assert_frame_equal(fast, plain, check_exact=True)
