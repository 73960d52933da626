"""``lm_robust``: OLS with heteroskedasticity- and cluster-robust standard errors (estimatr).

The argument spec (:class:`LmRobustSpec`), the public function, the fit classes and the
batched kernel. The numerics live in modules named for the maths: :mod:`.ols` (the
single-dataset fit with column-pivoting QR), :mod:`.sandwich` (HC/CR variances and
Bell-McCaffrey df), :mod:`.stacked_ols` (every simulation at once), :mod:`.two_arm`
(the closed form for a cluster-assigned binary treatment), :mod:`.inference`.

The kernel fits every simulation from sufficient statistics and declines (leaves to the
per-simulation fallback, so their numbers stay R-exact) the simulations whose normal
equations are unsafe (rank-deficient or nearly so, too few rows) and the designs without
a batched form: several outcomes, several fixed effects, or fixed effects with CR2 and
clusters that cut across the fixed effect's levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from .._validation import fail
from ..batch import Batch
from ..errors import DeclarationError
from ..formula import parse_formula
from .arguments import (
    bind_vectors,
    check_alpha,
    check_column_arg,
    check_finite_frame,
    check_numeric,
    check_observed,
    check_se_type,
    check_weights,
    data_columns,
    parse_fixed_effects,
    spec_keywords,
    subset_mask,
)
from .batch_frame import (
    decline,
    decline_all,
    frame,
    group_index,
    simulations,
    tidy_result,
    weights_and_clusters,
)
from .fixed_effects import clusters_nested
from .inference import add_cis, apply_identification, rms
from .linear_hypothesis import linear_hypothesis
from .model_frame import ModelFrame, _is_missing, formula_variables, model_frame
from .ols import CoreFit, fit_arrays
from .protocol import TIDY_COLUMNS, KernelResult, register_estimator
from .stacked_ols import identified, lm_core, model_statistics
from .two_arm import binary_cluster_treatment

__all__ = ["LMRobustFit", "LmRobustSpec", "MultiOutcomeFit", "lm_robust", "lm_robust_glance_kernel",
           "lm_robust_kernel"]

_CLUSTER_SE = ("CR0", "CR2", "stata")
SeType = Literal["classical", "HC0", "HC1", "HC2", "HC3", "stata", "CR0", "CR2", "none"]
_FUNC = "lm_robust"


# ------------------------------------------------------------------------------ spec
@dataclass(frozen=True, eq=False)
class LmRobustSpec:
    """The validated arguments of :func:`lm_robust` (``se_type`` resolved to its default).

    Build it with :meth:`parse`; its fields are the function's arguments.
    """

    formula: str
    weights: str | None = None
    subset: Any = None
    clusters: str | None = None
    fixed_effects: Any = None
    se_type: str | None = None
    ci: bool = True
    alpha: float = 0.05
    return_vcov: bool = True
    try_cholesky: bool = False

    @classmethod
    def parse(cls, formula: str, **kwargs: Any) -> LmRobustSpec:
        """Validate the arguments once (unknown keywords are a DeclarationError)."""
        kw = spec_keywords(_FUNC, cls, kwargs)
        kw["alpha"] = check_alpha(_FUNC, kw["alpha"])
        kw["se_type"] = check_se_type(_FUNC, kw["se_type"], kw["clusters"] is not None)
        if kw["fixed_effects"] is not None and kw["weights"] is not None and \
                kw["se_type"] == "CR2":
            fail(_FUNC, "se_type", "CR2", "'CR0' or 'stata' when fixed_effects and weights "
                 "are both given (estimatr has no weighted CR2 with fixed effects)")
        if isinstance(formula, str) and "~" in formula:
            parse_formula(formula, func=_FUNC)
        return cls(formula=formula, **kw)

    @property
    def outcome(self) -> str | None:
        """The formula's single outcome when it is a plain name."""
        if not isinstance(self.formula, str) or "~" not in self.formula:
            return None
        return parse_formula(self.formula, func=_FUNC).outcome


