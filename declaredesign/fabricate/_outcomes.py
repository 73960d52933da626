"""Potential outcomes and revealing the observed outcome (fabricatr / DeclareDesign).

``potential_outcomes("Y ~ 0.5 * Z + u")`` makes one column per condition, named as
fabricatr names them: ``Y_Z_0``, ``Y_Z_1``; with two assignment variables
``Y_Z1_0_Z2_0``, ``Y_Z1_1_Z2_0``, ... (the first variable varies fastest, as in R's
``expand.grid``). ``reveal_outcomes("Y ~ Z")`` picks, on each row, the column of
the condition the row was assigned to.
"""

from __future__ import annotations

import itertools
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail
from ..batch import Batch
from ..errors import FormulaError
from ..expressions import Context, Lazy, check, evaluate
from ..expressions import short_repr as _short_repr

__all__ = ["PotentialOutcomes", "RevealOutcomes", "potential_outcomes", "reveal_outcomes"]

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


def _r_str(v: Any) -> str:
    """Write a condition value as R's paste() does (1 not 1.0, TRUE not True, NA)."""
    if v is None or (isinstance(v, float | np.floating) and np.isnan(v)):
        return "NA"
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (numbers.Real, np.floating, np.integer)):
        f = float(v)
        if np.isfinite(f) and f == int(f):
            return str(int(f))
        return repr(f)
    return str(v)


def _split_formula(func: str, formula: str) -> tuple[str, str]:
    if not isinstance(formula, str) or formula.count("~") != 1:
        fail(func, "formula", formula, "a string 'outcome ~ expression'")
    lhs, rhs = (p.strip() for p in formula.split("~"))
    if not _NAME.match(lhs):
        fail(func, "formula", formula, "named on its left-hand side (e.g. 'Y ~ 0.5 * Z')")
    if not rhs:
        fail(func, "formula", formula, "an expression on its right-hand side")
    check(rhs, f"{func}(formula={formula!r})")
    return lhs, rhs


def _one_or_two_values(key: np.ndarray) -> tuple[list[Any], np.ndarray | None] | None:
    """Return the sorted values of a numeric key taking one or two values, and where the larger is.

    None otherwise (more values, NaN, object text): then :func:`_conditions` groups the key.
    """
    if key.dtype.kind in "US":
        return _one_or_two_texts(key)
    if key.dtype.kind not in "biuf":
        return None
    lo, hi = key.min(), key.max()
    if lo == hi:
        return [lo], None
    upper = key == hi
    if not bool((upper | (key == lo)).all()):
        return None
    return [lo, hi], upper


def _one_or_two_texts(key: np.ndarray) -> tuple[list[Any], np.ndarray | None] | None:
    """:func:`_one_or_two_values` of a numpy text key (two comparisons, no sort)."""
    first = key[0]
    is_first = key == first
    j = int(np.argmin(is_first))
    if is_first[j]:
        return [first], None
    other = key[j]
    if not bool((is_first | (key == other)).all()):
        return None
    if other > first:
        return [first, other], ~is_first
    return [other, first], is_first


def _conditions(keys: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[Any, ...]]]:
    """Return each row's condition number and the conditions (each row's first values).

    Conditions are in sorted order. A single key of Python objects (text conditions
    such as ``"Yes"``) is hashed rather than sorted, which is many times faster on a
    batch's rows and groups the same values (Python equality, NaN with NaN).
    """
    if len(keys) == 1 and keys[0].dtype == object:
        codes, values = pd.factorize(keys[0], use_na_sentinel=False)
        try:
            order = np.argsort(values, kind="stable")
        except TypeError:          # values of several types: first-appearance order
            order = np.arange(len(values))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        # each condition as its first row holds it (factorize writes None as NaN)
        first = np.empty(len(values), dtype=np.int64)
        first[codes[::-1]] = np.arange(len(codes))[::-1]
        return rank[codes], [(keys[0][first[j]],) for j in order]
    n_rows = len(keys[0])
    uniq, inv = np.unique(np.column_stack([k.astype(object) for k in keys]).astype(str)
                          if len(keys) > 1 else keys[0], axis=0 if len(keys) > 1 else None,
                          return_inverse=True)
    inv = inv.reshape(-1)
    first = np.zeros(len(uniq), dtype=np.int64)
    first[inv[::-1]] = np.arange(n_rows)[::-1]
    return inv, [tuple(k[first[j]] for k in keys) for j in range(len(uniq))]


