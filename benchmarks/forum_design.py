"""Benchmark: simulations of the forum's multilevel design per second.

Prints the time per simulation of ``dd.simulate_design(dd.examples.multilevel())``
against a plain per-dataset loop (pandas + statsmodels, the way one would write it
without this library) measured in the same run on the same machine, and the ratio.

    python benchmarks/forum_design.py --sims 5000
    python benchmarks/forum_design.py --sims 50000 --baseline-sims 50 --mixedlm
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np
import pandas as pd

import declaredesign as dd


def baseline_one(rng: np.random.Generator, with_mixedlm: bool) -> list[float]:
    """One simulation written the obvious way: pandas frames and statsmodels fits."""
    import statsmodels.formula.api as smf

    n_classes = 10
    classes = pd.DataFrame({"classroom": np.arange(n_classes),
                            "class_effect": rng.normal(0, 0.001, n_classes),
                            "n_students": rng.poisson(20, n_classes) + 5})
    school_effect = rng.normal(0, 0.001)
    students = classes.loc[classes.index.repeat(classes["n_students"])].reset_index(drop=True)
    students["student"] = np.arange(len(students))
    students["test_ability"] = rng.uniform(-0.01, 0.01, len(students))
    students["student_baseline"] = rng.uniform(0.4, 0.8, len(students))
    tests = students.loc[students.index.repeat(3)].reset_index(drop=True)
    tests["test_effect"] = rng.normal(tests["test_ability"], 0.001)
    eff = school_effect + tests["class_effect"] + tests["test_effect"]
    tests["y0"] = tests["student_baseline"] + eff
    tests["y1"] = tests["student_baseline"] + 2 * eff
    treated = rng.permutation(n_classes)[: n_classes // 2]
    tests["treatment"] = tests["classroom"].isin(treated).astype(int)
    tests["score"] = np.where(tests["treatment"] == 1, tests["y1"], tests["y0"])
    out = [float((tests["y1"] - tests["y0"]).mean())]
    fit = smf.ols("score ~ treatment", data=tests).fit(
        cov_type="cluster", cov_kwds={"groups": tests["classroom"]})
    out.append(fit.params["treatment"])
    means = tests.groupby(["classroom", "student", "treatment"], as_index=False)["score"].mean()
    fit2 = smf.ols("score ~ treatment", data=means).fit(
        cov_type="cluster", cov_kwds={"groups": means["classroom"]})
    out.append(fit2.params["treatment"])
    if with_mixedlm:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = smf.mixedlm("score ~ treatment", tests, groups=tests["student"]).fit(reml=True)
        out.append(m.params["treatment"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sims", type=int, default=5000)
    p.add_argument("--baseline-sims", type=int, default=30)
    p.add_argument("--mixedlm", action="store_true",
                   help="include statsmodels MixedLM in the baseline (slow)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    estimators = ("lmer", "test_level", "dim", "student_means") if args.mixedlm else \
        ("test_level", "dim", "student_means")
    design = dd.examples.multilevel(estimators=estimators)

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    for _ in range(args.baseline_sims):
        baseline_one(rng, args.mixedlm)
    base = (time.perf_counter() - t0) / args.baseline_sims

    t0 = time.perf_counter()
    sims = dd.simulate_design(design, sims=args.sims, seed=args.seed, progress=False)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    dd.diagnose_design(sims, bootstrap_sims=100, seed=args.seed)
    t_dx = time.perf_counter() - t0
    ours = t_sim / args.sims
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"forum design, estimators: {', '.join(design.estimator_labels)}")
    print(f"baseline (pandas + statsmodels loop, {args.baseline_sims} sims): "
          f"{base * 1e3:9.3f} ms/sim")
    print(f"declaredesign simulate_design ({args.sims} sims):            "
          f"{ours * 1e3:9.3f} ms/sim   total {t_sim:.2f} s")
    print(f"diagnosis with 100 bootstrap replicates:                     {t_dx:.2f} s")
    print(f"speed-up: {base / ours:.1f}x    peak memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
