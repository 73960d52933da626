"""iv_robust against estimatr 1.0 (fixtures made by R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.estimate import (
    iv_robust,
)

from ._util import TIDY_R, assert_close

HERE = Path(__file__).parents[1] / "fixtures" / "estimatr"


CASES = json.loads((HERE / "estimatr_more_fits.json").read_text())["cases"]


DATA = {k: pd.read_csv(HERE / f"data_{k}.csv") for k in "ABC"}


DATA["B"]["p"] = 0.5


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
