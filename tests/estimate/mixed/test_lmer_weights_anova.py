"""lmer's precision weights and lmerTest's Type III anova against R (issue 11).

Fixtures: tests/fixtures/lmer_weights_anova/ (``make_fixtures.R`` there; lme4 1.1-31,
lmerTest 3.1-3, pbkrtest 0.5.2, fits with a tight optimiser so that the optimum is
located well beyond 1e-6). Weighted fits: sleepstudy (REML, ML), Penicillin (crossed),
a simulated nested design (``(1 | school/class)``, a three-level factor; REML, ML).
Type III tables: a 3 x 2 factorial, a factor by covariate interaction, a three-way
interaction, ML, lme4's ``cake`` (``recipe * temp``); Satterthwaite and Kenward-Roger.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.batch import Batch
from declaredesign.errors import DeclarationError, EstimationError
from declaredesign.estimate import protocol
from declaredesign.estimate.mixed import lmer, parse_lmer
from declaredesign.estimate.mixed.anova import type3_contrasts, zapsmall
from declaredesign.estimate.mixed.lmer import lmer_kernel
from tests.estimate._r_datasets import read_dataset

HERE = Path(__file__).resolve().parents[2] / "fixtures" / "lmer_weights_anova"
META = json.loads((HERE / "lmer_weights_anova.json").read_text())
FITS = {f["id"]: f for f in META["fits"]}
ANOVA = [(i, ddf) for i, f in FITS.items()
         for key, ddf in (("anova_satterthwaite", "Satterthwaite"),
                          ("anova_kenward_roger", "Kenward-Roger")) if f.get(key)]

TOL = 1e-6


def _listed(x) -> list:
    """R's JSON writes length-one vectors as scalars."""
    return x if isinstance(x, list) else [x]


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def _data(name: str) -> pd.DataFrame:
    return read_dataset(HERE, META, name)


def _fit(r):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmer(r["formula"], _data(r["data"]), REML=r["REML"], weights=r["weights"])


@pytest.fixture(scope="module", params=sorted(FITS))
def case(request):
    r = FITS[request.param]
    return r, _fit(r)


# ------------------------------------------------------------------ all fits
def test_estimates_and_criterion(case):
    r, fit = case
    assert list(fit.fixef.index) == _listed(r["terms"])
    se = np.asarray(_listed(r["se"]))
    # fixed effects on the scale of their standard errors (one is near zero)
    assert np.max(np.abs(fit.fixef.to_numpy() - _listed(r["fixef"])) / se) < TOL
    assert _rel(np.sqrt(np.diag(fit.vcov.to_numpy())), se) < TOL
    V = np.array(r["vcov"]).reshape(fit.vcov.shape)
    assert np.max(np.abs(fit.vcov.to_numpy() - V) / np.outer(se, se)) < TOL
    assert _rel(fit.theta, _listed(r["theta"])) < TOL
    assert fit.sigma == pytest.approx(r["sigma"], rel=TOL)
    crit = fit.REMLcrit if r["REML"] else fit.deviance
    assert crit == pytest.approx(r["criterion"], rel=1e-10, abs=1e-9)
    assert fit.logLik == pytest.approx(r["logLik"], rel=1e-10, abs=1e-9)
    assert fit.nobs == r["nobs"] and fit.is_singular == r["is_singular"]
    vc = fit.VarCorr()
    assert _rel(vc["vcov"], _listed(r["varcorr"]["vcov"])) < TOL


def test_satterthwaite_df(case):
    r, fit = case
    assert _rel(fit.df("Satterthwaite"), _listed(r["satterthwaite"]["df"])) < TOL
    t = np.asarray(_listed(r["satterthwaite"]["t"]))
    assert np.max(np.abs(fit.summary()["t value"] - t) / np.maximum(np.abs(t), 1)) < TOL


def test_kenward_roger(case):
    r, fit = case
    kr = r.get("kenward_roger")
    if r["weights"] is not None:
        # pbkrtest ignores lmer's weights: refused rather than matched
        with pytest.raises(EstimationError, match="weighted"):
            fit.df("Kenward-Roger")
        with pytest.raises(EstimationError, match="weighted"):
            fit.anova(ddf="Kenward-Roger")
        return
    if not kr:
        pytest.skip("no pbkrtest values in the fixture for this fit")
    assert _rel(fit.df("Kenward-Roger"), _listed(kr["df"])) < TOL
    assert _rel(np.sqrt(np.diag(fit.vcov_adjusted())), _listed(kr["se"])) < TOL


