"""glmer on lme4's datasets, side by side with lme4's committed fit times (issue 11).

Fits the GLMMs of ``tests/fixtures/lme4_datasets`` (cbpp cbind / proportion with
weights / probit, grouseticks with three intercepts, the VerbAgg subsample) and
prints, per model, our median elapsed and CPU seconds next to lme4's (from the
fixture JSON, measured by ``make_fixtures.R``), the ratio, and the agreement with
lme4 (largest fixed-effect difference from the tight fit, logLik minus lme4's).

Run ``OMP_NUM_THREADS=1 python benchmarks/glmm_datasets.py``: on a shared machine
multithreaded BLAS on these small systems costs more than it gains.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from declaredesign.estimate.mixed import glmer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.estimate._r_datasets is imported from the source tree

from tests.estimate._r_datasets import read_dataset  # noqa: E402

HERE = ROOT / "tests" / "fixtures" / "lme4_datasets"
MODELS = {
    "cbpp_cbind": "cbpp", "cbpp_proportion": "cbpp", "cbpp_probit": "cbpp",
    "grouseticks": "grouseticks", "verbagg_sub": "VerbAgg_sub",
}


def fit_once(fixtures: dict, fid: str):
    """Fit one model as lme4 did (the same formula, ``scale(HEIGHT)`` included)."""
    fits = {f["id"]: f for f in fixtures["fits"]}
    r = fits[fid + "_tight"]
    d = read_dataset(HERE, fixtures, MODELS[fid])
    kw = dict(family=r["family"], link=r["link"])
    if r.get("weights"):
        kw["weights"] = r["weights"]
    formula = r["formula"]
    t0, c0 = time.perf_counter(), time.process_time()
    fit = glmer(formula, d, **kw)
    return fit, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    """Time every model and print one line each."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = ap.parse_args()
    fixtures = json.loads((HERE / "lme4_datasets_fits.json").read_text())
    fits = {f["id"]: f for f in fixtures["fits"]}
    warnings.simplefilter("ignore")
    print(f"{'model':<16} {'ours s':>8} {'cpu s':>8} {'lme4 s':>8} {'ratio':>6} "
          f"{'|dfixef|':>9} {'dlogLik':>10}")
    for fid in args.only:
        runs = [fit_once(fixtures, fid) for _ in range(args.repeat)]
        fit = runs[-1][0]
        el, cpu = np.median([r[1] for r in runs]), np.median([r[2] for r in runs])
        lme4 = fits[fid + "_default"]["timing"]["lme4_fit"]["elapsed_median_s"]
        dfix = np.max(np.abs(fit.fixef.to_numpy() - fits[fid + "_tight"]["fixef"]))
        dll = fit.logLik - fits[fid + "_default"]["logLik"]
        print(f"{fid:<16} {el:8.3f} {cpu:8.3f} {lme4:8.3f} {el / lme4:6.2f} {dfix:9.1e} "
              f"{dll:10.2e}")


if __name__ == "__main__":
    main()
