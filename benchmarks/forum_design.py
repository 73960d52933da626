"""Benchmark: the forum's multilevel design, end to end and estimator by estimator.

Prints, in one run:

1. wall time of ``dd.diagnose_design(dd.examples.multilevel(), sims=N)`` with all four
   estimators and 100 bootstrap replicates, on the chosen backend (simulation and
   diagnosis timed separately);
2. per-estimator time per dataset: the batched kernel (one batch of ``--batch`` sims),
   the standalone function on one pandas DataFrame, and statsmodels on the same data
   (OLS with cluster-robust SEs; MixedLM for the random intercept);
3. peak memory (resident set) of this process and of its worker processes.

    python benchmarks/forum_design.py                      # 50,000 sims, default backend
    python benchmarks/forum_design.py --sims 5000 --backend serial
    python benchmarks/forum_design.py --sims 50000 --backend processes --workers 2
    python benchmarks/forum_design.py --skip-estimators    # only the end-to-end figure
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

import declaredesign as dd
from declaredesign.design.steps import EstimatorStep
from declaredesign.engine._threads import single_blas_thread
from declaredesign.engine.backends import available_cores
from declaredesign.engine.seeding import chunk_rng, root_seed_sequence


def _per_call(f: Callable[[], object], repeat: int) -> float:
    f()  # warm caches (formula parsing, imports)
    t = time.perf_counter()
    for _ in range(repeat):
        f()
    return (time.perf_counter() - t) / repeat


def end_to_end(design: dd.Design, sims: int, seed: int, backend: str | None,
               workers: int | None) -> None:
    c0 = os.times()
    t0 = time.perf_counter()
    sim_df = dd.simulate_design(design, sims=sims, seed=seed, backend=backend,
                                workers=workers, progress=False)
    t_sim = time.perf_counter() - t0
    c1 = os.times()
    # CPU of this process and of the (reaped) workers: what the run costs on an idle
    # machine, whatever else shares the cores while it runs.
    cpu = (c1.user - c0.user + c1.system - c0.system + c1.children_user - c0.children_user
           + c1.children_system - c0.children_system)
    t0 = time.perf_counter()
    dx = dd.diagnose_design(sim_df, bootstrap_sims=100, seed=seed)
    t_dx = time.perf_counter() - t0
    chosen = backend or ("processes" if sims >= 5000 and available_cores() > 1 else "serial")
    shown = f", workers {workers or available_cores()}" if chosen == "processes" else ""
    print(f"\n== {sims:,} simulations, {len(design.estimator_labels)} estimators, backend "
          f"{chosen!r}{shown} ==")
    print(f"simulate_design          {t_sim:8.2f} s   ({t_sim / sims * 1e6:7.1f} us/sim)")
    print(f"  CPU time, all workers  {cpu:8.2f} s   ({cpu / sims * 1e6:7.1f} us/sim; "
          f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"diagnosis (100 boots)    {t_dx:8.2f} s")
    print(f"total                    {t_sim + t_dx:8.2f} s   (R DeclareDesign: ~92 ms/sim, "
          f"{92e-3 * sims / 60:.0f} min serial)")
    failed = int(dx.diagnosands.get("n_failed", pd.Series([0])).sum())
    print(f"failed fits: {failed}")


def estimators(design: dd.Design, batch_sims: int, repeat: int, seed: int) -> None:
    import statsmodels.formula.api as smf

    root = root_seed_sequence(seed)
    print(f"\n== per dataset: batched kernel ({batch_sims} sims per batch) vs standalone vs "
          "statsmodels ==")
    print(f"{'estimator':24s} {'batched':>12s} {'standalone':>12s} {'statsmodels':>12s}")
    steps = list(design.steps)
    for i, step in enumerate(steps):
        if not isinstance(step, EstimatorStep):
            continue
        # The data this estimator sees: the data steps before it (incl. aggregation).
        batch = design.run_data_steps(batch_sims, chunk_rng(root, 0), stop=i)
        t_batch = _per_call(lambda step=step, batch=batch: step.estimate(batch), 3) / batch_sims
        df = batch.select_sims([0]).to_pandas()
        kw = dict(step.model_kwargs)
        t_alone = _per_call(lambda step=step, df=df, kw=kw: step.model(step.formula, df, **kw),
                            repeat)
        t_sm = np.nan
        lhs = step.formula.split("~")[0].strip()
        if step.model is dd.lmer:
            def sm(df=df, lhs=lhs):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    smf.mixedlm(f"{lhs} ~ treatment", df, groups=df["student"]).fit(reml=True)
            t_sm = _per_call(sm, max(1, repeat // 5))
        elif "clusters" in kw:
            def sm(df=df, lhs=lhs, cl=kw["clusters"]):
                g = pd.factorize(df[cl])[0]
                smf.ols(f"{lhs} ~ treatment", df).fit(cov_type="cluster",
                                                      cov_kwds={"groups": g})
            t_sm = _per_call(sm, repeat)
        print(f"{step.label:24s} {t_batch * 1e6:9.1f} us {t_alone * 1e3:9.2f} ms "
              f"{t_sm * 1e3:9.2f} ms")


def peak_memory() -> None:
    kib = 1024 if platform.system() != "Darwin" else 1024 * 1024
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib
    print(f"\npeak memory: this process {me:.0f} MiB, largest worker {kids:.0f} MiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sims", type=int, default=50_000)
    p.add_argument("--backend", default=None, help="serial, processes or dask "
                   "(default: processes for 5,000+ sims on several cores)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=1000, help="sims per batch for the "
                   "per-estimator timing")
    p.add_argument("--repeat", type=int, default=20, help="standalone fits timed per "
                   "estimator")
    p.add_argument("--skip-estimators", action="store_true")
    args = p.parse_args()

    design = dd.examples.multilevel()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"({available_cores()} usable), Python {platform.python_version()}, numpy "
          f"{np.__version__}")
    print(f"estimators: {', '.join(design.estimator_labels)}")
    end_to_end(design, args.sims, args.seed, args.backend, args.workers)
    if not args.skip_estimators:
        # One BLAS thread, as inside simulations: tiny LAPACK calls only lose by threading.
        with single_blas_thread():
            estimators(design, args.batch, args.repeat, args.seed)
    peak_memory()


if __name__ == "__main__":
    main()
