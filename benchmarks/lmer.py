"""Time lmer on forum-like datasets: batched fast path vs general fit vs statsmodels.

Each dataset has 10 classes (5 treated), 27 students per class and 3 tests per
student: 810 rows, 270 students, fitted as ``score ~ treatment + (1 | student)``
by REML with Satterthwaite df.

Usage: python benchmarks/lmer.py [--sims 1000] [--slow-sims 20]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from declaredesign.batch import Batch
from declaredesign.estimate._protocol import get_batched
from declaredesign.estimate.mixed import lmer

FORMULA = "score ~ treatment + (1 | student)"


def make_batch(n_sims: int, seed: int = 1) -> Batch:
    rng = np.random.default_rng(seed)
    n_cls, per_cls, n_tests = 10, 27, 3
    n_st = n_cls * per_cls
    rows = n_st * n_tests
    cls = np.repeat(np.arange(n_cls), per_cls * n_tests)
    student = np.repeat(np.arange(1, n_st + 1), n_tests)
    treated = np.argsort(rng.random((n_sims, n_cls)), axis=1) < n_cls // 2
    treatment = treated[:, cls].astype(float).ravel()
    baseline = rng.uniform(0.4, 0.8, (n_sims, n_st))[:, student - 1].ravel()
    score = baseline + rng.normal(0, 0.01, n_sims * rows) + rng.normal(0, 0.001, (n_sims, n_cls))[
        :, cls].ravel()
    return Batch({"score": score, "treatment": treatment,
                  "student": np.tile(student, n_sims)},
                 np.repeat(np.arange(n_sims), rows), n_sims, id_columns=["student"])


def best_of(f, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--slow-sims", type=int, default=20)
    args = ap.parse_args()
    batch = make_batch(args.sims)
    kernel = get_batched(lmer)
    kernel(batch.select_sims(range(5)), FORMULA)  # warm up imports
    t_fast = best_of(lambda: kernel(batch, FORMULA)) / args.sims
    nested_batch = batch.with_columns(cls=np.tile(np.repeat(np.arange(10), 81), args.sims))
    nested = "score ~ treatment + (1 | cls/student)"
    t_nested = best_of(lambda: kernel(nested_batch, nested), repeat=1) / args.sims

    frames = batch.select_sims(range(args.slow_sims)).split()
    t_gen = best_of(lambda: [lmer(FORMULA, d) for d in frames], repeat=1) / args.slow_sims

    t_sm = np.nan
    try:
        import statsmodels.formula.api as smf

        def sm():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for d in frames:
                    smf.mixedlm("score ~ treatment", d, groups=d["student"]).fit(reml=True)
        t_sm = best_of(sm, repeat=1) / args.slow_sims
    except ImportError:
        pass

    us = 1e6
    print(f"lmer {FORMULA!r}, REML + Satterthwaite, 810 rows / 270 groups per dataset")
    print(f"  batched fast path : {t_fast * us:10.1f} us per dataset ({args.sims} datasets)")
    print(f"  nested (1 | cls/student) fast path : {t_nested * us:10.1f} us per dataset")
    print(f"  general PLS fit   : {t_gen * us:10.1f} us per dataset "
          f"(x{t_gen / t_fast:.0f} slower)")
    print(f"  statsmodels MixedLM (no df): {t_sm * us:10.1f} us per dataset "
          f"(x{t_sm / t_fast:.0f} slower)")


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    main()