# ------------------------------------------------------------------------------ result
@dataclass
class LMRobustFit:
    """Result of :func:`lm_robust` (estimatr's ``lm_robust`` object).

    Attributes
    ----------
    coefficients : pandas.Series
        Estimates by term; columns dropped for collinearity are NaN.
    vcov : pandas.DataFrame or None
        Variance-covariance matrix of the estimated (non-dropped) terms.
    """

    term: list[str]
    coefficients: pd.Series
    std_error: np.ndarray
    statistic: np.ndarray
    p_value: np.ndarray
    conf_low: np.ndarray
    conf_high: np.ndarray
    df: np.ndarray
    outcome: str
    vcov: pd.DataFrame | None
    nobs: int
    df_residual: int
    rank: int
    res_var: float
    r_squared: float
    adj_r_squared: float
    fstatistic: dict[str, float] | None
    se_type: str
    alpha: float
    nclusters: int | None = None
    weighted: bool = False
    proj_r_squared: float | None = None
    proj_adj_r_squared: float | None = None
    proj_fstatistic: dict[str, float] | None = None
    #: lm_lin: the covariate means used for centring
    scaled_center: pd.Series | None = None
    #: iv_robust(diagnostics=True): weak-instrument, Wu-Hausman and overidentification tests
    diagnostic_first_stage_fstatistic: dict[str, float] | None = None
    diagnostic_endogeneity_test: dict[str, float] | None = None
    diagnostic_overid_test: dict[str, float] | None = None

    def tidy(self) -> pd.DataFrame:
        """One row per term with the standard tidy columns."""
        return pd.DataFrame({
            "term": self.term, "estimate": self.coefficients.to_numpy(),
            "std_error": self.std_error, "statistic": self.statistic,
            "p_value": self.p_value, "conf_low": self.conf_low, "conf_high": self.conf_high,
            "df": self.df, "outcome": self.outcome,
        }, columns=TIDY_COLUMNS)

    def linear_hypothesis(self, hypothesis: Any) -> pd.DataFrame:
        """Estimate and test a linear combination of the coefficients (estimatr's lh_robust).

        Parameters
        ----------
        hypothesis : str or array_like
            An equation such as ``"z = 0.1"`` or ``"x - 2 * z = 0"`` in the fit's term
            names, or a vector of weights on the terms (right-hand side 0).

        Returns
        -------
        pandas.DataFrame
            One tidy row: the value of left minus right side, its standard error
            ``sqrt(L V L')``, t statistic, p-value and CI on ``df_residual`` degrees of
            freedom (as estimatr 1.0's ``lh_robust``), with ``term`` the hypothesis.

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({"y": [1.0, 2.0, 2.5, 4.0, 3.0, 5.5],
        ...                    "z": [0, 0, 0, 1, 1, 1], "x": [1, 3, 2, 5, 4, 6]})
        >>> lh = lm_robust("y ~ z + x", df).linear_hypothesis("z + x = 1")
        >>> lh["term"].tolist()
        ['z + x = 1']
        """
        return linear_hypothesis(self, hypothesis)

    def summary(self) -> str:
        """Return a printable summary like R's ``summary(lm_robust(...))``."""
        t = self.tidy().set_index("term")[["estimate", "std_error", "statistic", "p_value",
                                            "conf_low", "conf_high", "df"]]
        lines = [f"Standard error type:  {self.se_type}", "",
                 "Coefficients:", t.to_string(float_format=lambda v: f"{v:.6g}"), ""]
        lines.append(f"Multiple R-squared:  {self.r_squared:.6g} ,\t"
                     f"Adjusted R-squared:  {self.adj_r_squared:.6g}")
        if self.fstatistic:
            f = self.fstatistic
            lines.append(f"F-statistic: {f['value']:.6g} on {f['numdf']:g} and {f['dendf']:g} DF")
        return "\n".join(lines)

    def __repr__(self) -> str:
        """Show the summary."""
        return self.summary()




