"""``lmer``: linear mixed models as lme4 + lmerTest + broom.mixed fit and report them.

This module holds the estimator: its argument spec (:class:`LmerSpec`, validated
once by :func:`parse_lmer`), the public :func:`lmer`, the fit (:class:`LmerFit`) and
the batched kernel (:func:`lmer_kernel`) registered with
:mod:`declaredesign.estimate.protocol`. The maths lives in modules named for it:
:mod:`.pls` (the general fit), :mod:`.satterthwaite`, :mod:`.kenward_roger`,
:mod:`.random_intercept` and :mod:`.nested_intercepts` (the batched paths).

The kernel fits one random intercept ``(1 | g)`` (Satterthwaite or Kenward-Roger df),
nested intercepts ``(1 | a/b)`` and a random intercept and slope on one factor,
``(1 + z | g)`` or ``(z || g)`` (:mod:`.random_slopes`; Satterthwaite), with a
numeric fixed part, for a whole batch at once; it declines every other formula, and
every simulation its paths cannot take (rank-deficient fixed effects, fewer than two
groups, as many random effects as rows, no convergence), which the protocol's
per-simulation fallback then fits with :func:`lmer`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ..._validation import check_one_of, fail
from ...batch import Batch
from ...errors import EstimationError, FitWarning, FormulaError
from ...groups import GroupIndex
from ..arguments import bind_vectors, check_numeric, check_weights
from ..protocol import KernelResult, empty_tidy, register_estimator
from .anova import anova_table
from .bars import LmerFormula, parse_lmer_formula
from .kenward_roger import contest_kenward_roger, kenward_roger
from .merfit import (
    SINGULAR_MESSAGE,
    VARCORR_COLUMNS,
    FixedEffectRows,
    MerFitMixin,
    check_keywords,
    check_levels,
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
from .model_matrices import build_reterms, fixed_matrix
from .nested_intercepts import nested_fit
from .pls import PLS
from .random_intercept import RIStats, ri_fit, ri_kenward_roger
from .random_intercepts import InterceptLayout, intercept_layout, layout_statistics, resolve_layout
from .random_slopes import SlopeLayout, slope_fit, slope_layout, slope_stats
from .satterthwaite import contest_satterthwaite, satterthwaite

__all__ = ["lmer", "LmerFit", "LmerSpec", "parse_lmer", "lmer_kernel"]

DDF = Literal["Satterthwaite", "Kenward-Roger", "residual", "asymptotic", "lme4"]
_DDF_OPTIONS = ("Satterthwaite", "Kenward-Roger", "residual", "asymptotic", "lme4")
_KEYWORDS = ("REML", "ddf", "conf_level", "weights")


# ------------------------------------------------------------------ arguments
@dataclass(frozen=True)
class LmerSpec:
    """:func:`lmer`'s arguments, validated once; feeds the standalone fit and the kernel.

    Parameters
    ----------
    formula : str
    parsed : LmerFormula
        The formula split into response, fixed part and bars.
    variables : tuple of str
        Data columns the formula reads.
    REML : bool
    ddf : str
    conf_level : float
    weights : str or None
        Column of precision weights.
    """

    formula: str
    parsed: LmerFormula
    variables: tuple[str, ...]
    REML: bool = True
    ddf: str = "Satterthwaite"
    conf_level: float = 0.95
    weights: str | None = None

    @property
    def outcome(self) -> str:
        """The response (left of ``~``), for the rows of a failed fit."""
        return self.parsed.response

    @property
    def columns(self) -> tuple[str, ...]:
        """Data columns a fit reads: the formula's, then the weights column."""
        return self.variables + ((self.weights,) if self.weights is not None else ())


