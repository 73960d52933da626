"""Argument checks shared by the estimators, and the keyword check of every spec.

Each estimator validates its arguments once, in its spec's ``parse`` (frozen, data
independent), and checks what depends on the data (columns present, numeric, weights
positive) when it meets the data, with the helpers here, in the standalone fit and in
the batched kernel alike. Messages follow :func:`declaredesign._validation.fail`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail
from ..errors import DeclarationError, EstimationError, FormulaError
from ..expressions import evaluate_mask
from ..formula import variables

__all__ = ["accepted_arguments", "bind_vectors", "check_alpha", "check_column_arg",
           "check_finite_frame", "check_numeric", "check_observed", "check_se_type",
           "check_weights", "data_columns", "outcome_and_treatment",
           "parse_conditions", "parse_fixed_effects", "reject_unknown", "spec_keywords",
           "subset_mask", "two_sided_variables"]

_CLUSTER_SE = ("CR0", "CR2", "stata")
# spec fields that must be True or False (None also allowed for those in _MAYBE_FLAGS)
_FLAGS = ("ci", "return_vcov", "try_cholesky", "diagnostics", "return_condition_pr_mat",
          "simple")
_MAYBE_FLAGS = ("simple",)
# arguments naming a column of the data
_COLUMN_ARGS = ("weights", "clusters", "blocks", "condition_prs")
_HC_SE = ("classical", "HC0", "HC1", "HC2", "HC3", "stata")


# ---------------------------------------------------------------------- keywords
def accepted_arguments(spec_cls: type) -> list[str]:
    """Return the keyword arguments a spec class accepts (its fields other than the formula)."""
    return [f.name for f in fields(spec_cls) if f.init and f.name != "formula"]


def reject_unknown(func: str, accepted: list[str], kwargs: Mapping[str, Any]) -> None:
    """Raise a DeclarationError naming an unknown keyword and the accepted ones."""
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise DeclarationError(
            f"{func}({unknown[0]}={kwargs[unknown[0]]!r}): {unknown[0]!r} is not an argument "
            f"of {func}; "
            f"the accepted arguments are: {', '.join(accepted)}.")


def spec_keywords(func: str, spec_cls: type, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` completed with the spec's defaults, after rejecting unknown keywords."""
    accepted = accepted_arguments(spec_cls)
    reject_unknown(func, accepted, kwargs)
    defaults = {f.name: f.default for f in fields(spec_cls) if f.name in accepted}
    kw = {**defaults, **kwargs}
    for name in _FLAGS:
        if name in kw and not (kw[name] is None and name in _MAYBE_FLAGS):
            kw[name] = _check_flag(func, name, kw[name])
    for name in _COLUMN_ARGS:
        if name in kw:
            _check_column_name(func, name, kw[name])
    return kw


def _check_column_name(func: str, name: str, value: Any) -> None:
    """Check that a spec names its columns (the public functions bind vectors first)."""
    if value is None or (isinstance(value, str) and value):
        return
    if name == "condition_prs" and isinstance(value, numbers.Real) \
            and not isinstance(value, bool):
        return
    shown = f"<{type(value).__name__} of length {len(value)}>" \
        if hasattr(value, "__len__") else repr(value)
    fail(func, name, value, "a column name (in a design; called directly, "
         f"{func} also takes a vector with one value per row of the data)", shown=shown)


def _check_flag(func: str, name: str, value: Any) -> bool:
    """Check that a flag is a boolean: ``ci="no"`` is not silently taken as true."""
    if not isinstance(value, (bool, np.bool_)):
        fail(func, name, value, "True or False")
    return bool(value)


# --------------------------------------------------------------------------- validation
def check_se_type(func: str, se_type: str | None, clustered: bool) -> str:
    """Resolve the default ``se_type`` and reject ones that do not fit the design."""
    if clustered:
        if se_type is None:
            return "CR2"
        if se_type not in (*_CLUSTER_SE, "none"):
            fail(func, "se_type", se_type, "one of 'CR0', 'CR2', 'stata', 'none' when "
                 "clusters are given")
        return se_type
    if se_type is None:
        return "HC2"
    if se_type not in (*_HC_SE, "none"):
        fail(func, "se_type", se_type, "one of 'classical', 'HC0', 'HC1', 'HC2', 'HC3', "
             "'stata', 'none' without clusters (CR0/CR2 need clusters)")
    return "HC1" if se_type == "stata" else se_type


def check_alpha(func: str, alpha: Any) -> float:
    """``alpha`` must be a number strictly between 0 and 1."""
    ok = isinstance(alpha, numbers.Real) and not isinstance(alpha, bool) and np.isfinite(alpha)
    if not (ok and 0 < alpha < 1):
        fail(func, "alpha", alpha, "a number in (0, 1)")
    return float(alpha)


