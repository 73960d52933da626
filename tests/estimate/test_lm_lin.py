"""lm_lin on one data set: argument errors."""

from __future__ import annotations

import pytest

from declaredesign.errors import DeclarationError, FormulaError
from declaredesign.estimate import (
    lm_lin,
)

from ._util import argument_frame


@pytest.fixture
def df():
    return argument_frame()


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
