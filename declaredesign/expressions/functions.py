"""The vocabulary of the expression language: every function callable by name.

Rows of many simulations are stacked in one batch, so the functions come in kinds:

* **elementwise** (``log``, ``pmax``, ``ifelse``...): row by row;
* **reductions** (``mean``, ``sd``, ``quantile``, ``n``...): one value per simulation
  (per group of the context), repeated on the simulation's rows, so ``x - mean(x)``
  centres within each simulated dataset exactly as R does within its one dataset;
* **within-simulation transforms** (``scale``, ``cumsum``, ``rank``, ``rep``): computed
  within each simulation, one value per row;
* **random** (``rnorm``, ``sample``, the fabricate draws...): draw from the step's
  generator, never from numpy's global state.

A logical subscript ``Y[X == 1]`` gives a :class:`Masked` vector (the rows where the
mask is true, still labelled with their simulation); arithmetic and elementwise
functions keep it masked and reductions reduce it within each simulation, so
``mean(Y_Z_1[X == 1] - Y_Z_0[X == 1])`` is the conditional mean in each simulation.

Logical values take part in arithmetic as 0/1 integers, as in R. :data:`FUNCTIONS`
is the public table (name -> :class:`Function` with its R counterpart), rendered on the
documentation page ``docs/expressions.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit, ndtr, ndtri

from ..errors import FormulaError

__all__ = ["CONSTANTS", "FUNCTIONS", "NUMPY", "Function", "Masked", "register_draws",
           "reducers"]


class Masked:
    """Values at some rows of the batch: the result of a logical subscript ``x[mask]``.

    Parameters
    ----------
    rows : numpy.ndarray
        Row positions (into the full batch) that the mask selected, increasing.
    values : numpy.ndarray
        The values at those rows.
    """

    __slots__ = ("rows", "values")

    def __init__(self, rows: np.ndarray, values: np.ndarray):
        self.rows = rows
        self.values = values

    def __repr__(self) -> str:
        return f"Masked(rows={self.rows!r}, values={self.values!r})"


@dataclass(frozen=True)
class Function:
    """One function of the language.

    Attributes
    ----------
    impl : callable
        ``impl(ctx, *args, **kwargs)``; ``ctx`` is the evaluation context.
    kind : str
        ``"elementwise"``, ``"reduction"``, ``"within"``, ``"random"`` or ``"vector"``.
    r : str
        The R counterpart.
    note : str
        How it differs from R, if it does.
    """

    impl: Callable[..., Any]
    kind: str
    r: str
    note: str = ""


# ------------------------------------------------------------------ helpers
def _logical_to_int(x: Any) -> Any:
    """R: logicals take part in arithmetic as 0/1 integers."""
    if isinstance(x, (bool, np.bool_)):
        return int(x)
    if isinstance(x, np.ndarray) and x.dtype == bool:
        return x.astype(np.int64)
    return x


def _has_text(x: Any) -> bool:
    if isinstance(x, str):
        return True
    if isinstance(x, np.ndarray) and x.dtype.kind in "US":
        return True
    return isinstance(x, np.ndarray) and x.dtype.kind == "O" and \
        any(isinstance(v, str) for v in x.reshape(-1).tolist())


def multiply(a: Any, b: Any) -> Any:
    """Multiply numbers; text is refused (Python would repeat it: unbounded memory)."""
    if _has_text(a) or _has_text(b):
        raise FormulaError("arithmetic on text is not allowed in expressions; use paste() "
                           "to build strings.")
    return a * b


def power(a: Any, b: Any) -> Any:
    """Raise ``a ^ b``: exact for small integer powers, in doubles otherwise (as R).

    Python's unbounded integers would make ``10^10^10`` run for ever; R computes in
    doubles and gives ``Inf``.
    """
    if isinstance(a, int) and isinstance(b, int) and abs(b) > 64:
        with np.errstate(over="ignore"):
            return np.float64(a) ** np.float64(b)
    return a ** b


def _unmask(args: list[Any], what: str) -> tuple[np.ndarray | None, list[Any]]:
    """Values of masked arguments; all masked arguments must select the same rows."""
    rows = None
    out = []
    for a in args:
        if isinstance(a, Masked):
            if rows is None:
                rows = a.rows
            elif a.rows.shape != rows.shape or not np.array_equal(a.rows, rows):
                raise FormulaError(f"{what}: masked vectors select different rows; use the "
                                   "same mask on both sides (e.g. Y[X == 1] - Z[X == 1]).")
            a = a.values
        out.append(a)
    if rows is not None:
        for a in out:
            if isinstance(a, np.ndarray) and a.ndim == 1 and a.shape[0] != rows.shape[0]:
                raise FormulaError(f"{what}: a masked vector ({rows.shape[0]} rows) is "
                                   f"combined with one of {a.shape[0]} rows; mask both.")
    return rows, out


def elementwise(f: Callable[..., Any], args: list[Any], kwargs: Mapping[str, Any],
                what: str = "expression") -> Any:
    """Apply ``f`` row by row, keeping masked arguments masked.

    Parameters
    ----------
    f : callable
        A numpy-style elementwise function.
    args, kwargs : list and mapping
        Its evaluated arguments (arrays, scalars or :class:`Masked`).
    what : str, optional
        Where, for error messages.

    Returns
    -------
    Any
        ``f``'s result, wrapped as :class:`Masked` if an argument was.
    """
    rows, vals = _unmask(list(args), what)
    krows, kvals = _unmask(list(kwargs.values()), what)
    if rows is not None and krows is not None and not np.array_equal(rows, krows):
        raise FormulaError(f"{what}: masked vectors select different rows.")
    out = f(*vals, **dict(zip(kwargs, kvals, strict=True)))
    rows = rows if rows is not None else krows
    return out if rows is None else Masked(rows, np.asarray(out))


def _grouped(ctx: Any, x: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Values and their group codes: all rows, or the rows of a mask."""
    if isinstance(x, Masked):
        return np.asarray(x.values), ctx.group[x.rows]
    arr = np.asarray(x)
    if arr.ndim == 0:
        arr = np.full(ctx.n_rows, arr[()])
    if arr.shape != (ctx.n_rows,):
        raise FormulaError(
            f"{name}() received {arr.shape[0] if arr.ndim else 1} values; it needs one value "
            f"per row ({ctx.n_rows}) or a logical subset such as x[g == 1].")
    return arr, ctx.group


