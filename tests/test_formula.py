"""declaredesign.formula: the one formula parser (outcomes, bars, instruments, columns)."""

from __future__ import annotations

import pytest

from declaredesign.errors import FormulaError
from declaredesign.estimate.mixed.bars import parse_lmer_formula
from declaredesign.formula import (
    formula_columns,
    parse_formula,
    r_label,
    to_formulaic,
    variables,
)


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


@pytest.mark.parametrize("bad", [None, "y", "~ x", "y ~", "y ~ (x", "y ~ x + (1 | )",
                                 "y ~ -(1 | g)"])
def test_errors(bad):
    with pytest.raises(FormulaError):
        parse_formula(bad) if bad != "y ~ x + (1 | )" else formula_columns(bad)


def test_variables_excludes_functions():
    assert variables("y ~ I(x ** 2) + np.exp(z)") == (["y"], ["x", "z"])


@pytest.mark.parametrize(("r", "formulaic_text"), [
    ("y ~ factor(Z) * x", "y ~ C(Z) * x"),
    ("y ~ as.factor(Z)", "y ~ C(Z)"),
    ("y ~ I(x^2) + log(x^2)", "y ~ I(x**2) + log(x**2)"),
    ("y ~ (a + b)^2", "y ~ (a + b)^2"),            # the formula operator stays
    ("y ~ np.log(x) + I(x ** 2)", "y ~ np.log(x) + I(x ** 2)"),
])
def test_r_spellings_translated_in_one_place(r, formulaic_text):
    assert to_formulaic(r)[0] == formulaic_text


@pytest.mark.parametrize(("code", "label"), [
    ("C(Z)", "factor(Z)"), ("I(x ** 2)", "I(x^2)"), ("poly(x,2)", "poly(x, 2)"),
    ("I((x - 1) ** 2)", "I((x - 1)^2)"), ("log(abs(x))", "log(abs(x))"),
    ("I(x * 2 + 1)", "I(x * 2 + 1)"), ("I(-x ** 2)", "I(-x^2)"), ("I(x == 1)", "I(x == 1)"),
])
def test_terms_named_as_r_deparses_them(code, label):
    assert r_label(code) == label


def test_as_factor_named_back():
    text, as_factor = to_formulaic("y ~ as.factor(Z) + factor(W)")
    assert r_label("C(Z)", as_factor) == "as.factor(Z)"
    assert r_label("C(W)", as_factor) == "factor(W)"


def test_variables_inside_stateful_transforms_and_r_functions():
    assert variables("y ~ poly(x, 2) + scale(w) + center(u) + sqrt(abs(v)) + factor(g)") == \
        (["y"], ["g", "u", "v", "w", "x"])


@pytest.mark.parametrize("bad", ["y ~", "y ~   "])
def test_empty_right_hand_side(bad):
    with pytest.raises(FormulaError, match="no right-hand side"):
        variables(bad)