def parse_lmer(formula: str, **kwargs: Any) -> LmerSpec:
    """Validate :func:`lmer`'s arguments (all but the data) into an :class:`LmerSpec`.

    Parameters
    ----------
    formula : str
    **kwargs
        ``REML``, ``ddf``, ``conf_level``, ``weights`` (a column name) as :func:`lmer`
        takes them.

    Returns
    -------
    LmerSpec

    Raises
    ------
    DeclarationError
        Naming the argument: a bad value, or a keyword lmer does not take.
    FormulaError
        A formula lme4 would not read.
    """
    func = "lmer"
    check_keywords(func, kwargs, _KEYWORDS)
    REML = kwargs.get("REML", True)
    ddf = kwargs.get("ddf", "Satterthwaite")
    conf_level = kwargs.get("conf_level", 0.95)
    weights = kwargs.get("weights")
    if not isinstance(formula, str):
        fail(func, "formula", formula, "a string such as 'y ~ x + (1 | g)'")
    if not isinstance(REML, bool | np.bool_):
        fail(func, "REML", REML, "True or False")
    check_one_of(func, "ddf", ddf, _DDF_OPTIONS)
    if not (isinstance(conf_level, float | int) and 0 < conf_level < 1):
        fail(func, "conf_level", conf_level, "a number in (0, 1)")
    if weights is not None and not (isinstance(weights, str) and weights):
        fail(func, "weights", weights, "a column name, or an array or Series with one value "
             "per row of the data", shown=f"<{type(weights).__name__}>")
    if weights is not None and ddf == "Kenward-Roger":
        fail(func, "ddf", ddf, "'Satterthwaite' (or another method but Kenward-Roger) "
             "when weights are given: pbkrtest's Kenward-Roger ignores lmer's weights")
    parsed = parse_lmer_formula(formula)
    return LmerSpec(formula, parsed, tuple(parsed.variables(func)), bool(REML), ddf,
                    float(conf_level), weights)


_KR_WEIGHTS = ("lmer: Kenward-Roger's method is not available for weighted fits (pbkrtest, "
               "which lmerTest uses, ignores lmer's weights, so there is no reference to "
               "match); use ddf='Satterthwaite'.")


def _check_columns(spec: LmerSpec, names) -> None:
    if spec.weights is not None and spec.weights not in names:
        cols = ", ".join(sorted(map(str, names)))
        fail("lmer", "weights", spec.weights, f"a column of the data (available: {cols})")
    missing = sorted(c for c in spec.variables if c not in names)
    if missing:
        raise FormulaError(
            f"lmer(formula={spec.parsed.fixed_formula!r} + random terms): column(s) "
            f"{', '.join(map(repr, missing))} not found in the data.")


def wald_columns(est, se, df, ddf: str, level: float):
    """T (or normal) statistics, p-values and interval bounds of fixed effects.

    ``"asymptotic"`` and ``"lme4"`` use normal quantiles, ``"lme4"`` gives no p-value
    (as broom.mixed on a plain lme4 fit); the others use t with ``df``.
    """
    stat = est / se
    q = 1 - (1 - level) / 2
    if ddf in ("asymptotic", "lme4"):
        crit = stats.norm.ppf(q)
        p = 2 * stats.norm.sf(np.abs(stat)) if ddf == "asymptotic" else \
            np.full_like(est, np.nan)
    else:
        crit = stats.t.ppf(q, df)
        p = 2 * stats.t.sf(np.abs(stat), df)
    return stat, p, est - crit * se, est + crit * se



