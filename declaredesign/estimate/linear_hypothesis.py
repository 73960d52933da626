"""Linear hypotheses on a fit: estimatr's ``lh_robust`` (with ``car::linearHypothesis``).

A hypothesis ``a'b = c`` is written as an equation in the fit's term names
(``"z = 0.1"``, ``"x - z = 1"``, ``"2*x + (Intercept) = z"``). The estimate is
``L b - c`` with ``L`` the weights of the left side minus the right side, its
standard error ``sqrt(L V L')``; inference is t-based on the fit's residual degrees
of freedom for regressions (as estimatr 1.0's ``lh_robust``), on the estimator's df for
``difference_in_means`` and normal for ``horvitz_thompson``. Being linear, no delta
method is involved.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DeclarationError
from .inference import z_cis
from .protocol import TIDY_COLUMNS

__all__ = ["linear_hypothesis", "parse_hypothesis"]

_NUM = r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


def _split_signed(side: str) -> list[tuple[int, str]]:
    """Split an expression into signed summands at top-level ``+``/``-``."""
    out, depth, cur, sign = [], 0, "", 1
    i = 0
    side = side.strip()
    while i < len(side):
        ch = side[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if depth == 0 and ch in "+-":
            prev = cur.rstrip()
            # exponent of a number (1e-3) is not a split point
            if re.search(r"\d[eE]$", prev) and re.fullmatch(r"[\s\d.eE*]*", prev):
                cur += ch
                i += 1
                continue
            if prev.strip() == "" or prev.endswith("*"):
                # unary sign
                if ch == "-":
                    sign = -sign
                i += 1
                continue
            out.append((sign, cur.strip()))
            cur, sign = "", (1 if ch == "+" else -1)
            i += 1
            continue
        cur += ch
        i += 1
    if cur.strip():
        out.append((sign, cur.strip()))
    return out


def parse_hypothesis(hypothesis: str, terms: list[str]) -> tuple[np.ndarray, float]:
    """Weights ``L`` on ``terms`` and constant ``c`` of ``L b = c``.

    Parameters
    ----------
    hypothesis : str
        One equation in the term names.
    terms : list of str
        The fit's terms.

    Returns
    -------
    L : ndarray
        Weights on the terms (left side minus right side).
    c : float
        The constant of ``L b = c``.

    Examples
    --------
    >>> parse_hypothesis("x - 2*z = 1", ["(Intercept)", "z", "x"])
    (array([ 0., -2.,  1.]), 1.0)
    """
    func = "linear_hypothesis"
    if not isinstance(hypothesis, str) or hypothesis.count("=") > 1:
        raise DeclarationError(f"{func}(hypothesis={hypothesis!r}): hypothesis must be one "
                               f"equation like 'z = 0.1'; got {hypothesis!r}.")
    lhs, rhs = (hypothesis.split("=") + ["0"])[:2] if "=" in hypothesis else (hypothesis, "0")
    L = np.zeros(len(terms))
    c = 0.0
    by_len = sorted(terms, key=len, reverse=True)
    for side_sign, side in ((1, lhs), (-1, rhs)):
        for sign, piece in _split_signed(side):
            factors = [f.strip() for f in piece.split("*")] if "*" in piece else [piece]
            coef = float(sign * side_sign)
            name = None
            for f in factors:
                if re.fullmatch(_NUM, f):
                    coef *= float(f)
                elif f in terms:
                    if name is not None:
                        raise DeclarationError(f"{func}(hypothesis={hypothesis!r}): the "
                                               "hypothesis must be linear; got a product "
                                               f"of terms in {piece!r}.")
                    name = f
                else:
                    near = [t for t in by_len if t in f] or terms
                    raise DeclarationError(
                        f"{func}(hypothesis={hypothesis!r}): {f!r} is not a term of the "
                        f"fit; terms are {terms} (did you mean {near[0]!r}?).")
            if name is None:
                c -= coef
            else:
                L[terms.index(name)] += coef
    if not np.any(L):
        raise DeclarationError(f"{func}(hypothesis={hypothesis!r}): the hypothesis names "
                               "no term of the fit.")
    return L, c


def linear_hypothesis(fit: Any, hypothesis: Any) -> pd.DataFrame:
    """Estimate, SE, statistic, p-value and CI of a linear combination of coefficients.

    Parameters
    ----------
    fit : fit object
        A fit with ``coefficients``, ``vcov``, ``alpha`` and ``outcome`` (any estimator
        of this package).
    hypothesis : str or array_like
        An equation in the fit's term names (``"z = 0.1"``) or a vector of weights.

    Returns
    -------
    pandas.DataFrame
        One tidy row; see :meth:`~declaredesign.estimate.LMRobustFit.linear_hypothesis`.
    """
    coefs = fit.coefficients
    terms = [str(t) for t in coefs.index]
    V = fit.vcov
    if V is None:
        raise DeclarationError("linear_hypothesis: the fit has no variance matrix (fit with "
                               "return_vcov=True and se_type other than 'none').")
    if isinstance(hypothesis, str):
        L, c = parse_hypothesis(hypothesis, terms)
        label = hypothesis
    else:
        L = np.asarray(hypothesis, dtype=float).ravel()
        c = 0.0
        if L.shape != (len(terms),):
            raise DeclarationError(f"linear_hypothesis(hypothesis=<array>): hypothesis must "
                                   f"be a string or a vector of {len(terms)} weights; got "
                                   f"shape {np.shape(hypothesis)}.")
        label = " + ".join(f"{w:g}*{t}" for w, t in zip(L, terms, strict=True) if w)
    vnames = [str(t) for t in V.index]
    used = [t for t, w in zip(terms, L, strict=True) if w != 0]
    missing = [t for t in used if t not in vnames]
    b = coefs.to_numpy(dtype=float)
    if missing:
        est = se = np.nan
    else:
        Lv = np.array([L[terms.index(t)] for t in vnames])
        est = float(L[L != 0] @ b[L != 0] - c)
        se = float(np.sqrt(Lv @ V.to_numpy() @ Lv))
    alpha = fit.alpha
    if getattr(fit, "normal_inference", False):     # Horvitz-Thompson: z-based
        stat, p, lo, hi = z_cis(est, se, alpha, True)
        df = np.nan
    else:
        df = float(fit.df_residual) if hasattr(fit, "df_residual") else float(fit.df)
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = est / se
            p = float(2 * stats.t.sf(abs(stat), df))
            crit = stats.t.ppf(1 - alpha / 2, df) * se
        lo, hi = est - crit, est + crit
    row = {"term": label, "estimate": est, "std_error": se, "statistic": stat,
           "p_value": p, "conf_low": lo, "conf_high": hi, "df": df,
           "outcome": fit.outcome if isinstance(fit.outcome, str) else ",".join(fit.outcome)}
    return pd.DataFrame([row], columns=TIDY_COLUMNS)
