"""``glmer``: generalized linear mixed models as lme4 fits and broom.mixed reports them."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from ..._validation import fail
from ...errors import EstimationError, FitWarning, FormulaError
from .._protocol import batched
from ._formula import (
    LmerFormula,
    _split_terms,
    _strip_outer,
    fixed_matrix,
    parse_lmer_formula,
    term_matrix,
)
from ._glmm import GLMM, Family, conv_messages, make_family
from ._merfit import MerFitMixin

__all__ = ["glmer", "GlmerFit"]

_SINGULAR_TOL = 1e-4
_SINGULAR_MSG = "boundary (singular) fit: see help('isSingular')"
_LHS = "_dd_lhs_"


# --------------------------------------------------------------------- parsing
class GlmerFormula:
    """An lme4 formula split for glmer: response (maybe ``cbind``), offsets, fixed, bars."""

    def __init__(self, formula: str, func: str = "glmer"):
        f = parse_lmer_formula(formula)
        self.bars = f.bars
        self.response = f.response
        resp = _strip_call(f.response, "cbind")
        if resp is not None:
            parts = _split_args(resp)
            if len(parts) != 2:
                raise FormulaError(f"{func}(formula={formula!r}): cbind() needs two "
                                   f"arguments (successes, failures); got {f.response!r}.")
            self.cbind: tuple[str, str] | None = (parts[0], parts[1])
        else:
            self.cbind = None
        fixed, offsets = [], []
        for sign, term in _split_terms(f.fixed):
            inner = _strip_call(term, "offset")
            if inner is not None:
                if sign == "-":
                    raise FormulaError(f"{func}(formula={formula!r}): an offset cannot be "
                                       "subtracted.")
                offsets.append(inner)
            else:
                fixed.append(term if sign == "+" else f"- {term}")
        if not fixed:
            fixed = ["1"]
        elif all(t.startswith("-") for t in fixed):
            fixed = ["1", *fixed]
        self.offsets = offsets
        self.fixed = " + ".join(fixed).replace("+ -", "-")
        self.lmer = LmerFormula(response=_LHS, fixed=self.fixed, bars=f.bars)

    def __repr__(self) -> str:
        off = "".join(f" + offset({o})" for o in self.offsets)
        bars = " + ".join(f"({b.expr} | {b.group_name})" for b in self.bars)
        return f"{self.response} ~ {self.fixed}{off} + {bars}"

    def variables(self) -> list[str]:
        """Data columns the formula reads (fixed, random, response, offsets, groups)."""
        from ..model_frame import formula_variables

        exprs = [f"{_LHS} ~ {self.fixed}"] + [f"{_LHS} ~ {b.expr}" for b in self.bars]
        resp = list(self.cbind) if self.cbind else [self.response]
        exprs += [f"{_LHS} ~ 0 + I({e})" for e in [*resp, *self.offsets]]
        cols: set[str] = set()
        for e in exprs:
            cols |= set(formula_variables(e)[1])
        for b in self.bars:
            cols |= set(b.group)
        return sorted(cols - {_LHS})


def _strip_call(text: str, name: str) -> str | None:
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


def _eval(expr: str, data) -> np.ndarray:
    """Value of an R expression of the columns (``size - incidence``, ``log(expo)``)."""
    if expr in data:
        v = np.asarray(data[expr])
        if v.dtype.kind not in "biuf":
            raise FormulaError(f"glmer: {expr!r} must be numeric or logical; got values "
                               f"of type {v.dtype}.")
        return v.astype(float)
    X, _ = term_matrix(f"0 + I({expr})", data, func="glmer")
    return X[:, 0]


def _response(gf: GlmerFormula, data, fam: Family):
    """Response as a proportion (binomial) and the prior weights, as R's family$initialize."""
    n = len(data[next(iter(data.keys()))])
    if gf.cbind is not None:
        if fam.family != "binomial":
            raise FormulaError(f"glmer: a cbind() response needs family='binomial'; got "
                               f"{fam.family!r}.")
        s, f = (_eval(e, data) for e in gf.cbind)
        if np.any(s < 0) or np.any(f < 0):
            raise EstimationError("glmer: cbind() counts must be non-negative.")
        wt = s + f
        y = np.divide(s, wt, out=np.zeros_like(s), where=wt > 0)
        return y, wt
    y = _eval(gf.response, data)
    wt = np.ones(n)
    if y.size and np.all(y == y[0]):
        raise EstimationError("glmer: response is constant.")
    if fam.family == "binomial" and (np.any(y < 0) or np.any(y > 1)):
        raise EstimationError("glmer: a binomial response must be 0/1 (or a proportion "
                              "between 0 and 1), or cbind(successes, failures).")
    if fam.family == "poisson" and np.any(y < 0):
        raise EstimationError("glmer: negative values not allowed for the 'Poisson' family.")
    return y, wt


