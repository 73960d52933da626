"""commarobust against estimatr 1.0's commarobust() on lm fits (issue 10, item 9).

Fixtures: tests/fixtures/estimatr_extras (``make_fixtures.R`` beside them).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign import commarobust, lm_robust
from declaredesign.errors import DeclarationError
from declaredesign.estimate.commarobust import lm_kept_columns

FIX = Path(__file__).parents[1] / "fixtures" / "estimatr_extras"
DATA = pd.read_csv(FIX / "extras_data.csv")
CASES = json.loads((FIX / "estimatr_extras.json").read_text())["commarobust"]
FIELDS = ["estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high", "df"]


def _r(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _fit(case):
    return commarobust(case["formula"], DATA, se_type=case["se_type_arg"],
                       clusters="cl" if case["clustered"] else None,
                       weights="w" if case["weighted"] else None, alpha=case["alpha"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_estimatr(name):
    case = CASES[name]
    fit = _fit(case)
    tidy = fit.tidy()
    assert list(tidy["term"]) == case["term"]
    for col in FIELDS:
        np.testing.assert_allclose(tidy[col].to_numpy(dtype=float), _r(case[col]),
                                   rtol=1e-7, atol=1e-10, err_msg=f"{name}: {col}")
    assert fit.nobs == case["nobs"]
    assert fit.se_type == case["se_type"]
    np.testing.assert_allclose(fit.r_squared, case["r_squared"], rtol=1e-9)


def test_same_numbers_as_lm_robust_without_collinearity():
    a = commarobust("y ~ z + x", DATA, se_type="CR2", clusters="cl")
    b = lm_robust("y ~ z + x", DATA, se_type="CR2", clusters="cl")
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())


def test_clusters_as_vector():
    a = commarobust("y ~ z + x", DATA, clusters=DATA["cl"].to_numpy(), se_type="CR0")
    b = commarobust("y ~ z + x", DATA, clusters="cl", se_type="CR0")
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())


def test_lm_column_choice_drops_the_later_column():
    X = np.column_stack([np.ones(5), [0.0, 1, 2, 3, 5], [1.0, 0, 1, 0, 1]])
    X = np.column_stack([X[:, 0], X[:, 1] + X[:, 2], X[:, 1], X[:, 2]])
    assert lm_kept_columns(X).tolist() == [0, 1, 2]
    assert lm_kept_columns(np.column_stack([np.ones(3), np.zeros(3)])).tolist() == [0]


def test_statsmodels_result_matches_formula():
    sm = pytest.importorskip("statsmodels.api")
    d = DATA.dropna(subset=["y"])
    X = sm.add_constant(d[["z", "x"]])
    for se_type, cl in (("HC3", None), ("CR2", d["cl"]), ("stata", d["cl"])):
        a = commarobust(sm.OLS(d["y"], X).fit(), se_type=se_type, clusters=cl)
        b = commarobust("y ~ z + x", d, se_type=se_type, clusters=cl)
        np.testing.assert_allclose(a.std_error, b.std_error, rtol=1e-10)
        np.testing.assert_allclose(a.df, b.df, rtol=1e-10)
    a = commarobust(sm.WLS(d["y"], X, weights=d["w"]).fit(), se_type="HC2")
    b = commarobust("y ~ z + x", d, weights="w", se_type="HC2")
    np.testing.assert_allclose(a.std_error, b.std_error, rtol=1e-10)


def test_refusals():
    with pytest.raises(DeclarationError, match=r"commarobust\(model=<LMRobustFit>\)"):
        commarobust(lm_robust("y ~ z", DATA))
    with pytest.raises(DeclarationError, match="data must be"):
        commarobust("y ~ z")
    with pytest.raises(DeclarationError, match="se_type must be"):
        commarobust("y ~ z", DATA, se_type="CR2")
    with pytest.raises(DeclarationError, match="clusters must be"):
        commarobust("y ~ z", DATA, clusters=[1, 2])
