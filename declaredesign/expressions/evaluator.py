"""Evaluate expressions on a batch: strings, lazy draws, callables, constants.

One evaluator serves ``fabricate`` (variables of a level), inquiries
(``ate="mean(Y_Z_1 - Y_Z_0)"``), potential outcomes, measurement, sampling filters and
estimators' ``subset=``. An expression is one of

* a scalar, broadcast to every row;
* an array with one value per row;
* a string in the expression language (see :mod:`declaredesign.expressions`), e.g.
  ``"student_baseline + (1 + Z) * class_effect"``, read by :mod:`.parser` and
  interpreted here node by node: no Python ``eval``;
* a lazy node (:class:`Lazy`), e.g. ``normal(mean=0, sd=1)`` or ``poisson(20) + 5``;
* a callable ``f(df)`` receiving a :class:`ColumnView` (the escape hatch for
  arbitrary code, which lives in the user's own Python file).

Reductions are grouped by simulation and broadcast back to the rows (see
:mod:`.functions`).
"""

from __future__ import annotations

import ast
import numbers
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import FormulaError
from . import functions as fn
from .parser import parse_expression

__all__ = ["ColumnView", "Context", "Lazy", "evaluate", "evaluate_mask", "is_function",
           "needs_data", "short_repr"]


# --------------------------------------------------------------------------- context
class Context:
    """Where an expression is evaluated: columns, row -> sim map, group codes, rng.

    ``group`` is what reductions group by (the simulation by default, the
    (sim, by) cells inside ``modify_level(by=...)``).
    """

    __slots__ = ("columns", "sim", "n_sims", "n_rows", "_rng", "group", "n_groups",
                 "_N", "label")

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
        self._N = N
        self.label = label

    @property
    def N(self) -> np.ndarray:
        """Rows in each row's group (``N`` in expressions), counted when first read.

        Most expressions never read ``N``: counting it for every evaluation was two passes
        over the rows each time.
        """
        if self._N is None:
            group = self.group
            self._N = np.bincount(group, minlength=self.n_groups)[group] if self.n_rows else \
                np.zeros(0, dtype=np.int64)
        return self._N

    @property
    def rng(self) -> np.random.Generator:
        """The step's generator (a fresh unseeded one for standalone calls only)."""
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

        Returns
        -------
        numpy.ndarray
            ``N`` values.

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
        return any(needs_data(i) for i in self.inputs)

    def _eval(self, ctx):
        return self.ufunc(*(ctx.value(i) for i in self.inputs))

    def __repr__(self):
        parts = [short_repr(i, nested=True) for i in self.inputs]
        op = _OPS.get(self.ufunc)
        if op is not None and len(parts) == 2:
            return f"{parts[0]} {op} {parts[1]}"
        if self.ufunc is np.negative:
            return f"-{parts[0]}"
        return f"np.{self.ufunc.__name__}({', '.join(parts)})"


def needs_data(x: Any) -> bool:
    """Whether ``x`` must be evaluated on data (a string, lazy node or callable)."""
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


def short_repr(v: Any, nested: bool = False) -> str:
    """Return a short readable form of an expression value (for reprs and messages)."""
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


# ----------------------------------------------------------------- interpreter
def is_function(name: str) -> bool:
    """Whether ``name`` is a function of the expression language."""
    return name in fn.FUNCTIONS


#: Kinds of functions whose value in a simulation is computed from its rows alone, the
#: same whatever the other simulations hold. Not "within": cumsum accumulates over the
#: whole batch; not "vector": whether a constant vector reads as a column depends on the
#: batch's number of rows; not "random".
_SIMULATION_LOCAL_KINDS = frozenset({"elementwise", "reduction"})


def is_simulation_local(expr: Any) -> bool:
    """Whether an expression computes each simulation from that simulation's rows alone.

    Such an expression gives, on identical simulations, the value it gives on one of
    them alone, bit for bit: elementwise arithmetic, comparisons, logical subsets and
    grouped reductions (``mean(Y)``, ``sd(Y[X == 1])``) do. Random draws, within-
    simulation transforms (``cumsum``, ``scale``, ``rank``, ``rep``), constant vectors
    (``c()``, ``seq()``, ``a:b``, lists), callables and lazy draws do not qualify.

    Parameters
    ----------
    expr : object
        A string expression or a number (other values never qualify).

    Returns
    -------
    bool

    Examples
    --------
    >>> is_simulation_local("mean(Y[X == 1]) - 1"), is_simulation_local("sum(rnorm(N))")
    (True, False)
    """
    if isinstance(expr, (int, float)) and not isinstance(expr, bool):
        return True
    if not isinstance(expr, str):
        return False
    try:
        tree = parse_expression(expr, is_function)
    except FormulaError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
            return False
        if isinstance(node, ast.Call):
            func = node.func
            spec = fn.NUMPY.get(func.attr) if isinstance(func, ast.Attribute) else \
                fn.FUNCTIONS.get(getattr(func, "id", ""))
            if spec is None or spec.kind not in _SIMULATION_LOCAL_KINDS:
                return False
    return True


