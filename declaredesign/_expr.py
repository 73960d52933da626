"""Evaluate user expressions on a batch: strings, lazy draws, callables, constants.

One evaluator serves ``fabricate`` (variables of a level), inquiries
(``ate="mean(Y_Z_1 - Y_Z_0)"``) and measurement steps. An expression is one of

* a scalar, broadcast to every row;
* an array with one value per row;
* a string such as ``"student_baseline + (1 + Z) * class_effect"``, evaluated with
  the batch's columns, numpy functions (``np.*``, ``exp``, ``where``, ``ifelse``,
  ``pnorm``...), the distribution helpers (``normal(0, 1)``...), R's generators
  (``rnorm(N, 0, 1)``, ``runif``, ``rpois``, ``rbinom``...) and ``N`` in scope;
* a lazy node (:class:`Lazy`), e.g. ``normal(mean=0, sd=1)`` or ``poisson(20) + 5``;
* a callable ``f(df)`` receiving a :class:`ColumnView`.

Reductions (``mean``, ``sum``, ``sd``, ``var``, ``median``, ``min``, ``max``, ``n``,
``length``) are grouped by simulation and broadcast back to the rows, so
``"x - mean(x)"`` centers ``x`` within each simulated dataset, exactly as it would
within the one dataset R sees.
"""

from __future__ import annotations

import ast
import functools
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .errors import FormulaError

__all__ = ["ColumnView", "Context", "Lazy", "evaluate"]


# --------------------------------------------------------------------------- context
class Context:
    """Where an expression is evaluated: columns, row -> sim map, group codes, rng.

    ``group`` is what reductions group by (the simulation by default, the
    (sim, by) cells inside ``modify_level(by=...)``).
    """

    __slots__ = ("columns", "sim", "n_sims", "n_rows", "_rng", "group", "n_groups",
                 "N", "label")

    def __init__(self, columns: Mapping[str, np.ndarray], sim: np.ndarray, n_sims: int,
                 rng: np.random.Generator | None = None, *, N: Any = None,
                 group: np.ndarray | None = None, n_groups: int | None = None,
                 label: str | None = None):
        self.columns = columns
        self.sim = sim
        self.n_sims = int(n_sims)
        self.n_rows = int(sim.shape[0])
        self._rng = rng
        if group is None:
            group, n_groups = sim, self.n_sims
        self.group = group
        self.n_groups = int(n_groups)
        if N is None:
            N = np.bincount(group, minlength=self.n_groups)[group] if self.n_rows else \
                np.zeros(0, dtype=np.int64)
        self.N = N
        self.label = label

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            # Only reached by standalone calls without a seed; never on the design path.
            self._rng = np.random.default_rng()
        return self._rng

    def value(self, arg: Any, name: str = "argument") -> Any:
        """Evaluate an argument of a draw: scalars stay scalars, the rest become rows."""
        if arg is None or isinstance(arg, (numbers.Number, np.generic)):
            return arg
        return _evaluate_in(arg, self, self.label or name)


