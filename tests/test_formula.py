"""declaredesign.formula: the one formula parser (outcomes, bars, instruments, columns)."""

from __future__ import annotations

import pytest

from declaredesign.errors import FormulaError
from declaredesign.estimate.mixed.bars import parse_lmer_formula
from declaredesign.formula import formula_columns, parse_formula, variables


def test_plain_formula():
    f = parse_formula("y ~ x + np.log(z)")
    assert f.outcomes == ("y",) and f.outcome == "y" and not f.is_multi_outcome
    assert f.rhs == "x + np.log(z)" and f.instruments is None and f.random_effects == ()
    assert f.variables() == (["y"], ["x", "z"])
    assert f.fixed_formula == "y ~ x + np.log(z)"


def test_cbind_outcomes():
    f = parse_formula("cbind(y1, y2) ~ x")
    assert f.outcomes == ("y1", "y2") and f.is_multi_outcome and f.outcome is None
    assert formula_columns("cbind(y1, y2) ~ x") == {"y1", "y2", "x"}


def test_instruments():
    f = parse_formula("y ~ x + w | z + w")
    assert f.rhs == "x + w" and f.instruments == "z + w"
    assert f.instrument_formula == "y ~ z + w"
    assert formula_columns("y ~ x + w | z + w") == {"y", "x", "w", "z"}


@pytest.mark.parametrize("text", [
    "y ~ x + (1 + x || g) + (1 | a/b)", "y ~ (1 | g)", "y ~ x - 1 + (0 + x | g:h)",
    "y ~ 1 + (1 | school) + (1 | school:class)", "y ~ x + (x | g)",
])
def test_random_effects_as_the_lme4_parser(text):
    ref = parse_lmer_formula(text)
    f = parse_formula(text)
    assert f.rhs == ref.fixed
    assert [(b.expr, b.group) for b in f.random_effects] == \
        [(b.expr, b.group) for b in ref.bars]


def test_columns_include_groups_and_slopes():
    assert formula_columns("y ~ x + (1 + u | school/class)") == {"y", "x", "u", "school",
                                                                "class"}


@pytest.mark.parametrize("bad", [None, "y", "~ x", "y ~ (x", "y ~ x + (1 | )", "y ~ -(1 | g)"])
def test_errors(bad):
    with pytest.raises(FormulaError):
        parse_formula(bad) if bad != "y ~ x + (1 | )" else formula_columns(bad)


def test_variables_excludes_functions():
    assert variables("y ~ I(x ** 2) + np.exp(z)") == (["y"], ["x", "z"])