@dataclass
class MultiOutcomeFit:
    """Result of ``lm_robust("cbind(y1, y2) ~ x", ...)``: one fit per outcome.

    ``fits`` maps each outcome to its :class:`LMRobustFit` (fit statistics per outcome);
    ``vcov`` is the joint matrix over outcomes, rows and columns named
    ``"<outcome>:<term>"`` as estimatr names them; ``coefficients`` uses the same names.
    """

    fits: dict[str, LMRobustFit]
    vcov: pd.DataFrame | None
    nobs: int
    se_type: str
    alpha: float

    @property
    def outcome(self) -> list[str]:
        """The outcomes, in formula order."""
        return list(self.fits)

    @property
    def coefficients(self) -> pd.Series:
        """Estimates named ``"<outcome>:<term>"``."""
        return pd.concat([f.coefficients.rename(lambda t, o=o: f"{o}:{t}")
                          for o, f in self.fits.items()])

    @property
    def df_residual(self) -> int:
        """Residual degrees of freedom (the same for every outcome)."""
        return next(iter(self.fits.values())).df_residual

    def tidy(self) -> pd.DataFrame:
        """Tidy rows of every outcome, outcome by outcome (estimatr's order)."""
        return pd.concat([f.tidy() for f in self.fits.values()], ignore_index=True)

    def linear_hypothesis(self, hypothesis: Any) -> pd.DataFrame:
        """Linear hypothesis on ``"<outcome>:<term>"`` names, e.g. ``"y1:z - y2:z = 0"``."""
        return linear_hypothesis(self, hypothesis)

    def __repr__(self) -> str:
        """Show the tidy table."""
        return self.tidy().to_string(index=False)



# ----------------------------------------------------------------------- the fit
@dataclass
class Prepared:
    """Validated inputs of one lm_robust-family call, materialised on the rows used."""

    mf: ModelFrame
    weights: np.ndarray | None
    cluster: np.ndarray | None
    rows: np.ndarray      # boolean over the input rows
    fe_codes: list[np.ndarray] = field(default_factory=list)


def prepare(func: str, formula: str, data: Any, *, weights: Any, subset: Any,
            clusters: Any, fixed_effects: Any, extra_columns: Any = ()) -> Prepared:
    """Check the data-dependent arguments of one dataset and build the model frame."""
    cols = data_columns(func, data)
    clusters = check_column_arg(func, "clusters", clusters, cols)
    weights = check_column_arg(func, "weights", weights, cols)
    fe_names = parse_fixed_effects(func, fixed_effects, cols)
    n = len(np.asarray(next(iter(cols.values())))) if cols else 0
    sub = subset_mask(func, subset, cols, n)
    view = {k: np.asarray(v)[sub] for k, v in cols.items()} if subset is not None else cols
    for name in formula_variables(formula)[0]:
        if name in view:
            check_observed(func, name, np.asarray(view[name]), _is_missing(view[name]))
    mf = model_frame(formula, view,
                     extra_columns=[c for c in (clusters, weights, *fe_names, *extra_columns)
                                    if c], func=func)
    check_finite_frame(func, mf.outcome[0], mf.y, mf.X, list(mf.columns))
    for name in formula_variables(formula)[0]:
        check_numeric(func, "formula", name, np.asarray(view[name]))
    w = None
    if weights is not None:
        check_numeric(func, "weights", weights, np.asarray(view[weights]))
        w = np.asarray(view[weights], dtype=float)[mf.mask]
        check_weights(func, weights, w)
    cl = np.asarray(view[clusters])[mf.mask] if clusters is not None else None
    rows = np.zeros(n, dtype=bool)
    rows[np.flatnonzero(sub)[mf.mask]] = True
    fe_codes = [_level_codes(np.asarray(view[f])[mf.mask]) for f in fe_names]
    return Prepared(mf, w, cl, rows, fe_codes)


