"""Timing of the batched kernel (slow: run with ``-m slow``)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from declaredesign.assign import cluster_ra
from declaredesign.batch import Batch


@pytest.mark.slow
def test_cluster_ra_1000_sims_of_810_rows_is_fast():
    n_sims = 1000
    cls = np.repeat(np.arange(1, 11), 81)
    b = Batch({"classroom": np.tile(cls, n_sims)}, np.repeat(np.arange(n_sims), 810), n_sims,
              id_columns=["classroom"])
    d = cluster_ra(clusters="classroom", prob=0.5)
    rng = np.random.default_rng(1)
    times = []
    for _ in range(5):
        d._state.clear()            # time plan building too, as for a fresh batch
        t0 = time.perf_counter()
        z = d.conduct_batch(b, rng)
        times.append(time.perf_counter() - t0)
    assert z.reshape(n_sims, 10, 81)[:, :, 0].sum(1).tolist() == [5] * n_sims
    assert min(times) < 0.05        # target 20 ms; slack for a loaded 2-core machine
