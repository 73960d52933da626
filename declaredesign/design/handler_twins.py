"""Batched twins of library functions that a handler calls on the stand-in.

The batched handler run (:mod:`declaredesign.design.batched_handlers`) calls a user's
handler once, on a stand-in for the data whose columns hold every simulation's rows.
A handler that hands a column to a library function, as
``stats.ks_2samp(data["Y"][data["Z"] == 1], data["Y"][data["Z"] == 0])``, would make
the library convert the stand-in to an array, which it refuses: the simulations then run
one at a time. A **twin** is a function that does, for every simulation at once,
exactly what the library function does in one simulation, with the stand-in's
per-simulation values in and out (:func:`register_twin`).

How a handler's call reaches the twin, without touching the library: the stand-in is
given to a *copy* of the handler (:func:`twin_call`), the same code with a copy of its
module's globals in which

- a module holding a registered function (``scipy``, ``scipy.stats``, bound by
  ``import scipy.stats`` or ``from scipy import stats``) is a read-only proxy that
  forwards every attribute and gives the registered functions as dispatchers;
- a name bound to a registered function itself (``from scipy.stats import ks_2samp``)
  is its dispatcher.

A dispatcher calls the twin when one of its arguments is a stand-in value and the
original function, unchanged, otherwise. No library module is changed, and the
per-simulation run (and the check of the first and last simulations) calls the
original handler.

Limits, each leaving the handler to run as before (calls into a library on the
stand-in refused, the simulations one at a time):

- only plain functions (and ``functools.partial`` of one) are copied; a handler whose
  code (or code nested in it, such as a lambda) writes or deletes a global, or uses
  ``globals``, ``eval`` or ``exec``, is not (its writes would land in the copy);
- functions the handler calls keep their own globals: a helper function of the user
  calling ``stats.ks_2samp`` is not twinned, nor is an import inside the handler;
- a module global the handler reads that changes while it runs, or a write to a proxy
  module, stops the batched run.

Twins registered here: ``scipy.stats.ks_2samp`` (see :func:`ks_2samp_twin`).
"""

from __future__ import annotations

import dis
import functools
import inspect
import math
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["StandIn", "TwinRefused", "ks_2samp_twin", "register_twin", "twin_call",
           "twin_enabled"]


class StandIn:
    """Base of the batched run's stand-ins for one simulation's data and values.

    Twins talk to stand-ins through three private methods, overridden where they
    apply: ``_refuse(what)`` stops the batched run (even when user code catches the
    exception), ``_twin_samples()`` gives a column's rows and ``_twin_per_sim(values)``
    makes a per-simulation value of the same run.
    """

    __slots__ = ()

    def _refuse(self, what: str) -> Any:
        raise NotImplementedError

    def _twin_samples(self) -> tuple[object, np.ndarray, np.ndarray]:
        """Return ``(run, values, sizes)``: every simulation's rows of a column, in order."""
        return self._refuse("this value as a sample of a library function")

    def _twin_per_sim(self, values: np.ndarray) -> StandIn:
        """Return a per-simulation value of this stand-in's run holding ``values``."""
        return self._refuse("a per-simulation result of a library function")


class TwinRefused(Exception):
    """The twin-enabled copy of a handler did something the original would do otherwise."""


# ------------------------------------------------------------------- registry
#: id(original) -> (original, dispatcher)
_REGISTRY: dict[int, tuple[Callable[..., Any], Callable[..., Any]]] = {}
#: Modules holding a registered function, and their parent packages.
_MODULES: set[str] = set()
_MISSING = object()


