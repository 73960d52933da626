"""Handlers run once on a whole batch, when that is provably the same.

A handler estimator (``declare_estimator(handler=f)``) is a function of one
simulation's DataFrame; the plain way to run it is once per simulation
(:func:`~declaredesign.estimate.protocol.fit_per_simulation`). Many such handlers
only read columns, compare and combine them and take means, as
``lambda data: pd.DataFrame({"estimate": [data["Y"].mean() - 0.6]})``. Those can run
**once**, on a stand-in for the data (:class:`BatchedFrame`) whose columns hold every
simulation's rows: each operation is done for all simulations at once, exactly as
pandas does it on one simulation, and a mean gives one value per simulation.

The stand-in knows a short list of operations (below); every other use of it -- any
other method, ``len``, iteration, conversion to an array, a truth value, a warning or
an error -- stops the batched run, and the simulations are fitted one at a time as
before. So is a handler that takes ``rng`` (its draws depend on the call order), a
result other than a DataFrame whose cells are per-simulation values or constants, or
a batch where the first and last simulations, fitted one at a time as a check, do not
give exactly the batched rows.

Operations of the stand-in:

- ``data["col"]`` (or ``data.col``) for a bool, int64 or float64 column; ``data[mask]``;
- on columns: ``== != < <= > >=``, ``+ - * /`` (also with a number or a
  per-simulation value), unary ``-``, ``& | ~`` of boolean columns, ``col[mask]``,
  ``col.mean()``, ``col.sum()``;
- on per-simulation values (a mean, a sum): ``+ - * /`` with numbers, unary ``-``,
  ``abs``;
- library functions with a batched twin (:mod:`~declaredesign.design.handler_twins`),
  called from the handler's own code: ``scipy.stats.ks_2samp(col1, col2)``, whose
  ``.statistic`` and ``.pvalue`` are per-simulation values.

Means and sums follow pandas' own reductions (pairwise sums per simulation); a
simulation with no rows, or a float column with a missing value, is left to the
per-simulation run.

Registered estimators (``dd.difference_in_means``, ``dd.lm_robust``... anything made with
:func:`~declaredesign.estimate.protocol.register_estimator`) called with the stand-in as
``data`` hand the call to it (:data:`~declaredesign.estimate.protocol.BATCHED_FIT`): the
arguments are parsed as the standalone call parses them (an invalid one raises the
same error, and the simulations then run one at a time), vector arguments
(``weights=1 / data["p"]``, ``blocks=data["b"]``) become columns as the standalone call
binds them, and the estimator's kernel fits the stand-in's rows of every simulation. The
result does ``tidy()`` only: the standalone tidy frame (columns, order, index, dtypes),
a column the same in every simulation as the standalone fit gives it, a numeric one
that varies holding one per-simulation value per row. The kernel must fit every
simulation, without a message, and give the first simulation's standalone numbers to the
last bit; a kernel that agrees with the standalone fit only to rounding is refused (so
far ``difference_in_means`` without blocks, clusters or weights is bit-exact). A
per-simulation value is never missing: pandas tests cells for missing values without
asking them (``isna``, ``dropna``), so a cell missing in some simulations is refused.
The handler's result may have any index: the per-simulation run drops it.

Data-step handlers (``declare_sampling(handler=f)``, ``declare_step(f)``,
``declare_reveal(handler=f)``) go the same way (:func:`run_data_handler_batched`):
one that returns its data, or its data filtered by a mask built from the operations
above (``data[(data["X"] > -0.5) & (data["X"] < 0.5)]``), gives the batch's rows under
that mask, with the columns as the per-simulation run stacks them. Any other result
(a new DataFrame, ``head``, ``sample``, ``iloc``...) runs the simulations one at a time.
"""

from __future__ import annotations

import operator
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..batch import Batch
from ..estimate.protocol import (
    Estimator,
    KernelResult,
    fit_per_simulation,
    rank_deficient_message,
    stack_rows,
)
from .handler_twins import StandIn, twin_call
from .handlers import accepts_rng

__all__ = ["BatchedFrame", "fit_handler_batched", "run_data_handler_batched"]

#: Switch the batched run off (the per-simulation run is the reference).
ENABLED = True