def _operand(x: Any) -> Any:
    # A list of columns becomes a 2-D array (or fails), never Python list arithmetic.
    return fn._logical_to_int(np.asarray(x) if isinstance(x, (list, tuple)) else x)


def _arith(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def f(a, b):
        return op(_operand(a), _operand(b))
    return f


_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: _arith(operator.add), ast.Sub: _arith(operator.sub),
    ast.Mult: _arith(fn.multiply), ast.Div: _arith(operator.truediv),
    ast.FloorDiv: _arith(operator.floordiv), ast.Mod: _arith(operator.mod),
    ast.Pow: _arith(fn.power), ast.MatMult: fn._isin,
    ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
}

_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: fn._isin,
    ast.NotIn: lambda a, b: np.logical_not(fn._isin(a, b)),
}

_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.USub: lambda a: -fn._logical_to_int(a), ast.UAdd: lambda a: +fn._logical_to_int(a),
    ast.Not: np.logical_not, ast.Invert: operator.invert,
}


#: Arithmetic that may write into an operand the interpreter itself just made.
_IN_PLACE: dict[type, np.ufunc] = {ast.Add: np.add, ast.Sub: np.subtract,
                                   ast.Mult: np.multiply, ast.Div: np.true_divide}


def _scratch(node: ast.AST, value: Any, other: Any) -> np.ndarray | None:
    """Return ``value`` when an arithmetic result may overwrite it, else None.

    The result of an operator node (``a + b``, ``-a``) is a fresh array nothing else
    refers to, so ``(a + b) * c`` can write into it as Python's own evaluation of numpy
    expressions does (numpy elides such temporaries only when called from Python code
    directly): one array fewer allocated and filled per operator, the same values. Only
    float arrays whose dtype and shape the result keeps qualify.
    """
    if not isinstance(node, (ast.BinOp, ast.UnaryOp)) or type(value) is not np.ndarray \
            or value.dtype.kind not in "fc":
        return None
    if type(other) is np.ndarray:
        if other.shape != value.shape or other.dtype.kind not in "iuf":
            return None
    elif not isinstance(other, (int, float, np.integer, np.floating)) or \
            isinstance(other, (bool, np.bool_)):
        return None
    return value if np.result_type(value, other) == value.dtype else None


def _is_scalar(v: Any) -> bool:
    return not isinstance(v, fn.Masked) and np.ndim(v) == 0