class LmerFit(MerFitMixin):
    """A fitted linear mixed model (lme4's ``merMod`` with lmerTest's extras).

    Attributes
    ----------
    fixef : pandas.Series
        Fixed-effect estimates.
    vcov : pandas.DataFrame
        Their covariance, ``sigma^2 (RX'RX)^-1``.
    sigma : float
        Residual standard deviation.
    theta : numpy.ndarray
        Relative covariance factor parameters, lme4's ``getME(fit, "theta")``.
    nobs : int
    ngrps : dict
        Number of levels of each grouping factor.
    REML : bool
    """

    def __init__(self, *, formula, response, REML, ddf, fixef, vcov, sigma, theta, crit, nobs,
                 ngrps, varcorr, ranef, df_satt, hess_varpar, is_singular, messages):
        self.formula = formula
        self.response = response
        self.REML = REML
        self.ddf = ddf
        self.fixef = fixef
        self.vcov = vcov
        self.sigma = sigma
        self.theta = theta
        self._crit = crit
        self.nobs = nobs
        self.ngrps = ngrps
        self._varcorr = varcorr
        self._ranef = ranef
        self._df_satt = df_satt
        self.hess_varpar = hess_varpar
        self.is_singular = is_singular
        self.messages = messages
        self.dropped: list[str] = []
        self._pls = None
        self._kr = None
        self.fixed_terms: dict[str, list[str]] = {}
        self._vcov_varpar = None
        self._jac_vcov = None
        self.conf_level = 0.95
        self.weights: str | None = None   # the precision weights' column, if any
        self._X = None       # fixed-effects matrix (unweighted, rank-deficient columns dropped)
        self._data = None    # the rows fitted, for anova's Type III hypotheses

    def __repr__(self) -> str:
        """Show the formula, the criterion and the sizes."""
        kind = "REML" if self.REML else "ML"
        return f"<LmerFit {self.formula!r} fit by {kind}: nobs={self.nobs}, ngrps={self.ngrps}>"

    # ----------------------------------------------------------- lme4 accessors
    @property
    def npar(self) -> int:
        """Number of parameters counted by logLik (fixed, theta, sigma)."""
        return len(self.fixef) + len(self.theta) + 1

    @property
    def REMLcrit(self) -> float:
        """The REML criterion at the optimum (REML fits only)."""
        if not self.REML:
            raise EstimationError("lmer: REMLcrit is defined for REML fits only.")
        return self._crit

    @property
    def deviance(self) -> float:
        """The ML deviance at the optimum (ML fits only)."""
        if self.REML:
            raise EstimationError("lmer: deviance of a REML fit is not defined; use REMLcrit.")
        return self._crit

    def df(self, ddf: str | None = None) -> pd.Series:
        """Denominator degrees of freedom of each fixed effect for ``ddf``."""
        ddf = self.ddf if ddf is None else check_one_of("LmerFit.df", "ddf", ddf, _DDF_OPTIONS)
        if ddf == "Satterthwaite":
            return self._df_satt.copy()
        if ddf == "Kenward-Roger":
            return pd.Series(self._kenward_roger()[1], index=self.fixef.index)
        if ddf == "residual":
            return pd.Series(float(self.nobs - len(self.fixef)), index=self.fixef.index)
        return pd.Series(np.inf if ddf == "asymptotic" else np.nan, index=self.fixef.index)

    def _set_derivs(self, A, J):
        self._vcov_varpar = A        # asymptotic covariance of (theta, sigma)
        self._jac_vcov = J           # d vec(vcov(beta)) / d (theta, sigma)
        return self

    def contest(self, L, ddf: str | None = None) -> dict:
        """F test of ``L beta = 0`` (lmerTest's contest; Satterthwaite or Kenward-Roger).

        Parameters
        ----------
        L : array_like, shape (q, p)
            Contrast rows over the fixed effects.
        ddf : {"Satterthwaite", "Kenward-Roger"}, optional
            Default: the fit's ``ddf``.

        Returns
        -------
        dict with ``F``, ``NumDF``, ``DenDF``, ``p_value``; Kenward-Roger also gives
        ``F_unscaled`` (pbkrtest scales the Wald F of a multi-df test).
        """
        ddf = self.ddf if ddf is None else ddf
        check_one_of("LmerFit.contest", "ddf", ddf, ("Satterthwaite", "Kenward-Roger"))
        L = np.atleast_2d(np.asarray(L, dtype=float))
        beta = self.fixef.to_numpy()
        if ddf == "Kenward-Roger":
            PhiA, _, P, W = self._kenward_roger()
            return contest_kenward_roger(L, beta, PhiA, self.vcov.to_numpy(), P, W)
        return contest_satterthwaite(L, beta, self.vcov.to_numpy(), self._jac_vcov,
                                     self._vcov_varpar)

    def anova(self, ddf: str | None = None) -> pd.DataFrame:
        """LmerTest's ``anova(fit)``: a Type III F test of every fixed-effect term.

        Factors with several levels are tested jointly (multi-df F tests) and
        interactions with lmerTest's Type III hypotheses for treatment-coded factors
        (:mod:`.anova`), so the numbers are lmerTest's.

        Parameters
        ----------
        ddf : {"Satterthwaite", "Kenward-Roger"}, optional
            Denominator degrees of freedom (default: the fit's ``ddf`` when it is one
            of these, else Satterthwaite, lmerTest's default). Kenward-Roger scales
            the F statistic as pbkrtest does; REML fits only.

        Returns
        -------
        pandas.DataFrame
            One row per term: ``term``, ``sum_sq``, ``mean_sq``, ``num_df``,
            ``den_df``, ``statistic`` (F) and ``p_value``, lmerTest's ``Sum Sq``,
            ``Mean Sq``, ``NumDF``, ``DenDF``, ``F value`` and ``Pr(>F)``.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(2)
        >>> g = np.repeat(np.arange(12), 6)
        >>> d = pd.DataFrame({"g": g, "f": np.tile(["a", "b", "c"], 24),
        ...                   "x": rng.normal(size=72)})
        >>> d["y"] = d.x + rng.normal(size=12)[g] + rng.normal(size=72)
        >>> lmer("y ~ f * x + (1 | g)", d).anova()["term"].tolist()
        ['f', 'x', 'f:x']
        """
        if ddf is None:
            ddf = self.ddf if self.ddf in ("Satterthwaite", "Kenward-Roger") else \
                "Satterthwaite"
        check_one_of("LmerFit.anova", "ddf", ddf, ("Satterthwaite", "Kenward-Roger"))
        if ddf == "Kenward-Roger":
            self._kenward_roger()   # refuses ML and weighted fits, whatever the terms
        return anova_table(self, ddf)

    def vcov_adjusted(self) -> pd.DataFrame:
        """Kenward-Roger adjusted covariance of the fixed effects (pbkrtest's vcovAdj)."""
        return pd.DataFrame(self._kenward_roger()[0], index=self.fixef.index,
                            columns=self.fixef.index)

    def _kenward_roger(self):
        if self._kr is None:
            if self.weights is not None:
                raise EstimationError(_KR_WEIGHTS)
            if not self.REML:
                raise EstimationError("lmer: Kenward-Roger's method is only available for "
                                      "REML model fits.")
            if self._pls is None:
                raise EstimationError("lmer: this fit holds no model matrices for "
                                      "Kenward-Roger.")
            self._kr = kenward_roger(self._pls, self.theta, self.sigma, self.vcov.to_numpy())
        return self._kr

    # ------------------------------------------------------------------ tables
    def summary(self, ddf: str | None = None) -> pd.DataFrame:
        """``coef(summary(fit, ddf=))`` as lmerTest: Estimate, Std. Error, df, t value, Pr(>|t|)."""
        t = self.tidy(effects=("fixed",), conf_int=False, ddf=ddf)
        return pd.DataFrame({"Estimate": t["estimate"].to_numpy(),
                             "Std. Error": t["std_error"].to_numpy(),
                             "df": t["df"].to_numpy(), "t value": t["statistic"].to_numpy(),
                             "Pr(>|t|)": t["p_value"].to_numpy()}, index=t["term"].to_numpy())

    def tidy(self, effects=("fixed", "ran_pars"), conf_int: bool = True,
             conf_level: float | None = None, ddf: str | None = None) -> pd.DataFrame:
        """broom.mixed's ``tidy`` with snake_case columns.

        Fixed-effect rows carry t statistics with ``ddf`` degrees of freedom
        (p-values and confidence intervals use them; ``"asymptotic"`` and
        ``"lme4"`` give normal-quantile intervals, ``"lme4"`` no p-value, as
        broom.mixed on a plain lme4 fit). ``ran_pars`` rows give standard
        deviations and correlations (``sd__(Intercept)``, ``cor__(Intercept).x``,
        ``sd__Observation``).
        """
        if isinstance(effects, str):
            effects = (effects,)
        ddf = self.ddf if ddf is None else check_one_of("LmerFit.tidy", "ddf", ddf, _DDF_OPTIONS)
        parts = []
        if "fixed" in effects:
            est = self.fixef.to_numpy()
            V = self._kenward_roger()[0] if ddf == "Kenward-Roger" else self.vcov.to_numpy()
            se = np.sqrt(np.diag(V))
            df = self.df(ddf).to_numpy()
            level = self.conf_level if conf_level is None else conf_level
            stat, p, lo, hi = wald_columns(est, se, df, ddf, level)
            parts.append(pd.DataFrame({
                "effect": "fixed", "group": None, "term": self.fixef.index.to_numpy(),
                "estimate": est, "std_error": se, "statistic": stat, "df": df, "p_value": p,
                "conf_low": lo, "conf_high": hi}))
        if "ran_pars" in effects:
            parts.append(ran_pars_table(self._varcorr))
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if not conf_int:
            out = out.drop(columns=["conf_low", "conf_high"])
        out["outcome"] = self.response
        return out


