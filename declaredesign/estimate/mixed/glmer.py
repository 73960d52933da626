"""``glmer``: generalized linear mixed models as lme4 fits and broom.mixed reports them.

This module holds the estimator: its argument spec (:class:`GlmerSpec`, validated
once by :func:`parse_glmer`), the public :func:`glmer`, the fit (:class:`GlmerFit`)
and the batched kernel (:func:`glmer_kernel`) registered with
:mod:`declaredesign.estimate.protocol`. The maths lives in :mod:`.pirls` (the
general fit), :mod:`.families` and :mod:`.random_intercept_glmm` (the batched path).

The kernel fits one random intercept ``(1 | g)`` with a numeric fixed part (offsets
and a ``cbind`` response allowed), Laplace or adaptive Gauss-Hermite, for a whole
batch at once; it declines every other formula, and every simulation it cannot
settle (rank-deficient fixed effects, fewer than two groups, non-positive
Hessians, no convergence), which the protocol's per-simulation fallback then fits
with :func:`glmer`, with the reason.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ..._validation import fail
from ...batch import Batch
from ...errors import EstimationError, FitWarning, FormulaError
from ...groups import GroupIndex
from ..protocol import KernelResult, empty_tidy, register_estimator
from .bars import LHS_PLACEHOLDER, GlmerFormula
from .families import Family, make_family
from .merfit import (
    SINGULAR_MESSAGE,
    VARCORR_COLUMNS,
    FixedEffectRows,
    MerFitMixin,
    check_keywords,
    complete_rows,
    drop_rank_deficient,
    dropped_message,
    fit_quietly,
    full_rank,
    is_singular,
    ran_pars_table,
    singular_rows,
    variance_components,
)
from .model_matrices import build_reterms, fixed_matrix, term_matrix
from .pirls import GLMM, conv_messages
from .random_intercept_glmm import Stacked, ri_glmer_fit

__all__ = ["glmer", "GlmerFit", "GlmerSpec", "parse_glmer", "glmer_kernel"]

_KEYWORDS = ("family", "link", "nAGQ", "weights", "conf_level")
_NON_INTEGER = "non-integer #successes in a binomial glm!"


# ------------------------------------------------------------------ arguments
@dataclass(frozen=True)
class GlmerSpec:
    """:func:`glmer`'s arguments, validated once; feeds the standalone fit and the kernel.

    Parameters
    ----------
    formula : str
    parsed : GlmerFormula
        Response (maybe ``cbind``), offsets, fixed part and bars.
    variables : tuple of str
        Data columns the formula reads.
    family : Family
        Family and link.
    nAGQ : int
    weights : str or None
        Column of prior weights (the number of trials of a proportion response).
    conf_level : float
    """

    formula: str
    parsed: GlmerFormula
    variables: tuple[str, ...]
    family: Family
    nAGQ: int = 1
    weights: str | None = None
    conf_level: float = 0.95

    @property
    def outcome(self) -> str:
        """The response as written (left of ``~``), for the rows of a failed fit."""
        return self.parsed.response


def parse_glmer(formula: str, **kwargs: Any) -> GlmerSpec:
    """Validate :func:`glmer`'s arguments (all but the data) into a :class:`GlmerSpec`.

    Parameters
    ----------
    formula : str
    **kwargs
        ``family``, ``link``, ``nAGQ``, ``weights``, ``conf_level``.

    Returns
    -------
    GlmerSpec

    Raises
    ------
    DeclarationError
        Naming the argument: a bad value, or a keyword glmer does not take.
    FormulaError
        A formula lme4 would not read.
    """
    func = "glmer"
    check_keywords(func, kwargs, _KEYWORDS)
    nAGQ = kwargs.get("nAGQ", 1)
    conf_level = kwargs.get("conf_level", 0.95)
    if not isinstance(formula, str):
        fail(func, "formula", formula, "a string such as 'y ~ x + (1 | g)'")
    fam = make_family(func, kwargs.get("family", "binomial"), kwargs.get("link"))
    if isinstance(nAGQ, bool) or not isinstance(nAGQ, int | np.integer) or \
            not 0 <= nAGQ <= 100:
        fail(func, "nAGQ", nAGQ, "an integer between 0 and 100")
    if not (isinstance(conf_level, float | int) and 0 < conf_level < 1):
        fail(func, "conf_level", conf_level, "a number in (0, 1)")
    weights = kwargs.get("weights")
    if weights is not None and not isinstance(weights, str):
        fail(func, "weights", weights, "the name of a column of prior weights, or None")
    parsed = GlmerFormula(formula, func)
    variables = parsed.variables()
    if weights is not None and weights not in variables:
        variables = sorted([*variables, weights])
    return GlmerSpec(formula, parsed, tuple(variables), fam, int(nAGQ), weights,
                     float(conf_level))


def _check_columns(spec: GlmerSpec, names) -> None:
    missing = [c for c in spec.variables if c not in names]
    if missing:
        raise FormulaError(f"glmer(formula={spec.parsed!r}): column(s) "
                           f"{', '.join(map(repr, missing))} not found in the data.")


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


def _prior_weights(data, weights: str | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    pw = _eval(weights, data)
    if np.any(pw < 0) or not np.all(np.isfinite(pw)):
        raise EstimationError("glmer: negative weights not allowed.")
    return pw


def _response(gf: GlmerFormula, data, fam: Family, weights: str | None = None):
    """Response as a proportion (binomial) and the prior weights, as R's family$initialize.

    Prior weights multiply the number of trials of a ``cbind`` response and are the
    number of trials of a proportion response; a number of successes that is not
    an integer draws R's warning, as ``binomial()$initialize`` does.
    """
    n = len(data[next(iter(data.keys()))])
    pw = _prior_weights(data, weights, n)
    y, wt = _counts(gf, data, fam, n)
    wt = wt * pw
    if fam.family == "binomial" and np.any(np.abs(wt * y - np.round(wt * y)) > 1e-3):
        warnings.warn(f"glmer: {_NON_INTEGER}", FitWarning, stacklevel=4)
    return y, wt


def _counts(gf: GlmerFormula, data, fam: Family, n: int):
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
        """Show the formula, the criterion and the sizes."""
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
def glmer(formula: str, data: pd.DataFrame, family: Literal["binomial", "poisson"] = "binomial",
          link: str | None = None, nAGQ: int = 1, *, weights: str | None = None,
          conf_level: float = 0.95) -> GlmerFit:
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
        The response's distribution.
    link : str, optional
        ``"logit"`` (default) or ``"probit"`` for binomial, ``"log"`` for Poisson.
    nAGQ : int, default 1
        1 for the Laplace approximation, > 1 for adaptive Gauss-Hermite quadrature
        with that many nodes (one scalar random effect only), 0 for lme4's
        faster, cruder fit with beta inside PIRLS.
    weights : str, optional
        Column of prior weights, as lme4's ``weights``: for a proportion response
        the number of trials (``incidence/size ~ ...`` with ``weights="size"``
        is the ``cbind(incidence, size - incidence)`` fit); they multiply the
        trials of a ``cbind`` response and the log-likelihood of a Poisson one.
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
    spec = parse_glmer(formula, family=family, link=link, nAGQ=nAGQ, weights=weights,
                       conf_level=conf_level)
    if not isinstance(data, pd.DataFrame):
        fail("glmer", "data", data, "a pandas DataFrame", shown=type(data).__name__)
    return fit_glmer(spec, data)


def _factor_response(col: pd.Series) -> np.ndarray:
    """Code a factor response as R's binomial does: the first level is failure.

    The first level is the first category of a pandas Categorical (R's level
    order), else the first in sorted order, as R's ``factor()``.
    """
    cat = col.astype("category")
    return (cat.cat.codes.to_numpy() != 0).astype(float)


def _prepare(spec: GlmerSpec, data: pd.DataFrame):
    """Complete rows, response, weights, offset and full-rank X of one dataset."""
    _check_columns(spec, data.columns)
    cols = list(spec.variables)
    keep = ~data[cols].isna().any(axis=1).to_numpy()
    d = data.loc[keep, cols].reset_index(drop=True) if not keep.all() else data[cols]
    dd = {c: d[c].to_numpy() for c in cols}
    resp = spec.parsed.response
    if spec.family.family == "binomial" and resp in d and d[resp].dtype.kind not in "biuf":
        dd[resp] = _factor_response(d[resp])
    y, wt = _response(spec.parsed, dd, spec.family, spec.weights)
    dd[LHS_PLACEHOLDER] = y
    _, X, xnames = fixed_matrix(spec.parsed.lmer, dd, func="glmer")
    offset = np.zeros(len(y))
    for o in spec.parsed.offsets:
        offset += _eval(o, dd)
    X, xnames, dropped = drop_rank_deficient(X, xnames)
    return d, y, wt, offset, X, xnames, dropped


def fit_glmer(spec: GlmerSpec, data: pd.DataFrame) -> GlmerFit:
    """Fit a validated spec to one DataFrame (what :func:`glmer` runs).

    Parameters
    ----------
    spec : GlmerSpec
    data : pandas.DataFrame

    Returns
    -------
    GlmerFit
    """
    nAGQ = spec.nAGQ
    d, y, wt, offset, X, xnames, dropped = _prepare(spec, data)
    messages = []
    if dropped:
        messages.append(dropped_message(dropped))
        warnings.warn(f"glmer: {messages[-1]}", FitWarning, stacklevel=3)
    re = build_reterms(spec.parsed.bars, d)
    n = X.shape[0]
    # glmerControl ignores the number of levels against the number of rows
    # (observation-level random effects are a common GLMM), but not one level.
    for t in re.terms:
        if t.nl < 2:
            raise EstimationError(f"glmer: grouping factor {t.group!r} must have > 1 sampled "
                                  f"level; got {t.nl}.")
    if nAGQ > 1 and not (len(re.terms) == 1 and re.terms[0].k == 1):
        raise EstimationError("glmer: nAGQ > 1 is only available for models with a single, "
                              "scalar random-effects term.")
    try:
        m = GLMM(X, y, wt, offset, re, spec.family, stack=_one_stack(X, y, wt, offset, re,
                                                                      spec.family, nAGQ))
        par, crit, H, g = m.fit(nAGQ)
        if H is not None and n <= 10000:
            # lme4's convergence checks (checkConv) on the final derivatives
            messages.extend(conv_messages(g, H, re.theta0.size))
        fit = _assemble(m, spec.parsed, xnames, par, crit, H, nAGQ, messages)
    except np.linalg.LinAlgError as e:
        # lme4 stops here too ("Downdated VtV is not positive definite"): the penalised
        # system of this data is singular at some step of the fit
        raise EstimationError(f"glmer: the penalised least-squares system is singular "
                              f"({e}); lme4 stops with 'Downdated VtV is not positive "
                              f"definite' on such data.") from e
    for msg in fit.messages[len(dropped) > 0:]:
        warnings.warn(f"glmer: {msg}", FitWarning, stacklevel=3)
    fit.dropped = dropped
    fit.conf_level = spec.conf_level
    return fit


def _one_stack(X, y, wt, offset, re, fam: Family, nAGQ: int) -> Stacked | None:
    """One random intercept ``(1 | g)``: the dataset as the batched path stacks it.

    The general fit then evaluates its stage-two criterion with the batched path's
    code, so both take deriv12's Hessian from the same numbers (to rounding).
    """
    if nAGQ < 1 or len(re.terms) != 1 or re.terms[0].k != 1 or \
            not np.all(re.terms[0].Xi == 1):
        return None
    t = re.terms[0]
    n = y.size
    return Stacked.from_rows(X, y, wt, offset, np.zeros(n, dtype=np.int64),
                             t.codes.astype(np.int64), np.zeros(t.nl, dtype=np.int64), 1, fam)


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
    singular = is_singular(re, theta)
    if singular:
        messages.append(SINGULAR_MESSAGE)
    beta = par[nt:]
    V = _vcov(m, par, H, nAGQ)
    u, eta, *_ = m.pirls_u(theta, beta)
    deviance = float(np.sum(m.fam.dev_resid(m.y, m.fam.linkinv(eta), m.wt)))
    rows, ranef, ngrps = variance_components(re, theta, u)
    varcorr = pd.DataFrame(rows, columns=VARCORR_COLUMNS)
    return GlmerFit(formula=repr(gf), response=gf.response, family=m.fam.family,
                    link=m.fam.link, nAGQ=nAGQ,
                    fixef=pd.Series(beta, index=xnames, dtype=float),
                    vcov=pd.DataFrame(V, index=xnames, columns=xnames), theta=theta.copy(),
                    crit=float(crit), deviance=deviance, nobs=m.n, ngrps=ngrps,
                    varcorr=varcorr, ranef=ranef, is_singular=singular, messages=messages)


def _design_fit(spec: GlmerSpec, data: pd.DataFrame) -> FixedEffectRows:
    """Fit one simulation for the per-simulation fallback (fixed-effect rows, messages)."""
    return FixedEffectRows(fit_quietly("glmer", lambda: fit_glmer(spec, data)),
                           spec.conf_level)


# ------------------------------------------------------------------ batched kernel
def glmer_kernel(batch: Batch, spec: GlmerSpec) -> KernelResult:
    """Fixed-effect rows of ``glmer`` for every simulation of ``batch`` it can fit at once.

    Parameters
    ----------
    batch : Batch
    spec : GlmerSpec

    Returns
    -------
    KernelResult
        Rows with ``sim``, the tidy columns, ``error`` and ``warning`` (lme4's
        convergence messages); the simulations it declines, with the reason, in
        ``fallback``.
    """
    _check_columns(spec, batch.names)
    if batch.n_sims == 0:
        return KernelResult(empty_tidy(with_messages=True))
    bars = spec.parsed.bars
    fast = (len(bars) == 1 and bars[0].expr.strip() == "1" and len(bars[0].group) == 1
            and spec.nAGQ >= 1)
    gcol = bars[0].group[0] if fast else None
    if fast:
        fast = all(batch[c].dtype.kind in "biuf" for c in spec.variables if c != gcol)
    if not fast:
        return _decline(range(batch.n_sims), "glmer: no batched path for this formula")
    return _fast_path(batch, spec, gcol)


def _decline(sims, reason: str) -> KernelResult:
    return KernelResult(empty_tidy(with_messages=True), {int(s): reason for s in sims})


def _stacked_data(batch: Batch, spec: GlmerSpec, gcol: str):
    cols, ok, sim = complete_rows(batch, list(spec.variables))
    y, wt = _response(spec.parsed, cols, spec.family, spec.weights)
    cols[LHS_PLACEHOLDER] = y
    _, X, names = fixed_matrix(spec.parsed.lmer, cols, func="glmer")
    offset = np.zeros(y.size)
    for o in spec.parsed.offsets:
        offset += _eval(o, cols)
    g = batch.groups(gcol) if ok.all() else \
        GroupIndex.from_keys(sim, batch.n_sims, cols[gcol])
    return X, y, wt, offset, sim, g, names


def _fast_path(batch: Batch, spec: GlmerSpec, gcol: str) -> KernelResult:
    S = batch.n_sims
    try:
        X, y, wt, offset, sim, g, names = _stacked_data(batch, spec, gcol)
    except Exception:  # noqa: BLE001 -- a bad response in some simulation: each fit says which
        return _decline(range(S), "glmer: the response needs checking one simulation at a time")
    p = X.shape[1]
    gcode, gsim = g.codes, g.group_sim
    ngrps = np.bincount(gsim, minlength=S)
    nobs = np.bincount(sim, minlength=S)
    # Full column rank per simulation and at least two groups (fewer than rows).
    XtX = np.zeros((S, p, p))
    np.add.at(XtX, sim, X[:, :, None] * X[:, None, :])
    good = full_rank(XtX) & (ngrps >= 2) & (ngrps < nobs)
    declined = dict.fromkeys(np.flatnonzero(~good).tolist(),
                             "glmer: rank-deficient fixed effects or too few groups")
    keep = np.flatnonzero(good)
    if not keep.size:
        return KernelResult(empty_tidy(with_messages=True), declined)
    pos = np.full(S, -1)
    pos[keep] = np.arange(keep.size)
    rm = pos[sim] >= 0
    gpos = np.full(gsim.size, -1)
    gm = pos[gsim] >= 0
    gpos[gm] = np.arange(int(gm.sum()))
    st = Stacked.from_rows(X[rm], y[rm], wt[rm], offset[rm], pos[sim[rm]], gpos[gcode[rm]],
                           pos[gsim[gm]], keep.size, spec.family)
    with np.errstate(all="ignore"):
        res = ri_glmer_fit(st, spec.nAGQ)
    done = res["ok"]
    declined.update({int(keep[k]): f"glmer: the batched fit declines it ({res['reasons'][k]})"
                     for k in np.flatnonzero(~done)})
    messages = res["messages"]
    for s in np.flatnonzero(done & singular_rows(res["theta"])):
        messages[s] = "; ".join(filter(None, [messages[s], SINGULAR_MESSAGE]))
    tidy = _rows(keep[done], names, res["beta"][done], res["vcov"][done], spec,
                 messages[done])
    return KernelResult(tidy, declined)


def _rows(sims, names, est, V, spec: GlmerSpec, messages) -> pd.DataFrame:
    S, p = est.shape
    se = np.sqrt(np.diagonal(V, axis1=1, axis2=2))
    z = est / se
    crit = stats.norm.ppf(1 - (1 - spec.conf_level) / 2)
    return pd.DataFrame({
        "sim": np.repeat(sims, p),
        "term": np.tile(np.asarray(names, dtype=object), S),
        "estimate": est.ravel(), "std_error": se.ravel(), "statistic": z.ravel(),
        "p_value": (2 * stats.norm.sf(np.abs(z))).ravel(),
        "conf_low": (est - crit * se).ravel(), "conf_high": (est + crit * se).ravel(),
        "df": np.inf, "outcome": spec.outcome, "error": None,
        "warning": np.repeat(messages, p),
    })


glmer = register_estimator(glmer, parse=parse_glmer, fit=_design_fit, kernel=glmer_kernel)
