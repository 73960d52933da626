"""The one formula parser: outcomes, right-hand side, random-effect bars, instruments.

Every formula the library reads (estimators, their batched kernels, the per-simulation
fallback and the check a design makes when steps are added) goes through
:func:`parse_formula`, so they cannot disagree about what a formula means:

* the left-hand side: one outcome (``y``, or an expression such as ``np.log(y)``) or
  several bound with ``cbind(y1, y2)``;
* the right-hand side, with the terms that are not ordinary fixed effects cut out:
  random-effect bars ``(expr | group)`` (lme4: ``||`` for uncorrelated terms, ``a/b``
  for nesting, ``a:b`` for an interaction grouping factor) and, after one top-level
  ``|``, the instruments of an instrumental-variables formula (``y ~ x | z``).

What remains of the right-hand side is an ordinary formulaic formula; the data columns
each side reads are found by formulaic (:meth:`Formula.variables`), names of functions
(``np.log``, ``I``) excluded. :func:`formula_columns` gives every column a formula
needs, for checks made before any data exist.

Examples
--------
>>> f = parse_formula("cbind(y1, y2) ~ x + (1 + x || g)")
>>> f.outcomes, f.rhs, [(b.expr, b.group_name) for b in f.random_effects]
(('y1', 'y2'), 'x', [('1', 'g'), ('0 + x', 'g')])
>>> parse_formula("y ~ x + w | z + w").instruments
'z + w'
>>> sorted(formula_columns("y ~ np.log(x) + (1 | school/class)"))
['class', 'school', 'x', 'y']
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import lru_cache

import formulaic
import numpy as np
from formulaic.errors import FormulaicError

from .errors import FormulaError

__all__ = ["R_FUNCTIONS", "Formula", "RandomEffect", "formula_columns", "formulaic_formula",
           "parse_formula", "r_label", "split_terms", "split_top_level", "strip_outer",
           "to_formulaic", "variables"]

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
_CBIND = re.compile(r"^cbind\((?P<ys>[^()]*)\)$", re.S)


@dataclass(frozen=True)
class RandomEffect:
    """One random-effect term ``(expr | group)`` after expansion.

    Attributes
    ----------
    expr : str
        The formulaic right-hand side of the term's model matrix (``"1"``, ``"0 + x"``).
    group : tuple of str
        Column names whose interaction forms the grouping factor (``a:b`` gives
        ``("a", "b")``).
    """

    expr: str
    group: tuple[str, ...]

    @property
    def group_name(self) -> str:
        """The grouping factor's name as lme4 prints it (``a:b``)."""
        return ":".join(self.group)


@dataclass(frozen=True)
class Formula:
    """A parsed formula.

    Attributes
    ----------
    text : str
        The formula as given.
    lhs : str
        The left-hand side as written (``"y"``, ``"cbind(y1, y2)"``).
    outcomes : tuple of str
        The outcome(s): the names inside ``cbind()``, else the left-hand side.
    rhs : str
        The fixed-effect right-hand side (bars and instruments removed; ``"1"`` when
        nothing else is left of a formula with bars).
    instruments : str or None
        The instruments after one top-level ``|`` (None without one).
    random_effects : tuple of RandomEffect
        The expanded random-effect bars (empty without any).
    """

    text: str
    lhs: str
    outcomes: tuple[str, ...]
    rhs: str
    instruments: str | None = None
    random_effects: tuple[RandomEffect, ...] = ()

    @property
    def outcome(self) -> str | None:
        """The single outcome when it is a plain name, else None."""
        if len(self.outcomes) != 1:
            return None
        return self.outcomes[0] if self.outcomes[0].isidentifier() else None

    @property
    def is_multi_outcome(self) -> bool:
        """Whether the left-hand side binds several outcomes with ``cbind()``."""
        return bool(_CBIND.match(self.lhs))

    @property
    def fixed_formula(self) -> str:
        """``lhs ~ rhs``: the part formulaic reads (fixed effects, no instruments)."""
        return f"{self.lhs} ~ {self.rhs}"

    @property
    def instrument_formula(self) -> str | None:
        """``lhs ~ instruments`` of an instrumental-variables formula, else None."""
        return None if self.instruments is None else f"{self.lhs} ~ {self.instruments}"

    def with_rhs(self, rhs: str) -> str:
        """Return the formula text with another right-hand side (``lhs ~ rhs``)."""
        return f"{self.lhs} ~ {rhs}"

    def variables(self) -> tuple[list[str], list[str]]:
        """Return data columns read by the left- and the (fixed) right-hand side, sorted."""
        lhs = sorted(set(self.outcomes)) if self.is_multi_outcome else \
            variables(self.fixed_formula)[0]
        return lhs, variables(self.fixed_formula)[1]

    def columns(self) -> set[str]:
        """Every data column the formula needs (outcomes, terms, instruments, groups)."""
        lhs, rhs = self.variables()
        cols = {*lhs, *rhs}
        if self.instruments is not None:
            cols |= set(variables(f"{self.lhs} ~ {self.instruments}")[1])
        for b in self.random_effects:
            cols |= set(b.group)
            if b.expr.strip() not in ("0", "1"):
                cols |= set(variables(f"{self.lhs} ~ {b.expr}")[1])
        return cols