#: Code whose arithmetic on per-simulation values is refused (see PerSim._check_caller).
_LIBRARIES = frozenset({"numpy", "pandas", "scipy"})
_COLUMN_DTYPES = (np.dtype(bool), np.dtype(np.int64), np.dtype(np.float64))
_RESULT_DTYPES = (np.dtype(np.int64), np.dtype(np.float64))


class _Refused(Exception):
    """An operation the batched run does not do exactly; the simulations run one by one."""


class _Run:
    """One batched call: remembers a refusal even when user code catches the exception."""

    __slots__ = ("batch", "refused")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.refused = False

    def refuse(self, what: str) -> None:
        self.refused = True
        raise _Refused(what)


class _Layout:
    """Which rows of a selection belong to each simulation (contiguous, in order)."""

    __slots__ = ("sizes",)

    def __init__(self, sizes: np.ndarray):
        self.sizes = sizes


def _plain_scalar(value: Any) -> bool:
    """Say whether an operation may take ``value`` as it is: an int or float, not a bool."""
    if isinstance(value, bool | np.bool_):
        return False
    return isinstance(value, int | float | np.int64 | np.float64)


def _binary(apply: str, op: Callable[[Any, Any], Any]) -> tuple[Callable, Callable]:
    """Make an operator's method and its reflected method, both calling ``apply``.

    The methods call ``apply`` directly, so that ``PerSim._check_caller`` finds the
    handler's frame at the same depth as a hand-written method would give.
    """
    def method(self: Any, o: Any) -> Any:
        return getattr(self, apply)(o, op, False)

    def reflected(self: Any, o: Any) -> Any:
        return getattr(self, apply)(o, op, True)

    return method, reflected


def _comparison(op: Callable[[Any, Any], Any]) -> Callable:
    """Make an elementwise comparison of columns (no arithmetic check on booleans)."""
    def method(self: Rows, o: Any) -> Rows:
        return self._apply(o, op, arithmetic=False)

    return method


class _Values(StandIn):
    """Shared refusals: what a stand-in value cannot be turned into."""

    __slots__ = ("_run",)
    __array_ufunc__ = None     # numpy must not treat it as an array of objects

    def _refuse(self, what: str) -> Any:
        self._run.refuse(what)

    def __getattr__(self, name: str) -> Any:
        # a method or attribute of pandas' Series or of a numpy scalar that is not listed
        # (to_numpy, values, std, item...): refused; private names are probes by numpy
        # and pandas, which must find nothing
        if name.startswith("_"):
            raise AttributeError(name)
        return self._refuse(f".{name}")

    def __bool__(self) -> bool:
        return self._refuse("truth value")

    def __len__(self) -> int:
        return self._refuse("len()")

    def __iter__(self) -> Any:
        return self._refuse("iteration")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        return self._refuse("conversion to an array")

    def __float__(self) -> float:
        return self._refuse("float()")

    def __int__(self) -> int:
        return self._refuse("int()")

    def __index__(self) -> int:
        return self._refuse("index")

    def __str__(self) -> str:
        return self._refuse("str()")

    def __format__(self, spec: str) -> str:
        return self._refuse("format()")

    def __hash__(self) -> int:
        return self._refuse("hash()")

    def __round__(self, *args: Any) -> Any:
        return self._refuse("round()")

    def __pow__(self, other: Any) -> Any:
        return self._refuse("**")

    __rpow__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__