@dataclass(frozen=True, repr=False, eq=False)
class PotentialOutcomes:
    """Potential outcome columns, one per condition (see :func:`potential_outcomes`).

    Either a formula with conditions, or (``formula`` None) the column form: named
    columns ``(("Y_Z_0", expr), ("Y_Z_1", expr))`` evaluated in order.
    """

    formula: str | None
    conditions: tuple[tuple[str, tuple[Any, ...]], ...]
    sep: str = "_"
    columns: tuple[tuple[str, Any], ...] = ()

    @property
    def outcome(self) -> str:
        """The outcome name (left of ``~``; in the column form, the first column's prefix)."""
        if self.formula is None:
            return self.columns[0][0].split(self.sep)[0]
        return _split_formula("potential_outcomes", self.formula)[0]

    @property
    def assignment_variables(self) -> tuple[str, ...]:
        """The assignment variables, in order."""
        return tuple(k for k, _ in self.conditions)

    def grid(self) -> list[dict[str, Any]]:
        """Every condition, the first variable varying fastest (R's expand.grid)."""
        names = [k for k, _ in self.conditions]
        values = [v for _, v in self.conditions]
        combos = itertools.product(*reversed(values))
        return [dict(zip(names, reversed(c), strict=True)) for c in combos]

    def column_name(self, condition: Mapping[str, Any]) -> str:
        """Return the column name of one condition, e.g. ``Y_Z_1``."""
        s = self.sep
        return self.outcome + s + s.join(f"{k}{s}{_r_str(v)}" for k, v in condition.items())

    @property
    def names(self) -> list[str]:
        """The columns this makes, in order."""
        if self.formula is None:
            return [name for name, _ in self.columns]
        return [self.column_name(c) for c in self.grid()]

    def apply(self, batch: Batch, rng: np.random.Generator | None = None) -> Batch:
        """Add the potential outcome columns to a batch.

        Examples
        --------
        >>> import numpy as np
        >>> from declaredesign import Batch
        >>> b = Batch({"u": np.array([0.0, 1.0])}, sim=np.array([0, 1]), n_sims=2)
        >>> potential_outcomes("Y ~ 0.5 * Z + u").apply(b).names
        ['u', 'Y_Z_0', 'Y_Z_1']
        """
        if self.formula is None:
            return self._apply_columns(batch, rng)
        _, rhs = _split_formula("potential_outcomes", self.formula)
        new = {}
        for cond in self.grid():
            new[self.column_name(cond)] = evaluate(
                rhs, batch, rng, extra=cond, label=f"potential_outcomes({self.formula!r})")
        return batch.with_columns(new)

    def _apply_columns(self, batch: Batch, rng: np.random.Generator | None) -> Batch:
        """Column form: each column in order, later ones seeing the earlier (as fabricate)."""
        for name, expr in self.columns:
            value = evaluate(expr, batch, rng, label=f"potential_outcomes({name}=...)")
            batch = batch.with_columns({name: value})
        return batch

    def __call__(self, data: pd.DataFrame, seed: Any = None) -> pd.DataFrame:
        """Add the columns to a DataFrame (standalone use)."""
        out = self.apply(Batch.from_pandas(data), np.random.default_rng(seed))
        res = data.copy()
        for name in self.names:
            res[name] = out[name]
        return res

    def __repr__(self) -> str:
        if self.formula is None:
            cols = ", ".join(f"{k}={_short_repr(v)}" for k, v in self.columns)
            return f"potential_outcomes({cols})"
        conds = "{" + ", ".join(f"{k!r}: {list(v)!r}" for k, v in self.conditions) + "}"
        return f"potential_outcomes({self.formula!r}, conditions={conds})"


