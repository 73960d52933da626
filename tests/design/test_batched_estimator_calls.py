"""Registered estimators called inside a handler on the stand-in: the kernel, checked exact.

A handler estimator such as DesignLibrary's multi-arm one calls ``dd.difference_in_means``
on its data. Given the stand-in (``BatchedFrame``), the public function hands the call
to the stand-in (``protocol.BATCHED_FIT``), which fits every simulation with the
estimator's kernel; the rows must be exactly the per-simulation run's, and anything not
provably the same (a kernel not bit-identical to the standalone fit, a declined
simulation, an invalid argument) runs the simulations one at a time.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.batch import Batch
from declaredesign.design import batched_handlers
from declaredesign.design.steps import estimator as estimator_module
from declaredesign.errors import DeclarationError, EstimationError
from declaredesign.estimate import protocol
from declaredesign.estimate.batch_frame import decline, simulations
from tests.design.handler_spy import record_batched_runs
from tests.designs import multi_arm

BASE = (dd.declare_model(N=60, u="rnorm(N)", X="rnorm(N)", blk="rep(1:6, each=10)",
                         cl="rep(1:20, each=3)", p="runif(N, 0.2, 0.8)")
        + dd.declare_potential_outcomes("Y ~ 0.3 * Z + u")
        + dd.declare_assignment(Z=dd.complete_ra(prob=0.5),
                                Zc=dd.cluster_ra(clusters="cl", prob=0.5))
        + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z")))


def _simulate(design, monkeypatch, enabled, sims=25):
    monkeypatch.setattr(batched_handlers, "ENABLED", enabled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dd.simulate_design(design, sims=sims, seed=11, backend="serial",
                                  progress=False)


def _check(design, monkeypatch, batched, sims=25):
    """Simulate one by one and batched: the same rows; ``batched`` says which path ran."""
    one_by_one = _simulate(design, monkeypatch, False, sims)
    calls = record_batched_runs(monkeypatch, estimator_module, "fit_handler_batched")
    at_once = _simulate(design, monkeypatch, True, sims)
    assert calls and all(c is batched for c in calls)
    pd.testing.assert_frame_equal(at_once, one_by_one, check_exact=True)
    return at_once


def _handler_design(handler):
    return BASE + dd.declare_estimator(handler=handler, label="h")


# ------------------------------------------------------------------ multi-arm design
def test_multi_arm_estimates_run_batched_with_the_per_simulation_rows(monkeypatch):
    out = _check(multi_arm.multi_arm_design, monkeypatch, True, sims=30)
    assert out["estimator"].unique().tolist() == ["DIM (Z_2 - Z_1)", "DIM (Z_3 - Z_1)",
                                                  "DIM (Z_3 - Z_2)"]
    assert out["inquiry"].unique().tolist() == ["ate_Y_2_1", "ate_Y_3_1", "ate_Y_3_2"]
    assert out["estimate"].notna().all() and out["error"].isna().all()


def test_multi_arm_diagnosis_is_unchanged(monkeypatch):
    def diagnose(enabled):
        monkeypatch.setattr(batched_handlers, "ENABLED", enabled)
        return dd.diagnose_design(multi_arm.multi_arm_design, sims=40, bootstrap_sims=20,
                                  seed=3, backend="serial").tidy()
    pd.testing.assert_frame_equal(diagnose(True), diagnose(False), check_exact=True)


def test_the_stand_in_tidy_is_the_standalone_tidy_in_every_simulation():
    b = Batch({"Y": np.arange(24.0) ** 1.5 % 7, "Z": np.tile(np.array(["1", "2", "3"]), 8)},
              sim=np.repeat(np.arange(4), 6), n_sims=4)
    run = batched_handlers._Run(b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = dd.difference_in_means("Y ~ Z", data=batched_handlers._frame(run, b),
                                     condition1="1", condition2="3")
        tidy = fit.tidy()
    assert not run.refused
    per_sim = [dd.difference_in_means("Y ~ Z", data=df, condition1="1",
                                      condition2="3").tidy() for df in b.split()]
    ref = per_sim[0]
    assert tidy.columns.tolist() == ref.columns.tolist()
    assert tidy.index.equals(ref.index)
    for name in ref.columns:
        cell = tidy[name].iloc[0]
        if isinstance(cell, batched_handlers.PerSim):
            assert tidy[name].dtype == object
            np.testing.assert_array_equal(cell._values, [f[name].iloc[0] for f in per_sim])
        else:      # the same in every simulation: the standalone column itself
            pd.testing.assert_series_equal(tidy[name], ref[name])
    with pytest.raises(batched_handlers._Refused):
        getattr(fit, "coefficients")      # noqa: B009 -- only tidy() is done
    assert run.refused


# ------------------------------------------- difference_in_means and lm_robust calls
def _in_two_steps(data, estimator, **kwargs):
    kept = data[(data["X"] > -1) & (data["u"] < 1)]
    kept = kept[kept["p"] > 0.3]
    return estimator("Y ~ Z", data=kept, **kwargs).tidy()


#: handler -> whether it runs batched. The simple difference in means computes as its
#: kernel does (bit for bit); the other kernels (blocks, weights, lm_robust's
#: regressions) agree with the standalone fits to rounding only, so the check of the
#: first simulation refuses them and the simulations run one at a time, unchanged.
ESTIMATOR_CALLS = {
    "dim": (lambda d: dd.difference_in_means("Y ~ Z", data=d).tidy(), True),
    "dim_mask": (lambda d: dd.difference_in_means("Y ~ Z", data=d[d["X"] > 0]).tidy(), True),
    "dim_two_masks": (lambda d: _in_two_steps(d, dd.difference_in_means), True),
    "dim_subset": (lambda d: dd.difference_in_means("Y ~ Z", data=d, subset="X > 0").tidy(),
                   True),
    "dim_blocks": (lambda d: dd.difference_in_means("Y ~ Z", data=d, blocks="blk").tidy(),
                   False),
    "dim_blocks_series": (lambda d: dd.difference_in_means(
        "Y ~ Z", data=d, blocks=d["blk"]).tidy(), False),
    "dim_clusters": (lambda d: dd.difference_in_means(
        "Y ~ Zc", data=d, clusters="cl").tidy(), False),
    "dim_weights_series": (lambda d: dd.difference_in_means(
        "Y ~ Z", data=d, weights=1 / d["p"]).tidy(), False),
    "lm_robust": (lambda d: dd.lm_robust("Y ~ Z + X", data=d).tidy(), False),
    "lm_robust_mask": (lambda d: dd.lm_robust("Y ~ Z", data=d[d["X"] > 0]).tidy(), False),
    "lm_robust_weights": (lambda d: dd.lm_robust("Y ~ Z", data=d, weights="p").tidy(),
                          False),
    "lm_robust_weights_series": (lambda d: dd.lm_robust(
        "Y ~ Z", data=d, weights=1 / d["p"]).tidy(), False),
    "lm_robust_clusters_series": (lambda d: dd.lm_robust(
        "Y ~ Zc", data=d, clusters=d["cl"]).tidy(), False),
    "lm_lin": (lambda d: dd.lm_lin("Y ~ Z", covariates="~ X", data=d).tidy(), False),
    "horvitz_thompson": (lambda d: dd.horvitz_thompson(
        "Y ~ Z", data=d, condition_prs=0.5).tidy(), False),
    "lmer": (lambda d: dd.lmer("Y ~ Z + (1 | blk)", data=d).tidy(effects="fixed"), False),
    # refused: a vector for an argument that takes none, a list, a fit attribute
    "dim_subset_vector": (lambda d: dd.difference_in_means(
        "Y ~ Z", data=d, subset=d["X"] > 0).tidy(), False),
    "lm_robust_list": (lambda d: dd.lm_robust("Y ~ Z", data=d, fixed_effects=["blk"]).tidy(),
                       False),
    "dim_attribute": (lambda d: pd.DataFrame(
        {"estimate": [dd.difference_in_means("Y ~ Z", data=d).estimate]}), False),
}


@pytest.mark.parametrize("name", sorted(ESTIMATOR_CALLS))
def test_estimator_calls_on_the_stand_in_give_the_per_simulation_rows(name, monkeypatch):
    handler, batched = ESTIMATOR_CALLS[name]
    out = _check(_handler_design(handler), monkeypatch, batched)
    assert out["estimate"].notna().any()


def test_tidy_rows_mixed_with_constant_rows(monkeypatch):
    def handler(data):
        fit = dd.difference_in_means("Y ~ Z", data=data)
        rows = pd.concat([fit.tidy()[["term", "estimate", "df"]],
                          pd.DataFrame({"term": ["prior"], "estimate": [0.25], "df": [3]})])
        return rows.set_index("term", drop=False)
    out = _check(_handler_design(handler), monkeypatch, True)
    assert out["df"].dtype == np.float64
    assert (out.loc[out["term"] == "prior", "estimate"] == 0.25).all()


def _dim_then(step):
    """A handler applying a pandas operation to two difference-in-means tidy rows."""
    def handler(data):
        tidy = dd.difference_in_means("Y ~ Z", data=data).tidy()
        return step(pd.concat([tidy, tidy.assign(term="again")], ignore_index=True))
    return handler


#: pandas on tidy frames holding per-simulation cells -> whether the batched run is used.
#: pandas never computes with the cells: arithmetic, comparisons, hashing, truth values
#: and conversions are refused; operations that only move cells are done; ``round`` and
#: ``numeric_only`` skip object columns (which pandas decides by dtype, the same in every
#: simulation), so the check of the first and last simulations sees the difference.
PANDAS_ON_TIDY = {
    "move_cells": (lambda t: t.melt(id_vars="term", value_vars=["estimate"]).rename(
        columns={"value": "estimate"}).drop(columns="variable"), True),
    "dropna_and_equal": (lambda t: t[(t == t).all(axis=1)].dropna(), True),
    "sum": (lambda t: t[["estimate"]].sum().to_frame("estimate"), False),
    "arithmetic": (lambda t: t.assign(z=t["estimate"] / t["std_error"]), False),
    "sort": (lambda t: t.sort_values("estimate"), False),
    "round": (lambda t: t.round(3), False),
    "numeric_only_mean": (lambda t: t.mean(numeric_only=True).to_frame("estimate").T, False),
    "groupby": (lambda t: t.groupby("outcome")[["estimate"]].sum(), False),
    "own_arithmetic": (lambda t: t.assign(
        z=[t["estimate"].iloc[0] / t["std_error"].iloc[0]] * 2), True),
}


@pytest.mark.parametrize("name", sorted(PANDAS_ON_TIDY))
def test_pandas_on_per_simulation_cells(name, monkeypatch):
    step, batched = PANDAS_ON_TIDY[name]
    _check(_handler_design(_dim_then(step)), monkeypatch, batched)


# --------------------------------------------------- fallbacks and argument errors
def _error(design, monkeypatch, enabled):
    with pytest.raises(Exception) as info:    # noqa: PT011 -- compared below
        _simulate(design, monkeypatch, enabled)
    return type(info.value), str(info.value)


def test_an_argument_error_fails_as_one_by_one(monkeypatch):
    design = _handler_design(
        lambda d: dd.difference_in_means("Y ~ Z", data=d, alpha=2).tidy())
    error = _error(design, monkeypatch, True)
    assert error == _error(design, monkeypatch, False)
    assert "DeclarationError: difference_in_means(alpha=2)" in error[1]


def test_a_caught_argument_error_runs_one_by_one(monkeypatch):
    def handler(data):
        try:
            return dd.difference_in_means("Y ~ Z", data=data, blocks="nope").tidy()
        except (DeclarationError, EstimationError, KeyError):
            return pd.DataFrame({"estimate": [data["Y"].mean()]})
    _check(_handler_design(handler), monkeypatch, False)


# ---------------------------------- a user's estimator with a bit-exact kernel
@dataclass(frozen=True)
class _MeanSpec:
    formula: str
    weights: str | None = None
    min_rows: int = 2

    @classmethod
    def parse(cls, formula, weights=None, min_rows=2):
        if not isinstance(min_rows, int) or min_rows < 1:
            raise DeclarationError(f"weighted_mean(min_rows={min_rows!r}): min_rows must be "
                                   "a positive integer.")
        return cls(formula, weights, min_rows)

    @property
    def outcome(self):
        return self.formula.split("~")[0].strip()


@dataclass
class _MeanFit:
    estimate: float
    n: int
    outcome: str

    def tidy(self):
        return pd.DataFrame({"term": ["mean"], "estimate": [self.estimate], "N": [self.n],
                             "outcome": [self.outcome]})


def _weighted_means(codes, n_groups, y, w):
    # bincount sums in row order: one group (the standalone fit) or one per simulation
    # (the kernel) give the same numbers to the last bit
    return (np.bincount(codes, weights=y * w, minlength=n_groups)
            / np.bincount(codes, weights=w, minlength=n_groups))


def _fit_mean(spec, df):
    y = df[spec.outcome].to_numpy(dtype=float)
    if len(y) < spec.min_rows:
        raise EstimationError(f"weighted_mean: fewer than {spec.min_rows} rows")
    w = df[spec.weights].to_numpy(dtype=float) if spec.weights else np.ones(len(y))
    est = _weighted_means(np.zeros(len(y), dtype=np.intp), 1, y, w)[0]
    return _MeanFit(float(est), len(y), spec.outcome)


def _mean_kernel(batch, spec):
    y = np.asarray(batch[spec.outcome], dtype=float)
    w = np.asarray(batch[spec.weights], dtype=float) if spec.weights else np.ones(len(y))
    sims = simulations(batch, batch.sim)
    est = _weighted_means(sims.codes, batch.n_sims, y, w)
    n = sims.count().astype(np.int64)
    ok = n >= spec.min_rows
    keep = np.flatnonzero(ok)
    none = np.full(len(keep), None, dtype=object)
    tidy = pd.DataFrame({"sim": keep, "term": "mean", "estimate": est[keep], "N": n[keep],
                         "outcome": spec.outcome, "error": none, "warning": none})
    return decline(tidy, ok)


@protocol.register_estimator(parse=_MeanSpec.parse, fit=_fit_mean, kernel=_mean_kernel)
def weighted_mean(formula, data, weights=None, min_rows=2):
    """Weighted mean of the outcome (a test estimator whose kernel is bit-exact)."""
    data, vec = dd.estimate.arguments.bind_vectors("weighted_mean", data, weights=weights)
    return _fit_mean(_MeanSpec.parse(formula, vec["weights"], min_rows), data)


def _masked_weights(kept):
    return weighted_mean("Y ~ 1", data=kept, weights=kept["p"] * 2).tidy()


USER_CALLS = {
    "column": lambda d: weighted_mean("Y ~ 1", data=d, weights="p").tidy(),
    "series": lambda d: weighted_mean("Y ~ 1", d, 1 / d["p"]).tidy(),
    "masked_series": lambda d: _masked_weights(d[d["X"] > 0]),
    "no_weights": lambda d: weighted_mean("Y ~ 1", data=d[d["Z"] == 1]).tidy(),
    # an int column of per-simulation counts beside a constant row: int64, as pandas
    "constant_row": lambda d: pd.concat(
        [weighted_mean("Y ~ 1", data=d[d["X"] > 0]).tidy(),
         pd.DataFrame({"term": ["prior"], "estimate": [0.0], "N": [0], "outcome": ["Y"]})],
        ignore_index=True),
}


@pytest.mark.parametrize("name", sorted(USER_CALLS))
def test_a_registered_user_estimator_runs_batched(name, monkeypatch):
    out = _check(_handler_design(USER_CALLS[name]), monkeypatch, True)
    assert out["N"].dtype == np.int64


def test_weights_of_other_rows_are_refused(monkeypatch):
    # per simulation: a length error; on the stand-in: refused before any fit
    design = _handler_design(
        lambda d: weighted_mean("Y ~ 1", data=d[d["X"] > 0], weights=d["p"]).tidy())
    error = _error(design, monkeypatch, True)
    assert error == _error(design, monkeypatch, False)
    assert "one value per row of the data" in error[1]


def test_a_simulation_the_kernel_declines_runs_every_simulation_one_by_one(monkeypatch):
    # about 30 rows with X > 0: some simulations have fewer than 28 and fail alone
    design = _handler_design(
        lambda d: weighted_mean("Y ~ 1", data=d[d["X"] > 0], min_rows=28).tidy())
    out = _check(design, monkeypatch, False)
    assert 0 < out["error"].notna().sum() < len(out)


# ------------------------------------------------------------------ the public entry
def test_public_entries_are_the_functions_for_data_frames():
    est = protocol.get_estimator(dd.lm_robust)
    assert est.function is dd.lm_robust and dd.lm_robust.__wrapped__ is not dd.lm_robust
    assert pickle.loads(pickle.dumps(dd.difference_in_means)) is dd.difference_in_means
    assert dd.difference_in_means.__module__ == "declaredesign.estimate.difference_in_means"
    df = pd.DataFrame({"Y": [1.0, 2.0, 4.0, 3.0], "Z": [0, 1, 0, 1]})
    assert dd.difference_in_means("Y ~ Z", df).estimate == 0.0
    with pytest.raises(TypeError):
        dd.difference_in_means("Y ~ Z", df, nonsense=1)


def test_the_entry_passes_every_argument_by_name():
    seen = {}

    class StandIn:
        def __dd_batched_fit__(self, estimator, arguments):
            seen.update(estimator=estimator.name, **arguments)
            return "fitted"

    assert dd.lm_lin("Y ~ Z", "~ X", StandIn(), weights="w") == "fitted"
    assert seen["estimator"] == "lm_lin" and seen["covariates"] == "~ X"
    assert seen["weights"] == "w" and seen["alpha"] == 0.05 and "data" not in seen


def test_functions_without_data_or_code_are_registered_as_they_are():
    def no_data(formula, frame):
        return frame

    class Callable:
        def __call__(self, formula, data):
            return data

    instance = Callable()
    assert protocol.public_entry(no_data, lambda: None) is no_data
    assert protocol.public_entry(instance, lambda: None) is instance