# ----------------------------------------------------------------------- lazy nodes
class Lazy:
    """A value computed on a batch when a level is generated (a lazy draw).

    Lazy nodes compose with ``+ - * / ** //``, comparisons and numpy ufuncs
    (``np.exp(normal())``) into new lazy nodes. Subclasses implement
    ``_eval(ctx) -> ndarray`` returning one value per row of ``ctx``.
    """

    __slots__ = ()

    def _eval(self, ctx: Context) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _needs_data(self) -> bool:
        return True

    def draw(self, N: int | None = None, seed: Any = None) -> np.ndarray:
        """Evaluate eagerly outside a batch.

        Parameters
        ----------
        N : int, optional
            Number of values; by default the length of array arguments (or 1).
        seed : int, SeedSequence or Generator, optional
            Seed of the random draws.

        Examples
        --------
        >>> from declaredesign.fabricate import normal
        >>> (normal(mean=0, sd=1) * 2).draw(N=3, seed=1).shape
        (3,)
        """
        if N is None:
            N = _implicit_length(self)
        sim = np.zeros(int(N), dtype=np.int64)
        ctx = Context({}, sim, 1, np.random.default_rng(seed))
        return _as_rows(self._eval(ctx), ctx, repr(self))

    # numpy: np.exp(node), array + node -> lazy ufunc node.
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs:
            return NotImplemented
        return _UFunc(ufunc, inputs)

    def _binop(self, other, ufunc, swap=False):
        return _UFunc(ufunc, (other, self) if swap else (self, other))

    def __add__(self, o): return self._binop(o, np.add)
    def __radd__(self, o): return self._binop(o, np.add, True)
    def __sub__(self, o): return self._binop(o, np.subtract)
    def __rsub__(self, o): return self._binop(o, np.subtract, True)
    def __mul__(self, o): return self._binop(o, np.multiply)
    def __rmul__(self, o): return self._binop(o, np.multiply, True)
    def __truediv__(self, o): return self._binop(o, np.true_divide)
    def __rtruediv__(self, o): return self._binop(o, np.true_divide, True)
    def __floordiv__(self, o): return self._binop(o, np.floor_divide)
    def __rfloordiv__(self, o): return self._binop(o, np.floor_divide, True)
    def __mod__(self, o): return self._binop(o, np.mod)
    def __pow__(self, o): return self._binop(o, np.power)
    def __rpow__(self, o): return self._binop(o, np.power, True)
    def __lt__(self, o): return self._binop(o, np.less)
    def __le__(self, o): return self._binop(o, np.less_equal)
    def __gt__(self, o): return self._binop(o, np.greater)
    def __ge__(self, o): return self._binop(o, np.greater_equal)
    def __and__(self, o): return self._binop(o, np.logical_and)
    def __or__(self, o): return self._binop(o, np.logical_or)
    def __neg__(self): return _UFunc(np.negative, (self,))
    def __abs__(self): return _UFunc(np.absolute, (self,))
    def __invert__(self): return _UFunc(np.logical_not, (self,))

    # Comparisons build nodes, so equality and hashing stay by identity.
    __hash__ = object.__hash__


_OPS = {np.add: "+", np.subtract: "-", np.multiply: "*", np.true_divide: "/",
        np.floor_divide: "//", np.mod: "%", np.power: "**", np.less: "<",
        np.less_equal: "<=", np.greater: ">", np.greater_equal: ">=",
        np.logical_and: "&", np.logical_or: "|"}


class _UFunc(Lazy):
    __slots__ = ("ufunc", "inputs")

    def __init__(self, ufunc, inputs):
        self.ufunc = ufunc
        self.inputs = tuple(inputs)

    def _needs_data(self) -> bool:
        return any(_needs_data(i) for i in self.inputs)

    def _eval(self, ctx):
        return self.ufunc(*(ctx.value(i) for i in self.inputs))

    def __repr__(self):
        parts = [_short_repr(i, nested=True) for i in self.inputs]
        op = _OPS.get(self.ufunc)
        if op is not None and len(parts) == 2:
            return f"{parts[0]} {op} {parts[1]}"
        if self.ufunc is np.negative:
            return f"-{parts[0]}"
        return f"np.{self.ufunc.__name__}({', '.join(parts)})"


def _needs_data(x: Any) -> bool:
    if isinstance(x, Lazy):
        return x._needs_data()
    return isinstance(x, str) or callable(x)


def _implicit_length(x: Any) -> int:
    """Largest length among array arguments of a node tree (1 if none)."""
    best = 1
    stack = [x]
    while stack:
        v = stack.pop()
        if isinstance(v, Lazy):
            stack.extend(_children(v))
        elif isinstance(v, (np.ndarray, list, tuple)):
            arr = np.asarray(v)
            if arr.ndim >= 1:
                best = max(best, arr.shape[0])
    return best


def _children(node: Lazy) -> list:
    if isinstance(node, _UFunc):
        return list(node.inputs)
    live = getattr(node, "live_params", None)
    return list(live()) if live is not None else []


def _short_repr(v: Any, nested: bool = False) -> str:
    if isinstance(v, _UFunc) and nested and v.ufunc in _OPS:
        return f"({v!r})"
    if isinstance(v, np.ndarray):
        if v.size <= 6:
            return f"np.array({v.tolist()!r})"
        return f"<array of {v.shape[0]}>"
    if isinstance(v, np.generic):
        return repr(v.item())
    if callable(v) and not isinstance(v, Lazy):
        return getattr(v, "__name__", repr(v))
    return repr(v)


# ----------------------------------------------------------------------- reductions
def _counts(ctx: Context) -> np.ndarray:
    return np.bincount(ctx.group, minlength=ctx.n_groups)


