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

import re
from dataclasses import dataclass
from functools import lru_cache

import formulaic
from formulaic.errors import FormulaicError

from .errors import FormulaError

__all__ = ["Formula", "RandomEffect", "formula_columns", "formulaic_formula",
           "parse_formula", "split_terms", "split_top_level", "variables"]

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


def _strip_outer(term: str) -> str | None:
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
        inner = _strip_outer(term)
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
    m = _CBIND.match(lhs)
    outcomes = tuple(v.strip() for v in m.group("ys").split(",")) if m else (lhs,)
    top = split_top_level(rhs, "|", func=func)
    instruments = None
    if len(top) == 2 and "||" not in rhs:
        rhs, instruments = top[0], top[1].strip()
    fixed, bars = _split_bars(rhs, formula, func)
    return Formula(text=formula, lhs=lhs, outcomes=outcomes, rhs=fixed,
                   instruments=instruments, random_effects=bars)


def formulaic_formula(formula: str) -> formulaic.Formula:
    """Return the formulaic parse of an ordinary formula (cached; errors as FormulaError)."""
    if not isinstance(formula, str) or "~" not in formula:
        raise FormulaError(
            f"model_frame(formula={formula!r}): formula must be a string like 'y ~ x'; "
            f"got {formula!r}.")
    return _formulaic(formula)


@lru_cache(maxsize=256)
def _formulaic(formula: str) -> formulaic.Formula:
    # Parsing costs milliseconds; designs call the same formula thousands of times.
    try:
        return formulaic.Formula(formula)
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
    f = formulaic_formula(formula)
    return sorted(f.lhs.required_variables), sorted(f.rhs.required_variables)


def formula_columns(formula: str) -> set[str]:
    """Every data column ``formula`` needs: outcomes, terms, instruments, groups.

    Examples
    --------
    >>> sorted(formula_columns("cbind(a, b) ~ x | z"))
    ['a', 'b', 'x', 'z']
    """
    return parse_formula(formula).columns()
