"""starprep against estimatr 1.0's starprep() (issue 10, item 9).

Fixtures: tests/fixtures/estimatr_extras (``make_fixtures.R`` beside them): two lm fits
and one lm_robust fit (passed through unchanged, as R does).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign import commarobust, lm_robust, starprep
from declaredesign.errors import DeclarationError

FIX = Path(__file__).parents[1] / "fixtures" / "estimatr_extras"
DATA = pd.read_csv(FIX / "extras_data.csv")
STAR = json.loads((FIX / "estimatr_extras.json").read_text())["starprep"]
FITS = [("y2 ~ z + x", DATA), ("y2 ~ z", DATA), lm_robust("y2 ~ x", DATA, se_type="HC1")]


def _check(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert isinstance(g, pd.Series)
        assert list(g.index) == list(w)
        np.testing.assert_allclose(g.to_numpy(), list(w.values()), rtol=1e-8)


@pytest.mark.parametrize("stat", ["std.error", "statistic", "p.value", "df"])
def test_matches_estimatr(stat):
    _check(starprep(*FITS, stat=stat), STAR[stat])


def test_ci_matches_estimatr():
    got = starprep(*FITS, stat="ci", alpha=0.1)
    for g, w, terms in zip(got, STAR["ci_alpha_0.1"], STAR["terms"]):
        assert list(g.index) == terms
        np.testing.assert_allclose(g["conf_low"], w["low"], rtol=1e-8)
        np.testing.assert_allclose(g["conf_high"], w["high"], rtol=1e-8)


def test_se_type_and_clusters_and_list_form():
    _check(starprep(*FITS[:2], se_type="HC0"), STAR["std.error_HC0"])
    _check(starprep(list(FITS[:2]), se_type="CR0", clusters=DATA["cl"]), STAR["std.error_CR0"])


def test_prefixes_python_names_and_statsmodels():
    a = starprep(*FITS, stat="p")
    b = starprep(*FITS, stat="p_value")
    for x, y in zip(a, b):
        pd.testing.assert_series_equal(x, y)
    sm = pytest.importorskip("statsmodels.api")
    X = sm.add_constant(DATA[["z", "x"]])
    got = starprep(sm.OLS(DATA["y2"], X).fit())[0]
    np.testing.assert_allclose(got.to_numpy(), commarobust("y2 ~ z + x", DATA).std_error)


def test_refusals():
    with pytest.raises(DeclarationError, match="stat must be"):
        starprep(*FITS, stat="s")            # ambiguous: std.error or statistic
    with pytest.raises(DeclarationError, match="fits must be"):
        starprep("y ~ z")
    with pytest.raises(DeclarationError, match="fits must be"):
        starprep(list(FITS), FITS[0])
    with pytest.raises(DeclarationError, match="fits must be"):
        starprep()
