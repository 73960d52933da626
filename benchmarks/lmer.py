"""Time lmer and glmer: batched fast paths vs the general fit (and statsmodels for lmer).

Each dataset has 10 classes (5 treated), 27 students per class and 3 tests per
student: 810 rows, 270 students, fitted as ``score ~ treatment + (1 | student)``
by REML with Satterthwaite df.

glmer: 30 clusters of 20 rows, ``passed ~ treatment + x + (1 | cluster)`` (logistic)
and ``visits ~ treatment + x + offset(log(expo)) + (1 | cluster)`` (Poisson), Laplace
and nAGQ = 10; per-dataset times of the batched kernel vs the general fit.

lme4's datasets (issue 11): standalone lmer fits (REML + Satterthwaite) of the linear
models in tests/fixtures/lme4_datasets/ next to lme4's and lmerTest's times committed
in its JSON; ``--insteval PATH`` also fits the full InstEval (a CSV written by R, e.g.
``Rscript -e 'library(lme4); write.csv(InstEval, "/tmp/InstEval.csv", row.names=FALSE)'``;
never committed) and reports its time and peak memory.

Random slopes: ``score ~ treatment + (1 + treatment | classroom)`` on the forum's
20-class design with varying tests per student (issue 11), ``--slope-sims`` sims in
one batch (the data the design's estimator step sees), batched kernel + fallback.

Usage: python benchmarks/lmer.py [--sims 1000] [--slow-sims 20] [--glmer-sims 200]
       [--slope-sims 2000] [--slopes-only] [--datasets-only] [--dataset-repeat 3]
       [--insteval /tmp/InstEval.csv]
(with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 for CPU times comparable with R's)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import declaredesign as dd
from declaredesign.batch import Batch
from declaredesign.design.steps import EstimatorStep
from declaredesign.engine.seeding import chunk_rng, root_seed_sequence
from declaredesign.estimate import protocol
from declaredesign.estimate.mixed import glmer, lmer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.estimate._r_datasets is imported from the source tree

from tests.estimate._r_datasets import read_dataset  # noqa: E402

FORMULA = "score ~ treatment + (1 | student)"


def batched_path(model):
    """The batched path of ``model`` as a design runs it: kernel, then the fallback."""
    est = protocol.get_estimator(model)

    def run(batch, formula, **kwargs):
        return protocol.fit_batch(est, est.spec(formula, **kwargs), batch)
    return run


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


def make_glmer_batch(n_sims: int, seed: int = 2) -> Batch:
    rng = np.random.default_rng(seed)
    n_cl, per = 30, 20
    rows = n_cl * per
    cluster = np.tile(np.repeat(np.arange(1, n_cl + 1), per), n_sims)
    treatment = (np.argsort(rng.random((n_sims, n_cl)), axis=1) < n_cl // 2)[
        :, np.repeat(np.arange(n_cl), per)].astype(float).ravel()
    x = rng.normal(size=n_sims * rows)
    u = rng.normal(0, 0.8, (n_sims, n_cl))[:, np.repeat(np.arange(n_cl), per)].ravel()
    eta = -0.5 + 0.4 * treatment + 0.5 * x + u
    expo = rng.uniform(0.5, 2.0, n_sims * rows)
    return Batch({"passed": rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float),
                  "visits": rng.poisson(expo * np.exp(eta)).astype(float),
                  "expo": expo, "treatment": treatment, "x": x, "cluster": cluster},
                 np.repeat(np.arange(n_sims), rows), n_sims, id_columns=["cluster"])


def glmer_timings(n_sims: int, slow_sims: int) -> None:
    batch = make_glmer_batch(n_sims)
    kernel = batched_path(glmer)
    frames = batch.select_sims(range(slow_sims)).split()
    us = 1e6
    print(f"glmer, 600 rows / 30 clusters per dataset ({n_sims} batched, {slow_sims} general)")
    for formula, family in [("passed ~ treatment + x + (1 | cluster)", "binomial"),
                            ("visits ~ treatment + x + offset(log(expo)) + (1 | cluster)",
                             "poisson")]:
        for nagq in (1, 10):
            def fast(formula=formula, family=family, nagq=nagq):
                kernel(batch, formula, family=family, nAGQ=nagq)

            def general(formula=formula, family=family, nagq=nagq):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for d in frames:
                        glmer(formula, d, family=family, nAGQ=nagq)
            t_fast = best_of(fast, repeat=1) / n_sims
            t_gen = best_of(general, repeat=1) / slow_sims
            print(f"  {family:8s} nAGQ={nagq:<2d} batched {t_fast * us:10.1f} us, general "
                  f"{t_gen * us:10.1f} us per dataset (x{t_gen / t_fast:.0f})")


FIXTURES = ROOT / "tests" / "fixtures" / "lme4_datasets"
DATASET_FITS = ("sleepstudy_slopes", "sleepstudy_uncorrelated", "penicillin_crossed",
                "pastes_nested", "dyestuff", "dyestuff2_singular", "insteval_sub")


def dataset_timings(repeat: int) -> None:
    """Standalone lmer fits of lme4's datasets next to lme4's committed CPU times.

    Ours is the best CPU time (``time.process_time``) of ``repeat`` fits; R's are the
    committed medians of ``system.time()`` user + sys. Pin BLAS to one thread
    (``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1``) to compare like with like.
    """
    meta = json.loads((FIXTURES / "lme4_datasets_fits.json").read_text())
    fits = {f["id"]: f for f in meta["fits"]}
    print("lme4 datasets: lmer (REML, with Satterthwaite df) vs lme4 / lmerTest (R, "
          "committed medians); CPU seconds")
    print(f"  {'fit':26s} {'rows':>6s} {'ours':>8s} {'lme4':>8s} {'lmerTest+Satt':>14s} "
          f"{'ours/lmerTest':>14s}")
    for key in DATASET_FITS:
        r = fits[key]
        d = read_dataset(FIXTURES, meta, r["data"])

        def fit(r=r, d=d):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lmer(r["formula"], d, REML=r["REML"])
        fit()  # warm up (imports, first-call caches)
        t = best_of(fit, repeat=repeat, clock=time.process_time)
        tm = r["timing"]
        r_lme4 = tm["lme4_fit"]["cpu_median_s"]
        r_test = tm["lmerTest_fit_and_satterthwaite"]["cpu_median_s"]
        print(f"  {key:26s} {len(d):6d} {t:8.4f} {r_lme4:8.3f} {r_test:14.3f} "
              f"{t / r_test:14.2f}")


def insteval_timing(path: str) -> None:
    """One fit of the full InstEval: elapsed time, traced and resident peak memory."""
    meta = json.loads((FIXTURES / "lme4_datasets_fits.json").read_text())
    lme4_s = meta["full_insteval_timing"]["lme4_fit"]["elapsed_s"]
    d = pd.read_csv(path, dtype={"s": str, "d": str, "service": str, "dept": str})
    formula = "y ~ service + (1 | s) + (1 | d)"
    tracemalloc.start()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmer(formula, d)
    t = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"full InstEval {formula!r}, {len(d)} rows: ours {t:.2f} s (REML + Satterthwaite), "
          f"lme4 {lme4_s:.2f} s; peak traced {peak:.0f} MiB, peak RSS {rss:.0f} MiB; "
          f"REML criterion {fit.REMLcrit:.4f}")


def slopes_timing(n_sims: int) -> None:
    """Time the issue's design formulas on the 20-class forum design, batched.

    Random slopes ``(1 + treatment | classroom)`` and the class and student intercepts
    written as R users write them, ``(1 | classroom) + (1 | student)``: the kernel plus the
    general fit of what it declines, and the largest difference from per-dataset fits on
    a few simulations (estimates on the SE scale, SEs relative).
    """
    design = dd.examples.multilevel_varying(n_classes=20)
    stop = next(i for i, s in enumerate(design.steps) if isinstance(s, EstimatorStep))
    batch = design.run_data_steps(n_sims, chunk_rng(root_seed_sequence(1), 0), stop=stop)
    run = batched_path(lmer)
    est = protocol.get_estimator(lmer)
    for formula, r_ms in (("score ~ treatment + (1 + treatment | classroom)", 62),
                          ("score ~ treatment + (1 | classroom) + (1 | student)", 72)):
        run(batch.select_sims(range(min(5, n_sims))), formula)  # warm up
        declined = len(est.kernel(batch, est.spec(formula)).fallback)
        t = best_of(lambda f=formula: run(batch, f), repeat=1) / n_sims
        out = run(batch, formula)
        diff_est = diff_se = 0.0
        for s in range(min(3, n_sims)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                one = lmer(formula, batch.select_sims([s]).to_pandas()).tidy()
            mine = out[out["sim"] == s].set_index("term")
            one = one[one["term"].isin(mine.index)]   # the fixed effects
            mine = mine.loc[one["term"]]
            se = one["std_error"].to_numpy()
            diff_est = max(diff_est, float(np.nanmax(
                np.abs(mine["estimate"].to_numpy() - one["estimate"].to_numpy()) / se)))
            diff_se = max(diff_se, float(np.nanmax(
                np.abs(mine["std_error"].to_numpy() / se - 1))))
        print(f"lmer {formula!r}, 20-class forum design, {n_sims} sims batched: "
              f"{t * 1e3:.2f} ms per simulation ({declined} sims to the general fit; "
              f"R lmerTest ~{r_ms} ms); vs per-dataset fits: estimate {diff_est:.1e} SE, "
              f"SE {diff_se:.1e} rel")


def best_of(f, repeat=3, clock=time.perf_counter):
    times = []
    for _ in range(repeat):
        t0 = clock()
        f()
        times.append(clock() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--slow-sims", type=int, default=20)
    ap.add_argument("--glmer-sims", type=int, default=200)
    ap.add_argument("--glmer-only", action="store_true")
    ap.add_argument("--datasets-only", action="store_true")
    ap.add_argument("--dataset-repeat", type=int, default=3)
    ap.add_argument("--insteval", default=None)
    ap.add_argument("--slope-sims", type=int, default=2000)
    ap.add_argument("--slopes-only", action="store_true")
    args = ap.parse_args()
    if args.slopes_only:
        slopes_timing(args.slope_sims)
        return
    if args.datasets_only:
        dataset_timings(args.dataset_repeat)
        if args.insteval:
            insteval_timing(args.insteval)
        return
    if args.glmer_only:
        glmer_timings(args.glmer_sims, min(args.slow_sims, 5))
        return
    batch = make_batch(args.sims)
    kernel = batched_path(lmer)
    kernel(batch.select_sims(range(5)), FORMULA)  # warm up imports
    t_fast = best_of(lambda: kernel(batch, FORMULA)) / args.sims
    nested_batch = batch.with_columns(cls=np.tile(np.repeat(np.arange(10), 81), args.sims))
    nested = "score ~ treatment + (1 | cls/student)"
    t_nested = best_of(lambda: kernel(nested_batch, nested), repeat=1) / args.sims
    # R's usual spelling of the same model: students are numbered across classes, so
    # the data show them nested and the kernel takes the nested path.
    two = "score ~ treatment + (1 | cls) + (1 | student)"
    t_two = best_of(lambda: kernel(nested_batch, two), repeat=1) / args.sims

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
    print(f"  (1 | cls) + (1 | student), nested  : {t_two * us:10.1f} us per dataset")
    print(f"  general PLS fit   : {t_gen * us:10.1f} us per dataset "
          f"(x{t_gen / t_fast:.0f} slower)")
    print(f"  statsmodels MixedLM (no df): {t_sm * us:10.1f} us per dataset "
          f"(x{t_sm / t_fast:.0f} slower)")
    glmer_timings(args.glmer_sims, min(args.slow_sims, 5))
    dataset_timings(args.dataset_repeat)
    if args.insteval:
        insteval_timing(args.insteval)
    slopes_timing(args.slope_sims)


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    main()
