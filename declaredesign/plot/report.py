"""A self-contained HTML report of a diagnosis: the table and the plots, embedded."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from pathlib import Path
from typing import Any

from .._validation import fail
from ..design.diagnosis import Diagnosis
from . import _common
from .diagnosis import plot_diagnosands, plot_diagnosis, plot_power_curve

__all__ = ["report_html", "write_report"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 60em; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 2em; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { padding: 0.25em 0.7em; text-align: right; }
th { border-bottom: 1px solid #999; } tr:nth-child(4n+1) td, tr:nth-child(4n+2) td
{ background: #f5f7fa; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; max-width: 45em; }
img { max-width: 100%; height: auto; }
"""


def _png(fig: Any, dpi: int = 110) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(diagnosis: Any) -> list[tuple[str, str, str]]:
    """(title, caption, base64 PNG) for each plot that fits this diagnosis."""
    d = diagnosis.diagnosands
    if "estimator" not in d.columns or d["estimator"].isna().all():
        return []
    out = []
    grid = [p for p in diagnosis.parameters if d[p].nunique() > 1]
    if grid and "power" in diagnosis.diagnosand_names:
        for x in grid[:2]:
            out.append((f"Power by {x}", "Each line is an estimator; the band is a 95% "
                        "Monte Carlo interval; the dashed line is 80% power.",
                        _png(plot_power_curve(diagnosis, x))))
    if not out and len(d) <= 12:
        out.append(("Sampling distributions", "Histogram of each estimator's estimates "
                    "over the simulations; dashed: mean estimand, solid: mean estimate. "
                    "Their gap is the bias.", _png(plot_diagnosis(diagnosis))))
        names = [n for n in ("bias", "rmse", "power", "coverage")
                 if n in diagnosis.diagnosand_names]
        if names:
            out.append(("Estimators compared", "Bars with 95% Monte Carlo intervals; dashed "
                        "lines mark zero bias, 80% power and 95% coverage.",
                        _png(plot_diagnosands(diagnosis, names))))
    return out


def report_html(diagnosis: Any, *, title: str = "Design diagnosis", plots: bool = True,
                command: str | None = None) -> str:
    """Render a self-contained HTML report: diagnosis table and embedded PNG plots.

    Parameters
    ----------
    diagnosis : Diagnosis
    title : str, default "Design diagnosis"
    plots : bool, default True
        Include plots (needs matplotlib); without matplotlib the report says so.
    command : str, optional
        The command that produced it, shown for reproducibility.

    Returns
    -------
    str

    Examples
    --------
    >>> import declaredesign as dd
    >>> dx = dd.diagnose_design(dd.examples.two_arm(), sims=50, bootstrap_sims=10, seed=1)
    >>> text = report_html(dx, plots=False)
    >>> "<table" in text and "DIM" in text
    True
    """
    if not isinstance(diagnosis, Diagnosis):
        fail("report_html", "diagnosis", diagnosis, "a Diagnosis",
             shown=type(diagnosis).__name__)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = f"Generated {stamp} by declaredesign"
    if command:
        meta += f": <code>{html.escape(command)}</code>"
    parts.append(f"<p class='meta'>{meta}</p><h2>Diagnosands</h2>")
    parts.append(diagnosis._repr_html_())
    if plots:
        try:
            _common.pyplot()
            figures = _figures(diagnosis)
        except ImportError as e:
            figures = []
            parts.append(f"<p class='meta'>No plots: {html.escape(str(e))}</p>")
        for head, caption, png in figures:
            parts.append(f"<h2>{html.escape(head)}</h2><figure><img alt='{html.escape(head)}' "
                         f"src='data:image/png;base64,{png}'><figcaption>"
                         f"{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(diagnosis: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`report_html` to ``path`` (UTF-8) and return the path.

    Examples
    --------
    >>> import tempfile, pathlib, declaredesign as dd
    >>> dx = dd.diagnose_design(dd.examples.two_arm(), sims=50, bootstrap_sims=0, seed=1)
    >>> p = write_report(dx, pathlib.Path(tempfile.mkdtemp()) / "r.html", plots=False)
    >>> p.read_text().startswith("<!DOCTYPE html>")
    True
    """
    path = Path(path)
    path.write_text(report_html(diagnosis, **kwargs), encoding="utf-8")
    return path
