"""Argument validation of lm_robust and difference_in_means (one message template)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch
from declaredesign.errors import DeclarationError, EstimationError, FormulaError
from declaredesign.estimate import difference_in_means, lm_robust

from ._util import batched


@pytest.fixture
def df():
    rng = np.random.default_rng(0)
    n = 24
    return pd.DataFrame({"y": rng.normal(size=n), "z": np.tile([0, 1], n // 2),
                         "cl": np.repeat(np.arange(6), 4) % 6, "w": rng.uniform(1, 2, n),
                         "s": ["a"] * n})


@pytest.mark.parametrize("kw,match", [
    ({"se_type": "CR2"}, r"lm_robust\(se_type='CR2'\): se_type must be one of .*; got 'CR2'\."),
    ({"se_type": "CR0"}, r"se_type must be"),
    ({"se_type": "HC2", "clusters": "cl"}, r"lm_robust\(se_type='HC2'\): se_type must be"),
    ({"se_type": "HC9"}, r"se_type must be"),
    ({"alpha": 0}, r"lm_robust\(alpha=0\): alpha must be a number in \(0, 1\); got 0\."),
    ({"alpha": 1.5}, r"alpha must be"),
    ({"alpha": "x"}, r"alpha must be"),
    ({"clusters": "nope"}, r"lm_robust\(clusters='nope'\): clusters must be a column"),
    ({"weights": "nope"}, r"weights must be a column"),
    ({"weights": "s"}, r"lm_robust\(weights='s'\): weights must be a numeric column"),
    ({"fixed_effects": "~ nope"}, r"lm_robust\(fixed_effects='~ nope'\): fixed_effects must "
     r"be made of columns"),
    ({"fixed_effects": "~ log(cl)"}, r"fixed_effects must be a one-sided formula"),
    ({"fixed_effects": "~ cl", "weights": "w", "clusters": "cl"},
     r"se_type must be 'CR0' or 'stata' when fixed_effects and weights"),
])
def test_lm_robust_bad_arguments(df, kw, match):
    with pytest.raises(DeclarationError, match=match):
        lm_robust("y ~ z", df, **kw)
    with pytest.raises(DeclarationError, match=match):
        batched(lm_robust)(Batch.from_pandas(df), "y ~ z", **kw)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan])
def test_weights_must_be_positive(df, bad):
    d = df.copy()
    d.loc[3, "w"] = bad
    if np.isnan(bad):
        # a missing weight drops the row, as in estimatr
        assert lm_robust("y ~ z", d, weights="w").nobs == len(d) - 1
        d.loc[3, "w"] = np.inf
    with pytest.raises(DeclarationError, match=r"weights must be a column of positive"):
        lm_robust("y ~ z", d, weights="w")
    with pytest.raises(DeclarationError, match=r"weights must be a column of positive"):
        difference_in_means("y ~ z", d, weights="w")


def test_unknown_columns_and_non_numeric_outcome(df):
    with pytest.raises(FormulaError, match="nope"):
        lm_robust("y ~ nope", df)
    with pytest.raises(FormulaError, match="nope"):
        difference_in_means("nope ~ z", df)
    with pytest.raises(DeclarationError, match=r"formula must be a numeric column"):
        lm_robust("s ~ z", df)
    with pytest.raises(DeclarationError, match=r"formula must be a numeric column"):
        difference_in_means("s ~ z", df)


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


def test_no_complete_rows(df):
    with pytest.raises(EstimationError, match="no complete rows"):
        lm_robust("y ~ z", df.assign(y=np.nan))
