"""The picture behind a sample-size or minimum-detectable-effect answer."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import fail
from ..design.search import SearchResult
from . import _common as c

__all__ = ["plot_search"]


def plot_search(result: Any, *, ax: Any = None,
                figsize: tuple[float, float] = (6.5, 4.0)) -> Any:
    """Plot the search behind a ``find_sample_size``/``find_mde`` answer.

    Simulated power at each value (with 95% binomial error bars), the fitted curve with
    its band, the target line and the answer with its uncertainty interval.

    Parameters
    ----------
    result : SearchResult
        From :func:`~declaredesign.design.search.find_sample_size` or ``find_mde``.
    ax : matplotlib Axes, optional
    figsize : (width, height), default (6.5, 4)

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import declaredesign as dd
    >>> from declaredesign.design.search import find_mde
    >>> res = find_mde(dd.examples.two_arm, fixed={"N": 100}, upper=1.2, sims=100, seed=1)
    >>> plot_search(res).axes[0].get_xlabel()
    'ate'
    """
    if not isinstance(result, SearchResult):
        fail("plot_search", "result", result, "a SearchResult (from find_sample_size or "
             "find_mde)", shown=type(result).__name__)
    plt = c.pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    else:
        fig = ax.figure
    p, g, cv = result.param, result.grid, result.curve
    colour = c.PALETTE[0]
    ax.fill_between(cv[p], cv["conf_low"], cv["conf_high"], color=colour, alpha=0.18,
                    linewidth=0, label=f"fit, {result.level:.0%} band")
    ax.plot(cv[p], cv["fitted"], color=colour, linewidth=1.8)
    y = g[result.diagnosand].to_numpy(dtype=float)
    ax.errorbar(g[p], y, yerr=1.96 * g["std_error"], fmt="o", color="0.15", markersize=4,
                capsize=2, linewidth=1, label=f"simulated ({int(g['n_sims'].iloc[0]):,} "
                "sims each)")
    ax.axhline(result.target, color="0.3", linestyle="--", linewidth=1)
    if np.isfinite(result.conf_low) and np.isfinite(result.conf_high):
        ax.axvspan(result.conf_low, result.conf_high, color=c.PALETTE[1], alpha=0.15,
                   linewidth=0)
    ax.axvline(result.estimate, color=c.PALETTE[1], linewidth=1.5,
               label=f"{p} = {result.estimate:.4g} [{result.conf_low:.4g}, "
                     f"{result.conf_high:.4g}]")
    ax.set_xlabel(p)
    ax.set_ylabel(result.diagnosand.capitalize())
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Where {result.diagnosand} reaches {result.target:g} "
                 f"(estimator {result.estimator})", loc="left", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    c.style_axes(ax)
    return fig