# ------------------------------------------------------------------------ splitting
def split_top_level(text: str, sep: str, *, func: str = "formula") -> list[str]:
    """Split ``text`` on the character ``sep`` at parenthesis depth zero."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"{func}(formula=...): unbalanced parentheses in {text!r}.")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise FormulaError(f"{func}(formula=...): unbalanced parentheses in {text!r}.")
    parts.append("".join(cur))
    return parts


def split_terms(rhs: str) -> list[tuple[str, str]]:
    """Split a right-hand side into ``(sign, term)`` pairs at depth-zero ``+`` and ``-``."""
    out, depth, cur, sign = [], 0, [], "+"
    for ch in rhs:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch in "+-" and depth == 0:
            if "".join(cur).strip():
                out.append((sign, "".join(cur).strip()))
            cur, sign = [], ch
            continue
        cur.append(ch)
    if "".join(cur).strip():
        out.append((sign, "".join(cur).strip()))
    return out


def strip_outer(term: str) -> str | None:
    """Return the inside of ``( ... )`` when the parentheses wrap the whole term, else None."""
    t = term.strip()
    if not (t.startswith("(") and t.endswith(")")):
        return None
    depth = 0
    for i, ch in enumerate(t):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(t) - 1:
            return None
    return t[1:-1]


def _group_names(text: str, formula: str, func: str) -> list[tuple[str, ...]]:
    """Expand a grouping expression: ``a/b`` -> ``a``, ``a:b``; ``a:b`` stays one factor."""
    text = text.strip()
    if not text:
        raise FormulaError(f"{func}(formula={formula!r}): a random-effect term has no "
                           "grouping factor after '|'.")
    nest = [p.strip() for p in text.split("/")]
    groups, prefix = [], []
    for part in nest:
        names = tuple(s.strip() for s in part.split(":"))
        if not all(_NAME.match(n) for n in names):
            raise FormulaError(f"{func}(formula={formula!r}): cannot read the grouping "
                               f"factor {text!r}.")
        prefix = [*prefix, *names]
        # lme4 names the nested factor inner-first: (1 | a/b) gives "b:a".
        groups.append(tuple(reversed(prefix)) if len(nest) > 1 else tuple(prefix))
    return groups


def _intercept_removed(expr: str) -> bool:
    terms = split_terms(expr)
    return any(t == "0" and s == "+" for s, t in terms) or \
        any(t == "1" and s == "-" for s, t in terms)


def _bar_terms(term: str, inner: str, formula: str, func: str) -> list[RandomEffect]:
    """Return the expanded random effects of one ``(expr | group)`` term."""
    double = "||" in inner
    pieces = inner.split("||") if double else split_top_level(inner, "|", func=func)
    if len(pieces) != 2:
        raise FormulaError(f"{func}(formula={formula!r}): cannot read the random-effect "
                           f"term {term!r}.")
    expr = pieces[0].strip()
    if not expr:
        raise FormulaError(f"{func}(formula={formula!r}): the random-effect term {term!r} "
                           "has nothing before '|'.")
    if double:
        # lme4's expandDoubleVerts: an intercept term plus one term per variable, each
        # without intercept, so no correlations are estimated.
        parts = [t for s, t in split_terms(expr) if s == "+" and t not in ("0", "1")]
        exprs = ([] if _intercept_removed(expr) else ["1"]) + [f"0 + {t}" for t in parts]
    else:
        exprs = [expr]
    return [RandomEffect(expr=e, group=g) for g in _group_names(pieces[1], formula, func)
            for e in exprs]


def _split_bars(rhs: str, formula: str, func: str
                ) -> tuple[str, tuple[RandomEffect, ...]]:
    """Cut the random-effect bars out of a right-hand side."""
    if "|" not in rhs:
        return rhs.strip(), ()
    fixed: list[str] = []
    bars: list[RandomEffect] = []
    for sign, term in split_terms(rhs):
        inner = strip_outer(term)
        if inner is None or "|" not in inner:
            fixed.append(term if sign == "+" else f"- {term}")
            continue
        if sign == "-":
            raise FormulaError(f"{func}(formula={formula!r}): a random-effect term cannot "
                               "be subtracted.")
        bars.extend(_bar_terms(term, inner, formula, func))
    if not bars:
        return rhs.strip(), ()
    return (" + ".join(fixed).replace("+ -", "-") if fixed else "1"), tuple(bars)


# --------------------------------------------------------------------------- parsing
def parse_formula(formula: str, *, func: str = "formula") -> Formula:
    """Parse a formula string into its parts (see the module docstring).

    Parameters
    ----------
    formula : str
        ``"lhs ~ rhs"``, with optional ``cbind()`` outcomes, ``(expr | group)`` bars and
        one top-level ``| instruments``.
    func : str
        The function named in error messages.

    Returns
    -------
    Formula

    Raises
    ------
    FormulaError
        When ``formula`` is not a string with ``~`` and a left-hand side, or its
        parentheses or bars cannot be read.

    Examples
    --------
    >>> f = parse_formula("y ~ x + (1 | a/b)")
    >>> f.outcome, f.rhs, [b.group_name for b in f.random_effects]
    ('y', 'x', ['a', 'b:a'])
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise FormulaError(f"{func}(formula={formula!r}): formula must be a string like "
                           f"'y ~ x'; got {formula!r}.")
    return _parse(formula, func)


