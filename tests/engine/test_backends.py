"""Backends change where chunks run, never the simulations."""

from __future__ import annotations

import builtins
import concurrent.futures as cf
import multiprocessing as mp

import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.engine import backends, runner
from declaredesign.errors import DeclarationError

from .designs import two_arm

SIMS, CHUNK = 60, 15  # four chunks


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return dd.simulate_design(two_arm(), sims=SIMS, seed=11, chunk_size=CHUNK, backend="serial")


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_processes_equal_serial_for_any_worker_count(reference, workers):
    # two_arm holds a lambda: forked workers inherit it, nothing is pickled.
    out = dd.simulate_design(two_arm(), sims=SIMS, seed=11, chunk_size=CHUNK,
                             backend="processes", workers=workers)
    pd.testing.assert_frame_equal(out, reference, check_exact=True)


def test_user_executors_equal_serial(reference):
    with cf.ThreadPoolExecutor(2) as ex:
        a = dd.simulate_design(two_arm(), sims=SIMS, seed=11, chunk_size=CHUNK, backend=ex)
    # A spawned pool shares no memory: the lambda travels by cloudpickle.
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
        b = dd.simulate_design(two_arm(), sims=SIMS, seed=11, chunk_size=CHUNK, backend=ex)
    pd.testing.assert_frame_equal(a, reference, check_exact=True)
    pd.testing.assert_frame_equal(b, reference, check_exact=True)


def test_dask_local_cluster_equals_serial(reference):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        a = dd.simulate_design(two_arm(), sims=SIMS, seed=11, chunk_size=CHUNK, backend=client)
        # "dask" finds the current client.
        b = dd.simulate_design(two_arm(), sims=SIMS, seed=11, chunk_size=CHUNK, backend="dask")
        with pytest.raises(DeclarationError, match=r"workers must be None when a Dask client"):
            dd.simulate_design(two_arm(), sims=5, backend="dask", workers=2)
    pd.testing.assert_frame_equal(a, reference, check_exact=True)
    pd.testing.assert_frame_equal(b, reference, check_exact=True)


@pytest.mark.slow
def test_dask_process_workers_equal_serial(reference):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        out = dd.simulate_design(two_arm(), sims=SIMS, seed=11, chunk_size=CHUNK,
                                 backend=client)
    pd.testing.assert_frame_equal(out, reference, check_exact=True)


def test_whole_chunks_are_a_prefix_of_longer_runs(reference):
    short = dd.simulate_design(two_arm(), sims=2 * CHUNK, seed=11, chunk_size=CHUNK)
    pd.testing.assert_frame_equal(short, reference.iloc[:len(short)], check_exact=True)


def test_several_designs_in_one_pool():
    designs = {"small": two_arm(n=20), "large": two_arm(n=60)}
    a = dd.simulate_design(designs, sims=30, seed=2, chunk_size=10, backend="serial")
    b = dd.simulate_design(designs, sims=30, seed=2, chunk_size=10, backend="processes",
                           workers=2)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a["design"].unique().tolist() == ["small", "large"]


def test_diagnose_design_takes_a_backend():
    a = dd.diagnose_design(two_arm(), sims=40, seed=4, chunk_size=10, bootstrap_sims=20)
    b = dd.diagnose_design(two_arm(), sims=40, seed=4, chunk_size=10, bootstrap_sims=20,
                           backend="processes", workers=2)
    pd.testing.assert_frame_equal(a.diagnosands, b.diagnosands, check_exact=True)
    assert a.n_sims_used == b.n_sims_used == 40


# ------------------------------------------------------------------ defaults
def test_default_is_processes_only_for_large_runs_on_several_cores(monkeypatch):
    monkeypatch.setattr(backends, "available_cores", lambda: 2)
    assert backends.resolve_backend(None, None, sims=5000, n_tasks=5).name == "processes"
    assert backends.resolve_backend(None, None, sims=4999, n_tasks=5).name == "serial"
    assert backends.resolve_backend(None, None, sims=9000, n_tasks=1).name == "serial"
    monkeypatch.setattr(backends, "available_cores", lambda: 1)
    assert backends.resolve_backend(None, None, sims=50_000, n_tasks=50).name == "serial"


