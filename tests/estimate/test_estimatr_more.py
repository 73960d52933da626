"""horvitz_thompson, lm_lin, iv_robust, se_type='none' and linear hypotheses vs estimatr 1.0.0.

Fixtures: tests/fixtures/estimatr/make_fixtures.R (second part), data sets A, B, C.
Data set C has clusters of size 1 and 30, a collinear instrument (z3 = z1 + z2), two
endogenous regressors, a factor, weights and missing values in the outcome and in an
instrument (rows dropped, as estimatr does).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.assign import declare_ra
from declaredesign.estimate import (
    declaration_to_condition_pr_mat,
    horvitz_thompson,
    iv_robust,
    lm_lin,
    lm_robust,
)

from ._util import TIDY_R, assert_close

HERE = Path(__file__).parents[1] / "fixtures" / "estimatr"
CASES = json.loads((HERE / "estimatr_more_fits.json").read_text())["cases"]
DATA = {k: pd.read_csv(HERE / f"data_{k}.csv") for k in "ABC"}
DATA["B"]["p"] = 0.5
FUNCS = {"lm_robust": lm_robust, "lm_lin": lm_lin, "iv_robust": iv_robust,
         "horvitz_thompson": horvitz_thompson}


def _by(estimator):
    cs = [c for c in CASES if c["estimator"] == estimator]
    return pytest.mark.parametrize("case", cs, ids=[c["name"] for c in cs])


def _args(case):
    return dict(case["args"]) if isinstance(case["args"], dict) else {}


def _names(v):
    return [v] if isinstance(v, str) else list(v)


def _check_tidy(tidy, case):
    ref = pd.DataFrame(case["tidy"])
    assert list(tidy["term"]) == list(ref["term"])
    for r_name, py_name in TIDY_R.items():
        assert_close(tidy[py_name], ref[r_name].to_numpy(dtype=float),
                     what=f"{case['name']} {r_name}")
    assert list(tidy["outcome"]) == list(ref["outcome"])


def _check_stats(fit, case):
    assert fit.nobs == case["nobs"]
    assert fit.rank == case["rank"]
    assert fit.df_residual == case["df_residual"]
    assert fit.se_type == case["se_type"]
    if case.get("vcov") is not None:
        names = _names(case["vcov_names"])
        assert list(fit.vcov.columns) == names
        ref = np.reshape(case["vcov"], (len(names),) * 2)
        # entries that are zero in exact arithmetic are rounding noise in both programs
        assert_close(fit.vcov.to_numpy(), ref, atol=1e-13 * np.abs(ref).max(), what="vcov")
    else:
        assert fit.vcov is None
    for key in ("res_var", "r_squared", "adj_r_squared", "proj_r_squared",
                "proj_adj_r_squared"):
        if case.get(key) is not None:
            assert_close(getattr(fit, key), case[key], what=key)
    for key in ("fstatistic", "proj_fstatistic"):
        got = getattr(fit, key)
        if case.get(key) is None:
            assert got is None
        else:
            assert_close([got["value"], got["numdf"], got["dendf"]], case[key], what=key)
    if case.get("nclusters") is not None:
        assert fit.nclusters == case["nclusters"]


@_by("lm_robust")
def test_lm_robust_se_none(case):
    fit = lm_robust(case["formula"], DATA[case["data"]], **_args(case))
    _check_tidy(fit.tidy(), case)
    assert fit.nobs == case["nobs"] and fit.rank == case["rank"]
    assert fit.vcov is None


@_by("lm_lin")
def test_lm_lin_matches_estimatr(case):
    fit = lm_lin(case["formula"], data=DATA[case["data"]], **_args(case))
    _check_tidy(fit.tidy(), case)
    _check_stats(fit, case)
    assert_close(fit.scaled_center.to_numpy(), np.ravel(case["scaled_center"]), what="center")


def _diag_close(got, ref, what):
    ref = {k.replace("p.value", "p_value"): v for k, v in ref.items()}
    assert set(got) == set(ref), what
    for k, v in ref.items():
        assert_close(got[k], v, what=f"{what} {k}")


@_by("iv_robust")
def test_iv_robust_matches_estimatr(case):
    fit = iv_robust(case["formula"], DATA[case["data"]], **_args(case))
    _check_tidy(fit.tidy(), case)
    if case["se_type"] == "none":
        assert fit.vcov is None
        return
    _check_stats(fit, case)
    if "diag_first" in case:
        _diag_close(fit.diagnostic_first_stage_fstatistic, case["diag_first"], "first")
        _diag_close(fit.diagnostic_endogeneity_test, case["diag_endog"], "endog")
        _diag_close(fit.diagnostic_overid_test, case["diag_overid"], "overid")


@_by("horvitz_thompson")
def test_horvitz_thompson_matches_estimatr(case):
    data = DATA[case["data"]]
    kwargs = _args(case)
    if "decl" in case:
        decl = declare_ra(**case["decl"])
        if case.get("use_pr_mat"):
            kwargs["condition_pr_mat"] = declaration_to_condition_pr_mat(decl, data=data)
        else:
            kwargs["ra_declaration"] = decl
            pm = declaration_to_condition_pr_mat(decl, data=data).to_numpy()
            i = np.arange(1, pm.shape[0] + 1)
            wts = np.sin(i)[:, None] + np.cos(2 * i)[None, :]
            assert_close([pm.sum(), (pm ** 2).sum(), (pm * wts).sum()],
                         [case["pr_mat_sum"], case["pr_mat_sumsq"], case["pr_mat_weighted"]],
                         what="condition_pr_mat")
    fit = horvitz_thompson(case["formula"], data, **kwargs)
    _check_tidy(fit.tidy(), case)
    assert fit.nobs == case["nobs"]


def test_small_condition_pr_mat_in_full():
    case = next(c for c in CASES if c["name"] == "pr_mat_small")
    decl = declare_ra(**case["decl"])
    pm = declaration_to_condition_pr_mat(decl)
    assert_close(pm.to_numpy(), case["pr_mat"])
    assert list(pm.index[:2]) == ["0_1", "0_2"] and pm.index[-1] == "1_7"


@_by("lh_robust")
def test_linear_hypothesis_matches_lh_robust(case):
    fit = lm_robust(case["formula"], DATA[case["data"]], **_args(case))
    out = fit.linear_hypothesis(case["hypothesis"])
    assert out["term"].tolist() == [case["hypothesis"]]
    for k, v in case["lh"].items():
        assert_close(out[k].to_numpy(), [v], what=k)


MULTI = json.loads((HERE / "estimatr_multi_fits.json").read_text())["cases"]


@pytest.mark.parametrize("case", MULTI, ids=[c["name"] for c in MULTI])
def test_multiple_outcomes_match_estimatr(case):
    fit = lm_robust(case["formula"], DATA["A"], **_args(case))
    _check_tidy(fit.tidy(), case)
    names = _names(case["vcov_names"])
    assert list(fit.vcov.columns) == names
    ref = np.reshape(case["vcov"], (len(names),) * 2)
    assert_close(fit.vcov.to_numpy(), ref, atol=1e-13 * np.abs(ref).max(), what="vcov")
    assert fit.nobs == case["nobs"] and fit.df_residual == case["df_residual"]
    fits = list(fit.fits.values())
    for key in ("res_var", "r_squared", "adj_r_squared"):
        assert_close([getattr(f, key) for f in fits], case[key], what=key)
    fs = case["fstatistic"]
    for f, o in zip(fits, fit.outcome, strict=True):
        assert_close([f.fstatistic["value"], f.fstatistic["numdf"], f.fstatistic["dendf"]],
                     [fs[f"{o}:value"], fs["numdf"], fs["dendf"]], what="fstatistic")


def test_multiple_outcomes_hypothesis_across_outcomes():
    fit = lm_robust("cbind(y, x1) ~ z + x", DATA["A"])
    lh = fit.linear_hypothesis("y:z - x1:z = 0")
    V = fit.vcov
    se = np.sqrt(V.loc["y:z", "y:z"] + V.loc["x1:z", "x1:z"] - 2 * V.loc["y:z", "x1:z"])
    assert_close(lh["std_error"], [se])
    assert_close(lh["estimate"], [fit.coefficients["y:z"] - fit.coefficients["x1:z"]])
