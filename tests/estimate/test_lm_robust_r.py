"""lm_robust against estimatr 1.0 (fixtures made by R, see tests/fixtures)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import lm_robust

from ._estimatr_fixtures import (
    DATA,
    FIT_CASES,
    HERE,
    args,
    by,
    check_batched,
    check_fit,
    check_seed_tidy,
    check_tidy,
    fits_of,
    names,
)
from ._util import assert_close, batched

FITS = [c for c in FIT_CASES if c["estimator"] == "lm_robust"]


@fits_of("lm_robust")
def test_standalone_matches_estimatr(case):
    check_fit(lm_robust(case["formula"], DATA[case["data"]], **args(case)), case)


@fits_of("lm_robust")
def test_batched_matches_estimatr(case):
    check_batched(lm_robust, case)


def test_fixture_inputs_cover_hard_cases():
    a = DATA["A"]
    sizes = a.groupby("cl").size()
    assert (sizes == 1).sum() >= 2 and sizes.max() >= 20 * sizes.min()
    assert a["xna"].isna().sum() == 3 and a["clna"].isna().sum() == 2
    assert np.allclose(a["x3"], a["x1"] + a["x2"])


@by("lm_robust")
def test_lm_robust_se_none(case):
    fit = lm_robust(case["formula"], DATA[case["data"]], **args(case))
    check_tidy(fit.tidy(), case)
    assert fit.nobs == case["nobs"] and fit.rank == case["rank"]
    assert fit.vcov is None


MULTI = json.loads((HERE / "estimatr_multi_fits.json").read_text())["cases"]


@pytest.mark.parametrize("case", MULTI, ids=[c["name"] for c in MULTI])
def test_multiple_outcomes_match_estimatr(case):
    fit = lm_robust(case["formula"], DATA["A"], **args(case))
    check_tidy(fit.tidy(), case)
    terms = names(case["vcov_names"])
    assert list(fit.vcov.columns) == terms
    ref = np.reshape(case["vcov"], (len(terms),) * 2)
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


@pytest.mark.parametrize("key", list(LM_CASES))
def test_lm_robust_matches_r(seed_data, seed_fits, key):
    ref = seed_fits[key]
    fit = lm_robust("score ~ treatment", seed_data, **LM_CASES[key])
    check_seed_tidy(fit.tidy(), ref, key)
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
    check_seed_tidy(out, seed_fits[key], key)


def test_student_means_cr2(seed_data, seed_fits):
    ref = seed_fits["student_means_lm_robust_CR2"]
    means = (seed_data.groupby(["class", "student", "treatment"], as_index=False)["score"]
             .mean().rename(columns={"score": "av_score"}))
    assert len(means) == ref["n_students"]
    fit = lm_robust("av_score ~ treatment", means, clusters="class")
    ref = dict(ref, coefficients=ref["coefficients"])
    check_seed_tidy(fit.tidy().assign(), ref, "student means")
    assert_close(fit.vcov.to_numpy(), ref["vcov"])
    assert fit.nobs == 270 and fit.nclusters == 10
    assert_close(fit.r_squared, ref["r.squared"])
    assert_close(fit.adj_r_squared, ref["adj.r.squared"])
    batch_out = batched(lm_robust)(Batch.from_pandas(means), "av_score ~ treatment",
                                       clusters="class")
    check_seed_tidy(batch_out, ref, "student means (batched)")
    assert np.all(batch_out["outcome"] == "av_score")


def test_estimatr_fits_are_split_between_lm_robust_and_difference_in_means():
    # estimatr_fits.json holds both estimators; test_difference_in_means_r.py runs the rest
    cases = FIT_CASES
    assert {c["estimator"] for c in cases} == {"lm_robust", "difference_in_means"}
    assert len(FITS) == sum(c["estimator"] == "lm_robust" for c in cases) > 0
