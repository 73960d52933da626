"""Benchmark: the forum design's building blocks, one batch of 1,000 simulations each.

Prints wall time per call for data generation, cluster assignment and the diagnosis
of 50,000 simulations x 4 estimators (with 100 bootstrap replicates).

    python benchmarks/components.py [--sims 1000] [--copies 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import declaredesign as dd
from declaredesign.batch import Batch
from declaredesign.design.diagnosis import diagnose_simulations, from_r_simulations


def best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=1000, help="simulations per batch")
    ap.add_argument("--copies", type=int, default=10,
                    help="copies of R's 5,000 simulations diagnosed at once")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    design = dd.examples.multilevel()
    model = design[0]
    n_sims = a.sims
    t = best_of(lambda: model.run(None, np.random.default_rng(1), n_sims), a.repeat)
    print(f"model (fabricate), {n_sims:,} sims:               {t * 1e3:8.1f} ms")

    cls = np.repeat(np.arange(1, 11), 81)
    b = Batch({"classroom": np.tile(cls, n_sims)}, np.repeat(np.arange(n_sims), 810), n_sims,
              id_columns=["classroom"])
    ra = dd.cluster_ra(clusters="classroom", prob=0.5)
    t = best_of(lambda: ra.conduct_batch(b, np.random.default_rng(1)), a.repeat)
    print(f"cluster_ra, {n_sims:,} sims x 810 rows:              {t * 1e3:8.1f} ms")

    ref = Path(__file__).resolve().parents[1] / "tests/fixtures/reference"
    r = from_r_simulations(pd.read_csv(ref / "seed_design_sims_R_5000.csv"))
    big = pd.concat([r.assign(sim_id=r.sim_id + 5000 * k) for k in range(a.copies)],
                    ignore_index=True)
    t = best_of(lambda: diagnose_simulations(big, bootstrap_sims=100, seed=1),
                repeat=min(3, a.repeat))
    print(f"diagnosis, {5000 * a.copies:,} sims x 4 estimators, 100 bootstraps: {t:6.2f} s")


if __name__ == "__main__":
    main()