def _rows(x: Any, ctx: Context) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 0:
        arr = np.full(ctx.n_rows, arr[()])
    if arr.dtype == bool:
        arr = arr.astype(np.float64)
    if arr.shape != (ctx.n_rows,):
        raise FormulaError(
            f"a reduction received {arr.shape[0] if arr.ndim else 1} values; it needs one "
            f"value per row ({ctx.n_rows})."
        )
    return arr


def _group_sum(x: np.ndarray, ctx: Context) -> np.ndarray:
    return np.bincount(ctx.group, weights=x, minlength=ctx.n_groups)


def _reducers(ctx: Context) -> dict[str, Callable]:
    g = ctx.group

    def mean(x, na_rm=False):
        x = _rows(x, ctx).astype(np.float64)
        if na_rm:
            ok = ~np.isnan(x)
            n = np.bincount(g, weights=ok, minlength=ctx.n_groups)
            s = _group_sum(np.where(ok, x, 0.0), ctx)
        else:
            n, s = _counts(ctx), _group_sum(x, ctx)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (s / n)[g]

    def total(x, na_rm=False):
        x = _rows(x, ctx).astype(np.float64)
        if na_rm:
            x = np.where(np.isnan(x), 0.0, x)
        return _group_sum(x, ctx)[g]

    def var(x, na_rm=False):
        x = _rows(x, ctx).astype(np.float64)
        ok = ~np.isnan(x) if na_rm else np.ones(x.shape, bool)
        xx = np.where(ok, x, 0.0)
        n = np.bincount(g, weights=ok, minlength=ctx.n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = _group_sum(xx, ctx) / n
            d = np.where(ok, x - m[g], 0.0)
            return (_group_sum(d * d, ctx) / (n - 1))[g]

    def sd(x, na_rm=False):
        return np.sqrt(var(x, na_rm))

    def _sorted(x):
        x = _rows(x, ctx).astype(np.float64)
        order = np.lexsort((x, g))
        return x[order], g[order]

    def median(x, na_rm=False):
        counts = _counts(ctx)
        if (not na_rm and ctx.n_rows and counts.min() == counts.max()
                and np.all(g[1:] >= g[:-1])):
            # Equal-sized contiguous groups (fixed N): a 2-D median is much faster.
            xx = _rows(x, ctx).astype(np.float64).reshape(ctx.n_groups, -1)
            return np.median(xx, axis=1)[g]
        xs, gs = _sorted(x)
        nan = np.isnan(xs)
        n_nan = np.bincount(gs, weights=nan, minlength=ctx.n_groups).astype(np.int64)
        n_all = np.bincount(gs, minlength=ctx.n_groups)
        n = n_all - n_nan if na_rm else n_all
        start = np.concatenate([[0], np.cumsum(n_all)[:-1]])
        lo = start + np.maximum(n - 1, 0) // 2
        hi = start + np.maximum(n, 1) // 2
        lo = np.minimum(lo, max(len(xs) - 1, 0))
        hi = np.minimum(hi, max(len(xs) - 1, 0))
        if len(xs) == 0:
            return np.zeros(0)
        med = (xs[lo] + xs[hi]) / 2
        med = np.where(n == 0, np.nan, med)
        if not na_rm:
            med = np.where(n_nan > 0, np.nan, med)
        return med[g]

    def _extreme(x, ufunc, na_rm):
        x = _rows(x, ctx)
        if x.dtype.kind not in "fiu":
            x = x.astype(np.float64)
        fill = np.inf if ufunc is np.minimum else -np.inf
        xf = x.astype(np.float64)
        if na_rm:
            xf = np.where(np.isnan(xf), fill, xf)
        out = np.full(ctx.n_groups, fill)
        with np.errstate(invalid="ignore"):
            ufunc.at(out, g, xf)
        if not na_rm:
            has_nan = np.bincount(g, weights=np.isnan(xf), minlength=ctx.n_groups) > 0
            out = np.where(has_nan, np.nan, out)
        return out[g]

    def vmin(x, na_rm=False):
        return _extreme(x, np.minimum, na_rm)

    def vmax(x, na_rm=False):
        return _extreme(x, np.maximum, na_rm)

    def n(x=None):
        return _counts(ctx)[g]

    return {"mean": mean, "sum": total, "sd": sd, "var": var, "median": median,
            "min": vmin, "max": vmax, "n": n, "length": n}


REDUCTIONS = ("mean", "sum", "sd", "var", "median", "min", "max", "n", "length")


# ----------------------------------------------------------------- string namespace
def _ifelse(test, yes, no):
    return np.where(test, yes, no)


def _pnorm(q, mean=0.0, sd=1.0):
    from scipy.special import ndtr
    return ndtr((np.asarray(q, dtype=float) - mean) / sd)


def _qnorm(p, mean=0.0, sd=1.0):
    from scipy.special import ndtri
    return mean + sd * ndtri(np.asarray(p, dtype=float))


def _plogis(q):
    from scipy.special import expit
    return expit(q)


def _qlogis(p):
    from scipy.special import logit
    return logit(p)


_ELEMENTWISE: dict[str, Any] = {
    "np": np, "numpy": np,
    "exp": np.exp, "log": np.log, "log2": np.log2, "log10": np.log10, "log1p": np.log1p,
    "sqrt": np.sqrt, "abs": np.abs, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
    "floor": np.floor, "ceil": np.ceil, "ceiling": np.ceil, "round": np.round,
    "sign": np.sign, "where": np.where, "ifelse": _ifelse, "if_else": _ifelse,
    "minimum": np.minimum, "maximum": np.maximum, "pmin": np.minimum, "pmax": np.maximum,
    "clip": np.clip, "isnan": np.isnan, "is_na": np.isnan, "isin": np.isin,
    "pnorm": _pnorm, "qnorm": _qnorm, "plogis": _plogis, "qlogis": _qlogis,
    "float": np.float64, "int": np.int64,
    "pi": np.pi, "inf": np.inf, "nan": np.nan, "NA": np.nan, "TRUE": True, "FALSE": False,
}


def _draw_functions() -> dict[str, Any]:
    # Imported late: fabricate builds on this module.
    from .fabricate import _draws
    return dict(_draws.DRAW_FUNCTIONS)


class _Names(Mapping):
    """Name lookup for string expressions: extra, columns, N, then functions."""

    def __init__(self, ctx: Context, expr: str):
        self.ctx = ctx
        self.expr = expr
        self._funcs: dict[str, Any] | None = None

    def functions(self) -> dict[str, Any]:
        if self._funcs is None:
            ctx = self.ctx
            f = dict(_ELEMENTWISE)
            draws = _draw_functions()
            for name, draw in draws.items():
                f[name] = _bind_draw(draw, ctx)
            for r_name, name in _R_DRAWS.items():
                f[r_name] = _bind_r_draw(draws[name], ctx, r_name, self.expr)
            reducers = _reducers(ctx)
            f.update(reducers)
            f["np"] = f["numpy"] = _GroupedNumpy(reducers)
            self._funcs = f
        return self._funcs

    def __getitem__(self, name: str) -> Any:
        if name.startswith(_CALL):
            # The name is called: a function wins over a column of the same name.
            name = name[len(_CALL):]
            funcs = self.functions()
            if name in funcs:
                return funcs[name]
        cols = self.ctx.columns
        if name in cols:
            return cols[name]
        if name == "N":
            return self.ctx.N
        funcs = self.functions()
        if name in funcs:
            return funcs[name]
        raise FormulaError(_unknown_message(self.ctx, self.expr, name))

    def __iter__(self):
        return iter(self.ctx.columns)

    def __len__(self):
        return len(self.ctx.columns)


class _GroupedNumpy:
    """``np`` inside string expressions: numpy, with reductions grouped by simulation.

    Rows of many simulations are stacked, so ``np.mean(x)`` must mean "within each
    simulation", as ``mean(x)`` does; numpy functions that mix rows in other ways
    (sorting, cumulative sums, quantiles) are refused rather than silently pooled.
    """

    _CROSS_ROW = frozenset({
        "percentile", "quantile", "nanpercentile", "nanquantile", "prod", "nanprod",
        "cumsum", "cumprod", "nancumsum", "nancumprod", "sort", "argsort", "unique", "diff",
        "ptp", "count_nonzero", "any", "all", "argmax", "argmin", "nanargmax", "nanargmin",
        "histogram", "corrcoef", "cov", "dot", "average", "nanmedian", "nanmin", "nanmax",
        "nanstd", "nanvar", "convolve", "correlate", "roll", "flip", "gradient", "trapz",
        "searchsorted", "lexsort", "partition", "argpartition", "bincount", "digitize",
    })

    def __init__(self, reducers: Mapping[str, Callable]):
        r = reducers

        def std(x, ddof=0):
            n = r["n"](x)
            with np.errstate(invalid="ignore", divide="ignore"):
                return r["sd"](x) * np.sqrt((n - 1) / (n - ddof))

        def var(x, ddof=0):
            n = r["n"](x)
            with np.errstate(invalid="ignore", divide="ignore"):
                return r["var"](x) * (n - 1) / (n - ddof)

        self._grouped = {
            "mean": r["mean"], "sum": r["sum"], "median": r["median"], "min": r["min"],
            "max": r["max"], "amin": r["min"], "amax": r["max"], "std": std, "var": var,
            "nanmean": lambda x: r["mean"](x, na_rm=True),
            "nansum": lambda x: r["sum"](x, na_rm=True),
        }

    def __getattr__(self, name: str) -> Any:
        if name in self._grouped:
            return self._grouped[name]
        if name in self._CROSS_ROW:
            raise FormulaError(f"np.{name} is not available in expressions: it would mix the "
                               "rows of different simulations; use a callable on each dataset "
                               "or the grouped functions mean, sum, sd, var, median, min, max.")
        return getattr(np, name)


def _unknown_message(ctx: Context, expr: str, name: str) -> str:
    where = f"{ctx.label}: " if ctx.label else ""
    cols = ", ".join(map(str, ctx.columns)) or "(none)"
    return (f"{where}expression {expr!r} uses {name!r}, which is neither a column nor a "
            f"known function; available columns are: {cols}.")


def _bind_draw(draw: Callable, ctx: Context) -> Callable:
    def bound(*args, **kwargs):
        return draw(*args, **kwargs)._eval(ctx)
    return bound


# R's generators, so fabricatr code such as "rnorm(N, 0, 1)" runs unchanged.
_R_DRAWS = {"rnorm": "normal", "runif": "uniform", "rpois": "poisson", "rbinom": "binomial",
            "rexp": "exponential", "rlnorm": "lognormal", "rgamma": "gamma"}


def _bind_r_draw(draw: Callable, ctx: Context, r_name: str, expr: str) -> Callable:
    def bound(n, *args, **kwargs):
        values = draw(*args, **kwargs)._eval(ctx)
        n_arr = np.asarray(n)
        if n_arr.ndim == 1 and n_arr.shape[0] == ctx.n_rows:
            return values  # n = N: one draw per row
        sizes = np.bincount(ctx.group, minlength=ctx.n_groups)
        if n_arr.ndim == 0 and ctx.n_rows and np.all(sizes[sizes > 0] == n_arr):
            return values
        if n_arr.ndim == 0 and n_arr == 1:
            # One value recycled over the rows, as R recycles a length-1 vector.
            first = np.zeros(ctx.n_groups, dtype=np.int64)
            first[ctx.group[::-1]] = np.arange(ctx.n_rows)[::-1]
            return values[first][ctx.group]
        raise FormulaError(f"expression {expr!r}: {r_name}(n, ...) needs n = N (one draw "
                           f"per row) or 1; got {n!r}.")
    return bound


_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Call,
            ast.Name, ast.Load, ast.Constant, ast.Attribute, ast.Subscript, ast.Tuple,
            ast.List, ast.keyword, ast.IfExp, ast.Slice, ast.operator, ast.unaryop,
            ast.cmpop, ast.boolop)


