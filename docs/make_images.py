"""Regenerate the figures and numbers in docs/ (python docs/make_images.py; a few minutes)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import declaredesign as dd  # noqa: E402
from declaredesign.design.search import find_sample_size  # noqa: E402

OUT = Path(__file__).parent / "images"
KW = {"dpi": 90}

# The forum's advice: 50,000 simulations.
varying = dd.diagnose_design(dd.examples.multilevel_varying(), sims=50_000, seed=1)
print(varying)
cols = ["estimator", "bias", "bias_se", "rmse", "rmse_se", "power", "power_se", "coverage",
        "coverage_se"]
print(varying.diagnosands[cols].to_string())
two = ["Random Intercept", "Average Score"]
varying.plot(estimators=two).savefig(OUT / "multilevel_distributions.png", **KW)
varying.plot_diagnosands(["bias", "rmse", "power", "coverage"]).savefig(
    OUT / "multilevel_diagnosands.png", **KW)

grid = dd.diagnose_design(
    dd.expand_design(dd.examples.multilevel_varying, n_classes=[6, 10, 16, 24, 32, 40]),
    sims=1000, seed=2)
print(grid)
grid.plot_power_curve("n_classes", estimators=two).savefig(OUT / "multilevel_power.png",
                                                           **KW)

res = find_sample_size(dd.examples.multilevel_varying, "n_classes",
                       estimator="Random Intercept", lower=10, upper=80, sims=500, seed=3)
print(res)
print(res.grid)
res.plot().savefig(OUT / "multilevel_search.png", **KW)
