"""difference_in_means on one data set: errors and properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from declaredesign.errors import DeclarationError, EstimationError
from declaredesign.estimate import difference_in_means, lm_robust


@pytest.fixture
def df():
    rng = np.random.default_rng(0)
    n = 24
    return pd.DataFrame({"y": rng.normal(size=n), "z": np.tile([0, 1], n // 2),
                         "cl": np.repeat(np.arange(6), 4) % 6, "w": rng.uniform(1, 2, n),
                         "s": ["a"] * n})


def test_difference_in_means_errors(df):
    with pytest.raises(DeclarationError, match="alpha must be"):
        difference_in_means("y ~ z", df, alpha=1)
    with pytest.raises(DeclarationError, match="one variable on each side"):
        difference_in_means("y ~ z + w", df)
    with pytest.raises(DeclarationError, match="condition2 must be a value"):
        difference_in_means("y ~ z", df, condition2=5)
    mixed = df.assign(cl=np.arange(len(df)) // 3)   # clusters of 3 mix z = 0 and 1
    with pytest.raises(DeclarationError, match="same treatment"):
        difference_in_means("y ~ z", mixed, clusters="cl")
    with pytest.raises(EstimationError, match="two values"):
        difference_in_means("y ~ z", df.assign(z=1))


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
