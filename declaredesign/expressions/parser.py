"""Parse expression strings into a checked syntax tree (no data, no evaluation).

An expression is read in three steps:

1. **R spelling.** The text is tokenised with Python's tokenizer and R's spellings are
   rewritten to the Python tokens with the same meaning and precedence: ``^`` is power
   (``**``), ``&``/``&&`` and ``|``/``||`` are elementwise "and"/"or" with R's precedence
   (below comparisons), ``!`` is "not", ``%in%`` is set membership, ``%%`` is the
   remainder, ``is.na``/``na.rm``/``as.numeric``... become ``is_na``/``na_rm``/
   ``as_numeric``, ``%/%`` is ``//``, ``2L`` is ``2``, ``a:b`` is ``seq(a, b)``.
   ``@`` (pandas' local variables) is refused.
2. **Parsing** with :mod:`ast` in ``eval`` mode (one expression, no statements).
3. **Whitelist check** of every node: only column names, literals, arithmetic,
   comparisons, boolean operators, subscripts, ``a if c else b``, list/tuple literals
   and calls of whitelisted function names are allowed. Attribute access is allowed
   only as ``np.<name>`` / ``numpy.<name>`` for the numpy names listed in
   :data:`NUMPY_NAMES`. Dunder names (``__x``) are refused. A refused construct
   raises :class:`~declaredesign.errors.FormulaError` (a ``DeclarationError``) naming
   the expression and what is not allowed.

The check needs no data, so steps call :func:`check_expression` when they are declared.
:func:`check_formula` applies the same rules to the terms of a model formula, which
formulaic would otherwise evaluate with Python's ``eval``.
"""

from __future__ import annotations

import ast
import functools
import io
import re
import tokenize
from collections.abc import Callable, Iterable

from ..errors import FormulaError

__all__ = ["NUMPY_NAMES", "FORMULA_FUNCTIONS", "check_expression", "check_formula",
           "parse_expression"]

# numpy names usable as ``np.<name>`` (mapped in functions.NUMPY); the rest of numpy
# (files, ctypes, the global random state...) is out of reach.
NUMPY_NAMES = frozenset({
    "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "square", "abs", "absolute",
    "sin", "cos", "tan", "tanh", "floor", "ceil", "round", "rint", "sign", "where",
    "minimum", "maximum", "clip", "isnan", "isin", "power", "mean", "sum", "median",
    "min", "max", "amin", "amax", "std", "var", "nanmean", "nansum", "pi", "inf", "nan",
    "e",
})

# Calls allowed in model formulas besides the expression functions: formulaic's
# transforms and contrast codings, and R's spellings of them.
FORMULA_FUNCTIONS = frozenset({
    "I", "C", "Q", "poly", "center", "scale", "standardize", "factor", "as_factor",
    "offset", "cbind", "log", "log1p", "log2", "log10", "exp", "sqrt", "abs", "Treatment",
    "Sum", "Diff", "Helmert", "Poly", "contr", "lag", "bs",
})

_R_NAMES = {("is", "na"): "is_na", ("na", "rm"): "na_rm", ("as", "numeric"): "as_numeric",
            ("as", "integer"): "as_integer", ("as", "logical"): "as_logical",
            ("as", "character"): "as_character", ("as", "factor"): "as_factor",
            ("length", "out"): "length_out"}

_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Call,
            ast.Name, ast.Load, ast.Constant, ast.Attribute, ast.Subscript, ast.Tuple,
            ast.List, ast.keyword, ast.IfExp, ast.operator, ast.unaryop, ast.cmpop,
            ast.boolop)

_REFUSED_OPS = (ast.BitXor, ast.LShift, ast.RShift, ast.Is, ast.IsNot)

_WHY = "use a Python callable for arbitrary code"


def _fail(expr: str, what: str) -> FormulaError:
    return FormulaError(f"expression {expr!r}: {what} is not allowed in expressions; "
                        f"{_WHY} (see docs/expressions.md).")


# ----------------------------------------------------------------- R spelling
def _tokens(expr: str) -> list[tokenize.TokenInfo]:
    try:
        return [t for t in tokenize.generate_tokens(io.StringIO(expr.strip()).readline)
                if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER,
                                  tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT)]
    except (tokenize.TokenError, SyntaxError, ValueError) as e:
        msg = e.args[0] if e.args else "cannot be read"
        raise FormulaError(f"expression {expr!r} is not valid: {msg}.") from None


