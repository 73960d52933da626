"""lme4 formula syntax: split ``y ~ fixed + (expr | g)`` into its parts.

formulaic knows nothing of ``|`` bars, so the random-effect terms are cut out of
the right-hand side here (respecting parentheses) and the rest is handed to
formulaic as an ordinary fixed-effects formula.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ...errors import FormulaError

__all__ = ["BarTerm", "LmerFormula", "parse_lmer_formula", "fixed_matrix", "term_matrix"]

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


def _split_terms(rhs: str) -> list[tuple[str, str]]:
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
    terms = _split_terms(expr)
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
    for sign, term in _split_terms(rhs):
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
            parts = [t for s, t in _split_terms(expr) if s == "+" and t not in ("0", "1")]
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


_LHS = "_dd_lhs_"


def term_matrix(expr: str, data, func: str = "lmer") -> tuple[np.ndarray, list[str]]:
    """Model matrix of a random-effect term's right-hand side ``expr`` (R's column names).

    The shared :func:`~declaredesign.estimate._formula.model_frame` wants a two-sided
    formula, so a constant placeholder response is supplied.
    """
    from ..model_frame import model_frame

    cols = {c: data[c] for c in data.keys()}
    n = len(next(iter(cols.values()))) if cols else 0
    cols[_LHS] = np.zeros(n)
    mf = model_frame(f"{_LHS} ~ {expr}", cols, func=func)
    return mf.X, mf.columns


def fixed_matrix(f: LmerFormula, data, func: str = "lmer", with_terms: bool = False):
    """Response vector, fixed-effects matrix and its column names.

    With ``with_terms`` also a dict from each formula term (R's label, e.g.
    ``"x:f3"``) to the names of its columns. ``data`` has no missing values in the
    used columns (rows are dropped before, over the random-effect columns too).
    """
    from ..model_frame import model_frame

    mf = model_frame(f.fixed_formula, data, func=func)
    out = (np.asarray(mf.y, dtype=float).reshape(-1), mf.X, mf.columns)
    return (*out, mf.term_columns) if with_terms else out
