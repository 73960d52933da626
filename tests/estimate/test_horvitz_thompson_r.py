"""horvitz_thompson against estimatr 1.0 (fixtures made by R)."""

from __future__ import annotations

import numpy as np

from declaredesign.assign import declare_ra
from declaredesign.estimate import (
    declaration_to_condition_pr_mat,
    horvitz_thompson,
)

from ._estimatr_fixtures import CASES, DATA, args, by, check_tidy
from ._util import assert_close


@by("horvitz_thompson")
def test_horvitz_thompson_matches_estimatr(case):
    data = DATA[case["data"]]
    kwargs = args(case)
    if "decl" in case:
        decl = declare_ra(**case["decl"])
        if case.get("use_pr_mat"):
            kwargs["condition_pr_mat"] = declaration_to_condition_pr_mat(decl, data=data)
        else:
            kwargs["ra_declaration"] = decl
            pm = declaration_to_condition_pr_mat(decl, data=data).to_numpy()
            i = np.arange(1, pm.shape[0] + 1)
            wts = np.sin(i)[:, None] + np.cos(2 * i)[None, :]
            assert_close([pm.sum(), (pm ** 2).sum(), (pm * wts).sum()],
                         [case["pr_mat_sum"], case["pr_mat_sumsq"], case["pr_mat_weighted"]],
                         what="condition_pr_mat")
    fit = horvitz_thompson(case["formula"], data, **kwargs)
    check_tidy(fit.tidy(), case)
    assert fit.nobs == case["nobs"]


def test_small_condition_pr_mat_in_full():
    case = next(c for c in CASES if c["name"] == "pr_mat_small")
    decl = declare_ra(**case["decl"])
    pm = declaration_to_condition_pr_mat(decl)
    assert_close(pm.to_numpy(), case["pr_mat"])
    assert list(pm.index[:2]) == ["0_1", "0_2"] and pm.index[-1] == "1_7"
