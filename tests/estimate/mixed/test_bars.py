"""The lme4 formula syntax (mixed/bars.py): bars, nesting, glmer's cbind and offsets."""

from __future__ import annotations

import pytest

from declaredesign.errors import FormulaError
from declaredesign.estimate.mixed import parse_lmer_formula
from declaredesign.estimate.mixed.bars import GlmerFormula


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
    ("~ x + (1 | g)", "no outcome"),
    ("y ~ x + (1 | g", "unbalanced"),
    ("y ~ x + (1 | g + h)", "grouping factor"),
    ("y x (1 | g)", "response ~ terms"),
])
def test_bad_formulas(formula, match):
    with pytest.raises(FormulaError, match=match):
        parse_lmer_formula(formula)


def test_variables_read_by_the_formula():
    f = parse_lmer_formula("y ~ x + np.log(z) + (1 + w | a/b)")
    assert f.variables() == ["a", "b", "w", "x", "y", "z"]
    gf = GlmerFormula("cbind(k, n - k) ~ x + offset(log(e)) + (1 | g)")
    assert gf.cbind == ("k", "n - k") and gf.offsets == ["log(e)"] and gf.fixed == "x"
    assert gf.variables() == ["e", "g", "k", "n", "x"]


def test_unreadable_terms_name_the_term():
    with pytest.raises(FormulaError, match="cannot parse"):
        parse_lmer_formula("y ~ x + (1 + [ | g)").variables()
    with pytest.raises(FormulaError, match="offset cannot be subtracted"):
        GlmerFormula("y ~ x - offset(e) + (1 | g)")
