"""iv_robust against estimatr 1.0 (fixtures made by R)."""

from __future__ import annotations

from declaredesign.estimate import (
    iv_robust,
)

from ._estimatr_fixtures import DATA, args, by, check_stats, check_tidy
from ._util import assert_close


def _diag_close(got, ref, what):
    ref = {k.replace("p.value", "p_value"): v for k, v in ref.items()}
    assert set(got) == set(ref), what
    for k, v in ref.items():
        assert_close(got[k], v, what=f"{what} {k}")


@by("iv_robust")
def test_iv_robust_matches_estimatr(case):
    fit = iv_robust(case["formula"], DATA[case["data"]], **args(case))
    check_tidy(fit.tidy(), case)
    if case["se_type"] == "none":
        assert fit.vcov is None
        return
    check_stats(fit, case)
    if "diag_first" in case:
        _diag_close(fit.diagnostic_first_stage_fstatistic, case["diag_first"], "first")
        _diag_close(fit.diagnostic_endogeneity_test, case["diag_endog"], "endog")
        _diag_close(fit.diagnostic_overid_test, case["diag_overid"], "overid")
