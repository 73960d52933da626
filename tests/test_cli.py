"""The command line, run as a user would (subprocess)."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=None):
    # The package may be imported from the checkout rather than installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", "declaredesign", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300, env=env)


def test_diagnose_example_prints_table_and_writes_csv(tmp_path):
    out = tmp_path / "dx.csv"
    p = run("diagnose", "--example", "multilevel", "--sims", "40", "--bootstrap-sims", "5",
            "--seed", "1", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "Average Score" in p.stdout and "power" in p.stdout.lower()
    df = pd.read_csv(out)
    assert set(df["estimator"]) >= {"Average Score", "Test-level CR2"}
    assert (df["n_sims"] == 40).all()


def test_examples_and_draw():
    p = run("examples")
    assert p.returncode == 0 and "multilevel" in p.stdout
    p = run("draw", "--example", "multilevel", "--seed", "2", "--head", "3")
    assert p.returncode == 0 and "classroom" in p.stdout


def test_user_file_with_param_grid(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text(
        "import declaredesign as dd\n"
        "def designer(n=20):\n"
        "    return (dd.declare_model(N=n, U=dd.normal())\n"
        "            + dd.declare_inquiry(m='mean(U)')\n"
        "            + dd.declare_estimator('U ~ 1', term=True, inquiry='m', label='mean'))\n")
    p = run("diagnose", f"{f}:designer", "--param", "n=10,20", "--sims", "30",
            "--bootstrap-sims", "0", "--seed", "3")
    assert p.returncode == 0, p.stderr
    assert "design_1" in p.stdout and "design_2" in p.stdout


def test_bad_input_is_one_line_error(tmp_path):
    for args in [("diagnose", "missing.py:design"),
                 ("diagnose", "--example", "nope"),
                 ("diagnose", "--example", "multilevel", "--param", "bad"),
                 ("diagnose", "--example", "multilevel", "--sims", "0")]:
        p = run(*args, cwd=tmp_path)
        assert p.returncode == 2, args
        assert "Traceback" not in p.stderr
        assert p.stderr.strip().count("\n") == 0, p.stderr
    f = tmp_path / "empty.py"
    f.write_text("x = 1\n")
    p = run("diagnose", f"{f}:design")
    assert p.returncode == 2 and "has no attribute 'design'" in p.stderr
