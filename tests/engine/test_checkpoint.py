"""Checkpoints: finished chunks on disk, resumed to the identical result."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.engine import backends
from declaredesign.engine.checkpoint import Checkpoint, CheckpointWarning, design_fingerprint
from declaredesign.errors import DeclarationError

from .designs import flaky, slow, two_arm

pytest.importorskip("pyarrow")
ROOT = Path(__file__).resolve().parents[2]


def _chunks(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("d*.parquet"))


def test_checkpoint_writes_data_only_and_reruns_identically(tmp_path):
    run = tmp_path / "run"
    a = dd.simulate_design(two_arm(), sims=40, seed=3, chunk_size=10, checkpoint=run)
    assert _chunks(run) == [f"d0-c{i:06d}-s{10 * i}-n10.parquet" for i in range(4)]
    assert sorted(p.name for p in run.iterdir()) == _chunks(run) + ["manifest.json"]
    m = json.loads((run / "manifest.json").read_text())
    assert m["seed_entropy"] == "3" and m["sims"] == 40 and m["chunk_sizes"] == [10]
    assert m["fingerprint"] == design_fingerprint([("design", two_arm())])
    plain = dd.simulate_design(two_arm(), sims=40, seed=3, chunk_size=10)
    pd.testing.assert_frame_equal(a, plain, check_exact=True)
    # The second run reads everything from disk (no worker may run a chunk).
    b = dd.simulate_design(two_arm(), sims=40, seed=3, chunk_size=10, checkpoint=run,
                           backend=_NoWork())
    pd.testing.assert_frame_equal(b, plain, check_exact=True)


class _NoWork(backends.SerialBackend):
    def run(self, tasks):
        raise AssertionError(f"chunks recomputed: {list(tasks)}")


def test_missing_chunks_are_computed_and_failures_survive_the_round_trip(tmp_path):
    run = tmp_path / "run"
    full = dd.simulate_design(flaky(), sims=60, seed=5, chunk_size=15, checkpoint=run)
    assert full["error"].notna().any()
    (run / "d0-c000001-s15-n15.parquet").unlink()
    (run / "d0-c000003-s45-n15.parquet").unlink()
    again = dd.simulate_design(flaky(), sims=60, seed=5, chunk_size=15, checkpoint=run,
                               backend="processes", workers=2)
    pd.testing.assert_frame_equal(again, full, check_exact=True)
    assert len(_chunks(run)) == 4


def test_longer_runs_extend_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    dd.simulate_design(two_arm(), sims=20, seed=3, chunk_size=10, checkpoint=run)
    longer = dd.simulate_design(two_arm(), sims=40, seed=3, chunk_size=10, checkpoint=run)
    pd.testing.assert_frame_equal(
        longer, dd.simulate_design(two_arm(), sims=40, seed=3, chunk_size=10), check_exact=True)
    assert json.loads((run / "manifest.json").read_text())["sims"] == 40


def test_seed_none_resumes_with_the_checkpoint_seed(tmp_path):
    run = tmp_path / "run"
    a = dd.simulate_design(two_arm(), sims=20, chunk_size=10, checkpoint=run)
    b = dd.simulate_design(two_arm(), sims=20, chunk_size=10, checkpoint=run)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.mark.parametrize("change", ["design", "seed", "chunk_size", "lambda"])
def test_checkpoint_of_another_run_is_refused_and_kept(tmp_path, change):
    run = tmp_path / "run"
    dd.simulate_design(two_arm(), sims=20, seed=3, chunk_size=10, checkpoint=run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    kw = {"sims": 20, "seed": 3, "chunk_size": 10, "checkpoint": run}
    design = two_arm()
    if change == "design":
        design = two_arm(effect=0.3)
    elif change == "seed":
        kw["seed"] = 4
    elif change == "chunk_size":
        kw["chunk_size"] = 5
    else:  # same repr, another function body
        design = dd.replace_step(design, "lambda", dd.declare_estimator(
            handler=lambda df: pd.DataFrame({"term": ["mean"], "estimate": [df["Y"].max()]}),
            label="lambda"))
        assert repr(design) == repr(two_arm())
    with pytest.raises(DeclarationError, match=r"simulate_design\(checkpoint='.*run'\): "
                       r"checkpoint must be a folder written by this same call"):
        dd.simulate_design(design, **kw)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_folder_of_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DeclarationError, match=r"checkpoint must be a new folder, an empty one "
                       r"or a checkpoint folder"):
        dd.diagnose_design(two_arm(), sims=5, checkpoint=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(DeclarationError, match=r"checkpoint must be None or the path"):
        dd.simulate_design(two_arm(), sims=5, checkpoint=3)


_SCRIPT = """
import sys
import declaredesign as dd
from declaredesign.engine import chunks
from tests.engine.designs import slow
chunks.MAX_BLOCK_SIMS = 5  # as tests/engine/conftest.py
dd.simulate_design(slow(), sims=300, seed=9, chunk_size=10, checkpoint=sys.argv[1],
                   backend=sys.argv[2], workers=int(sys.argv[3]) if sys.argv[3] != "0" else None,
                   progress=False)
