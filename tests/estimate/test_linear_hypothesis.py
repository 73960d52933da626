"""linear_hypothesis: errors, forms, z-based on Horvitz-Thompson."""

from __future__ import annotations

import numpy as np
import pytest

from declaredesign.errors import DeclarationError
from declaredesign.estimate import (
    horvitz_thompson,
    lm_robust,
)

from ._util import argument_frame


@pytest.fixture
def df():
    return argument_frame()


@pytest.mark.parametrize("hyp,match", [
    ("w = 0", r"'w' is not a term of the fit"),
    ("z * x = 0", r"must be linear"),
    ("z = 1 = 2", r"must be one equation"),
    ("1 = 0", r"names no term"),
])
def test_linear_hypothesis_errors(df, hyp, match):
    fit = lm_robust("y ~ z + x", df)
    with pytest.raises(DeclarationError, match=match):
        fit.linear_hypothesis(hyp)


def test_linear_hypothesis_forms_agree(df):
    fit = lm_robust("y ~ z + x", df)
    a = fit.linear_hypothesis("z - x = 1")
    b = fit.linear_hypothesis("z + 1 = x + 2")
    c = fit.linear_hypothesis("-1 + z - 1*x = 0")
    d = fit.linear_hypothesis([0, 1, -1])
    for other in (b, c):
        np.testing.assert_allclose(other["estimate"], a["estimate"], rtol=1e-14)
    np.testing.assert_allclose(d["estimate"], a["estimate"] + 1, rtol=1e-14)
    np.testing.assert_allclose(d["std_error"], a["std_error"], rtol=1e-14)
    V = fit.vcov.to_numpy()
    np.testing.assert_allclose(a["std_error"], np.sqrt(V[1, 1] + V[2, 2] - 2 * V[1, 2]))


def test_linear_hypothesis_on_ht_is_z_based(df):
    fit = horvitz_thompson("y ~ z", df, condition_prs="p")
    lh = fit.linear_hypothesis("z = 0.1")
    assert np.isnan(lh["df"].iloc[0])
    np.testing.assert_allclose(lh["estimate"], fit.estimate - 0.1)
    np.testing.assert_allclose(lh["std_error"], fit.std_error)
