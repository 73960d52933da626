"""Pictures of a diagnosis: sampling distributions, power curves, estimator comparison."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from .._validation import check_positive_int, check_probability, fail
from ..design.diagnosis import diagnosand_title
from . import _common as c

__all__ = ["plot_diagnosands", "plot_diagnosis", "plot_power_curve"]

_Z95 = 1.959963984540054

# Reference lines drawn by default on the comparison plot: what "good" looks like.
_REFERENCE = {"bias": 0.0, "power": 0.8, "coverage": 0.95}


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return "NA"
    if v != 0 and abs(v) < 0.01:
        return f"{v:.2g}"
    return f"{v:.3f}" if abs(v) < 1 else f"{v:.3g}"


def _value_se(row: pd.Series, name: str, se: float) -> str:
    v = float(row[name]) if name in row.index else np.nan
    return _fmt(v) + ("" if not np.isfinite(se) else f" ({_fmt(se)})")


def plot_diagnosis(diagnosis: Any, *, estimators: Sequence[str] | str | None = None,
                   inquiry: str | None = None, bins: int = 40,
                   figsize: tuple[float, float] | None = None) -> Any:
    """Each estimator's sampling distribution against the estimand.

    One panel per estimator (and per design of a grid), sharing the x axis so the
    spreads compare at a glance: a histogram of the estimates over the simulations,
    a dashed line at the mean estimand, a solid line at the mean estimate (their gap
    is the bias), and the bias, RMSE, coverage and power with their Monte Carlo
    standard errors in the corner.

    Parameters
    ----------
    diagnosis : Diagnosis
        From :func:`~declaredesign.diagnose_design`.
    estimators : str or list of str, optional
        Estimator labels to show, in this order (default: all).
    inquiry : str, optional
        Only the estimators of this inquiry.
    bins : int, default 40
        Histogram bins.
    figsize : (width, height), optional
        Inches; by default 6.5 wide and 1.9 per panel.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import declaredesign as dd
    >>> d = (dd.declare_model(N=50, U=dd.normal())
    ...      + dd.declare_potential_outcomes("Y ~ 0.3 * Z + U")
    ...      + dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
    ...      + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
    ...      + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
    ...      + dd.declare_estimator("Y ~ Z", inquiry="ate", label="OLS"))
    >>> fig = plot_diagnosis(dd.diagnose_design(d, sims=100, bootstrap_sims=20, seed=1))
    >>> fig.axes[0].get_title(loc="left")
    'OLS'
    """
    func = "plot_diagnosis"
    c.check_diagnosis(func, diagnosis)
    bins = check_positive_int(func, "bins", bins)
    plt = c.pyplot()
    d = c.select(func, diagnosis, estimators, inquiry)
    sims = diagnosis.simulations
    if "estimate" not in sims.columns:
        fail(func, "diagnosis", diagnosis, "a diagnosis whose simulations have estimates",
             shown="<Diagnosis>")
    ok = ~c.failed(sims)
    keys = [k for k in diagnosis.group_by if k in sims.columns]
    titles = c.labels(d, [k for k in diagnosis.group_by if k != "estimator"],
                      params=diagnosis.parameters)
    n = len(d)
    fig, axes = plt.subplots(n, 1, sharex=True, squeeze=False,
                             figsize=figsize or (6.5, 0.9 + 1.9 * n), layout="constrained")
    for i, (ax, (_, row)) in enumerate(zip(axes[:, 0], d.iterrows())):
        mask = c.rows_of(sims, row, keys) & ok
        est = sims.loc[mask, "estimate"].to_numpy(dtype=float)
        est = est[np.isfinite(est)]
        colour = c.PALETTE[i % len(c.PALETTE)]
        if len(est):
            ax.hist(est, bins=bins, color=colour, alpha=0.55, edgecolor="white",
                    linewidth=0.4)
        estimand = float(row["mean_estimand"]) if "mean_estimand" in row.index else np.nan
        mean_est = float(np.mean(est)) if len(est) else np.nan
        # The estimand is drawn on top: with no bias the two lines coincide.
        if np.isfinite(estimand):
            ax.axvline(estimand, color="black", linestyle="--", linewidth=1.2, zorder=4,
                       label="estimand (mean)")
        if np.isfinite(mean_est):
            ax.axvline(mean_est, color=colour, linewidth=2.2, zorder=3,
                       label="estimate (mean)")
        lines = []
        for name, title in (("bias", "Bias"), ("rmse", "RMSE"), ("coverage", "Coverage"),
                            ("power", "Power")):
            if name in row.index:
                se = float(c.se_of(d.iloc[[i]], name)[0])
                lines.append(f"{title} {_value_se(row, name, se)}")
        ax.text(0.99, 0.95, "\n".join(lines), transform=ax.transAxes, ha="right", va="top",
                fontsize=8, family="monospace",
                bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.8",
                      "alpha": 0.9})
        ax.set_title(titles[i], loc="left", fontsize=10, fontweight="bold")
        ax.set_ylabel("Simulations")
        c.style_axes(ax)
        if i == 0:
            ax.legend(loc="upper left", fontsize=8, frameon=False)
    axes[-1, 0].set_xlabel("Estimate")
    n_sims = d["n_sims"].max() if "n_sims" in d.columns else None
    if n_sims is not None:
        fig.suptitle(f"Sampling distributions over {int(n_sims):,} simulations "
                     "(Monte Carlo SEs in parentheses)", fontsize=10)
    return fig


def plot_power_curve(diagnosis: Any, x: str | None = None, *, diagnosand: str = "power",
                     estimators: Sequence[str] | str | None = None,
                     inquiry: str | None = None, target: float | None = 0.8,
                     level: float = 0.95, ax: Any = None,
                     figsize: tuple[float, float] = (6.5, 4.0)) -> Any:
    """Plot a diagnosand (power by default) against a design parameter, a line per estimator.

    For diagnoses of :func:`~declaredesign.expand_design` grids. Each line carries a
    band of +- z Monte Carlo standard errors (the bootstrap SEs, or the binomial SE
    of a proportion without a bootstrap) and a dashed line marks the ``target``
    (80% power).

    Parameters
    ----------
    diagnosis : Diagnosis
        A diagnosis of several designs differing in parameter ``x``.
    x : str, optional
        The parameter on the x axis; default the diagnosis' only (or first) parameter.
    diagnosand : str, default "power"
    estimators : str or list of str, optional
        Estimator labels to draw (default: all).
    inquiry : str, optional
    target : float or None, default 0.8
        Where to draw the horizontal target line (None: none).
    level : float, default 0.95
        Coverage of the Monte Carlo band (0.95 draws +- 1.96 SE).
    ax : matplotlib Axes, optional
        Draw into this Axes instead of a new figure.
    figsize : (width, height), default (6.5, 4)

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import declaredesign as dd
    >>> dx = dd.diagnose_design(dd.expand_design(dd.examples.two_arm, N=[20, 60]),
    ...                         sims=100, bootstrap_sims=0, seed=1)
    >>> plot_power_curve(dx, x="N").axes[0].get_xlabel()
    'N'
    """
    func = "plot_power_curve"
    c.check_diagnosis(func, diagnosis)
    level = check_probability(func, "level", level, open_interval=True)
    params = list(diagnosis.parameters)
    if x is None:
        if not params:
            fail(func, "x", x, "a design parameter; this diagnosis has none (diagnose an "
                 "expand_design(...) grid)")
        x = params[0]
    if x not in diagnosis.diagnosands.columns:
        fail(func, "x", x, "a parameter of the diagnosis (" + (", ".join(params) or "none")
             + ")")
    if diagnosand not in diagnosis.diagnosand_names:
        fail(func, "diagnosand", diagnosand, "one of the diagnosis' diagnosands ("
             + ", ".join(diagnosis.diagnosand_names) + ")")
    plt = c.pyplot()
    z = float(norm.ppf(0.5 + level / 2))
    d = c.select(func, diagnosis, estimators, inquiry)
    line_cols = [k for k in diagnosis.group_by if k not in ("design", x)]
    line_labels = c.labels(d, line_cols, within=[x], params=diagnosis.parameters)
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    else:
        fig = ax.figure
    d = d.assign(_line=line_labels)
    for i, (label, g) in enumerate(d.groupby("_line", sort=False)):
        g = g.sort_values(x)
        xs = g[x].to_numpy(dtype=float)
        ys = g[diagnosand].to_numpy(dtype=float)
        se = c.se_of(g, diagnosand)
        colour = c.PALETTE[i % len(c.PALETTE)]
        ax.plot(xs, ys, marker="o", markersize=4, color=colour, linewidth=1.6, label=label)
        if np.isfinite(se).any():
            ax.fill_between(xs, ys - z * se, ys + z * se, color=colour, alpha=0.18,
                            linewidth=0)
    if target is not None:
        ax.axhline(target, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(f"{target:g}", xy=(1, target), xycoords=("axes fraction", "data"),
                    xytext=(2, 0), textcoords="offset points", va="center", fontsize=8,
                    color="0.3")
    ax.set_xlabel(x)
    ax.set_ylabel(diagnosand.replace("_", " ").capitalize())
    if diagnosand in ("power", "coverage"):
        ax.set_ylim(-0.02, 1.02)
    if len(d["_line"].unique()) > 1 or d["_line"].iloc[0]:
        ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.set_title(f"{ax.get_ylabel()} by {x} (bands: {level:.0%} Monte Carlo interval)",
                 loc="left", fontsize=10)
    c.style_axes(ax)
    return fig


def plot_diagnosands(diagnosis: Any, diagnosands: Sequence[str] = ("bias", "rmse", "power"),
                     *, estimators: Sequence[str] | str | None = None,
                     inquiry: str | None = None, level: float = 0.95,
                     reference: dict[str, float] | None = None,
                     figsize: tuple[float, float] | None = None) -> Any:
    """Compare estimators: one panel per diagnosand, one bar per estimator.

    Bars carry +- z Monte Carlo standard-error bars.

    Parameters
    ----------
    diagnosis : Diagnosis
    diagnosands : list of str, default ("bias", "rmse", "power")
        Which diagnosands to show, one panel each.
    estimators : str or list of str, optional
        Estimator labels, in the order to draw them (default: all).
    inquiry : str, optional
    level : float, default 0.95
        Coverage of the error bars.
    reference : dict, optional
        Diagnosand -> value drawn as a dashed line; default bias 0, power 0.8,
        coverage 0.95.
    figsize : (width, height), optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import declaredesign as dd
    >>> dx = dd.diagnose_design(dd.examples.two_arm_covariate(), sims=100,
    ...                         bootstrap_sims=20, seed=1)
    >>> [a.get_title() for a in plot_diagnosands(dx).axes]
    ['Bias', 'RMSE', 'Power']
    """
    func = "plot_diagnosands"
    c.check_diagnosis(func, diagnosis)
    diagnosands = [diagnosands] if isinstance(diagnosands, str) else list(diagnosands)
    if not diagnosands:
        fail(func, "diagnosands", diagnosands, "at least one diagnosand name")
    for name in diagnosands:
        if name not in diagnosis.diagnosand_names:
            fail(func, "diagnosands", name, "diagnosands of the diagnosis ("
                 + ", ".join(diagnosis.diagnosand_names) + ")")
    level = check_probability(func, "level", level, open_interval=True)
    reference = dict(_REFERENCE if reference is None else reference)
    plt = c.pyplot()
    from matplotlib.ticker import MaxNLocator

    z = float(norm.ppf(0.5 + level / 2))
    d = c.select(func, diagnosis, estimators, inquiry)
    names = c.labels(d, [k for k in diagnosis.group_by if k != "estimator"],
                     params=diagnosis.parameters)
    k = len(diagnosands)
    fig, axes = plt.subplots(1, k, sharey=True, squeeze=False,
                             figsize=figsize or (2.4 * k + 1.6, 0.9 + 0.45 * len(d)),
                             layout="constrained")
    pos = np.arange(len(d))[::-1]  # first estimator on top
    colours = [c.PALETTE[i % len(c.PALETTE)] for i in range(len(d))]
    for ax, name in zip(axes[0], diagnosands):
        v = d[name].to_numpy(dtype=float)
        se = c.se_of(d, name)
        err = np.where(np.isfinite(se), z * se, 0.0)
        ax.barh(pos, v, height=0.6, color=colours, alpha=0.8, xerr=err,
                error_kw={"ecolor": "0.2", "capsize": 3, "linewidth": 1})
        if name in reference:
            ax.axvline(reference[name], color="0.3", linestyle="--", linewidth=1)
        ax.axvline(0, color="0.6", linewidth=0.6)
        ax.set_title(diagnosand_title(name), fontsize=10)
        ax.set_xlabel(diagnosand_title(name))
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.grid(axis="x", color="0.9", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.tick_params(axis="x", labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    axes[0, 0].set_yticks(pos, names)
    fig.suptitle(f"Diagnosands with {level:.0%} Monte Carlo intervals", fontsize=10)
    return fig
