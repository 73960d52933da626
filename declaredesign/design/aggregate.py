"""Built-in batched data steps: group-by summaries (dplyr's ``group_by |> summarize``).

An aggregation is either a simple ``fn(column)`` (computed from the sorted group
layout with one ``reduceat`` per column: the fast path) or any expression of the
closed language (:mod:`declaredesign.expressions`), evaluated with its reductions
grouped by the (simulation, ``by``) cells of :meth:`Batch.groups` and read once per
cell.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import fail
from ..batch import Batch
from ..errors import DeclarationError, FormulaError
from ..expressions import evaluate, is_function
from ..expressions.functions import CONSTANTS
from ..expressions.parser import parse_expression
from ..groups import GroupIndex

__all__ = ["summarize"]

_AGG = re.compile(r"^\s*([A-Za-z_]\w*)\s*\(\s*([A-Za-z_]\w*)?\s*\)\s*$")
_FUNCS = ("mean", "sum", "min", "max", "sd", "var", "median", "first", "n")


def _expression_columns(expr: str) -> set[str]:
    """Names an expression reads as columns (not functions, constants, ``N`` or ``np.``)."""
    tree = parse_expression(expr)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    roots = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
            and id(n) not in called and id(n) not in roots
            and n.id not in CONSTANTS and n.id != "N"}


def _parse_aggregation(name: str, spec: Any) -> tuple[str, str | None]:
    """Return ``(fn, column)`` for the fast forms, ``("expr", None)`` for an expression."""
    if not isinstance(spec, str):
        fail("summarize", name, spec, "a string: 'fn(column)', 'n()' or an expression")
    m = _AGG.match(spec)
    if m and m.group(1) in _FUNCS and (m.group(1) == "n") == (not m.group(2)):
        return m.group(1), m.group(2)
    try:
        parse_expression(spec, is_function)
    except FormulaError as e:
        fail("summarize", name, spec, "'fn(column)' with fn one of "
             + ", ".join(_FUNCS[:-1]) + ", 'n()', or an expression of the language "
             f"(docs/expressions.md) [{e}]")
    return "expr", None


def _simple(fn: str, x: np.ndarray, starts: np.ndarray, counts: np.ndarray,
            sorted_codes: np.ndarray) -> np.ndarray:
    """One of the fast reductions of a column already sorted by group."""
    if fn == "first":
        return x[starts]
    x = x.astype(float)
    if fn in ("min", "max"):
        ufunc = np.minimum if fn == "min" else np.maximum
        return ufunc.reduceat(x, starts)
    if fn == "median":     # sort values within groups, average the middle pair
        xs = x[np.lexsort((x, sorted_codes))]
        return (xs[starts + (counts - 1) // 2] + xs[starts + counts // 2]) / 2
    s = np.add.reduceat(x, starts) if len(x) else np.zeros(0)
    if fn == "sum":
        return s
    mean = s / counts
    if fn == "mean":
        return mean
    dev = x - np.repeat(mean, counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.add.reduceat(dev * dev, starts) / (counts - 1)
    return var if fn == "var" else np.sqrt(var)


def _per_group(expr: str, name: str, batch: Batch, rng: Any, cells: GroupIndex,
               first_rows: np.ndarray) -> np.ndarray:
    """Evaluate an expression with reductions per cell; one value per cell."""
    label = f"summarize({name}={expr!r})"
    out = evaluate(expr, batch, rng, group=cells.codes, n_groups=cells.n_groups,
                   label=label)
    first = out[first_rows]
    if out.dtype.kind in "fiub":
        v, f = out.astype(float), first.astype(float)[cells.codes]
        constant = bool(np.all((v == f) | (np.isnan(v) & np.isnan(f))))
    else:
        constant = bool(np.all(out == first[cells.codes]))
    if not constant:
        raise FormulaError(f"{label}: the expression does not reduce to one value per "
                           "group; wrap it in a reduction such as mean(...).")
    return first


class summarize:  # noqa: N801  (lower-case: reads like the dplyr verb it mirrors)
    """Collapse each simulated dataset to one row per group.

    Use inside :func:`~declaredesign.declare_step`; all simulations are summarised at
    once. Grouping columns are kept; each aggregation is ``"fn(column)"`` with ``fn``
    one of mean, sum, min, max, sd, var (n - 1 denominators, as R), median, first,
    ``"n()"`` for the group size, or any expression of the language
    (``docs/expressions.md``) whose reductions then run within each group of each
    simulation, e.g. ``"mean(score[treatment == 1]) - mean(score[treatment == 0])"``.

    Parameters
    ----------
    by : str or sequence of str
        Grouping columns.
    **aggregations : str
        New column name to aggregation, e.g. ``av_score="mean(score)"`` or
        ``treated="sum(Z == 1)"``. An expression must give one value per group.

    Examples
    --------
    >>> import pandas as pd
    >>> import declaredesign as dd
    >>> df = pd.DataFrame({"g": ["a", "a", "b"], "y": [1.0, 3.0, 5.0]})
    >>> dd.summarize(by="g", y_mean="mean(y)", size="n()").apply(df)
       g  y_mean  size
    0  a     2.0     2
    1  b     5.0     1
    >>> dd.summarize(by="g", big="mean(y[y > 1])", spread="max(y) - min(y)").apply(df)
       g  big  spread
    0  a  3.0     2.0
    1  b  5.0     0.0
    """

    def __init__(self, by: str | Sequence[str], **aggregations: str):
        by_list = [by] if isinstance(by, str) else \
            list(by) if isinstance(by, (list, tuple)) else None
        if not by_list or not all(isinstance(b, str) for b in by_list):
            fail("summarize", "by", by, "a column name or a list of column names")
        if not aggregations:
            raise DeclarationError("summarize(): give at least one aggregation, "
                                   "e.g. y_mean='mean(y)'.")
        parsed = {name: _parse_aggregation(name, spec) for name, spec in aggregations.items()}
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
        out = set(self.by) | {c for _, c in self._parsed.values() if c}
        for name, (fn, _) in self._parsed.items():
            if fn == "expr":
                out |= _expression_columns(self.aggregations[name])
        return out

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
        starts = cells.starts
        if starts is not None:   # rows already in group order: no sort, no copies
            order, sorted_codes, first_rows = slice(None), codes, starts
        else:
            order = np.argsort(codes, kind="stable")
            sorted_codes = codes[order]
            starts = np.searchsorted(sorted_codes, np.arange(n_groups))
            first_rows = order[starts]
        counts = np.diff(np.append(starts, len(codes)))
        cols: dict[str, np.ndarray] = {c: batch[c][first_rows] for c in self.by}
        for name, (fn, col) in self._parsed.items():
            if fn == "n":
                cols[name] = counts
            elif fn == "expr":
                cols[name] = _per_group(self.aggregations[name], name, batch, rng, cells,
                                        first_rows)
            else:
                cols[name] = _simple(fn, batch[col][order], starts, counts, sorted_codes)
        return Batch(cols, gsim, batch.n_sims, batch.id_columns & set(self.by))
