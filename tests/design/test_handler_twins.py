"""Handlers calling scipy.stats.ks_2samp run once on the stand-in, through its batched twin."""

import functools
import types
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy
import scipy.stats
from scipy import stats
from scipy.stats import ks_2samp

import declaredesign as dd
from declaredesign.batch import Batch
from declaredesign.design import batched_handlers, handler_twins
from declaredesign.design.handler_twins import TwinRefused, register_twin, twin_enabled
from declaredesign.design.steps import data as data_module
from declaredesign.design.steps import estimator as estimator_module
from declaredesign.estimate.protocol import fit_per_simulation
from tests.design.handler_spy import record_batched_runs
from tests.designs.ks_test import ks_test_design, ks_test_diagnosands

ORIGINAL = stats.ks_2samp


def _batch(n_sims=60, seed=3, low=2, high=40, decimals=1):
    """Samples with ties (rounded values) and group sizes varying by simulation."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(low, high, size=n_sims)
    sim = np.repeat(np.arange(n_sims), sizes)
    z = np.concatenate([rng.permutation(np.arange(s) < rng.integers(1, s)) for s in sizes])
    y = np.round(rng.normal(size=len(sim)) * (1 + z), decimals)
    return Batch({"Y": y, "Z": z.astype(np.int64)}, sim=sim, n_sims=n_sims)


def _same_as_one_by_one(handler, batch, batched=True):
    out = batched_handlers.fit_handler_batched(handler, batch, handler=handler)
    ref = fit_per_simulation(handler, batch, range(batch.n_sims))
    if not batched:
        assert out is None
        return ref
    assert out is not None
    pd.testing.assert_frame_equal(out, ref, check_exact=True)
    return out


def _frame(statistic, pvalue):
    return pd.DataFrame({"statistic": [statistic], "p_value": [pvalue]})


def from_scipy_import_stats(data):
    t = stats.ks_2samp(data["Y"][data["Z"] == 1], data["Y"][data["Z"] == 0])
    return _frame(t.statistic, t.pvalue)


def import_scipy_stats(data):
    t = scipy.stats.ks_2samp(data2=data["Y"][data["Z"] == 0], data1=data["Y"][data["Z"] == 1])
    return _frame(t.statistic, t.pvalue)


def from_scipy_stats_import(data):
    statistic, pvalue = ks_2samp(data["Y"][data["Z"] == 1], data["Y"][data["Z"] == 0])
    return _frame(statistic, pvalue)


def positional_options(data, alternative, method):
    t = stats.ks_2samp(data["Y"][data["Z"] == 1], data["Y"][data["Z"] == 0], alternative,
                       method)
    return _frame(t[0], t[-1])


def in_a_comprehension(data):
    # code nested in the handler is built in the copy's globals: twinned too
    t = [stats.ks_2samp(data["Y"][data["Z"] == k], data["Y"][data["Z"] != k]) for k in (1,)]
    return _frame(t[0].statistic, t[0].pvalue)


@pytest.mark.parametrize("handler", [from_scipy_import_stats, import_scipy_stats,
                                     from_scipy_stats_import, in_a_comprehension])
def test_ks_2samp_twin_is_bit_identical_in_every_import_style(handler):
    batch = _batch()
    out = _same_as_one_by_one(handler, batch)
    assert out["statistic"].nunique() < batch.n_sims      # representatives were reused
    assert stats.ks_2samp is ORIGINAL and scipy.stats.ks_2samp is ORIGINAL


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
@pytest.mark.parametrize("method", ["auto", "exact", "asymp"])
def test_ks_2samp_twin_alternatives_and_methods(alternative, method):
    handler = functools.partial(positional_options, alternative=alternative, method=method)
    batch = _batch(n_sims=40, seed=7, low=12)
    _same_as_one_by_one(handler, batch)
    # scipy warns in some simulations (its asymptotic formula divides by zero on tiny
    # samples): those rows carry the warning, so the simulations run one at a time
    small = _batch(n_sims=40, seed=7)
    warned = fit_per_simulation(handler, small, range(40))["warning"].notna().any()
    _same_as_one_by_one(handler, small, batched=not warned)


def test_ks_2samp_twin_on_ties_equal_sizes_and_larger_samples():
    # many ties across the two samples (one decimal of a narrow normal) ...
    _same_as_one_by_one(from_scipy_import_stats, _batch(n_sims=30, seed=1, decimals=0))
    # ... equal group sizes (scipy's n1 == n2 branches) and samples in the hundreds
    rng = np.random.default_rng(2)
    sim = np.repeat(np.arange(12), 600)
    z = np.tile(np.arange(600) % 2, 12)
    b = Batch({"Y": rng.normal(size=len(sim)) + 0.1 * z, "Z": z}, sim=sim, n_sims=12)
    _same_as_one_by_one(from_scipy_import_stats, b)
    # above 10,000 rows a sample, method='auto' is asymptotic (no rounding of d)
    sim = np.repeat(np.arange(3), 20_011)
    z = (rng.random(len(sim)) < 0.5).astype(np.int64)
    b = Batch({"Y": np.round(rng.normal(size=len(sim)), 2), "Z": z}, sim=sim, n_sims=3)
    _same_as_one_by_one(from_scipy_import_stats, b)


def test_a_distance_other_than_scipys_is_refused(monkeypatch):
    # the representatives' statistics check the batched distance: a wrong one refuses
    inner = handler_twins._ks_distance
    monkeypatch.setattr(handler_twins, "_ks_distance",
                        lambda *args: inner(*args) * 0.5)
    _same_as_one_by_one(from_scipy_import_stats, _batch(n_sims=10), batched=False)


def test_the_ks_test_design_diagnosis_is_unchanged_and_batched(monkeypatch):
    calls = record_batched_runs(monkeypatch, estimator_module, "fit_handler_batched")
    out = {}
    for enabled in (False, True):
        monkeypatch.setattr(batched_handlers, "ENABLED", enabled)
        out[enabled] = dd.diagnose_design(ks_test_design, diagnosands=ks_test_diagnosands,
                                          sims=200, bootstrap_sims=20, seed=5,
                                          progress=False)
    assert calls and calls[-1] is True
    pd.testing.assert_frame_equal(out[True].simulations, out[False].simulations,
                                  check_exact=True)
    pd.testing.assert_frame_equal(out[True].diagnosands, out[False].diagnosands,
                                  check_exact=True)


def _unsupported(call):
    def handler(data):
        return _frame(*call(data["Y"][data["Z"] == 1], data["Y"][data["Z"] == 0]))
    return handler


UNSUPPORTED = {
    "nan_policy": _unsupported(lambda a, b: stats.ks_2samp(a, b, nan_policy="omit")),
    "axis": _unsupported(lambda a, b: stats.ks_2samp(a, b, axis=0)),
    "abbreviated_alternative": _unsupported(lambda a, b: stats.ks_2samp(a, b, "two")),
    "location": _unsupported(lambda a, b: (stats.ks_2samp(a, b).statistic_location, 0.0)),
    "array_and_stand_in": _unsupported(lambda a, b: stats.ks_2samp(a, np.arange(3.0))),
    "one_sample": _unsupported(lambda a, b: stats.kstest(a, b)),
    "mode": _unsupported(lambda a, b: stats.ks_2samp(a, b, mode="asymp")),
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_uses_fall_back_with_the_same_results(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # scipy's own deprecation of mode=
        out = _same_as_one_by_one(UNSUPPORTED[name], _batch(n_sims=8), batched=False)
    assert len(out) == 8


def test_missing_values_and_empty_groups_fall_back():
    b = _batch(n_sims=6)
    y = b.columns["Y"].copy()
    y[3] = np.nan
    with_nan = Batch({"Y": y, "Z": b.columns["Z"]}, sim=b.sim, n_sims=6)
    out = _same_as_one_by_one(from_scipy_import_stats, with_nan, batched=False)
    assert out["p_value"].isna().any()
    z = b.columns["Z"].copy()
    z[b.sim == 2] = 1
    empty = Batch({"Y": b.columns["Y"], "Z": z}, sim=b.sim, n_sims=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = _same_as_one_by_one(from_scipy_import_stats, empty, batched=False)
    assert np.isnan(out["p_value"].iloc[2]) and out["p_value"].notna().sum() == 5


def test_design_with_an_unsupported_argument_falls_back(monkeypatch):
    def handler(data):
        t = stats.ks_2samp(data["Y"][data["Z"] == 1], data["Y"][data["Z"] == 0],
                           nan_policy="omit")
        return _frame(t.statistic, t.pvalue)
    design = dd.replace_step(ks_test_design, "ks-test",
                             dd.declare_test(handler=handler, label="ks-test"))
    calls = record_batched_runs(monkeypatch, estimator_module, "fit_handler_batched")
    at_once = dd.simulate_design(design, sims=20, seed=2, progress=False)
    assert calls == [False]
    ref = dd.simulate_design(ks_test_design, sims=20, seed=2, progress=False)
    pd.testing.assert_frame_equal(at_once, ref, check_exact=True)


#: Written by a handler below (a handler writing a global is never copied).
COUNTER = 0


def writes_a_global(data):
    global COUNTER
    COUNTER += 1
    t = stats.ks_2samp(data["Y"][data["Z"] == 1], data["Y"][data["Z"] == 0])
    return _frame(t.statistic, t.pvalue)


def test_a_handler_writing_a_global_is_not_copied_and_falls_back():
    assert twin_enabled(writes_a_global) is None
    _same_as_one_by_one(writes_a_global, _batch(n_sims=5), batched=False)


def _bump():
    global COUNTER
    COUNTER += 1


def reads_a_global_a_helper_changes(data):
    _bump()
    t = stats.ks_2samp(data["Y"][data["Z"] == 1], data["Y"][data["Z"] == 0])
    return _frame(t.statistic + COUNTER * 0.0, t.pvalue)


def sets_a_module_attribute(data):
    stats.twin_test_flag = True
    return from_scipy_import_stats(data)


def test_the_copy_refuses_changed_globals_and_writes_to_modules():
    df = _batch(n_sims=1).split()[0]
    copy = twin_enabled(reads_a_global_a_helper_changes)
    with pytest.raises(TwinRefused):
        copy(df)
    copy = twin_enabled(sets_a_module_attribute)
    with pytest.raises(TwinRefused):
        copy(df)
    assert not hasattr(scipy.stats, "twin_test_flag")
    _same_as_one_by_one(reads_a_global_a_helper_changes, _batch(n_sims=5), batched=False)


def test_the_copy_leaves_scipy_untouched_and_calls_it_on_real_data():
    before = dict(vars(scipy.stats)), dict(vars(scipy))
    copy = twin_enabled(import_scipy_stats)
    assert copy is not None and copy is not import_scipy_stats
    assert copy.__globals__ is not import_scipy_stats.__globals__
    df = _batch(n_sims=1).split()[0]
    pd.testing.assert_frame_equal(copy(df), import_scipy_stats(df), check_exact=True)
    _same_as_one_by_one(import_scipy_stats, _batch(n_sims=5))
    after = dict(vars(scipy.stats)), dict(vars(scipy))
    for b, a in zip(before, after):
        assert a.keys() == b.keys() and all(a[k] is b[k] for k in b)
    assert import_scipy_stats.__globals__["scipy"] is scipy
    assert globals()["ks_2samp"] is ORIGINAL


def test_handlers_without_registered_calls_are_not_copied():
    assert twin_enabled(lambda data: data["Y"].mean()) is None
    assert twin_enabled(len) is None


def test_a_data_step_handler_reaches_the_twin(monkeypatch):
    def keep_above_statistic(data):
        t = stats.ks_2samp(data["Y"][data["Z"] == 1], data["Y"][data["Z"] == 0])
        return data[data["Y"] > t.statistic]
    design = (dd.declare_model(N=60, Y="rnorm(N)")
              + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
              + dd.declare_sampling(handler=keep_above_statistic)
              + dd.declare_estimator("Y ~ Z", label="dim", model=dd.difference_in_means))
    calls = record_batched_runs(monkeypatch, data_module, "run_data_handler_batched")
    at_once = dd.simulate_design(design, sims=30, seed=4, progress=False)
    assert calls[-1] is True     # (a first check of the design runs one simulation)
    monkeypatch.setattr(batched_handlers, "ENABLED", False)
    one_by_one = dd.simulate_design(design, sims=30, seed=4, progress=False)
    pd.testing.assert_frame_equal(at_once, one_by_one, check_exact=True)


def test_register_twin_adds_a_twin(monkeypatch):
    monkeypatch.setattr(handler_twins, "_REGISTRY", dict(handler_twins._REGISTRY))
    monkeypatch.setattr(handler_twins, "_MODULES", set(handler_twins._MODULES))
    module = types.ModuleType("twin_test_module")

    def spread(values):
        return float(np.max(values) - np.min(values))
    module.spread = spread
    spread.__module__ = "twin_test_module"

    def spread_twin(values):
        run, v, sizes = values._twin_samples()
        starts = np.cumsum(sizes) - sizes
        return values._twin_per_sim(np.maximum.reduceat(v, starts)
                                    - np.minimum.reduceat(v, starts))
    register_twin(spread, spread_twin)

    namespace = {"module": module, "pd": pd}    # the handler's module globals
    exec("def handler(data):\n"
         "    return pd.DataFrame({'estimate': [module.spread(data['Y'])]})", namespace)
    handler = namespace["handler"]
    _same_as_one_by_one(handler, _batch(n_sims=10))
    assert module.spread is spread


def catches_errors(data):
    try:
        t = stats.ks_2samp(data["Y"][data["Z"] == 1], data["Y"][data["Z"] == 0])
    except Exception:  # noqa: BLE001
        return _frame(0.0, 1.0)
    return _frame(t.statistic, t.pvalue)


def test_a_failing_twin_refuses_even_when_the_handler_catches_it(monkeypatch):
    def broken(*args):
        raise IndexError("a bug in the twin")
    monkeypatch.setattr(handler_twins, "_ks_distance", broken)
    b = _batch(n_sims=6)
    # refused in the one call itself, not only by the check of the first and last sims
    assert batched_handlers._call_once(catches_errors, b, catches_errors) is None
    out = _same_as_one_by_one(catches_errors, b, batched=False)
    assert (out["statistic"] > 0).all()