def register_twin(original: Callable[..., Any], twin: Callable[..., Any], *,
                  modules: tuple[str, ...] = ()) -> None:
    """Register ``twin`` as the batched twin of the library function ``original``.

    Parameters
    ----------
    original : callable
        The library function, as a handler reaches it (``scipy.stats.ks_2samp``).
    twin : callable
        Called with the same arguments as ``original`` when one of them is a
        :class:`StandIn`; returns what ``original`` returns in each simulation, as
        stand-in values, or refuses through a stand-in's ``_refuse``. It must give
        exactly the per-simulation results (bit for bit) or refuse.
    modules : tuple of str
        Modules, besides ``original.__module__``, where handlers find ``original``
        (``("scipy.stats",)``); they and their parent packages are proxied in the
        handler's copy.
    """
    if not callable(original) or not callable(twin):
        raise TypeError("register_twin(original, twin): both must be callable")
    _REGISTRY[id(original)] = (original, _dispatcher(original, twin))
    for name in (getattr(original, "__module__", None), *modules):
        parts = (name or "").split(".")
        _MODULES.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if parts[0])


def _first_stand_in(args: tuple[Any, ...], kwargs: dict[str, Any]) -> StandIn | None:
    return next((a for a in (*args, *kwargs.values()) if isinstance(a, StandIn)), None)


