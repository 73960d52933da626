"""The command line, run as a user would (subprocess)."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

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


def test_report_is_self_contained_html_with_table_and_plots(tmp_path):
    report = tmp_path / "report.html"
    p = run("diagnose", "--example", "multilevel", "--sims", "60", "--bootstrap-sims", "10",
            "--seed", "1", "--report", str(report))
    assert p.returncode == 0, p.stderr
    text = report.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "<table" in text and "Random Intercept" in text and "Average Score" in text
    assert "based on 60 simulations" in text
    assert "declaredesign diagnose --example multilevel --sims 60" in text  # reproducible
    import base64
    import re
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    assert len(images) == 2  # sampling distributions and estimator comparison
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "src='http" not in text and "<script" not in text  # nothing fetched


def test_report_for_a_grid_has_the_power_curve(tmp_path):
    report = tmp_path / "grid.html"
    p = run("diagnose", "--example", "two_arm", "--param", "N=20,40,80", "--sims", "50",
            "--bootstrap-sims", "0", "--seed", "1", "--report", str(report))
    assert p.returncode == 0, p.stderr
    text = report.read_text()
    assert "Power by N" in text and text.count("data:image/png;base64,") == 1


def _main(capsys, *args):
    """The CLI in-process (fast): exit code, stdout, stderr."""
    from declaredesign.cli import main

    try:
        code = main(list(args))
    except SystemExit as e:  # argparse's usage errors and --help
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_usage_errors_are_one_line_and_help_teaches(tmp_path, capsys):
    for args in [("diagnose", "--bogus"), ("nope",), ("diagnose", "--sims", "many"),
                 ("diagnose", "--example", "two_arm", "--report", str(tmp_path / "r.txt")),
                 ("diagnose", "--example", "two_arm", "--report",
                  str(tmp_path / "missing" / "r.html")),
                 ("diagnose", "--example", "two_arm", "--out", str(tmp_path / "dx.xlsx"))]:
        code, _, err = _main(capsys, *args)
        assert code == 2, (args, err)
        assert err.strip().count("\n") == 0 and "Traceback" not in err, err
        assert err.startswith("declaredesign: error:")
    code, out, _ = _main(capsys, "--help")
    assert code == 0
    assert "declaredesign examples" in out and "--report" in out
    code, out, _ = _main(capsys, "diagnose", "--help")
    assert "--report" in out and "--param" in out and "examples:" in out


def test_examples_lists_the_design_library():
    p = run("examples")
    for name in ("two_arm", "cluster_randomized", "factorial", "pre_post", "multilevel"):
        assert name in p.stdout


def test_examples_show_parameters_and_unknown_param_is_named(capsys):
    code, out, _ = _main(capsys, "examples")
    assert code == 0 and "--param N=100 ate=0.5" in out
    code, _, err = _main(capsys, "diagnose", "--example", "two_arm", "--param", "M=10")
    assert code == 2
    assert "two_arm has no parameter 'M'; its parameters are N, ate" in err


def test_engine_flags_checkpoint_resume_and_precision(tmp_path):
    ck = tmp_path / "run"
    args = ("diagnose", "--example", "two_arm", "--sims", "300", "--seed", "4",
            "--bootstrap-sims", "20", "--chunk-size", "100", "--backend", "serial",
            "--checkpoint", str(ck), "--out")
    first = run(*args, str(tmp_path / "a.csv"))
    assert first.returncode == 0, first.stderr
    assert (ck / "manifest.json").exists()
    again = run(*args, str(tmp_path / "b.csv"))  # resumes: everything is on disk
    assert again.returncode == 0, again.stderr
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"),
                                  pd.read_csv(tmp_path / "b.csv"))
    p = run("diagnose", "--example", "two_arm", "--seed", "1", "--chunk-size", "200",
            "--precision", "power=0.02", "--max-sims", "2000", "--bootstrap-sims", "50",
            "--out", str(tmp_path / "c.csv"))
    assert p.returncode == 0, p.stderr
    assert pd.read_csv(tmp_path / "c.csv")["n_sims"].iloc[0] < 2000


def test_bad_engine_flags_are_one_line_errors(tmp_path):
    for args in [("--backend", "cloud9"), ("--workers", "0"), ("--precision", "power=x")]:
        p = run("diagnose", "--example", "two_arm", "--sims", "10", *args, cwd=tmp_path)
        assert p.returncode == 2, (args, p.stderr)
        assert "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr


def test_unwritable_outputs_fail_before_simulating(tmp_path):
    # A million simulations would take minutes: the check must come first.
    big = ("diagnose", "--example", "two_arm", "--sims", "1000000")
    blocked = tmp_path / "file"
    blocked.write_text("x")
    cases = [
        (("--out", "/proc/x.csv"), "--out '/proc/x.csv': cannot write there"),
        (("--report", "/proc/r.html"), "--report '/proc/r.html': cannot write there"),
        (("--simulations", str(tmp_path / "nodir" / "s.csv")), "no such directory"),
        (("--checkpoint", str(blocked / "run")), "so the folder cannot be created"),
        (("--checkpoint", str(blocked)), "is a file, not a folder"),
        (("--param", "N=[]"), "give at least one value"),
    ]
    for args, message in cases:
        p = run(*big, *args, cwd=tmp_path)
        assert p.returncode == 2, (args, p.stderr)
        assert message in p.stderr, p.stderr
        assert "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
    assert not (tmp_path / "nodir").exists()


def test_draw_to_a_missing_directory_is_one_line(tmp_path):
    p = run("draw", "--example", "two_arm", "--out", "/nonexistent/d.csv", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip() == ("declaredesign: error: --out '/nonexistent/d.csv': no such "
                                "directory '/nonexistent'")


def test_dask_without_a_main_guard_explains_the_fix(tmp_path):
    pytest.importorskip("distributed")
    script = tmp_path / "no_guard.py"
    script.write_text("import declaredesign as dd\n"
                      "dd.simulate_design(dd.examples.two_arm(), sims=20, backend='dask')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120, env=env)
    assert p.returncode != 0
    last = p.stderr.strip().splitlines()[-1]
    assert "put the call under `if __name__ == \"__main__\":`" in last, p.stderr
    assert len(p.stderr.splitlines()) < 20 and "Nanny" not in p.stderr
