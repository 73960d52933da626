"""Model matrices of a mixed model: the fixed part and lme4's random-effect terms.

The fixed part goes through the shared formulaic model frame; each bar ``(expr | g)``
gives a term with its own model matrix ``Xi`` (from ``expr``) and the level codes of
its grouping factor, ordered as lme4's ``mkReTrms`` orders them. ``theta`` holds each
term's lower-triangular relative covariance factor, column by column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..model_frame import model_frame
from .bars import LHS_PLACEHOLDER, BarTerm, LmerFormula

__all__ = ["RandomTerm", "ReTerms", "build_reterms", "fixed_matrix", "term_matrix"]


def term_matrix(expr: str, data, func: str = "lmer") -> tuple[np.ndarray, list[str]]:
    """Model matrix of a random-effect term's right-hand side ``expr`` (R's column names).

    The shared model frame wants a two-sided formula, so a constant placeholder
    response is supplied.
    """
    cols = {c: data[c] for c in data.keys()}
    n = len(next(iter(cols.values()))) if cols else 0
    cols[LHS_PLACEHOLDER] = np.zeros(n)
    mf = model_frame(f"{LHS_PLACEHOLDER} ~ {expr}", cols, func=func)
    return mf.X, mf.columns


def fixed_matrix(f: LmerFormula, data, func: str = "lmer", with_terms: bool = False):
    """Response vector, fixed-effects matrix and its column names.

    With ``with_terms`` also a dict from each formula term (R's label, e.g.
    ``"x:f3"``) to the names of its columns. ``data`` has no missing values in the
    used columns (rows are dropped before, over the random-effect columns too).
    """
    mf = model_frame(f.fixed_formula, data, func=func)
    out = (np.asarray(mf.y, dtype=float).reshape(-1), mf.X, mf.columns)
    return (*out, mf.term_columns) if with_terms else out


@dataclass
class RandomTerm:
    """One random-effect term: grouping factor, its levels and the term's model matrix."""

    group: str
    cnames: list[str]
    levels: list
    codes: np.ndarray          # (n,) level code of each row
    Xi: np.ndarray             # (n, k)

    @property
    def k(self) -> int:
        """Number of columns of the term's model matrix."""
        return len(self.cnames)

    @property
    def nl(self) -> int:
        """Number of levels of the grouping factor."""
        return len(self.levels)

    @property
    def ntheta(self) -> int:
        """Number of theta parameters (the lower triangle of a k x k factor)."""
        return self.k * (self.k + 1) // 2


@dataclass
class ReTerms:
    """Random-effect terms in lme4's order, with theta's layout."""

    terms: list[RandomTerm]
    theta0: np.ndarray = field(init=False)
    lower: np.ndarray = field(init=False)

    def __post_init__(self):
        """Lay out theta: lme4's start (identity factors) and lower bounds."""
        t0, lo = [], []
        for t in self.terms:
            for j in range(t.k):          # column-major lower triangle, as lme4's Lind
                for i in range(j, t.k):
                    t0.append(1.0 if i == j else 0.0)
                    lo.append(0.0 if i == j else -np.inf)
        self.theta0 = np.array(t0)
        self.lower = np.array(lo)

    @property
    def q(self) -> int:
        """Number of random effects."""
        return sum(t.k * t.nl for t in self.terms)

    def T_list(self, theta: np.ndarray) -> list[np.ndarray]:
        """Each term's lower-triangular relative covariance factor at ``theta``."""
        out, pos = [], 0
        for t in self.terms:
            T = np.zeros((t.k, t.k))
            for j in range(t.k):
                for i in range(j, t.k):
                    T[i, j] = theta[pos]
                    pos += 1
            out.append(T)
        return out


def _factor_codes(data: pd.DataFrame, group: tuple[str, ...]):
    cols = []
    for g in group:
        s = data[g]
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(object)
        cols.append(s.to_numpy())
    if len(cols) == 1:
        levels, codes = np.unique(cols[0].astype(str) if cols[0].dtype.kind == "O" else cols[0],
                                  return_inverse=True)
        return list(levels), codes.reshape(-1)
    keys = pd.MultiIndex.from_arrays(cols)
    codes, uniq = pd.factorize(keys, sort=True)
    return [":".join(map(str, u)) for u in uniq], codes


def build_reterms(bars: tuple[BarTerm, ...], data: pd.DataFrame) -> ReTerms:
    """Model matrices and grouping factors of the bars, ordered as lme4's mkReTrms."""
    terms = []
    for b in bars:
        Xi, cn = term_matrix(b.expr, data)
        if Xi.shape[1] == 0:
            continue
        levels, codes = _factor_codes(data, b.group)
        terms.append(RandomTerm(b.group_name, cn, levels, codes, Xi))
    nl = np.array([t.nl for t in terms])
    # lme4 reorders by decreasing number of levels (rev(order(nl)), which also
    # reverses ties) only when the terms are not already in that order.
    if np.any(np.diff(nl) > 0):
        order = np.argsort(nl, kind="stable")[::-1]
        terms = [terms[i] for i in order]
    return ReTerms(terms)