def _level_codes(values: np.ndarray) -> np.ndarray:
    values = values.astype(str) if values.dtype.kind == "O" else values
    return np.unique(values, return_inverse=True)[1].reshape(-1)


def drop_intercept(X: np.ndarray, columns: list[str]) -> tuple[np.ndarray, list[str]]:
    """Return the design without its intercept column (fixed effects absorb it)."""
    if "(Intercept)" not in columns:
        return X, columns
    i = columns.index("(Intercept)")
    return np.delete(X, i, axis=1), [c for c in columns if c != "(Intercept)"]


def _m_diag(core: CoreFit, k: int) -> np.ndarray | None:
    """Diagonal of ``(X'X)^{-1}`` over all ``k`` terms (NaN for dropped ones)."""
    if core.M is None:
        return None
    out = np.full(k, np.nan)
    out[core.kept] = np.diag(core.M)
    return out


def make_fit(cls: type, columns: list[str], core: CoreFit, outcome: str, se_type: str,
             alpha: float, ci: bool, return_vcov: bool, weighted: bool, *,
             y_rms: float | None = None, func: str = _FUNC, **extra: Any) -> Any:
    """Build an :class:`LMRobustFit` (or subclass) from a :class:`~.ols.CoreFit`.

    ``y_rms`` (the outcome's root mean square on the rows used) switches on the
    identification rule of :func:`~.inference.unidentified`; ``func`` names the
    estimator in its warning.
    """
    se, df = core.se, core.df
    if se_type != "none":
        se, df = apply_identification(
            func, list(columns), se, df, _m_diag(core, len(columns)), y_rms,
            df_residual=core.df_residual,
            n_clusters=core.nclusters if se_type in _CLUSTER_SE else None, stacklevel=4)
    stat, pv, lo, hi, dfv = add_cis(core.coef, se, df, alpha, ci and se_type != "none")
    if se_type == "none":
        dfv = np.full(len(columns), np.nan)
    kept_names = [columns[i] for i in core.kept]
    vcov = None
    if return_vcov and se_type != "none":
        # rows and columns of terms whose SE is not identified are NaN too, so a linear
        # hypothesis on them is not a p-value of rounding noise either
        lost = (np.isnan(se) & ~np.isnan(core.se))[core.kept]
        V = np.array(core.vcov, dtype=float, copy=True)
        V[lost, :] = np.nan
        V[:, lost] = np.nan
        vcov = pd.DataFrame(V, index=kept_names, columns=kept_names)
    return cls(
        term=list(columns), coefficients=pd.Series(core.coef, index=columns),
        std_error=se, statistic=stat, p_value=pv, conf_low=lo, conf_high=hi,
        df=dfv, outcome=outcome, vcov=vcov, nobs=core.nobs,
        df_residual=core.df_residual, rank=len(core.kept), res_var=core.res_var,
        r_squared=core.r_squared, adj_r_squared=core.adj_r_squared,
        fstatistic=core.fstatistic, se_type=se_type, alpha=alpha,
        nclusters=core.nclusters, weighted=weighted, **core.proj, **extra)


def fit_lm_robust(spec: LmRobustSpec, data: Any) -> LMRobustFit | MultiOutcomeFit:
    """Return the standalone fit of a validated spec on one dataset."""
    if isinstance(spec.formula, str) and "~" in spec.formula and \
            parse_formula(spec.formula, func=_FUNC).is_multi_outcome:
        return _fit_multi(spec, data)
    p = prepare(_FUNC, spec.formula, data, weights=spec.weights, subset=spec.subset,
                clusters=spec.clusters, fixed_effects=spec.fixed_effects)
    mf = p.mf
    if mf.y.ndim != 1:
        raise DeclarationError(f"{_FUNC}(formula={spec.formula!r}): formula must have one "
                               "outcome.")
    X, columns = mf.X, list(mf.columns)
    if p.fe_codes:
        X, columns = drop_intercept(X, columns)
    core = fit_arrays(mf.y, X, weights=p.weights, cluster=p.cluster, se_type=spec.se_type,
                      has_intercept=mf.has_intercept, fe_codes=p.fe_codes or None)
    return make_fit(LMRobustFit, columns, core, mf.outcome[0], spec.se_type, spec.alpha,
                    spec.ci, spec.return_vcov, p.weights is not None, y_rms=rms(mf.y))


