"""``lmer``: linear mixed models as lme4 + lmerTest + broom.mixed fit and report them."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd
import scipy.linalg as sla
from scipy import stats

from ..._validation import check_one_of, fail
from ...errors import EstimationError, FitWarning, FormulaError
from .._protocol import batched
from ._formula import LmerFormula, fixed_matrix, parse_lmer_formula
from ._merfit import MerFitMixin
from ._pls import PLS, build_reterms, richardson_hessian, richardson_jacobian

__all__ = ["lmer", "LmerFit"]

DDF = Literal["Satterthwaite", "Kenward-Roger", "residual", "asymptotic", "lme4"]
_DDF_OPTIONS = ("Satterthwaite", "Kenward-Roger", "residual", "asymptotic", "lme4")
_SINGULAR_TOL = 1e-4  # lme4's isSingular default


def _check_common(func, formula, REML, ddf, conf_level):
    if not isinstance(formula, str):
        fail(func, "formula", formula, "a string such as 'y ~ x + (1 | g)'")
    if not isinstance(REML, (bool, np.bool_)):
        fail(func, "REML", REML, "True or False")
    check_one_of(func, "ddf", ddf, _DDF_OPTIONS)
    if not (isinstance(conf_level, float | int) and 0 < conf_level < 1):
        fail(func, "conf_level", conf_level, "a number in (0, 1)")


def _needed_columns(f: LmerFormula, data_cols) -> list[str]:
    import formulaic

    cols = set()
    for rhs in [f.fixed_formula] + [b.expr for b in f.bars]:
        try:
            spec = formulaic.Formula(rhs)
        except Exception as e:
            raise FormulaError(f"lmer(formula=...): cannot parse {rhs!r}: {e}") from e
        cols |= {str(v) for v in spec.required_variables}
    for b in f.bars:
        cols |= set(b.group)
    missing = sorted(c for c in cols if c not in data_cols)
    if missing:
        raise FormulaError(
            f"lmer(formula={f.fixed_formula!r} + random terms): column(s) "
            f"{', '.join(map(repr, missing))} not found in the data.")
    return sorted(cols)


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

    def __repr__(self) -> str:
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

        Returns
        -------
        dict with ``F``, ``NumDF``, ``DenDF``, ``p_value``.
        """
        ddf = self.ddf if ddf is None else ddf
        check_one_of("LmerFit.contest", "ddf", ddf, ("Satterthwaite", "Kenward-Roger"))
        L = np.atleast_2d(np.asarray(L, dtype=float))
        beta = self.fixef.to_numpy()
        p = beta.size
        if ddf == "Kenward-Roger":
            from ._kr import _lb_ddf

            PhiA, _, P, W = self._kenward_roger()
            q = np.linalg.matrix_rank(L)
            if q > 1:
                # pbkrtest scales F for q > 1; only single-df tests are provided.
                raise EstimationError("lmer: multi-df Kenward-Roger F tests are not "
                                      "implemented; use ddf='Satterthwaite'.")
            Lb = L @ beta
            F = float(Lb @ np.linalg.solve(L @ PhiA @ L.T, Lb))
            den = _lb_ddf(L, self.vcov.to_numpy(), P, W)
            return dict(F=F, NumDF=1, DenDF=den, p_value=float(stats.f.sf(F, 1, den)))
        V = self.vcov.to_numpy()
        VL = L @ V @ L.T
        d, P = np.linalg.eigh(VL)
        d, P = d[::-1], P[:, ::-1]
        q = int(np.sum(d > max(np.sqrt(np.finfo(float).eps) * d[0], 0)))
        PtL = (P.T @ L)[:q]
        J = self._jac_vcov.reshape(p, p, -1)
        t2 = (PtL @ beta) ** 2 / d[:q]
        F = float(t2.sum() / q)
        nu = np.empty(q)
        for m in range(q):
            g = np.einsum("i,ijk,j->k", PtL[m], J, PtL[m])
            nu[m] = 2 * d[m] ** 2 / (g @ self._vcov_varpar @ g)
        if q == 1:
            den = nu[0]
        elif np.all(np.abs(np.diff(nu)) < 1e-8):
            den = float(nu.mean())
        elif np.any(nu <= 2):
            den = 2.0
        else:
            E = np.sum(nu / (nu - 2))
            den = float(2 * E / (E - q))
        return dict(F=F, NumDF=q, DenDF=float(den), p_value=float(stats.f.sf(F, q, den)))

    def anova(self, ddf: str | None = None) -> pd.DataFrame:
        """lmerTest's ``anova(fit)`` F tests for each fixed-effect term.

        Each term's coefficients are tested jointly, which is lmerTest's type
        III test when no other term contains it (no interactions with it).
        Models with interactions raise, as their type III contrasts differ.
        """
        terms = {t: c for t, c in self.fixed_terms.items() if t != "(Intercept)"}
        for t in terms:
            parts = set(t.split(":"))
            if any(o != t and parts < set(o.split(":")) for o in terms):
                raise EstimationError("lmer: anova for models with interactions (type III "
                                      "marginal contrasts) is not implemented.")
        names = list(self.fixef.index)
        rows = []
        for t, cols in terms.items():
            L = np.zeros((len(cols), len(names)))
            for i, c in enumerate(cols):
                if c in names:
                    L[i, names.index(c)] = 1.0
            L = L[L.any(axis=1)]
            r = self.contest(L, ddf=ddf)
            rows.append((t, r["NumDF"], r["DenDF"], r["F"], r["p_value"]))
        return pd.DataFrame(rows, columns=["term", "NumDF", "DenDF", "F value", "Pr(>F)"]
                            ).set_index("term")

    def vcov_adjusted(self) -> pd.DataFrame:
        """Kenward-Roger adjusted covariance of the fixed effects (pbkrtest's vcovAdj)."""
        return pd.DataFrame(self._kenward_roger()[0], index=self.fixef.index,
                            columns=self.fixef.index)

    def _kenward_roger(self):
        if self._kr is None:
            if not self.REML:
                raise EstimationError("lmer: Kenward-Roger's method is only available for "
                                      "REML model fits.")
            if self._pls is None:
                raise EstimationError("lmer: this fit holds no model matrices for "
                                      "Kenward-Roger.")
            from ._kr import kenward_roger

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
            stat = est / se
            level = self.conf_level if conf_level is None else conf_level
            q = 1 - (1 - level) / 2
            if ddf in ("asymptotic", "lme4"):
                crit = stats.norm.ppf(q)
                p = 2 * stats.norm.sf(np.abs(stat)) if ddf == "asymptotic" else \
                    np.full_like(est, np.nan)
            else:
                crit = stats.t.ppf(q, df)
                p = 2 * stats.t.sf(np.abs(stat), df)
            parts.append(pd.DataFrame({
                "effect": "fixed", "group": None, "term": self.fixef.index.to_numpy(),
                "estimate": est, "std_error": se, "statistic": stat, "df": df, "p_value": p,
                "conf_low": est - crit * se, "conf_high": est + crit * se}))
        if "ran_pars" in effects:
            parts.append(ran_pars_table(self._varcorr))
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if not conf_int:
            out = out.drop(columns=["conf_low", "conf_high"])
        out["outcome"] = self.response
        return out


