"""evaluate(per_sim=True) of one reduction call: taken per simulation, not spread to rows."""

from __future__ import annotations

import numpy as np
import pytest

from declaredesign import Batch
from declaredesign.errors import FormulaError
from declaredesign.expressions import evaluate


@pytest.fixture
def batch():
    # simulation 2 has no rows; x has a NaN in simulation 3
    sim = np.array([0, 0, 0, 1, 1, 3, 3])
    return Batch({"x": np.array([1.0, 2.5, -4.0, 7.0, 1.0, np.nan, 2.0]),
                  "k": np.array([1, 2, 3, 4, 5, 6, 7]),
                  "g": np.array([1, 0, 1, 1, 0, 0, 0])}, sim=sim, n_sims=4)


@pytest.mark.parametrize("expr", [
    "mean(x)", "sum(k)", "sd(x)", "var(x, na_rm=True)", "median(k)", "max(x)",
    "mean(x[g == 1])", "sum(k[g == 1])", "mean(x - k)", "mean(g == 1)", "sum(c(1, 2, 3))",
])
def test_one_reduction_equals_the_general_path(batch, expr):
    # "0 + ..." is not a bare call, so it is spread to the rows and checked as before
    fast = evaluate(expr, batch, per_sim=True)
    general = evaluate(f"0 + {expr}", batch, per_sim=True)
    assert fast.dtype == general.dtype == np.float64
    np.testing.assert_array_equal(fast, general)
    assert np.isnan(fast[2])   # a simulation without rows


def test_errors_name_the_expression(batch):
    with pytest.raises(FormulaError, match="mean\\(nope\\)"):
        evaluate("mean(nope)", batch, per_sim=True)
    with pytest.raises(FormulaError, match="does not reduce"):
        evaluate("x", batch, per_sim=True)
