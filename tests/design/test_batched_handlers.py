"""Estimator handlers run once on a stand-in for the batch: the same rows as one by one."""

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import declaredesign as dd
from declaredesign.batch import Batch
from declaredesign.design import batched_handlers
from declaredesign.design.steps import estimator as estimator_module
from declaredesign.estimate.protocol import fit_per_simulation
from tests.design.handler_spy import record_batched_runs
from tests.designs.randomized_response import randomized_response_design

BASE = (dd.declare_model(N=40, u="rnorm(N)", x="rbinom(N, 1, 0.5)", k="rbinom(N, 5, 0.3)")
        + dd.declare_potential_outcomes("Y ~ 0.3 * Z + u")
        + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
        + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"), B="x == 1"))


def _simulate(design, monkeypatch, enabled):
    monkeypatch.setattr(batched_handlers, "ENABLED", enabled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dd.simulate_design(design, sims=25, seed=11, backend="serial", progress=False)


def _batched_calls(monkeypatch):
    """Record whether each handler estimator ran batched (True) or one by one."""
    return record_batched_runs(monkeypatch, estimator_module, "fit_handler_batched")


def _check(handler, monkeypatch, batched, **kwargs):
    design = BASE + dd.declare_estimator(handler=handler, label="h", **kwargs)
    one_by_one = _simulate(design, monkeypatch, False)
    calls = _batched_calls(monkeypatch)
    at_once = _simulate(design, monkeypatch, True)
    assert calls and all(c is batched for c in calls)
    pd.testing.assert_frame_equal(at_once, one_by_one, check_exact=True)
    return at_once


SUPPORTED = {
    "mean": lambda data: pd.DataFrame({"estimate": [data["Y"].mean()]}),
    "randomized_response": lambda data: pd.DataFrame(
        {"estimate": [(data["Y"].mean() - 0.6) / (1 - 0.6)]}),
    "subgroup_difference": lambda data: pd.DataFrame(
        {"estimate": [data["Y"][data["Z"] == 1].mean() - data["Y"][data["Z"] == 0].mean()]}),
    "frame_mask": lambda data: pd.DataFrame(
        {"estimate": [data[(data["Z"] == 1) & data["B"]]["Y"].mean()],
         "term": ["Z"]}),
    "attribute_and_ints": lambda data: pd.DataFrame(
        {"estimate": [(data.k * 2 + 1).mean(), data.k.sum() / 3.0, data["B"].sum() * 1.5],
         "term": ["a", "b", "c"], "inquiry": ["q1", "q2", "q3"]}),
    "python_sum_of_means": lambda data: pd.DataFrame(
        {"estimate": [sum(data["Y"].mean() * (i + 1) for i in range(9))]}),
    "bools_and_logic": lambda data: pd.DataFrame(
        {"estimate": [(~data["B"] | (data["u"] > 0)).mean(), -abs(data["u"].sum())]}),
    "broadcast_mean": lambda data: pd.DataFrame(
        {"estimate": [((data["Y"] - data["Y"].mean()) * (data["Y"] - data["Y"].mean())).mean()],
         "std_error": [0.5], "estimator": ["own label"]}),
    "per_sim_sum": lambda data: pd.DataFrame({"n_treated": [data["Z"].sum()],
                                              "estimate": [data["Z"].mean()]}),
    "constant": lambda data: pd.DataFrame({"estimate": [0.5], "posterior.H": [0.25]}),
    "keyword": lambda data, shift: pd.DataFrame({"estimate": [data["Y"].mean() + shift]}),
    # scipy.stats.ks_2samp reaches its batched twin (design/handler_twins.py)
    "scipy_twin": lambda data: pd.DataFrame({"estimate": [stats.ks_2samp(
        data["Y"][data["Z"] == 1], data["Y"][data["Z"] == 0]).pvalue]}),
}


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_supported_handlers_run_batched_with_the_same_rows(name, monkeypatch):
    kwargs = {"shift": 2.0} if name == "keyword" else {}
    out = _check(SUPPORTED[name], monkeypatch, True, **kwargs)
    assert out["estimate"].notna().any()


def _ks(data):
    t = stats.ks_2samp(data["Y"][data["Z"] == 1], data["Y"][data["Z"] == 0])
    return pd.DataFrame({"statistic": [t.statistic], "p_value": [t.pvalue]})


def _swallows(data):
    try:
        if data["Y"].mean() > 0:   # a truth value: refused, and the refusal is caught
            value = 1.0
        else:
            value = 0.0
    except Exception:  # noqa: BLE001
        value = -1.0
    return pd.DataFrame({"estimate": [value]})


UNSUPPORTED = {
    "len": lambda data: pd.DataFrame({"estimate": [len(data)]}),
    "to_numpy": lambda data: pd.DataFrame({"estimate": [data["Y"].to_numpy().mean()]}),
    "ufunc": lambda data: pd.DataFrame({"estimate": [np.sqrt(data["Y"].mean() ** 2)]}),
    "float": lambda data: pd.DataFrame({"estimate": [float(data["Y"].mean())]}),
    "branch": lambda data: pd.DataFrame({"estimate": [1.0 if data["Y"].mean() > 0 else 0.0]}),
    "caught_refusal": _swallows,
    "scipy_helper": lambda data: _ks(data),   # a helper keeps its own globals
    "std": lambda data: pd.DataFrame({"estimate": [data["Y"].std()]}),
    "per_row_rows": lambda data: pd.DataFrame({"estimate": data["Y"]}),
    "misaligned": lambda data: pd.DataFrame(
        {"estimate": [(data["Y"][data["Z"] == 1] - data["Y"][data["Z"] == 0]).mean()]}),
    "copy": lambda data: data.copy().assign(estimate=1.0)[["estimate"]].head(1),
    "model_attribute": lambda data: pd.DataFrame(
        {"estimate": [dd.difference_in_means("Y ~ Z", data=data).estimate]}),
    "values": lambda data: pd.DataFrame({"estimate": [data["Y"].values.mean()]}),
    "shape": lambda data: pd.DataFrame({"estimate": [data["Y"].sum() / data.shape[0]]}),
    "caught_attribute": lambda data: pd.DataFrame(
        {"estimate": [getattr(data["Y"].mean(), "item", lambda: 0.0)()]}),
    "id_column": lambda data: pd.DataFrame({"estimate": [(data["ID"] == "01").mean()]}),
    "library_sum_of_means": lambda data: pd.DataFrame({"estimate": [pd.Series(
        [data["Y"].mean() * (i + 1) for i in range(9)], dtype=object).sum()]}),
    "numpy_mean_of_means": lambda data: pd.DataFrame({"estimate": [np.array(
        [data["Y"].mean(), data["u"].mean()], dtype=object).mean()]}),
    "integer_arithmetic": lambda data: pd.DataFrame({"estimate": [data["k"].sum() * 3]}),
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_operations_fall_back_to_one_by_one(name, monkeypatch):
    _check(UNSUPPORTED[name], monkeypatch, False)


def test_rng_handlers_and_stateful_handlers_are_not_batched(monkeypatch):
    _check(lambda data, rng: pd.DataFrame({"estimate": [data["Y"].mean() + rng.normal()]}),
           monkeypatch, False)
    counter = itertools.count()
    b = Batch({"Y": np.arange(12.0)}, sim=np.repeat(np.arange(6), 2), n_sims=6)

    def stateful(data):
        return pd.DataFrame({"estimate": [float(next(counter))]})
    assert batched_handlers.fit_handler_batched(stateful, b, handler=stateful) is None


def test_errors_and_warnings_keep_the_per_simulation_contract(monkeypatch):
    def fails_sometimes(data):
        if data["Y"].to_numpy()[0] > 0:
            raise ValueError("positive first row")
        return pd.DataFrame({"estimate": [data["Y"].mean()]})

    def warns(data):
        warnings.warn("careful", UserWarning, stacklevel=1)
        return pd.DataFrame({"estimate": [data["Y"].mean()]})

    def divides_by_zero(data):
        return pd.DataFrame({"estimate": [data["Y"].mean() / (data["Z"].mean() * 0.0)]})

    def missing_estimate(data):
        return pd.DataFrame({"estimate": [data["Y"].mean() * np.nan, data["Y"].mean()]})

    out = _check(fails_sometimes, monkeypatch, False)
    assert out["error"].str.contains("ValueError: positive first row").any()
    assert out["error"].isna().any()
    out = _check(warns, monkeypatch, False)
    assert (out["warning"] == "careful").all()
    out = _check(divides_by_zero, monkeypatch, False)
    assert out["warning"].str.contains("divide by zero").all()
    out = _check(missing_estimate, monkeypatch, True, term=True)
    assert out["warning"].str.contains("1 coefficient").all()


def test_stand_in_means_and_sums_equal_pandas_bit_for_bit():
    rng = np.random.default_rng(5)
    sizes = rng.integers(40, 300, size=40)
    sim = np.repeat(np.arange(40), sizes)
    values = {"f": rng.normal(size=len(sim)) * 10.0 ** rng.integers(-3, 6, size=len(sim)),
              "i": rng.integers(-10 ** 6, 10 ** 6, size=len(sim)),
              "b": rng.random(len(sim)) < 0.3}
    batch = Batch(values, sim=sim, n_sims=40)
    for name in values:
        def handler(data, name=name):
            return pd.DataFrame({"estimate": [data[name].mean()], "total": [data[name].sum()],
                                 "sub": [data[name][data["b"]].mean()]})
        out = batched_handlers.fit_handler_batched(handler, batch, handler=handler)
        ref = fit_per_simulation(handler, batch, range(40))
        assert out is not None
        pd.testing.assert_frame_equal(out, ref, check_exact=True)


def test_the_randomized_response_port_runs_its_handlers_batched(monkeypatch):
    calls = _batched_calls(monkeypatch)
    at_once = _simulate(randomized_response_design, monkeypatch, True)
    assert calls == [True, True]
    calls.clear()
    one_by_one = _simulate(randomized_response_design, monkeypatch, False)
    pd.testing.assert_frame_equal(at_once, one_by_one, check_exact=True)


def test_the_per_simulation_wrapper_of_the_handler_is_batched_with_it():
    # the estimator step may post-process each handler result (say, an NA term as R);
    # the batched call goes through the same function
    b = Batch({"Y": np.arange(30.0), "Z": np.tile([0, 1], 15)},
              sim=np.repeat(np.arange(5), 6), n_sims=5)

    def handler(data):
        return pd.DataFrame({"estimate": [data["Y"][data["Z"] == 1].mean()]})

    def fit(data):
        return handler(data).assign(term=None)
    out = batched_handlers.fit_handler_batched(fit, b, handler=handler)
    assert out is not None
    assert out["term"].isna().all()
    pd.testing.assert_frame_equal(out, fit_per_simulation(fit, b, range(5)), check_exact=True)


def test_a_returned_messages_column_is_a_column_not_fit_messages():
    # a fit's ``messages`` become warnings; a returned DataFrame's columns are its rows
    b = Batch({"Y": np.arange(6.0)}, sim=np.repeat(np.arange(3), 2), n_sims=3)

    def fit(data):
        return pd.DataFrame({"estimate": [data["Y"].mean()], "messages": ["note"]})
    out = fit_per_simulation(fit, b, range(3))
    assert out["warning"].isna().all()
    assert (out["messages"] == "note").all()
    pd.testing.assert_frame_equal(batched_handlers.fit_handler_batched(fit, b, handler=fit),
                                  out, check_exact=True)