class _Interpreter:
    """Walks a checked tree (see :mod:`.parser`), evaluating each node on a context."""

    def __init__(self, ctx: Context, expr: str):
        self.ctx = ctx
        self.expr = expr

    def run(self, node: ast.AST) -> Any:
        return getattr(self, "_" + type(node).__name__)(node)

    def _Expression(self, node):
        return self.run(node.body)

    def _Constant(self, node):
        return node.value

    def _Name(self, node):
        name, ctx = node.id, self.ctx
        if name in ctx.columns:
            return ctx.columns[name]
        if name == "N":
            return ctx.N
        if name in fn.CONSTANTS:
            return fn.CONSTANTS[name]
        if name in fn.FUNCTIONS:
            raise FormulaError(f"expression {self.expr!r}: the function {name!r} must be "
                               f"called, e.g. {name}(x).")
        raise FormulaError(_unknown_message(ctx, self.expr, name))

    def _Attribute(self, node):
        if node.attr in fn.NUMPY_CONSTANTS:
            return fn.NUMPY_CONSTANTS[node.attr]
        raise FormulaError(f"expression {self.expr!r}: np.{node.attr} must be called.")

    def _BinOp(self, node):
        left, right = self.run(node.left), self.run(node.right)
        ufunc = _IN_PLACE.get(type(node.op))
        if ufunc is not None:
            left, right = _operand(left), _operand(right)
            out = _scratch(node.left, left, right)
            if out is None:
                out = _scratch(node.right, right, left)
            if out is not None:
                return ufunc(left, right, out=out)
        return fn.elementwise(_BINARY[type(node.op)], [left, right], {}, self.expr)

    def _UnaryOp(self, node):
        return fn.elementwise(_UNARY[type(node.op)], [self.run(node.operand)], {}, self.expr)

    def _BoolOp(self, node):
        # `a and b` on arrays raises in Python; R users mean elementwise `&`.
        f = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        out = self.run(node.values[0])
        for v in node.values[1:]:
            out = fn.elementwise(f, [out, self.run(v)], {}, self.expr)
        return out

    def _Compare(self, node):
        left = self.run(node.left)
        out = None
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = self.run(comp)
            step = fn.elementwise(_COMPARE[type(op)], [left, right], {}, self.expr)
            out = step if out is None else \
                fn.elementwise(np.logical_and, [out, step], {}, self.expr)
            left = right
        return out

    def _IfExp(self, node):
        test = self.run(node.test)
        if _is_scalar(test):
            return self.run(node.body if bool(test) else node.orelse)
        yes, no = self.run(node.body), self.run(node.orelse)
        return fn.elementwise(np.where, [test, yes, no], {}, self.expr)

    def _List(self, node):
        items = [self.run(e) for e in node.elts]
        if not all(_is_scalar(v) for v in items):
            raise FormulaError(f"expression {self.expr!r}: a list [...] or tuple holds "
                               "constants (numbers or strings), not columns.")
        return np.asarray(items)

    _Tuple = _List

    def _Subscript(self, node):
        value, index = self.run(node.value), self.run(node.slice)
        if _is_vector(node.value, value, self.ctx):
            return fn.vector_index(np.asarray(value), index)
        return _mask(self.ctx, self.expr, value, index)

    def per_group(self, node: ast.AST) -> tuple[Any, bool]:
        """Evaluate ``node``; a grouped reduction (``mean(...)``) gives one value per group.

        Returns ``(value, grouped)``: ``grouped`` says the value has one entry per group
        (not repeated on the rows of its group); any other expression runs as :meth:`run`.
        """
        impl = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            impl = getattr(fn.FUNCTIONS[node.func.id].impl, "per_group", None)
        if impl is None:
            return self.run(node), False
        args = [self.run(a) for a in node.args]
        kwargs = {k.arg: self.run(k.value) for k in node.keywords}
        out = impl(self.ctx, *args, **kwargs)
        return (np.full(self.ctx.n_groups, out) if np.ndim(out) == 0 else out), True

    def _Call(self, node):
        if isinstance(node.func, ast.Attribute):
            spec = fn.NUMPY[node.func.attr]
        else:
            spec = fn.FUNCTIONS[node.func.id]
        args = [self.run(a) for a in node.args]
        kwargs = {k.arg: self.run(k.value) for k in node.keywords}
        return spec.impl(self.ctx, *args, **kwargs)


