"""The lme4 bar parser and formula errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from declaredesign.errors import DeclarationError, FormulaError
from declaredesign.estimate.mixed import lmer, parse_lmer_formula


def _bars(formula):
    return [(b.expr, b.group_name) for b in parse_lmer_formula(formula).bars]


@pytest.mark.parametrize("formula,fixed,bars", [
    ("y ~ x + (1 | g)", "x", [("1", "g")]),
    ("y ~ x + (1 + x | g)", "x", [("1 + x", "g")]),
    ("y ~ x + (x || g)", "x", [("1", "g"), ("0 + x", "g")]),
    ("y ~ x + (0 + x || g)", "x", [("0 + x", "g")]),
    ("y ~ 1 + (1 | a/b)", "1", [("1", "a"), ("1", "b:a")]),
    ("y ~ t + (1 | a) + (1 | b)", "t", [("1", "a"), ("1", "b")]),
    ("y ~ (1 | g)", "1", [("1", "g")]),
    ("y ~ x*z + (1|g:h)", "x*z", [("1", "g:h")]),
    ("y ~ x - 1 + (1 | g)", "x - 1", [("1", "g")]),
    ("y~(1|a/b/c)+w", "w", [("1", "a"), ("1", "b:a"), ("1", "c:b:a")]),
])
def test_parse(formula, fixed, bars):
    f = parse_lmer_formula(formula)
    assert f.fixed == fixed
    assert _bars(formula) == bars
    assert f.response == formula.split("~")[0].strip()


@pytest.mark.parametrize("formula,match", [
    ("y ~ x + (1 | )", "grouping factor"),
    ("y ~ x + ( | g)", "nothing before"),
    ("y ~ x", "no random-effect terms"),
    ("~ x + (1 | g)", "no response"),
    ("y ~ x + (1 | g", "unbalanced"),
    ("y ~ x + (1 | g + h)", "grouping factor"),
    ("y x (1 | g)", "response ~ terms"),
])
def test_bad_formulas(formula, match):
    with pytest.raises(FormulaError, match=match):
        parse_lmer_formula(formula)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(10), 4)
    return pd.DataFrame({"g": g, "x": rng.normal(size=40),
                         "y": rng.normal(size=40) + rng.normal(size=10)[g]})


def test_unknown_columns_are_formula_errors(data):
    with pytest.raises(FormulaError, match="'school'"):
        lmer("y ~ x + (1 | school)", data)
    with pytest.raises(FormulaError, match="'w'"):
        lmer("y ~ w + (1 | g)", data)
    with pytest.raises(FormulaError, match="'w'"):
        lmer("y ~ x + (w | g)", data)


def test_bad_arguments(data):
    with pytest.raises(DeclarationError, match=r"lmer\(REML="):
        lmer("y ~ x + (1 | g)", data, REML="yes")
    with pytest.raises(DeclarationError, match=r"lmer\(ddf="):
        lmer("y ~ x + (1 | g)", data, ddf="satterthwaite")
    with pytest.raises(DeclarationError, match=r"lmer\(data="):
        lmer("y ~ x + (1 | g)", data.to_dict())
    with pytest.raises(DeclarationError, match=r"lmer\(formula="):
        lmer(3, data)


def test_intercept_only_fixed_part(data):
    fit = lmer("y ~ (1 | g)", data)
    assert list(fit.fixef.index) == ["(Intercept)"]
    # the intercept-only REML estimate of a balanced design is the grand mean
    assert fit.fixef.iloc[0] == pytest.approx(data.y.mean(), rel=1e-10)


def test_fit_object_accessors(data):
    fit = lmer("y ~ x + (1 + x | g)", data)
    re = fit.ranef()["g"]
    assert list(re.columns) == ["(Intercept)", "x"] and len(re) == 10
    assert fit.npar == 2 + 3 + 1
    assert "LmerFit" in repr(fit)
    import pickle

    back = pickle.loads(pickle.dumps(fit))
    assert back.fixef.equals(fit.fixef)
    t = fit.tidy(conf_int=False)
    assert "conf_low" not in t.columns
    assert t.term.tolist() == ["(Intercept)", "x", "sd__(Intercept)", "cor__(Intercept).x",
                               "sd__x", "sd__Observation"]
