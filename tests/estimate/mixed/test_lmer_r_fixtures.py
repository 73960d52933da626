"""lmer against lme4 + lmerTest + broom.mixed on the fits in tests/fixtures/lme4/.

Where lme4's optimizer stopped short of the optimum (our log-likelihood is higher
than lme4's by more than 1e-10), estimates are compared at 1e-4 instead of 1e-6:
the remaining difference is lme4's convergence tolerance, not ours.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch
from declaredesign.errors import EstimationError
from declaredesign.estimate._protocol import get_batched
from declaredesign.estimate.mixed import lmer

HERE = Path(__file__).resolve().parents[2] / "fixtures" / "lme4"
FITS = json.loads((HERE / "lme4_fits.json").read_text())["fits"]
IDS = [f"{r['data']}:{r['formula']}:{'REML' if r['REML'] else 'ML'}" for r in FITS]


def _data(name: str) -> pd.DataFrame:
    return pd.read_csv(HERE / f"{name}.csv")


@pytest.fixture(scope="module", params=range(len(FITS)), ids=IDS)
def case(request):
    r = FITS[request.param]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmer(r["formula"], _data(r["data"]), REML=r["REML"])
    return r, fit


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


def _tol(r, fit):
    gap = fit.logLik - r["logLik"]
    # Never worse than lme4's optimum.
    assert gap > -1e-9 * abs(r["logLik"]) - 1e-9
    return 1e-6 if gap < 1e-10 else 1e-4


def test_fixed_effects_and_vcov(case):
    r, fit = case
    tol = _tol(r, fit)
    terms = r["terms"]
    assert list(fit.fixef.index) == terms
    assert _rel(fit.fixef[terms], [r["fixef"][t] for t in terms]) < tol
    assert _rel(np.sqrt(np.diag(fit.vcov.to_numpy())), np.sqrt(np.diag(np.array(r["vcov"])))) \
        < 10 * tol


def test_variance_components_and_likelihood(case):
    r, fit = case
    tol = _tol(r, fit)
    th = np.atleast_1d(np.asarray(r["theta"], float))
    assert np.max(np.abs(fit.theta - th) / np.maximum(np.abs(th), 1e-2)) < 100 * tol
    assert fit.sigma == pytest.approx(r["sigma"], rel=10 * tol)
    vc = fit.VarCorr()
    assert vc.grp.tolist() == r["varcorr"]["grp"]
    assert [v if isinstance(v, str) else None for v in vc.var1] == \
        [v if v != "NA" else None for v in r["varcorr"]["var1"]]
    want = np.array(r["varcorr"]["sdcor"], float)
    assert np.max(np.abs(vc.sdcor.to_numpy() - want) / np.maximum(np.abs(want), 1e-2)) \
        < 100 * tol
    for name in ("logLik", "AIC", "BIC"):
        assert getattr(fit, name) == pytest.approx(r[name], rel=1e-8, abs=1e-7)
    crit = fit.REMLcrit if r["REML"] else fit.deviance
    assert crit == pytest.approx(r["criterion"], rel=1e-8, abs=1e-7)
    assert fit.nobs == r["nobs"]
    assert fit.ngrps == r["ngrps"]
    assert fit.is_singular == r["is_singular"]


def test_satterthwaite(case):
    r, fit = case
    tol = _tol(r, fit)
    s = fit.summary()
    assert _rel(s["df"], r["satterthwaite"]["df"]) < max(1e-4, 100 * tol)
    assert _rel(s["t value"], r["satterthwaite"]["t"]) < 10 * tol
    # p-values compared on the log scale (some are ~1e-30)
    assert _rel(np.log(s["Pr(>|t|)"]), np.log(r["satterthwaite"]["p"])) < max(1e-4, 100 * tol)


def test_tidy_shape_matches_broom_mixed(case):
    r, fit = case
    t = fit.tidy()
    want = pd.DataFrame(r["tidy"])
    assert t.effect.tolist() == want.effect.tolist()
    assert t.term.tolist() == want.term.tolist()
    assert [g if isinstance(g, str) else None for g in t.group] == \
        [g if isinstance(g, str) else None for g in want.group]
    tol = _tol(r, fit)
    assert _rel(t.estimate, want.estimate) < 100 * tol


RI = [i for i, r in enumerate(FITS) if r["data"] == "ri"]


@pytest.mark.parametrize("i", RI, ids=[IDS[i] for i in RI])
def test_batched_fast_path_matches_lme4(i):
    r = FITS[i]
    d = _data("ri")
    out = get_batched(lmer)(Batch.from_pandas(d), r["formula"], REML=r["REML"])
    out = out.set_index("term").loc[r["terms"]]
    assert _rel(out.estimate, [r["fixef"][t] for t in r["terms"]]) < 1e-6
    assert _rel(out.std_error, np.sqrt(np.diag(np.array(r["vcov"])))) < 1e-6
    assert _rel(out.df, r["satterthwaite"]["df"]) < 1e-4
    if r["is_singular"]:
        assert out.warning.str.contains("singular").all()
    else:
        assert out.warning.isna().all()


def test_kenward_roger(case):
    r, fit = case
    if not r["REML"]:
        with pytest.raises(EstimationError, match="REML"):
            fit.summary(ddf="Kenward-Roger")
        return
    tol = _tol(r, fit)
    kr = r["kenward_roger"]
    s = fit.summary(ddf="Kenward-Roger")
    assert _rel(s["Std. Error"], kr["se"]) < 10 * tol
    assert _rel(s["df"], kr["df"]) < max(1e-4, 100 * tol)
    assert _rel(np.log(s["Pr(>|t|)"]), np.log(kr["p"])) < max(1e-4, 100 * tol)


def test_ranef_conditional_modes(case):
    r, fit = case
    tol = _tol(r, fit)
    ours = fit.ranef()
    assert set(ours) == set(r["ranef"])
    for grp, want in r["ranef"].items():
        got = ours[grp]
        got.index = got.index.map(str)
        cols = want["columns"] if isinstance(want["columns"], list) else [want["columns"]]
        assert list(got.columns) == cols
        vals = np.array(want["values"], float).reshape(len(want["levels"]), -1)
        got = got.loc[[str(v) for v in want["levels"]]].to_numpy()
        scale = np.max(np.abs(vals))
        assert np.max(np.abs(got - vals)) <= 100 * tol * scale


@pytest.mark.parametrize("i", [i for i in RI if FITS[i]["REML"]],
                         ids=[IDS[i] for i in RI if FITS[i]["REML"]])
def test_batched_kenward_roger_matches_pbkrtest(i):
    r = FITS[i]
    out = get_batched(lmer)(Batch.from_pandas(_data("ri")), r["formula"], ddf="Kenward-Roger")
    out = out.set_index("term").loc[r["terms"]]
    kr = r["kenward_roger"]
    assert _rel(out.std_error, kr["se"]) < 1e-6
    assert _rel(out.df, kr["df"]) < 1e-6
    assert _rel(out.p_value, kr["p"]) < 1e-5


def test_anova_satterthwaite(case):
    r, fit = case
    if r["anova"] is None:
        return
    want = pd.DataFrame({k: np.atleast_1d(v) for k, v in r["anova"].items()}).set_index("term")
    if any(":" in t for t in want.index):
        with pytest.raises(EstimationError, match="interactions"):
            fit.anova()
        return
    tol = _tol(r, fit)
    got = fit.anova()
    assert list(got.index) == list(want.index)
    assert (got.NumDF == want.NumDF).all()
    assert _rel(got["F value"], want.F) < 10 * tol
    assert _rel(got.DenDF, want.DenDF) < max(1e-4, 100 * tol)
    assert _rel(np.log(got["Pr(>F)"]), np.log(want.p)) < max(1e-4, 100 * tol)