def _is_vector(node: ast.AST, value: Any, ctx: Context) -> bool:
    """Whether ``value[...]`` indexes a constant vector (R: ``c(0.3, 0.7)[type]``)."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id in ("c", "seq"):
        return True
    return isinstance(value, np.ndarray) and value.ndim == 1 and value.shape[0] != ctx.n_rows


def _mask(ctx: Context, expr: str, value: Any, mask: Any) -> fn.Masked:
    """``value[mask]``: the rows where a logical mask is true, still labelled by sim."""
    m = np.asarray(mask.values if isinstance(mask, fn.Masked) else mask)
    if isinstance(value, fn.Masked) or isinstance(mask, fn.Masked) or m.dtype != bool or \
            m.shape != (ctx.n_rows,):
        raise FormulaError(f"expression {expr!r}: a subscript must be a logical condition "
                           f"on the rows, such as x[g == 1] (one TRUE/FALSE per row).")
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(ctx.n_rows, arr[()])
    if arr.shape != (ctx.n_rows,):
        raise FormulaError(f"expression {expr!r}: only whole columns can be subset with a "
                           "logical mask.")
    rows = np.flatnonzero(m)
    return fn.Masked(rows, arr[rows])


def _unknown_message(ctx: Context, expr: str, name: str) -> str:
    where = f"{ctx.label}: " if ctx.label else ""
    cols = ", ".join(map(str, ctx.columns)) or "(none)"
    return (f"{where}expression {expr!r} uses {name!r}, which is neither a column nor a "
            f"known function; available columns are: {cols}.")


def _eval_string(expr: str, ctx: Context, label: str | None, per_group: bool = False
                 ) -> Any:
    """Evaluate a string on the rows.

    With ``per_group``, return ``(value, grouped)`` (see :meth:`_Interpreter.per_group`).
    """
    tree = parse_expression(expr, is_function)
    where = f"{label}: " if label else ""
    grouped = False
    try:
        interpreter = _Interpreter(ctx, expr)
        if per_group:
            out, grouped = interpreter.per_group(tree.body)
        else:
            out = interpreter.run(tree)
    except FormulaError as e:
        msg = str(e)
        if repr(expr) in msg:
            raise
        raise FormulaError(f"{where}expression {expr!r}: {msg}") from e
    except Exception as e:
        raise FormulaError(f"{where}evaluating {expr!r} failed: {type(e).__name__}: {e}") \
            from e
    if isinstance(out, fn.Masked):
        raise FormulaError(f"{where}expression {expr!r} selects rows with a logical "
                           "subscript but does not reduce them; wrap it in a reduction such "
                           "as mean(...) or sum(...).")
    return (out, grouped) if per_group else out


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
    >>> from declaredesign.expressions import evaluate
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
        """The simulation index of each row."""
        return self._ctx.sim

    def __contains__(self, name: object) -> bool:
        return name in self._ctx.columns

    def keys(self):
        """Return the column names."""
        return self._ctx.columns.keys()

    def __len__(self) -> int:
        return self._ctx.n_rows


REDUCTIONS = ("mean", "sum", "sd", "var", "median", "min", "max", "n", "length")


class _Reductions:
    __slots__ = REDUCTIONS

    def __init__(self, ctx: Context):
        for k, f in fn.reducers(ctx).items():
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
    what = label or (repr(expr) if isinstance(expr, str) else short_repr(expr))
    if per_sim and isinstance(expr, str) and group is None:
        return _per_sim_string(expr, ctx, label, what)
    out = _as_rows(_evaluate_in(expr, ctx, label), ctx, what)
    if not per_sim:
        return out
    return _one_per_sim(out, ctx, what)


def _per_sim_string(expr: str, ctx: Context, label: str | None, what: str) -> np.ndarray:
    """One value per simulation of a string expression (groups are the simulations).

    A top-level reduction (``mean(Y_Z_1 - Y_Z_0)``, the usual inquiry) gives its value per
    simulation directly, instead of repeating it on every row and checking it back: the
    same numbers, several passes over the rows fewer.
    """
    out, grouped = _eval_string(expr, ctx, label, per_group=True)
    if not grouped:
        return _one_per_sim(_as_rows(out, ctx, what), ctx, what)
    if out.dtype.kind not in "fiub":
        return _one_per_sim(out[ctx.sim], ctx, what)
    # rows come simulation by simulation: a simulation without rows gets NaN
    has = np.diff(np.searchsorted(ctx.sim, np.arange(ctx.n_sims + 1))) > 0
    return np.where(has, out.astype(np.float64), np.nan)


def evaluate_mask(expr: str, columns: Mapping[str, Any], n_rows: int, *,
                  label: str | None = None) -> np.ndarray:
    """Evaluate a logical expression (e.g. an estimator's ``subset=``) on plain columns.

    Parameters
    ----------
    expr : str
        A condition in the expression language, e.g. ``"X == 1 & Z > 0"``.
    columns : mapping of str to array_like
        The data's columns (treated as one dataset).
    n_rows : int
        Number of rows.
    label : str, optional
        Prefix of error messages.

    Returns
    -------
    numpy.ndarray of bool
        One value per row.

    Examples
    --------
    >>> import numpy as np
    >>> evaluate_mask("x > 1 & g == 'a'", {"x": np.array([1, 2, 3]),
    ...                                    "g": np.array(["a", "a", "b"])}, 3).tolist()
    [False, True, False]
    """
    cols = {str(k): np.asarray(v) for k, v in columns.items()}
    sim = np.zeros(int(n_rows), dtype=np.int64)
    ctx = Context(cols, sim, 1, None, N=cols.get("N"), label=label)
    what = label or repr(expr)
    return np.asarray(_as_rows(_evaluate_in(expr, ctx, label), ctx, what), dtype=bool)


def _one_per_sim(out: np.ndarray, ctx: Context, what: str) -> np.ndarray:
    counts = np.bincount(ctx.sim, minlength=ctx.n_sims)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    has = counts > 0
    first = out[np.minimum(starts, max(ctx.n_rows - 1, 0))] if ctx.n_rows else \
        np.zeros(ctx.n_sims)
    if out.dtype.kind in "fiub":
        vals = np.asarray(out, dtype=np.float64)
        f = first.astype(np.float64)
        ref = f[ctx.sim]
        same = vals == ref
        # NaN equals NaN here; only rows that differ need the (rare) NaN test
        if not same.all() and not (np.isnan(vals[~same]).all() and np.isnan(ref[~same]).all()):
            raise FormulaError(
                f"{what} does not reduce to one value per simulation; wrap it in a "
                f"reduction such as mean(...)."
            )
        return np.where(has, f, np.nan)
    res = np.empty(ctx.n_sims, dtype=object)
    res[has] = first[has]
    return res
