"""iv_robust on one data set: argument errors."""

from __future__ import annotations

import numpy as np
import pytest

from declaredesign.errors import DeclarationError, FormulaError
from declaredesign.estimate import (
    iv_robust,
)

from ._util import argument_frame


@pytest.fixture
def df():
    return argument_frame()


@pytest.mark.parametrize("kw,match", [
    ({"formula": "y ~ x + z | z1"}, r"iv_robust\(formula='y ~ x \+ z \| z1'\): formula must "
     r"be given at least as many instrument columns as regressor columns"),
    ({"formula": "y ~ x"}, r"iv_robust\(formula='y ~ x'\): formula must be of the form"),
    ({"formula": "y ~ x | z1 | z2"}, r"formula must be of the form"),
    ({"formula": "y ~ x | nope"}, r"'nope'"),
    ({"formula": "y ~ x | z1", "se_type": "CR2"}, r"iv_robust\(se_type='CR2'\)"),
    ({"formula": "y ~ x | z1", "se_type": "HC2", "clusters": "cl"}, r"se_type must be"),
    ({"formula": "y ~ x | z1", "alpha": 2}, r"iv_robust\(alpha=2\): alpha must be"),
    ({"formula": "y ~ x | z1", "weights": "arm"}, r"weights must be a numeric column"),
])
def test_iv_robust_errors(df, kw, match):
    formula = kw.pop("formula")
    with pytest.raises((DeclarationError, FormulaError), match=match):
        iv_robust(formula, df, **kw)


def test_iv_weights_must_be_positive(df):
    df = df.assign(w=np.r_[-1.0, np.ones(23)])
    with pytest.raises(DeclarationError, match=r"iv_robust\(weights='w'\): weights must be "
                       r"a column of positive finite numbers"):
        iv_robust("y ~ x | z1", df, weights="w")