@lru_cache(maxsize=512)
def _parse(formula: str, func: str) -> Formula:
    # designs parse the same few formulas thousands of times; results are immutable
    lhs, _, rhs = formula.partition("~")
    lhs = lhs.strip()
    if not lhs:
        raise FormulaError(f"{func}(formula={formula!r}): the formula has no outcome "
                           "(left of '~').")
    if not rhs.strip():
        raise FormulaError(f"{func}(formula={formula!r}): the formula has no right-hand "
                           "side; write 'y ~ 1' for an intercept-only model.")
    m = _CBIND.match(lhs)
    outcomes = tuple(v.strip() for v in m.group("ys").split(",")) if m else (lhs,)
    top = split_top_level(rhs, "|", func=func)
    instruments = None
    if len(top) == 2 and "||" not in rhs:
        rhs, instruments = top[0], top[1].strip()
    fixed, bars = _split_bars(rhs, formula, func)
    return Formula(text=formula, lhs=lhs, outcomes=outcomes, rhs=fixed,
                   instruments=instruments, random_effects=bars)


# ------------------------------------------------------------- R spellings
#: Functions (and R's ``TRUE``/``FALSE``) of R's formula language that formulaic lacks,
#: given to it as context when the model matrix is built. formulaic has ``log``, ``exp``,
#: ``scale`` (divisor n - 1, as R), ``center`` and ``I``; the model frame gives its own
#: ``poly`` (R's orthogonal polynomials and column names).
R_FUNCTIONS = {"sqrt": np.sqrt, "abs": np.abs, "log1p": np.log1p, "expm1": np.expm1,
               "log2": np.log2, "log10": np.log10, "TRUE": True, "FALSE": False}