def potential_outcomes(formula: str | None = None, conditions: Any = None,
                       assignment_variables: str | Sequence[str] | None = None,
                       sep: str = "_", **columns: Any) -> PotentialOutcomes:
    """Declare potential outcomes (fabricatr/DeclareDesign ``potential_outcomes``).

    Two forms, as in R: a formula expanded over the conditions, or the potential
    outcome columns written out one by one (``potential_outcomes(Y_Z_0="U",
    Y_Z_1="U + 1")``, R's ``declare_potential_outcomes(Y_Z_0 = U, Y_Z_1 = U + 1)``),
    each an expression, draw, array or callable evaluated in order, so a later
    column may use an earlier one.

    Parameters
    ----------
    formula : str, optional
        ``"Y ~ expression"``; the expression may use the assignment variables, the
        data's columns and draws such as ``normal()``. Omit it for the column form.
    conditions : sequence or dict, optional
        Values of the single assignment variable (``[0, 1]`` by default), or a dict
        ``{variable: values}`` for several.
    assignment_variables : str or list of str, optional
        Names of the assignment variables (default ``"Z"`` or the dict's keys).
    sep : str, default "_"
        Separator in the column names.
    **columns
        The column form: ``name=expression`` for each potential outcome column
        (no ``formula``, ``conditions`` or ``assignment_variables`` then).

    Returns
    -------
    PotentialOutcomes
        Use ``.apply(batch, rng)`` in a design or call it on a DataFrame.

    Examples
    --------
    >>> potential_outcomes("Y ~ Z1 + Z2", conditions={"Z1": [0, 1], "Z2": [0, 1]}).names
    ['Y_Z1_0_Z2_0', 'Y_Z1_1_Z2_0', 'Y_Z1_0_Z2_1', 'Y_Z1_1_Z2_1']
    >>> potential_outcomes(Y_Z_0="U", Y_Z_1="U + 1").names
    ['Y_Z_0', 'Y_Z_1']
    """
    if formula is None or columns:
        return _column_form(formula, conditions, assignment_variables, sep, columns)
    _split_formula("potential_outcomes", formula)
    if isinstance(assignment_variables, str):
        assignment_variables = [assignment_variables]
    if assignment_variables is not None:
        assignment_variables = list(assignment_variables)
        if not assignment_variables or not all(isinstance(a, str) and _NAME.match(a)
                                               for a in assignment_variables):
            fail("potential_outcomes", "assignment_variables", assignment_variables,
                 "one or more column names")
    if conditions is None:
        names = assignment_variables or ["Z"]
        conds = {a: (0, 1) for a in names}
    elif isinstance(conditions, Mapping):
        conds = {str(k): tuple(np.atleast_1d(np.asarray(v, dtype=object)).tolist())
                 for k, v in conditions.items()}
        if assignment_variables is not None and list(conds) != assignment_variables:
            fail("potential_outcomes", "assignment_variables", assignment_variables,
                 f"the names of conditions ({list(conds)!r})")
    else:
        names = assignment_variables or ["Z"]
        if len(names) != 1:
            fail("potential_outcomes", "conditions", conditions,
                 "a dict {variable: values} when there are several assignment variables")
        conds = {names[0]: tuple(np.atleast_1d(np.asarray(conditions, dtype=object))
                                 .tolist())}
    for k, v in conds.items():
        if len(v) == 0 or len(set(map(_r_str, v))) != len(v):
            fail("potential_outcomes", "conditions", conditions,
                 f"non-empty, distinct values for {k!r}")
    if not isinstance(sep, str):
        fail("potential_outcomes", "sep", sep, "a string")
    return PotentialOutcomes(formula, tuple(conds.items()), sep)


def _column_form(formula: Any, conditions: Any, assignment_variables: Any, sep: Any,
                 columns: dict[str, Any]) -> PotentialOutcomes:
    """Check and build the column form of :func:`potential_outcomes`."""
    if formula is not None:
        fail("potential_outcomes", "formula", formula, "omitted when the potential outcome "
             f"columns are given by name ({', '.join(columns)})")
    if not columns:
        fail("potential_outcomes", "formula", None, "a string 'Y ~ expression', or the "
             "columns given by name (potential_outcomes(Y_Z_0='U', Y_Z_1='U + 1'))")
    for arg, v in (("conditions", conditions), ("assignment_variables", assignment_variables)):
        if v is not None:
            fail("potential_outcomes", arg, v, "omitted in the column form (the column "
                 "names say the conditions)")
    for name in columns:
        if not _NAME.match(name):
            fail("potential_outcomes", name, name, "a valid column name")
    if not isinstance(sep, str):
        fail("potential_outcomes", "sep", sep, "a string")
    return PotentialOutcomes(None, (), sep, tuple(columns.items()))


