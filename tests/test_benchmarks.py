"""Every benchmark script still runs (at a tiny size), so none can silently break."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

#: Script -> arguments that make it run in a few seconds. Every script must be listed.
TINY = {
    "compare_forum_steps.py": ["--base", str(ROOT), "--rounds", "1", "--sims", "20"],
    "components.py": ["--sims", "20", "--copies", "1", "--repeat", "1"],
    "designlibrary.py": ["--sims", "5", "--repeats", "2"],
    "estimators.py": ["--sims", "20", "--loop-sims", "2"],
    "forum_design.py": ["--sims", "200", "--backend", "serial", "--batch", "20",
                        "--repeat", "1"],
    "memory.py": ["--sims", "2000", "--bootstrap-sims", "20"],
    "lmer.py": ["--sims", "20", "--slow-sims", "1", "--glmer-sims", "10", "--dataset-repeat",
                "1", "--slope-sims", "20"],
    "profile_forum.py": ["--sims", "20", "--repeat", "1", "--top", "2"],
    "glmm_datasets.py": ["--repeat", "1", "--only", "cbpp_cbind"],
    "glmer_design.py": ["--sims", "20", "--slow-sims", "2"],
}


def test_every_benchmark_has_a_tiny_run():
    scripts = sorted(p.name for p in BENCHMARKS.glob("*.py"))
    assert scripts == sorted(TINY), "add the new benchmark to TINY in tests/test_benchmarks.py"


@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_runs(script):
    pytest.importorskip("statsmodels")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), "MPLBACKEND": "Agg"}
    res = subprocess.run([sys.executable, str(BENCHMARKS / script), *TINY[script]],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{script} failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    assert res.stdout.strip(), f"{script} printed nothing"