class PerSim(_Values):
    """One value per simulation (a mean or a sum), as a numpy scalar is in one simulation."""

    __slots__ = ("_values",)

    def __init__(self, run: _Run, values: np.ndarray):
        self._run = run
        self._values = values

    def _operand(self, other: Any) -> Any:
        if isinstance(other, PerSim) and other._run is self._run:
            return other._values
        if _plain_scalar(other):
            return other
        return self._refuse(f"an operation with {type(other).__name__}")

    def _arith(self, other: Any, op: Callable[[Any, Any], Any], reflected: bool) -> PerSim:
        self._check_caller(3)
        o = self._operand(other)
        if self._values.dtype != np.float64 and np.asarray(o).dtype.kind != "f":
            # numpy integer scalars warn on overflow where arrays wrap silently
            return self._refuse("integer arithmetic on per-simulation values")
        # numpy scalar arithmetic elementwise: the same IEEE operation per simulation;
        # a warning (say, a division by zero) stops the batched run
        res = op(o, self._values) if reflected else op(self._values, o)
        return PerSim(self._run, np.asarray(res))

    __add__, __radd__ = _binary("_arith", operator.add)
    __sub__, __rsub__ = _binary("_arith", operator.sub)
    __mul__, __rmul__ = _binary("_arith", operator.mul)
    __truediv__, __rtruediv__ = _binary("_arith", operator.truediv)

    def __neg__(self) -> PerSim:
        self._check_caller(2)
        return PerSim(self._run, -self._values)

    def __abs__(self) -> PerSim:
        self._check_caller(2)
        return PerSim(self._run, np.abs(self._values))

    def _check_caller(self, depth: int) -> None:
        """Refuse arithmetic that numpy, pandas or scipy do with these values.

        Only the handler's own operations are done as written: a library adds, say, a
        column of per-simulation values in its own order (numpy sums floats pairwise,
        objects one after another), which need not round as one simulation's sum does.
        """
        caller = sys._getframe(depth).f_globals.get("__name__", "")
        if caller.split(".")[0] in _LIBRARIES:
            self._refuse(f"arithmetic on per-simulation values inside {caller}")

    def __eq__(self, other: Any) -> Any:
        return self._refuse("comparison")

    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __eq__
    __hash__ = _Values.__hash__


