"""lmer against R (lme4 1.1-31, lmerTest 3.1-3, broom.mixed) on the forum design's dataset."""

from __future__ import annotations

import numpy as np
import pytest

from declaredesign.batch import Batch
from declaredesign.estimate._protocol import get_batched
from declaredesign.estimate.mixed import lmer

FORMULA = "score ~ treatment + (1 | student)"
TERMS = ["(Intercept)", "treatment"]


@pytest.fixture(scope="module")
def fits(seed_data):
    return {reml: lmer(FORMULA, seed_data, REML=reml) for reml in (True, False)}


@pytest.fixture(scope="module")
def kernel_rows(seed_data):
    kernel = get_batched(lmer)
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
    got = fits[True].anova().loc[a["term"]]
    assert got["F value"] == pytest.approx(a["F"], rel=1e-6)
    assert got["NumDF"] == a["NumDF"]
    assert got["DenDF"] == pytest.approx(a["DenDF"], rel=1e-4)
    assert got["Pr(>F)"] == pytest.approx(a["p.value"], rel=1e-4)


def test_contest_kenward_roger_single_df(fits):
    fit = fits[True]
    r = fit.contest([[0.0, 1.0]], ddf="Kenward-Roger")
    s = fit.summary(ddf="Kenward-Roger").loc["treatment"]
    assert r["F"] == pytest.approx(s["t value"] ** 2, rel=1e-10)
    assert r["DenDF"] == pytest.approx(s["df"], rel=1e-10)