def ran_pars_table(varcorr: pd.DataFrame) -> pd.DataFrame:
    """broom.mixed's ``ran_pars`` rows from an ``as.data.frame(VarCorr(fit))`` table.

    Per group, each sd is followed by its correlations with the later terms
    (sd1, cor12, cor13, sd2, cor23, sd3); the residual sd is ``sd__Observation``.
    """
    vc = varcorr
    order = []
    for grp in pd.unique(vc["grp"]):
        block = vc.index[vc["grp"] == grp]
        for i in block:
            if pd.isna(vc.at[i, "var2"]):
                order.append(i)
                order.extend(j for j in block if not pd.isna(vc.at[j, "var2"])
                             and vc.at[j, "var1"] == vc.at[i, "var1"])
    vc = vc.loc[order]
    terms = []
    for _, r in vc.iterrows():
        if r["grp"] == "Residual":
            terms.append("sd__Observation")
        elif pd.isna(r["var2"]):
            terms.append(f"sd__{r['var1']}")
        else:
            terms.append(f"cor__{r['var1']}.{r['var2']}")
    return pd.DataFrame({
        "effect": "ran_pars", "group": vc["grp"].to_numpy(), "term": terms,
        "estimate": vc["sdcor"].to_numpy(), "std_error": np.nan, "statistic": np.nan,
        "df": np.nan, "p_value": np.nan, "conf_low": np.nan, "conf_high": np.nan})


