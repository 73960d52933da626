"""Per-dataset cost of every estimatr estimator: batched kernel vs standalone loops.

Run: ``python benchmarks/estimators.py [--sims 1000] [--loop-sims 50]``.

Data sets are shaped like the forum's design: 10 classrooms, 5 treated, Poisson(22) + 5
students per class, 3 tests per student (~810 rows), and the student-means version
(~270 rows, as in the R reference data set). Compared: the batched kernel over all data
sets at once, the standalone function in a Python loop, and statsmodels OLS with
cluster-robust errors in a loop. A second table times lm_lin, iv_robust and
horvitz_thompson (kernel vs their standalone function in a loop) on the student-means
data with a pre-treatment covariate, an instrument and assignment probabilities added.
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

from declaredesign.assign import declare_ra  # noqa: E402
from declaredesign.batch import Batch  # noqa: E402
from declaredesign.estimate import (  # noqa: E402
    difference_in_means,
    horvitz_thompson,
    iv_robust,
    lm_lin,
    lm_robust,
)
from declaredesign.estimate.protocol import resolve_model  # noqa: E402


def kernel_of(model):
    """The batched kernel of ``model`` as ``kernel(batch, formula, **kwargs)``.

    Through the public estimator protocol: the spec is parsed per call, as cheap as the
    argument checks it replaces.
    """
    est, bound = resolve_model(model)
    return lambda batch, formula, **kw: est.kernel(batch, est.spec(formula, **{**bound, **kw}))


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
    lm_k, dim_k = kernel_of(lm_robust), kernel_of(difference_in_means)
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
    print()
    other = _other_estimators(students, a.sims, a.loop_sims)
    with pd.option_context("display.width", 120, "display.float_format", "{:,.1f}".format):
        print(other.to_string(index=False))


def _other_estimators(students: Batch, sims: int, loop_sims: int) -> pd.DataFrame:
    """Kernel vs standalone loop for lm_lin, iv_robust and horvitz_thompson."""
    rng = np.random.default_rng(2)
    n = students.n_rows
    x = rng.normal(size=n)
    inst = rng.normal(size=n)
    b = students.with_columns({"x": x, "inst": inst, "d": inst + x + rng.normal(size=n),
                               "p": np.full(n, 0.5)})
    frames = b.select_sims(np.arange(loop_sims)).split()
    cases = [
        ("lm_lin CR2", lm_lin, "av_score ~ treatment",
         {"covariates": "~ x", "clusters": "classroom"}),
        ("iv_robust HC2", iv_robust, "av_score ~ d | inst", {}),
        ("iv_robust CR2", iv_robust, "av_score ~ d | inst", {"clusters": "classroom"}),
        ("horvitz_thompson clustered complete", horvitz_thompson, "av_score ~ treatment",
         {"clusters": "classroom", "simple": False}),
        ("horvitz_thompson simple, condition_prs", horvitz_thompson, "av_score ~ treatment",
         {"condition_prs": "p"}),
        ("horvitz_thompson ra_declaration", horvitz_thompson, "av_score ~ treatment",
         {"ra_declaration": declare_ra(clusters="classroom", m=5)}),
    ]
    rows = []
    for label, func, formula, kw in cases:
        k = _time(kernel_of(func), b, formula, **kw) / sims

        def loop(func=func, formula=formula, kw=kw):
            for d in frames:
                func(formula, data=d, **kw)
        s = _time(loop, repeat=1) / loop_sims
        rows.append({"estimator": label, "batched_us": k * 1e6, "loop_us": s * 1e6,
                     "speedup": s / k})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
