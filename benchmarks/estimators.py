"""Per-dataset cost of lm_robust / difference_in_means: batched kernel vs loops.

Run: ``python benchmarks/estimators.py [--sims 1000] [--loop-sims 50]``.

Data sets are shaped like the forum's design: 10 classrooms, 5 treated, Poisson(22) + 5
students per class, 3 tests per student (~810 rows), and the student-means version
(~270 rows, as in the R reference data set). Compared: the batched kernel over all data
sets at once, the standalone function in a Python loop, and statsmodels OLS with
cluster-robust errors in a loop.
"""

from __future__ import annotations

import argparse
import os
import time

# Small-matrix LAPACK calls (the standalone CR2 path) crawl when BLAS threads fight for
# a shared 2-core machine; time every method single-threaded, as process workers run.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from declaredesign.batch import Batch  # noqa: E402
from declaredesign.estimate import difference_in_means, lm_robust  # noqa: E402
from declaredesign.estimate._protocol import get_batched  # noqa: E402


def forum_batch(n_sims: int, seed: int = 1) -> tuple[Batch, Batch]:
    """Test-level and student-means batches of ``n_sims`` forum-like data sets."""
    rng = np.random.default_rng(seed)
    n_class = 10
    n_stud = rng.poisson(22, size=(n_sims, n_class)) + 5
    stud_sim = np.repeat(np.repeat(np.arange(n_sims), n_class), n_stud.ravel())
    stud_class = np.repeat(np.tile(np.arange(1, n_class + 1), n_sims), n_stud.ravel())
    treated = np.argsort(rng.random((n_sims, n_class)), axis=1) < 5
    t_stud = treated.ravel()[(stud_sim * n_class + stud_class - 1)].astype(float)
    class_eff = rng.normal(0, 0.001, size=(n_sims, n_class)).ravel()[stud_sim * n_class +
                                                                     stud_class - 1]
    base = rng.uniform(0.4, 0.8, size=len(stud_sim)) + class_eff
    n_s = len(stud_sim)
    sim = np.repeat(stud_sim, 3)
    score = np.repeat(base, 3) + rng.normal(0, 0.001, size=3 * n_s)
    tests = Batch({"score": score, "treatment": np.repeat(t_stud, 3),
                   "classroom": np.repeat(stud_class, 3)}, sim=sim, n_sims=n_sims,
                  id_columns=["classroom"])
    means = score.reshape(-1, 3).mean(axis=1)
    students = Batch({"av_score": means, "treatment": t_stud, "classroom": stud_class},
                     sim=stud_sim, n_sims=n_sims, id_columns=["classroom"])
    return tests, students


def _time(f, *args, repeat: int = 3, **kwargs) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        f(*args, **kwargs)
        best = min(best, time.perf_counter() - t)
    return best


def _standalone_loop(frames, formula):
    for d in frames:
        lm_robust(formula, d, clusters="classroom")


def _statsmodels_loop(frames, y):
    import statsmodels.api as sm
    for f in frames:
        X = np.column_stack([np.ones(len(f)), f["treatment"].to_numpy()])
        sm.OLS(f[y].to_numpy(), X).fit(cov_type="cluster",
                                       cov_kwds={"groups": f["classroom"].to_numpy()})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--loop-sims", type=int, default=50)
    a = ap.parse_args()
    tests, students = forum_batch(a.sims)
    print(f"{a.sims} data sets; test level {tests.n_rows / a.sims:.0f} rows, "
          f"student means {students.n_rows / a.sims:.0f} rows, 10 clusters each\n")
    lm_k, dim_k = get_batched(lm_robust), get_batched(difference_in_means)
    rows = []
    for label, batch, y in (("tests (~810 rows)", tests, "score"),
                            ("student means (~270 rows)", students, "av_score")):
        f = f"{y} ~ treatment"
        frames = batch.select_sims(np.arange(a.loop_sims)).split()
        per = {
            "batched lm_robust CR2": _time(lm_k, batch, f, clusters="classroom") / a.sims,
            "batched lm_robust HC2": _time(lm_k, batch, f) / a.sims,
            "batched difference_in_means (clustered)":
                _time(dim_k, batch, f, clusters="classroom") / a.sims,
            "standalone lm_robust CR2 loop":
                _time(_standalone_loop, frames, f, repeat=1) / a.loop_sims,
            "statsmodels OLS cluster loop":
                _time(_statsmodels_loop, frames, y, repeat=1) / a.loop_sims,
        }
        base = per["batched lm_robust CR2"]
        for name, t in per.items():
            rows.append({"data": label, "method": name, "us_per_dataset": t * 1e6,
                         "x_batched_CR2": t / base})
    out = pd.DataFrame(rows)
    with pd.option_context("display.width", 120, "display.float_format", "{:,.1f}".format):
        print(out.to_string(index=False))


if __name__ == "__main__":
    main()