def _float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64)


# --------------------------------------------------------------- reductions
def _gsum(x: np.ndarray, g: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(g, weights=x, minlength=k)


def _mean(x, g, k, na_rm=False):
    x = _float(x)
    if na_rm:
        ok = ~np.isnan(x)
        n = np.bincount(g, weights=ok, minlength=k)
        s = _gsum(np.where(ok, x, 0.0), g, k)
    else:
        n, s = np.bincount(g, minlength=k), _gsum(x, g, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / n


def _sum(x, g, k, na_rm=False):
    x = _float(x)
    if na_rm:
        x = np.where(np.isnan(x), 0.0, x)
    return _gsum(x, g, k)


def _var(x, g, k, na_rm=False):
    x = _float(x)
    ok = ~np.isnan(x) if na_rm else np.ones(x.shape, bool)
    n = np.bincount(g, weights=ok, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = _gsum(np.where(ok, x, 0.0), g, k) / n
        d = np.where(ok, x - m[g], 0.0)
        # R: NA with fewer than two values (0 / -1 would give -0 for an empty subset).
        return np.where(n > 1, _gsum(d * d, g, k) / (n - 1), np.nan)


def _sd(x, g, k, na_rm=False):
    return np.sqrt(_var(x, g, k, na_rm))


def _sorted_groups(x, g, k, na_rm):
    """Values sorted within groups, group starts, and usable counts (NaN sorted last)."""
    x = _float(x)
    order = np.lexsort((x, g))
    xs = x[order]
    nan = np.isnan(x)
    n_nan = np.bincount(g, weights=nan, minlength=k).astype(np.int64)
    n_all = np.bincount(g, minlength=k)
    n = n_all - n_nan if na_rm else n_all
    start = np.concatenate([[0], np.cumsum(n_all)[:-1]]).astype(np.int64)
    return xs, start, n, n_nan


def _median(x, g, k, na_rm=False):
    counts = np.bincount(g, minlength=k)
    if not na_rm and len(x) and counts.min() == counts.max() and np.all(g[1:] >= g[:-1]):
        # Equal-sized contiguous groups (fixed N): a 2-D median is much faster.
        return np.median(_float(x).reshape(k, -1), axis=1)
    if len(x) == 0:
        return np.full(k, np.nan)
    xs, start, n, n_nan = _sorted_groups(x, g, k, na_rm)
    last = len(xs) - 1
    lo = np.minimum(start + np.maximum(n - 1, 0) // 2, last)
    hi = np.minimum(start + np.maximum(n, 1) // 2, last)
    med = np.where(n == 0, np.nan, (xs[lo] + xs[hi]) / 2)
    return med if na_rm else np.where(n_nan > 0, np.nan, med)


def _quantile(x, g, k, probs=0.5, na_rm=False, type=7):  # noqa: A002 - R's argument name
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim > 1 or p.size != 1 or not 0 <= float(p.reshape(-1)[0]) <= 1:
        raise FormulaError(f"quantile(probs={probs!r}): probs must be one number in [0, 1] "
                           "(one quantile per expression).")
    if type != 7:
        raise FormulaError(f"quantile(type={type!r}): only type 7 (R's default) is "
                           "available.")
    if len(x) == 0:
        return np.full(k, np.nan)
    xs, start, n, n_nan = _sorted_groups(x, g, k, na_rm)
    h = (np.maximum(n, 1) - 1) * float(p.reshape(-1)[0])
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    last = len(xs) - 1
    a, b = xs[np.minimum(start + lo, last)], xs[np.minimum(start + hi, last)]
    out = np.where(n == 0, np.nan, a + (h - lo) * (b - a))
    return out if na_rm else np.where(n_nan > 0, np.nan, out)


def _extreme(x, g, k, ufunc, na_rm):
    fill = np.inf if ufunc is np.minimum else -np.inf
    xf = _float(x)
    if na_rm:
        xf = np.where(np.isnan(xf), fill, xf)
    out = np.full(k, fill)
    with np.errstate(invalid="ignore"):
        ufunc.at(out, g, xf)
    if not na_rm:
        has_nan = np.bincount(g, weights=np.isnan(xf), minlength=k) > 0
        out = np.where(has_nan, np.nan, out)
    return out


def _min(x, g, k, na_rm=False):
    return _extreme(x, g, k, np.minimum, na_rm)


def _max(x, g, k, na_rm=False):
    return _extreme(x, g, k, np.maximum, na_rm)


def _constant_vector(ctx: Any, x: Any) -> np.ndarray | None:
    """``x`` if it is a constant vector (``c(1, 2)``, ``1:4``), not one value per row."""
    if isinstance(x, np.ndarray) and x.ndim == 1 and x.shape[0] != ctx.n_rows:
        return x
    return None


def _reduction(f: Callable[..., np.ndarray], name: str) -> Callable[..., np.ndarray]:
    def impl(ctx, x, *args, **kwargs):
        vec = _constant_vector(ctx, x)
        if vec is not None:  # R: sum(1:4) reduces the vector itself
            return f(vec, np.zeros(len(vec), dtype=np.int64), 1, *args, **kwargs)[0]
        vals, g = _grouped(ctx, x, name)
        return f(vals, g, ctx.n_groups, *args, **kwargs)[ctx.group]

    def per_group(ctx, x, *args, **kwargs):
        # one value per group, not spread to the rows (None for a constant vector)
        if _constant_vector(ctx, x) is not None:
            return None
        vals, g = _grouped(ctx, x, name)
        return f(vals, g, ctx.n_groups, *args, **kwargs)

    impl.__name__ = name
    impl.per_group = per_group
    return impl


def _count(ctx, x=None):
    if _constant_vector(ctx, x) is not None:
        return len(x)
    if isinstance(x, Masked):
        return np.bincount(ctx.group[x.rows], minlength=ctx.n_groups)[ctx.group]
    return np.bincount(ctx.group, minlength=ctx.n_groups)[ctx.group]


def _np_ddof(f: Callable[..., np.ndarray], name: str) -> Callable[..., np.ndarray]:
    """Build numpy's std/var (ddof=0 by default) from the n-1 versions, grouped."""
    def impl(ctx, x, ddof=0):
        vals, g = _grouped(ctx, x, name)
        n = np.bincount(g, minlength=ctx.n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = (n - 1) / (n - ddof)
            out = f(vals, g, ctx.n_groups) * (np.sqrt(scale) if name == "np.std" else scale)
        return out[ctx.group]
    return impl


def reducers(ctx: Any) -> dict[str, Callable[..., np.ndarray]]:
    """Return grouped reductions bound to a context, for Python code (``df.by_sim``, draws).

    Parameters
    ----------
    ctx : Context
        The evaluation context (its ``group`` codes are the groups).

    Returns
    -------
    dict
        ``mean, sum, sd, var, median, min, max, n, length``: each takes one value per
        row (and ``na_rm``) and returns its group's value on every row.
    """
    out: dict[str, Callable[..., np.ndarray]] = {}
    for name in ("mean", "sum", "sd", "var", "median", "min", "max"):
        impl = FUNCTIONS[name].impl
        out[name] = (lambda f: lambda x, na_rm=False: f(ctx, x, na_rm=na_rm))(impl)
    out["n"] = out["length"] = lambda x=None: _count(ctx, x)
    return out


# ------------------------------------------------- within-simulation transforms
def _within(f: Callable[..., np.ndarray], name: str) -> Callable[..., Any]:
    def impl(ctx, x, *args, **kwargs):
        vec = _constant_vector(ctx, x)
        if vec is not None:
            return f(vec, np.zeros(len(vec), dtype=np.int64), 1, *args, **kwargs)
        vals, g = _grouped(ctx, x, name)
        out = f(vals, g, ctx.n_groups, *args, **kwargs)
        return Masked(x.rows, out) if isinstance(x, Masked) else out
    impl.__name__ = name
    return impl


def _scale(x, g, k, center=True, scale=True):
    x = _float(x)
    if center:
        x = x - _mean(x, g, k, na_rm=True)[g]
    if scale:
        # R divides by the root mean square (n - 1) of the centred values: the sd.
        ok = ~np.isnan(x)
        n = np.bincount(g, weights=ok, minlength=k)
        with np.errstate(invalid="ignore", divide="ignore"):
            rms = np.sqrt(_gsum(np.where(ok, x * x, 0.0), g, k) / (n - 1))
            x = x / rms[g]
    return x


def _cumsum(x, g, k):
    x = np.asarray(x)
    x = x.astype(np.int64) if x.dtype == bool else x
    order = np.argsort(g, kind="stable")
    xs = x[order]
    cs = np.cumsum(xs)
    counts = np.bincount(g, minlength=k)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    before = np.where(start > 0, cs[np.maximum(start - 1, 0)], 0) if len(cs) else cs
    out = np.empty_like(cs)
    out[order] = cs - np.repeat(before, counts)
    return out


def _rank(x, g, k):
    """R's rank (ties "average") within each group; NaN keeps rank NaN ("keep")."""
    x = _float(x)
    order = np.lexsort((x, g))
    xs, gs = x[order], g[order]
    counts = np.bincount(g, minlength=k)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    pos = np.arange(len(x)) - np.repeat(start, counts) + 1.0
    # Runs of equal values within a group share the mean of their positions.
    new_run = np.ones(len(x), dtype=bool)
    new_run[1:] = (xs[1:] != xs[:-1]) | (gs[1:] != gs[:-1])
    run = np.cumsum(new_run) - 1
    mean_pos = np.bincount(run, weights=pos) / np.bincount(run)
    out = np.empty(len(x))
    out[order] = mean_pos[run]
    return np.where(np.isnan(x), np.nan, out)


def _position(ctx: Any) -> np.ndarray:
    """0-based position of each row within its group (rows in batch order)."""
    order = np.argsort(ctx.group, kind="stable")
    counts = np.bincount(ctx.group, minlength=ctx.n_groups)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    pos = np.empty(ctx.n_rows, dtype=np.int64)
    pos[order] = np.arange(ctx.n_rows) - np.repeat(start, counts)
    return pos


def _first_in_group(ctx: Any, v: Any) -> np.ndarray:
    """Take a per-row argument (e.g. ``each=N/2``) at the first row of each group."""
    arr = np.asarray(v)
    if arr.ndim == 0:
        return np.full(ctx.n_rows, arr[()])
    first = np.zeros(ctx.n_groups, dtype=np.int64)
    first[ctx.group[::-1]] = np.arange(ctx.n_rows)[::-1]
    return arr[first][ctx.group]


def _rep(ctx, x, times=1, each=1, length_out=None):
    x = np.atleast_1d(np.asarray(x))
    each_r = _first_in_group(ctx, each).astype(np.int64)
    times_r = _first_in_group(ctx, times).astype(np.int64)
    pos = _position(ctx)
    counts = np.bincount(ctx.group, minlength=ctx.n_groups)[ctx.group]
    total = each_r * len(x) * times_r if length_out is None else \
        _first_in_group(ctx, length_out).astype(np.int64)
    if np.any(total != counts):
        bad = int(np.flatnonzero(total != counts)[0])
        raise FormulaError(f"rep() gives {int(total[bad])} values where the data has "
                           f"{int(counts[bad])} rows; choose times/each/length_out so they "
                           "match N.")
    return x[(pos // np.maximum(each_r, 1)) % len(x)]


# ------------------------------------------------------------- elementwise
def _pnorm(q, mean=0.0, sd=1.0):
    return ndtr((np.asarray(q, dtype=float) - mean) / sd)


def _qnorm(p, mean=0.0, sd=1.0):
    return mean + sd * ndtri(np.asarray(p, dtype=float))


def _log(x, base=None):
    out = np.log(x)
    return out if base is None else out / np.log(base)


def _round(x, digits=0):
    return np.round(x, int(digits))


def _parallel(ufunc: np.ufunc) -> Callable[..., Any]:
    def f(*args, na_rm=False):
        if not args:
            raise FormulaError(f"{'pmin' if ufunc is np.minimum else 'pmax'}() needs at "
                               "least one argument.")
        out = np.asarray(args[0])
        for a in args[1:]:
            out = (np.fmin if ufunc is np.minimum else np.fmax)(out, a) if na_rm else \
                ufunc(out, a)
        return out
    return f


def is_na(x: Any) -> Any:
    """R's ``is.na``: NaN (numbers) or None/NaN (strings, objects)."""
    arr = np.asarray(x)
    if arr.dtype.kind in "fc":
        return np.isnan(arr)
    if arr.dtype.kind == "O":
        return np.asarray(pd.isna(arr), dtype=bool)
    return np.zeros(arr.shape, dtype=bool)


def _ifelse(test, yes, no):
    return np.where(test, yes, no)


def _r_str(v: Any) -> str:
    """One value as R's ``as.character`` writes it (TRUE, 1, 0.5, NA)."""
    if v is None:
        return "NA"
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float):
        if np.isnan(v):
            return "NA"
        if np.isfinite(v) and v == int(v) and abs(v) < 1e15:
            return str(int(v))
        return format(v, ".15g")
    return str(v)


def _as_character(x):
    arr = np.asarray(x)
    if arr.ndim == 0:
        return _r_str(arr[()].item() if isinstance(arr[()], np.generic) else arr[()])
    return np.array([_r_str(v) for v in arr.tolist()], dtype=object)


def _paste(*args, sep=" ", collapse=None):
    if collapse is not None:
        raise FormulaError("paste(collapse=...) would join rows of different simulations; "
                           "it is not available in expressions.")
    parts = [_as_character(a) for a in args]
    arrays = [p for p in parts if isinstance(p, np.ndarray)]
    if not arrays:
        return sep.join(parts)
    n = max(a.shape[0] for a in arrays)
    out = np.array([""] * n, dtype=object)
    for i, p in enumerate(parts):
        out = out + (sep if i else "") + p
    return out


def _paste0(*args, collapse=None):
    return _paste(*args, sep="", collapse=collapse)


def _isin(x, values):
    return np.isin(x, np.asarray(values))


def _vector(ctx, *values):
    if any(isinstance(v, Masked) or np.ndim(v) > 1 for v in values):
        raise FormulaError("c() takes constants (numbers, strings or constant vectors).")
    parts = [np.atleast_1d(np.asarray(v)) for v in values]
    return np.concatenate(parts) if parts else np.zeros(0)


def _seq(ctx, from_=1, to=None, by=None, length_out=None, **kwargs):
    """R's ``seq`` (and ``a:b``): a constant vector."""
    from_ = kwargs.pop("from", from_)
    if kwargs or any(np.ndim(v) for v in (from_, to, by, length_out) if v is not None):
        raise FormulaError("seq() takes constants: seq(from, to, by=, length_out=).")
    if length_out is not None:
        return np.linspace(from_, to, int(length_out))
    to = from_ if to is None else to
    step = (1 if to >= from_ else -1) if by is None else by
    if step == 0 or (to - from_) / step < 0 or abs((to - from_) / step) > 10**7:
        raise FormulaError(f"seq({from_}, {to}, by={step}): wrong sign or too long.")
    n = int(np.floor((to - from_) / step + 1e-10)) + 1
    out = from_ + step * np.arange(n)
    ints = all(isinstance(v, (int, np.integer)) for v in (from_, step))
    return out.astype(np.int64) if ints else out


def vector_index(vector: np.ndarray, index: Any) -> Any:
    """R's ``v[i]`` for a constant vector ``v`` and 1-based positions ``i`` (per row).

    Parameters
    ----------
    vector : numpy.ndarray
        The constant vector, e.g. ``c(0.3, 0.5, 0.7)``.
    index : array_like
        Positions from 1 to ``len(vector)``, one per row or a single one.

    Returns
    -------
    numpy.ndarray or scalar
        The looked-up values.
    """
    if isinstance(index, Masked):
        return Masked(index.rows, vector_index(vector, index.values))
    idx = np.asarray(index)
    if idx.dtype.kind in "fO":
        idx = idx.astype(np.float64)
        if np.any(idx % 1 != 0):
            raise FormulaError("a vector index must be whole numbers (positions from 1).")
        idx = idx.astype(np.int64)
    if idx.dtype.kind not in "iu" or np.any(idx < 1) or np.any(idx > len(vector)):
        raise FormulaError(f"a vector of {len(vector)} values is indexed by positions "
                           f"outside 1..{len(vector)}.")
    return vector[idx - 1]


# --------------------------------------------------------------- random
def _sample(ctx, x, size=None, replace=False, prob=None):
    """R's ``sample`` in a column: ``size`` must be the group size (``N``)."""
    if isinstance(x, Masked):
        raise FormulaError("sample() of a masked vector is not available.")
    arr = np.asarray(x)
    if arr.ndim == 0 and arr.dtype.kind in "iu":
        if not 0 <= int(arr) <= max(ctx.n_rows, 1):
            raise FormulaError(f"sample({int(arr)}): n must be between 0 and the number "
                               "of rows.")
        arr = np.arange(1, int(arr) + 1)  # sample(n): a permutation of 1..n
    if size is not None and not np.all(np.asarray(size) == _count(ctx)):
        raise FormulaError(f"sample(size={size!r}): in an expression size must be N (one "
                           "value per row).")
    if arr.ndim == 1 and arr.shape[0] == ctx.n_rows and not replace:
        keys = ctx.rng.random(ctx.n_rows)  # a permutation within each simulation
        out = np.empty_like(arr)
        out[np.argsort(ctx.group, kind="stable")] = arr[np.lexsort((keys, ctx.group))]
        return out
    p = None if prob is None else np.asarray(prob, dtype=float) / np.sum(prob)
    if replace:
        return arr[ctx.rng.choice(len(arr), size=ctx.n_rows, p=p)]
    if p is not None:
        raise FormulaError("sample(prob=...) needs replace=TRUE in expressions.")
    keys = ctx.rng.random((ctx.n_groups, len(arr)))
    picks = np.argsort(keys, axis=1)
    pos = _position(ctx)
    if ctx.n_rows and pos.max() >= len(arr):
        raise FormulaError(f"sample(): cannot take N values from {len(arr)} without "
                           "replacement; use replace=TRUE.")
    return arr[picks[ctx.group, pos]]


_DRAWS: dict[str, Callable[..., Any]] = {}

# R's generators, so fabricatr code such as "rnorm(N, 0, 1)" runs unchanged.
R_DRAWS = {"rnorm": "normal", "runif": "uniform", "rpois": "poisson", "rbinom": "binomial",
           "rexp": "exponential", "rlnorm": "lognormal", "rgamma": "gamma"}


def _bound_draw(draw: Callable[..., Any], name: str) -> Callable[..., Any]:
    def impl(ctx, *args, **kwargs):
        _no_mask(args, kwargs)
        if "N" in kwargs:
            # fabricatr writes draw_binary(prob, N = N): the level's size is implied.
            n = np.asarray(kwargs.pop("N"))
            if not np.all(n == (_count(ctx) if n.ndim else _count(ctx)[:1])):
                raise FormulaError(f"{name}(N=...) inside an expression must be N (the "
                                   "size of the level).")
        return draw(*args, **kwargs)._eval(ctx)
    return impl


def _no_mask(args, kwargs) -> None:
    if any(isinstance(a, Masked) for a in (*args, *kwargs.values())):
        raise FormulaError("random draws take whole columns, not masked vectors.")


def _bound_r_draw(draw: Callable[..., Any], r_name: str) -> Callable[..., Any]:
    def impl(ctx, n, *args, **kwargs):
        _no_mask(args, kwargs)
        values = draw(*args, **kwargs)._eval(ctx)
        n_arr = np.asarray(n)
        if n_arr.ndim == 1 and n_arr.shape[0] == ctx.n_rows:
            return values  # n = N: one draw per row
        sizes = np.bincount(ctx.group, minlength=ctx.n_groups)
        if n_arr.ndim == 0 and ctx.n_rows and np.all(sizes[sizes > 0] == n_arr):
            return values
        if n_arr.ndim == 0 and n_arr == 1:
            # One value recycled over the rows, as R recycles a length-1 vector.
            return _first_in_group(ctx, values)
        raise FormulaError(f"{r_name}(n, ...) needs n = N (one draw per row) or 1; "
                           f"got {n!r}.")
    return impl


def register_draws(draws: Mapping[str, Callable[..., Any]]) -> None:
    """Make lazy-draw helpers callable inside expressions (called by ``fabricate``).

    Parameters
    ----------
    draws : mapping of str to callable
        Name -> helper returning a lazy node (``normal``, ``draw_binary``...). R's
        ``rnorm``-style generators are added for the helpers that have one.
    """
    _DRAWS.update(draws)
    for name, draw in draws.items():
        FUNCTIONS[name] = Function(_bound_draw(draw, name), "random", f"fabricatr/stats ({name})",
                                   "draws from the step's generator")
    for r_name, name in R_DRAWS.items():
        if name in draws:
            FUNCTIONS[r_name] = Function(_bound_r_draw(draws[name], r_name), "random",
                                         r_name, "n must be N (one per row) or 1")


# --------------------------------------------------------------- tables
def _ew(f: Callable[..., Any], r: str, note: str = "") -> Function:
    def impl(ctx, *args, **kwargs):
        return elementwise(f, list(args), kwargs, r)
    return Function(impl, "elementwise", r, note)


def _red(f: Callable[..., np.ndarray], r: str, name: str, note: str = "") -> Function:
    return Function(_reduction(f, name), "reduction", r, note)


def _win(f: Callable[..., np.ndarray], r: str, name: str, note: str = "") -> Function:
    return Function(_within(f, name), "within", r, note)


FUNCTIONS: dict[str, Function] = {
    "mean": _red(_mean, "mean", "mean"), "sum": _red(_sum, "sum", "sum"),
    "sd": _red(_sd, "sd", "sd", "n - 1 denominator"),
    "var": _red(_var, "var", "var", "n - 1 denominator"),
    "median": _red(_median, "median", "median"),
    "quantile": _red(_quantile, "quantile", "quantile", "type 7, one probability"),
    "min": _red(_min, "min", "min"), "max": _red(_max, "max", "max"),
    "n": Function(_count, "reduction", "dplyr::n", "rows in the simulation (or mask)"),
    "length": Function(_count, "reduction", "length"),
    "scale": _win(_scale, "scale", "scale", "centre and divide by the sd"),
    "cumsum": _win(_cumsum, "cumsum", "cumsum", "in row order"),
    "rank": _win(_rank, "rank", "rank", "ties 'average', NA kept"),
    "rep": Function(_rep, "within", "rep", "must give N values"),
    "c": Function(_vector, "vector", "c", "a constant vector of literals"),
    "seq": Function(_seq, "vector", "seq", "constants; a:b is seq(a, b)"),
    "exp": _ew(np.exp, "exp"), "log": _ew(_log, "log"), "log2": _ew(np.log2, "log2"),
    "log10": _ew(np.log10, "log10"), "log1p": _ew(np.log1p, "log1p"),
    "expm1": _ew(np.expm1, "expm1"), "sqrt": _ew(np.sqrt, "sqrt"),
    "abs": _ew(np.abs, "abs"), "sin": _ew(np.sin, "sin"), "cos": _ew(np.cos, "cos"),
    "tan": _ew(np.tan, "tan"), "tanh": _ew(np.tanh, "tanh"),
    "floor": _ew(np.floor, "floor"), "ceiling": _ew(np.ceil, "ceiling"),
    "ceil": _ew(np.ceil, "ceiling"), "trunc": _ew(np.trunc, "trunc"),
    "round": _ew(_round, "round", "halves to even, as R"), "sign": _ew(np.sign, "sign"),
    "ifelse": _ew(_ifelse, "ifelse"), "if_else": _ew(_ifelse, "dplyr::if_else"),
    "where": _ew(_ifelse, "ifelse", "numpy's name"),
    "pmin": _ew(_parallel(np.minimum), "pmin"), "pmax": _ew(_parallel(np.maximum), "pmax"),
    "minimum": _ew(np.minimum, "pmin", "numpy's name"),
    "maximum": _ew(np.maximum, "pmax", "numpy's name"),
    "clip": _ew(np.clip, "pmin(pmax(x, lo), hi)"),
    "is_na": _ew(is_na, "is.na", "also spelled is.na"),
    "isnan": _ew(is_na, "is.na", "numpy's name"),
    "isin": _ew(_isin, "%in%", "x %in% c(...) also works"),
    "pnorm": _ew(_pnorm, "pnorm"), "qnorm": _ew(_qnorm, "qnorm"),
    "plogis": _ew(expit, "plogis"), "qlogis": _ew(logit, "qlogis"),
    "as_numeric": _ew(lambda x: np.asarray(x, dtype=np.float64), "as.numeric"),
    "as_integer": _ew(lambda x: np.trunc(np.asarray(x, dtype=np.float64)).astype(np.int64),
                      "as.integer"),
    "as_logical": _ew(lambda x: np.asarray(x).astype(bool), "as.logical"),
    "as_character": _ew(_as_character, "as.character"),
    "float": _ew(np.float64, "as.numeric", "Python's name"),
    "int": _ew(np.int64, "as.integer", "Python's name"),
    "paste": _ew(_paste, "paste", "no collapse"), "paste0": _ew(_paste0, "paste0"),
    "sample": Function(_sample, "random", "sample", "size must be N"),
}

# np.<name>: numpy's spelling of functions above (reductions grouped by simulation).
NUMPY: dict[str, Function] = {
    **{k: FUNCTIONS[k] for k in ("exp", "expm1", "log2", "log10", "log1p", "sqrt", "abs",
                                  "sin", "cos", "tan", "tanh", "floor", "sign", "where",
                                  "minimum", "maximum", "clip", "isnan", "isin", "mean",
                                  "sum", "median", "min", "max")},
    "log": _ew(np.log, "log"), "ceil": FUNCTIONS["ceiling"], "round": _ew(np.round, "round"),
    "rint": _ew(np.rint, "round"), "square": _ew(np.square, "x^2"),
    "power": _ew(np.power, "^"), "absolute": FUNCTIONS["abs"],
    "amin": FUNCTIONS["min"], "amax": FUNCTIONS["max"],
    "std": Function(_np_ddof(_sd, "np.std"), "reduction", "sd", "ddof=0 unless given"),
    "var": Function(_np_ddof(_var, "np.var"), "reduction", "var", "ddof=0 unless given"),
    "nanmean": Function(lambda ctx, x: FUNCTIONS["mean"].impl(ctx, x, na_rm=True),
                        "reduction", "mean(na.rm = TRUE)"),
    "nansum": Function(lambda ctx, x: FUNCTIONS["sum"].impl(ctx, x, na_rm=True),
                       "reduction", "sum(na.rm = TRUE)"),
}

CONSTANTS: dict[str, Any] = {
    "pi": np.pi, "inf": np.inf, "Inf": np.inf, "nan": np.nan, "NaN": np.nan, "NA": np.nan,
    "TRUE": True, "FALSE": False,
}
NUMPY_CONSTANTS: dict[str, float] = {"pi": np.pi, "inf": np.inf, "nan": np.nan, "e": np.e}