class Rows(_Values):
    """A column: every simulation's rows of one selection of the data."""

    __slots__ = ("_values", "_layout")

    def __init__(self, run: _Run, values: np.ndarray, layout: _Layout):
        self._run = run
        self._values = values
        self._layout = layout

    def _operand(self, other: Any) -> Any:
        if isinstance(other, Rows) and other._run is self._run:
            if other._layout is not self._layout:   # pandas would align on the row labels
                return self._refuse("columns of different row selections")
            return other._values
        if isinstance(other, PerSim) and other._run is self._run:
            return np.repeat(other._values, self._layout.sizes)
        if _plain_scalar(other):
            return other
        return self._refuse(f"an operation with {type(other).__name__}")

    def _apply(self, other: Any, op: Callable[[Any, Any], Any], reflected: bool = False,
               arithmetic: bool = True) -> Rows:
        o = self._operand(other)
        if arithmetic and "b" in (self._values.dtype.kind, np.asarray(o).dtype.kind):
            return self._refuse("arithmetic on booleans")
        with np.errstate(all="ignore"):      # as pandas' column arithmetic
            res = op(o, self._values) if reflected else op(self._values, o)
        return Rows(self._run, np.asarray(res), self._layout)

    __add__, __radd__ = _binary("_apply", operator.add)
    __sub__, __rsub__ = _binary("_apply", operator.sub)
    __mul__, __rmul__ = _binary("_apply", operator.mul)
    __truediv__, __rtruediv__ = _binary("_apply", operator.truediv)

    def __neg__(self) -> Rows:
        if self._values.dtype == bool:
            return self._refuse("negation of booleans")
        return Rows(self._run, -self._values, self._layout)

    __eq__ = _comparison(operator.eq)  # type: ignore[assignment]
    __ne__ = _comparison(operator.ne)  # type: ignore[assignment]
    __lt__ = _comparison(operator.lt)
    __le__ = _comparison(operator.le)
    __gt__ = _comparison(operator.gt)
    __ge__ = _comparison(operator.ge)

    __hash__ = _Values.__hash__

    def _logical(self, other: Any, op: Callable[[Any, Any], Any]) -> Rows:
        if not (isinstance(other, Rows) and other._run is self._run
                and other._layout is self._layout and self._values.dtype == bool
                and other._values.dtype == bool):
            return self._refuse("& or | other than of boolean columns")
        return Rows(self._run, op(self._values, other._values), self._layout)

    def __and__(self, o: Any) -> Rows:
        return self._logical(o, operator.and_)

    def __or__(self, o: Any) -> Rows:
        return self._logical(o, operator.or_)

    def __invert__(self) -> Rows:
        if self._values.dtype != bool:
            return self._refuse("~ of a non-boolean column")
        return Rows(self._run, ~self._values, self._layout)

    def __getitem__(self, key: Any) -> Rows:
        values, layout, _ = _select(self._run, self._values, self._layout, key)
        return Rows(self._run, values, layout)

    def _twin_samples(self) -> tuple[_Run, np.ndarray, np.ndarray]:
        return self._run, self._values, self._layout.sizes

    def _twin_per_sim(self, values: np.ndarray) -> PerSim:
        return PerSim(self._run, values)

    def mean(self, *args: Any, **kwargs: Any) -> PerSim:
        """Each simulation's mean, as pandas' ``Series.mean()`` computes it."""
        if args or kwargs:
            return self._refuse("mean() with arguments")
        total, count = self._sums()
        return PerSim(self._run, total / count)

    def sum(self, *args: Any, **kwargs: Any) -> PerSim:
        """Each simulation's sum, as pandas' ``Series.sum()`` computes it."""
        if args or kwargs:
            return self._refuse("sum() with arguments")
        if self._values.dtype == np.float64:
            return PerSim(self._run, self._sums()[0])
        # integers and booleans sum exactly in int64, in any order
        sums = np.add.reduceat(self._values.astype(np.int64), self._bounds()[:-1])
        return PerSim(self._run, sums.astype(np.int64))

    def _bounds(self) -> np.ndarray:
        sizes = self._layout.sizes
        if not len(sizes) or not sizes.all():
            return self._refuse("a simulation without rows")
        v = self._values
        if v.dtype == np.float64 and np.isnan(v).any():
            return self._refuse("missing values")
        if v.dtype == np.int64 and len(v) and \
                float(np.abs(v).max()) * float(sizes.max()) >= 2.0 ** 53:
            return self._refuse("integers too large to sum exactly in float64")
        return np.concatenate([[0], np.cumsum(sizes)])

    def _sums(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-simulation float64 sums and row counts (pandas: ``values.sum(dtype=f8)``)."""
        b = self._bounds()
        v = self._values
        if v.dtype == np.float64:
            # pairwise summation within each simulation, as numpy sums one array
            total = np.array([v[b[i]:b[i + 1]].sum() for i in range(len(b) - 1)])
        else:
            # integers and booleans: exact float64 sums (far below 2**53) in any order
            total = np.add.reduceat(v.astype(np.float64), b[:-1])
        return total, np.diff(b).astype(np.float64)


def _select(run: _Run, values: np.ndarray | None, layout: _Layout,
            key: Any) -> tuple[Any, _Layout, np.ndarray]:
    """Rows where a boolean column of the same selection is true."""
    if not (isinstance(key, Rows) and key._run is run and key._layout is layout
            and key._values.dtype == bool):
        run.refuse("indexing other than by a boolean column of the same rows")
    mask = key._values
    sim = np.repeat(np.arange(len(layout.sizes)), layout.sizes)
    sizes = np.bincount(sim[mask], minlength=len(layout.sizes))
    return (None if values is None else values[mask]), _Layout(sizes), mask


class BatchedFrame(StandIn):
    """Stand-in for one simulation's DataFrame holding every simulation's rows.

    Only the operations listed in the module docstring are done; anything else
    stops the batched run (the simulations then run one at a time).
    """

    __slots__ = ("_run", "_columns", "_rows", "_layout")
    __array_ufunc__ = None

    def __init__(self, run: _Run, columns: Mapping[str, np.ndarray], rows: np.ndarray | None,
                 layout: _Layout):
        self._run = run
        self._columns = columns
        self._rows = rows              # selected rows of the batch (None: all)
        self._layout = layout

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if key not in self._columns:
                raise KeyError(key)
            col = self._columns[key]
            if col.dtype not in _COLUMN_DTYPES:
                self._run.refuse(f"column {key!r} of dtype {col.dtype}")
            values = col if self._rows is None else col[self._rows]
            return Rows(self._run, values, self._layout)
        if isinstance(key, Rows):
            _, layout, mask = _select(self._run, None, self._layout, key)
            rows = np.flatnonzero(mask) if self._rows is None else self._rows[mask]
            return BatchedFrame(self._run, self._columns, rows, layout)
        return self._run.refuse(f"data[{type(key).__name__}]")

    def __getattr__(self, name: str) -> Any:
        # pandas reads a column as an attribute unless a DataFrame attribute has its name
        if name.startswith("_"):
            raise AttributeError(name)
        if hasattr(pd.DataFrame, name):
            return self._run.refuse(f"data.{name}")
        if name in self._columns:
            return self[name]
        raise AttributeError(name)     # as pandas: neither a column nor an attribute

    def __dd_batched_fit__(self, estimator: Estimator, arguments: dict[str, Any]) -> Any:
        # a registered estimator called with this stand-in as its data (see
        # declaredesign.estimate.protocol.BATCHED_FIT): its kernel fits every simulation
        return _fit_estimator(self, estimator, arguments)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        return self._run.refuse("this use of the data")

    __len__ = __iter__ = __bool__ = __array__ = __contains__ = _refuse
    __setitem__ = __delitem__ = _refuse
    __hash__ = __eq__ = __ne__ = _refuse  # type: ignore[assignment]


# ---------------------------------------------------------- registered estimators
#: Arguments estimatr takes as a vector as well as a column name (``weights=1 / data.p``).
_VECTOR_ARGUMENTS = frozenset({"weights", "clusters", "blocks", "condition_prs"})


class _BatchedFit:
    """What a registered estimator returns on the stand-in: only ``tidy()`` is done."""

    __slots__ = ("_run", "_tidy")

    def __init__(self, run: _Run, tidy: pd.DataFrame):
        self._run = run
        self._tidy = tidy

    def tidy(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """Return the standalone fit's tidy frame, with per-simulation cells as PerSim values."""
        if args or kwargs:
            return self._run.refuse("tidy() with arguments")
        return self._tidy.copy()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._run.refuse(f"fit.{name}")

    def __repr__(self) -> str:
        return self._run.refuse("repr() of a fit")

    __str__ = __repr__


def _fit_estimator(frame: BatchedFrame, estimator: Estimator,
                   arguments: dict[str, Any]) -> Any:
    """Fit a registered estimator to the stand-in's rows of every simulation at once.

    The estimator's kernel runs on the batch (the stand-in's selected rows, with vector
    arguments as columns, as the standalone function binds them); the standalone call on
    the first simulation gives the kind of result and the tidy frame's columns, index
    and dtypes, and must equal the kernel's rows of that simulation exactly. Any
    error (an invalid argument, as the standalone call raises it) is raised as it is,
    and the simulations then run one at a time whatever the handler does with it.
    """
    run = frame._run
    try:
        return _fit_on_batch(frame, estimator, arguments)
    except _Refused:
        raise
    except Exception:
        run.refused = True
        raise


def _fit_on_batch(frame: BatchedFrame, estimator: Estimator,
                  arguments: dict[str, Any]) -> Any:
    run = frame._run
    formula = arguments.pop("formula", None)
    if estimator.kernel is None or not isinstance(formula, str):
        return run.refuse(f"{estimator.name} without a batched kernel or formula")
    if not frame._layout.sizes.all():
        return run.refuse("a simulation without rows")
    batch = run.batch if frame._rows is None else _kept_rows(run.batch, frame._rows)
    kwargs, vectors = _call_arguments(frame, arguments)
    if vectors:
        batch = batch.with_columns(vectors)
    spec = estimator.parse(formula, **kwargs)
    res = estimator.kernel(batch, spec)
    if isinstance(res, pd.DataFrame):
        res = KernelResult(res)
    if res.fallback:
        return run.refuse(f"{estimator.name}: simulations its kernel leaves to the "
                          "standalone fit")
    # the first simulation's standalone call, as the handler makes it (vectors as the
    # columns the function binds them to): what the result is, and its exact numbers
    first = estimator.function(formula=formula, data=batch.select_sims([0]).to_pandas(),
                               **kwargs)
    if isinstance(first, pd.DataFrame):
        return _tidy_cells(run, first, res.tidy, batch.n_sims)
    if not hasattr(first, "tidy"):
        return run.refuse(f"{estimator.name} returned {type(first).__name__}")
    return _BatchedFit(run, _tidy_cells(run, first.tidy(), res.tidy, batch.n_sims))


def _call_arguments(frame: BatchedFrame, arguments: dict[str, Any]
                    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Keywords for ``parse`` and the vector arguments as columns (as ``bind_vectors``).

    A stand-in column of the same rows becomes the column ``"(name)"``; names, numbers,
    booleans and None pass as they are; anything else (a list, an array of one
    simulation's length...) is refused.
    """
    run = frame._run
    kwargs: dict[str, Any] = {}
    vectors: dict[str, np.ndarray] = {}
    for name, value in arguments.items():
        if isinstance(value, Rows):
            if name not in _VECTOR_ARGUMENTS or value._run is not run or \
                    value._layout is not frame._layout:
                run.refuse(f"{name}= given as a column of other rows")
            vectors[f"({name})"] = value._values
            kwargs[name] = f"({name})"
        elif value is None or isinstance(value, str | bool | int | float):
            kwargs[name] = value
        else:
            run.refuse(f"{name}= given as {type(value).__name__}")
    return kwargs, vectors


def _tidy_cells(run: _Run, first: pd.DataFrame, rows: pd.DataFrame,
                n_sims: int) -> pd.DataFrame:
    """Return the first simulation's tidy frame with every simulation's values in it.

    ``rows`` are the kernel's rows (``sim`` first, ``k`` rows per simulation). A column
    the same in every simulation keeps the first fit's cells; a numeric one that is not
    holds one :class:`PerSim` per row. The first simulation's kernel rows must equal the
    standalone fit's exactly.
    """
    k = len(first)
    sims = rows["sim"].to_numpy() if "sim" in rows.columns else None
    if not k or sims is None or not np.array_equal(sims, np.repeat(np.arange(n_sims), k)):
        return run.refuse("kernel rows other than the standalone fit's, per simulation")
    for note in ("error", "warning"):
        if note in rows.columns and rows[note].notna().any():
            return run.refuse("a kernel row with a message")
    if first.columns.has_duplicates:
        return run.refuse("duplicate columns")
    cells = {}
    for name in first.columns:
        if name not in rows.columns:
            return run.refuse(f"a tidy column ({name!r}) the kernel does not give")
        cells[name] = _cells(run, first[name], rows[name].to_numpy().reshape(n_sims, k))
    return pd.DataFrame(cells, index=first.index)


def _cells(run: _Run, first: pd.Series, values: np.ndarray) -> pd.Series | np.ndarray:
    """One tidy column: the first fit's column, or a PerSim per row where values vary."""
    dtype = first.dtype
    ref = first.to_numpy()
    if not isinstance(dtype, np.dtype) or dtype.kind not in "if":
        # text and the like: only constants (the same value in every simulation)
        if not all(bool(np.all(values[:, j] == ref[j])) for j in range(len(ref))):
            run.refuse(f"column {first.name!r} varies and is not numeric")
        return first
    got = values.astype(dtype)
    if not (np.array_equal(got, values) and np.array_equal(got[0], ref, equal_nan=True)):
        run.refuse(f"the batched {first.name!r} is not the standalone fit's")
    if np.array_equal(got, np.broadcast_to(ref, got.shape), equal_nan=True):
        return first
    if dtype.kind == "f" and np.isnan(got).any():
        # pandas reads a missing value off the cell itself (isna), never asking a PerSim
        run.refuse(f"missing values in {first.name!r} in some simulations")
    out = np.empty(len(ref), dtype=object)
    for j in range(len(ref)):
        out[j] = PerSim(run, np.ascontiguousarray(got[:, j]))
    return out


# ----------------------------------------------------------------------- running
def fit_handler_batched(fit: Callable[[Any], Any], batch: Batch, *,
                        handler: Callable[..., Any], outcome: str | None = None,
                        frame_term: Any = "estimate") -> pd.DataFrame | None:
    """Rows of a handler estimator on every simulation, from one call on a stand-in.

    Parameters
    ----------
    fit : callable
        ``fit(df)``: the handler called on one simulation's data, as the per-simulation
        run calls it; here it is called once with a :class:`BatchedFrame`, and on the
        first and last simulations as a check.
    batch : Batch
        The simulations.
    handler : callable
        The user's function inside ``fit`` (one taking ``rng`` is never batched).
    outcome, frame_term : optional
        As for :func:`~declaredesign.estimate.protocol.fit_per_simulation`.

    Returns
    -------
    pandas.DataFrame or None
        Exactly what :func:`~declaredesign.estimate.protocol.fit_per_simulation` gives,
        or None when the batched run is not possible (run the simulations one at a time).
    """
    called = _call_once(fit, batch, handler,
                        lambda run, res: (res, _expand(run, res, batch.n_sims)))
    if called is None:
        return None
    _, (res, rows) = called
    if rows is None:
        return None
    out = stack_rows(rows, np.full(batch.n_sims, len(res)), _notes(rows, len(res)),
                     list(range(batch.n_sims)), term=frame_term)
    return out if _agrees(out, fit, batch, outcome, frame_term) else None


def _call_once(call: Callable[[Any], Any], batch: Batch, handler: Callable[..., Any],
               read: Callable[[_Run, Any], Any] = lambda run, res: res,
               ) -> tuple[_Run, Any] | None:
    """Call a handler once on the whole batch's stand-in; None when that is not possible.

    Shared by handler estimators and data-step handlers: too few simulations for the
    check to be worth it, a handler taking ``rng``, a warning, an error or a refused
    operation (even one the handler caught) all leave the simulations to the
    per-simulation run. The stand-in is given to :func:`~.handler_twins.twin_call`
    ``(call, handler)``: ``call`` with the handler's copy whose calls to registered
    library functions (``scipy.stats.ks_2samp``) reach their batched twins; the checks
    on single simulations call the original. ``read(run, result)`` turns the handler's
    result into what the caller needs under the same guard (a warning or an error there
    also returns None).
    """
    if not ENABLED or batch.n_sims < 3 or accepts_rng(handler):
        return None
    run = _Run(batch)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")     # a warning belongs to some simulations
            res = read(run, twin_call(call, handler)(_frame(run, batch)))
    except Exception:  # noqa: BLE001 -- anything unexpected: the per-simulation run
        return None
    return None if run.refused else (run, res)


def _frame(run: _Run, batch: Batch) -> BatchedFrame:
    # level IDs are zero-padded strings in user code: not a column the stand-in does
    cols = {k: (v if k not in batch.id_columns else _ID_COLUMN) for k, v in batch.columns.items()}
    return BatchedFrame(run, cols, None, _Layout(batch.sim_sizes()))


#: Stands for a level ID column (strings in user code), which the stand-in refuses.
_ID_COLUMN = np.zeros(0, dtype=object)


def _expand(run: _Run, res: Any, n_sims: int) -> pd.DataFrame | None:
    """Return every simulation's rows, sim-major, from the handler's stand-in result.

    The result's index is dropped, as the per-simulation run stacks the handlers' frames
    (``ignore_index``).
    """
    if not isinstance(res, pd.DataFrame) or not len(res) or not len(res.columns):
        return None
    names = res.columns.tolist()
    if len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
        return None
    out = {}
    for name in names:
        col = res[name]
        cells = col.tolist() if col.dtype == object else None
        if cells is None or not any(isinstance(c, StandIn) for c in cells):
            # the same rows in every simulation
            out[name] = pd.Series(np.tile(col.to_numpy(), n_sims), dtype=col.dtype)
            continue
        values = _per_sim_column(run, cells, n_sims)
        if values is None:
            return None
        out[name] = values
    renamed = [n.replace(".", "_") for n in names]   # as the per-simulation run names them
    if len(set(renamed)) != len(renamed):
        return None
    return pd.DataFrame(dict(zip(renamed, out.values())))


def _per_sim_column(run: _Run, cells: list[Any], n_sims: int) -> np.ndarray | None:
    """Every simulation's values of a column of PerSim (and plain number) cells, sim-major.

    Plain numbers among PerSim cells (a constant row beside per-simulation ones) are
    repeated; the dtype is the one pandas gives when it combines the rows' numeric
    columns (int64 with float64 is float64). Anything else: None.
    """
    arrays = []
    for c in cells:
        if isinstance(c, PerSim) and c._run is run:
            v = c._values
            if v.dtype not in _RESULT_DTYPES or v.shape != (n_sims,):
                return None
        elif _plain_scalar(c):
            v = np.full(n_sims, c)
            if v.dtype not in _RESULT_DTYPES:
                return None
        else:
            return None
        arrays.append(v)
    dtype = np.result_type(*arrays)
    return np.column_stack([a.astype(dtype, copy=False) for a in arrays]).reshape(-1)


def _notes(rows: pd.DataFrame, k: int) -> list[str | None]:
    """Each simulation's warning: only the count of missing estimates (no fit warned)."""
    if "estimate" not in rows.columns:
        return [None] * (len(rows) // k)
    est = rows["estimate"].to_numpy()
    n_na = pd.isna(est).reshape(-1, k).sum(axis=1)
    return [rank_deficient_message(int(n)) if n else None for n in n_na]


def _agrees(out: pd.DataFrame, fit: Callable[[pd.DataFrame], Any], batch: Batch,
            outcome: str | None, frame_term: Any) -> bool:
    """Whether the first and last simulations, fitted one at a time, give the same rows."""
    sims = sorted({0, batch.n_sims - 1})
    ref = fit_per_simulation(fit, batch, sims, outcome=outcome, frame_term=frame_term)
    got = out[out["sim"].isin(sims)].reset_index(drop=True)
    try:
        pd.testing.assert_frame_equal(got, ref, check_exact=True)
    except AssertionError:
        return False
    return True


# ------------------------------------------------------------ data-step handlers
def run_data_handler_batched(call: Callable[[Any], Any], batch: Batch, *,
                             handler: Callable[..., Any]) -> Batch | None:
    """Run a data-step handler that keeps some rows of its data, once for all simulations.

    A sampling (or other data-step) handler such as
    ``lambda data: data[(data["X"] > -0.5) & (data["X"] < 0.5)]`` returns the rows of
    its data where an elementwise expression of the columns holds (a per-simulation
    mean or sum may enter it). Called once on a :class:`BatchedFrame`, it returns the
    stand-in filtered by the same expression on every simulation's rows, so the new
    batch is the old one's rows under that mask. That is the per-simulation run's
    result exactly: every value is computed row by row or simulation by simulation as
    pandas computes it in one simulation, the rows keep their order, and columns are
    turned into what the per-simulation run's DataFrames hold (level IDs become their
    zero-padded strings, formatted on the data the handler received).

    Parameters
    ----------
    call : callable
        ``call(df)``: the handler called on one simulation's data, as the
        per-simulation run calls it; here it is called once with a
        :class:`BatchedFrame`, and on the first and last simulations as a check.
    batch : Batch
        The simulations the step receives.
    handler : callable
        The user's function inside ``call`` (one taking ``rng`` is never batched).

    Returns
    -------
    Batch or None
        The batch the per-simulation run would give, or None when the batched run is
        not possible (run the simulations one at a time).
    """
    if not all(_round_trips(v) for k, v in batch.columns.items()
               if k not in batch.id_columns):
        return None
    called = _call_once(call, batch, handler)
    if called is None:
        return None
    run, res = called
    if not isinstance(res, BatchedFrame) or res._run is not run \
            or not res._layout.sizes.all():
        # a simulation left without rows: pandas' concatenation decides its dtypes
        return None
    rows = res._rows
    if rows is not None and len(rows) == batch.n_rows:
        rows = None       # every row kept (the selected rows are increasing): no copies
    out = _kept_rows(batch, rows)
    return out if _same_data(out, call, batch) else None


def _round_trips(values: np.ndarray) -> bool:
    """Whether a column comes back unchanged through a DataFrame and ``to_numpy()``.

    Object columns are not taken: pandas infers each simulation's dtype from its own
    values (strings, missing values), and concatenating those is not one rule.
    """
    return values.dtype in _COLUMN_DTYPES


def _kept_rows(batch: Batch, rows: np.ndarray | None) -> Batch:
    """Take the rows ``rows`` (None: all) of a batch as the per-simulation run stacks them."""
    kept = batch if rows is None else batch.take(rows)
    changed = {}
    for name in batch.id_columns:
        # IDs padded to the widest ID of each simulation *before* the selection
        # (str objects, none missing: a DataFrame gives them back unchanged)
        full = batch.column_as_r(name)
        changed[name] = full if rows is None else full[rows]
    cols = {k: changed.get(k, v) for k, v in kept.columns.items()}
    return Batch(cols, kept.sim, kept.n_sims)._inherit_groups(kept, changed)


def _same_data(out: Batch, call: Callable[[Any], Any], batch: Batch) -> bool:
    """Whether the first and last simulations, run one at a time, give the same data."""
    sims = [0, batch.n_sims - 1]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ref = [call(df) for df in batch.select_sims(sims).split()]
        got = out.select_sims(sims).split()
        for r, g in zip(ref, got):
            if not isinstance(r, pd.DataFrame):
                return False
            pd.testing.assert_frame_equal(r.reset_index(drop=True), g, check_exact=True)
    except Exception:  # noqa: BLE001 -- a difference or a failure: one at a time
        return False
    return True
