"""lme4 formula syntax: split ``y ~ fixed + (expr | g)`` into its parts.

formulaic knows nothing of ``|`` bars, so the random-effect terms are cut out of
the right-hand side here (respecting parentheses) and the rest is handed to
formulaic as an ordinary fixed-effects formula. glmer's extras (a
``cbind(successes, failures)`` response, ``offset(...)`` terms) are split off here
too: this module is the one place the mixed models read formula text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import FormulaError
from ..model_frame import formula_variables

__all__ = ["BarTerm", "LmerFormula", "GlmerFormula", "parse_lmer_formula", "split_terms",
           "LHS_PLACEHOLDER"]

#: Stand-in response for one-sided right-hand sides handed to the model frame.
LHS_PLACEHOLDER = "_dd_lhs_"

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class BarTerm:
    """One random-effect term ``(expr | group)`` after expansion.

    ``group`` is a tuple of column names whose interaction forms the grouping
    factor (``a:b`` gives ``("a", "b")``); ``expr`` is the formulaic right-hand
    side of the term's model matrix.
    """

    expr: str
    group: tuple[str, ...]

    @property
    def group_name(self) -> str:
        """The grouping factor's name as lme4 prints it (``a:b``)."""
        return ":".join(self.group)


@dataclass(frozen=True)
class LmerFormula:
    """A parsed lme4 formula."""

    response: str
    fixed: str
    bars: tuple[BarTerm, ...]

    @property
    def fixed_formula(self) -> str:
        """The fixed-effects part as a formulaic formula."""
        return f"{self.response} ~ {self.fixed}"

    def variables(self, func: str = "lmer") -> list[str]:
        """List the data columns the formula reads (response, fixed part, bars, groups)."""
        cols: set[str] = set()
        for rhs in [self.fixed_formula] + [f"{LHS_PLACEHOLDER} ~ {b.expr}" for b in self.bars]:
            try:
                lhs_vars, rhs_vars = formula_variables(rhs)
            except FormulaError as e:
                shown = rhs.split("~", 1)[1].strip() if rhs.startswith(LHS_PLACEHOLDER) else rhs
                raise FormulaError(f"{func}(formula=...): cannot parse {shown!r}: {e}") from e
            cols |= set(lhs_vars) | set(rhs_vars)
        for b in self.bars:
            cols |= set(b.group)
        return sorted(cols - {LHS_PLACEHOLDER})


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` at parenthesis depth zero."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"lmer(formula=...): unbalanced parentheses in {text!r}.")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise FormulaError(f"lmer(formula=...): unbalanced parentheses in {text!r}.")
    parts.append("".join(cur))
    return parts


def split_terms(rhs: str) -> list[tuple[str, str]]:
    """Split a right-hand side into (sign, term) pairs at depth-zero + and -."""
    out, depth, cur, sign = [], 0, [], "+"
    for ch in rhs:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch in "+-" and depth == 0:
            if "".join(cur).strip():
                out.append((sign, "".join(cur).strip()))
            elif ch == "-" and sign == "+" and not out:
                pass
            cur, sign = [], ch
            continue
        cur.append(ch)
    if "".join(cur).strip():
        out.append((sign, "".join(cur).strip()))
    return out


def _strip_outer(term: str) -> str | None:
    """Return the inside of ``( ... )`` when the parentheses wrap the whole term."""
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


def _group_names(text: str, formula: str) -> list[tuple[str, ...]]:
    """Expand a grouping expression: ``a/b`` -> ``a``, ``a:b``; ``a:b`` stays one factor."""
    text = text.strip()
    if not text:
        raise FormulaError(f"lmer(formula={formula!r}): a random-effect term has no grouping "
                           "factor after '|'.")
    nest = [p.strip() for p in text.split("/")]
    groups, prefix = [], []
    for part in nest:
        names = tuple(s.strip() for s in part.split(":"))
        if not all(_NAME.match(n) for n in names):
            raise FormulaError(f"lmer(formula={formula!r}): cannot read the grouping factor "
                               f"{text!r}.")
        prefix = [*prefix, *names]
        # lme4 names the nested factor inner-first: (1 | a/b) gives "b:a".
        groups.append(tuple(reversed(prefix)) if len(nest) > 1 else tuple(prefix))
    return groups


def _has_intercept_removed(expr: str) -> bool:
    terms = split_terms(expr)
    return any(t == "0" and s == "+" for s, t in terms) or \
        any(t == "1" and s == "-" for s, t in terms)


def parse_lmer_formula(formula: str) -> LmerFormula:
    """Parse an lme4 formula string.

    Parameters
    ----------
    formula : str
        ``response ~ fixed terms + (expr | group) + ...``; ``||`` makes the
        terms of ``expr`` uncorrelated and ``a/b`` expands to ``a`` and ``a:b``.

    Returns
    -------
    LmerFormula

    Examples
    --------
    >>> f = parse_lmer_formula("y ~ x + (1 + x || g) + (1 | a/b)")
    >>> f.fixed, [(b.expr, b.group_name) for b in f.bars]
    ('x', [('1', 'g'), ('0 + x', 'g'), ('1', 'a'), ('1', 'b:a')])
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise FormulaError(f"lmer(formula={formula!r}): formula must be a string "
                           f"'response ~ terms'; got {formula!r}.")
    if formula.count("(") != formula.count(")"):
        raise FormulaError(f"lmer(formula={formula!r}): unbalanced parentheses.")
    lhs, _, rhs = formula.partition("~")
    lhs = lhs.strip()
    if not lhs:
        raise FormulaError(f"lmer(formula={formula!r}): the formula has no response "
                           "(left of '~').")
    fixed_terms: list[str] = []
    bars: list[BarTerm] = []
    for sign, term in split_terms(rhs):
        inner = _strip_outer(term)
        if inner is None or "|" not in inner:
            fixed_terms.append(term if sign == "+" else f"- {term}")
            continue
        if sign == "-":
            raise FormulaError(f"lmer(formula={formula!r}): a random-effect term cannot be "
                               "subtracted.")
        double = "||" in inner
        pieces = inner.split("||") if double else _split_top(inner, "|")
        if len(pieces) != 2:
            raise FormulaError(f"lmer(formula={formula!r}): cannot read the random-effect term "
                               f"{term!r}.")
        expr, grp = pieces[0].strip(), pieces[1]
        if not expr:
            raise FormulaError(f"lmer(formula={formula!r}): the random-effect term {term!r} has "
                               "nothing before '|'.")
        groups = _group_names(grp, formula)
        if double:
            # lme4's expandDoubleVerts: an intercept term plus one term per variable,
            # each without intercept, so no correlations are estimated.
            parts = [t for s, t in split_terms(expr) if s == "+" and t not in ("0", "1")]
            exprs = [] if _has_intercept_removed(expr) else ["1"]
            exprs += [f"0 + {t}" for t in parts]
        else:
            exprs = [expr]
        for g in groups:
            for e in exprs:
                bars.append(BarTerm(expr=e, group=g))
    if not bars:
        raise FormulaError(f"lmer(formula={formula!r}): no random-effect terms (e.g. "
                           "'(1 | group)') in the formula.")
    fixed = " + ".join(fixed_terms).replace("+ -", "-") if fixed_terms else "1"
    return LmerFormula(response=lhs, fixed=fixed, bars=tuple(bars))




# ---------------------------------------------------------------- glmer's formulas
class GlmerFormula:
    """An lme4 formula split for glmer: response (maybe ``cbind``), offsets, fixed, bars.

    Parameters
    ----------
    formula : str
        ``response ~ fixed + offset(expr) + (expr | group)``; the response may be
        ``cbind(successes, failures)``.
    func : str
        Name used in error messages.
    """

    def __init__(self, formula: str, func: str = "glmer"):
        f = parse_lmer_formula(formula)
        self.bars = f.bars
        self.response = f.response
        self.cbind = _cbind(f.response, formula, func)
        fixed, offsets = [], []
        for sign, term in split_terms(f.fixed):
            inner = strip_call(term, "offset")
            if inner is None:
                fixed.append(term if sign == "+" else f"- {term}")
                continue
            if sign == "-":
                raise FormulaError(f"{func}(formula={formula!r}): an offset cannot be "
                                   "subtracted.")
            offsets.append(inner)
        if not fixed:
            fixed = ["1"]
        elif all(t.startswith("-") for t in fixed):
            fixed = ["1", *fixed]
        self.offsets = offsets
        self.fixed = " + ".join(fixed).replace("+ -", "-")
        self.lmer = LmerFormula(response=LHS_PLACEHOLDER, fixed=self.fixed, bars=f.bars)

    def __repr__(self) -> str:
        """Show the formula as glmer reads it."""
        off = "".join(f" + offset({o})" for o in self.offsets)
        bars = " + ".join(f"({b.expr} | {b.group_name})" for b in self.bars)
        return f"{self.response} ~ {self.fixed}{off} + {bars}"

    def variables(self) -> list[str]:
        """List the data columns the formula reads (fixed, random, response, offsets)."""
        exprs = [f"{LHS_PLACEHOLDER} ~ {self.fixed}"] + \
            [f"{LHS_PLACEHOLDER} ~ {b.expr}" for b in self.bars]
        resp = list(self.cbind) if self.cbind else [self.response]
        exprs += [f"{LHS_PLACEHOLDER} ~ 0 + I({e})" for e in [*resp, *self.offsets]]
        cols: set[str] = set()
        for e in exprs:
            cols |= set(formula_variables(e)[1])
        for b in self.bars:
            cols |= set(b.group)
        return sorted(cols - {LHS_PLACEHOLDER})


def _cbind(response: str, formula: str, func: str) -> tuple[str, str] | None:
    resp = strip_call(response, "cbind")
    if resp is None:
        return None
    parts = _split_args(resp)
    if len(parts) != 2:
        raise FormulaError(f"{func}(formula={formula!r}): cbind() needs two arguments "
                           f"(successes, failures); got {response!r}.")
    return parts[0], parts[1]


def strip_call(text: str, name: str) -> str | None:
    """Return the argument text of ``name(...)`` when ``text`` is that call, else None."""
    t = text.strip()
    if not t.startswith(name):
        return None
    return _strip_outer(t[len(name):])


def _split_args(text: str) -> list[str]:
    out, depth, cur = [], 0, []
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out