_FACTOR_CALL = re.compile(r"(?<![\w.])(as\.factor|factor)\s*\(")


def _as_factor_inners(text: str) -> frozenset[str]:
    """Return the (deparsed) arguments of the ``as.factor(...)`` calls in ``text``."""
    out = set()
    for m in _FACTOR_CALL.finditer(text):
        if m.group(1) != "as.factor":
            continue
        depth, start = 0, m.end() - 1
        for i in range(start, len(text)):
            depth += (text[i] == "(") - (text[i] == ")")
            if depth == 0:
                out.add(_deparse_text(text[start + 1:i]))
                break
    return frozenset(out)


@lru_cache(maxsize=512)
def to_formulaic(text: str) -> tuple[str, frozenset[str]]:
    """Translate R spellings in a formula to formulaic's, in this one place.

    ``factor(x)`` and ``as.factor(x)`` become ``C(x)`` (a categorical with treatment
    contrasts); ``^`` inside a function call (``I(x^2)``, ``log(x^2)``) is R's power and
    becomes ``**`` (a ``^`` between terms, ``(a + b)^2``, stays the formula operator).

    Returns the translated text and the inner expressions spelled ``as.factor``, so the
    terms can be named back as R names them (:func:`r_label`).

    Examples
    --------
    >>> to_formulaic("y ~ factor(Z) * I(x^2) + (a + b)^2")
    ('y ~ C(Z) * I(x**2) + (a + b)^2', frozenset())
    """
    as_factor = _as_factor_inners(text)
    text = _FACTOR_CALL.sub("C(", text)
    out: list[str] = []
    calls: list[bool] = []   # for each open parenthesis: is it a function call's?
    for i, ch in enumerate(text):
        if ch == "(":
            before = text[:i].rstrip()
            calls.append(bool(before) and (before[-1].isalnum() or before[-1] in "._"))
        elif ch == ")" and calls:
            calls.pop()
        out.append("**" if ch == "^" and any(calls) else ch)
    return "".join(out), as_factor


# R's deparse: operator text and precedence (higher binds tighter)
_BINARY = {ast.Add: (" + ", 10), ast.Sub: (" - ", 10), ast.Mult: (" * ", 11),
           ast.Div: (" / ", 11), ast.Mod: (" %% ", 11), ast.FloorDiv: (" %/% ", 11),
           ast.Pow: ("^", 14)}
_COMPARE = {ast.Eq: " == ", ast.NotEq: " != ", ast.Lt: " < ", ast.LtE: " <= ",
            ast.Gt: " > ", ast.GtE: " >= "}