@dataclass(frozen=True, repr=False, eq=False)
class RevealOutcomes(Lazy):
    """Observed outcomes from potential outcomes (see :func:`reveal_outcomes`)."""

    outcome_variables: tuple[str, ...]
    assignment_variables: tuple[str, ...]
    sep: str = "_"

    def _source(self, columns: Mapping[str, np.ndarray], outcome: str,
                condition: tuple[Any, ...]) -> np.ndarray:
        """Return the potential outcome column of a condition (a value per assignment variable)."""
        s = self.sep
        name = outcome + s + s.join(f"{a}{s}{_r_str(v)}" for a, v in
                                    zip(self.assignment_variables, condition, strict=True))
        if name not in columns:
            pos = [c for c in columns if c.startswith(outcome + s)]
            raise FormulaError(
                f"{self!r}: potential outcome column {name!r} does not exist; "
                f"potential outcome columns are: {', '.join(pos) or '(none)'}.")
        return np.asarray(columns[name])

    def _reveal(self, columns: Mapping[str, np.ndarray], n_rows: int,
                outcome: str) -> np.ndarray:
        keys = []
        for a in self.assignment_variables:
            if a not in columns:
                raise FormulaError(
                    f"{self!r}: assignment variable {a!r} is not a column; available "
                    f"columns are: {', '.join(columns)}.")
            arr = np.asarray(columns[a])
            if arr.ndim == 0:
                arr = np.full(n_rows, arr[()])
            keys.append(arr)
        if n_rows == 0:
            return np.zeros(0)
        two = _one_or_two_values(keys[0]) if len(keys) == 1 else None
        if two is not None:
            # the usual single 0/1 treatment: no sort, one pass to pick the outcomes
            values, upper = two
            sources = [self._source(columns, outcome, (v,)) for v in values]
            if len(sources) == 1:
                return sources[0].copy()
            return np.where(upper, sources[1], sources[0])
        inv, conditions = _conditions(keys)
        sources = [self._source(columns, outcome, c) for c in conditions]
        if len(sources) == 1:
            return sources[0].copy()
        out = np.empty(n_rows, dtype=np.result_type(*sources))
        for j, src in enumerate(sources):
            m = inv == j
            out[m] = src[m]
        return out

    def _eval(self, ctx: Context) -> np.ndarray:
        if len(self.outcome_variables) != 1:
            raise FormulaError(f"{self!r} reveals several outcomes; use .apply(batch).")
        return self._reveal(ctx.columns, ctx.n_rows, self.outcome_variables[0])

    def apply(self, batch: Batch, rng: np.random.Generator | None = None) -> Batch:
        """Add the observed outcome column(s) to a batch.

        Examples
        --------
        >>> import numpy as np
        >>> from declaredesign import Batch
        >>> b = Batch({"Y_Z_0": np.zeros(3), "Y_Z_1": np.ones(3), "Z": np.array([0, 1, 1])},
        ...           sim=np.zeros(3, int), n_sims=1)
        >>> reveal_outcomes("Y ~ Z").apply(b)["Y"].tolist()
        [0.0, 1.0, 1.0]
        """
        new = {y: self._reveal(batch.columns, batch.n_rows, y) for y in self.outcome_variables}
        return batch.with_columns(new)

    def __call__(self, data: pd.DataFrame, seed: Any = None) -> pd.DataFrame:
        """Add the observed outcome column(s) to a DataFrame."""
        out = self.apply(Batch.from_pandas(data))
        res = data.copy()
        for y in self.outcome_variables:
            res[y] = out[y]
        return res

    def __repr__(self) -> str:
        ys, zs = self.outcome_variables, self.assignment_variables
        y = repr(ys[0]) if len(ys) == 1 else repr(list(ys))
        z = repr(zs[0]) if len(zs) == 1 else repr(list(zs))
        return f"reveal_outcomes(outcome_variables={y}, assignment_variables={z})"


def reveal_outcomes(outcome_variables: str | Sequence[str] = "Y",
                    assignment_variables: str | Sequence[str] = "Z",
                    sep: str = "_") -> RevealOutcomes:
    """Reveal observed outcomes (DeclareDesign/fabricatr ``reveal_outcomes``).

    Parameters
    ----------
    outcome_variables : str or list of str, default "Y"
        Outcome name(s), or a formula ``"Y ~ Z"`` / ``"Y ~ Z1 + Z2"``.
    assignment_variables : str or list of str, default "Z"
        Assignment column(s) (ignored when a formula is given).
    sep : str, default "_"

    Returns
    -------
    RevealOutcomes
        A lazy value (usable as a variable, e.g. in a measurement step), with
        ``.apply(batch, rng)`` and a call on a DataFrame.

    Examples
    --------
    >>> reveal_outcomes("score ~ treatment")
    reveal_outcomes(outcome_variables='score', assignment_variables='treatment')
    """
    if isinstance(outcome_variables, str) and "~" in outcome_variables:
        lhs, rhs = _split_formula("reveal_outcomes", outcome_variables)
        ys = [lhs]
        zs = [t.strip() for t in rhs.split("+")]
    else:
        ys = [outcome_variables] if isinstance(outcome_variables, str) else \
            list(outcome_variables)
        zs = [assignment_variables] if isinstance(assignment_variables, str) else \
            list(assignment_variables)
    if not ys or not all(isinstance(y, str) and _NAME.match(y) for y in ys):
        fail("reveal_outcomes", "outcome_variables", outcome_variables,
             "one or more column names")
    if not zs or not all(isinstance(z, str) and _NAME.match(z) for z in zs):
        fail("reveal_outcomes", "assignment_variables", assignment_variables,
             "one or more column names")
    return RevealOutcomes(tuple(ys), tuple(zs), sep)
