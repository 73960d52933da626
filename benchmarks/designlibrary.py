"""Benchmark: the issue-10 R design battery, our ms per simulation beside R's.

Each design of ``tests/designs/`` (the DesignLibrary / DeclareDesign designs ported
line by line from ``tests/fixtures/designlibrary/designs/*.R``) is simulated at
``--sims`` simulations on one core (backend ``serial``, one BLAS thread), and its CPU
time per simulation is printed beside R DeclareDesign's CPU ms per simulation from
``tests/fixtures/designlibrary/r_timings.csv`` (``simulate_design`` of the same design,
1,000 sims). Designs less than 30x faster than R are flagged.

For a flagged design the table also says how long the design's own Python functions
(its ``handler=`` functions) take when called once on one simulation's data, as the
per-simulation run calls them: when that alone is more than R's time / 30, no engine
speed-up reaches the target while those functions run once per simulation.

    python benchmarks/designlibrary.py                  # 2,000 sims per design
    python benchmarks/designlibrary.py --sims 50        # a quick check
    python benchmarks/designlibrary.py --only factorial binary_iv
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.designs is imported from the source tree

import declaredesign as dd  # noqa: E402
from declaredesign.design.handlers import call_handler  # noqa: E402
from declaredesign.engine._threads import single_blas_thread  # noqa: E402

R_TIMINGS = ROOT / "tests" / "fixtures" / "designlibrary" / "r_timings.csv"
TARGET = 30.0


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def time_design(name: str, sims: int, seed: int) -> tuple[float, float, str]:
    """Return (CPU ms/sim, wall ms/sim, error or '') for one design."""
    module = importlib.import_module(f"tests.designs.{name}")
    design = getattr(module, f"{name}_design")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dd.simulate_design(design, sims=min(sims, 20), seed=seed, backend="serial",
                               progress=False)  # warm caches (formulas, imports)
            c0, t0 = _cpu(), time.perf_counter()
            dd.simulate_design(design, sims=sims, seed=seed, backend="serial",
                               progress=False)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
    except Exception as e:  # noqa: BLE001 -- report the design that cannot run, go on
        return float("nan"), float("nan"), f"{type(e).__name__}: {str(e).splitlines()[0]}"
    return 1000 * cpu / sims, 1000 * wall / sims, ""


def user_code_ms(design: dd.Design, seed: int, repeats: int = 200) -> float:
    """CPU ms of one call of each of the design's handler functions, summed.

    Each handler is called on the data one simulation gives it (the data after the
    data steps before it), ``repeats`` times; the sum is the per-simulation cost of the
    user's own code when it runs once per simulation, whatever the engine does.
    """
    total, steps = 0.0, list(design.steps)
    rng = np.random.default_rng(seed)
    for k, step in enumerate(steps):
        handler = getattr(step, "handler", None)
        if not inspect.isfunction(handler):
            continue
        before = [s for s in steps[:k] if s.is_data_step]
        df = dd.draw_data(design.with_steps(before), seed=seed) if before else None
        args = () if df is None else (df,)
        kwargs = dict(getattr(step, "kwargs", None) or getattr(step, "model_kwargs", None)
                      or getattr(step, "handler_kwargs", None) or {})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c0 = time.process_time()
            for _ in range(repeats):
                call_handler(handler, *args, rng=rng, **kwargs)   # as the steps call it
            total += (time.process_time() - c0) / repeats
    return 1000 * total


def main(argv: list[str] | None = None) -> int:
    """Time every design and print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000, help="simulations per design")
    parser.add_argument("--seed", type=int, default=20251200)
    parser.add_argument("--repeats", type=int, default=200,
                        help="calls of each handler when timing a flagged design's own code")
    parser.add_argument("--only", nargs="*", help="design names (default: all)")
    args = parser.parse_args(argv)

    r = pd.read_csv(R_TIMINGS).set_index("design")
    names = args.only or list(r.index)
    print(f"R DeclareDesign {r['DeclareDesign'].iloc[0]} (CPU ms/sim, 1,000 sims) against "
          f"declaredesign {dd.__version__} (CPU ms/sim, {args.sims} sims, one core)")
    header = f"{'design':<26} {'R ms/sim':>9} {'py ms/sim':>10} {'py wall':>8} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    slow = []
    with single_blas_thread():
        for name in names:
            cpu, wall, error = time_design(name, args.sims, args.seed)
            r_ms = float(r.loc[name, "cpu_ms_per_sim"])
            ratio = r_ms / cpu if cpu > 0 else float("inf")
            flag = ""
            if error:
                flag = f"  FAILED ({error})"
            elif ratio < TARGET:
                flag = f"  < {TARGET:.0f}x"
                slow.append(name)
                design = getattr(importlib.import_module(f"tests.designs.{name}"),
                                 f"{name}_design")
                user = user_code_ms(design, args.seed, args.repeats)
                if user > 0:
                    flag += (f"\n{'':<26} its handler functions alone: {user:.3f} ms per "
                             f"simulation run one at a time (at most {r_ms / user:.1f}x R)")
            print(f"{name:<26} {r_ms:>9.2f} {cpu:>10.3f} {wall:>8.3f} {ratio:>6.1f}x{flag}")
    if slow:
        print(f"\nbelow {TARGET:.0f}x faster than R: {', '.join(slow)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