_CALL = "_f_"


class _BoolOps(ast.NodeTransformer):
    # `a and b` on arrays raises in Python; R users mean elementwise `&`.
    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name):
            node.func = ast.Name(_CALL + node.func.id, ast.Load())
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        fn = "logical_and" if isinstance(node.op, ast.And) else "logical_or"
        out = node.values[0]
        for v in node.values[1:]:
            out = ast.Call(func=ast.Attribute(value=ast.Name("np", ast.Load()), attr=fn,
                                              ctx=ast.Load()), args=[out, v], keywords=[])
        return out

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return ast.Call(func=ast.Attribute(value=ast.Name("np", ast.Load()),
                                               attr="logical_not", ctx=ast.Load()),
                            args=[node.operand], keywords=[])
        return node


@functools.lru_cache(maxsize=1024)
def _compile(expr: str):
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        raise FormulaError(f"expression {expr!r} is not valid: {e.msg}.") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise FormulaError(
                f"expression {expr!r} uses {type(node).__name__}, which is not allowed in "
                f"expressions (use a callable for arbitrary code)."
            )
        if isinstance(node, ast.Attribute):
            base = node
            while isinstance(base, ast.Attribute):
                if base.attr.startswith("_") or base.attr == "random":
                    # np.random would use numpy's global RNG; draws take the step's rng.
                    raise FormulaError(f"expression {expr!r}: np.{base.attr} is not allowed "
                                       f"(use normal(), uniform()... for random draws).")
                base = base.value
            if not (isinstance(base, ast.Name) and base.id in ("np", "numpy")):
                raise FormulaError(f"expression {expr!r}: attribute access is allowed on "
                                   f"`np` only.")
        if isinstance(node, ast.Name) and node.id.startswith(("__", _CALL)):
            raise FormulaError(f"expression {expr!r}: name {node.id!r} is not allowed.")
    tree = ast.fix_missing_locations(_BoolOps().visit(tree))
    return compile(tree, "<expression>", "eval")


