"""Plots render (Agg) and show what they claim: panels, lines, bars and their values."""

import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import declaredesign as dd  # noqa: E402
from declaredesign.errors import DeclarationError  # noqa: E402
from declaredesign.plot import (  # noqa: E402
    plot_diagnosands,
    plot_diagnosis,
    plot_power_curve,
    report_html,
)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def dx():
    return dd.diagnose_design(dd.examples.two_arm_covariate(), sims=200, bootstrap_sims=20,
                              seed=1)


@pytest.fixture(scope="module")
def grid():
    designs = dd.expand_design(dd.examples.two_arm_covariate, N=[20, 60, 120])
    return dd.diagnose_design(designs, sims=100, bootstrap_sims=0, seed=2)


def test_sampling_distributions_one_panel_per_estimator(dx):
    fig = plot_diagnosis(dx, bins=25)
    axes = fig.axes
    assert [a.get_title(loc="left") for a in axes] == ["No controls", "With controls"]
    assert axes[-1].get_xlabel() == "Estimate"
    assert all(a.get_ylabel() == "Simulations" for a in axes)
    d = dx.diagnosands.set_index("estimator")
    for ax in axes:
        label = ax.get_title(loc="left")
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(bars) == 25
        # every simulation is counted once in the histogram
        assert sum(b.get_height() for b in bars) == d.loc[label, "n_sims"]
        lines = ax.get_lines()
        assert len(lines) == 2  # estimand and mean estimate
        assert lines[0].get_xdata()[0] == pytest.approx(d.loc[label, "mean_estimand"])
        assert lines[1].get_xdata()[0] == pytest.approx(d.loc[label, "mean_estimate"])
        text = " ".join(t.get_text() for t in ax.texts)
        assert "Bias" in text and "Coverage" in text and "Power" in text


def test_sampling_distributions_select_estimator(dx):
    fig = dx.plot(estimators="With controls")
    assert len(fig.axes) == 1 and fig.axes[0].get_title(loc="left") == "With controls"
    with pytest.raises(DeclarationError, match="estimators"):
        plot_diagnosis(dx, estimators=["nope"])


def test_power_curve_lines_bands_and_target(grid):
    fig = plot_power_curve(grid, x="N")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "N" and ax.get_ylabel() == "Power"
    lines = ax.get_lines()
    assert len(lines) == 3  # two estimators + the 80% line
    d = grid.diagnosands
    for line in lines[:2]:
        est = line.get_label()
        rows = d[d["estimator"] == est].sort_values("N")
        assert list(line.get_xdata()) == [20, 60, 120]
        assert np.allclose(line.get_ydata(), rows["power"])
    assert list(lines[2].get_ydata()) == [0.8, 0.8]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    # the band is +- 1.96 binomial SEs of the power (no bootstrap here)
    rows = d[d["estimator"] == lines[0].get_label()].sort_values("N")
    p, n = rows["power"].to_numpy(), rows["n_sims"].to_numpy()
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert ys.max() == pytest.approx(np.max(p + 1.959964 * np.sqrt(p * (1 - p) / n)),
                                     abs=1e-6)


def test_power_curve_needs_a_grid(dx, grid):
    with pytest.raises(DeclarationError, match="has none"):
        plot_power_curve(dx)
    with pytest.raises(DeclarationError, match="x must be a parameter"):
        plot_power_curve(grid, x="n_classes")
    assert grid.plot_power_curve().axes[0].get_xlabel() == "N"  # the only parameter


def test_diagnosands_bars_with_error_bars(dx):
    fig = plot_diagnosands(dx, ["bias", "rmse", "power", "coverage"])
    assert [a.get_title() for a in fig.axes] == ["Bias", "RMSE", "Power", "Coverage"]
    d = dx.diagnosands.set_index("estimator")
    for ax, name in zip(fig.axes, ["bias", "rmse", "power", "coverage"]):
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(bars) == 2
        # first estimator on top
        top, bottom = sorted(bars, key=lambda b: -b.get_y())
        assert top.get_width() == pytest.approx(d.loc["No controls", name])
        assert bottom.get_width() == pytest.approx(d.loc["With controls", name])
        assert ax.get_xlabel()
        # error bars: one segment per estimator, half-width 1.96 bootstrap SEs
        segs = [c for c in ax.collections if c.get_segments()]
        widths = sorted(s[1, 0] - s[0, 0] for c in segs for s in c.get_segments())
        want = sorted(2 * 1.959964 * d[name + "_se"])
        assert np.allclose(widths, want, rtol=1e-5)
    ticks = {t.get_text(): t.get_position()[1] for t in fig.axes[0].get_yticklabels()}
    assert ticks["No controls"] > ticks["With controls"]  # first estimator on top


def test_missing_matplotlib_names_the_extra(dx, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"declaredesign\[plot\]"):
        plot_diagnosis(dx)


def test_report_embeds_the_plots(dx, grid):
    text = report_html(dx, command="declaredesign diagnose ...")
    assert text.count("data:image/png;base64,") == 2
    assert "Sampling distributions" in text and "No controls" in text
    text = report_html(grid)
    assert text.count("data:image/png;base64,") == 1 and "Power by N" in text


def test_grid_labels_name_the_parameters():
    g = dd.diagnose_design(dd.expand_design(dd.examples.two_arm, N=[20, 40], ate=[0.2, 0.5]),
                           sims=50, bootstrap_sims=0, seed=3)
    fig = plot_power_curve(g, "N")
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()][:2]
    assert labels == ["DIM / ate=0.2", "DIM / ate=0.5"]
    fig = plot_diagnosis(g)
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title(loc="left") == "DIM / N=20 / ate=0.2"
    # a second estimand gets its own panel, labelled by inquiry
    fx = dd.diagnose_design(dd.examples.factorial(), sims=50, bootstrap_sims=0, seed=3)
    assert [a.get_title(loc="left") for a in plot_diagnosis(fx).axes] == [
        "OLS / ate_A", "OLS / ate_B", "OLS / interaction"]
