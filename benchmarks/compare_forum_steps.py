"""Compare two source trees step by step on the forum design, interleaved, minimum CPU time.

Runs ``benchmarks/profile_forum.py`` of each tree (with that tree first on PYTHONPATH,
one BLAS thread) in turn, ``--rounds`` times, and prints each step's smallest CPU time
per simulation in each tree. Interleaving and minima keep a busy, shared machine from
deciding the comparison. ``--keep-freed-memory`` runs both trees with glibc's mmap and
trim thresholds raised, as the process pool's workers run (engine/allocator.py), so
page faults do not blur the per-step figures.

    python benchmarks/compare_forum_steps.py --base /tmp/base
    python benchmarks/compare_forum_steps.py --base /tmp/base --rounds 5 --keep-freed-memory
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from declaredesign.engine.allocator import MMAP_THRESHOLD, TRIM_THRESHOLD

ROOT = Path(__file__).resolve().parents[1]
_LINE = re.compile(r"^\s+(\S.*?)\s+([0-9.]+) us$")


def step_times(tree: Path, sims: int, env: dict[str, str]) -> dict[str, float]:
    """Return CPU microseconds per simulation of each step, from one profile_forum.py run."""
    script = tree / "benchmarks" / "profile_forum.py"
    res = subprocess.run([sys.executable, str(script), "--sims", str(sims), "--repeat", "2",
                          "--top", "0"], cwd=tree, env={**env, "PYTHONPATH": str(tree)},
                         capture_output=True, text=True, check=True)
    out = {}
    for line in res.stdout.splitlines():
        m = _LINE.match(line)
        if m:
            out[re.sub(r"\s+", " ", m.group(1))] = float(m.group(2))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, required=True, help="the other source tree")
    p.add_argument("--tree", type=Path, default=ROOT, help="this tree (default: here)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sims", type=int, default=1000)
    p.add_argument("--keep-freed-memory", action="store_true")
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    if args.keep_freed_memory:
        # the environment spelling of what engine/allocator.py sets in a pool worker
        env.update(MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD),
                   MALLOC_TRIM_THRESHOLD_=str(TRIM_THRESHOLD))
    trees = {"base": args.base.resolve(), "tree": args.tree.resolve()}
    best: dict[str, dict[str, float]] = {k: {} for k in trees}
    for _ in range(args.rounds):
        for name, path in trees.items():
            for step, us in step_times(path, args.sims, env).items():
                best[name][step] = min(best[name].get(step, us), us)
    print(f"CPU us per simulation (minimum of {args.rounds} rounds, batches of {args.sims})")
    print(f"{'step':58s} {'base':>8s} {'tree':>8s} {'ratio':>6s}")
    for step, b in best["base"].items():
        t = best["tree"].get(step, float("nan"))
        print(f"{step:58s} {b:8.1f} {t:8.1f} {t / b if b else float('nan'):6.2f}")


if __name__ == "__main__":
    main()
