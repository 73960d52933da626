"""glmer's public interface: argument checks, formula features, invariants."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from declaredesign.errors import DeclarationError, EstimationError, FormulaError
from declaredesign.estimate.mixed import GlmerFit, glmer
from declaredesign.estimate.mixed.bars import parse_lmer_formula
from declaredesign.estimate.mixed.families import Family
from declaredesign.estimate.mixed.model_matrices import build_reterms
from declaredesign.estimate.mixed.pirls import GLMM, SparseFactor, gh_rule


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    g = np.repeat(np.arange(25), 8)
    x = rng.normal(size=g.size)
    eta = -0.2 + 0.6 * x + rng.normal(0, 0.8, 25)[g]
    k = rng.binomial(6, 1 / (1 + np.exp(-eta)))
    expo = rng.uniform(0.5, 3, g.size)
    return pd.DataFrame({"g": [f"G{i:02d}" for i in g], "x": x,
                         "y": rng.binomial(1, 1 / (1 + np.exp(-eta))),
                         "k": k, "n": 6, "expo": expo,
                         "count": rng.poisson(expo * np.exp(eta))})


@pytest.mark.parametrize("kw,match", [
    (dict(family="gaussian"), "family must be one of"),
    (dict(family="binomial", link="log"), "link must be one of 'logit', 'probit'"),
    (dict(family="poisson", link="logit"), "link must be one of 'log'"),
    (dict(nAGQ=-1), "nAGQ must be an integer"),
    (dict(nAGQ=1.5), "nAGQ must be an integer"),
    (dict(conf_level=1.0), "conf_level"),
])
def test_bad_arguments(data, kw, match):
    with pytest.raises(DeclarationError, match=match):
        glmer("y ~ x + (1 | g)", data, **kw)


def test_bad_formulas_and_data(data):
    with pytest.raises(FormulaError, match="no random-effect terms"):
        glmer("y ~ x", data)
    with pytest.raises(FormulaError, match="'zz'"):
        glmer("y ~ zz + (1 | g)", data)
    with pytest.raises(FormulaError, match="cbind"):
        glmer("cbind(k) ~ x + (1 | g)", data)
    with pytest.raises(EstimationError, match="0/1"):
        glmer("count ~ x + (1 | g)", data)
    with pytest.raises(EstimationError, match="nAGQ > 1"):
        glmer("y ~ x + (1 + x | g)", data, nAGQ=3)
    with pytest.raises(EstimationError, match="> 1 sampled level"):
        glmer("y ~ x + (1 | g)", data[data.g == "G01"])


def test_lme4_failures_are_errors(data):
    # lme4: "Response is constant"; complete separation stops its first PIRLS
    with pytest.raises(EstimationError, match="constant"):
        glmer("y ~ x + (1 | g)", data.assign(y=0))
    sep = data.assign(y=(data.x > 0).astype(float))
    with pytest.raises(EstimationError, match="pwrssUpdate did not converge"):
        glmer("y ~ x + (1 | g)", sep)


def test_cbind_equals_expanded_binary_rows(data):
    # n Bernoulli rows per binomial row give the same fixed effects and theta
    # (the likelihoods differ by the binomial coefficients only).
    d = data.iloc[:120]
    rows = []
    for _, r in d.iterrows():
        rows += [(r.g, r.x, 1)] * int(r.k) + [(r.g, r.x, 0)] * int(r.n - r.k)
    long = pd.DataFrame(rows, columns=["g", "x", "yy"])
    a = glmer("cbind(k, n - k) ~ x + (1 | g)", d)
    b = glmer("yy ~ x + (1 | g)", long)
    np.testing.assert_allclose(a.fixef, b.fixef, rtol=1e-5)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-5)


def test_offset_shifts_the_intercept(data):
    d = data.assign(c=np.log(2.0))
    a = glmer("count ~ x + offset(log(expo)) + (1 | g)", d, family="poisson")
    b = glmer("count ~ x + offset(log(expo)) + offset(c) + (1 | g)", d, family="poisson")
    assert b.fixef["(Intercept)"] == pytest.approx(a.fixef["(Intercept)"] - np.log(2.0),
                                                   abs=1e-6)
    assert b.fixef["x"] == pytest.approx(a.fixef["x"], rel=1e-6)


def test_agq_approaches_the_integral_and_laplace_is_close(data):
    fits = {q: glmer("y ~ x + (1 | g)", data, nAGQ=q) for q in (1, 15, 25)}
    # more nodes change nothing once the integral is exact
    assert fits[15].logLik == pytest.approx(fits[25].logLik, abs=1e-7)
    np.testing.assert_allclose(fits[15].fixef, fits[25].fixef, rtol=1e-6)
    # Laplace is an approximation of the same likelihood
    assert abs(fits[1].logLik - fits[15].logLik) < 1.0


def test_fit_object(data):
    fit = glmer("y ~ x + (1 | g)", data, link="probit")
    assert isinstance(fit, GlmerFit)
    assert "probit" in repr(fit)
    assert fit.npar == 3
    assert fit.AIC == pytest.approx(-2 * fit.logLik + 6)
    assert fit.BIC == pytest.approx(-2 * fit.logLik + np.log(200) * 3)
    s = fit.summary()
    assert list(s.columns) == ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    t = fit.tidy(conf_level=0.9, conf_int=True)
    fx = t[t.effect == "fixed"]
    np.testing.assert_allclose(fx.conf_high - fx.estimate, 1.6448536269514722 * fx.std_error)
    assert list(fit.ranef()) == ["g"] and fit.ranef()["g"].shape == (25, 1)
    assert fit.VarCorr()["sdcor"].iloc[0] == pytest.approx(fit.theta[0])


def test_singular_fit_warns():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(20), 10)
    d = pd.DataFrame({"g": g, "x": rng.normal(size=200)})
    d["y"] = rng.binomial(1, 0.5, 200)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fit = glmer("y ~ x + (1 | g)", d)
    if fit.is_singular:
        assert any("singular" in str(x.message) for x in w)
        assert fit.messages


def test_gauss_hermite_rule_integrates_normal_moments():
    r = gh_rule(10)
    assert r[:, 1].sum() == pytest.approx(1.0)
    assert (r[:, 1] * r[:, 0] ** 2).sum() == pytest.approx(1.0)
    assert (r[:, 1] * r[:, 0] ** 4).sum() == pytest.approx(3.0)


@pytest.mark.parametrize("fam", [Family("binomial", "logit"), Family("binomial", "probit"),
                                 Family("poisson", "log")])
def test_family_derivative_and_deviance(fam):
    eta = np.linspace(-3, 3, 13)
    h = 1e-6
    num = (fam.linkinv(eta + h) - fam.linkinv(eta - h)) / (2 * h)
    np.testing.assert_allclose(fam.mu_eta(eta), num, rtol=1e-6)
    mu = fam.linkinv(eta)
    y = np.clip(np.round(mu), 0, None)
    wt = np.ones_like(y)
    # deviance residuals are -2 log-likelihood minus its saturated value
    sat = fam.aic_terms(y, np.clip(y, 1e-300, 1 - 1e-16) if fam.family == "binomial"
                        else np.maximum(y, 1e-300), wt)
    np.testing.assert_allclose(fam.dev_resid(y, mu, wt), fam.aic_terms(y, mu, wt) - sat,
                               atol=1e-9)


@pytest.mark.parametrize("dense", [True, False])
def test_gram_pattern_factor_is_the_dense_gram_matrix(dense):
    # slopes and a crossed intercept: several entries a row, off-diagonal blocks
    rng = np.random.default_rng(5)
    n = 300
    d = pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, 40, n),
                      "h": rng.integers(0, 25, n)})
    re = build_reterms(parse_lmer_formula("y ~ x + (1 + x | g) + (1 | h)").bars, d)
    X = np.column_stack([np.ones(n), d.x])
    m = GLMM(X, rng.binomial(1, 0.4, n).astype(float), np.ones(n), np.zeros(n), re,
             Family("binomial", "logit"))
    m._gram.dense = dense
    theta = np.array([0.7, -0.3, 0.4, 1.3])
    w = rng.uniform(0.1, 0.3, n)
    ZL = m._ZL(theta)
    np.testing.assert_allclose(ZL.toarray(), m._pls.ZLambda(theta).toarray(), rtol=0, atol=0)
    A = (ZL.T @ ZL.multiply(w[:, None])).toarray() + np.eye(m.q)
    L = m._chol(ZL, w)
    assert isinstance(L, SparseFactor) != dense
    b = rng.normal(size=m.q)
    np.testing.assert_allclose(m._solveL(L, b), np.linalg.solve(A, b), rtol=1e-10)
    np.testing.assert_allclose(m._ldL2(L), np.linalg.slogdet(A)[1], rtol=1e-12)