def _deparse_constant(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    return repr(value)


def _deparse(node: ast.AST, prec: int = 0) -> str:
    """Write a Python expression node as R's ``deparse`` writes the same expression."""
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op, p = _BINARY[type(node.op)]
        right_assoc = isinstance(node.op, ast.Pow)
        text = (_deparse(node.left, p + right_assoc) + op +
                _deparse(node.right, p + (not right_assoc)))
        return f"({text})" if p < prec else text
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        text = ("-" if isinstance(node.op, ast.USub) else "+") + _deparse(node.operand, 13)
        return f"({text})" if 13 < prec else text
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        text = (_deparse(node.left, 9) + _COMPARE[type(node.ops[0])] +
                _deparse(node.comparators[0], 9))
        return f"({text})" if 8 < prec else text
    if isinstance(node, ast.Call):
        args = [_deparse(a) for a in node.args]
        args += [f"{k.arg} = {_deparse(k.value)}" for k in node.keywords]
        return f"{_deparse(node.func, 15)}({', '.join(args)})"
    if isinstance(node, ast.Constant):
        return _deparse_constant(node.value)
    if isinstance(node, ast.List):
        return f"c({', '.join(_deparse(e) for e in node.elts)})"
    return ast.unparse(node)


def _deparse_text(code: str) -> str:
    try:
        return _deparse(ast.parse(code.strip(), mode="eval").body)
    except SyntaxError:
        return code.strip()


@lru_cache(maxsize=1024)
def r_label(code: str, as_factor: frozenset[str] = frozenset()) -> str:
    """Name a formulaic factor (``C(Z)``, ``I(x ** 2)``, ``poly(x, 2)``) as R names it.

    ``as_factor`` holds the arguments the user spelled ``as.factor(...)``.

    Examples
    --------
    >>> r_label("C(Z)"), r_label("I(x ** 2)"), r_label("poly(x,2)")
    ('factor(Z)', 'I(x^2)', 'poly(x, 2)')
    """
    try:
        node = ast.parse(code.strip(), mode="eval").body
    except SyntaxError:
        return code
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == "C" and len(node.args) == 1 and not node.keywords:
        inner = _deparse(node.args[0])
        return f"{'as.factor' if inner in as_factor else 'factor'}({inner})"
    return _deparse(node)


def formulaic_formula(formula: str) -> formulaic.Formula:
    """Return the formulaic parse of an ordinary formula (cached; errors as FormulaError).

    R spellings are translated first (:func:`to_formulaic`).
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise FormulaError(
            f"model_frame(formula={formula!r}): formula must be a string like 'y ~ x'; "
            f"got {formula!r}.")
    if not formula.partition("~")[2].strip():
        raise FormulaError(
            f"model_frame(formula={formula!r}): the formula has no right-hand side; write "
            "'y ~ 1' for an intercept-only model.")
    return _formulaic(formula)


@lru_cache(maxsize=256)
def _formulaic(formula: str) -> formulaic.Formula:
    # Parsing costs milliseconds; designs call the same formula thousands of times.
    try:
        return formulaic.Formula(to_formulaic(formula)[0])
    except FormulaicError as e:
        raise FormulaError(f"Could not parse formula {formula!r}: {e}") from e


def variables(formula: str) -> tuple[list[str], list[str]]:
    """Return the data variables read by the left- and right-hand sides of an ordinary formula.

    Names of functions (``np.log``, ``I``) are not included.

    Examples
    --------
    >>> variables("y ~ x + np.log(z)")
    (['y'], ['x', 'z'])
    """
    if isinstance(formula, str):
        lhs, rhs = _variables(formula)
        return list(lhs), list(rhs)
    f = formulaic_formula(formula)      # raises the error for a non-formula
    return _side_variables(f.lhs), _side_variables(f.rhs)


@lru_cache(maxsize=512)
def _variables(formula: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    # estimators called inside a handler ask for the same formula's variables every
    # simulation (failures are not cached: lru_cache keeps only returned values)
    f = formulaic_formula(formula)
    return tuple(_side_variables(f.lhs)), tuple(_side_variables(f.rhs))


def _expression_names(code: str) -> set[str]:
    """Names an expression reads as values (not the functions it calls, not ``np.``)."""
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        return set()
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    roots = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
            and id(n) not in called and id(n) not in roots}


def _side_variables(side: object) -> list[str]:
    # formulaic does not look inside its stateful transforms (poly, scale, center) and
    # lists a called name it does not know (sqrt) as a variable: read the factors' code
    names, called = set(side.required_variables), set()
    for term in side:
        for fac in term.factors:
            if fac.eval_method.value == "python":
                names |= _expression_names(str(fac))
                called |= _called_names(str(fac))
            elif fac.eval_method.value == "lookup":
                # formulaic leaves out a column named like one of its helpers (Q, C, I)
                names.add(str(fac))
    # a name is a function only where it is called: a column may be named Q or C
    return sorted(names - (called & set(R_FUNCTIONS)))


def _called_names(code: str) -> set[str]:
    """Names an expression calls as functions (``sqrt`` in ``sqrt(x)``)."""
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        return set()
    return {n.func.id for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def formula_columns(formula: str) -> set[str]:
    """Every data column ``formula`` needs: outcomes, terms, instruments, groups.

    Examples
    --------
    >>> sorted(formula_columns("cbind(a, b) ~ x | z"))
    ['a', 'b', 'x', 'z']
    """
    return parse_formula(formula).columns()
