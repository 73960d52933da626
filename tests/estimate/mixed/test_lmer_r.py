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
from declaredesign.estimate import protocol
from declaredesign.estimate.mixed import lmer


def KERNEL(batch, formula, **kwargs):
    """lmer on every simulation of a batch, as a design runs it (kernel + fallback)."""
    est = protocol.get_estimator(lmer)
    return protocol.fit_batch(est, est.spec(formula, **kwargs), batch)

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
    out = KERNEL(Batch.from_pandas(d), r["formula"], REML=r["REML"])
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
    out = KERNEL(Batch.from_pandas(_data("ri")), r["formula"], ddf="Kenward-Roger")
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
    # Type III tests, interactions included (lmerTest's hypotheses)
    tol = _tol(r, fit)
    got = fit.anova().set_index("term")
    assert list(got.index) == list(want.index)
    assert (got.num_df == want.NumDF).all()
    assert _rel(got["statistic"], want.F) < 10 * tol
    assert _rel(got.den_df, want.DenDF) < max(1e-4, 100 * tol)
    assert _rel(np.log(got["p_value"]), np.log(want.p)) < max(1e-4, 100 * tol)


# ------------------------------------------------------------
# lme4 1.1-31, lmerTest 3.1-3, broom.mixed on the forum design's dataset (seed data)
FORMULA = "score ~ treatment + (1 | student)"
TERMS = ["(Intercept)", "treatment"]


@pytest.fixture(scope="module")
def fits(seed_data):
    return {reml: lmer(FORMULA, seed_data, REML=reml) for reml in (True, False)}


@pytest.fixture(scope="module")
def kernel_rows(seed_data):
    kernel = KERNEL
    b = Batch.from_pandas(seed_data)
    return {reml: kernel(b, FORMULA, REML=reml) for reml in (True, False)}


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b) / np.abs(b))


@pytest.mark.parametrize("reml,key", [(True, "lmer_REML"), (False, "lmer_ML")])
def test_general_fit_matches_lme4(fits, seed_fits, reml, key):
    r, f = seed_fits[key], fits[reml]
    assert f.REML is reml
    assert rel(f.fixef[TERMS], [r["fixef"][t] for t in TERMS]) < 1e-6
    assert rel(np.sqrt(np.diag(f.vcov.loc[TERMS, TERMS])), [r["fixef_se"][t] for t in TERMS]) \
        < 1e-6
    assert rel(f.vcov.loc[TERMS, TERMS].to_numpy(), np.array(r["vcov"])) < 2e-6
    assert rel(f.theta, [r["theta"]]) < 1e-6
    assert rel(f.sigma, r["sigma"]) < 1e-6
    vc = f.VarCorr().set_index("grp")
    for grp in ("student", "Residual"):
        assert rel(vc.loc[grp, "vcov"], r["variance_components"][grp]["variance"]) < 2e-6
        assert rel(vc.loc[grp, "sdcor"], r["variance_components"][grp]["sd"]) < 1e-6
    assert abs(f.logLik - r["logLik"]) < 1e-6 * abs(r["logLik"])
    assert abs(f.AIC - r["AIC"]) < 1e-6 * abs(r["AIC"])
    assert abs(f.BIC - r["BIC"]) < 1e-6 * abs(r["BIC"])
    crit = f.REMLcrit if reml else f.deviance
    assert abs(crit - r["deviance_or_REMLcrit"]) < 1e-6 * abs(r["deviance_or_REMLcrit"])
    assert f.nobs == r["nobs"] and f.ngrps == r["ngrps"]
    assert not f.is_singular


def test_satterthwaite_summary(fits, seed_fits):
    r = seed_fits["lmerTest_REML_satterthwaite"]
    s = fits[True].summary()
    for t in TERMS:
        assert s.loc[t, "df"] == pytest.approx(r[t]["df"], rel=1e-4)
        assert s.loc[t, "t value"] == pytest.approx(r[t]["statistic"], rel=1e-6)
        assert s.loc[t, "Pr(>|t|)"] == pytest.approx(r[t]["p.value"], rel=1e-4)
    anova = seed_fits["lmerTest_REML_anova_satterthwaite"]
    assert s.loc["treatment", "t value"] ** 2 == pytest.approx(anova["F"], rel=1e-6)
    assert s.loc["treatment", "df"] == pytest.approx(anova["DenDF"], rel=1e-4)


@pytest.mark.parametrize("ddf,key", [("Satterthwaite", "broom_mixed_tidy_lmerTest"),
                                     ("lme4", "broom_mixed_tidy_lme4")])