def _drop_integer_suffix(tokens: list[tokenize.TokenInfo]) -> list[tokenize.TokenInfo]:
    """R's integer literals ``2L``: the ``L`` glued to a number is dropped."""
    out: list[tokenize.TokenInfo] = []
    for t in tokens:
        if t.type == tokenize.NAME and t.string == "L" and out and \
                out[-1].type == tokenize.NUMBER and out[-1].end == t.start:
            continue
        out.append(t)
    return out


def _is_name(token: str) -> bool:
    return token.isidentifier()


def _group_end(parts: list[str], j: int, step: int) -> int:
    """Index of the bracket matching ``parts[j]``, walking ``step``."""
    open_ = parts[j]
    close = {"(": ")", ")": "("}[open_]
    depth = 0
    while 0 <= j < len(parts):
        depth += parts[j] == open_
        depth -= parts[j] == close
        if depth == 0:
            return j
        j += step
    return j


def _right_atom(parts: list[str], i: int) -> int:
    j = i + 1
    if j < len(parts) and parts[j] == "-":
        j += 1
    if j >= len(parts):
        return j
    if parts[j] == "(":
        return _group_end(parts, j, 1)
    if _is_name(parts[j]) and j + 1 < len(parts) and parts[j + 1] == "(":
        return _group_end(parts, j + 1, 1)  # a call: length(x)
    return j


def _left_atom(parts: list[str], i: int) -> int:
    j = i - 1
    if j < 0:
        return j
    if parts[j] == ")":
        j = _group_end(parts, j, -1)
        if j > 0 and _is_name(parts[j - 1]):
            j -= 1  # a call: f(x):3
    if j > 0 and parts[j - 1] == "-" and (j < 2 or parts[j - 2] in ("(", ",")):
        j -= 1  # R: unary minus binds tighter than ':' (-1:3 is (-1):3)
    return j


def _range_colon(parts: list[str]) -> int | None:
    """Position of the first ':' outside square brackets (those are slices)."""
    depth = 0
    for i, p in enumerate(parts):
        depth += (p == "[") - (p == "]")
        if p == ":" and depth == 0:
            return i
    return None


def _ranges(parts: list[str]) -> list[str]:
    """R's ``a:b`` (a and b numbers, names or bracketed groups) as ``seq(a, b)``."""
    while True:
        i = _range_colon(parts)
        if i is None:
            break
        lo, hi = _left_atom(parts, i), _right_atom(parts, i)
        if lo < 0 or hi >= len(parts):
            break  # left as ':' for the parser to report
        parts = [*parts[:lo], "seq", "(", *parts[lo:i], ",", *parts[i + 1:hi + 1], ")",
                 *parts[hi + 1:]]
    return parts


_SIMPLE = {"^": "**", "&": "and", "&&": "and", "|": "or", "||": "or", "!": "not"}


def _rewrite(expr: str, tokens: list[tokenize.TokenInfo], formula: bool) -> list[str]:
    """R tokens to Python tokens (see the module docstring)."""
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        t = tokens[i].string
        nxt = [tok.string for tok in tokens[i + 1:i + 3]]
        if t == "@":
            raise _fail(expr, "'@' (local variables)")
        if t == "%" and nxt[:2] == ["in", "%"]:
            out.append("@")  # %in%: evaluated as set membership, precedence of `*`
            i += 3
            continue
        if t in ("|", "&") and nxt[:1] == [t]:
            i += 1  # R's scalar `||` / `&&` read as the elementwise operator
            continue
        if t == "%" and nxt[:1] == ["%"]:
            out.append("%")
            i += 2
            continue
        if t == "%" and nxt[:2] == ["/", "%"]:
            out.append("//")  # R's integer division %/%
            i += 3
            continue
        if tokens[i].type == tokenize.NAME and nxt[:1] == ["."] and len(nxt) == 2 and \
                (t, nxt[1]) in _R_NAMES:
            out.append(_R_NAMES[(t, nxt[1])])
            i += 3
            continue
        if formula:
            out.append({"^": "**", "~": "==", ":": "*", "||": "|"}.get(t, t))
        else:
            out.append(_SIMPLE.get(t, t))
        i += 1
    return out