def _dispatcher(original: Callable[..., Any], twin: Callable[..., Any]) -> Callable[..., Any]:
    """Make the function a handler's copy calls instead of ``original``."""
    @functools.wraps(original)
    def dispatch(*args: Any, **kwargs: Any) -> Any:
        stand_in = _first_stand_in(args, kwargs)
        if stand_in is None:
            return original(*args, **kwargs)
        try:
            return twin(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 -- a handler catching it must not go on
            return stand_in._refuse(f"{getattr(original, '__name__', 'a library function')}"
                                    f"() on the stand-in: {type(e).__name__}")
    return dispatch


# ----------------------------------------------------------- the handler's copy
class _CopyState:
    """One copy of a handler: whether it did something its original would do otherwise."""

    __slots__ = ("refused",)

    def __init__(self) -> None:
        self.refused = False


class _ModuleProxy:
    """A read-only view of a module giving registered functions as their dispatchers."""

    __slots__ = ("_module", "_state")

    def __init__(self, module: types.ModuleType, state: _CopyState):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_state", state)

    def __getattribute__(self, name: str) -> Any:
        value = getattr(object.__getattribute__(self, "_module"), name)
        twin = _twin_value(value, object.__getattribute__(self, "_state"))
        return value if twin is None else twin

    def __setattr__(self, name: str, value: Any) -> None:
        object.__getattribute__(self, "_state").refused = True
        raise TwinRefused(f"setting {name!r} on a module inside a batched handler")

    def __delattr__(self, name: str) -> None:
        object.__getattribute__(self, "_state").refused = True
        raise TwinRefused(f"deleting {name!r} of a module inside a batched handler")

    def __repr__(self) -> str:
        return repr(object.__getattribute__(self, "_module"))

    def __dir__(self) -> list[str]:
        return dir(object.__getattribute__(self, "_module"))


def _twin_value(value: Any, state: _CopyState) -> Any:
    """Give what a copy sees for ``value``: a dispatcher, a module proxy, or None (itself)."""
    entry = _REGISTRY.get(id(value))
    if entry is not None and entry[0] is value:
        return entry[1]
    if isinstance(value, types.ModuleType) and value.__name__ in _MODULES:
        return _ModuleProxy(value, state)
    return None


#: Names whose use reads or writes the running frame's globals behind the copy's back.
_GLOBALS_BUILTINS = frozenset({"globals", "eval", "exec"})


@functools.lru_cache(maxsize=256)
def _global_names(code: types.CodeType) -> tuple[str, ...] | None:
    """Names ``code`` (and code nested in it) may read as globals; None if it writes any."""
    names: set[str] = set()
    for c in _codes(code):
        if any(i.opname in ("STORE_GLOBAL", "DELETE_GLOBAL") for i in dis.get_instructions(c)):
            return None
        names.update(c.co_names)
    return None if names & _GLOBALS_BUILTINS else tuple(sorted(names))


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def twin_enabled(handler: Callable[..., Any]) -> Callable[..., Any] | None:
    """Copy ``handler`` so that its calls to registered functions reach their twins.

    Parameters
    ----------
    handler : callable
        A user's function (or a ``functools.partial`` of one).

    Returns
    -------
    callable or None
        The copy, which raises :class:`TwinRefused` after a call in which a global it
        reads changed or a module was written to; None when ``handler`` reads no
        registered function or cannot be copied soundly (see the module docstring).
    """
    if isinstance(handler, functools.partial):
        inner = twin_enabled(handler.func)
        return None if inner is None else functools.partial(inner, *handler.args,
                                                            **handler.keywords)
    if type(handler) is not types.FunctionType:
        return None
    names = _global_names(handler.__code__)
    if names is None:
        return None
    module_globals = handler.__globals__
    state = _CopyState()
    seen = tuple(module_globals.get(n, _MISSING) for n in names)
    replaced = {n: t for n, v in zip(names, seen)
                if v is not _MISSING and (t := _twin_value(v, state)) is not None}
    if not replaced:
        return None
    copy = _copy_function(handler, {**module_globals, **replaced})

    @functools.wraps(handler)
    def call(*args: Any, **kwargs: Any) -> Any:
        out = copy(*args, **kwargs)
        if state.refused or any(module_globals.get(n, _MISSING) is not v
                                for n, v in zip(names, seen)):
            raise TwinRefused("a module or a global the handler reads changed during the call")
        return out
    return call


def _copy_function(f: types.FunctionType, new_globals: dict[str, Any]) -> types.FunctionType:
    """``f`` with other globals: the same code, defaults, closure cells and attributes."""
    copy = types.FunctionType(f.__code__, new_globals, f.__name__, f.__defaults__,
                              f.__closure__)
    copy.__kwdefaults__ = None if f.__kwdefaults__ is None else dict(f.__kwdefaults__)
    copy.__qualname__ = f.__qualname__
    copy.__module__ = f.__module__
    copy.__doc__ = f.__doc__
    copy.__annotations__ = f.__annotations__
    copy.__dict__.update(f.__dict__)
    return copy


def twin_call(call: Callable[..., Any], handler: Callable[..., Any]) -> Callable[..., Any]:
    """Return the function to call on the stand-in instead of ``call``.

    Parameters
    ----------
    call : callable
        What the per-simulation run calls on each simulation's data: ``handler``
        itself or a function (the step's wrapper) holding ``handler`` in a closure cell.
    handler : callable
        The user's function.

    Returns
    -------
    callable
        ``call`` with ``handler`` replaced by :func:`twin_enabled` ``(handler)``;
        ``call`` unchanged when there is no copy, or when ``call`` reaches the handler
        other than through a closure cell.
    """
    copy = twin_enabled(handler)
    if copy is None:
        return call
    if call is handler:
        return copy
    cells = getattr(call, "__closure__", None)
    if type(call) is not types.FunctionType or not cells or \
            not any(_cell_holds(c, handler) for c in cells):
        return call
    closure = tuple(types.CellType(copy) if _cell_holds(c, handler) else c for c in cells)
    new = types.FunctionType(call.__code__, call.__globals__, call.__name__,
                             call.__defaults__, closure)
    new.__kwdefaults__ = call.__kwdefaults__
    return new


def _cell_holds(cell: types.CellType, value: Any) -> bool:
    try:
        return cell.cell_contents is value
    except ValueError:      # an empty cell
        return False


# ------------------------------------------------------------ scipy.stats.ks_2samp
_KS_PARAMETERS = inspect.Signature([
    inspect.Parameter("data1", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    inspect.Parameter("data2", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    inspect.Parameter("alternative", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                      default="two-sided"),
    inspect.Parameter("method", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="auto"),
])
_ALTERNATIVES = ("two-sided", "less", "greater")
_METHODS = ("auto", "exact", "asymp")


def ks_2samp_twin(*args: Any, **kwargs: Any) -> _KsResult:
    """``scipy.stats.ks_2samp(data1, data2, alternative, method)`` for every simulation.

    Both samples are columns of the stand-in (each simulation's rows, float64, none
    missing, none empty); ``alternative`` and ``method`` are scipy's spellings of
    their values (``axis``, ``nan_policy``, ``keepdims`` and abbreviations refuse).

    The statistic's distance between the two empirical distribution functions is
    computed for every simulation as scipy computes it in one (the same divisions
    and differences, evaluated where scipy evaluates them). scipy's statistic and
    p-value are a function of the sample sizes and that distance alone (the method
    choice, the exact computation, its rounding of the statistic and its fall-back
    to the asymptotic distribution read nothing else), so scipy itself is called on
    one simulation of each distinct (n1, n2, distance) and its results are given to
    every simulation with the same triple. A warning from such a call refuses.

    Returns
    -------
    object
        ``.statistic`` and ``.pvalue`` as per-simulation values; unpacks as
        ``statistic, pvalue`` as scipy's result does. Any other attribute refuses.
    """
    owner = _first_stand_in(args, kwargs)
    if owner is None:
        raise TypeError("ks_2samp_twin() needs a stand-in argument")
    try:
        bound = _KS_PARAMETERS.bind(*args, **kwargs)
    except TypeError:
        return owner._refuse("ks_2samp() with these arguments")
    bound.apply_defaults()
    alternative, method = bound.arguments["alternative"], bound.arguments["method"]
    if not (isinstance(alternative, str) and alternative in _ALTERNATIVES
            and isinstance(method, str) and method in _METHODS):
        return owner._refuse("ks_2samp() with these arguments")
    run, x, n1 = _ks_sample(owner, bound.arguments["data1"])
    run2, y, n2 = _ks_sample(owner, bound.arguments["data2"])
    if run2 is not run or len(n1) != len(n2):
        return owner._refuse("ks_2samp() of samples from different runs")
    d = _ks_distance(x, n1, y, n2, alternative)
    stat, p = _ks_from_scipy(owner, (x, n1, y, n2), d, alternative, method)
    return _KsResult(owner, owner._twin_per_sim(stat), owner._twin_per_sim(p))


def _ks_sample(owner: StandIn, value: Any) -> tuple[object, np.ndarray, np.ndarray]:
    """Return a sample's rows; refuse what scipy treats otherwise (NaN, empty, not float)."""
    if not isinstance(value, StandIn):
        return owner._refuse("ks_2samp() of a stand-in and another value")
    run, values, sizes = value._twin_samples()
    if values.dtype != np.float64 or np.isnan(values).any() or not len(sizes) \
            or not sizes.all():
        return owner._refuse("ks_2samp() of an empty, missing or non-float sample")
    return run, values, sizes


def _ks_distance(x: np.ndarray, n1: np.ndarray, y: np.ndarray, n2: np.ndarray,
                 alternative: str) -> np.ndarray:
    """Every simulation's ``d`` as scipy's ``ks_2samp`` computes it before the p-value.

    scipy evaluates ``searchsorted(sample, all, side='right') / n`` for both samples at
    every pooled value; each value of a run of ties gives the counts at the run's end,
    so evaluating at the ends of the runs of the pooled, sorted values gives the same
    differences, whose minimum and maximum are taken exactly.
    """
    sims = np.arange(len(n1))
    sim = np.concatenate([np.repeat(sims, n1), np.repeat(sims, n2)])
    pooled = np.concatenate([x, y])
    in_first = np.concatenate([np.ones(len(x), bool), np.zeros(len(y), bool)])
    # sorted by value, then (stably, a radix sort on small integers) by simulation
    order = np.argsort(pooled)
    order = order[np.argsort(sim.astype(_index_dtype(len(n1)))[order], kind="stable")]
    pooled, sim, in_first = pooled[order], sim[order], in_first[order]
    sizes = n1 + n2
    count1 = np.cumsum(in_first) - np.repeat(np.cumsum(n1) - n1, sizes)
    count2 = np.cumsum(~in_first) - np.repeat(np.cumsum(n2) - n2, sizes)
    end = np.ones(len(pooled), bool)
    end[:-1] = (pooled[1:] != pooled[:-1]) | (sim[1:] != sim[:-1])
    s = sim[end]
    diffs = count1[end] / n1[s] - count2[end] / n2[s]
    starts = np.searchsorted(s, sims)
    max_s = np.maximum.reduceat(diffs, starts)
    min_s = np.clip(-np.minimum.reduceat(diffs, starts), 0, 1)
    if alternative == "less":
        return min_s
    if alternative == "greater":
        return max_s
    return np.where(min_s > max_s, min_s, max_s)


def _index_dtype(n: int) -> type:
    """Return the smallest unsigned integer type numbering ``n`` simulations."""
    return np.uint16 if n <= 2 ** 16 else np.uint32 if n <= 2 ** 32 else np.uint64


def _ks_from_scipy(owner: StandIn, samples: tuple[np.ndarray, ...], d: np.ndarray,
                   alternative: str, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Return scipy's statistic and p-value, from one simulation of each (n1, n2, d)."""
    x, n1, y, n2 = samples
    key = np.column_stack([n1.astype(np.int64), n2.astype(np.int64), d.view(np.int64)])
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    start1, start2 = np.cumsum(n1) - n1, np.cumsum(n2) - n2
    stat, p = np.empty(len(first)), np.empty(len(first))
    for k, i in enumerate(first):
        a = x[start1[i]:start1[i] + n1[i]]
        b = y[start2[i]:start2[i] + n2[i]]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = stats.ks_2samp(a, b, alternative=alternative, method=method)
            except Exception:  # noqa: BLE001 -- scipy's own error: the one-by-one run
                caught.append(None)
        if caught or type(res.statistic) is not np.float64 or \
                type(res.pvalue) is not np.float64:
            return owner._refuse("ks_2samp() warned or failed in a simulation")
        if res.statistic != _ks_reported(d[i], int(n1[i]), int(n2[i]), method):
            # our distance is not scipy's (another scipy version?): do not group by it
            return owner._refuse("ks_2samp() statistic differs from the batched one")
        stat[k], p[k] = res.statistic, res.pvalue
    inverse = inverse.reshape(-1)
    return stat[inverse], p[inverse]


def _ks_reported(d: np.float64, n1: int, n2: int, method: str) -> np.float64:
    """Return the statistic scipy reports for the distance ``d`` (a consistency check).

    scipy's exact method (``'auto'`` with both samples of at most 10,000) rounds
    ``d`` to the nearest multiple of ``1 / lcm(n1, n2)``; the asymptotic one keeps it.
    """
    if method == "asymp" or (method == "auto" and max(n1, n2) > _KS_MAX_EXACT_N):
        return d
    lcm = (n1 // math.gcd(n1, n2)) * n2
    return np.float64(int(np.round(d * lcm)) * 1.0 / lcm)


#: scipy's ``MAX_AUTO_N``: ``method='auto'`` is exact up to this sample size.
_KS_MAX_EXACT_N = 10000


class _KsResult(StandIn):
    """``ks_2samp``'s result on the stand-in: statistic and p-value per simulation."""

    __slots__ = ("_owner", "statistic", "pvalue")
    __array_ufunc__ = None

    def __init__(self, owner: StandIn, statistic: StandIn, pvalue: StandIn):
        self._owner = owner
        self.statistic = statistic
        self.pvalue = pvalue

    def _refuse(self, what: str) -> Any:
        return self._owner._refuse(what)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._refuse(f"ks_2samp(...).{name}")

    def __iter__(self) -> Iterator[StandIn]:
        # scipy's result is a tuple (statistic, pvalue) with more attributes
        return iter((self.statistic, self.pvalue))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, key: Any) -> StandIn:
        if type(key) is not int or not -2 <= key < 2:
            return self._refuse("ks_2samp(...)[key]")
        return (self.statistic, self.pvalue)[key]

    def _refused(self, *args: Any, **kwargs: Any) -> Any:
        return self._refuse("this use of ks_2samp's result")

    __bool__ = __array__ = __repr__ = __str__ = __format__ = __hash__ = _refused
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refused  # type: ignore[assignment]
    __add__ = __radd__ = __mul__ = __rmul__ = __contains__ = _refused


register_twin(stats.ks_2samp, ks_2samp_twin, modules=("scipy.stats",))