def _eval_string(expr: str, ctx: Context, label: str | None) -> Any:
    code = _compile(expr)
    names = _Names(ctx, expr)
    try:
        return eval(code, {"__builtins__": {}}, names)  # noqa: S307 - AST whitelisted
    except FormulaError:
        raise
    except NameError as e:  # names inside nested scopes
        name = str(e).split("'")[1]
        raise FormulaError(_unknown_message(ctx, expr, name.removeprefix(_CALL))) from e
    except Exception as e:
        where = f"{label}: " if label else ""
        raise FormulaError(f"{where}evaluating {expr!r} failed: {type(e).__name__}: {e}") \
            from e


# ------------------------------------------------------------------- callables
class ColumnView:
    """What a callable ``f(df)`` receives: the columns of the whole batch.

    Columns are available as ``df["x"]`` and ``df.x`` (1-D numpy arrays over all
    simulations stacked), ``df.N`` is the per-row size of the current level in its
    simulation, ``df.sim`` the simulation index of each row. Because the rows of
    many simulations are stacked, a callable must be elementwise; for reductions
    use the grouped helpers in ``df.by_sim`` (``df.by_sim.mean(df.x)`` is the mean of
    ``x`` within each simulation, repeated on its rows).

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign import Batch
    >>> from declaredesign._expr import evaluate
    >>> b = Batch({"x": np.array([1.0, 3.0, 10.0])}, sim=np.array([0, 0, 1]), n_sims=2)
    >>> evaluate(lambda df: df.x - df.by_sim.mean(df.x), b).tolist()
    [-1.0, 1.0, 0.0]
    """

    __slots__ = ("_ctx", "by_sim")

    def __init__(self, ctx: Context):
        object.__setattr__(self, "_ctx", ctx)
        object.__setattr__(self, "by_sim", _Reductions(ctx))

    def __getitem__(self, name: str) -> np.ndarray:
        ctx = self._ctx
        if name in ctx.columns:
            return ctx.columns[name]
        if name == "N":
            return ctx.N
        raise KeyError(_unknown_message(ctx, "<callable>", name))

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(e.args[0]) from None

    @property
    def sim(self) -> np.ndarray:
        return self._ctx.sim

    def __contains__(self, name: object) -> bool:
        return name in self._ctx.columns

    def keys(self):
        return self._ctx.columns.keys()

    def __len__(self) -> int:
        return self._ctx.n_rows