# ---------------------------------------------------------------------- fitting
def _prepare(formula: str, data: pd.DataFrame):
    f = parse_lmer_formula(formula)
    cols = _needed_columns(f, data.columns)
    sub = data[cols]
    keep = ~sub.isna().any(axis=1).to_numpy()
    d = data.loc[keep].reset_index(drop=True) if not keep.all() else data
    y, X, xnames, terms = fixed_matrix(f, d, with_terms=True)
    return f, d, y, X, xnames, terms


def _drop_rank_deficient(X, names):
    """Keep a full-rank subset of columns, as lme4's pivoted-QR check."""
    if X.shape[1] == 0:
        return X, names, []
    _, R, piv = sla.qr(X, mode="economic", pivoting=True)
    d = np.abs(np.diag(R))
    rank = int(np.sum(d > 1e-7 * d[0])) if d.size else 0
    if rank == X.shape[1]:
        return X, names, []
    keep = np.sort(piv[:rank])
    dropped = [names[i] for i in sorted(piv[rank:])]
    return X[:, keep], [names[i] for i in keep], dropped


def lmer(formula: str, data: pd.DataFrame, *, REML: bool = True,
         ddf: DDF = "Satterthwaite", conf_level: float = 0.95) -> LmerFit:
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
    func = "lmer"
    _check_common(func, formula, REML, ddf, conf_level)
    if not isinstance(data, pd.DataFrame):
        fail(func, "data", data, "a pandas DataFrame", shown=type(data).__name__)
    f, d, y, X, xnames, terms = _prepare(formula, data)
    X, xnames, dropped = _drop_rank_deficient(X, xnames)
    messages = []
    if dropped:
        messages.append(f"fixed-effect model matrix is rank deficient so dropping "
                        f"{len(dropped)} column(s): {', '.join(dropped)}")
        warnings.warn(f"lmer: {messages[-1]}", FitWarning, stacklevel=2)
    re = build_reterms(f.bars, d)
    n, p = X.shape
    for t in re.terms:
        if t.nl < 2:
            raise EstimationError(f"lmer: grouping factor {t.group!r} must have > 1 sampled "
                                  f"level; got {t.nl}.")
        if t.nl >= n:
            raise EstimationError(
                f"lmer: number of levels of each grouping factor must be < number of "
                f"observations (grouping factor {t.group!r} has {t.nl} levels, {n} rows).")
    pls = PLS(X, y, re, bool(REML))
    theta = pls.optimize()
    fit = _assemble(pls, f, xnames, theta, ddf, messages)
    fit.dropped = dropped
    fit.fixed_terms = terms
    fit._pls = pls
    fit.conf_level = float(conf_level)
    return fit


