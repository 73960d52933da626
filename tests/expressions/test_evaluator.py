"""The expression evaluator: names, grouped reductions, callables, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from declaredesign import Batch, FormulaError
from declaredesign.expressions import evaluate
from declaredesign.fabricate import normal, poisson


@pytest.fixture
def batch() -> Batch:
    # Three sims of sizes 3, 0 and 2 (an empty simulation in the middle).
    return Batch({"x": np.array([1.0, 2.0, 6.0, 10.0, 30.0]),
                  "g": np.array([1, 1, 2, 1, 1])},
                 sim=np.array([0, 0, 0, 2, 2]), n_sims=3)


def per_sim(b: Batch, f):
    parts = [b["x"][b.sim == s] for s in range(b.n_sims)]
    return np.concatenate([np.full(len(x), f(x)) for x in parts if len(x)])


@pytest.mark.parametrize("name,f", [
    ("mean", np.mean), ("sum", np.sum), ("sd", lambda x: np.std(x, ddof=1)),
    ("var", lambda x: np.var(x, ddof=1)), ("median", np.median), ("min", np.min),
    ("max", np.max), ("length", len), ("n", len),
])
def test_reductions_are_grouped_by_sim(batch, name, f):
    got = evaluate(f"{name}(x)", batch)
    np.testing.assert_allclose(got, per_sim(batch, f), rtol=1e-14)


def test_centering_within_each_sim(batch):
    got = evaluate("x - mean(x)", batch)
    np.testing.assert_allclose(got, [-2.0, -1.0, 3.0, -10.0, 10.0])


def test_median_even_and_odd_with_unsorted_rows():
    b = Batch({"x": np.array([5.0, 1.0, 3.0, 9.0, 7.0, 2.0, 4.0])},
              sim=np.array([0, 0, 0, 1, 1, 1, 1]), n_sims=2)
    assert evaluate("median(x)", b, per_sim=True).tolist() == [3.0, 5.5]


def test_nan_propagates_like_r_unless_na_rm():
    b = Batch({"x": np.array([1.0, np.nan, 3.0])}, sim=np.zeros(3, int), n_sims=1)
    assert np.isnan(evaluate("mean(x)", b, per_sim=True)[0])
    assert evaluate("mean(x, na_rm=True)", b, per_sim=True)[0] == 2.0
    assert np.isnan(evaluate("max(x)", b, per_sim=True)[0])
    assert evaluate("max(x, na_rm=True)", b, per_sim=True)[0] == 3.0


def test_per_sim_gives_one_value_per_sim_and_nan_for_empty(batch):
    got = evaluate("mean(x)", batch, per_sim=True)
    assert got.shape == (3,)
    assert got[0] == 3.0 and np.isnan(got[1]) and got[2] == 20.0


def test_per_sim_rejects_row_varying_expression(batch):
    with pytest.raises(FormulaError, match="one value per simulation"):
        evaluate("x", batch, per_sim=True)


def test_scalar_broadcast_and_n(batch):
    assert evaluate(2.5, batch).tolist() == [2.5] * 5
    assert evaluate("N", batch).tolist() == [3, 3, 3, 2, 2]
    assert evaluate("N", batch, extra={"N": np.arange(5)}).tolist() == list(range(5))


def test_numpy_functions_and_r_helpers(batch):
    np.testing.assert_allclose(evaluate("np.exp(x) + log(x)", batch),
                               np.exp(batch["x"]) + np.log(batch["x"]))
    assert evaluate("where(x > 2, 1, 0)", batch).tolist() == [0, 0, 1, 1, 1]
    assert evaluate("ifelse(x > 2 and x < 20, 1, 0)", batch).tolist() == [0, 0, 1, 1, 0]
    assert evaluate("pnorm(0)", batch)[0] == 0.5


def test_extra_names_take_precedence(batch):
    assert evaluate("x + Z", batch, extra={"Z": 1}).tolist() == (batch["x"] + 1).tolist()
    assert evaluate("x", batch, extra={"x": 0.0}).tolist() == [0.0] * 5


def test_column_named_like_a_function_still_allows_the_call():
    b = Batch({"mean": np.array([1.0, 3.0])}, sim=np.zeros(2, int), n_sims=1)
    assert evaluate("mean(mean)", b).tolist() == [2.0, 2.0]
    assert evaluate("mean + 1", b).tolist() == [2.0, 4.0]


def test_unknown_name_lists_columns(batch):
    with pytest.raises(FormulaError, match=r"'x \+ y'.*'y'.*available columns are: x, g"):
        evaluate("x + y", batch)


@pytest.mark.parametrize("expr", ["(lambda: 1)()", "x.__class__", "__import__('os')",
                                  "[v for v in x]", "g.real", "np._core",
                                  "np.random.normal(size=5)"])
def test_unsafe_syntax_is_refused(batch, expr):
    with pytest.raises(FormulaError):
        evaluate(expr, batch)


def test_syntax_error_is_formula_error(batch):
    with pytest.raises(FormulaError, match="not valid"):
        evaluate("x +", batch)


def test_wrong_length_is_refused(batch):
    with pytest.raises(FormulaError, match="expected one per row"):
        evaluate(np.arange(3), batch)


def test_callable_sees_columns_and_grouped_reductions(batch):
    got = evaluate(lambda df: df["x"] - df.by_sim.mean(df.x) + 0 * df.N, batch)
    np.testing.assert_allclose(got, evaluate("x - mean(x)", batch))
    with pytest.raises(AttributeError, match="available columns"):
        evaluate(lambda df: df.nope, batch)


def test_lazy_nodes_and_string_draws_use_the_rng(batch):
    a = evaluate(normal("x", 0.0) + poisson(0), batch, np.random.default_rng(1))
    np.testing.assert_array_equal(a, batch["x"])
    d1 = evaluate("x + normal(0, 1)", batch, np.random.default_rng(5))
    d2 = evaluate("x + normal(0, 1)", batch, np.random.default_rng(5))
    np.testing.assert_array_equal(d1, d2)
    assert not np.array_equal(d1, batch["x"])


def test_numpy_ufunc_on_lazy_node_is_lazy(batch):
    node = np.exp(normal(mean="x", sd=0))
    assert "np.exp(normal(" in repr(node)
    np.testing.assert_allclose(evaluate(node, batch, np.random.default_rng(0)),
                               np.exp(batch["x"]))
    node2 = batch["x"] * normal(1, 0)  # ndarray on the left defers to the node
    np.testing.assert_allclose(evaluate(node2, batch, np.random.default_rng(0)), batch["x"])


def test_group_codes_override_reductions(batch):
    codes = np.array([0, 0, 1, 2, 2])
    got = evaluate("x - mean(x)", batch, group=codes, n_groups=3)
    np.testing.assert_allclose(got, [-0.5, 0.5, 0.0, -10.0, 10.0])


def test_no_batch_uses_n_rows():
    assert evaluate("1 + N", None, n_rows=3).tolist() == [4, 4, 4]


def test_r_generators_with_n():
    b = Batch({"x": np.arange(5.0)}, sim=np.array([0, 0, 0, 1, 1]), n_sims=2)
    rng = np.random.default_rng(0)
    y = evaluate("rnorm(N, x, 0) + runif(N, 0, 0) + rpois(N, 0)", b, rng)
    np.testing.assert_array_equal(y, b["x"])
    one = evaluate("rnorm(1)", b, rng)
    assert one[0] == one[1] == one[2] and one[3] == one[4] and one[0] != one[3]
    with pytest.raises(FormulaError, match="needs n = N"):
        evaluate("rnorm(7)", b, rng)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=6), min_size=1,
                max_size=5))
def test_grouped_reductions_match_pandas(groups):
    import pandas as pd
    sim = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    x = np.array([v for g in groups for v in g], dtype=float)
    b = Batch({"x": x}, sim=sim, n_sims=len(groups))
    by = pd.Series(x).groupby(sim)
    for name, ref in [("mean", by.mean()), ("sum", by.sum()), ("median", by.median()),
                      ("min", by.min()), ("max", by.max()), ("sd", by.std()),
                      ("var", by.var())]:
        got = evaluate(f"{name}(x)", b, per_sim=True)
        want = np.full(len(groups), np.nan)
        want[ref.index.to_numpy()] = ref.to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6, err_msg=name)


def test_numpy_reductions_are_grouped_by_simulation_or_refused():
    import numpy as np
    import pytest

    from declaredesign.batch import Batch
    from declaredesign.errors import FormulaError
    from declaredesign.expressions import evaluate

    b = Batch({"x": np.array([1.0, 2.0, 3.0, 10.0])}, sim=np.array([0, 0, 1, 1]), n_sims=2)
    assert evaluate("np.mean(x)", b, per_sim=True).tolist() == [1.5, 6.5]
    assert evaluate("np.sum(x)", b, per_sim=True).tolist() == [3.0, 13.0]
    np.testing.assert_allclose(evaluate("np.std(x)", b, per_sim=True), [0.5, 3.5])
    np.testing.assert_allclose(evaluate("np.var(x, ddof=1)", b, per_sim=True), [0.5, 24.5])
    np.testing.assert_allclose(evaluate("np.exp(x)", b), np.exp(b["x"]))
    with pytest.raises(FormulaError, match="np.cumsum"):
        evaluate("np.cumsum(x)", b)


@pytest.mark.parametrize("expr", [
    "e + (1 + t) * (a + b + c) + 0.0 * t", "-(a + b) / c", "(a > 0) + a * 2", "z + a + z",
    "(a + 1) * t", "2 ** (a + b)", "(a + b) - (c + e)", "f + (f + 1)", "(i + i) / 2",
    "(a + b) * f", "(i + 1) - a"])
def test_arithmetic_reusing_its_own_results_gives_numpy_values_and_keeps_columns(expr):
    """Operators write into arrays the interpreter made, never into a column."""
    rng = np.random.default_rng(3)
    n = 40
    cols = {k: rng.normal(size=n) for k in "abce"}
    cols.update(t=rng.integers(0, 2, n), z=rng.random(n) < 0.5, i=rng.integers(-5, 5, n),
                f=rng.normal(size=n).astype(np.float32))
    before = {k: v.copy() for k, v in cols.items()}
    got = evaluate(expr, Batch(cols, sim=np.repeat([0, 1], n // 2), n_sims=2))
    plain = {k: v.astype(np.int64) if v.dtype == bool else v for k, v in cols.items()}
    want = eval(expr, {}, plain)  # noqa: S307 -- the reference: numpy on the same columns
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    for k, v in cols.items():
        np.testing.assert_array_equal(v, before[k])
        assert v.dtype == before[k].dtype


@pytest.mark.parametrize("expr", [
    "mean(x)", "sum(x)", "sd(x)", "var(x)", "median(x)", "min(x)", "max(x)",
    "mean(x[g == 1])", "sum(x[g == 2])", "mean(c(1, 2, 4))", "max(x * g)", "n()",
    "mean(x, na_rm=TRUE)"])
def test_a_reduction_per_simulation_equals_the_value_on_its_rows(batch, expr):
    """A top-level reduction gives its per-simulation value directly, as the rows would."""
    direct = evaluate(expr, batch, per_sim=True)
    via_rows = evaluate(f"({expr}) * 1", batch, per_sim=True)   # not a top-level call
    assert direct.dtype == via_rows.dtype == np.float64
    np.testing.assert_array_equal(direct, via_rows)
    assert np.isnan(direct[1])                                    # the empty simulation
