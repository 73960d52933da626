"""model_frame: R's column names, term order, NA handling and errors."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.errors import DeclarationError, FormulaError
from declaredesign.estimate import lm_robust, model_frame
from declaredesign.estimate.model_frame import formula_variables


@pytest.fixture
def data():
    return pd.DataFrame({
        "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        "x": [1.0, 2.0, 3.0, np.nan, 5.0, 6.0, 7.0],
        "g": ["a", "b", "c", "a", "b", "c", "d"],
        "z": [0, 1, 0, 1, 0, 1, 1],
        "b": [True, False, True, True, False, False, True],
        "cl": ["k1", "k1", None, "k2", "k2", "k3", "k3"],
    })


def test_r_column_names_and_order(data):
    mf = model_frame("y ~ x:z + g + x + b", data)
    assert mf.columns == ["(Intercept)", "gb", "gc", "gd", "x", "bTRUE", "x:z"]
    assert mf.has_intercept
    assert mf.outcome == ["y"]
    assert mf.term_columns["g"] == ["gb", "gc", "gd"]


def test_interaction_with_factor_without_main_effect(data):
    mf = model_frame("y ~ x + g:z", data)
    assert mf.columns[2:] == ["ga:z", "gb:z", "gc:z", "gd:z"]


def test_no_intercept(data):
    for f in ("y ~ 0 + x", "y ~ x - 1"):
        mf = model_frame(f, data)
        assert mf.columns == ["x"] and not mf.has_intercept


def test_incomplete_rows_dropped_and_levels_refreshed(data):
    mf = model_frame("y ~ x + g", data, extra_columns=["cl"])
    assert mf.mask.tolist() == [True, True, False, False, True, True, True]
    assert mf.n == 5
    np.testing.assert_array_equal(mf.y, [1.0, 2.0, 5.0, 6.0, 7.0])
    # level "a" only survives in row 0, "c" in row 5; all four levels still present
    assert mf.columns == ["(Intercept)", "x", "gb", "gc", "gd"]
    sub = data.iloc[[1, 4, 5, 6]]
    assert model_frame("y ~ g", sub).columns == ["(Intercept)", "gc", "gd"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_transform_nan_rows_are_dropped(data):
    d = data.assign(x=[1.0, -2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    mf = model_frame("y ~ np.log(x)", d)
    assert mf.mask.tolist() == [True, False, True, True, True, True, True]


def test_design_matrix_values(data):
    mf = model_frame("y ~ x + z + x:z", data)
    keep = data[data["x"].notna()]
    np.testing.assert_array_equal(mf.X[:, 3], keep["x"] * keep["z"])


def test_unknown_column_names_formula_and_column(data):
    with pytest.raises(FormulaError, match=r"'nope'.*y ~ x \+ nope|y ~ x \+ nope.*'nope'"):
        model_frame("y ~ x + nope", data)
    with pytest.raises(DeclarationError):
        model_frame("y ~ x + nope", data)


def test_bad_formula():
    with pytest.raises(FormulaError):
        model_frame("y ~ x +", {"y": [1.0], "x": [1.0]})
    with pytest.raises(FormulaError):
        model_frame("no tilde", {"y": [1.0]})


def test_formula_variables():
    assert formula_variables("y ~ x + np.log(z) + I(w ** 2)") == (["y"], ["w", "x", "z"])


# --------------------------------------------------------------- R's formula language
_FL = Path(__file__).resolve().parents[1] / "fixtures" / "formula_language"
_FL_FIX = json.loads((_FL / "formula_fits.json").read_text())


def _fl_data() -> pd.DataFrame:
    d = pd.read_csv(_FL / "formula_data.csv")
    # R's factor level order for g ("c", "b", "a"): the first category is the baseline
    d["g"] = pd.Categorical(d["g"], categories=_FL_FIX["g_levels"])
    return d


@pytest.mark.parametrize("fit", _FL_FIX["fits"], ids=[f["formula"] for f in _FL_FIX["fits"]])
def test_r_formula_language_matches_lm_robust(fit):
    tidy = lm_robust(fit["formula"], _fl_data()).tidy()
    terms = fit["term"] if isinstance(fit["term"], list) else [fit["term"]]
    assert list(tidy["term"]) == terms
    np.testing.assert_allclose(tidy["estimate"], np.atleast_1d(fit["estimate"]), rtol=1e-9)
    np.testing.assert_allclose(tidy["std_error"], np.atleast_1d(fit["std.error"]), rtol=1e-8)


def test_single_level_factor_is_rs_contrasts_error():
    msg = _FL_FIX["errors"][0]["error"]
    with pytest.raises(FormulaError, match=re.escape(msg)):
        model_frame("Y ~ factor(one)", _fl_data().assign(one=1))
    with pytest.raises(FormulaError, match=re.escape(msg)):
        model_frame("Y ~ g", _fl_data().assign(g="a"))


def test_empty_right_hand_side_is_a_formula_error():
    with pytest.raises(FormulaError, match="no right-hand side"):
        model_frame("Y ~", _fl_data())
    with pytest.raises(FormulaError, match="no right-hand side"):
        model_frame("Y ~  ", _fl_data())


def test_center_and_scale_values(data):
    d = _fl_data()
    mf = model_frame("Y ~ center(X) + scale(W)", d)
    assert mf.columns == ["(Intercept)", "center(X)", "scale(W)"]
    np.testing.assert_allclose(mf.X[:, 1], d["X"] - d["X"].mean())
    np.testing.assert_allclose(mf.X[:, 2], (d["W"] - d["W"].mean()) / d["W"].std(ddof=1))


def test_categorical_order_survives_missing_rows_and_subsets():
    d = _fl_data()
    d.loc[0, "Y"] = np.nan
    mf = model_frame("Y ~ g", d)
    assert mf.columns == ["(Intercept)", "gb", "ga"]
    mf = model_frame("Y ~ g", d[d["g"] != "c"])
    assert mf.columns == ["(Intercept)", "ga"]   # unused "c" dropped, "b" the baseline


def test_python_spellings_still_read():
    d = _fl_data()
    mf = model_frame("Y ~ np.log(X) + I(X ** 2) + C(Z)", d)
    assert mf.columns == ["(Intercept)", "np.log(X)", "I(X^2)", "factor(Z)1"]
    np.testing.assert_allclose(mf.X[:, 2], d["X"] ** 2)


@pytest.mark.parametrize("formula", ["Y ~ poly(X, 2) + Z", "Y ~ scale(W) * Z",
                                     "Y ~ center(X) + poly(W, 2, raw=True)"])
def test_stacked_simulations_transform_within_each(formula):
    # a batched kernel stacks simulations: data-dependent transforms are per simulation
    d = _fl_data()
    sim = np.repeat([0, 1, 2, 3], 10)
    d.loc[3, "Y"] = np.nan
    stacked = model_frame(formula, d, groups=sim)
    for s in range(4):
        own = model_frame(formula, d[sim == s])
        np.testing.assert_allclose(stacked.X[sim[stacked.mask] == s], own.X, rtol=1e-12,
                                   atol=1e-14)
        assert own.columns == stacked.columns


def test_r_poly_matches_formulaic_and_r_signs():
    from declaredesign.estimate.model_frame import r_poly
    d = _fl_data()
    ours = model_frame("Y ~ poly(X, 3)", d).X[:, 1:]
    np.testing.assert_allclose(np.column_stack(list(r_poly(d["X"].to_numpy(), 3).values())),
                               ours, rtol=1e-10, atol=1e-13)


#: The module (``declaredesign.estimate.model_frame`` the attribute is the function).
MODEL_FRAME_MODULE = importlib.import_module("declaredesign.estimate.model_frame")
INTERACTION_FORMULAS = ["y ~ a * b", "y ~ a * b * c", "y ~ a:b", "y ~ 0 + a:b + c",
                        "y ~ a + b + a:b - 1", "y ~ b:a + a:c:b", "y ~ a * i", "y ~ i:j + a",
                        "y ~ a*b*c - a:b:c"]


@pytest.mark.parametrize("formula", INTERACTION_FORMULAS)
def test_numeric_interactions_skip_formulaic_with_the_same_frame(formula, monkeypatch):
    mf_module = MODEL_FRAME_MODULE
    rng = np.random.default_rng(3)
    n = 60
    data = {"y": rng.normal(size=n), "a": rng.normal(size=n) * 3.7, "b": rng.normal(size=n),
            "c": rng.uniform(-1, 1, size=n), "i": rng.integers(-5, 5, size=n),
            "j": rng.integers(0, 3, size=n)}
    data["y"][[3, 17]] = np.nan
    df = pd.DataFrame(data)
    assert mf_module._fast_path(mf_module.formulaic_formula(formula), data) is not None
    fast = mf_module.model_frame(formula, data)
    fit_fast = lm_robust(formula, df).tidy()
    monkeypatch.setattr(mf_module, "_fast_path", lambda f, arrays: None)
    general = mf_module.model_frame(formula, data)
    assert fast.columns == general.columns
    assert fast.term_columns == general.term_columns
    assert fast.has_intercept == general.has_intercept
    np.testing.assert_array_equal(fast.X, general.X)
    np.testing.assert_array_equal(fast.y, general.y)
    np.testing.assert_array_equal(fast.mask, general.mask)
    pd.testing.assert_frame_equal(fit_fast, lm_robust(formula, df).tidy(), check_exact=True)


POLY_FORMULAS = ["y ~ poly(a, 4) * b", "y ~ b:poly(a, 2)", "y ~ poly(a,2) + i",
                 "y ~ poly(a, 3) * b * c", "y ~ 0 + poly(a, 2):b", "y ~ i:poly(c, 1) + a",
                 "y ~ poly(a, 2) + poly(c, 3):j"]


def _poly_data(n: int, seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = {"y": rng.normal(size=n), "a": rng.normal(size=n) * 3.7,
            "b": (rng.uniform(size=n) > 0.5).astype(np.int64), "c": rng.uniform(-1, 1, size=n),
            "i": rng.integers(-5, 5, size=n), "j": rng.integers(0, 3, size=n)}
    data["y"][[3, 17]] = np.nan
    return data


def _assert_same_frame(fast, general):
    assert fast.columns == general.columns
    assert fast.term_columns == general.term_columns
    assert fast.has_intercept == general.has_intercept
    np.testing.assert_array_equal(fast.X, general.X)   # bit for bit
    np.testing.assert_array_equal(fast.y, general.y)
    np.testing.assert_array_equal(fast.mask, general.mask)


@pytest.mark.parametrize("formula", POLY_FORMULAS)
def test_poly_terms_skip_formulaic_with_the_same_frame(formula, monkeypatch):
    # one data set (r_poly) and a stacked batch (poly within each simulation, sizes
    # equal and unequal): the fast frame is the general path's, bit for bit
    mf_module = MODEL_FRAME_MODULE
    data = _poly_data(240)
    df = pd.DataFrame(data)
    assert mf_module._fast_path(mf_module.formulaic_formula(formula), data) is not None
    equal = np.repeat(np.arange(4), 60)
    unequal = np.repeat(np.arange(5), [30, 70, 60, 40, 40])
    fast = [mf_module.model_frame(formula, data, groups=g) for g in (None, equal, unequal)]
    fit_fast = lm_robust(formula, df).tidy()
    monkeypatch.setattr(mf_module, "_fast_path", lambda f, arrays: None)
    general = [mf_module.model_frame(formula, data, groups=g) for g in (None, equal, unequal)]
    for a, b in zip(fast, general):
        _assert_same_frame(a, b)
    pd.testing.assert_frame_equal(fit_fast, lm_robust(formula, df).tidy(), check_exact=True)


@pytest.mark.parametrize("formula", ["y ~ poly(a, 2):poly(c, 2)", "y ~ poly(a, degree=2)",
                                     "y ~ poly(a, 2, raw=TRUE)", "y ~ poly(a)",
                                     "y ~ poly(a + c, 2)", "y ~ poly(a, 2.0)"])
def test_poly_terms_the_fast_path_does_not_build(formula):
    mf_module = MODEL_FRAME_MODULE
    f = mf_module.formulaic_formula(formula)
    assert mf_module._fast_path(f, _poly_data(20)) is None


def test_poly_the_fast_frame_leaves_to_the_general_path(monkeypatch):
    # a simulation with no more rows than the degree, a constant x (NaN columns, rows
    # dropped): the general path decides, and the frame is the same as without fast path
    mf_module = MODEL_FRAME_MODULE
    data = _poly_data(40)
    data["a"][30:] = 1.0
    cases = [("y ~ poly(a, 2) * b", np.repeat([0, 1], [38, 2]), ),
             ("y ~ poly(a, 2) * b", np.repeat([0, 1], [30, 10]))]
    for formula, groups in cases:
        def frame(formula=formula, groups=groups):
            try:
                return mf_module.model_frame(formula, data, groups=groups)
            except Exception as e:   # noqa: BLE001 -- the same error either way
                return type(e), str(e)
        fast = frame()
        with monkeypatch.context() as m:
            m.setattr(mf_module, "_fast_path", lambda f, arrays: None)
            general = frame()
        if isinstance(general, tuple):
            assert fast == general
        else:
            _assert_same_frame(fast, general)


def test_interactions_of_huge_or_missing_values_take_the_general_path():
    mf_module = MODEL_FRAME_MODULE
    f = mf_module.formulaic_formula("y ~ a * b")
    y = np.zeros(3)
    assert mf_module._fast_path(f, {"y": y, "a": np.array([1e200, 1.0, 0.0]),
                                    "b": np.array([1e200, 0.0, 1.0])}) is None
    assert mf_module._fast_path(f, {"y": y, "a": np.array([np.nan, 1.0, 0.0]),
                                    "b": np.ones(3)}) is None


def test_grouped_r_poly_is_r_poly_within_each_group_bit_for_bit():
    # groups of equal and unequal sizes, rows interleaved: the stacked QR gives each group
    # exactly what r_poly gives it alone (a batched fit equals the standalone fits)
    from declaredesign.estimate.model_frame import grouped_r_poly, r_poly
    rng = np.random.default_rng(3)
    sizes = [40, 40, 7, 40, 12, 7, 5]
    codes = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    x = rng.uniform(size=len(codes))
    for degree, raw in [(1, False), (4, False), (3, True)]:
        stacked = grouped_r_poly(x, codes, degree, raw)
        for g in range(len(sizes)):
            rows = np.flatnonzero(codes == g)
            for key, values in r_poly(x[rows], degree, raw).items():
                assert np.array_equal(stacked[key][rows], values)


@pytest.mark.parametrize("block_rows", [1, 100, 10 ** 9])
def test_grouped_r_poly_of_equal_groups_in_blocks_is_r_poly_bit_for_bit(block_rows,
                                                                        monkeypatch):
    # groups of one size in order go through stacked QRs a block of groups at a time
    from declaredesign.estimate.model_frame import grouped_r_poly, r_poly
    monkeypatch.setattr(MODEL_FRAME_MODULE, "POLY_BLOCK_ROWS", block_rows)
    rng = np.random.default_rng(8)
    codes = np.repeat(np.arange(13), 30)
    x = rng.uniform(-0.5, 0.5, size=len(codes))
    stacked = grouped_r_poly(x, codes, 4)
    for g in range(13):
        rows = np.flatnonzero(codes == g)
        for key, values in r_poly(x[rows], 4).items():
            assert np.array_equal(stacked[key][rows], values)
