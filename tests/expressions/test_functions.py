"""Every function of the expression language against its R meaning, on small data.

Expected values are what R returns for the same call (written out by hand from R's
definitions: ``sd`` with n - 1, ``quantile`` type 7, ``rank`` with average ties...).
Two simulations are stacked in each batch, so each check also shows that reductions
stay within their simulation.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from declaredesign import Batch
from declaredesign.errors import FormulaError
from declaredesign.expressions import FUNCTIONS, evaluate
from declaredesign.expressions.functions import NUMPY, NUMPY_CONSTANTS
from declaredesign.expressions.parser import NUMPY_NAMES


def two_sims(**cols) -> Batch:
    """The same column values in two simulations (rows stacked)."""
    data = {k: np.concatenate([np.asarray(v), np.asarray(v)]) for k, v in cols.items()}
    n = len(next(iter(cols.values())))
    return Batch(data, sim=np.repeat([0, 1], n), n_sims=2)


def first_sim(expr: str, b: Batch, rng=None) -> np.ndarray:
    out = evaluate(expr, b, rng)
    half = len(out) // 2
    np.testing.assert_array_equal(out[:half], out[half:])  # same data, same answer
    return out[:half]


X = [1.0, 2.0, 3.0, 4.0, 10.0]

# (expression, R's value on x = c(1, 2, 3, 4, 10), repeated on every row if scalar)
R_VALUES = [
    ("mean(x)", 4.0),
    ("sum(x)", 20.0),
    ("sd(x)", 3.5355339059327378),          # sd(c(1,2,3,4,10))
    ("var(x)", 12.5),
    ("median(x)", 3.0),
    ("quantile(x, 0.25)", 2.0),             # type 7: 1 + (5 - 1) * 0.25 = 2nd value
    ("quantile(x, 0.9)", 7.6),              # h = 3.6: 4 + 0.6 * (10 - 4)
    ("quantile(x, probs=0)", 1.0),
    ("quantile(x, 1)", 10.0),
    ("min(x)", 1.0),
    ("max(x)", 10.0),
    ("n()", 5),
    ("length(x)", 5),
    ("pmin(x, 3)", [1.0, 2.0, 3.0, 3.0, 3.0]),
    ("pmax(x, 3, 2.5)", [3.0, 3.0, 3.0, 4.0, 10.0]),
    ("abs(x - 3)", [2.0, 1.0, 0.0, 1.0, 7.0]),
    ("sqrt(x)", np.sqrt(X)),
    ("exp(x)", np.exp(X)),
    ("log(x)", np.log(X)),
    ("log(x, base=2)", np.log2(X)),
    ("log2(x)", np.log2(X)),
    ("log10(x)", np.log10(X)),
    ("log1p(x)", np.log1p(X)),
    ("expm1(x)", np.expm1(X)),
    ("round(x / 4)", [0.0, 0.0, 1.0, 1.0, 2.0]),     # R rounds halves to even: 0.5 -> 0
    ("round(x / 8, 1)", [0.1, 0.2, 0.4, 0.5, 1.2]),  # 0.125 -> 0.1, 0.375 -> 0.4
    ("floor(x / 3)", [0.0, 0.0, 1.0, 1.0, 3.0]),
    ("ceiling(x / 3)", [1.0, 1.0, 1.0, 2.0, 4.0]),
    ("trunc(-x / 3)", [-0.0, -0.0, -1.0, -1.0, -3.0]),
    ("sign(x - 3)", [-1.0, -1.0, 0.0, 1.0, 1.0]),
    ("ifelse(x > 2, 1, 0)", [0, 0, 1, 1, 1]),
    ("if_else(x > 2, 'hi', 'lo')", ["lo", "lo", "hi", "hi", "hi"]),
    ("scale(x)", (np.array(X) - 4.0) / 3.5355339059327378),
    ("scale(x, scale=FALSE)", np.array(X) - 4.0),
    ("cumsum(x)", [1.0, 3.0, 6.0, 10.0, 20.0]),
    ("rank(x)", [1.0, 2.0, 3.0, 4.0, 5.0]),
    ("x %in% c(2, 10)", [False, True, False, False, True]),
    ("isin(x, [2, 10])", [False, True, False, False, True]),
    ("x %% 3", [1.0, 2.0, 0.0, 1.0, 1.0]),
    ("-x %% 3", [2.0, 1.0, 0.0, 2.0, 2.0]),   # R: the sign of the divisor
    ("x %/% 3", [0.0, 0.0, 1.0, 1.0, 3.0]),
    ("pnorm(0)", 0.5),
    ("qnorm(0.975)", 1.959963984540054),
    ("plogis(0)", 0.5),
    ("qlogis(0.5)", 0.0),
    ("as.numeric(x > 3)", [0.0, 0.0, 0.0, 1.0, 1.0]),
    ("as.integer(x / 3)", [0, 0, 1, 1, 3]),
    ("as.logical(x - 1)", [False, True, True, True, True]),
    ("paste('id', x)", ["id 1", "id 2", "id 3", "id 4", "id 10"]),
    ("paste('id', x / 4)", ["id 0.25", "id 0.5", "id 0.75", "id 1", "id 2.5"]),
    ("paste0('g', x > 2)", ["gFALSE", "gFALSE", "gTRUE", "gTRUE", "gTRUE"]),
    ("as.character(x)", ["1", "2", "3", "4", "10"]),
    ("seq(2, 10, by=2)[c(1, 2, 3, 4, 5)[x / x]]", [2, 2, 2, 2, 2]),
    ("c(10, 20, 30, 40, 50)[rank(x)]", [10.0, 20.0, 30.0, 40.0, 50.0]),
    ("x %in% 2:4", [False, True, True, True, False]),
    ("sum(1:4)", 10.0),
    ("x %in% c(2L, 10L)", [False, True, False, False, True]),
    ("paste('a', 'b', sep='-')", "a-b"),
    ("rep(c(0, 1, 2, 3, 4))", [0, 1, 2, 3, 4]),
    ("rep(7, times=5)", [7, 7, 7, 7, 7]),
    ("rep(c(1, 2), length_out=N)", [1, 2, 1, 2, 1]),
    ("pi", np.pi),
    ("TRUE + TRUE", 2),
]


@pytest.mark.parametrize("expr,want", R_VALUES, ids=[e for e, _ in R_VALUES])
def test_function_matches_r(expr, want):
    got = first_sim(expr, two_sims(x=X))
    want = np.broadcast_to(np.asarray(want), got.shape)
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got.astype(float), want, rtol=1e-12, atol=1e-15)
    else:
        assert got.tolist() == want.tolist()


def test_ties_nan_and_na_rm_as_r():
    b = two_sims(x=[10.0, 20.0, 10.0, np.nan, 30.0])
    np.testing.assert_array_equal(first_sim("rank(x)", b), [1.5, 3.0, 1.5, np.nan, 4.0])
    assert np.isnan(first_sim("mean(x)", b)).all()
    assert first_sim("mean(x, na.rm=TRUE)", b)[0] == 17.5
    assert first_sim("median(x, na_rm=TRUE)", b)[0] == 15.0
    assert first_sim("quantile(x, 0.5, na.rm=TRUE)", b)[0] == 15.0
    assert np.isnan(first_sim("quantile(x, 0.5)", b)).all()
    assert first_sim("is.na(x)", b).tolist() == [False, False, False, True, False]
    assert first_sim("is_na(x)", b).tolist() == [False, False, False, True, False]
    got = first_sim("pmax(x, 15, na.rm=TRUE)", b)
    assert got.tolist() == [15.0, 20.0, 15.0, 15.0, 30.0]
    assert np.isnan(first_sim("pmax(x, 15)", b)[3])


def test_is_na_on_strings():
    b = two_sims(g=np.array(["a", None, "b"], dtype=object))
    assert first_sim("is.na(g)", b).tolist() == [False, True, False]


def test_reductions_with_a_logical_mask_stay_within_each_simulation():
    # Issue 10 item 1: a subgroup inquiry.
    b = Batch({"Y_Z_1": np.array([3.0, 5.0, 7.0, 1.0, 2.0, 9.0]),
               "Y_Z_0": np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]),
               "X": np.array([1, 0, 1, 1, 1, 0])},
              sim=np.array([0, 0, 0, 1, 1, 1]), n_sims=2)
    cate = evaluate("mean(Y_Z_1[X == 1] - Y_Z_0[X == 1])", b, per_sim=True)
    np.testing.assert_allclose(cate, [4.0, 1.5])
    assert evaluate("sum(Y_Z_1[X == 0])", b, per_sim=True).tolist() == [5.0, 9.0]
    assert evaluate("length(Y_Z_1[X == 1])", b, per_sim=True).tolist() == [2, 2]
    assert evaluate("n(Y_Z_1[X == 0])", b, per_sim=True).tolist() == [1, 1]
    np.testing.assert_allclose(evaluate("sd(Y_Z_1[X == 1])", b, per_sim=True),
                               [np.std([3.0, 7.0], ddof=1), np.std([1.0, 2.0], ddof=1)])
    assert evaluate("median(abs(Y_Z_1[X == 1]))", b, per_sim=True).tolist() == [5.0, 1.5]
    assert evaluate("mean(Y_Z_1[X == 1]) - mean(Y_Z_1)", b, per_sim=True).tolist() == \
        [0.0, -2.5]


def test_empty_mask_gives_r_values():
    b = two_sims(x=[1.0, 2.0], g=[0, 0])
    assert np.isnan(first_sim("mean(x[g == 1])", b)).all()   # R: NaN
    assert first_sim("sum(x[g == 1])", b).tolist() == [0.0, 0.0]
    assert first_sim("length(x[g == 1])", b).tolist() == [0, 0]


def test_masked_values_must_be_reduced_and_aligned():
    b = two_sims(x=[1.0, 2.0, 3.0], g=[0, 1, 1])
    with pytest.raises(FormulaError, match="does not reduce them"):
        evaluate("x[g == 1]", b)
    with pytest.raises(FormulaError, match="select different rows"):
        evaluate("mean(x[g == 1] - x[g == 0])", b)
    with pytest.raises(FormulaError, match="mask both"):
        evaluate("mean(x[g == 1] - x)", b)
    with pytest.raises(FormulaError, match="logical condition"):
        evaluate("mean(x[g])", b)


def test_arithmetic_on_logicals_is_integer_arithmetic():
    b = two_sims(x=[-1.0, 0.5, 2.0])
    assert first_sim("(x > 0) - (x > 1)", b).tolist() == [0, 1, 0]
    assert first_sim("(x > 0) + (x > 1)", b).tolist() == [0, 1, 2]
    assert first_sim("-(x > 0)", b).tolist() == [0, -1, -1]
    assert first_sim("sum(x > 0)", b).tolist() == [2.0] * 3
    assert first_sim("mean(x > 0)", b)[0] == pytest.approx(2 / 3)


def test_r_operators():
    b = two_sims(x=[1.0, 2.0, 3.0])
    assert first_sim("x^2 + 1", b).tolist() == [2.0, 5.0, 10.0]   # ^ is power, as R
    assert first_sim("-2^2", b).tolist() == [-4, -4, -4]          # R: -(2^2)
    assert first_sim("2^3^2", b).tolist() == [512] * 3            # right-associative
    assert first_sim("x > 1 & x < 3", b).tolist() == [False, True, False]
    assert first_sim("x < 2 | x > 2", b).tolist() == [True, False, True]
    assert first_sim("x < 2 || x > 2", b).tolist() == [True, False, True]
    assert first_sim("!(x > 1)", b).tolist() == [True, False, False]
    assert first_sim("!x > 1", b).tolist() == [True, False, False]  # R: !(x > 1)
    assert first_sim("x == 1 | x == 3 & x > 2", b).tolist() == [True, False, True]
    assert first_sim("1 < x < 3", b).tolist() == [False, True, False]
    assert first_sim("x in [1, 3]", b).tolist() == [True, False, True]
    assert first_sim("x not in [1, 3]", b).tolist() == [False, True, False]
    assert first_sim("2 if TRUE else 3", b).tolist() == [2, 2, 2]
    assert first_sim("10 if x > 1 else 0", b).tolist() == [0, 10, 10]


def test_within_simulation_transforms_use_each_simulation():
    b = Batch({"x": np.array([1.0, 2.0, 3.0, 10.0, 30.0])},
              sim=np.array([0, 0, 0, 1, 1]), n_sims=2)
    assert evaluate("cumsum(x)", b).tolist() == [1.0, 3.0, 6.0, 10.0, 40.0]
    assert evaluate("rank(-x)", b).tolist() == [3.0, 2.0, 1.0, 2.0, 1.0]
    np.testing.assert_allclose(evaluate("scale(x)", b),
                               [-1.0, 0.0, 1.0, -0.7071067811865476, 0.7071067811865476])
    assert evaluate("rep(c(0, 1), length_out=N)", b).tolist() == [0, 1, 0, 0, 1]


def test_rep_each_with_n():
    b = Batch({"x": np.zeros(10)}, sim=np.repeat([0, 1], [4, 6]), n_sims=2)
    assert evaluate("rep(c(0, 1), each=N / 2)", b).tolist() == \
        [0, 0, 1, 1, 0, 0, 0, 1, 1, 1]
    with pytest.raises(FormulaError, match="rep\\(\\) gives 6 values where the data has 4"):
        evaluate("rep(c(0, 1, 2), each=2)", b)


def test_quantile_refuses_several_probabilities_and_other_types():
    b = two_sims(x=X)
    with pytest.raises(FormulaError, match="one number in \\[0, 1\\]"):
        evaluate("quantile(x, c(0.1, 0.9))", b)
    with pytest.raises(FormulaError, match="type 7"):
        evaluate("quantile(x, 0.5, type=6)", b)


def test_random_helpers_draw_from_the_step_generator():
    b = Batch({"x": np.arange(8.0)}, sim=np.repeat([0, 1], 4), n_sims=2)
    a = evaluate("sample(x)", b, np.random.default_rng(3))
    assert a.tolist() != b["x"].tolist()
    assert sorted(a[:4]) == [0.0, 1.0, 2.0, 3.0] and sorted(a[4:]) == [4.0, 5.0, 6.0, 7.0]
    np.testing.assert_array_equal(a, evaluate("sample(x)", b, np.random.default_rng(3)))
    s = evaluate("sample(c('a', 'b'), N, replace=TRUE)", b, np.random.default_rng(1))
    assert set(s.tolist()) <= {"a", "b"}
    p = evaluate("sample(c(0, 1), N, replace=TRUE, prob=c(0, 1))", b,
                 np.random.default_rng(1))
    assert p.tolist() == [1] * 8
    perm = evaluate("sample(4)", b, np.random.default_rng(2))
    assert sorted(perm[:4]) == [1, 2, 3, 4] and sorted(perm[4:]) == [1, 2, 3, 4]
    perm5 = evaluate("sample(c(10, 20, 30, 40, 50), N)", b, np.random.default_rng(2))
    assert len(set(perm5[:4].tolist())) == 4
    with pytest.raises(FormulaError, match="size must be N"):
        evaluate("sample(x, 3)", b, np.random.default_rng(1))
    r = evaluate("rnorm(N, 5, 0) + runif(N, 1, 1) + rbinom(N, 1, 1)", b,
                 np.random.default_rng(0))
    assert r.tolist() == [7.0] * 8


def test_same_seed_same_draws_for_every_random_helper():
    b = Batch({"x": np.arange(6.0)}, sim=np.repeat([0, 1], 3), n_sims=2)
    for expr in ["rnorm(N)", "runif(N)", "rpois(N, 3)", "rbinom(N, 1, 0.5)", "rexp(N)",
                 "sample(x)", "sample(c(1, 2), N, replace=TRUE)", "normal(0, 1)"]:
        one = evaluate(expr, b, np.random.default_rng(11))
        two = evaluate(expr, b, np.random.default_rng(11))
        np.testing.assert_array_equal(one, two, err_msg=expr)


def test_numpy_spellings_are_the_listed_ones():
    assert NUMPY_NAMES == set(NUMPY) | set(NUMPY_CONSTANTS)
    b = two_sims(x=X)
    np.testing.assert_allclose(first_sim("np.std(x)", b), np.std(X))
    np.testing.assert_allclose(first_sim("np.var(x, ddof=1)", b), np.var(X, ddof=1))
    np.testing.assert_allclose(first_sim("np.square(x) + np.pi", b), np.square(X) + np.pi)
    with pytest.raises(FormulaError, match="must be called"):
        evaluate("mean", b)


def test_every_function_is_on_the_documentation_page():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "expressions.md").read_text()
    names = set(FUNCTIONS) | {f"np.{k}" for k in NUMPY}
    missing = sorted(n for n in names if f"`{n}" not in page)
    assert not missing, missing


def test_expression_layer_imports_nothing_above_it():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "declaredesign" / "expressions"
    allowed = {"errors", "_validation", "groups", "batch", ""}
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert (node.module or "").split(".")[0] in allowed, (path.name, node.module)
            if isinstance(node, ast.Import):
                for a in node.names:
                    assert not a.name.startswith("declaredesign"), (path.name, a.name)
            if isinstance(node, ast.FunctionDef):
                assert not any(isinstance(n, (ast.Import, ast.ImportFrom))
                               for n in ast.walk(node)), (path.name, node.name)


def test_adjacent_names_are_a_syntax_error_not_a_new_name():
    b = Batch({"xy": np.ones(2), "x": np.ones(2), "y": np.ones(2)}, sim=np.zeros(2, int),
              n_sims=1)
    with pytest.raises(FormulaError, match="not valid"):
        evaluate("x y", b)


def test_subgroup_inquiry_in_a_design_matches_a_per_dataset_computation():
    import declaredesign as dd

    design = (
        dd.declare_model(N=40, X=dd.bernoulli(0.5), U=dd.normal())
        + dd.declare_potential_outcomes("Y ~ (1 + X) * Z + U")
        + dd.declare_inquiry(cate="mean(Y_Z_1[X == 1] - Y_Z_0[X == 1])",
                             share="mean(X == 1)")
    )
    sims = dd.simulate_design(design, sims=5, seed=3)
    cate = sims[sims.inquiry == "cate"]["estimand"].to_numpy()
    np.testing.assert_allclose(cate, 2.0)
    data = dd.draw_data(design, seed=3)
    share = sims[sims.inquiry == "share"]["estimand"].to_numpy()
    assert 0 < share[0] < 1 and np.isclose(share[0], (data.X == 1).mean())


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.lists(st.tuples(st.floats(-1e3, 1e3), st.booleans()), max_size=7),
                min_size=1, max_size=4),
       st.sampled_from(["mean", "sum", "sd", "var", "median", "min", "max", "length"]))
def test_masked_reductions_match_pandas_per_simulation(sims, name):
    import pandas as pd

    sim = np.repeat(np.arange(len(sims)), [len(s) for s in sims])
    x = np.array([v for s in sims for v, _ in s], dtype=float)
    keep = np.array([k for s in sims for _, k in s], dtype=bool)
    b = Batch({"x": x, "k": keep}, sim=sim, n_sims=len(sims))
    got = evaluate(f"{name}(x[k])", b, per_sim=True)
    by = pd.Series(x[keep]).groupby(sim[keep])
    ref = {"mean": by.mean, "sum": by.sum, "sd": by.std, "var": by.var,
           "median": by.median, "min": by.min, "max": by.max, "length": by.size}[name]()
    for s in range(len(sims)):
        if not np.any(sim == s):
            assert np.isnan(got[s])
        elif s in ref.index:
            np.testing.assert_allclose(got[s], ref[s], rtol=1e-9, atol=1e-6)
        elif name in ("sum", "length"):
            assert got[s] == 0  # R: sum(numeric(0)) is 0
        elif name in ("mean", "sd", "var", "median"):
            assert np.isnan(got[s])


def test_caret_is_power_in_potential_outcomes():
    import declaredesign as dd

    design = (dd.declare_model(N=4, x=[1.0, 2.0, 3.0, 4.0])
              + dd.declare_potential_outcomes("Y ~ x^2 + Z"))
    data = dd.draw_data(design, seed=1)
    assert data["Y_Z_0"].tolist() == [1.0, 4.0, 9.0, 16.0]
    assert data["Y_Z_1"].tolist() == [2.0, 5.0, 10.0, 17.0]


def test_r_idioms_from_designlibrary():
    # Lines as DesignLibrary's designers write them (tests/fixtures/designlibrary).
    b = Batch({"type": np.array([1, 2, 3, 4, 3, 1]), "u": np.arange(6.0),
               "districts": np.array(["1", "2", "3", "1", "2", "3"], dtype=object)},
              sim=np.repeat([0, 1], 3), n_sims=2)
    rng = np.random.default_rng(4)
    labels = evaluate('c("Always", "Never", "Complier", "Defier")[type]', b)
    assert labels.tolist() == ["Always", "Never", "Complier", "Defier", "Complier", "Always"]
    assert evaluate("c(0.3, 0.5, 0.7)[as.numeric(districts)]", b).tolist() == \
        [0.3, 0.5, 0.7, 0.3, 0.5, 0.7]
    assert evaluate("(type == 1) + (type == 3) * 1", b).tolist() == [1, 0, 1, 0, 1, 1]
    t = evaluate("sample(1:4, N, replace = TRUE, prob = c(1/3, 1/3, 1/3, 0))", b, rng)
    assert set(t.tolist()) <= {1, 2, 3}
    y = evaluate("rnorm(n = N, mean = 0.5 * scale(u), sd = sqrt(1 - 0.5^2))", b, rng)
    assert y.shape == (6,)
    d = evaluate("draw_binary(prob = 0.5, N = N)", b, rng)
    assert set(d.tolist()) <= {0, 1}
    with pytest.raises(FormulaError, match="must be N"):
        evaluate("draw_binary(prob = 0.5, N = 2)", b, rng)
    q = evaluate("qnorm(seq(0, 1, length.out = 8))[2]", b)
    np.testing.assert_allclose(q, -1.0675705238781414)
    with pytest.raises(FormulaError, match="outside 1..2"):
        evaluate("c(1, 2)[type]", b)
