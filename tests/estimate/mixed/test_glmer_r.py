"""glmer against lme4 + broom.mixed on the fits in tests/fixtures/lme4/glmer_fits.json.

Each case was fitted in R twice: with lme4's default optimiser settings and with
bobyqa at ``rhoend = 1e-12``. Estimates are compared with the tight fit at 1e-5
relative (absolute floor: 1e-5 of the standard error, for estimates near zero) and
with the default fit at lme4's own optimiser tolerance. logLik is compared at equal
nAGQ (with nAGQ > 1 lme4's criterion leaves out the saturated model's term).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.estimate.mixed import glmer

HERE = Path(__file__).resolve().parents[2] / "fixtures" / "lme4"
ALL = json.loads((HERE / "glmer_fits.json").read_text())["fits"]
TIGHT = [r for r in ALL if r["control"] == "tight"]
DEFAULT = {(r["data"], r["formula"], r["link"], r["nAGQ"]): r for r in ALL
           if r["control"] == "default"}
PARAMS = [pytest.param(i, id=f"{r['data']}:{r['formula']}:{r['link']}:nAGQ={r['nAGQ']}")
          for i, r in enumerate(TIGHT)]


def _data(name: str) -> pd.DataFrame:
    # cbpp's herd and period are factors in R.
    return pd.read_csv(HERE / f"{name}.csv", dtype={"herd": str, "period": str})


@pytest.fixture(scope="module", params=PARAMS)
def case(request):
    r = TIGHT[request.param]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmer(r["formula"], _data(r["data"]), family=r["family"], link=r["link"],
                    nAGQ=r["nAGQ"])
    return r, fit


def _close(a, b, rtol, floor=0.0):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.all(np.abs(a - b) <= rtol * np.maximum(np.abs(b), floor))


def test_fixed_effects_ses_and_theta(case):
    r, fit = case
    terms = r["terms"]
    assert list(fit.fixef.index) == terms
    se_r = np.asarray(r["se"])
    b_r = np.array([r["fixef"][t] for t in terms])
    tol = 1e-5
    assert np.all(np.abs(fit.fixef.to_numpy() - b_r) <= tol * np.maximum(np.abs(b_r), se_r))
    assert _close(np.sqrt(np.diag(fit.vcov.to_numpy())), se_r, tol)
    assert _close(fit.theta, np.atleast_1d(r["theta"]), tol)
    assert _close(fit.vcov.to_numpy(), np.array(r["vcov"]), 10 * tol,
                  floor=1e-3 * se_r.max() ** 2)


def test_against_lme4_defaults(case):
    r, fit = case
    d = DEFAULT[(r["data"], r["formula"], r["link"], r["nAGQ"])]
    b = np.array([d["fixef"][t] for t in d["terms"]])
    # lme4's default stopping rule leaves estimates ~1e-4 from the optimum.
    assert np.all(np.abs(fit.fixef.to_numpy() - b) <= 2e-3 * np.asarray(d["se"]))
    assert fit.logLik >= d["logLik"] - 1e-6


def test_loglik_information_criteria_deviance(case):
    r, fit = case
    a = 1e-6
    assert fit.logLik == pytest.approx(r["logLik"], rel=1e-8, abs=a)
    assert fit.AIC == pytest.approx(r["AIC"], rel=1e-8, abs=2 * a)
    assert fit.BIC == pytest.approx(r["BIC"], rel=1e-8, abs=2 * a)
    assert fit.deviance == pytest.approx(r["deviance"], rel=1e-6)
    assert fit.nobs == r["nobs"]
    assert fit.ngrps == r["ngrps"]
    assert fit.is_singular == r["is_singular"]


def test_tidy_matches_broom_mixed(case):
    r, fit = case
    t = fit.tidy()
    ref = pd.DataFrame(r["tidy"])
    assert list(t["term"]) == list(ref["term"])
    assert list(t["effect"]) == list(ref["effect"])
    fx = ref["effect"] == "fixed"
    for ours, theirs in [("estimate", "estimate"), ("std_error", "std.error"),
                         ("statistic", "statistic"), ("conf_low", "conf.low"),
                         ("conf_high", "conf.high")]:
        a = t.loc[fx.to_numpy(), ours].to_numpy(float)
        b = ref.loc[fx, theirs].to_numpy(float)
        se = ref.loc[fx, "std.error"].to_numpy(float)
        assert np.all(np.abs(a - b) <= 1e-5 * np.maximum(np.abs(b), se)), ours
    p_ours = t.loc[fx.to_numpy(), "p_value"].to_numpy(float)
    p_r = ref.loc[fx, "p.value"].to_numpy(float)
    assert np.all(np.abs(np.log(p_ours) - np.log(p_r)) < 1e-3)
    rp = ~fx.to_numpy()
    assert _close(t.loc[rp, "estimate"], ref.loc[~fx, "estimate"], 1e-5)
    assert list(t.loc[rp, "group"]) == list(ref.loc[~fx, "group"])


def test_varcorr_and_ranef(case):
    r, fit = case
    vc = fit.VarCorr()
    assert list(vc["grp"]) == list(np.atleast_1d(r["varcorr"]["grp"]))
    assert _close(vc["sdcor"], np.atleast_1d(r["varcorr"]["sdcor"]), 1e-5)
    for g, ref in r["ranef"].items():
        ours = fit.ranef()[g]
        assert [str(v) for v in ours.index] == [str(v) for v in ref["levels"]]
        vals = np.array(ref["values"], dtype=float).reshape(ours.shape)
        assert np.all(np.abs(ours.to_numpy() - vals) <= 1e-4 * np.abs(vals).max())
