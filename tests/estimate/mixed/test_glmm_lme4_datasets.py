"""glmer against lme4 on lme4's own datasets (tests/fixtures/lme4_datasets, issue 11).

Each GLMM was fitted in R with lme4's default control and with bobyqa at
``rhoend = 1e-12`` (``_tight``); lme4's default stops short of the optimum, so
estimates are compared with the tight fit within 1e-5 and, where they are not that
close, our Laplace log-likelihood must be at least that of lme4's default fit
(see the fixtures' README).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.errors import DeclarationError, FitWarning
from declaredesign.estimate.mixed import glmer
from tests.estimate._r_datasets import read_dataset

HERE = Path(__file__).resolve().parents[2] / "fixtures" / "lme4_datasets"
FIXTURES = json.loads((HERE / "lme4_datasets_fits.json").read_text())
FITS = {f["id"]: f for f in FIXTURES["fits"]}
TOL = 1e-5


def _data(name: str) -> pd.DataFrame:
    """A fixture dataset with R's column classes and factor level order."""
    return read_dataset(HERE, FIXTURES, name)


def _fit(fid: str, data: pd.DataFrame, formula: str | None = None, **kwargs):
    r = FITS[fid + "_tight"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return glmer(formula or r["formula"], data, family=r["family"], link=r["link"],
                     **kwargs)


def _check(fid: str, fit) -> None:
    tight, default = FITS[fid + "_tight"], FITS[fid + "_default"]
    assert list(fit.fixef.index) == tight["terms"]
    close = (np.max(np.abs(fit.fixef.to_numpy() - tight["fixef"])) <= TOL
             and np.max(np.abs(fit.theta - np.atleast_1d(tight["theta"]))) <= TOL)
    assert close or fit.logLik >= default["logLik"], (
        fit.fixef.to_numpy() - tight["fixef"], fit.logLik - default["logLik"])
    # the log-likelihood at the optimum is lme4's (theirs stops short by < 1e-5)
    assert abs(fit.logLik - default["logLik"]) < 1e-4
    # standard errors from the deriv12 Hessian at the optimum, as lme4's vcov
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    np.testing.assert_allclose(se, tight["se"], rtol=1e-3)


def test_cbpp_cbind():
    _check("cbpp_cbind", _fit("cbpp_cbind", _data("cbpp")))


def test_cbpp_proportion_with_weights_is_the_cbind_fit():
    d = _data("cbpp")
    fit = _fit("cbpp_proportion", d, weights="size")
    _check("cbpp_proportion", fit)
    cb = _fit("cbpp_cbind", d)
    np.testing.assert_allclose(fit.fixef.to_numpy(), cb.fixef.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(fit.logLik, cb.logLik, rtol=1e-12)


def test_proportion_without_trials_warns_as_r():
    # one trial per row, as R: incidence/size is then not a whole number of successes
    with pytest.warns(FitWarning, match="non-integer #successes in a binomial glm!"):
        warnings.filterwarnings("ignore", "glmer: boundary", FitWarning)
        fit = glmer("incidence/size ~ period + (1 | herd)", _data("cbpp"))
    # fitted, as R fits it, as one trial per row: not the cbind fit
    cb = FITS["cbpp_cbind_tight"]
    assert abs(fit.fixef["period2"] - cb["fixef"][1]) > 0.2


def test_weights_must_name_a_column():
    with pytest.raises(DeclarationError, match=r"glmer\(weights=3\)"):
        glmer("incidence/size ~ period + (1 | herd)", _data("cbpp"), weights=3)


def test_cbpp_probit():
    _check("cbpp_probit", _fit("cbpp_probit", _data("cbpp")))


def _grouseticks_scaled() -> pd.DataFrame:
    d = _data("grouseticks")
    # R's scale(): centred and divided by the sd (n - 1), over all rows
    d["sHEIGHT"] = (d.HEIGHT - d.HEIGHT.mean()) / d.HEIGHT.std()
    return d


def test_grouseticks_with_scale():
    # R's formula as written: scale(HEIGHT) is read by the formula language
    _check("grouseticks", _fit("grouseticks", _data("grouseticks")))


def test_grouseticks_prescaled():
    # three intercepts, one of them observation-level (403 levels, 403 rows)
    fit = _fit("grouseticks", _grouseticks_scaled(),
               "TICKS ~ YEAR + sHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)")
    fit.fixef.index = FITS["grouseticks_tight"]["terms"]
    _check("grouseticks", fit)


def test_verbagg_subsample():
    # r2 is a factor N/Y: the first level is failure, as R's binomial
    _check("verbagg_sub", _fit("verbagg_sub", _data("VerbAgg_sub")))
