"""Built-in batched data steps: group-by summaries (dplyr's ``group_by |> summarize``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import fail
from ..batch import Batch
from ..errors import DeclarationError

__all__ = ["summarize"]

_AGG = re.compile(r"^\s*([A-Za-z_]\w*)\s*\(\s*([A-Za-z_]\w*)?\s*\)\s*$")
_FUNCS = ("mean", "sum", "min", "max", "sd", "var", "median", "first", "n")


class summarize:  # noqa: N801  (lower-case: reads like the dplyr verb it mirrors)
    """Collapse each simulated dataset to one row per group.

    Use inside :func:`~declaredesign.declare_step`; all simulations are summarised at
    once. Grouping columns are kept; each aggregation is ``"fn(column)"`` with ``fn``
    one of mean, sum, min, max, sd, var (n - 1 denominators, as R), median, first, or
    ``"n()"`` for the group size.

    Parameters
    ----------
    by : str or sequence of str
        Grouping columns.
    **aggregations : str
        New column name to aggregation, e.g. ``av_score="mean(score)"``.

    Examples
    --------
    >>> import pandas as pd
    >>> import declaredesign as dd
    >>> df = pd.DataFrame({"g": ["a", "a", "b"], "y": [1.0, 3.0, 5.0]})
    >>> dd.summarize(by="g", y_mean="mean(y)", size="n()").apply(df)
       g  y_mean  size
    0  a     2.0     2
    1  b     5.0     1
    """

    def __init__(self, by: str | Sequence[str], **aggregations: str):
        by_list = [by] if isinstance(by, str) else \
            list(by) if isinstance(by, (list, tuple)) else None
        if not by_list or not all(isinstance(b, str) for b in by_list):
            fail("summarize", "by", by, "a column name or a list of column names")
        if not aggregations:
            raise DeclarationError("summarize(): give at least one aggregation, "
                                   "e.g. y_mean='mean(y)'.")
        parsed = {}
        for name, spec in aggregations.items():
            m = _AGG.match(spec) if isinstance(spec, str) else None
            if not m or m.group(1) not in _FUNCS or (m.group(1) != "n" and not m.group(2)):
                fail("summarize", name, spec,
                     "'fn(column)' with fn one of " + ", ".join(_FUNCS[:-1]) + ", or 'n()'")
            parsed[name] = (m.group(1), m.group(2))
        self.by = tuple(by_list)
        self.aggregations = dict(aggregations)
        self._parsed = parsed

    def __repr__(self) -> str:
        aggs = ", ".join(f"{k}={v!r}" for k, v in self.aggregations.items())
        return f"summarize(by={list(self.by)!r}, {aggs})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, summarize) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    def creates(self) -> set[str]:
        """Columns of the summarised data (the step replaces the data)."""
        return set(self.by) | set(self.aggregations)

    def requires(self) -> set[str]:
        """Columns the summary reads."""
        return set(self.by) | {c for _, c in self._parsed.values() if c}

    def apply(self, data: Any) -> Any:
        """Summarise one pandas DataFrame (the standalone form)."""
        out = self.run(Batch.from_pandas(data), None, 1)
        return out.to_pandas()

    def run(self, batch: Batch, rng: Any, n_sims: int) -> Batch:
        """Summarise every simulation of a batch at once."""
        missing = [c for c in self.requires() if c not in batch]
        if missing:
            fail("summarize", "by" if missing[0] in self.by else "aggregations", missing[0],
                 "a column of the data (" + ", ".join(batch.names) + ")")
        cells = batch.groups(*self.by)
        codes, gsim, n_groups = cells.codes, cells.group_sim, cells.n_groups
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        starts = np.searchsorted(sorted_codes, np.arange(n_groups))
        counts = np.diff(np.append(starts, len(codes)))
        first_rows = order[starts]
        cols: dict[str, np.ndarray] = {c: batch[c][first_rows] for c in self.by}
        for name, (fn, col) in self._parsed.items():
            if fn == "n":
                cols[name] = counts
                continue
            x = batch[col][order]
            if fn == "first":
                cols[name] = x[starts]
                continue
            x = x.astype(float)
            if fn in ("mean", "sum", "sd", "var"):
                s = np.add.reduceat(x, starts) if len(x) else np.zeros(0)
                if fn == "sum":
                    cols[name] = s
                    continue
                mean = s / counts
                if fn == "mean":
                    cols[name] = mean
                    continue
                dev = x - np.repeat(mean, counts)
                with np.errstate(invalid="ignore", divide="ignore"):
                    var = np.add.reduceat(dev * dev, starts) / (counts - 1)
                cols[name] = var if fn == "var" else np.sqrt(var)
            elif fn in ("min", "max"):
                ufunc = np.minimum if fn == "min" else np.maximum
                cols[name] = ufunc.reduceat(x, starts)
            else:  # median: sort values within groups, average the middle pair
                o2 = np.lexsort((x, sorted_codes))
                xs = x[o2]
                lo = starts + (counts - 1) // 2
                hi = starts + counts // 2
                cols[name] = (xs[lo] + xs[hi]) / 2
        return Batch(cols, gsim, batch.n_sims, batch.id_columns & set(self.by))
