"""``lm_robust``: OLS with heteroskedasticity- and cluster-robust standard errors (estimatr)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import fail
from ..errors import DeclarationError, EstimationError
from ._formula import ModelFrame, model_frame
from ._linalg import pivoted_rank, sandwich
from ._protocol import TIDY_COLUMNS, batched

__all__ = ["lm_robust", "LMRobustFit"]

SeType = Literal["classical", "HC0", "HC1", "HC2", "HC3", "stata", "CR0", "CR2"]
_CLUSTER_SE = ("CR0", "CR2", "stata")
_HC_SE = ("classical", "HC0", "HC1", "HC2", "HC3", "stata")


# --------------------------------------------------------------------------- validation
def check_se_type(func: str, se_type: str | None, clustered: bool) -> str:
    """Resolve the default ``se_type`` and reject ones that do not fit the design."""
    if clustered:
        if se_type is None:
            return "CR2"
        if se_type not in _CLUSTER_SE:
            fail(func, "se_type", se_type, "one of 'CR0', 'CR2', 'stata' when clusters "
                 "are given")
        return se_type
    if se_type is None:
        return "HC2"
    if se_type not in _HC_SE:
        fail(func, "se_type", se_type, "one of 'classical', 'HC0', 'HC1', 'HC2', 'HC3', "
             "'stata' without clusters (CR0/CR2 need clusters)")
    return "HC1" if se_type == "stata" else se_type


def check_alpha(func: str, alpha: Any) -> float:
    """``alpha`` must be a number strictly between 0 and 1."""
    ok = isinstance(alpha, numbers.Real) and not isinstance(alpha, bool) and np.isfinite(alpha)
    if not (ok and 0 < alpha < 1):
        fail(func, "alpha", alpha, "a number in (0, 1)")
    return float(alpha)


def check_column_arg(func: str, arg: str, value: Any, data: Mapping[str, Any]) -> str | None:
    """A column-name argument (clusters, weights...): None or a name present in ``data``."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        fail(func, arg, value, "a column name (a non-empty string) or None")
    if value not in data:
        cols = ", ".join(sorted(map(str, data.keys())))
        fail(func, arg, value, f"a column of the data (available: {cols})")
    return value


def check_numeric(func: str, arg: str, name: str, values: np.ndarray) -> None:
    """Reject non-numeric outcome or weight columns."""
    if np.asarray(values).dtype.kind not in "fiub":
        fail(func, arg, name, "a numeric column", shown=repr(name))


def check_weights(func: str, name: str, w: np.ndarray) -> None:
    """Weights (on the rows used) must be finite and positive."""
    if w.size and not (np.all(np.isfinite(w)) and np.all(w > 0)):
        bad = w[~(np.isfinite(w) & (w > 0))][:3]
        fail(func, "weights", name, f"a column of positive finite numbers (found {bad.tolist()})",
             shown=repr(name))


def subset_mask(func: str, subset: Any, data: Mapping[str, Any], n: int) -> np.ndarray:
    """Rows selected by ``subset``: a boolean array or a pandas ``eval`` expression."""
    if subset is None:
        return np.ones(n, dtype=bool)
    if isinstance(subset, str):
        frame = pd.DataFrame({k: np.asarray(v) for k, v in data.items()})
        try:
            m = np.asarray(frame.eval(subset), dtype=bool)
        except Exception as e:
            raise DeclarationError(f"{func}(subset={subset!r}): subset must be an expression "
                                   f"on the data's columns; evaluating it failed: {e}") from e
    else:
        m = np.asarray(subset)
        if m.dtype.kind != "b" or m.shape != (n,):
            fail(func, "subset", subset, f"a boolean array of length {n} or an expression",
                 shown="<array>")
    return m


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
    extra: dict[str, Any] = field(default_factory=dict)

    def tidy(self) -> pd.DataFrame:
        """One row per term with the standard tidy columns."""
        return pd.DataFrame({
            "term": self.term, "estimate": self.coefficients.to_numpy(),
            "std_error": self.std_error, "statistic": self.statistic,
            "p_value": self.p_value, "conf_low": self.conf_low, "conf_high": self.conf_high,
            "df": self.df, "outcome": self.outcome,
        }, columns=TIDY_COLUMNS)

    def summary(self) -> str:
        """A printable summary like R's ``summary(lm_robust(...))``."""
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
        return self.summary()