# ------------------------------------------------------------------ anova
@pytest.mark.parametrize(("fid", "ddf"), ANOVA, ids=[f"{i}-{d}" for i, d in ANOVA])
def test_anova_matches_lmertest(fid, ddf):
    r = FITS[fid]
    want = r["anova_satterthwaite" if ddf == "Satterthwaite" else "anova_kenward_roger"]
    got = _fit(r).anova(ddf=ddf)
    assert list(got.columns) == ["term", "sum_sq", "mean_sq", "num_df", "den_df",
                                 "statistic", "p_value"]
    assert got["term"].tolist() == _listed(want["term"])
    assert got["num_df"].tolist() == _listed(want["NumDF"])
    for ours, theirs in (("sum_sq", "sum_sq"), ("mean_sq", "mean_sq"), ("den_df", "DenDF"),
                         ("statistic", "F"), ("p_value", "p")):
        assert _rel(got[ours], _listed(want[theirs])) < TOL, ours


@pytest.mark.parametrize("fid", [i for i, f in FITS.items() if f.get("hypotheses")])
def test_type3_hypotheses_are_lmertests(fid):
    # The hypothesis matrices themselves, not only the F tests they give.
    r = FITS[fid]
    fit = _fit(r)
    hyp = type3_contrasts(fit.response, fit._X, list(fit.fixef.index), fit.fixed_terms,
                          fit._data)
    assert list(hyp) == list(r["hypotheses"])
    for t, L in hyp.items():
        want = np.atleast_2d(np.array(r["hypotheses"][t], dtype=float))
        np.testing.assert_allclose(L, want, atol=1e-9, err_msg=t)


def test_anova_interaction_hypotheses_by_hand():
    # y ~ f * x: the interaction and f (at x = 0) are marginal; x is tested at the
    # average of f's levels (contrast 1, 1/3, 1/3 on x, x:fb, x:fc).
    r = FITS["repeated_covariate"]
    fit = _fit(r)
    hyp = type3_contrasts(fit.response, fit._X, list(fit.fixef.index), fit.fixed_terms,
                          fit._data)
    names = list(fit.fixef.index)
    x = dict(zip(names, hyp["x"][0], strict=True))
    assert x["x"] == 1 and x["cond" + "B:x"] == pytest.approx(1 / 3, abs=1e-7)
    assert hyp["cond:x"].shape == (2, len(names))


def test_anova_single_term_and_one_df_match_summary():
    r = FITS["sleepstudy_weighted"]
    fit = _fit(r)
    a = fit.anova().set_index("term")
    s = fit.summary()
    assert a.loc["Days", "statistic"] == pytest.approx(s.loc["Days", "t value"] ** 2,
                                                       rel=1e-10)
    assert a.loc["Days", "den_df"] == pytest.approx(s.loc["Days", "df"], rel=1e-10)


def test_anova_refuses_bad_ddf():
    fit = _fit(FITS["cake"])
    with pytest.raises(DeclarationError, match="ddf"):
        fit.anova(ddf="residual")


def test_zapsmall_rounds_as_r():
    # R: zapsmall(c(1/3, 1e-12, 25)) -> 0.333333 0.000000 25.000000
    np.testing.assert_array_equal(zapsmall(np.array([1 / 3, 1e-12, 25.0])),
                                  [0.33333, 0.0, 25.0])


# ------------------------------------------------------------------ weights
def _sleep():
    return _data("sleepstudy_weighted")


def test_weights_as_column_array_or_series_agree():
    d = _sleep()
    f = "Reaction ~ Days + (Days | Subject)"
    a = lmer(f, d, weights="w")
    b = lmer(f, d.drop(columns="w"), weights=d["w"].to_numpy())
    c = lmer(f, d.drop(columns="w"), weights=d["w"])
    for other in (b, c):
        np.testing.assert_allclose(other.fixef, a.fixef, rtol=1e-12)
        assert other.REMLcrit == pytest.approx(a.REMLcrit, rel=1e-12)


def test_constant_weights_rescale_sigma_only():
    # w = c: the same model with residual variance sigma^2 / c; estimates and the REML
    # criterion (whose -sum(log w) offsets the rescaled RSS) are unchanged.
    d = _sleep()
    f = "Reaction ~ Days + (Days | Subject)"
    a = lmer(f, d)
    b = lmer(f, d, weights=np.full(len(d), 4.0))
    np.testing.assert_allclose(b.fixef, a.fixef, rtol=1e-9)
    np.testing.assert_allclose(b.vcov, a.vcov, rtol=1e-6)
    assert b.sigma == pytest.approx(a.sigma * 2, rel=1e-7)   # var(e_i) = sigma^2 / 4
    assert b.REMLcrit == pytest.approx(a.REMLcrit, rel=1e-10)