def check_column_arg(func: str, arg: str, value: Any, data: Mapping[str, Any]) -> str | None:
    """Return a column-name argument (clusters, weights...): None or a name present in ``data``."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        fail(func, arg, value, "a column name (a non-empty string) or None")
    if value not in data:
        cols = ", ".join(sorted(map(str, data.keys())))
        fail(func, arg, value, f"a column of the data (available: {cols})")
    return value


def check_numeric(func: str, arg: str, name: str, values: np.ndarray) -> None:
    """Reject non-numeric outcome or weight columns."""
    if np.asarray(values).dtype.kind not in "fiub":
        fail(func, arg, name, "a numeric column", shown=repr(name))


def check_weights(func: str, name: str, w: np.ndarray) -> None:
    """Weights (on the rows used) must be finite and positive."""
    if w.size and not (np.all(np.isfinite(w)) and np.all(w > 0)):
        bad = w[~(np.isfinite(w) & (w > 0))][:3]
        fail(func, "weights", name, f"a column of positive finite numbers (found {bad.tolist()})",
             shown=repr(name))


def subset_mask(func: str, subset: Any, data: Mapping[str, Any], n: int) -> np.ndarray:
    """Rows selected by ``subset``: a boolean array or an expression (docs/expressions.md)."""
    if subset is None:
        return np.ones(n, dtype=bool)
    if isinstance(subset, str):
        try:
            m = evaluate_mask(subset, data, n)
        except Exception as e:
            raise DeclarationError(f"{func}(subset={subset!r}): subset must be an expression "
                                   f"on the data's columns; evaluating it failed: {e}") from e
    else:
        m = np.asarray(subset)
        if m.dtype.kind != "b" or m.shape != (n,):
            fail(func, "subset", subset, f"a boolean array of length {n} or an expression",
                 shown="<array>")
    return np.array(m, dtype=bool, copy=True)



class FrameColumns(Mapping):
    """A DataFrame's columns by name as arrays, each converted when first read.

    Estimators read a few columns of the data they are given; converting only those
    keeps a standalone fit on a small frame cheap. A categorical column stays a pandas
    Categorical: its category order is R's level order, read by the model frame (the
    first category is the baseline).
    """

    __slots__ = ("_frame", "_labels", "_arrays")

    def __init__(self, frame: pd.DataFrame, labels: dict[str, Any]):
        self._frame = frame
        self._labels = labels           # name -> the frame's (unique) column label
        self._arrays: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        arr = self._arrays.get(name)
        if arr is None:
            column = self._frame[self._labels[name]]
            arr = column.array if isinstance(column.dtype, pd.CategoricalDtype) else \
                column.to_numpy()
            self._arrays[name] = arr
        return arr

    def __iter__(self) -> Any:
        return iter(self._labels)

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, name: object) -> bool:
        return name in self._labels


def data_columns(func: str, data: Any) -> Mapping[str, Any]:
    """Return the estimator's ``data`` as a mapping of column name to array (checked)."""
    if isinstance(data, pd.DataFrame):
        labels = data.columns.tolist()
        names = [str(c) for c in labels]
        if len(set(names)) != len(names):
            dup = sorted({c for c in names if names.count(c) > 1})
            fail(func, "data", data, "a data frame with distinct column names (duplicated: "
                 f"{', '.join(map(repr, dup))})", shown="<DataFrame>")
        return FrameColumns(data, dict(zip(names, labels)))
    if isinstance(data, Mapping):
        return data
    fail(func, "data", data, "a pandas DataFrame", shown=type(data).__name__)



def parse_fixed_effects(func: str, fixed_effects: Any, cols: Mapping[str, Any]) -> list[str]:
    """Column names of ``fixed_effects``: ``"~ a + b"``, a column name, or a list of names."""
    if fixed_effects is None:
        return []
    if isinstance(fixed_effects, str):
        text = fixed_effects.strip()
        text = text[1:] if text.startswith("~") else text
        names = [p.strip() for p in text.split("+")]
    elif isinstance(fixed_effects, (list, tuple)):
        names = list(fixed_effects)
    else:
        names = []
    if not names or not all(isinstance(v, str) and v.isidentifier() for v in names):
        fail(func, "fixed_effects", fixed_effects, "a one-sided formula of column names like "
             "'~ block + site', a column name or a list of column names")
    missing = [v for v in names if v not in cols]
    if missing:
        fail(func, "fixed_effects", fixed_effects, "made of columns of the data (missing: "
             f"{', '.join(missing)})")
    return names



