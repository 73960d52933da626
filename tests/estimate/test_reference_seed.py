"""lm_robust and difference_in_means against R's fits on the forum design's dataset."""

from __future__ import annotations

import numpy as np
import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import difference_in_means, lm_robust

from ._util import TIDY_R, assert_close, batched

LM_CASES = {
    "lm_robust_HC2": {},
    "lm_robust_CR2_clusters_class": {"clusters": "class"},
    "lm_robust_CR0_clusters_class": {"clusters": "class", "se_type": "CR0"},
    "lm_robust_stata_clusters_class": {"clusters": "class", "se_type": "stata"},
}
DIM_CASES = {
    "difference_in_means_no_clusters": {},
    "difference_in_means_clusters_class": {"clusters": "class"},
}


def _check_tidy(tidy, ref, what):
    coefs = ref["coefficients"]
    assert list(tidy["term"]) == list(coefs)
    for r_name, py_name in TIDY_R.items():
        assert_close(tidy[py_name], [coefs[t][r_name] for t in coefs], what=f"{what} {r_name}")


@pytest.mark.parametrize("key", list(LM_CASES))
def test_lm_robust_matches_r(seed_data, seed_fits, key):
    ref = seed_fits[key]
    fit = lm_robust("score ~ treatment", seed_data, **LM_CASES[key])
    _check_tidy(fit.tidy(), ref, key)
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
    _check_tidy(out, seed_fits[key], key)


@pytest.mark.parametrize("key", list(DIM_CASES))
def test_difference_in_means_matches_r(seed_data, seed_fits, key):
    ref = seed_fits[key]
    fit = difference_in_means("score ~ treatment", seed_data, **DIM_CASES[key])
    _check_tidy(fit.tidy(), ref, key)
    assert fit.design == ref["design"]
    assert fit.nobs == ref["nobs"]
    out = batched(difference_in_means)(Batch.from_pandas(seed_data), "score ~ treatment",
                                           **DIM_CASES[key])
    _check_tidy(out, ref, key + " (batched)")


def test_student_means_cr2(seed_data, seed_fits):
    ref = seed_fits["student_means_lm_robust_CR2"]
    means = (seed_data.groupby(["class", "student", "treatment"], as_index=False)["score"]
             .mean().rename(columns={"score": "av_score"}))
    assert len(means) == ref["n_students"]
    fit = lm_robust("av_score ~ treatment", means, clusters="class")
    ref = dict(ref, coefficients=ref["coefficients"])
    _check_tidy(fit.tidy().assign(), ref, "student means")
    assert_close(fit.vcov.to_numpy(), ref["vcov"])
    assert fit.nobs == 270 and fit.nclusters == 10
    assert_close(fit.r_squared, ref["r.squared"])
    assert_close(fit.adj_r_squared, ref["adj.r.squared"])
    batch_out = batched(lm_robust)(Batch.from_pandas(means), "av_score ~ treatment",
                                       clusters="class")
    _check_tidy(batch_out, ref, "student means (batched)")
    assert np.all(batch_out["outcome"] == "av_score")
