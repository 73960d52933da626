"""Bad input to horvitz_thompson, lm_lin, iv_robust and linear hypotheses: clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from declaredesign.assign import declare_ra
from declaredesign.errors import DeclarationError, FormulaError
from declaredesign.estimate import (
    declaration_to_condition_pr_mat,
    horvitz_thompson,
    iv_robust,
    lm_lin,
    lm_robust,
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


@pytest.mark.parametrize("kw,match", [
    ({"se_type": "HC2"}, r"horvitz_thompson\(se_type='HC2'\): se_type must be one of"),
    ({"clusters": "clz", "se_type": "constant"}, r"se_type must be 'youngs' for clustered"),
    ({"blocks": "blk", "se_type": "constant"}, r"se_type must be 'youngs' unless"),
    ({"simple": False, "se_type": "constant"}, r"se_type must be 'youngs' unless"),
    ({"condition_prs": "nope"}, r"condition_prs must be a column"),
    ({"condition_prs": 1.5}, r"condition_prs must be probabilities in \(0, 1\]"),
    ({"ra_declaration": declare_ra(N=24, m=12), "clusters": "cl"},
     r"clusters must be None when ra_declaration is given"),
    ({"ra_declaration": declare_ra(N=10, m=5)}, r"N must be equal to the number of rows"),
    ({"ra_declaration": "decl"}, r"ra_declaration must be a declaration from declare_ra"),
    ({"condition_pr_mat": np.eye(10)}, r"condition_pr_mat must be 2N x 2N with N = 24"),
    ({"alpha": 0}, r"alpha must be a number in \(0, 1\)"),
])
def test_horvitz_thompson_errors(df, kw, match):
    with pytest.raises(DeclarationError, match=match):
        horvitz_thompson("y ~ z", df, **kw)


def test_horvitz_thompson_three_arm_declaration(df):
    with pytest.raises(DeclarationError, match="two-arm"):
        horvitz_thompson("y ~ arm", df, ra_declaration=declare_ra(N=24, num_arms=3))
    with pytest.raises(DeclarationError, match="two-arm"):
        declaration_to_condition_pr_mat(declare_ra(N=24, num_arms=3))


def test_horvitz_thompson_clusters_must_be_constant(df):
    with pytest.raises(DeclarationError, match="constant within clusters"):
        horvitz_thompson("y ~ z", df, clusters="blk")


def test_declaration_conditions_both_or_neither():
    with pytest.raises(DeclarationError, match="give both condition1 and condition2"):
        declaration_to_condition_pr_mat(declare_ra(N=4, m=2), condition2=1)


@pytest.mark.parametrize("hyp,match", [
    ("w = 0", r"'w' is not a term of the fit"),
    ("z * x = 0", r"must be linear"),
    ("z = 1 = 2", r"must be one equation"),
    ("1 = 0", r"names no term"),
])
def test_linear_hypothesis_errors(df, hyp, match):
    fit = lm_robust("y ~ z + x", df)
    with pytest.raises(DeclarationError, match=match):
        fit.linear_hypothesis(hyp)


def test_linear_hypothesis_forms_agree(df):
    fit = lm_robust("y ~ z + x", df)
    a = fit.linear_hypothesis("z - x = 1")
    b = fit.linear_hypothesis("z + 1 = x + 2")
    c = fit.linear_hypothesis("-1 + z - 1*x = 0")
    d = fit.linear_hypothesis([0, 1, -1])
    for other in (b, c):
        np.testing.assert_allclose(other["estimate"], a["estimate"], rtol=1e-14)
    np.testing.assert_allclose(d["estimate"], a["estimate"] + 1, rtol=1e-14)
    np.testing.assert_allclose(d["std_error"], a["std_error"], rtol=1e-14)
    V = fit.vcov.to_numpy()
    np.testing.assert_allclose(a["std_error"], np.sqrt(V[1, 1] + V[2, 2] - 2 * V[1, 2]))


def test_linear_hypothesis_on_ht_is_z_based(df):
    fit = horvitz_thompson("y ~ z", df, condition_prs="p")
    lh = fit.linear_hypothesis("z = 0.1")
    assert np.isnan(lh["df"].iloc[0])
    np.testing.assert_allclose(lh["estimate"], fit.estimate - 0.1)
    np.testing.assert_allclose(lh["std_error"], fit.std_error)
