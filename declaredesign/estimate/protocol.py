"""The estimator protocol: how designs fit an estimator to every simulation of a batch.

An *estimator* is a plain function ``model(formula, data, **kwargs)`` on a pandas
DataFrame returning a fit with ``.tidy()`` (a DataFrame with :data:`TIDY_COLUMNS`) or a
tidy DataFrame itself. Registered with :func:`register_estimator`, it may also carry:

``parse(formula, **kwargs) -> spec``
    Validates the arguments once and returns a frozen *spec*. A design calls it when
    the estimator is declared, so a bad argument is an error at declaration, naming it.
    Default: :class:`CallSpec`, which holds the formula and keywords unchanged.
``fit(spec, df) -> fit``
    The standalone fit from a validated spec (default: call the function). The
    per-simulation fallback uses it, so arguments are never validated twice.
``kernel(batch, spec) -> KernelResult | DataFrame``
    Fits every simulation of a :class:`~declaredesign.batch.Batch` at once and returns
    tidy rows with a leading ``sim`` column (optionally ``error`` and ``warning``). A
    kernel that cannot do some simulations (say, a rank-deficient one) lists them in
    :attr:`KernelResult.fallback` with the reason, and :func:`fit_batch` fits those one at
    a time with ``fit``; a kernel never loops over simulations itself.

:func:`fit_batch` is the one entry point designs use: it finds the estimator behind a
model (``functools.partial`` wrappers keep their kernel, their keywords merged), runs the
kernel, and sends what the kernel declined to :func:`fit_per_simulation`, the one
per-simulation fallback, whose contract every path shares:

- an exception in a simulation -> one row of NaN numbers, ``error="Type: message"``;
- warnings raised by the fit, and a fit's own ``messages`` -> ``warning`` (joined by
  ``"; "``);
- coefficients the fit could not estimate (rank deficiency) stay as rows with NaN
  numbers, and ``warning`` says how many (:func:`rank_deficient_message`).

Examples
--------
A user's estimator with a batched kernel (here the mean of ``Y`` per simulation):

>>> import numpy as np, pandas as pd
>>> from declaredesign.estimate import protocol
>>> from declaredesign.formula import parse_formula
>>> def mean_kernel(batch, spec):
...     g = batch.groups()
...     y = batch[parse_formula(spec.formula).outcome]
...     return protocol.tidy_frame(sim=g.group_sim, term="mean", estimate=g.mean(y))
>>> @protocol.register_estimator(kernel=mean_kernel)
... def sample_mean(formula, data):
...     y = data[parse_formula(formula).outcome]
...     return pd.DataFrame({"term": ["mean"], "estimate": [y.mean()]})
>>> protocol.get_estimator(sample_mean).kernel is mean_kernel
True
"""

from __future__ import annotations

import functools
import inspect
import types
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..batch import Batch, stack_frames
from ..errors import EstimationError, FormulaError
from ..formula import parse_formula

__all__ = [
    "BATCHED_FIT", "TIDY_COLUMNS", "CallSpec", "Estimator", "KernelResult", "call_kernel",
    "empty_tidy",
    "estimators", "fit_batch", "fit_per_simulation", "get_estimator", "public_entry",
    "rank_deficient_message", "register_estimator", "resolve_model", "tidy_frame",
]

#: Columns of every tidy estimate table, in order (broom's names in snake_case).
TIDY_COLUMNS = ["term", "estimate", "std_error", "statistic", "p_value", "conf_low",
                "conf_high", "df", "outcome"]


# ----------------------------------------------------------------- tidy frames
def empty_tidy(with_sim: bool = True, with_messages: bool = False) -> pd.DataFrame:
    """Return an empty tidy frame with the standard columns (and ``error``/``warning``)."""
    cols = (["sim"] if with_sim else []) + TIDY_COLUMNS + \
        (["error", "warning"] if with_messages else [])
    text = ("term", "outcome", "error", "warning")
    return pd.DataFrame({c: pd.Series(dtype=object if c in text else float) for c in cols})


def tidy_frame(**cols: Any) -> pd.DataFrame:
    """Build a tidy frame from equal-length arrays (or scalars), standard column order."""
    n = max((np.size(v) for v in cols.values() if np.ndim(v) > 0), default=1)
    data = {k: (np.repeat(v, n) if np.ndim(v) == 0 else np.asarray(v)) for k, v in cols.items()}
    order = [c for c in ["sim", *TIDY_COLUMNS] if c in data] + \
        [c for c in data if c not in ["sim", *TIDY_COLUMNS]]
    return pd.DataFrame({c: data[c] for c in order})


