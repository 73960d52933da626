"""Diagnoses and reports carry their provenance (issue 10, item 10)."""

import datetime

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign import examples
from declaredesign.plot.report import report_html


def test_diagnosis_carries_provenance():
    d = examples.two_arm(N=20)
    dx = dd.diagnose_design(d, sims=30, bootstrap_sims=5, seed=7)
    p = dx.provenance
    assert p["seed"] == 7 and p["sims"] == 30 and p["bootstrap_sims"] == 5
    assert set(p["versions"]) >= {"declaredesign", "numpy", "scipy", "pandas"}
    assert p["versions"]["declaredesign"] == dd.__version__
    assert p["versions"]["numpy"] == np.__version__
    assert p["versions"]["pandas"] == pd.__version__
    assert datetime.datetime.fromisoformat(p["date"]).year >= 2024
    assert p["designs"]["design"] == dd.design_code(d)
    ns: dict = {}
    exec(p["designs"]["design"], ns)
    assert ns["design"] == d


def test_unseeded_run_records_a_seed_that_reproduces_it():
    d = examples.two_arm(N=20)
    dx = dd.diagnose_design(d, sims=20, bootstrap_sims=0)
    seed = dx.provenance["seed"]
    assert isinstance(seed, int)
    again = dd.diagnose_design(d, sims=20, bootstrap_sims=0, seed=seed)
    pd.testing.assert_frame_equal(dx.simulations, again.simulations)


def test_several_designs_are_all_recorded():
    ds = dd.redesign(examples.two_arm(), N=[10, 20])
    dx = dd.diagnose_design(ds, sims=10, bootstrap_sims=0, seed=1)
    assert list(dx.provenance["designs"]) == ["design_1", "design_2"]
    assert "N=20" in dx.provenance["designs"]["design_2"]


def test_report_shows_provenance():
    pytest.importorskip("matplotlib")
    dx = dd.diagnose_design(examples.two_arm(N=20), sims=20, bootstrap_sims=0, seed=3)
    text = report_html(dx, plots=False)
    assert "Provenance" in text and "<code>3</code>" in text
    assert "declare_model(N=20" in text
    for pkg in ("declaredesign", "numpy", "scipy", "pandas"):
        assert f"{pkg} version" in text
    assert dx.provenance["date"] in text