def _join(parts: list[str]) -> str:
    # One space between tokens never changes the meaning of Python source and keeps
    # adjacent names apart ("x y" must stay a syntax error, not become "xy").
    return " ".join(parts)


# ----------------------------------------------------------------- whitelist
def _check_name(expr: str, name: str) -> None:
    if name.startswith("__"):
        raise _fail(expr, f"the name {name!r} (names starting with '__')")


def _check_attribute(expr: str, node: ast.Attribute) -> None:
    chain: list[str] = []
    base: ast.AST = node
    while isinstance(base, ast.Attribute):
        chain.insert(0, base.attr)
        base = base.value
    root = base.id if isinstance(base, ast.Name) else None
    if root in ("np", "numpy") and len(chain) == 1 and chain[0] in NUMPY_NAMES:
        return
    bad = chain[0] if root in ("np", "numpy") and chain[0] not in NUMPY_NAMES or \
        root not in ("np", "numpy") else chain[1]
    shown = ast.unparse(node)
    raise _fail(expr, f"attribute access '.{bad}' (in {shown!r})")


def _check_call(expr: str, node: ast.Call, known: Callable[[str], bool]) -> None:
    func = node.func
    if isinstance(func, ast.Name):
        if not known(func.id):
            raise FormulaError(f"expression {expr!r}: {func.id!r} is not a function of the "
                               "expression language (see docs/expressions.md for the list).")
    elif not isinstance(func, ast.Attribute):
        raise _fail(expr, f"calling {ast.unparse(func)!r} (call functions by name)")
    for kw in node.keywords:
        if kw.arg is None:
            raise _fail(expr, "'**' unpacking")
    if any(isinstance(a, ast.Starred) for a in node.args):
        raise _fail(expr, "'*' unpacking")


def _check_node(expr: str, node: ast.AST, known: Callable[[str], bool]) -> None:
    if isinstance(node, ast.Starred):
        raise _fail(expr, "'*' unpacking")
    if not isinstance(node, _ALLOWED) or isinstance(node, _REFUSED_OPS):
        raise _fail(expr, _describe(node))
    if isinstance(node, ast.Name):
        _check_name(expr, node.id)
    elif isinstance(node, ast.Attribute):
        _check_attribute(expr, node)
    elif isinstance(node, ast.Call):
        _check_call(expr, node, known)
    elif isinstance(node, ast.keyword) and node.arg is not None:
        _check_name(expr, node.arg)
    elif isinstance(node, ast.Constant) and not isinstance(
            node.value, (int, float, complex, str, bool, type(None))):
        raise _fail(expr, f"the literal {node.value!r}")
    elif isinstance(node, ast.Subscript) and isinstance(node.slice, (ast.Slice, ast.Tuple)):
        raise _fail(expr, "slicing (index with a logical mask such as x[g == 1])")


_DESCRIPTIONS = {
    ast.Lambda: "a lambda", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator",
    ast.NamedExpr: "assignment (':=')", ast.Await: "await", ast.Yield: "yield",
    ast.JoinedStr: "an f-string", ast.Dict: "a dict literal", ast.Set: "a set literal",
    ast.Slice: "slicing", ast.BitXor: "bitwise xor", ast.LShift: "a shift",
    ast.RShift: "a shift", ast.Is: "'is'", ast.IsNot: "'is not'",
}


def _describe(node: ast.AST) -> str:
    return _DESCRIPTIONS.get(type(node), type(node).__name__)


def _always(name: str) -> bool:
    return True


@functools.lru_cache(maxsize=2048)
def _parse_cached(expr: str) -> ast.Expression:
    source = _join(_ranges(_rewrite(expr, _drop_integer_suffix(_tokens(expr)),
                                    formula=False)))
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as e:
        raise FormulaError(f"expression {expr!r} is not valid: {e.msg}.") from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise FormulaError(f"expression {expr!r} is not valid: {type(e).__name__}.") \
            from None
    for node in ast.walk(tree):
        _check_node(expr, node, _always)
    return tree


