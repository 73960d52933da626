"""lm_lin on one data set: argument errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from declaredesign.errors import DeclarationError, FormulaError
from declaredesign.estimate import (
    lm_lin,
)


@pytest.fixture
def df():
    rng = np.random.default_rng(0)
    n = 24
    return pd.DataFrame({"y": rng.normal(size=n), "z": np.tile([0, 1], n // 2),
                         "x": rng.normal(size=n), "z1": rng.normal(size=n),
                         "z2": rng.normal(size=n), "cl": np.repeat(np.arange(12), 2),
                         "blk": np.repeat([1, 2], 12), "p": 0.5,
                         "clz": np.arange(n) % 2 + 2 * (np.arange(n) // 6),
                         "arm": np.tile(["a", "b", "c"], 8)})


@pytest.mark.parametrize("kw,match", [
    ({"formula": "y ~ z + x", "covariates": "~ z1"}, r"lm_lin\(formula='y ~ z \+ x'\): "
     r"formula must be of the form 'outcome ~ treatment'"),
    ({"covariates": "z1"}, r"lm_lin\(covariates='z1'\): covariates must be a one-sided"),
    ({"covariates": "~ 1"}, r"covariates must be a formula with at least one variable"),
    ({"covariates": "~ nope"}, r"'nope'"),
    ({"covariates": "~ x", "se_type": "CR0"}, r"lm_lin\(se_type='CR0'\)"),
])
def test_lm_lin_errors(df, kw, match):
    formula = kw.pop("formula", "y ~ z")
    with pytest.raises((DeclarationError, FormulaError), match=match):
        lm_lin(formula, data=df, **kw)
