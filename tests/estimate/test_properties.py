"""Invariants: estimator identities, no input mutation, pickling, determinism."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from declaredesign.estimate import difference_in_means, lm_robust


def _data(seed, n1, n2):
    rng = np.random.default_rng(seed)
    z = np.r_[np.zeros(n1), np.ones(n2)]
    y = rng.normal(size=n1 + n2) * (1 + z) + z
    return pd.DataFrame({"y": y, "z": z, "w": rng.uniform(0.5, 2, n1 + n2)})


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n1=st.integers(2, 30), n2=st.integers(2, 30))
def test_difference_in_means_is_the_ols_slope_and_welch_is_hc2(seed, n1, n2):
    d = _data(seed, n1, n2)
    dim = difference_in_means("y ~ z", d)
    ols = lm_robust("y ~ z", d)
    np.testing.assert_allclose(dim.estimate, ols.coefficients["z"], rtol=1e-10)
    # with a binary regressor the HC2 standard error equals Welch's
    np.testing.assert_allclose(dim.std_error, ols.std_error[1], rtol=1e-10)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 100))
def test_weights_are_scale_free(seed, scale):
    d = _data(seed, 8, 9)
    a = lm_robust("y ~ z", d, weights="w").tidy()
    b = lm_robust("y ~ z", d.assign(w=d["w"] * scale), weights="w").tidy()
    np.testing.assert_allclose(a["std_error"], b["std_error"], rtol=1e-9)


def test_inputs_not_mutated_and_fits_pickle():
    d = _data(1, 10, 12).assign(cl=np.arange(22) // 2)
    before = d.copy()
    fit = lm_robust("y ~ z", d, clusters="cl")
    dim = difference_in_means("y ~ z", d, clusters="cl")
    pd.testing.assert_frame_equal(d, before)
    for f in (fit, dim):
        g = pickle.loads(pickle.dumps(f))
        pd.testing.assert_frame_equal(g.tidy(), f.tidy())
    assert "CR2" in fit.summary()
    pd.testing.assert_frame_equal(lm_robust("y ~ z", d, clusters="cl").tidy(), fit.tidy())
