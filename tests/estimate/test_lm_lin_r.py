"""lm_lin against estimatr 1.0 (fixtures made by R)."""

from __future__ import annotations

import numpy as np

from declaredesign.estimate import (
    lm_lin,
)

from ._estimatr_fixtures import DATA, args, by, check_stats, check_tidy
from ._util import assert_close


@by("lm_lin")
def test_lm_lin_matches_estimatr(case):
    fit = lm_lin(case["formula"], data=DATA[case["data"]], **args(case))
    check_tidy(fit.tidy(), case)
    check_stats(fit, case)
    assert_close(fit.scaled_center.to_numpy(), np.ravel(case["scaled_center"]), what="center")
