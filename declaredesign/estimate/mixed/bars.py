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
from ...formula import RandomEffect, parse_formula, split_terms, strip_outer
from ..model_frame import formula_variables

__all__ = ["BarTerm", "LmerFormula", "GlmerFormula", "parse_lmer_formula",
           "LHS_PLACEHOLDER"]

#: Stand-in response for one-sided right-hand sides handed to the model frame.
LHS_PLACEHOLDER = "_dd_lhs_"

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


#: One random-effect term ``(expr | group)`` after expansion (the one parser's type).
BarTerm = RandomEffect


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
    f = parse_formula(formula, func="lmer")
    if f.instruments is not None:
        raise FormulaError(f"lmer(formula={formula!r}): cannot read the term after the "
                           "top-level '|'; write random effects in parentheses, '(1 | g)'.")
    if not f.random_effects:
        raise FormulaError(f"lmer(formula={formula!r}): no random-effect terms (e.g. "
                           "'(1 | group)') in the formula.")
    return LmerFormula(response=f.lhs, fixed=f.rhs, bars=f.random_effects)


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
    return strip_outer(t[len(name):])


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