def _fit_multi(spec: LmRobustSpec, data: Any) -> MultiOutcomeFit:
    """Several outcomes on one design: per-outcome fits and their joint sandwich."""
    f = parse_formula(spec.formula, func=_FUNC)
    ys = list(f.outcomes)
    if len(ys) < 2 or not all(v.isidentifier() for v in ys) or len(set(ys)) != len(ys):
        fail(_FUNC, "formula", spec.formula,
             "cbind() of two or more distinct column names on the left-hand side")
    p = prepare(_FUNC, f"{ys[0]} ~ {f.rhs.strip()}", data, weights=spec.weights,
                subset=spec.subset, clusters=spec.clusters, fixed_effects=spec.fixed_effects,
                extra_columns=ys[1:])
    cols = data_columns(_FUNC, data)
    X, columns = p.mf.X, list(p.mf.columns)
    if p.fe_codes:
        X, columns = drop_intercept(X, columns)
    fits, cores = {}, []
    for y in ys:
        check_numeric(_FUNC, "formula", y, np.asarray(cols[y]))
        yv = np.asarray(cols[y], dtype=float)[p.rows]
        core = fit_arrays(yv, X, weights=p.weights, cluster=p.cluster, se_type=spec.se_type,
                          has_intercept=p.mf.has_intercept, fe_codes=p.fe_codes or None)
        cores.append(core)
        fits[y] = make_fit(LMRobustFit, columns, core, y, spec.se_type, spec.alpha, spec.ci,
                           spec.return_vcov, p.weights is not None, y_rms=rms(yv))
    vcov = None
    if spec.return_vcov and spec.se_type != "none":
        vcov = _joint_vcov(ys, cores, [columns[i] for i in cores[0].kept], spec.se_type)
    return MultiOutcomeFit(fits=fits, vcov=vcov, nobs=cores[0].nobs, se_type=spec.se_type,
                           alpha=spec.alpha)


def _joint_vcov(ys: list[str], cores: list[CoreFit], kept: list[str], se_type: str
                ) -> pd.DataFrame:
    """Return the joint sandwich of several outcomes' coefficients (estimatr's names)."""
    blocks = [[None] * len(ys) for _ in ys]
    for a, ca in enumerate(cores):
        for b, cb in enumerate(cores):
            if a == b:
                blocks[a][b] = ca.vcov
            elif se_type == "classical":
                blocks[a][b] = ca.M * float(ca.resid @ cb.resid / ca.df_residual)
            else:
                blocks[a][b] = ca.M @ (ca.half.T @ cb.half) @ ca.M * ca.scale
    names = [f"{y}:{t}" for y in ys for t in kept]
    return pd.DataFrame(np.block(blocks), index=names, columns=names)


