"""Benchmark: peak memory of a large diagnosis of a small design.

Simulates a two-arm trial (N=50, one estimator, one inquiry: one row per simulation)
``--sims`` times, then diagnoses it with R's default diagnosands and
``--bootstrap-sims`` bootstrap replicates, and prints wall times and the peak
resident memory of this process after each phase. The simulations run serially in
this process so the peak covers everything.

The bootstrap and the diagnosands are streamed by replicate block and estimator, so
memory beyond the simulations table is O(sims), not O(sims x bootstrap_sims): the
target is a peak under 1.5 GiB for 1,000,000 simulations.

    python benchmarks/memory.py                 # 1,000,000 simulations
    python benchmarks/memory.py --sims 2000     # tiny, for CI
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import declaredesign as dd

GIB = 1024**3


def peak_bytes() -> int:
    """Peak resident set of this process so far, in bytes."""
    unit = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit


def design() -> dd.Design:
    """Build a small two-arm trial: one row per simulation in the simulations table."""
    return (dd.declare_model(N=50, U=dd.normal())
            + dd.declare_potential_outcomes("Y ~ 0.2 * Z + U")
            + dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
            + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
            + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
            + dd.declare_estimator("Y ~ Z", inquiry="ate", label="dim"))


def main() -> None:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sims", type=int, default=1_000_000)
    p.add_argument("--bootstrap-sims", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--limit-gib", type=float, default=1.5,
                   help="exit with status 1 when the peak exceeds this")
    args = p.parse_args()
    base = peak_bytes()
    t0 = time.perf_counter()
    sims = dd.simulate_design(design(), sims=args.sims, seed=args.seed, backend="serial",
                              progress=False)
    t_sim = time.perf_counter() - t0
    after_sim = peak_bytes()
    table = int(sims.memory_usage(deep=False).sum())
    t0 = time.perf_counter()
    dx = dd.diagnose_design(sims, bootstrap_sims=args.bootstrap_sims, seed=args.seed)
    t_dx = time.perf_counter() - t0
    peak = peak_bytes()
    print(f"{args.sims:,} simulations, {len(sims):,} rows, {args.bootstrap_sims} bootstrap "
          "replicates")
    print(f"import + start            peak {base / GIB:6.3f} GiB")
    print(f"simulate_design  {t_sim:7.1f} s  peak {after_sim / GIB:6.3f} GiB  "
          f"(table {table / GIB:.3f} GiB)")
    print(f"diagnose         {t_dx:7.1f} s  peak {peak / GIB:6.3f} GiB  "
          f"(+{(peak - after_sim) / GIB:.3f} GiB over simulating)")
    print(f"power {float(dx.diagnosands['power'].iloc[0]):.4f} "
          f"(se {float(dx.diagnosands['power_se'].iloc[0]):.4f})")
    print(f"PEAK MEMORY {peak / GIB:.3f} GiB (target < {args.limit_gib} GiB)")
    if peak > args.limit_gib * GIB:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