class GlmerFit(MerFitMixin):
    """A fitted generalized linear mixed model (lme4's ``glmerMod``).

    Attributes
    ----------
    fixef : pandas.Series
        Fixed-effect estimates.
    vcov : pandas.DataFrame
        Their covariance (from the finite-difference Hessian of the deviance over
        theta and beta, as lme4's default; from ``RX`` for singular or large fits).
    theta : numpy.ndarray
        Relative covariance factor parameters (random-effect sds for scalar terms).
    family, link : str
    nAGQ : int
    nobs : int
    ngrps : dict
    is_singular : bool
    messages : list of str
    """

    def __init__(self, *, formula, response, family, link, nAGQ, fixef, vcov, theta, crit,
                 deviance, nobs, ngrps, varcorr, ranef, is_singular, messages):
        self.formula = formula
        self.response = response
        self.family = family
        self.link = link
        self.nAGQ = nAGQ
        self.fixef = fixef
        self.vcov = vcov
        self.theta = theta
        self._crit = crit
        self._deviance = deviance
        self.nobs = nobs
        self.ngrps = ngrps
        self._varcorr = varcorr
        self._ranef = ranef
        self.is_singular = is_singular
        self.messages = messages
        self.dropped: list[str] = []
        self.conf_level = 0.95

    def __repr__(self) -> str:
        return (f"<GlmerFit {self.formula!r} family={self.family}({self.link}) "
                f"nAGQ={self.nAGQ}: nobs={self.nobs}, ngrps={self.ngrps}>")

    @property
    def npar(self) -> int:
        """Number of parameters counted by logLik (fixed effects and theta)."""
        return len(self.fixef) + len(self.theta)

    @property
    def logLik(self) -> float:
        """``-criterion / 2`` as lme4.

        With nAGQ > 1 lme4's criterion omits the saturated model's log-likelihood
        (0 for a 0/1 binomial response, not for counts), and so does this.
        """
        return -0.5 * self._crit

    @property
    def deviance(self) -> float:
        """Sum of squared deviance residuals at the conditional modes (lme4's deviance())."""
        return self._deviance

    def summary(self) -> pd.DataFrame:
        """``coef(summary(fit))``: Estimate, Std. Error, z value, Pr(>|z|)."""
        t = self.tidy(effects=("fixed",), conf_int=False)
        return pd.DataFrame({"Estimate": t["estimate"].to_numpy(),
                             "Std. Error": t["std_error"].to_numpy(),
                             "z value": t["statistic"].to_numpy(),
                             "Pr(>|z|)": t["p_value"].to_numpy()}, index=t["term"].to_numpy())

    def tidy(self, effects=("fixed", "ran_pars"), conf_int: bool = True,
             conf_level: float | None = None) -> pd.DataFrame:
        """broom.mixed's ``tidy`` with snake_case columns.

        Fixed-effect rows are Wald z tests (``df`` is infinite), random-effect rows
        ``sd__(Intercept)`` / ``cor__(Intercept).x`` per grouping factor.
        """
        from .lmer import ran_pars_table

        if isinstance(effects, str):
            effects = (effects,)
        parts = []
        if "fixed" in effects:
            est = self.fixef.to_numpy()
            se = np.sqrt(np.diag(self.vcov.to_numpy()))
            z = est / se
            level = self.conf_level if conf_level is None else conf_level
            crit = stats.norm.ppf(1 - (1 - level) / 2)
            parts.append(pd.DataFrame({
                "effect": "fixed", "group": None, "term": self.fixef.index.to_numpy(),
                "estimate": est, "std_error": se, "statistic": z, "df": np.inf,
                "p_value": 2 * stats.norm.sf(np.abs(z)),
                "conf_low": est - crit * se, "conf_high": est + crit * se}))
        if "ran_pars" in effects:
            # no Residual row: binomial and Poisson have no scale parameter
            parts.append(ran_pars_table(self._varcorr))
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if not conf_int:
            out = out.drop(columns=["conf_low", "conf_high"])
        out["outcome"] = self.response
        return out