# ---------------------------------------------------------------------- fitting
def lmer(formula: str, data: pd.DataFrame, *, REML: bool = True,
         ddf: DDF = "Satterthwaite", conf_level: float = 0.95, weights=None) -> LmerFit:
    """Fit a linear mixed-effects model, as ``lmerTest::lmer``.

    Parameters
    ----------
    formula : str
        lme4 syntax: ``"y ~ x + (1 | g)"``, ``(1 + x | g)``, ``(x || g)``,
        ``(1 | a/b)``, crossed ``(1 | a) + (1 | b)``.
    data : pandas.DataFrame
        Rows with a missing value in a used column are dropped (R's na.omit).
    REML : bool, default True
        Fit by restricted maximum likelihood; False for maximum likelihood.
    ddf : {"Satterthwaite", "Kenward-Roger", "residual", "asymptotic", "lme4"}
        Degrees of freedom for the fixed-effect t tests in ``tidy``/``summary``
        (default ``"Satterthwaite"`` as lmerTest; ``"Kenward-Roger"`` also uses
        the adjusted standard errors, REML fits only; ``"lme4"`` reports no
        p-values, like plain lme4).
    conf_level : float, default 0.95
        Default confidence level of ``tidy`` (broom.mixed's ``conf.level``).
    weights : str, array_like or pandas.Series, optional
        Precision weights, as lme4's ``lmer(weights=)``: row ``i`` has residual
        variance ``sigma^2 / w_i``. A column of ``data``, or one value per row of
        ``data`` (taken in row order). Rows with a missing weight are dropped; the
        others must be positive and finite.

    Returns
    -------
    LmerFit

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(20), 3)
    >>> d = pd.DataFrame({"g": g, "x": rng.normal(size=60)})
    >>> d["y"] = 1 + 0.5 * d.x + rng.normal(size=20)[g] + rng.normal(size=60)
    >>> fit = lmer("y ~ x + (1 | g)", d)
    >>> fit.tidy()[["term", "estimate"]].shape
    (4, 2)
    """
    if not isinstance(data, pd.DataFrame):
        fail("lmer", "data", data, "a pandas DataFrame", shown=type(data).__name__)
    data, vec = bind_vectors("lmer", data, weights=weights)
    spec = parse_lmer(formula, REML=REML, ddf=ddf, conf_level=conf_level,
                      weights=vec["weights"])
    return fit_lmer(spec, data)


