"""estimatr 1.0's fits (tests/fixtures/estimatr), shared by the R-reference tests of every
estimatr estimator: the fixture data, the cases, and the checks that compare a fit with R's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch

from ._util import TIDY_R, assert_close, batched

HERE = Path(__file__).parents[1] / "fixtures" / "estimatr"


CASES = json.loads((HERE / "estimatr_more_fits.json").read_text())["cases"]


FIT_CASES = json.loads((HERE / "estimatr_fits.json").read_text())["cases"]


DATA = {k: pd.read_csv(HERE / f"data_{k}.csv") for k in "ABC"}


DATA["B"]["p"] = 0.5


def by(estimator, cases=CASES):
    cs = [c for c in cases if c["estimator"] == estimator]
    return pytest.mark.parametrize("case", cs, ids=[c["name"] for c in cs])


def fits_of(estimator):
    """The cases of ``estimatr_fits.json`` (lm_robust and difference_in_means) for one."""
    return by(estimator, FIT_CASES)


def args(case):
    return dict(case["args"]) if isinstance(case["args"], dict) else {}


def names(v):
    return [v] if isinstance(v, str) else list(v)


def check_tidy(tidy, case):
    ref = pd.DataFrame(case["tidy"])
    assert list(tidy["term"]) == list(ref["term"])
    for r_name, py_name in TIDY_R.items():
        assert_close(tidy[py_name], ref[r_name].to_numpy(dtype=float),
                     what=f"{case['name']} {r_name}")
    assert list(tidy["outcome"]) == list(ref["outcome"])


def check_fstatistics(fit, case):
    """The model F tests against a case, None where R has none."""
    for key in ("fstatistic", "proj_fstatistic"):
        got = getattr(fit, key)
        if case.get(key) is None:
            assert got is None
        else:
            assert_close([got["value"], got["numdf"], got["dendf"]], case[key], what=key)


def check_stats(fit, case):
    assert fit.nobs == case["nobs"]
    assert fit.rank == case["rank"]
    assert fit.df_residual == case["df_residual"]
    assert fit.se_type == case["se_type"]
    if case.get("vcov") is not None:
        terms = names(case["vcov_names"])
        assert list(fit.vcov.columns) == terms
        ref = np.reshape(case["vcov"], (len(terms),) * 2)
        # entries that are zero in exact arithmetic are rounding noise in both programs
        assert_close(fit.vcov.to_numpy(), ref, atol=1e-13 * np.abs(ref).max(), what="vcov")
    else:
        assert fit.vcov is None
    for key in ("res_var", "r_squared", "adj_r_squared", "proj_r_squared",
                "proj_adj_r_squared"):
        if case.get(key) is not None:
            assert_close(getattr(fit, key), case[key], what=key)
    check_fstatistics(fit, case)
    if case.get("nclusters") is not None:
        assert fit.nclusters == case["nclusters"]


def check_fit(fit, case):
    """A standalone fit against an ``estimatr_fits.json`` case: tidy table and fit statistics."""
    check_tidy(fit.tidy(), case)
    if case["estimator"] != "lm_robust":
        assert fit.design == case["design"]
        assert_close(fit.nobs, case["nobs"])
        return
    assert fit.nobs == case["nobs"]
    assert fit.rank == case["rank"]
    assert fit.df_residual == case["df_residual"]
    assert fit.se_type == case["se_type"]
    terms = names(case["vcov_names"])   # jsonlite unboxes length 1
    assert list(fit.vcov.columns) == terms
    assert_close(fit.vcov.to_numpy(), np.reshape(case["vcov"], (len(terms),) * 2), what="vcov")
    for key in ("res_var", "r_squared", "adj_r_squared"):
        assert_close(getattr(fit, key), case[key], what=key)
    check_fstatistics(fit, case)
    for key in ("proj_r_squared", "proj_adj_r_squared"):
        if key in case:
            assert_close(getattr(fit, key), case[key], what=key)


def check_batched(function, case):
    """The batched kernel on two copies of the case's data: both give R's numbers."""
    data = DATA[case["data"]]
    out = batched(function)(Batch.from_frames([data, data]), case["formula"], **args(case))
    assert out["error"].isna().all()   # no simulation failed
    for s in (0, 1):
        check_tidy(out[out["sim"] == s], case)


def check_seed_tidy(tidy, ref, what):
    """A tidy table against one of the seed fits (tests/conftest.py ``seed_fits``)."""
    coefs = ref["coefficients"]
    assert list(tidy["term"]) == list(coefs)
    for r_name, py_name in TIDY_R.items():
        assert_close(tidy[py_name], [coefs[t][r_name] for t in coefs], what=f"{what} {r_name}")