# ---------------------------------------------------------------------- fitting
def _check_common(func, formula, family, link, nAGQ, conf_level):
    if not isinstance(formula, str):
        fail(func, "formula", formula, "a string such as 'y ~ x + (1 | g)'")
    fam = make_family(func, family, link)
    if isinstance(nAGQ, bool) or not isinstance(nAGQ, int | np.integer) or \
            not 0 <= nAGQ <= 100:
        fail(func, "nAGQ", nAGQ, "an integer between 0 and 100")
    if not (isinstance(conf_level, float | int) and 0 < conf_level < 1):
        fail(func, "conf_level", conf_level, "a number in (0, 1)")
    return fam


def _prepare(gf: GlmerFormula, data, fam: Family, func: str = "glmer"):
    """Complete rows, response, weights, offset and full-rank X of one dataset."""
    from .lmer import _drop_rank_deficient

    cols = gf.variables()
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise FormulaError(f"{func}(formula={gf!r}): column(s) "
                           f"{', '.join(map(repr, missing))} not found in the data.")
    keep = ~data[cols].isna().any(axis=1).to_numpy()
    d = data.loc[keep, cols].reset_index(drop=True) if not keep.all() else data[cols]
    dd = {c: d[c].to_numpy() for c in cols}
    y, wt = _response(gf, dd, fam)
    dd[_LHS] = y
    _, X, xnames = fixed_matrix(gf.lmer, dd, func=func)
    offset = np.zeros(len(y))
    for o in gf.offsets:
        offset += _eval(o, dd)
    X, xnames, dropped = _drop_rank_deficient(X, xnames)
    return d, y, wt, offset, X, xnames, dropped


def glmer(formula: str, data: pd.DataFrame, family: Literal["binomial", "poisson"] = "binomial",
          link: str | None = None, nAGQ: int = 1, *, conf_level: float = 0.95) -> GlmerFit:
    """Fit a generalized linear mixed model, as ``lme4::glmer``.

    Parameters
    ----------
    formula : str
        lme4 syntax; the response may be ``cbind(successes, failures)`` (binomial) and
        the fixed part may contain ``offset(expr)`` terms, e.g.
        ``"count ~ x + offset(log(exposure)) + (1 | g)"``.
    data : pandas.DataFrame
        Rows with a missing value in a used column are dropped (R's na.omit).
    family : {"binomial", "poisson"}
    link : str, optional
        ``"logit"`` (default) or ``"probit"`` for binomial, ``"log"`` for Poisson.
    nAGQ : int, default 1
        1 for the Laplace approximation, > 1 for adaptive Gauss-Hermite quadrature
        with that many nodes (one scalar random effect only), 0 for lme4's
        faster, cruder fit with beta inside PIRLS.
    conf_level : float, default 0.95
        Default confidence level of ``tidy``.

    Returns
    -------
    GlmerFit

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(3)
    >>> g = np.repeat(np.arange(30), 8)
    >>> d = pd.DataFrame({"g": g, "x": rng.normal(size=240)})
    >>> eta = -0.2 + 0.8 * d.x + rng.normal(0, 0.7, 30)[g]
    >>> d["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    >>> fit = glmer("y ~ x + (1 | g)", d, family="binomial")
    >>> list(fit.tidy()["term"])
    ['(Intercept)', 'x', 'sd__(Intercept)']
    """
    from ._pls import build_reterms

    func = "glmer"
    fam = _check_common(func, formula, family, link, nAGQ, conf_level)
    if not isinstance(data, pd.DataFrame):
        fail(func, "data", data, "a pandas DataFrame", shown=type(data).__name__)
    gf = GlmerFormula(formula, func)
    d, y, wt, offset, X, xnames, dropped = _prepare(gf, data, fam, func)
    messages = []
    if dropped:
        messages.append(f"fixed-effect model matrix is rank deficient so dropping "
                        f"{len(dropped)} column(s): {', '.join(dropped)}")
        warnings.warn(f"glmer: {messages[-1]}", FitWarning, stacklevel=2)
    re = build_reterms(gf.bars, d)
    n = X.shape[0]
    for t in re.terms:
        if t.nl < 2:
            raise EstimationError(f"glmer: grouping factor {t.group!r} must have > 1 sampled "
                                  f"level; got {t.nl}.")
        if t.nl >= n:
            raise EstimationError(
                f"glmer: number of levels of each grouping factor must be < number of "
                f"observations (grouping factor {t.group!r} has {t.nl} levels, {n} rows).")
    if nAGQ > 1 and not (len(re.terms) == 1 and re.terms[0].k == 1):
        raise EstimationError("glmer: nAGQ > 1 is only available for models with a single, "
                              "scalar random-effects term.")
    m = GLMM(X, y, wt, offset, re, fam)
    par, crit, H, g = m.fit(int(nAGQ))
    if H is not None and n <= 10000:
        # lme4's convergence checks (checkConv) on the final derivatives
        messages.extend(conv_messages(g, H, re.theta0.size))
    fit = _assemble(m, gf, xnames, par, crit, H, int(nAGQ), messages)
    for msg in fit.messages[len(dropped) > 0:]:
        warnings.warn(f"glmer: {msg}", FitWarning, stacklevel=2)
    fit.dropped = dropped
    fit.conf_level = float(conf_level)
    return fit


