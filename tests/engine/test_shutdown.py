"""Workers die with their parent: no orphaned processes after SIGKILL or SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")
ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import declaredesign as dd
from declaredesign.engine import chunks
from tests.engine.designs import slow
chunks.MAX_BLOCK_SIMS = 5
dd.simulate_design(slow(), sims=100_000, seed=1, backend="processes", workers=2,
                   progress=False)
"""


@pytest.mark.skipif(os.name != "posix", reason="signals of POSIX")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_exit_when_the_parent_is_killed(sig):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env,
                            start_new_session=True)
    workers: list = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2:
            assert proc.poll() is None, "the run ended before its workers started"
            assert time.monotonic() < deadline, "no workers started"
            time.sleep(0.05)
            workers = psutil.Process(proc.pid).children()
        time.sleep(0.5)  # mid-chunk
        os.kill(proc.pid, sig)
        proc.wait(timeout=10)
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"workers outlived their parent: {alive}"
    finally:
        for w in workers:
            try:
                w.kill()
            except psutil.NoSuchProcess:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()
