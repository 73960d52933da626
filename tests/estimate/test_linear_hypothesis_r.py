"""linear_hypothesis against estimatr's lh_robust (fixtures made by R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.estimate import (
    lm_robust,
)

from ._util import assert_close

HERE = Path(__file__).parents[1] / "fixtures" / "estimatr"


CASES = json.loads((HERE / "estimatr_more_fits.json").read_text())["cases"]


DATA = {k: pd.read_csv(HERE / f"data_{k}.csv") for k in "ABC"}


DATA["B"]["p"] = 0.5


def _by(estimator):
    cs = [c for c in CASES if c["estimator"] == estimator]
    return pytest.mark.parametrize("case", cs, ids=[c["name"] for c in cs])


def _args(case):
    return dict(case["args"]) if isinstance(case["args"], dict) else {}


@_by("lh_robust")
def test_linear_hypothesis_matches_lh_robust(case):
    fit = lm_robust(case["formula"], DATA[case["data"]], **_args(case))
    out = fit.linear_hypothesis(case["hypothesis"])
    assert out["term"].tolist() == [case["hypothesis"]]
    for k, v in case["lh"].items():
        assert_close(out[k].to_numpy(), [v], what=k)


def test_multiple_outcomes_hypothesis_across_outcomes():
    fit = lm_robust("cbind(y, x1) ~ z + x", DATA["A"])
    lh = fit.linear_hypothesis("y:z - x1:z = 0")
    V = fit.vcov
    se = np.sqrt(V.loc["y:z", "y:z"] + V.loc["x1:z", "x1:z"] - 2 * V.loc["y:z", "x1:z"])
    assert_close(lh["std_error"], [se])
    assert_close(lh["estimate"], [fit.coefficients["y:z"] - fit.coefficients["x1:z"]])