def _prepare(spec: LmerSpec, data: pd.DataFrame):
    _check_columns(spec, data.columns)
    sub = data[list(spec.columns)]
    keep = ~sub.isna().any(axis=1).to_numpy()
    d = data.loc[keep].reset_index(drop=True) if not keep.all() else data
    y, X, xnames, terms = fixed_matrix(spec.parsed, d, with_terms=True)
    return d, y, X, xnames, terms


def _weights(spec: LmerSpec, d: pd.DataFrame) -> np.ndarray | None:
    """Return the precision weights of the rows kept, checked (numeric, positive, finite)."""
    if spec.weights is None:
        return None
    w = d[spec.weights].to_numpy()
    check_numeric("lmer", "weights", spec.weights, w)
    w = w.astype(float)
    check_weights("lmer", spec.weights, w)
    return w


def fit_lmer(spec: LmerSpec, data: pd.DataFrame) -> LmerFit:
    """Fit a validated spec to one DataFrame (what :func:`lmer` runs).

    Parameters
    ----------
    spec : LmerSpec
    data : pandas.DataFrame

    Returns
    -------
    LmerFit
    """
    d, y, X, xnames, terms = _prepare(spec, data)
    w = _weights(spec, d)
    X, xnames, dropped = drop_rank_deficient(X, xnames)
    messages = []
    if dropped:
        messages.append(dropped_message(dropped))
        warnings.warn(f"lmer: {messages[-1]}", FitWarning, stacklevel=3)
    re = build_reterms(spec.parsed.bars, d)
    check_levels("lmer", re, X.shape[0])
    pls = PLS(X, y, re, spec.REML, weights=w)
    theta = pls.optimize()
    fit = _assemble(pls, spec.parsed, xnames, theta, spec.ddf, messages)
    if fit.is_singular:
        # as glmer (and lme4) do; designs keep it as the simulation's warning instead
        warnings.warn(f"lmer: {SINGULAR_MESSAGE}", FitWarning, stacklevel=3)
    fit.dropped = dropped
    fit.fixed_terms = terms
    fit._pls = pls
    fit._X, fit._data, fit.weights = X, d, spec.weights
    fit.conf_level = spec.conf_level
    return fit