# ------------------------------------------------------------------ public entry
def lm_robust(formula: str, data: pd.DataFrame, weights: str | None = None,
              subset: Any = None, clusters: str | None = None, fixed_effects: Any = None,
              se_type: SeType | None = None, ci: bool = True, alpha: float = 0.05,
              return_vcov: bool = True, try_cholesky: bool = False) -> LMRobustFit:
    """Ordinary least squares with robust standard errors, as estimatr's ``lm_robust``.

    Parameters
    ----------
    formula : str
        ``"y ~ x + z"``; factors get treatment contrasts with R's column names.
    data : pandas.DataFrame
        The data. Rows with a missing value in any used column are dropped.
    weights : str, optional
        Column of positive weights (weighted least squares).
    subset : str or array of bool, optional
        Rows to use: a boolean mask or an expression evaluated on ``data``.
    clusters : str, optional
        Column of cluster identifiers; switches to cluster-robust variances.
    fixed_effects : str or list of str, optional
        Fixed effects absorbed by demeaning: a one-sided formula ``"~ block + site"``,
        a column name or a list of names. Their coefficients are not reported; with
        them ``r_squared`` is for the full model and ``proj_*`` for the demeaned one.
    se_type : str, optional
        ``"classical"``, ``"HC0"``, ``"HC1"`` (= ``"stata"``), ``"HC2"`` (default) or
        ``"HC3"``; with clusters ``"CR0"``, ``"CR2"`` (default, Bell-McCaffrey df) or
        ``"stata"``.
    ci : bool
        Compute statistics, p-values and confidence intervals.
    alpha : float
        Confidence intervals have level ``1 - alpha``.
    return_vcov : bool
        Keep the variance-covariance matrix on the result.
    try_cholesky : bool
        Accepted for compatibility; the QR path is always used (same numbers).

    Returns
    -------
    LMRobustFit

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 2.5, 4.0, 3.0, 5.5],
    ...                    "z": [0, 0, 0, 1, 1, 1], "g": [1, 1, 2, 2, 3, 3]})
    >>> fit = lm_robust("y ~ z", df)
    >>> round(float(fit.coefficients["z"]), 4)
    2.3333
    >>> fit.tidy().columns.tolist()[:3]
    ['term', 'estimate', 'std_error']
    """
    data, vec = bind_vectors(_FUNC, data, weights=weights, clusters=clusters)
    weights, clusters = vec["weights"], vec["clusters"]
    spec = LmRobustSpec.parse(formula, weights=weights, subset=subset, clusters=clusters,
                              fixed_effects=fixed_effects, se_type=se_type, ci=ci, alpha=alpha,
                              return_vcov=return_vcov, try_cholesky=try_cholesky)
    return fit_lm_robust(spec, data)


# ------------------------------------------------------------------------ batched
@dataclass
class _BatchFit:
    """What the batched fit of every simulation leaves for the tidy and glance kernels."""

    mf: ModelFrame
    sims: Any                       # GroupIndex of the rows' simulations
    X: np.ndarray
    columns: list[str]
    weights: np.ndarray | None
    res: dict[str, np.ndarray]
    ok: np.ndarray


def _batch_fit(batch: Batch, spec: LmRobustSpec, closed_form: bool = True
               ) -> _BatchFit | None:
    """Fit every simulation at once; None when the design has no batched form.

    ``closed_form=False`` skips the two-arm closed form (which has no full vcov).
    """
    if parse_formula(spec.formula, func=_FUNC).is_multi_outcome:
        return None                        # several outcomes: exact per-simulation fits
    cols = batch.columns
    clusters = check_column_arg(_FUNC, "clusters", spec.clusters, cols)
    weights = check_column_arg(_FUNC, "weights", spec.weights, cols)
    fe_names = parse_fixed_effects(_FUNC, spec.fixed_effects, cols)
    mf, view, sim = frame(_FUNC, batch, spec.formula, spec.subset,
                          [clusters, weights, *fe_names])
    if mf.y.ndim != 1:
        raise DeclarationError(f"{_FUNC}(formula={spec.formula!r}): formula must have one "
                               "outcome.")
    w, cl = weights_and_clusters(_FUNC, batch, view, mf, sim, weights, clusters)
    se = spec.se_type
    if len(fe_names) > 1:
        return None                        # no batched form yet: exact per-simulation fits
    X, columns = mf.X, list(mf.columns)
    fe = None
    if fe_names:
        key = np.asarray(view[fe_names[0]])
        fe = group_index(batch, fe_names[0], sim, key if bool(mf.mask.all()) else key[mf.mask])
        if se == "CR2" and not clusters_nested(cl, fe):
            return None                    # clusters across levels: per-simulation fits
        X, columns = drop_intercept(X, columns)
    sims = simulations(batch, sim)
    res = None
    if closed_form and se == "CR2" and w is None and fe is None and \
            columns[:1] == ["(Intercept)"] and len(columns) == 2:
        res = binary_cluster_treatment(sims, mf.y, X[:, 1], cl)
    if res is None:
        icol = columns.index("(Intercept)") if "(Intercept)" in columns else None
        res = lm_core(sims, mf.y, X, weights=w, clusters=cl, se_type=se, intercept_col=icol,
                      fixed_effect=fe)
    ok = res["ok"] & identified(res, sims, mf.y)
    return _BatchFit(mf, sims, X, columns, w, res, ok)