def parse_conditions(func: str, t: np.ndarray, condition1: Any, condition2: Any,
                     values: list[Any] | None = None) -> tuple[Any, Any]:
    """Which treatment values are control (condition1) and treatment (condition2).

    ``values``, when given, are the sorted distinct values of ``t`` (already known).
    """
    names = sorted(pd.unique(t).tolist()) if values is None else values
    for arg, c in (("condition1", condition1), ("condition2", condition2)):
        if c is not None and c not in names:
            fail(func, arg, c, f"a value of the treatment variable ({names})")
    if len(names) > 2:
        if condition1 is None or condition2 is None:
            raise DeclarationError(
                f"{func}(condition1={condition1!r}, condition2={condition2!r}): the treatment "
                f"has more than 2 values ({names}); give both condition1 and condition2.")
        return condition1, condition2
    if len(names) < 2:
        raise EstimationError(f"{func}: the treatment must take two values; got {names}.")
    if condition1 is None and condition2 is None:
        return names[0], names[1]
    if condition1 is None:
        return next(v for v in names if v != condition2), condition2
    if condition2 is None:
        return condition1, next(v for v in names if v != condition1)
    return condition1, condition2



def outcome_and_treatment(func: str, formula: str, cols: Mapping[str, Any]) -> tuple[str, str]:
    """Return the two names of an ``outcome ~ treatment`` formula, both columns of the data."""
    lhs, rhs = variables(formula)
    if len(lhs) != 1 or len(rhs) != 1:
        fail(func, "formula", formula, "of the form 'outcome ~ treatment' (one variable on "
             "each side)")
    for v in (lhs[0], rhs[0]):
        if v not in cols:
            raise FormulaError(f"{func}(formula={formula!r}): column {v!r} named in the "
                               f"formula is not in the data; available columns are: "
                               f"{', '.join(sorted(map(str, cols)))}.")
    return lhs[0], rhs[0]



def two_sided_variables(func: str, formula: Any) -> tuple[str, str] | None:
    """Return the names of an ``outcome ~ treatment`` formula, or None when it is not one."""
    if not isinstance(formula, str) or "~" not in formula:
        fail(func, "formula", formula, "of the form 'outcome ~ treatment' (one variable on "
             "each side)")
    lhs, rhs = variables(formula)
    if len(lhs) != 1 or len(rhs) != 1:
        fail(func, "formula", formula, "of the form 'outcome ~ treatment' (one variable on "
             "each side)")
    return lhs[0], rhs[0]


# ------------------------------------------------------------------ data checks
def check_observed(func: str, name: str, values: np.ndarray, missing: np.ndarray) -> None:
    """Check that the outcome has a non-missing value (on the rows considered)."""
    if values.size and bool(np.all(missing)):
        raise EstimationError(f"{func}: the outcome {name!r} has no non-missing value (every "
                              "row used is NA), so there are no complete rows to fit.")


def check_finite_frame(func: str, outcome: str, y: np.ndarray, X: np.ndarray,
                       columns: list[str]) -> None:
    """Reject infinite values in the outcome or a regressor, naming the column."""
    # a finite sum means every value is finite (inf and NaN propagate): one pass, no mask
    if y.dtype.kind == "f" and not np.isfinite(y.sum()) and not np.isfinite(y).all():
        raise EstimationError(f"{func}: the outcome {outcome!r} has infinite values; "
                              "recode or drop those rows.")
    if X.size and not np.isfinite(X.sum()) and not np.isfinite(X).all():
        bad = [c for c, ok in zip(columns, np.isfinite(X).all(axis=0)) if not ok]
        raise EstimationError(f"{func}: the regressor(s) {', '.join(map(repr, bad))} have "
                              "infinite values; recode or drop those rows.")


def bind_vectors(func: str, data: Any, **arguments: Any) -> tuple[Any, dict[str, Any]]:
    """Add vector-valued column arguments (``weights=df.w``) to the data as columns.

    estimatr accepts a vector wherever it takes a column; here an array or pandas
    Series of one value per row of ``data`` becomes a column named ``"(weights)"`` (as
    R's model frames name it) and the argument that name. Strings and None pass through.
    """
    out = dict(arguments)
    vectors = {k: v for k, v in arguments.items()
               if v is not None and not isinstance(v, str)
               and isinstance(v, (np.ndarray, pd.Series, pd.Index, list, tuple))}
    if not vectors or not isinstance(data, (pd.DataFrame, Mapping)):
        return data, out
    cols = data_columns(func, data)
    n = len(data) if isinstance(data, pd.DataFrame) else \
        len(np.asarray(next(iter(cols.values())))) if cols else 0
    added = {}
    for arg, v in vectors.items():
        a = v.to_numpy() if isinstance(v, (pd.Series, pd.Index)) else np.asarray(v)
        if a.ndim != 1 or len(a) != n:
            fail(func, arg, v, f"a column name or a vector with one value per row of the "
                 f"data ({n} values)", shown=f"<vector of shape {a.shape}>")
        added[f"({arg})"] = a
        out[arg] = f"({arg})"
    if isinstance(data, pd.DataFrame):
        return data.assign(**added), out
    return {**data, **added}, out
