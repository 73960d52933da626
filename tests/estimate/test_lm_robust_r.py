"""lm_robust against estimatr 1.0 (fixtures made by R, see tests/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import (
    difference_in_means,
    lm_robust,
)

from ._util import TIDY_R, assert_close, batched

HERE = Path(__file__).parents[1] / "fixtures" / "estimatr"


FITS = [c for c in json.loads((HERE / "estimatr_fits.json").read_text())["cases"]
        if c["estimator"] == "lm_robust"]




FUNCS = {"lm_robust": lm_robust, "difference_in_means": difference_in_means}


def _args(case):
    return dict(case["args"]) if isinstance(case["args"], dict) else {}


def _check(tidy, case):
    ref = pd.DataFrame(case["tidy"])
    assert list(tidy["term"]) == list(ref["term"])
    for r_name, py_name in TIDY_R.items():
        assert_close(tidy[py_name], ref[r_name].to_numpy(dtype=float),
                     what=f"{case['name']} {r_name}")
    assert list(tidy["outcome"]) == list(ref["outcome"])


@pytest.mark.parametrize("case", FITS, ids=[c["name"] for c in FITS])
def test_standalone_matches_estimatr(case):
    fit = FUNCS[case["estimator"]](case["formula"], DATA[case["data"]], **_args(case))
    _check(fit.tidy(), case)
    if case["estimator"] == "lm_robust":
        assert fit.nobs == case["nobs"]
        assert fit.rank == case["rank"]
        assert fit.df_residual == case["df_residual"]
        assert fit.se_type == case["se_type"]
        names = case["vcov_names"]
        names = [names] if isinstance(names, str) else names   # jsonlite unboxes length 1
        assert list(fit.vcov.columns) == names
        assert_close(fit.vcov.to_numpy(), np.reshape(case["vcov"], (len(names),) * 2),
                     what="vcov")
        assert_close(fit.res_var, case["res_var"])
        assert_close(fit.r_squared, case["r_squared"])
        assert_close(fit.adj_r_squared, case["adj_r_squared"])
        for key in ("fstatistic", "proj_fstatistic"):
            got = getattr(fit, key)
            if case.get(key) is None:
                assert got is None
            else:
                assert_close([got["value"], got["numdf"], got["dendf"]], case[key], what=key)
        for key in ("proj_r_squared", "proj_adj_r_squared"):
            if key in case:
                assert_close(getattr(fit, key), case[key], what=key)
    else:
        assert fit.design == case["design"]
        assert_close(fit.nobs, case["nobs"])


@pytest.mark.parametrize("case", FITS, ids=[c["name"] for c in FITS])
def test_batched_matches_estimatr(case):
    kernel = batched(FUNCS[case["estimator"]])
    data = DATA[case["data"]]
    # two copies of the data set: the kernel must give both the R numbers
    batch = Batch.from_frames([data, data])
    out = kernel(batch, case["formula"], **_args(case))
    assert out["error"].isna().all()   # no simulation failed
    for s in (0, 1):
        _check(out[out["sim"] == s], case)


def test_fixture_inputs_cover_hard_cases():
    a = DATA["A"]
    sizes = a.groupby("cl").size()
    assert (sizes == 1).sum() >= 2 and sizes.max() >= 20 * sizes.min()
    assert a["xna"].isna().sum() == 3 and a["clna"].isna().sum() == 2
    assert np.allclose(a["x3"], a["x1"] + a["x2"])


CASES = json.loads((HERE / "estimatr_more_fits.json").read_text())["cases"]


DATA = {k: pd.read_csv(HERE / f"data_{k}.csv") for k in "ABC"}


DATA["B"]["p"] = 0.5


def _by(estimator):
    cs = [c for c in CASES if c["estimator"] == estimator]
    return pytest.mark.parametrize("case", cs, ids=[c["name"] for c in cs])


def _names(v):
    return [v] if isinstance(v, str) else list(v)


def _check_tidy(tidy, case):
    ref = pd.DataFrame(case["tidy"])
    assert list(tidy["term"]) == list(ref["term"])
    for r_name, py_name in TIDY_R.items():
        assert_close(tidy[py_name], ref[r_name].to_numpy(dtype=float),
                     what=f"{case['name']} {r_name}")
    assert list(tidy["outcome"]) == list(ref["outcome"])


@_by("lm_robust")
def test_lm_robust_se_none(case):
    fit = lm_robust(case["formula"], DATA[case["data"]], **_args(case))
    _check_tidy(fit.tidy(), case)
    assert fit.nobs == case["nobs"] and fit.rank == case["rank"]
    assert fit.vcov is None


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


LM_CASES = {
    "lm_robust_HC2": {},
    "lm_robust_CR2_clusters_class": {"clusters": "class"},
    "lm_robust_CR0_clusters_class": {"clusters": "class", "se_type": "CR0"},
    "lm_robust_stata_clusters_class": {"clusters": "class", "se_type": "stata"},
}


def _check_seed_tidy(tidy, ref, what):
    coefs = ref["coefficients"]
    assert list(tidy["term"]) == list(coefs)
    for r_name, py_name in TIDY_R.items():
        assert_close(tidy[py_name], [coefs[t][r_name] for t in coefs], what=f"{what} {r_name}")


@pytest.mark.parametrize("key", list(LM_CASES))
def test_lm_robust_matches_r(seed_data, seed_fits, key):
    ref = seed_fits[key]
    fit = lm_robust("score ~ treatment", seed_data, **LM_CASES[key])
    _check_seed_tidy(fit.tidy(), ref, key)
    assert list(fit.vcov.columns) == ref["vcov_names"]
    assert_close(fit.vcov.to_numpy(), ref["vcov"], what="vcov")
    assert fit.nobs == ref["nobs"]
    assert fit.se_type == ref["se_type"]
    assert_close(fit.r_squared, ref["r.squared"])
    assert_close(fit.adj_r_squared, ref["adj.r.squared"])
    if "nclusters" in ref:
        assert fit.nclusters == ref["nclusters"]


@pytest.mark.parametrize("key", list(LM_CASES))
def test_lm_robust_kernel_matches_r(seed_data, seed_fits, key):
    kernel = batched(lm_robust)
    out = kernel(Batch.from_pandas(seed_data), "score ~ treatment", **LM_CASES[key])
    assert (out["sim"] == 0).all()
    _check_seed_tidy(out, seed_fits[key], key)


def test_student_means_cr2(seed_data, seed_fits):
    ref = seed_fits["student_means_lm_robust_CR2"]
    means = (seed_data.groupby(["class", "student", "treatment"], as_index=False)["score"]
             .mean().rename(columns={"score": "av_score"}))
    assert len(means) == ref["n_students"]
    fit = lm_robust("av_score ~ treatment", means, clusters="class")
    ref = dict(ref, coefficients=ref["coefficients"])
    _check_seed_tidy(fit.tidy().assign(), ref, "student means")
    assert_close(fit.vcov.to_numpy(), ref["vcov"])
    assert fit.nobs == 270 and fit.nclusters == 10
    assert_close(fit.r_squared, ref["r.squared"])
    assert_close(fit.adj_r_squared, ref["adj.r.squared"])
    batch_out = batched(lm_robust)(Batch.from_pandas(means), "av_score ~ treatment",
                                       clusters="class")
    _check_seed_tidy(batch_out, ref, "student means (batched)")
    assert np.all(batch_out["outcome"] == "av_score")


def test_estimatr_fits_are_split_between_lm_robust_and_difference_in_means():
    # estimatr_fits.json holds both estimators; test_difference_in_means_r.py runs the rest
    cases = json.loads((HERE / "estimatr_fits.json").read_text())["cases"]
    assert {c["estimator"] for c in cases} == {"lm_robust", "difference_in_means"}
    assert len(FITS) == sum(c["estimator"] == "lm_robust" for c in cases) > 0
