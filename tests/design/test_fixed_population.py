"""Designs on a fixed population (``declare_population(data=df)``) give the plain results.

The population's copies are held once (:class:`~declaredesign.batch.RepeatedColumns`);
each design here is simulated that way and with the copies made plainly (every column
tiled), and the two simulations tables must be equal bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.batch import Batch
from tests.designs.cluster_sampling import cluster_sampling_design


def _plain_repeat(self: Batch, n: int) -> Batch:
    """The plain path: every column of the one dataset tiled ``n`` times."""
    return Batch({k: np.tile(v, n) for k, v in self.columns.items()},
                 np.repeat(np.arange(n, dtype=np.int64), self.n_rows), n, self.id_columns)


def simulate_both(design, monkeypatch, sims=40, seed=11):
    fast = dd.simulate_design(design, sims=sims, seed=seed, backend="serial", progress=False)
    with monkeypatch.context() as m:
        m.setattr(Batch, "_repeat", _plain_repeat)
        plain = dd.simulate_design(design, sims=sims, seed=seed, backend="serial",
                                   progress=False)
    return fast, plain


def population() -> pd.DataFrame:
    """String IDs of different widths, a missing outcome and a missing label."""
    rng = np.random.default_rng(4)
    n = 240
    cluster = np.sort(np.arange(n) % 24 + 1)
    df = pd.DataFrame({
        "block": np.where(cluster <= 12, "1", "10"),
        "cluster": [str(c).zfill(1 + c % 3) for c in cluster],
        "subject": [str(i) for i in range(1, n + 1)],
        "X": rng.normal(size=n),
        "Y": rng.normal(size=n),
    })
    df.loc[7, "Y"] = np.nan
    df["label"] = pd.Series(["a", None] * (n // 2), dtype=object)
    return df


def test_cluster_sampling_design(monkeypatch):
    fast, plain = simulate_both(cluster_sampling_design, monkeypatch, sims=30)
    pd.testing.assert_frame_equal(fast, plain, check_exact=True)


def test_strings_of_different_widths_and_missing_values(monkeypatch):
    design = (dd.declare_population(data=population())
              + dd.declare_inquiry(Ybar="mean(Y, na_rm=True)", Y_na="mean(Y)",
                                   above="mean(X[X > 0])")
              + dd.declare_sampling(S=dd.strata_and_cluster_rs(strata="block",
                                                               clusters="cluster", n=3))
              + dd.declare_assignment(Z=dd.block_ra(blocks="cluster", prob=0.5))
              + dd.declare_measurement(Yobs="X + Z")
              + dd.declare_estimator("Yobs ~ Z", model=dd.lm_robust, clusters="cluster",
                                     inquiry="above", label="est"))
    fast, plain = simulate_both(design, monkeypatch)
    pd.testing.assert_frame_equal(fast, plain, check_exact=True)
    assert fast["estimand"].notna().any()


def test_population_columns_changed_before_the_inquiry(monkeypatch):
    design = (dd.declare_population(data=population())
              + dd.declare_measurement(Y="X + normal(0, 1)", X="X * 2")
              + dd.declare_inquiry(Ybar="mean(Y)", Xbar="mean(X)")
              + dd.declare_sampling(S=dd.strata_rs(strata="cluster", n=2), filter="S == 1")
              + dd.declare_estimator("Y ~ 1", model=dd.lm_robust, inquiry="Ybar",
                                     label="m"))
    fast, plain = simulate_both(design, monkeypatch)
    pd.testing.assert_frame_equal(fast, plain, check_exact=True)
    ybar = fast.drop_duplicates("sim_id").query("inquiry == 'Ybar'")["estimand"]
    assert ybar.nunique() > 1                  # a new draw of Y in every simulation


@pytest.mark.parametrize("inquiry", ["mean(cumsum(X))", "mean(rnorm(N) + Y)",
                                     "sum(X[block == '10'])"])
def test_inquiries_of_every_kind(monkeypatch, inquiry):
    design = (dd.declare_population(data=population())
              + dd.declare_inquiry(q=inquiry)
              + dd.declare_sampling(S=dd.complete_rs(n=50))
              + dd.declare_estimator("X ~ 1", model=dd.lm_robust, inquiry="q", label="m"))
    fast, plain = simulate_both(design, monkeypatch, sims=12)
    pd.testing.assert_frame_equal(fast, plain, check_exact=True)