def test_tidy_matches_broom_mixed(fits, seed_fits, ddf, key):
    t = fits[True].tidy(ddf=ddf)
    assert list(t.columns) == ["effect", "group", "term", "estimate", "std_error", "statistic",
                               "df", "p_value", "conf_low", "conf_high", "outcome"]
    fx = t[t.effect == "fixed"].set_index("term")
    rows = seed_fits[key]["rows"]
    for term, r in rows.items():
        assert fx.loc[term, "estimate"] == pytest.approx(r["estimate"], rel=1e-6)
        assert fx.loc[term, "std_error"] == pytest.approx(r["std.error"], rel=1e-6)
        assert fx.loc[term, "statistic"] == pytest.approx(r["statistic"], rel=1e-6)
        # CIs: estimate +- q * se, so compare on the scale of the se.
        for side in ("low", "high"):
            assert abs(fx.loc[term, f"conf_{side}"] - r[f"conf.{side}"]) < \
                1e-6 * r["std.error"]
        if "df" in r:
            assert fx.loc[term, "df"] == pytest.approx(r["df"], rel=1e-4)
            assert fx.loc[term, "p_value"] == pytest.approx(r["p.value"], rel=1e-4)
        else:
            assert np.isnan(fx.loc[term, "p_value"])
    rp = t[t.effect == "ran_pars"]
    assert rp.term.tolist() == ["sd__(Intercept)", "sd__Observation"]
    assert rp.group.tolist() == ["student", "Residual"]


@pytest.mark.parametrize("reml,key", [(True, "lmer_REML"), (False, "lmer_ML")])
def test_batched_kernel_matches_lme4(kernel_rows, seed_fits, reml, key):
    out = kernel_rows[reml].set_index("term")
    r = seed_fits[key]
    assert out.sim.tolist() == [0, 0]
    assert rel(out.loc[TERMS, "estimate"], [r["fixef"][t] for t in TERMS]) < 1e-6
    assert rel(out.loc[TERMS, "std_error"], [r["fixef_se"][t] for t in TERMS]) < 1e-6
    assert out.error.isna().all() and out.warning.isna().all()
    assert (out.outcome == "score").all()


def test_batched_kernel_satterthwaite(kernel_rows, seed_fits):
    out = kernel_rows[True].set_index("term")
    r = seed_fits["lmerTest_REML_satterthwaite"]
    for t in TERMS:
        assert out.loc[t, "df"] == pytest.approx(r[t]["df"], rel=1e-4)
        assert out.loc[t, "p_value"] == pytest.approx(r[t]["p.value"], rel=1e-4)
        assert out.loc[t, "conf_low"] == pytest.approx(r[t]["conf.low_t_satterthwaite"],
                                                       rel=1e-6)
        assert out.loc[t, "conf_high"] == pytest.approx(r[t]["conf.high_t_satterthwaite"],
                                                        rel=1e-6)


def test_design_estimator_output(seed_fits, kernel_rows):
    # The design's lmer_student_RE row (lmerTest fit, broom.mixed tidy, term treatment).
    r = seed_fits["declaredesign_estimator_outputs"]["lmer_student_RE"]
    row = kernel_rows[True].set_index("term").loc["treatment"]
    for ours, theirs, tol in [("estimate", "estimate", 1e-6), ("std_error", "std.error", 1e-6),
                              ("statistic", "statistic", 1e-6), ("df", "df", 1e-4),
                              ("p_value", "p.value", 1e-4), ("conf_low", "conf.low", 1e-6),
                              ("conf_high", "conf.high", 1e-6)]:
        assert row[ours] == pytest.approx(r[theirs], rel=tol), ours


def test_anova_matches_lmertest(fits, seed_fits):
    a = seed_fits["lmerTest_REML_anova_satterthwaite"]
    got = fits[True].anova().set_index("term").loc[a["term"]]
    assert got["statistic"] == pytest.approx(a["F"], rel=1e-6)
    assert got["num_df"] == a["NumDF"]
    assert got["den_df"] == pytest.approx(a["DenDF"], rel=1e-4)
    assert got["p_value"] == pytest.approx(a["p.value"], rel=1e-4)


def test_contest_kenward_roger_single_df(fits):
    fit = fits[True]
    r = fit.contest([[0.0, 1.0]], ddf="Kenward-Roger")
    s = fit.summary(ddf="Kenward-Roger").loc["treatment"]
    assert r["F"] == pytest.approx(s["t value"] ** 2, rel=1e-10)
    assert r["DenDF"] == pytest.approx(s["df"], rel=1e-10)