def _assemble(pls: PLS, f: LmerFormula, xnames, theta, ddf, messages) -> LmerFit:
    s = pls.solve(theta)
    n = pls.n
    crit = pls._crit(s)
    sigma2 = s["pwrss"] / (n - pls.p if pls.REML else n)
    sigma = float(np.sqrt(sigma2))
    V = sigma2 * np.linalg.inv(s["MX"])
    fixef = pd.Series(s["beta"], index=xnames, dtype=float)
    vcov = pd.DataFrame(V, index=xnames, columns=xnames)
    singular = is_singular(pls.re, theta)
    if singular:
        messages.append(SINGULAR_MESSAGE)
    rows, ranef, ngrps = variance_components(pls.re, theta, s["u"], sigma2)
    rows.append(("Residual", None, None, sigma2, sigma))
    varcorr = pd.DataFrame(rows, columns=VARCORR_COLUMNS)
    df_satt, H, A, J = satterthwaite(pls, theta, sigma, V)
    bars = " + ".join(f"({b.expr} | {b.group_name})" for b in f.bars)
    return LmerFit(formula=f"{f.fixed_formula} + {bars}", response=f.response, REML=pls.REML,
                   ddf=ddf, fixef=fixef, vcov=vcov, sigma=sigma, theta=theta, crit=crit,
                   nobs=n, ngrps=ngrps, varcorr=varcorr, ranef=ranef,
                   df_satt=pd.Series(df_satt, index=xnames), hess_varpar=H,
                   is_singular=singular, messages=messages)._set_derivs(A, J)


