"""linear_hypothesis against estimatr's lh_robust (fixtures made by R)."""

from __future__ import annotations

import numpy as np

from declaredesign.estimate import (
    lm_robust,
)

from ._estimatr_fixtures import DATA, args, by
from ._util import assert_close


@by("lh_robust")
def test_linear_hypothesis_matches_lh_robust(case):
    fit = lm_robust(case["formula"], DATA[case["data"]], **args(case))
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