# ------------------------------------------------------------------ progress
class _Bar:
    def __init__(self):
        self.updates: list[int] = []
        self.closed = False

    def update(self, n):
        self.updates.append(n)

    def close(self):
        self.closed = True


@pytest.mark.parametrize("backend", ["serial", "processes"])
def test_progress_advances_as_chunks_finish(monkeypatch, backend):
    bars = []

    def fake(progress, total, desc, initial=0):
        assert progress is True and total == SIMS and initial == 0
        bars.append(_Bar())
        return bars[-1]

    monkeypatch.setattr(runner, "_progress_bar", fake)
    dd.simulate_design(two_arm(), sims=SIMS, seed=1, chunk_size=CHUNK, backend=backend,
                       workers=None if backend == "serial" else 2, progress=True)
    assert sorted(bars[0].updates) == [CHUNK] * 4 and bars[0].closed


def test_progress_off_when_not_interactive_or_asked(monkeypatch):
    assert runner._progress_bar(False, total=10**6, desc="x") is None
    monkeypatch.setattr(runner, "_interactive", lambda: False)
    assert runner._progress_bar(None, total=10**6, desc="x") is None
    pytest.importorskip("tqdm")
    bar = runner._progress_bar(True, total=10, desc="x")
    assert bar is not None
    bar.close()


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad", ["threads", 3, object()])
def test_unknown_backend(bad):
    with pytest.raises(DeclarationError, match=r"simulate_design\(backend=.*\): backend must "
                       r"be one of 'serial', 'processes', 'dask'"):
        dd.simulate_design(two_arm(), sims=5, backend=bad)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_workers(bad):
    with pytest.raises(DeclarationError, match=r"diagnose_design\(workers=.*\): workers must "
                       r"be None or a positive integer; got"):
        dd.diagnose_design(two_arm(), sims=5, backend="processes", workers=bad)


def test_workers_conflicting_with_the_backend():
    with pytest.raises(DeclarationError, match=r"workers must be None or 1 with "
                       r"backend='serial'; got 2"):
        dd.simulate_design(two_arm(), sims=5, backend="serial", workers=2)
    with cf.ThreadPoolExecutor(1) as ex, pytest.raises(
            DeclarationError, match=r"workers must be None when backend is an Executor"):
        dd.simulate_design(two_arm(), sims=5, backend=ex, workers=2)


def test_dask_missing_names_the_extra(monkeypatch):
    real = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.split(".")[0] in ("distributed", "dask"):
            raise ImportError("No module named 'distributed'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    with pytest.raises(ImportError, match=r"pip install declaredesign\[dask\]"):
        dd.simulate_design(two_arm(), sims=5, backend="dask")


def test_unreachable_scheduler(monkeypatch, tmp_path):
    pytest.importorskip("distributed")
    monkeypatch.setattr(backends, "SCHEDULER_TIMEOUT", "0.5s")
    with pytest.raises(DeclarationError, match=r"simulate_design\(backend='tcp://127.0.0.1:9'\)"
                       r": backend must be the address of a reachable Dask scheduler"):
        dd.simulate_design(two_arm(), sims=5, backend="tcp://127.0.0.1:9",
                           checkpoint=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written


def test_dask_is_imported_only_when_used():
    import subprocess
    import sys

    code = ("import sys, declaredesign as dd, declaredesign.engine\n"
            "d = dd.declare_model(N=5, Y=dd.normal()) + dd.declare_inquiry(m='mean(Y)')\n"
            "dd.simulate_design(d, sims=4, chunk_size=2, backend='processes', workers=2)\n"
            "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_process_pool_without_fork_ships_designs_by_cloudpickle(reference, monkeypatch):
    # macOS and Windows spawn: the lambda in two_arm must travel as cloudpickle bytes.
    monkeypatch.setattr(backends.mp, "get_all_start_methods", lambda: ["spawn"])
    out = dd.simulate_design(two_arm(), sims=SIMS, seed=11, chunk_size=CHUNK,
                             backend="processes", workers=2)
    pd.testing.assert_frame_equal(out, reference, check_exact=True)