def test_missing_weights_drop_rows_as_na_omit():
    d = _sleep()
    d.loc[[3, 50], "w"] = np.nan
    f = "Reaction ~ Days + (Days | Subject)"
    a = lmer(f, d, weights="w")
    b = lmer(f, d.dropna().reset_index(drop=True), weights="w")
    assert a.nobs == len(d) - 2
    np.testing.assert_allclose(a.fixef, b.fixef, rtol=1e-12)


@pytest.mark.parametrize(("weights", "match"), [
    ("nope", r"lmer\(weights='nope'\): weights must be a column of the data"),
    ("Subject", r"lmer\(weights='Subject'\): weights must be a numeric column"),
    ("neg", r"lmer\(weights='neg'\): weights must be a column of positive finite numbers"),
    ("inf", r"weights must be a column of positive finite numbers"),
    (np.ones(5), r"lmer\(weights=<vector of shape \(5,\)>\): weights must be a column name "
                 r"or a vector with one value per row of the data \(180 values\)"),
    (3.0, r"lmer\(weights=<float>\): weights must be a column name"),
])
def test_weights_are_validated(weights, match):
    d = _sleep()
    d["neg"] = d["w"] - 1.0
    d["inf"] = np.where(d.index == 7, np.inf, d["w"])
    with pytest.raises(DeclarationError, match=match):
        lmer("Reaction ~ Days + (Days | Subject)", d, weights=weights)


def test_kenward_roger_with_weights_is_refused_up_front():
    with pytest.raises(DeclarationError, match=r"lmer\(ddf='Kenward-Roger'\)"):
        lmer("Reaction ~ Days + (Days | Subject)", _sleep(), weights="w", ddf="Kenward-Roger")


# ------------------------------------------------------------------ designs
def _frames():
    rng = np.random.default_rng(7)
    out = []
    for _ in range(3):
        g = np.repeat(np.arange(10), rng.integers(3, 8, 10))
        x = rng.normal(size=g.size)
        w = rng.uniform(0.3, 3, g.size)
        y = 1 + 0.5 * x + rng.normal(size=10)[g] + rng.normal(size=g.size) / np.sqrt(w)
        out.append(pd.DataFrame({"g": g, "x": x, "w": w, "y": y}))
    return out


def test_weighted_fits_in_a_batch_fall_back_and_equal_standalone_fits():
    frames = _frames()
    batch = Batch.from_frames(frames)
    spec = parse_lmer("y ~ x + (1 | g)", weights="w")
    res = lmer_kernel(batch, spec)
    assert res.tidy.empty and set(res.fallback) == {0, 1, 2}
    assert all("weighted" in v for v in res.fallback.values())
    est = protocol.get_estimator(lmer)
    out = protocol.fit_batch(est, est.spec("y ~ x + (1 | g)", weights="w"), batch)
    for s, d in enumerate(frames):
        want = lmer("y ~ x + (1 | g)", d, weights="w").tidy(effects="fixed")
        got = out[out.sim == s]
        np.testing.assert_allclose(got["estimate"], want["estimate"], rtol=1e-12)
        np.testing.assert_allclose(got["std_error"], want["std_error"], rtol=1e-12)
        np.testing.assert_allclose(got["df"], want["df"], rtol=1e-12)
        # and the weights matter
        unweighted = lmer("y ~ x + (1 | g)", d).fixef.to_numpy()
        assert np.max(np.abs(got["estimate"].to_numpy() - unweighted)) > 1e-4


def test_weighted_lmer_in_a_design_equals_standalone_fits():
    design = (dd.declare_model(
        g=dd.add_level(N=12, u="rnorm(N)"),
        obs=dd.add_level(N=5, x="rnorm(N)", w="runif(N, 0.3, 3)",
                         Y="1 + 0.5 * x + u + rnorm(N) / sqrt(w)"))
              + dd.declare_estimator("Y ~ x + (1 | g)", model=dd.lmer, weights="w",
                                     label="wlmer"))
    for seed in (1, 2):
        got = dd.run_design(design, seed=seed).set_index("term")
        data = dd.draw_data(design, seed=seed)
        want = lmer("Y ~ x + (1 | g)", data, weights="w").tidy(effects="fixed")
        want = want.set_index("term").loc[got.index]     # the design reports x
        assert list(got.index) == ["x"] and got["error"].isna().all()
        for c in ("estimate", "std_error", "df", "p_value", "conf_low", "conf_high"):
            np.testing.assert_allclose(got[c], want[c], rtol=1e-10)