def rank_deficient_message(n_dropped: int) -> str:
    """Return the warning for a fit with ``n_dropped`` inestimable coefficients (every path)."""
    return (f"{n_dropped} coefficient(s) not defined because the design matrix is "
            "rank deficient")


# ------------------------------------------------------------------ the registry
@dataclass(frozen=True)
class CallSpec:
    """The spec of an estimator registered without ``parse``: formula and keywords."""

    formula: str | None
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str | None:
        """The formula's left-hand side when it is a plain name, else None."""
        if not isinstance(self.formula, str) or "~" not in self.formula:
            return None
        try:
            return parse_formula(self.formula).outcome
        except FormulaError:
            return None


@dataclass(frozen=True)
class KernelResult:
    """What a kernel returns: rows it fitted, and simulations it leaves to the fallback.

    Parameters
    ----------
    tidy : DataFrame
        ``sim`` plus the tidy columns (optionally ``error``/``warning``).
    fallback : mapping of int to str or None
        Simulations the kernel did not fit, each with the reason (None: no message).
        They are fitted one at a time and their rows carry the reason as ``warning``
        only when the standalone fit itself would warn.
    """

    tidy: pd.DataFrame
    fallback: Mapping[int, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Estimator:
    """A registered estimator: the public function and how to run it on batches."""

    name: str
    function: Callable[..., Any]
    parse: Callable[..., Any]
    fit: Callable[[Any, pd.DataFrame], Any]
    kernel: Callable[[Batch, Any], KernelResult | pd.DataFrame] | None = None

    def spec(self, formula: str | None, **kwargs: Any) -> Any:
        """Validate arguments once; the result feeds ``fit`` and ``kernel``."""
        return self.parse(formula, **kwargs)


_REGISTRY: dict[Callable[..., Any], Estimator] = {}


def register_estimator(function: Callable[..., Any] | None = None, *,
                       kernel: Callable[..., Any] | None = None,
                       parse: Callable[..., Any] | None = None,
                       fit: Callable[[Any, pd.DataFrame], Any] | None = None,
                       name: str | None = None) -> Any:
    """Register an estimator function (usable as a decorator); returns its public entry.

    The entry is the function itself, except that a call whose ``data`` is a stand-in
    for a DataFrame defining :data:`BATCHED_FIT` goes to that method (see
    :func:`public_entry`). Bind the result to the function's name
    (``lm_robust = register_estimator(lm_robust, ...)``); the decorator form does so.

    Parameters
    ----------
    function : callable
        ``function(formula, data, **kwargs)`` on a DataFrame.
    kernel : callable, optional
        ``kernel(batch, spec)`` fitting all simulations at once.
    parse : callable, optional
        ``parse(formula, **kwargs) -> spec``; default :class:`CallSpec`.
    fit : callable, optional
        ``fit(spec, df)``; default ``function(spec.formula, df, **spec.kwargs)``.
    name : str, optional
        Registry name; default the function's ``__name__``.
    """
    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        entry = public_entry(func, lambda: est)
        est = Estimator(
            name=name or getattr(func, "__name__", repr(func)), function=entry,
            parse=parse or (lambda formula, **kw: CallSpec(formula, dict(kw))),
            fit=fit or functools.partial(_call_function, func), kernel=kernel)
        _REGISTRY[func] = _REGISTRY[entry] = est
        return entry
    return deco if function is None else deco(function)


#: The method a stand-in for a DataFrame defines to fit a registered estimator itself:
#: ``type(data).__dd_batched_fit__(data, estimator, arguments)``, ``arguments`` every
#: parameter but ``data`` by name (defaults filled in), as the function was called.
BATCHED_FIT = "__dd_batched_fit__"


def public_entry(func: Callable[..., Any],
                 estimator: Callable[[], Estimator]) -> Callable[..., Any]:
    """Return ``func`` as called by users, sending stand-in data to its :data:`BATCHED_FIT`.

    Parameters
    ----------
    func : callable
        The estimator function; it must have a ``data`` parameter (else it is returned
        unchanged).
    estimator : callable
        ``estimator()`` gives the registered :class:`Estimator` (made after the entry).

    Returns
    -------
    callable
        A function of the same name, signature and module as ``func``: with a pandas
        DataFrame (anything without :data:`BATCHED_FIT`) it calls ``func`` unchanged.
    """
    if not isinstance(func, types.FunctionType):     # a callable object: as it is
        return func
    signature = inspect.signature(func)
    params = list(signature.parameters.values())
    names = [p.name for p in params]
    if "data" not in names:
        return func
    position, bind, hook_name = names.index("data"), signature.bind, BATCHED_FIT
    var_keywords = [p.name for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]

    def entry(*args: Any, **kwargs: Any) -> Any:
        data = args[position] if len(args) > position else kwargs.get("data")
        hook = getattr(type(data), hook_name, None)
        if hook is None:
            return func(*args, **kwargs)
        try:
            bound = bind(*args, **kwargs)
        except TypeError:
            return func(*args, **kwargs)       # the function's own error for the call
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments["data"]
        for name in var_keywords:
            arguments.update(arguments.pop(name))
        return hook(data, estimator(), arguments)

    # Made with the function's own globals (the body reads only builtins and its closure)
    # so that doctest finds the entry's examples in the function's module and pickle
    # finds the entry by the function's name there.
    entry = types.FunctionType(entry.__code__, func.__globals__, func.__name__,
                               entry.__defaults__, entry.__closure__)
    return functools.update_wrapper(entry, func)


def _call_function(func: Callable[..., Any], spec: CallSpec, df: pd.DataFrame) -> Any:
    return func(spec.formula, df, **spec.kwargs)


def estimators() -> dict[str, Estimator]:
    """Every registered estimator by name (the conformance suite runs over these)."""
    return {e.name: e for e in _REGISTRY.values()}


def get_estimator(model: Callable[..., Any]) -> Estimator | None:
    """Return the registered estimator of a model function, or None."""
    try:
        return _REGISTRY.get(model)
    except TypeError:                      # unhashable callables are never registered
        return None


def resolve_model(model: Callable[..., Any]) -> tuple[Estimator, dict[str, Any]]:
    """Return the estimator behind ``model`` and the keywords bound by its wrappers.

    ``functools.partial`` layers are unwrapped (their keywords merged, outer ones
    winning), so ``partial(lm_robust, clusters="g")`` keeps the batched kernel. A
    callable that is not registered becomes an unregistered estimator with no kernel.
    """
    bound: dict[str, Any] = {}
    inner = model
    while isinstance(inner, functools.partial) and not inner.args:
        bound = {**inner.keywords, **bound}
        inner = inner.func
    est = get_estimator(inner)
    if est is None:
        return (Estimator(name=getattr(model, "__name__", type(model).__name__),
                          function=model,
                          parse=lambda formula, **kw: CallSpec(formula, dict(kw)),
                          fit=functools.partial(_call_function, model)), {})
    return est, bound


# ---------------------------------------------------------------- running a batch
def call_kernel(kernel: Callable[[Batch, Any], Any], batch: Batch,
                spec: Any) -> KernelResult | None:
    """Run a kernel on a batch; None when numerical trouble stopped it.

    A kernel should decline the simulations it cannot fit; when numerical trouble in
    one of them stops it instead, the caller fits each simulation on its own, so the
    failure is recorded for that simulation and not fatal to the run.
    """
    try:
        res = kernel(batch, spec)
    except (np.linalg.LinAlgError, ArithmeticError):
        return None
    return KernelResult(res) if isinstance(res, pd.DataFrame) else res


def fit_batch(estimator: Estimator, spec: Any, batch: Batch) -> pd.DataFrame:
    """Tidy rows (with ``sim``, ``error``, ``warning``) of every simulation of ``batch``."""
    if batch.n_sims == 0:
        return empty_tidy(with_messages=True)

    def one_by_one(sims: Any) -> pd.DataFrame:
        return fit_per_simulation(lambda df: estimator.fit(spec, df), batch, sims,
                                  outcome=getattr(spec, "outcome", None))

    res = None if estimator.kernel is None else call_kernel(estimator.kernel, batch, spec)
    if res is None:
        return one_by_one(range(batch.n_sims))
    out = _with_messages(res.tidy)
    if not res.fallback:
        return out
    rest = one_by_one(sorted(res.fallback))
    out = pd.concat([out, rest], ignore_index=True)
    order = np.argsort(out["sim"].to_numpy(), kind="stable")
    return out.iloc[order].reset_index(drop=True)


def fit_per_simulation(fit: Callable[[pd.DataFrame], Any], batch: Batch, sims: Any, *,
                       outcome: str | None = None, frame_term: Any = "estimate") -> pd.DataFrame:
    """Fit ``fit(df)`` to each listed simulation, one DataFrame at a time.

    The one per-simulation fallback (see the module docstring for its contract).

    Parameters
    ----------
    fit : callable
        ``fit(df)`` returns a fit with ``.tidy()`` or a tidy DataFrame.
    batch : Batch
        The simulations.
    sims : iterable of int
        The simulations to fit.
    outcome : str, optional
        The ``outcome`` of a failed simulation's row.
    frame_term : object, default "estimate"
        The ``term`` of rows that ``fit`` returns as a DataFrame without a ``term``
        column (a handler's rows: None, R's NA term); a fit whose tidy frame has none
        gets ``"estimate"``. Given once here, not added to each simulation's frame.

    Returns
    -------
    DataFrame
        ``sim``, the tidy columns, ``error`` and ``warning``, then any other column.
    """
    sims = [int(s) for s in sims]
    if not sims:
        return empty_tidy(with_messages=True)
    dfs = batch.split() if len(sims) == batch.n_sims else \
        [batch.select_sims([s]).to_pandas() for s in sims]
    # Each simulation gives its rows and messages; the rows are stacked once at the end
    # (per-frame column edits cost more than most fits on small data).
    results = [_one_simulation(fit, df, frame_term) for df in dfs]
    out = _stack_uniform(results, sims)
    if out is not None:
        return out
    out = pd.concat([_rows_of(r, outcome).assign(sim=s) for r, s in zip(results, sims)],
                    ignore_index=True)
    return _with_messages(out[["sim", *[c for c in out.columns if c != "sim"]]])


class _Fitted(NamedTuple):
    """One simulation's fit: its rows and messages, or its error."""

    tidy: pd.DataFrame | None     #: the tidy rows; None when the fit failed
    notes: list[str]              #: warnings and the fit's messages; [error] when it failed
    term: Any                     #: the term of rows without a ``term`` column
    columns: tuple[Any, ...]      #: the rows' column names

    def note(self, n_missing: int) -> str | None:
        """Return the ``warning`` (or ``error``), with ``n_missing`` inestimable estimates."""
        notes = self.notes
        if n_missing and not any("rank deficient" in m for m in notes):
            notes = [*notes, rank_deficient_message(n_missing)]
        return "; ".join(notes) if notes else None

    def missing(self) -> int:
        """Count the missing estimates of the rows."""
        return _count_missing(self.tidy["estimate"]) if "estimate" in self.columns else 0


def _one_simulation(fit: Callable[[pd.DataFrame], Any], df: pd.DataFrame,
                    frame_term: Any) -> _Fitted:
    """Fit one simulation; a failure is kept as its error, never raised."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = fit(df)
            tidy, columns = _tidy_rows(res)
        notes = [str(w.message) for w in caught]
        term = frame_term
        if not isinstance(res, pd.DataFrame):    # a frame's attributes are its columns
            notes += [m for m in getattr(res, "messages", ()) or () if m not in notes]
            term = "estimate"
        return _Fitted(tidy, notes, term, columns)
    except Exception as e:  # noqa: BLE001 -- one failed simulation must not end the run
        return _Fitted(None, [f"{type(e).__name__}: {e}"], None, ())


def _count_missing(column: pd.Series) -> int:
    return int(_missing(column.to_numpy()).sum())


def _missing(values: np.ndarray) -> np.ndarray:
    """Flag missing values (NaN of a float array without pandas' generic check)."""
    return np.isnan(values) if values.dtype.kind == "f" else pd.isna(values)


def _rows_of(fitted: _Fitted, outcome: str | None) -> pd.DataFrame:
    """One simulation's rows with ``term``, ``warning`` and ``error`` (the general path)."""
    tidy = fitted.tidy
    if tidy is None:
        row = {c: [np.nan] for c in TIDY_COLUMNS}
        row.update(term=[None], outcome=[outcome], error=[fitted.note(0)], warning=[None])
        return pd.DataFrame(row)
    note = fitted.note(fitted.missing())
    tidy = tidy.copy()
    if "term" not in tidy:
        tidy["term"] = fitted.term
    tidy["warning"] = note
    if "error" not in tidy:
        tidy["error"] = None
    return tidy


def _stack_uniform(results: list[_Fitted], sims: list[int]) -> pd.DataFrame | None:
    """Stack the rows when every fit succeeded with rows and the same columns, else None.

    Equal to stacking :func:`_rows_of` frames (the general path), without editing each
    simulation's frame.
    """
    frames = [r.tidy for r in results]
    if any(f is None or not len(f) for f in frames):
        return None
    columns = results[0].columns
    if any(r.columns != columns for r in results[1:]):
        return None
    if "term" not in columns and len({r.term for r in results}) > 1:
        return None         # rows without a term get different ones: the general path
    lengths = np.array([len(f) for f in frames], dtype=np.int64)
    rows = _stacked(frames, [r.columns for r in results])
    if rows is None:
        rows = pd.concat(frames, ignore_index=True)
        missing = [r.missing() for r in results]
    else:
        missing = _missing_per_fit(rows, lengths)
    notes = [r.note(n) for r, n in zip(results, missing)]
    return stack_rows(rows, lengths, notes, sims, term=results[0].term)


def _stacked(frames: list[pd.DataFrame], names: list[tuple[Any, ...]]) -> pd.DataFrame | None:
    """``pd.concat(frames, ignore_index=True)`` from the frames' arrays, or None."""
    arrays = stack_frames(frames, names)
    if not arrays:      # None, or frames without columns (whose rows pandas counts)
        return None
    # an explicit dtype: pandas would read text in an object column as its string dtype
    return pd.DataFrame({k: pd.Series(a, dtype=a.dtype, copy=False) for k, a in arrays.items()})


def _missing_per_fit(rows: pd.DataFrame, lengths: np.ndarray) -> list[int]:
    """Each fit's count of missing estimates (rows stacked with one dtype per column)."""
    if "estimate" not in rows.columns:
        return [0] * len(lengths)
    missing = _missing(rows["estimate"].to_numpy())
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.add.reduceat(missing.astype(np.int64), starts).tolist()


def stack_rows(rows: pd.DataFrame, lengths: Any, notes: list[str | None],
               sims: list[int], term: Any = "estimate") -> pd.DataFrame:
    """Finish the stacked rows of successful fits that all returned the same columns.

    Parameters
    ----------
    rows : DataFrame
        The fits' rows one simulation after another (their tidy frames concatenated).
    lengths : array_like of int
        Rows of each simulation.
    notes : list of str or None
        Each simulation's warning.
    sims : list of int
        Each simulation's number.
    term : object, default "estimate"
        The ``term`` when the rows have no ``term`` column (None: a missing term).

    Returns
    -------
    DataFrame
        What :func:`fit_per_simulation` returns for these fits: ``term`` defaulting to
        ``term``, ``sim``, ``error``, ``warning``, in the standard order.
    """
    out = rows
    lengths = np.asarray(lengths, dtype=np.int64)
    if "term" not in out:
        out["term"] = term
    warning = np.empty(len(notes), dtype=object)
    warning[:] = notes
    out["warning"] = np.repeat(warning, lengths)
    if "error" not in out:
        out["error"] = np.full(len(out), None, dtype=object)
    out["sim"] = np.repeat(np.asarray(sims, dtype=np.int64), lengths)
    return _with_messages(out)


def _tidy_rows(res: Any) -> tuple[pd.DataFrame, tuple[Any, ...]]:
    """:func:`to_tidy` without the ``term`` default and without copying a returned frame.

    Returns the frame and its column names.
    """
    df = res if isinstance(res, pd.DataFrame) else _tidy_method(res)
    names = tuple(df.columns)
    if any(not isinstance(c, str) or "." in c for c in names):
        df = df.rename(columns={c: str(c).replace(".", "_") for c in names})
        names = tuple(df.columns)
    return df, names


def _tidy_method(res: Any) -> pd.DataFrame:
    if not hasattr(res, "tidy"):
        raise EstimationError(f"the model returned {type(res).__name__}, which has no tidy(); "
                              "return a DataFrame or a fit with .tidy().")
    return res.tidy()


def to_tidy(res: Any) -> pd.DataFrame:
    """Return a fit's tidy frame (or a returned DataFrame), with broom's dots as underscores."""
    if isinstance(res, pd.DataFrame):
        df = res.copy()
    elif hasattr(res, "tidy"):
        df = res.tidy()
    else:
        raise EstimationError(f"the model returned {type(res).__name__}, which has no tidy(); "
                              "return a DataFrame or a fit with .tidy().")
    df = df.rename(columns={c: str(c).replace(".", "_") for c in df.columns})
    if "term" not in df:
        df["term"] = "estimate"
    return df


def _with_messages(out: pd.DataFrame) -> pd.DataFrame:
    for c in TIDY_COLUMNS:
        if c not in out:
            out[c] = np.nan
    for c in ("error", "warning"):
        # one missing value (None) for a clean fit, whichever path made the row
        if c not in out:
            out[c] = None
            continue
        col = out[c]
        missing = col.isna().to_numpy()
        # np.equal(..., None) tests `is None` row by row in C (no Python loop)
        if col.dtype != object or (missing.any() and not np.equal(
                col.to_numpy()[missing], None).all()):
            out[c] = col.astype(object).where(~missing, None)
    # the standard order (sim, tidy columns, messages, then any extra columns)
    order = [c for c in ("sim", *TIDY_COLUMNS, "error", "warning") if c in out]
    order += [c for c in out.columns if c not in order]
    return out if list(out.columns) == order else out[order]