def _assemble(pls: PLS, f: LmerFormula, xnames, theta, ddf, messages) -> LmerFit:
    s = pls.solve(theta)
    n, p = pls.n, pls.p
    crit = pls._crit(s)
    sigma2 = s["pwrss"] / (n - p if pls.REML else n)
    sigma = float(np.sqrt(sigma2))
    V = sigma2 * np.linalg.inv(s["MX"])
    fixef = pd.Series(s["beta"], index=xnames, dtype=float)
    vcov = pd.DataFrame(V, index=xnames, columns=xnames)
    re = pls.re
    is_singular = bool(np.any(theta[re.lower == 0] < _SINGULAR_TOL))
    if is_singular:
        messages.append("boundary (singular) fit: see help('isSingular')")
    # Variance components and conditional modes.
    rows, ranef, off = [], {}, 0
    u = s["u"]
    # Repeated grouping factors are told apart as R's make.unique does (g, g.1).
    seen: dict[str, int] = {}
    labels = []
    for t in re.terms:
        c = seen.get(t.group, 0)
        labels.append(t.group if c == 0 else f"{t.group}.{c}")
        seen[t.group] = c + 1
    for t, T, label in zip(re.terms, re.T_list(theta), labels, strict=True):
        Sig = sigma2 * T @ T.T
        sd = np.sqrt(np.diag(Sig))
        for i in range(t.k):
            rows.append((label, t.cnames[i], None, Sig[i, i], sd[i]))
        for j in range(t.k):
            for i in range(j + 1, t.k):
                cor = Sig[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                rows.append((label, t.cnames[j], t.cnames[i], Sig[i, j], cor))
        ut = u[off:off + t.k * t.nl].reshape(t.nl, t.k)
        b = ut @ T.T
        frame = pd.DataFrame(b, index=pd.Index(t.levels, name=t.group), columns=t.cnames)
        # lme4's ranef joins the terms of one grouping factor into one frame.
        ranef[t.group] = frame if t.group not in ranef else ranef[t.group].join(frame)
        off += t.k * t.nl
    rows.append(("Residual", None, None, sigma2, sigma))
    varcorr = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
    ngrps = {}
    for t in re.terms:
        ngrps.setdefault(t.group, t.nl)
    df_satt, (H, A, J) = _satterthwaite(pls, theta, sigma, V, xnames)
    bars = " + ".join(f"({b.expr} | {b.group_name})" for b in f.bars)
    return LmerFit(formula=f"{f.fixed_formula} + {bars}", response=f.response, REML=pls.REML,
                   ddf=ddf, fixef=fixef,
                   vcov=vcov, sigma=sigma, theta=theta, crit=crit, nobs=n, ngrps=ngrps,
                   varcorr=varcorr, ranef=ranef, df_satt=df_satt, hess_varpar=H,
                   is_singular=is_singular, messages=messages)._set_derivs(A, J)


def _satterthwaite(pls: PLS, theta, sigma, V, xnames):
    """lmerTest's Satterthwaite df via Richardson-extrapolated numerical derivatives."""
    varpar = np.append(theta, sigma)
    H = richardson_hessian(pls.dev_varpar, varpar)
    vals, vecs = np.linalg.eigh(H)
    pos = vals > 1e-8
    A = 2.0 * (vecs[:, pos] / vals[pos]) @ vecs[:, pos].T
    p = V.shape[0]
    J = richardson_jacobian(lambda vp: pls.covbeta(vp).ravel(), varpar)  # (p*p, k)
    df = np.empty(p)
    for j in range(p):
        g = J[j * p + j, :]
        df[j] = 2.0 * V[j, j] ** 2 / (g @ A @ g)
    return pd.Series(df, index=xnames), (H, A, J)


# ------------------------------------------------------------------ batched kernel
def _lmer_batched(batch, formula: str, *, REML: bool = True, ddf: DDF = "Satterthwaite",
                  conf_level: float = 0.95) -> pd.DataFrame:
    """Batched kernel of :func:`lmer` (see :func:`._kernel.lmer_kernel`)."""
    from ._kernel import lmer_kernel

    return lmer_kernel(batch, formula, REML=REML, ddf=ddf, conf_level=conf_level)


lmer = batched(_lmer_batched)(lmer)
