"""Time the batched random-intercept GLMM on the issue-11 design (done-means 1).

The forum's design with a real effect, 20 classes, students with 1 + Poisson(2) tests
(``dd.examples.multilevel_varying(n_classes=20)``, about 1,500 rows and 500 students
per simulation), plus the binary outcome R's script draws (``passed = rbinom(N, 1,
score)``, see benchmarks/r/README.md) and a count (``mistakes = rpois(N, 3 (1 - score))``).
Models: ``passed ~ treatment + (1 | student)`` (logit, probit) and ``mistakes ~ treatment
+ (1 | student)`` (Poisson, log link), fitted as a design's estimator step fits them
(the batched kernel, then the per-simulation fallback for what it declines).

Printed per model: CPU ms per simulation of the batched path at ``--sims`` (BLAS on one
thread), of the per-dataset ``dd.glmer`` on ``--slow-sims`` of the same simulations in
the same process, their ratio, how many simulations went to the fallback, and the
largest difference between the two paths on those simulations (estimates on the SE
scale, SEs relative). R's figure (lme4::glmer + tidy inside DeclareDesign, CPU ms per
simulation) comes from benchmarks/r/r_timings.csv.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/glmer_design.py [--sims 2000]
       [--slow-sims 10] [--models logit,probit,poisson]
"""

from __future__ import annotations

import argparse
import csv
import os
import time
import warnings
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

import declaredesign as dd  # noqa: E402
from declaredesign.batch import Batch  # noqa: E402
from declaredesign.design.steps import EstimatorStep  # noqa: E402
from declaredesign.engine.seeding import chunk_rng, root_seed_sequence  # noqa: E402
from declaredesign.estimate import protocol  # noqa: E402

MODELS = {
    "logit": ("passed ~ treatment + (1 | student)", dict(family="binomial")),
    "probit": ("passed ~ treatment + (1 | student)", dict(family="binomial", link="probit")),
    "poisson": ("mistakes ~ treatment + (1 | student)", dict(family="poisson")),
}
R_TIMINGS = Path(__file__).resolve().parent / "r" / "r_timings.csv"


def design_batch(n_sims: int, seed: int = 1) -> Batch:
    """The data the design's estimator step sees, with the GLMM outcomes added."""
    design = dd.examples.multilevel_varying(n_classes=20)
    stop = next(i for i, s in enumerate(design.steps) if isinstance(s, EstimatorStep))
    batch = design.run_data_steps(n_sims, chunk_rng(root_seed_sequence(seed), 0), stop=stop)
    rng = np.random.default_rng(seed + 1000)
    score = np.asarray(batch["score"])
    return batch.with_columns(passed=rng.binomial(1, score).astype(float),
                              mistakes=rng.poisson(3 * (1 - score)).astype(float))


def r_figure() -> str:
    """R's CPU ms per simulation of the logit GLMM estimator, from the committed CSV."""
    try:
        with R_TIMINGS.open() as f:
            for row in csv.DictReader(f):
                if row["what"] == "design_with_estimator" and row["model"] == \
                        "glmer_logit_student":
                    return f"{float(row['note'].split()[2]):.1f} elapsed, " \
                           f"{float(row['cpu_ms_per_sim']) - 6.8:.1f} CPU"
    except (OSError, KeyError, ValueError, IndexError):
        pass
    return "n/a"


def cpu(f):
    """CPU seconds of one call of f, and its result."""
    t0 = time.process_time()
    out = f()
    return time.process_time() - t0, out


def agreement(batched, frames, formula, kw):
    """Largest estimate (SE scale) and SE (relative) differences against dd.glmer."""
    worst_est = worst_se = 0.0
    for s, d in enumerate(frames):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = dd.glmer(formula, d, **kw).tidy(effects="fixed").set_index("term")
        got = batched[batched.sim == s].set_index("term")
        if got["estimate"].isna().any():
            continue
        got = got.loc[want.index]
        worst_est = max(worst_est, float(np.max(np.abs(got.estimate - want.estimate)
                                                / want.std_error)))
        worst_se = max(worst_se, float(np.max(np.abs(got.std_error / want.std_error - 1))))
    return worst_est, worst_se


def run_model(name: str, batch: Batch, slow_sims: int) -> None:
    formula, kw = MODELS[name]
    est = protocol.get_estimator(dd.glmer)
    spec = est.spec(formula, **kw)
    protocol.fit_batch(est, spec, batch.select_sims(range(min(3, batch.n_sims))))  # warm up
    t_kernel, res = cpu(lambda: est.kernel(batch, spec))
    t_batched, out = cpu(lambda: protocol.fit_batch(est, spec, batch))
    small = batch.select_sims(range(slow_sims))
    frames = small.split()

    def per_dataset():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for d in frames:
                dd.glmer(formula, d, **kw)
    t_general, _ = cpu(per_dataset)
    S = batch.n_sims
    ms, ms_gen = t_batched / S * 1e3, t_general / slow_sims * 1e3
    d_est, d_se = agreement(out[out.sim < slow_sims], frames, formula, kw)
    print(f"  {name:8s} batched {ms:8.2f} ms/sim (kernel alone {t_kernel / S * 1e3:.2f}; "
          f"{len(res.fallback)} of {S} sims to the fallback); per-dataset dd.glmer "
          f"{ms_gen:8.1f} ms/sim (x{ms_gen / ms:.0f}); max diff on {slow_sims} sims: "
          f"estimate {d_est:.1e} SE, SE {d_se:.1e} rel")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=2000)
    ap.add_argument("--slow-sims", type=int, default=10)
    ap.add_argument("--models", default="logit,probit,poisson")
    args = ap.parse_args()
    batch = design_batch(args.sims)
    rows = len(batch["passed"]) / args.sims
    print(f"glmer '(1 | student)' on the 20-class forum design, {args.sims} sims "
          f"({rows:.0f} rows per sim), CPU time, BLAS threads "
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}; R DeclareDesign + lme4 logit "
          f"estimator: {r_figure()} ms/sim")
    for name in args.models.split(","):
        run_model(name.strip(), batch, min(args.slow_sims, args.sims))


if __name__ == "__main__":
    main()