def _design_fit(spec: LmerSpec, data: pd.DataFrame) -> FixedEffectRows:
    """Fit one simulation for the per-simulation fallback (fixed-effect rows, messages)."""
    return FixedEffectRows(fit_quietly("lmer", lambda: fit_lmer(spec, data)), spec.conf_level)


# ------------------------------------------------------------------ batched kernel
def lmer_kernel(batch: Batch, spec: LmerSpec) -> KernelResult:
    """Fixed-effect rows of ``lmer`` for every simulation of ``batch`` it can fit at once.

    Parameters
    ----------
    batch : Batch
    spec : LmerSpec

    Returns
    -------
    KernelResult
        Rows with ``sim``, the tidy columns, ``error`` and ``warning`` (the singular-fit
        message); the simulations it declines, with the reason, in ``fallback``.
    """
    _check_columns(spec, batch.names)
    if batch.n_sims == 0:
        return KernelResult(empty_tidy(with_messages=True))
    if spec.weights is not None:
        # The batched paths' sufficient statistics are unweighted: weighted fits go to
        # the per-simulation fit, which takes the weights.
        return KernelResult(empty_tidy(with_messages=True),
                            dict.fromkeys(range(batch.n_sims),
                                          "lmer: no batched path for weighted fits"))
    layout = intercept_layout(spec.parsed, batch, spec.variables)
    if spec.ddf == "Kenward-Roger" and (layout is None or layout.kind != "single"
                                        or not spec.REML):
        layout = None
    res = None if layout is None else _fast_path(batch, spec, layout)
    slopes = None if layout is not None or spec.ddf == "Kenward-Roger" else \
        slope_layout(spec.parsed, batch, spec.variables)
    if slopes is not None:
        res = _slopes_path(batch, spec, slopes)
    if res is None:
        reason = "lmer: no batched path for this formula and ddf"
        return KernelResult(empty_tidy(with_messages=True),
                            dict.fromkeys(range(batch.n_sims), reason))
    return res


def _stats(batch: Batch, spec: LmerSpec, layout: InterceptLayout):
    cols, ok, sim = complete_rows(batch, list(spec.variables))
    layout = resolve_layout(layout, batch, cols, ok, sim)
    if layout is None:
        return None
    # model_frame stacks plain numeric columns without formulaic's materialiser.
    y, X, names = fixed_matrix(spec.parsed, cols)
    st, ns = layout_statistics(layout, X, y, batch, cols, ok, sim)
    return st, ns, names, layout


def _declined(st: RIStats, good: np.ndarray) -> dict[int, str]:
    """List the simulations the batched paths leave to the general fit, with reasons."""
    rank_ok = full_rank(st.XtX)
    out = {}
    for s in np.flatnonzero(~good):
        out[int(s)] = ("lmer: rank-deficient fixed effects" if not rank_ok[s] else
                       "lmer: too few groups or rows for the batched path")
    return out


def _fast_path(batch: Batch, spec: LmerSpec, layout: InterceptLayout) -> KernelResult | None:
    """Fit what the batched paths can; None when the data rule the layout out."""
    stats = _stats(batch, spec, layout)
    if stats is None:
        return None
    st, ns, names, layout = stats
    p = len(names)
    # Rank-deficient X, fewer than two groups, as many groups as rows: lme4 refuses
    # or drops columns, so the general fit reports them.
    good = full_rank(st.XtX) & (st.ngrps >= 2) & (st.ngrps < st.nobs) & (st.nobs > p)
    if ns is not None:
        good &= (ns.nouter >= 2)
    declined = _declined(st, good)
    if not good.any():
        return KernelResult(empty_tidy(with_messages=True), declined)
    keep = np.flatnonzero(good)
    if ns is not None and not good.all():
        # the class sums span all sims: refit the good ones as a sub-batch
        sub = _fast_path(batch.select_sims(keep), spec, layout)
        tidy = sub.tidy.assign(sim=keep[sub.tidy["sim"].to_numpy()])
        return KernelResult(tidy, declined)
    if ns is None:
        sub = _subset(st, keep)
        res = ri_fit(sub, spec.REML)
        if spec.ddf == "Kenward-Roger":
            res["vcov"], res["df"] = ri_kenward_roger(sub, res)
    else:
        res = nested_fit(ns, spec.REML)
    return KernelResult(_rows(keep, names, res, spec), declined)


