"""Where the time of one chunk of the forum design goes, step by step and function by function.

CPU time (not wall time, so other load on the machine matters less) per simulation of
each step of ``dd.examples.multilevel()`` on a batch of ``--sims`` simulations, then
the functions with the most own time inside each estimator (cProfile).

    python benchmarks/profile_forum.py --sims 1000 --top 8
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import pandas as pd

import declaredesign as dd
from declaredesign.design.steps import InquiryStep
from declaredesign.engine._threads import single_blas_thread
from declaredesign.engine.runner import assemble
from declaredesign.engine.seeding import chunk_rng, root_seed_sequence


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sims", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--top", type=int, default=8)
    args = p.parse_args()
    design = dd.examples.multilevel()
    root = root_seed_sequence(1)
    n = args.sims
    cpu: dict[str, float] = {}
    profiles: dict[str, cProfile.Profile] = {}
    with single_blas_thread():
        for rep in range(args.repeat + 1):  # the first round warms caches, not counted
            rng = chunk_rng(root, rep)
            batch, est, tidy = None, [], []
            for i, step in enumerate(design.steps):
                name = f"{i + 1:2d} {step.kind:18s} {step.label}"
                prof = profiles.setdefault(name, cProfile.Profile()) \
                    if not step.is_data_step and not isinstance(step, InquiryStep) else None
                t = time.process_time()
                if prof is not None and rep:
                    prof.enable()
                if step.is_data_step:
                    batch = step.run(batch, rng, n)
                elif isinstance(step, InquiryStep):
                    est.append(step.compute(batch, rng))
                else:
                    tidy.append(step.estimate(batch))
                if prof is not None and rep:
                    prof.disable()
                if rep:
                    cpu[name] = cpu.get(name, 0.0) + time.process_time() - t
            t = time.process_time()
            assemble(pd.concat(est, ignore_index=True), pd.concat(tidy, ignore_index=True))
            if rep:
                cpu["   engine: assemble rows"] = cpu.get("   engine: assemble rows", 0.0) + \
                    time.process_time() - t
    per = {k: v / args.repeat / n * 1e6 for k, v in cpu.items()}
    print(f"CPU time per simulation, batches of {n} simulations")
    for k, v in per.items():
        print(f"  {k:60s} {v:8.1f} us")
    print(f"  {'total':60s} {sum(per.values()):8.1f} us")
    for name, prof in profiles.items():
        s = io.StringIO()
        st = pstats.Stats(prof, stream=s)
        st.sort_stats("tottime").print_stats(args.top)
        print(f"\n== {name.strip()}: top functions by own time (ms per batch of {n})")
        for line in s.getvalue().splitlines():
            parts = line.split()
            if len(parts) >= 6 and "/" in line and parts[1].replace(".", "").isdigit():
                own = float(parts[1]) / args.repeat * 1e3
                cum = float(parts[3]) / args.repeat * 1e3
                where = parts[5].split("site-packages/")[-1].split("declaredesign/")[-1]
                print(f"  own {own:7.1f}  cum {cum:7.1f}  {where}")


if __name__ == "__main__":
    main()