def parse_expression(expr: str, known: Callable[[str], bool] | None = None) -> ast.Expression:
    """Parse and check an expression; return its syntax tree.

    Parameters
    ----------
    expr : str
        The expression, in the R-flavoured spelling of the language.
    known : callable, optional
        ``known(name)`` tells whether a called name is a function of the language;
        by default every name passes (the evaluator then names unknown functions).

    Returns
    -------
    ast.Expression
        The checked tree (shared between calls: do not modify it).

    Raises
    ------
    FormulaError
        If the expression does not parse or uses a construct outside the language.
    """
    tree = _parse_cached(expr)
    if known is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                _check_call(expr, node, known)
    return tree


def check_expression(expr: str, known: Callable[[str], bool] | None = None) -> None:
    """Check an expression without data (at declaration time).

    Parameters
    ----------
    expr : str
        The expression.
    known : callable, optional
        Whether a called name is a function of the language.

    Raises
    ------
    FormulaError
        If the expression does not parse or uses a construct outside the language.

    Examples
    --------
    >>> check_expression("mean(Y_Z_1[X == 1] - Y_Z_0[X == 1])")
    >>> check_expression("np.load('x.npy')")
    Traceback (most recent call last):
    ...
    declaredesign.errors.FormulaError: expression "np.load('x.npy')": attribute access '.load' ...
    """
    parse_expression(expr, known)


# ----------------------------------------------------------------- formulas
_BACKTICK = re.compile(r"`[^`]*`")


_CONTRASTS = frozenset({"treatment", "sum", "helmert", "poly", "diff", "custom"})


def _is_contrast(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
        node.value.id == "contr" and node.attr in _CONTRASTS


@functools.lru_cache(maxsize=512)
def _check_formula_cached(formula: str, functions: frozenset[str], func: str) -> None:
    # Backtick-quoted column names are plain lookups; a placeholder keeps them parseable.
    text = _BACKTICK.sub("quoted_name", formula.strip())
    if text.startswith("~"):
        text = text[1:]
    text = re.sub(r"(?<![\w)\]])\.(?![\w(])", "all_columns", text)
    parts = _rewrite(formula, _drop_integer_suffix(_tokens(text)), formula=True)
    try:
        tree = ast.parse(_join(parts), mode="eval")
    except SyntaxError as e:
        raise FormulaError(f"{func}(formula={formula!r}): the formula is not valid: "
                           f"{e.msg}.") from None
    known = functions.__contains__
    for node in ast.walk(tree):
        if isinstance(node, ast.Set):
            continue  # formulaic's {python expression}: its elements are checked below
        if isinstance(node, (ast.BitOr, ast.Div, ast.Pow, ast.Mult, ast.MatMult, ast.Eq)):
            continue  # formula operators: | / ^ * : %in% ~
        if _is_contrast(node):
            continue  # formulaic's contr.treatment(...) and friends
        try:
            _check_node(formula, node, known)
        except FormulaError as e:
            raise FormulaError(f"{func}(formula={formula!r}): "
                               f"{str(e).split(': ', 1)[1]}") from None


def check_formula(formula: str, func: str = "model_frame",
                  functions: Iterable[str] = ()) -> None:
    """Check the terms of a model formula against the expression whitelist.

    formulaic evaluates terms such as ``I(x ** 2)`` or ``np.log(z)`` with Python's
    ``eval``; this refuses every construct the expression language refuses (attribute
    chains, dunders, lambdas...) and every call that is neither a formula function
    (:data:`FORMULA_FUNCTIONS`) nor one of ``functions``.

    Parameters
    ----------
    formula : str
        The formula, e.g. ``"y ~ x + I(x ** 2) + C(g)"``.
    func : str, optional
        Name of the public function, for the error message.
    functions : iterable of str, optional
        Further callable names to allow (the expression functions, by default none).

    Raises
    ------
    FormulaError
        If a term uses a construct outside the language.

    Examples
    --------
    >>> check_formula("y ~ x + np.log(z) + I(w ** 2) + (1 | g)")
    >>> check_formula("y ~ I(np.ctypeslib.ctypes)")
    Traceback (most recent call last):
    ...
    declaredesign.errors.FormulaError: model_frame(formula=...): attribute access '.ctypeslib' ...
    """
    if isinstance(formula, str):
        _check_formula_cached(formula, FORMULA_FUNCTIONS | frozenset(functions), func)