def _slopes_path(batch: Batch, spec: LmerSpec, layout: SlopeLayout) -> KernelResult:
    """Fit ``(1 + z | g)`` or ``(z || g)`` for the simulations the slopes path takes."""
    cols, ok, sim = complete_rows(batch, list(spec.variables))
    y, X, names = fixed_matrix(spec.parsed, cols)
    g = batch.groups(layout.group) if ok.all() else \
        GroupIndex.from_keys(sim, batch.n_sims, cols[layout.group])
    st = slope_stats(X, y, np.asarray(cols[layout.slope], dtype=float), g, sim, batch.n_sims)
    p = len(names)
    # lme4 refuses as many random effects as rows; too few groups or rank-deficient X
    # go to the general fit, which reports them.
    good = full_rank(st.XtX) & (st.ngrps >= 2) & (2 * st.ngrps < st.nobs) & (st.nobs > p)
    declined = {int(s): ("lmer: rank-deficient fixed effects" if not full_rank(st.XtX)[s]
                         else "lmer: too few groups or rows for the batched path")
                for s in np.flatnonzero(~good)}
    keep = np.flatnonzero(good)
    if not keep.size:
        return KernelResult(empty_tidy(with_messages=True), declined)
    res = slope_fit(st.subset(keep), layout.correlated, spec.REML)
    conv = res["converged"]
    for s in keep[~conv]:
        declined[int(s)] = "lmer: the batched slopes path did not converge"
    res = {k: v[conv] for k, v in res.items()}
    res["theta"] = res["diag"]  # the singular check reads T's diagonal
    return KernelResult(_rows(keep[conv], names, res, spec), declined)


def _subset(st: RIStats, keep: np.ndarray) -> RIStats:
    pos = np.full(st.n_sims, -1)
    pos[keep] = np.arange(keep.size)
    m = pos[st.cls_sim] >= 0
    return RIStats(st.W[keep], st.Cn[m], pos[st.cls_sim[m]], st.cls_n[m], st.cls_count[m],
                   st.nobs[keep], st.ngrps[keep], st.p, st.b0[keep], st.XtX[keep])


def _rows(sims: np.ndarray, names: list[str], res: dict, spec: LmerSpec) -> pd.DataFrame:
    S, p = res["beta"].shape
    est = res["beta"]
    se = np.sqrt(np.diagonal(res["vcov"], axis1=1, axis2=2))
    n = res["nobs"].astype(float)[:, None]
    ddf = spec.ddf
    if ddf in ("Satterthwaite", "Kenward-Roger"):
        df = res["df"]
    elif ddf == "residual":
        df = np.broadcast_to(n - p, (S, p))
    else:
        df = np.full((S, p), np.inf if ddf == "asymptotic" else np.nan)
    with np.errstate(all="ignore"):
        stat, pv, lo, hi = wald_columns(est, se, df, ddf, spec.conf_level)
    warn = np.where(singular_rows(res["theta"]), SINGULAR_MESSAGE, None)
    return pd.DataFrame({
        "sim": np.repeat(sims, p),
        "term": np.tile(np.asarray(names, dtype=object), S),
        "estimate": est.ravel(), "std_error": se.ravel(), "statistic": stat.ravel(),
        "p_value": pv.ravel(), "conf_low": lo.ravel(), "conf_high": hi.ravel(),
        "df": np.asarray(df, dtype=float).ravel(),
        "outcome": spec.outcome, "error": None, "warning": np.repeat(warn, p),
    })


lmer = register_estimator(lmer, parse=parse_lmer, fit=_design_fit, kernel=lmer_kernel)