# ---------------------------------------------------------------------------- numerics
def add_cis(est: np.ndarray, se: np.ndarray, df: np.ndarray, alpha: float,
            ci: bool) -> tuple[np.ndarray, ...]:
    """t statistics, two-sided p-values and CIs as estimatr's ``add_cis_pvals``."""
    est, se, df = (np.asarray(a, dtype=float) for a in (est, se, df))
    if not ci:
        nan = np.full_like(est, np.nan)
        return nan, nan, nan, nan, nan
    df = np.where(df > 0, df, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = est / se
        p = 2.0 * stats.t.sf(np.abs(stat), df)
        crit = stats.t.ppf(1.0 - alpha / 2.0, df) * se
    return stat, p, est - crit, est + crit, df


@dataclass
class CoreFit:
    """Numbers of one single-dataset fit, for the kept columns and overall."""

    coef: np.ndarray          # length k (NaN for dropped)
    se: np.ndarray            # length k
    df: np.ndarray            # length k
    vcov: np.ndarray          # rank x rank
    kept: np.ndarray
    nobs: int
    df_residual: int
    res_var: float
    r_squared: float
    adj_r_squared: float
    fstatistic: dict[str, float] | None
    nclusters: int | None


def fit_arrays(y: np.ndarray, X: np.ndarray, *, weights: np.ndarray | None = None,
               cluster: np.ndarray | None = None, se_type: str = "HC2",
               has_intercept: bool = True) -> CoreFit:
    """Fit one dataset given the outcome, design matrix, weights and cluster codes."""
    n, k = X.shape
    if n == 0:
        raise EstimationError("lm_robust: no complete rows to fit (every row has a missing "
                              "value in a used column, or the subset is empty).")
    weighted = weights is not None
    if weighted:
        wm = float(np.mean(weights))
        sw = np.sqrt(weights / wm)
        Xf, yf = X * sw[:, None], y * sw
    else:
        wm, sw, Xf, yf = 1.0, None, X, y
    kept = pivoted_rank(Xf)
    r = len(kept)
    coef = np.full(k, np.nan)
    se = np.full(k, np.nan)
    dfv = np.full(k, np.nan)
    if r == 0:
        raise EstimationError("lm_robust: the design matrix has no non-zero column.")
    Xk = Xf[:, kept]
    q, R = np.linalg.qr(Xk)
    b = sla_solve_triangular(R, q.T @ yf)
    Rinv = sla_solve_triangular(R, np.eye(r))
    M = Rinv @ Rinv.T
    coef[kept] = b
    e = yf - Xk @ b
    df_res = n - r
    clustered = cluster is not None
    J = None
    if clustered:
        cl = np.unique(cluster, return_inverse=True)[1].reshape(-1)
        J = int(cl.max()) + 1 if n else 0
    else:
        cl = None
    kw: dict[str, Any] = {}
    if weighted and se_type == "CR2":
        kw = dict(X_unweighted=X[:, kept], e_unweighted=y - X[:, kept] @ b, sqrt_w=sw,
                  weight_mean=wm)
    vr = sandwich(Xk, e, M, se_type, cluster=cl, **kw)
    se[kept] = np.sqrt(np.diag(vr.vcov))
    dfv[kept] = vr.df
    res_var = float(np.sum(e ** 2 * wm) / df_res) if weighted else vr.res_var
    if weighted:
        if has_intercept:
            ybar = np.sum(weights * y) / np.sum(weights)
            tss = float(np.sum(weights * (y - ybar) ** 2))
        else:
            tss = float(np.sum(yf ** 2 * wm))
    else:
        tss = float(np.sum((y - y.mean()) ** 2)) if has_intercept else float(np.sum(y ** 2))
    r2 = 1.0 - df_res * res_var / tss if tss > 0 else np.nan
    adj = 1.0 - (1.0 - r2) * ((n - int(has_intercept)) / df_res) if df_res > 0 else np.nan
    numdf = r - int(has_intercept)
    fstat = None
    if numdf > 0:
        dendf = (J - 1) if clustered else df_res
        if se_type == "classical":
            value = r2 * df_res / ((1.0 - r2) * numdf)
        else:
            # estimatr indexes the full coefficient vector (dropped terms included) but
            # the kept-terms vcov with the same positions, so a dropped term among the
            # first `rank` positions makes the F statistic NA; we reproduce that.
            idx = np.arange(int(has_intercept), r)
            bb = coef[idx]
            try:
                V = vr.vcov[np.ix_(idx, idx)]
                np.linalg.cholesky(V)
                value = float(bb @ np.linalg.solve(V, bb) / numdf)
            except np.linalg.LinAlgError:
                value = np.nan
        fstat = {"value": float(value), "numdf": float(numdf), "dendf": float(dendf)}
    return CoreFit(coef=coef, se=se, df=dfv, vcov=vr.vcov, kept=kept, nobs=n,
                   df_residual=df_res, res_var=res_var, r_squared=r2, adj_r_squared=adj,
                   fstatistic=fstat, nclusters=J)


def sla_solve_triangular(R: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``R x = B`` for upper-triangular ``R``."""
    from scipy.linalg import solve_triangular
    return solve_triangular(R, B, lower=False)


# ------------------------------------------------------------------------ public entry
@dataclass
class Prepared:
    """Validated inputs of one lm_robust call, materialised on the rows used."""

    mf: ModelFrame
    weights: np.ndarray | None
    cluster: np.ndarray | None
    se_type: str
    alpha: float
    rows: np.ndarray      # boolean over the input rows


def prepare(func: str, formula: str, data: Mapping[str, Any], *, weights: Any, subset: Any,
            clusters: Any, fixed_effects: Any, se_type: Any, alpha: Any) -> Prepared:
    """Validate the arguments of lm_robust and build the model frame."""
    if isinstance(data, pd.DataFrame):
        cols: Mapping[str, Any] = {str(c): data[c].to_numpy() for c in data.columns}
    elif isinstance(data, Mapping):
        cols = data
    else:
        fail(func, "data", data, "a pandas DataFrame", shown=type(data).__name__)
    if fixed_effects is not None:
        raise DeclarationError(f"{func}(fixed_effects={fixed_effects!r}): fixed_effects is not "
                               "supported yet; add the factor to the formula instead.")
    alpha = check_alpha(func, alpha)
    clusters = check_column_arg(func, "clusters", clusters, cols)
    weights = check_column_arg(func, "weights", weights, cols)
    se_type = check_se_type(func, se_type, clusters is not None)
    n = len(np.asarray(next(iter(cols.values())))) if cols else 0
    sub = subset_mask(func, subset, cols, n)
    view = {k: np.asarray(v)[sub] for k, v in cols.items()} if subset is not None else cols
    mf = model_frame(formula, view, extra_columns=[c for c in (clusters, weights) if c],
                     func=func)
    for name in mf_outcome_vars(formula):
        check_numeric(func, "formula", name, np.asarray(view[name]))
    w = None
    if weights is not None:
        check_numeric(func, "weights", weights, np.asarray(view[weights]))
        w = np.asarray(view[weights], dtype=float)[mf.mask]
        check_weights(func, weights, w)
    cl = np.asarray(view[clusters])[mf.mask] if clusters is not None else None
    rows = np.zeros(n, dtype=bool)
    rows[np.flatnonzero(sub)[mf.mask]] = True
    return Prepared(mf, w, cl, se_type, alpha, rows)


def mf_outcome_vars(formula: str) -> list[str]:
    """Data variables of the formula's left-hand side."""
    from ._formula import formula_variables
    return formula_variables(formula)[0]


def _lm_robust_batched(batch, formula, **kwargs):
    from ._kernels import lm_robust_kernel
    return lm_robust_kernel(batch, formula, **kwargs)


@batched(_lm_robust_batched)
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
    fixed_effects : None
        Not supported yet (put the factor in the formula instead).
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
    func = "lm_robust"
    p = prepare(func, formula, data, weights=weights, subset=subset, clusters=clusters,
                fixed_effects=fixed_effects, se_type=se_type, alpha=alpha)
    mf = p.mf
    if mf.y.ndim != 1:
        raise DeclarationError(f"{func}(formula={formula!r}): formula must have one outcome.")
    core = fit_arrays(mf.y, mf.X, weights=p.weights, cluster=p.cluster, se_type=p.se_type,
                      has_intercept=mf.has_intercept)
    stat, pv, lo, hi, dfv = add_cis(core.coef, core.se, core.df, p.alpha, ci)
    kept_names = [mf.columns[i] for i in core.kept]
    vcov = pd.DataFrame(core.vcov, index=kept_names, columns=kept_names) if return_vcov \
        else None
    return LMRobustFit(
        term=list(mf.columns), coefficients=pd.Series(core.coef, index=mf.columns),
        std_error=core.se, statistic=stat, p_value=pv, conf_low=lo, conf_high=hi,
        df=dfv, outcome=mf.outcome[0], vcov=vcov, nobs=core.nobs,
        df_residual=core.df_residual, rank=len(core.kept), res_var=core.res_var,
        r_squared=core.r_squared, adj_r_squared=core.adj_r_squared,
        fstatistic=core.fstatistic, se_type=p.se_type, alpha=p.alpha,
        nclusters=core.nclusters, weighted=p.weights is not None)
