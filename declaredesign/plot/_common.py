"""Shared plumbing for the plots: the lazy matplotlib import, groups and their labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail
from ..design.diagnosis import Diagnosis, message_rows

# Colour-blind-safe (Okabe-Ito), in an order that prints distinguishably in greyscale too.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#F0E442")

# Group columns that name *what* is estimated; design/parameters vary along a grid.
_WHAT = ("inquiry", "estimator", "outcome", "term")


def pyplot() -> Any:
    """matplotlib.pyplot, imported on first use (matplotlib is the optional ``plot`` extra)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # say which extra provides it
        raise ImportError(
            "declaredesign plots need matplotlib: pip install 'declaredesign[plot]'") from e
    return plt


def check_diagnosis(func: str, diagnosis: Any) -> Any:
    """Return ``diagnosis`` if it is a Diagnosis with estimators; fail naming ``func``."""
    if not isinstance(diagnosis, Diagnosis):
        fail(func, "diagnosis", diagnosis, "a Diagnosis (from diagnose_design)",
             shown=type(diagnosis).__name__)
    if "estimator" not in diagnosis.diagnosands.columns:
        fail(func, "diagnosis", diagnosis, "a diagnosis with estimators (declare_estimator)",
             shown="<Diagnosis without estimators>")
    return diagnosis


def varying(frame: pd.DataFrame, cols: list[str]) -> list[str]:
    """Return the columns among ``cols`` taking more than one value (NaN is a value)."""
    return [c for c in cols if c in frame.columns and frame[c].nunique(dropna=False) > 1]


def _text(v: Any) -> str:
    return "NA" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def labels(frame: pd.DataFrame, cols: list[str], always: str | None = "estimator",
           within: list[str] | None = None, params: list[str] | tuple = ()) -> list[str]:
    """Label each row with ``always`` plus as few varying ``cols`` as make labels unique.

    Labels are unique within each combination of the ``within`` columns. What is
    estimated (inquiry, term, outcome) comes before design parameters, shown as
    ``name=value``, and the design's name comes last.
    """
    use = [always] if always is not None and always in frame.columns else []
    within = [w for w in (within or []) if w in frame.columns]
    rank = {c: (0 if c in _WHAT else 1 if c in params else 2) for c in cols}
    candidates = sorted(varying(frame, [k for k in cols if k != always]),
                        key=lambda c: rank[c])
    for col in [None, *candidates]:
        if col is not None:
            use.append(col)
        if not use:
            continue
        if not frame[use + within].astype(str).duplicated().any():
            break
    if not use:
        return [""] * len(frame)
    return [" / ".join((f"{c}={_text(v)}" if c in params else _text(v))
                       for c, v in zip(use, row))
            for row in frame[use].itertuples(index=False)]


def select(func: str, diagnosis: Any, estimators: Any, inquiry: Any = None) -> pd.DataFrame:
    """Select the diagnosand rows of ``estimators`` (in the order given) and ``inquiry``."""
    d = diagnosis.diagnosands
    d = d[d["estimator"].notna()]
    if inquiry is not None:
        if "inquiry" not in d.columns or inquiry not in set(d["inquiry"]):
            fail(func, "inquiry", inquiry, "one of the diagnosis' inquiries ("
                 + ", ".join(map(str, sorted(set(d.get("inquiry", pd.Series([])).dropna()))))
                 + ")")
        d = d[d["inquiry"] == inquiry]
    if estimators is not None:
        estimators = [estimators] if isinstance(estimators, str) else list(estimators)
        known = list(dict.fromkeys(d["estimator"]))
        for e in estimators:
            if e not in known:
                fail(func, "estimators", e, "estimator labels of the diagnosis ("
                     + ", ".join(map(str, known)) + ")")
        order = {e: i for i, e in enumerate(estimators)}
        d = d[d["estimator"].isin(estimators)]
        d = d.iloc[np.argsort([order[e] for e in d["estimator"]], kind="stable")]
    if len(d) == 0:
        fail(func, "diagnosis", diagnosis, "a diagnosis with at least one estimator row",
             shown="<Diagnosis>")
    return d.reset_index(drop=True)


def rows_of(simulations: pd.DataFrame, key: pd.Series, cols: list[str]) -> np.ndarray:
    """Boolean mask of the simulation rows in the group ``key`` (NaN matches NaN)."""
    mask = np.ones(len(simulations), dtype=bool)
    for c in cols:
        v = key[c]
        col = simulations[c]
        if not isinstance(v, str) and pd.isna(v):
            mask &= col.isna().to_numpy()
        else:
            mask &= (col == v).to_numpy()
    return mask


def failed(simulations: pd.DataFrame) -> np.ndarray:
    """Rows whose ``error`` column holds a message (they are left out of diagnosands)."""
    return message_rows(simulations, "error")


def se_of(diagnosands: pd.DataFrame, name: str) -> np.ndarray:
    """Return the Monte Carlo SEs of diagnosand ``name``.

    The bootstrap's, or for power/coverage without a bootstrap the binomial
    ``sqrt(p (1 - p) / n)``; NaN otherwise.
    """
    if name + "_se" in diagnosands.columns:
        return diagnosands[name + "_se"].to_numpy(dtype=float)
    if name in ("power", "coverage") and "n_sims" in diagnosands.columns:
        p = diagnosands[name].to_numpy(dtype=float)
        n = diagnosands["n_sims"].to_numpy(dtype=float)
        if "n_failed" in diagnosands.columns:
            n = n - diagnosands["n_failed"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(p * (1 - p) / n)
    return np.full(len(diagnosands), np.nan)


def style_axes(ax: Any) -> None:
    """Quiet axes for print: no top/right spines, light horizontal grid."""
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