def lm_robust_kernel(batch: Batch, spec: LmRobustSpec) -> KernelResult:
    """Batched :func:`lm_robust`: one tidy row per (simulation, term).

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign.batch import Batch
    >>> rng = np.random.default_rng(0)
    >>> b = Batch({"y": rng.normal(size=40), "z": np.tile([0.0, 1.0], 20),
    ...            "g": np.repeat(np.arange(8), 5) % 4}, sim=np.repeat([0, 1], 20), n_sims=2)
    >>> lm_robust_kernel(b, LmRobustSpec.parse("y ~ z", clusters="g")).tidy.shape
    (4, 12)
    """
    bf = _batch_fit(batch, spec)
    if bf is None:
        return decline_all(batch)
    return tidy_result(bf.res, bf.ok, bf.columns, spec.alpha, spec.ci, bf.mf.outcome[0])


def lm_robust_glance_kernel(batch: Batch, spec: LmRobustSpec) -> KernelResult:
    """Batched ``glance`` of :func:`lm_robust`: one row of model statistics per simulation.

    The columns of :func:`~declaredesign.design.steps.summary.glance` on the standalone
    fit (R squared, adjusted, the model F test and its p-value, the first coefficient's
    degrees of freedom, ``nobs``, ``se_type``), with the tidy columns as NaN. Designs
    with fixed effects, without statistics (``ci=False``, ``se_type="none"``) or with the
    intercept not first are left to the per-simulation fits.

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign.batch import Batch
    >>> rng = np.random.default_rng(0)
    >>> b = Batch({"y": rng.normal(size=40), "x": rng.normal(size=40)},
    ...           sim=np.repeat([0, 1], 20), n_sims=2)
    >>> lm_robust_glance_kernel(b, LmRobustSpec.parse("y ~ x")).tidy["nobs"].tolist()
    [20, 20]
    """
    if spec.fixed_effects is not None or not spec.ci or spec.se_type == "none":
        return decline_all(batch)
    bf = _batch_fit(batch, spec, closed_form=False)
    if bf is None or (bf.mf.has_intercept and bf.columns[0] != "(Intercept)"):
        return decline_all(batch)
    stats_ = model_statistics(bf.sims, bf.mf.y, bf.X, bf.weights, bf.res, spec.se_type,
                              bf.mf.has_intercept)
    ok = bf.ok & stats_.pop("ok")
    keep = np.flatnonzero(ok)
    n_rows = len(keep)
    nan = np.full(n_rows, np.nan)
    none = np.full(n_rows, None, dtype=object)
    cols: dict[str, Any] = {"sim": keep, "term": none}
    cols.update({c: nan for c in TIDY_COLUMNS if c != "term"})
    cols.update(statistic=stats_["statistic"][keep], p_value=stats_["p_value"][keep],
                error=none, warning=none, r_squared=stats_["r_squared"][keep],
                adj_r_squared=stats_["adj_r_squared"][keep],
                df_residual=bf.res["df"][keep, 0], nobs=bf.res["n"][keep].astype(np.int64),
                se_type=np.full(n_rows, spec.se_type, dtype=object))
    return decline(pd.DataFrame(cols), ok)


lm_robust = register_estimator(lm_robust, parse=LmRobustSpec.parse, fit=fit_lm_robust,
                               kernel=lm_robust_kernel)
