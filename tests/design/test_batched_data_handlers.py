"""Data-step handlers that keep rows by a mask run once for all simulations, exactly."""

import warnings

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.design import batched_handlers
from declaredesign.design.steps import data as data_module
from tests.design.handler_spy import record_batched_runs

MODEL = (dd.declare_model(N=120, X="runif(N, -1, 1)", u="rnorm(N)", k="rbinom(N, 5, 0.3)",
                          B="X > 0.2")
         + dd.declare_potential_outcomes("Y ~ 0.3 * Z + u")
         + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
         + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z")))


def _batch(sims=30, seed=3):
    """The model's simulations as one batch (draw every step but the last's handler)."""
    rng = np.random.default_rng(seed)
    batch = None
    for step in MODEL.steps:
        batch = step.run(batch, rng, sims)
    return batch


def _spy(monkeypatch):
    return record_batched_runs(monkeypatch, data_module, "run_data_handler_batched")


def _same_batch(a, b):
    assert a.n_sims == b.n_sims and a.names == b.names
    np.testing.assert_array_equal(a.sim, b.sim)
    assert a.id_columns == b.id_columns
    for name in a.names:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name], strict=True)
    pd.testing.assert_frame_equal(a.to_pandas(), b.to_pandas(), check_exact=True)


def _check(step, monkeypatch, batched, sims=30):
    batch = _batch(sims)
    monkeypatch.setattr(batched_handlers, "ENABLED", False)
    one_by_one = step.run(batch, np.random.default_rng(0), batch.n_sims)
    monkeypatch.setattr(batched_handlers, "ENABLED", True)
    calls = _spy(monkeypatch)
    at_once = step.run(batch, np.random.default_rng(0), batch.n_sims)
    assert calls == [batched]
    _same_batch(at_once, one_by_one)
    return at_once


MASKS = {
    "window": lambda data: data[(data["X"] > 0 - abs(0.5)) & (data["X"] < 0 + abs(0.5))],
    "above_mean": lambda data: data[data["X"] > data["X"].mean()],
    "centred": lambda data: data[(data["u"] - data["u"].mean()) * 2.0 < data["X"].sum() / 100],
    "bool_column": lambda data: data[data["B"]],
    "negated": lambda data: data[~data["B"] | (data["k"] >= 2)],
    "attribute": lambda data: data[data.Z == 1],
    "twice": lambda data: (lambda sub: sub[sub["X"] < sub["X"].mean()])(data[data["X"] > -0.8]),
    "mask_of_subset_mean": lambda data: data[data["Y"] > data["Y"][data["Z"] == 1].mean()],
    "identity": lambda data: data,
    "keyword": lambda data, cut: data[data["X"] < cut],
}


@pytest.mark.parametrize("name", sorted(MASKS))
@pytest.mark.parametrize("declare", [dd.declare_sampling, dd.declare_step,
                                     dd.declare_reveal])
def test_masks_run_batched_with_the_per_simulation_rows(name, declare, monkeypatch):
    kwargs = {"cut": 0.25} if name == "keyword" else {}
    if declare is dd.declare_step:
        step = declare(MASKS[name], **kwargs)
    else:
        step = declare(handler=MASKS[name], **kwargs)
    out = _check(step.steps[0] if hasattr(step, "steps") else step, monkeypatch, True)
    assert "ID" not in out.id_columns      # as the per-simulation run: zero-padded strings
    assert out["ID"].dtype == object


UNSUPPORTED = {
    "sample": lambda data: data.sample(frac=0.5, random_state=1),
    "head": lambda data: data.head(5),
    "iloc": lambda data: data.iloc[:10],
    "loc": lambda data: data.loc[data["X"] > 0],
    "len": lambda data: data[data["X"] > 0] if len(data) > 5 else data,
    "new_frame": lambda data: pd.DataFrame({"X": data["X"], "Y": data["Y"]}),
    "columns": lambda data: data[["X", "Y"]],
    "assign": lambda data: data.assign(W=data["X"] * 2),
    "setitem": lambda data: data.__setitem__("W", 1.0) or data,
    "branch": lambda data: data[data["X"] > 0] if data["X"].mean() > 0 else data,
    "id_column": lambda data: data[data["ID"] != "001"],
    "query": lambda data: data.query("X > 0"),
    "empty_simulation": lambda data: data[data["X"] > 5.0],
    "numpy_mask": lambda data: data[np.asarray(data["X"]) > 0],
    "other_selection_mask": lambda data: data[data["X"] > -0.8][
        data["X"][data["X"] > -0.8] < 0.8],
    "std": lambda data: data[data["X"] > data["X"].std()],
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_handlers_fall_back_to_one_by_one(name, monkeypatch):
    _check(dd.declare_sampling(handler=UNSUPPORTED[name]), monkeypatch, False)


def test_rng_handlers_and_warnings_are_not_batched(monkeypatch):
    _check(dd.declare_sampling(handler=lambda data, rng: data[data["X"] > rng.normal()]),
           monkeypatch, False)

    def warns(data):
        warnings.warn("careful", UserWarning, stacklevel=1)
        return data[data["X"] > 0]
    with pytest.warns(UserWarning, match="careful"):
        _check(dd.declare_sampling(handler=warns), monkeypatch, False)


def test_a_handler_that_differs_from_its_stand_in_run_is_caught_by_the_spot_check(monkeypatch):
    def sneaky(data):
        if isinstance(data, batched_handlers.BatchedFrame):
            return data[data["X"] > 0]
        return data[data["X"] > 0.1]
    _check(dd.declare_sampling(handler=sneaky), monkeypatch, False)


def test_designs_with_a_sampling_handler_simulate_the_same(monkeypatch):
    design = (MODEL + dd.declare_sampling(handler=lambda data: data[data["X"] > data["X"].mean()])
              + dd.declare_inquiry(ATE="mean(Y_Z_1 - Y_Z_0)")
              + dd.declare_estimator("Y ~ Z", model=dd.lm_robust, clusters="ID", inquiry="ATE"))
    runs = {}
    for enabled in (False, True):
        monkeypatch.setattr(batched_handlers, "ENABLED", enabled)
        runs[enabled] = dd.simulate_design(design, sims=40, seed=9, backend="serial",
                                           progress=False)
    pd.testing.assert_frame_equal(runs[True], runs[False], check_exact=True)


def test_a_batch_with_a_string_column_runs_one_by_one(monkeypatch):
    batch = _batch()
    batch = batch.with_columns(label=np.where(batch["X"] > 0, "hi", "lo").astype(object))
    step = dd.declare_sampling(handler=lambda data: data[data["X"] > 0])
    monkeypatch.setattr(batched_handlers, "ENABLED", True)
    assert batched_handlers.run_data_handler_batched(
        lambda df: step.handler(df), batch, handler=step.handler) is None
