"""Target precision: simulate until the diagnosands' Monte Carlo SEs are small enough."""

from __future__ import annotations

import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.errors import DeclarationError

from .designs import null_test


def test_power_of_a_null_test_to_a_target_se():
    # Power is alpha = 0.05; its SE is sqrt(.05 * .95 / n): 0.01 needs n > 475.
    dx = dd.diagnose_design(null_test(), diagnosands=["power"], precision={"power": 0.01},
                            sims=100, chunk_size=100, seed=3, bootstrap_sims=100)
    assert dx.precision_reached and dx.precision == {"power": 0.01}
    assert dx.diagnosands["power_se"].iloc[0] < 0.01
    assert 300 <= dx.n_sims_used <= 1200 and dx.n_sims_used % 100 == 0
    assert dx.diagnosands["n_sims"].iloc[0] == dx.n_sims_used
    assert abs(dx.diagnosands["power"].iloc[0] - 0.05) < 4 * 0.01
    # The same as asking for that many simulations outright.
    fixed = dd.diagnose_design(null_test(), diagnosands=["power"], sims=dx.n_sims_used,
                               chunk_size=100, seed=3, bootstrap_sims=100)
    pd.testing.assert_frame_equal(dx.diagnosands, fixed.diagnosands, check_exact=True)


def test_max_sims_caps_the_run():
    dx = dd.diagnose_design(null_test(), diagnosands=["power"], precision=1e-4, sims=50,
                            max_sims=200, chunk_size=50, seed=1, bootstrap_sims=20)
    assert not dx.precision_reached and dx.n_sims_used == 200


def test_precision_on_processes_matches_serial():
    kw = dict(diagnosands=["power", "bias"], precision=0.02, sims=50, chunk_size=50, seed=4,
              bootstrap_sims=30)
    a = dd.diagnose_design(null_test(), **kw)
    b = dd.diagnose_design(null_test(), backend="processes", workers=2, **kw)
    assert a.n_sims_used == b.n_sims_used
    pd.testing.assert_frame_equal(a.diagnosands, b.diagnosands, check_exact=True)


@pytest.mark.parametrize("kw,msg", [
    ({"precision": 0}, r"precision must be a positive number"),
    ({"precision": {"power": -1}}, r"precision must be a positive number or a non-empty dict"),
    ({"precision": {"powr": 0.1}}, r"precision must be a dict keyed by diagnosand names"),
    ({"precision": 0.1, "bootstrap_sims": 0}, r"bootstrap_sims must be at least 2"),
    ({"max_sims": 10}, r"max_sims must be None unless precision is given"),
    ({"precision": 0.1, "max_sims": 10, "sims": 20}, r"max_sims must be at least sims"),
])
def test_bad_precision_arguments(kw, msg):
    kw = {"sims": 20, "seed": 1, **kw}
    with pytest.raises(DeclarationError, match=r"diagnose_design\(.*\): " + msg):
        dd.diagnose_design(null_test(), diagnosands=["power"], **kw)
