"""Closed-form derivatives of the deviance equal numerical ones (numDeriv's method)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.estimate.mixed import lmer
from declaredesign.estimate.mixed.derivatives import richardson_hessian, richardson_jacobian
from declaredesign.estimate.mixed.pls import _RAY_SCAN

HERE = Path(__file__).resolve().parents[2] / "fixtures" / "lme4"


def _crossed():
    rng = np.random.default_rng(4)
    n = 90
    g, h = rng.integers(0, 7, n), rng.integers(0, 4, n)
    x = rng.normal(size=n)
    y = (1 + 0.5 * x + rng.normal(0, 1, 7)[g] + rng.normal(0, 0.5, 7)[g] * x
         + rng.normal(0, 0.6, 4)[h] + rng.normal(size=n))
    return pd.DataFrame({"g": g, "h": h, "x": x, "y": y})


CASES = [("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
         ("sleepstudy", "Reaction ~ Days + (Days || Subject)"),
         ("crossed", "y ~ x + (1 + x | g) + (1 | h)"),
         ("crossed", "y ~ 0 + (1 | g)")]


def _fit(name, formula, REML):
    d = pd.read_csv(HERE / "sleepstudy.csv") if name == "sleepstudy" else _crossed()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmer(formula, d, REML=REML)


def _rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("REML", [True, False])
@pytest.mark.parametrize("name,formula", CASES)
def test_criterion_gradient_and_hessian(name, formula, REML):
    pls = _fit(name, formula, REML)._pls
    assert pls.derivatives is not None
    rng = np.random.default_rng(0)
    th = pls.re.theta0 * rng.uniform(0.3, 1.5, pls.re.theta0.size) + 0.1 * (pls.re.theta0 == 0)
    g, H = pls.criterion_derivatives(th)
    assert _rel(g, richardson_jacobian(pls.criterion, th)[0]) < 1e-6
    assert _rel(H, richardson_hessian(pls.criterion, th)) < 1e-6


@pytest.mark.parametrize("REML", [True, False])
@pytest.mark.parametrize("name,formula", CASES)
def test_varpar_hessian_and_vcov_jacobian(name, formula, REML):
    fit = _fit(name, formula, REML)
    pls = fit._pls
    vp = np.append(fit.theta, fit.sigma)
    H, J = pls.derivatives.varpar_derivatives(fit.theta, fit.sigma)
    assert _rel(H, richardson_hessian(pls.dev_varpar, vp)) < 1e-6
    if pls.p:
        assert _rel(J, richardson_jacobian(lambda v: pls.covbeta(v).ravel(), vp)) < 1e-6


@pytest.mark.parametrize("name,formula", CASES)
def test_ray_criterion(name, formula):
    pls = _fit(name, formula, True)._pls
    want = np.array([pls.criterion(s * pls.re.theta0) for s in _RAY_SCAN])
    got = pls.derivatives.ray_criterion(_RAY_SCAN)
    np.testing.assert_allclose(got, want, rtol=1e-7)