"""


@pytest.fixture(scope="module")
def uninterrupted() -> pd.DataFrame:
    return dd.simulate_design(slow(), sims=300, seed=9, chunk_size=10, backend="processes",
                              workers=2)


@pytest.mark.parametrize("backend,workers", [
    ("serial", "0"), pytest.param("processes", "2", marks=pytest.mark.slow)])
def test_a_killed_run_resumes_to_the_identical_result(tmp_path, uninterrupted, backend,
                                                      workers):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(run), backend, workers],
                            cwd=ROOT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (run.exists() and len(_chunks(run)) >= 3):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        # The whole process group: the run and its workers, mid-chunk.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    n_done = len(_chunks(run))
    assert 3 <= n_done < 30
    resumed = dd.simulate_design(slow(), sims=300, seed=9, chunk_size=10, checkpoint=run,
                                 backend="processes", workers=2)
    pd.testing.assert_frame_equal(resumed, uninterrupted, check_exact=True)
    assert len(_chunks(run)) == 30


# ------------------------------------------------------------ verification
def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def test_manifest_records_ranges_and_checksums(tmp_path):
    run = tmp_path / "run"
    dd.simulate_design(two_arm(), sims=20, seed=3, chunk_size=10, checkpoint=run)
    m = _manifest(run)
    assert m["block_sizes"] == [5] and m["chunk_sizes"] == [10]
    assert m["package_version"] == dd.__version__
    entry = m["chunks"]["d0-c000001-s10-n10.parquet"]
    assert (entry["first_sim"], entry["last_sim"]) == (11, 20)
    data = (run / "d0-c000001-s10-n10.parquet").read_bytes()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(m["manifest_sha256"]) == 64


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage", "swap"])
def test_a_damaged_chunk_is_recomputed_with_a_warning(tmp_path, damage):
    run = tmp_path / "run"
    full = dd.simulate_design(two_arm(), sims=30, seed=3, chunk_size=10, checkpoint=run)
    target = run / "d0-c000001-s10-n10.parquet"
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[:len(data) // 2])
    elif damage == "empty":
        target.write_bytes(b"")
    elif damage == "garbage":
        target.write_bytes(b"PAR1" + bytes(100) + b"PAR1")
    else:  # a readable chunk of this run under another chunk's name
        target.write_bytes((run / "d0-c000002-s20-n10.parquet").read_bytes())
    with pytest.warns(CheckpointWarning, match=r"chunk d0-c000001-s10-n10\.parquet is "
                      r"computed again: "):
        again = dd.simulate_design(two_arm(), sims=30, seed=3, chunk_size=10, checkpoint=run,
                                   backend="serial")
    pd.testing.assert_frame_equal(again, full, check_exact=True)
    assert target.read_bytes() == data  # rewritten identically
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dd.simulate_design(two_arm(), sims=30, seed=3, chunk_size=10, checkpoint=run,
                           backend=_NoWork())


def test_foreign_chunks_are_refused_and_kept(tmp_path):
    mine, other = tmp_path / "mine", tmp_path / "other"
    dd.simulate_design(two_arm(), sims=20, seed=3, chunk_size=10, checkpoint=mine)
    dd.simulate_design(two_arm(), sims=40, seed=8, chunk_size=10, checkpoint=other)
    # Copy in a chunk this run has not computed yet, from a run with another seed.
    name = "d0-c000002-s20-n10.parquet"
    (mine / name).write_bytes((other / name).read_bytes())
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    with pytest.raises(DeclarationError, match=r"chunk file d0-c000002-s20-n10\.parquet was "
                       r"not written by this run"):
        dd.simulate_design(two_arm(), sims=40, seed=3, chunk_size=10, checkpoint=mine)
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before


def test_a_chunk_written_but_not_recorded_before_a_kill_is_reused(tmp_path):
    run = tmp_path / "run"
    full = dd.simulate_design(two_arm(), sims=20, seed=3, chunk_size=10, checkpoint=run)
    m = _manifest(run)
    del m["chunks"]["d0-c000001-s10-n10.parquet"]
    body = {k: v for k, v in m.items() if k != "manifest_sha256"}
    m["manifest_sha256"] = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    (run / "manifest.json").write_text(json.dumps(m))
    again = dd.simulate_design(two_arm(), sims=20, seed=3, chunk_size=10, checkpoint=run,
                               backend=_NoWork())
    pd.testing.assert_frame_equal(again, full, check_exact=True)
    assert "d0-c000001-s10-n10.parquet" in _manifest(run)["chunks"]


@pytest.mark.parametrize("forge", [False, True])
def test_an_edited_manifest_is_refused(tmp_path, forge):
    run = tmp_path / "run"
    dd.simulate_design(two_arm(), sims=20, seed=7, chunk_size=10, checkpoint=run)
    seed8 = Checkpoint(tmp_path / "scratch", func="simulate_design",
                       named=[("design", two_arm())], root=np.random.SeedSequence(8),
                       chunk_sizes=[10], block_sizes=[5], sims=20).manifest
    m = _manifest(run)
    m["seed_entropy"] = "8"
    if forge:  # whoever edits it also fixes both fingerprints and the self-checksum
        m["run_fingerprint"] = seed8["run_fingerprint"]
        body = {k: v for k, v in m.items() if k != "manifest_sha256"}
        m["manifest_sha256"] = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    (run / "manifest.json").write_text(json.dumps(m))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    match = r"written by another run" if forge else r"manifest\.json is as declaredesign " \
        r"wrote it \(it was edited"
    with pytest.raises(DeclarationError, match=match):
        dd.simulate_design(two_arm(), sims=20, seed=8, chunk_size=10, checkpoint=run)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_checkpoint_path_that_cannot_be_created_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DeclarationError, match=r"checkpoint must be a folder that can be "
                       r"created \(NotADirectoryError|checkpoint must be a folder that can "
                       r"be created \(FileExistsError"):
        dd.simulate_design(two_arm(), sims=5, checkpoint=tmp_path / "file" / "run")
