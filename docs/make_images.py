"""Regenerate the figures and numbers in docs/ (python docs/make_images.py; a few minutes)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import declaredesign as dd  # noqa: E402
from declaredesign.design.search import find_sample_size  # noqa: E402

OUT = Path(__file__).parent / "images"
KW = {"dpi": 90}

balanced = dd.diagnose_design(dd.examples.multilevel(), sims=5000, seed=1)
print(balanced)
varying = dd.diagnose_design(dd.examples.multilevel_varying(), sims=5000, seed=1)
print(varying)
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
