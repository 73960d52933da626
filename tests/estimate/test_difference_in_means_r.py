"""difference_in_means against estimatr 1.0 (fixtures made by R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import difference_in_means, lm_robust

from ._util import TIDY_R, assert_close, batched

HERE = Path(__file__).parents[1] / "fixtures" / "estimatr"


FITS = [c for c in json.loads((HERE / "estimatr_fits.json").read_text())["cases"]
        if c["estimator"] == "difference_in_means"]


DATA = {k: pd.read_csv(HERE / f"data_{k}.csv") for k in "AB"}


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


DIM_CASES = {
    "difference_in_means_no_clusters": {},
    "difference_in_means_clusters_class": {"clusters": "class"},
}


def _check_tidy(tidy, ref, what):
    coefs = ref["coefficients"]
    assert list(tidy["term"]) == list(coefs)
    for r_name, py_name in TIDY_R.items():
        assert_close(tidy[py_name], [coefs[t][r_name] for t in coefs], what=f"{what} {r_name}")


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
