"""difference_in_means against estimatr 1.0 (fixtures made by R)."""

from __future__ import annotations

import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import difference_in_means

from ._estimatr_fixtures import DATA, args, check_batched, check_fit, check_seed_tidy, fits_of
from ._util import batched


@fits_of("difference_in_means")
def test_standalone_matches_estimatr(case):
    fit = difference_in_means(case["formula"], DATA[case["data"]], **args(case))
    check_fit(fit, case)


@fits_of("difference_in_means")
def test_batched_matches_estimatr(case):
    check_batched(difference_in_means, case)


DIM_CASES = {
    "difference_in_means_no_clusters": {},
    "difference_in_means_clusters_class": {"clusters": "class"},
}


@pytest.mark.parametrize("key", list(DIM_CASES))
def test_difference_in_means_matches_r(seed_data, seed_fits, key):
    ref = seed_fits[key]
    fit = difference_in_means("score ~ treatment", seed_data, **DIM_CASES[key])
    check_seed_tidy(fit.tidy(), ref, key)
    assert fit.design == ref["design"]
    assert fit.nobs == ref["nobs"]
    out = batched(difference_in_means)(Batch.from_pandas(seed_data), "score ~ treatment",
                                           **DIM_CASES[key])
    check_seed_tidy(out, ref, key + " (batched)")