class _Reductions:
    __slots__ = tuple(REDUCTIONS)

    def __init__(self, ctx: Context):
        for k, f in _reducers(ctx).items():
            object.__setattr__(self, k, f)


# --------------------------------------------------------------------- evaluation
def _evaluate_in(expr: Any, ctx: Context, label: str | None) -> Any:
    if isinstance(expr, Lazy):
        return expr._eval(ctx)
    if isinstance(expr, str):
        return _eval_string(expr, ctx, label)
    if isinstance(expr, (numbers.Number, np.generic, np.ndarray)) or expr is None:
        return expr
    if isinstance(expr, (list, tuple)):
        return np.asarray(expr)
    if hasattr(expr, "to_numpy"):
        return expr.to_numpy()
    if callable(expr):
        return expr(ColumnView(ctx))
    raise FormulaError(
        f"{label + ': ' if label else ''}cannot evaluate a {type(expr).__name__}; expected "
        f"a number, an array, a string expression, a lazy draw or a callable."
    )


def _as_rows(value: Any, ctx: Context, what: str) -> np.ndarray:
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    arr = np.asarray(value)
    if arr.ndim == 0:
        return np.full(ctx.n_rows, arr[()])
    if arr.ndim == 1 and arr.shape[0] == ctx.n_rows:
        return arr
    raise FormulaError(
        f"{what} gives {arr.shape[0] if arr.ndim else 1} values; expected one per row "
        f"({ctx.n_rows}) or a single value."
    )