def _vcov(m: GLMM, par, H, nAGQ):
    """lme4's vcov.merMod.

    Twice the inverse Hessian of the deviance over (theta, beta), beta block, as
    lme4 computes it after the fit (also for boundary fits, as lme4 1.1-31); the
    RX-based covariance (inverse of the weighted Schur complement) for large fits
    (10,000 rows or more), nAGQ = 0, or when the Hessian is not positive definite.
    """
    nt = m.re.theta0.size
    theta, beta = par[:nt], par[nt:]
    u, eta, L, ZL, w = m.pirls_u(theta, beta)
    if nAGQ == 0 and m.w_rx is not None:
        w = m.w_rx
        L = m._chol(ZL, w)
    WX = m.X * w[:, None]
    ZtWX = np.asarray(ZL.T @ WX)
    S = m.X.T @ WX - ZtWX.T @ m._solveL(L, ZtWX)
    V_rx = np.linalg.inv(S)
    if H is None or nAGQ == 0 or m.n >= 10000:
        return V_rx
    try:
        h = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return V_rx
    hb = h[nt:, nt:]
    V = hb + hb.T
    if not np.all(np.isfinite(V)) or np.min(np.linalg.eigvalsh(V)) <= 0:
        return V_rx
    return V


def _assemble(m: GLMM, gf: GlmerFormula, xnames, par, crit, H, nAGQ, messages) -> GlmerFit:
    re = m.re
    nt = re.theta0.size
    theta = par[:nt]
    singular = bool(np.any(theta[re.lower == 0] < _SINGULAR_TOL))
    if singular:
        messages.append(_SINGULAR_MSG)
    beta = par[nt:]
    V = _vcov(m, par, H, nAGQ)
    u, eta, *_ = m.pirls_u(theta, beta)
    deviance = float(np.sum(m.fam.dev_resid(m.y, m.fam.linkinv(eta), m.wt)))
    rows, ranef, off = [], {}, 0
    seen: dict[str, int] = {}
    for t, T in zip(re.terms, re.T_list(theta), strict=True):
        c = seen.get(t.group, 0)
        label = t.group if c == 0 else f"{t.group}.{c}"
        seen[t.group] = c + 1
        Sig = T @ T.T
        sd = np.sqrt(np.diag(Sig))
        for i in range(t.k):
            rows.append((label, t.cnames[i], None, Sig[i, i], sd[i]))
        for j in range(t.k):
            for i in range(j + 1, t.k):
                cor = Sig[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                rows.append((label, t.cnames[j], t.cnames[i], Sig[i, j], cor))
        b = u[off:off + t.k * t.nl].reshape(t.nl, t.k) @ T.T
        frame = pd.DataFrame(b, index=pd.Index(t.levels, name=t.group), columns=t.cnames)
        ranef[t.group] = frame if t.group not in ranef else ranef[t.group].join(frame)
        off += t.k * t.nl
    varcorr = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
    ngrps: dict[str, int] = {}
    for t in re.terms:
        ngrps.setdefault(t.group, t.nl)
    return GlmerFit(formula=repr(gf), response=gf.response, family=m.fam.family,
                    link=m.fam.link, nAGQ=nAGQ,
                    fixef=pd.Series(beta, index=xnames, dtype=float),
                    vcov=pd.DataFrame(V, index=xnames, columns=xnames), theta=theta.copy(),
                    crit=float(crit), deviance=deviance, nobs=m.n, ngrps=ngrps,
                    varcorr=varcorr, ranef=ranef, is_singular=singular, messages=messages)


# ------------------------------------------------------------------ batched kernel
def _glmer_batched(batch, formula: str, family: str = "binomial", link: str | None = None,
                   nAGQ: int = 1, *, conf_level: float = 0.95) -> pd.DataFrame:
    """Batched kernel of :func:`glmer` (see :func:`._glmer_kernel.glmer_kernel`)."""
    from ._glmer_kernel import glmer_kernel

    return glmer_kernel(batch, formula, family=family, link=link, nAGQ=nAGQ,
                        conf_level=conf_level)


glmer = batched(_glmer_batched)(glmer)