def evaluate(expr: Any, batch: Any = None, rng: np.random.Generator | None = None, *,
             n_rows: int | None = None, per_sim: bool = False,
             extra: Mapping[str, Any] | None = None, label: str | None = None,
             group: np.ndarray | None = None, n_groups: int | None = None) -> np.ndarray:
    """Evaluate an expression on every row of a batch (or once per simulation).

    Parameters
    ----------
    expr : scalar, array, str, Lazy or callable
        What to evaluate (see the module docstring). A callable sees the whole batch
        through a :class:`ColumnView` and must be elementwise.
    batch : Batch, optional
        The data. ``None`` means no columns and ``n_rows`` rows of one simulation.
    rng : numpy.random.Generator, optional
        Source of randomness for lazy draws.
    n_rows : int, optional
        Number of rows when ``batch`` is None.
    per_sim : bool, default False
        Return one value per simulation (length ``n_sims``; NaN for a simulation
        without rows). The expression must be constant within each simulation,
        as a reduction such as ``"mean(Y_Z_1 - Y_Z_0)"`` is.
    extra : mapping, optional
        Extra names (per-row arrays or scalars) that take precedence over columns;
        ``extra["N"]`` sets ``N``.
    label : str, optional
        Prefix of error messages (e.g. the step or variable being evaluated).
    group, n_groups : optional
        Group codes that reductions use instead of the simulation.

    Returns
    -------
    numpy.ndarray
        Length ``n_rows`` (or ``n_sims`` with ``per_sim``).

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign import Batch
    >>> b = Batch({"x": np.array([1.0, 3.0, 10.0])}, sim=np.array([0, 0, 1]), n_sims=2)
    >>> evaluate("x - mean(x)", b).tolist()
    [-1.0, 1.0, 0.0]
    >>> evaluate("mean(x)", b, per_sim=True).tolist()
    [2.0, 10.0]
    """
    if batch is None:
        n = int(n_rows or 0)
        columns: dict[str, Any] = {}
        sim = np.zeros(n, dtype=np.int64)
        n_sims = 1
    else:
        columns, sim, n_sims = batch.columns, batch.sim, batch.n_sims
    N = None
    if extra:
        columns = {**columns, **{k: v for k, v in extra.items() if k != "N"}}
        N = extra.get("N")
    if N is None and "N" in columns:
        N = columns["N"]
    ctx = Context(columns, sim, n_sims, rng, N=N, group=group, n_groups=n_groups,
                  label=label)
    what = label or (repr(expr) if isinstance(expr, str) else _short_repr(expr))
    out = _as_rows(_evaluate_in(expr, ctx, label), ctx, what)
    if not per_sim:
        return out
    return _one_per_sim(out, ctx, what)


def _one_per_sim(out: np.ndarray, ctx: Context, what: str) -> np.ndarray:
    counts = np.bincount(ctx.sim, minlength=ctx.n_sims)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    has = counts > 0
    first = out[np.minimum(starts, max(ctx.n_rows - 1, 0))] if ctx.n_rows else \
        np.zeros(ctx.n_sims)
    if out.dtype.kind in "fiub":
        vals = out.astype(np.float64)
        f = first.astype(np.float64)
        same = (vals == f[ctx.sim]) | (np.isnan(vals) & np.isnan(f[ctx.sim]))
        if not np.all(same):
            raise FormulaError(
                f"{what} does not reduce to one value per simulation; wrap it in a "
                f"reduction such as mean(...)."
            )
        return np.where(has, f, np.nan)
    res = np.empty(ctx.n_sims, dtype=object)
    res[has] = first[has]
    return res
