"""``lm_robust``: OLS with heteroskedasticity- and cluster-robust standard errors (estimatr)."""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import fail
from ..errors import DeclarationError, EstimationError
from ..expressions import evaluate_mask
from .model_frame import ModelFrame, model_frame
from ._linalg import pivoted_rank, sandwich
from ._protocol import TIDY_COLUMNS, batched

__all__ = ["lm_robust", "LMRobustFit"]

SeType = Literal["classical", "HC0", "HC1", "HC2", "HC3", "stata", "CR0", "CR2", "none"]
_CLUSTER_SE = ("CR0", "CR2", "stata")
_HC_SE = ("classical", "HC0", "HC1", "HC2", "HC3", "stata")


# --------------------------------------------------------------------------- validation
def check_se_type(func: str, se_type: str | None, clustered: bool) -> str:
    """Resolve the default ``se_type`` and reject ones that do not fit the design."""
    if clustered:
        if se_type is None:
            return "CR2"
        if se_type not in (*_CLUSTER_SE, "none"):
            fail(func, "se_type", se_type, "one of 'CR0', 'CR2', 'stata', 'none' when "
                 "clusters are given")
        return se_type
    if se_type is None:
        return "HC2"
    if se_type not in (*_HC_SE, "none"):
        fail(func, "se_type", se_type, "one of 'classical', 'HC0', 'HC1', 'HC2', 'HC3', "
             "'stata', 'none' without clusters (CR0/CR2 need clusters)")
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
    """Rows selected by ``subset``: a boolean array or an expression (docs/expressions.md)."""
    if subset is None:
        return np.ones(n, dtype=bool)
    if isinstance(subset, str):
        try:
            m = evaluate_mask(subset, data, n)
        except Exception as e:
            raise DeclarationError(f"{func}(subset={subset!r}): subset must be an expression "
                                   f"on the data's columns; evaluating it failed: {e}") from e
    else:
        m = np.asarray(subset)
        if m.dtype.kind != "b" or m.shape != (n,):
            fail(func, "subset", subset, f"a boolean array of length {n} or an expression",
                 shown="<array>")
    return np.array(m, dtype=bool, copy=True)


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
        from ._lh import linear_hypothesis
        return linear_hypothesis(self, hypothesis)

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
    proj: dict[str, Any] = field(default_factory=dict)
    # pieces for the joint vcov of several outcomes
    M: np.ndarray | None = None
    resid: np.ndarray | None = None
    half: np.ndarray | None = None
    scale: float = 1.0


def demean(A: np.ndarray, fe_codes: list[np.ndarray], w: np.ndarray,
           tol: float = 1e-13, max_iter: int = 10_000) -> np.ndarray:
    """Remove (weighted) fixed-effect means from the columns of ``A``.

    One fixed effect needs one pass; several use alternating projections until the
    change is below ``tol`` (tighter than estimatr's 1e-8-scaled criterion, so the result
    is the exact projection estimatr approximates).
    """
    out = np.array(A, dtype=float, copy=True)
    single = out.ndim == 1
    if single:
        out = out[:, None]
    wsums = [np.bincount(c, weights=w) for c in fe_codes]
    for _ in range(max_iter):
        old = out.copy()
        for c, ws in zip(fe_codes, wsums, strict=True):
            for j in range(out.shape[1]):
                out[:, j] -= (np.bincount(c, weights=w * out[:, j], minlength=len(ws)) / ws)[c]
        if len(fe_codes) == 1:
            break
        delta = np.sqrt(np.sum((old - out) ** 2, axis=0))
        if np.all(delta <= tol * np.sqrt(1.0 + np.sum(out ** 2, axis=0))):
            break
    return out[:, 0] if single else out


def fe_dummies(fe_codes: list[np.ndarray]) -> np.ndarray:
    """Dummy matrix of the fixed effects: all levels of the first, the others less one."""
    blocks = []
    for i, c in enumerate(fe_codes):
        D = np.zeros((len(c), int(c.max()) + 1))
        D[np.arange(len(c)), c] = 1.0
        blocks.append(D if i == 0 else D[:, 1:])
    return np.hstack(blocks)


def fit_arrays(y: np.ndarray, X: np.ndarray, *, weights: np.ndarray | None = None,
               cluster: np.ndarray | None = None, se_type: str = "HC2",
               has_intercept: bool = True, fe_codes: list[np.ndarray] | None = None,
               X_resid: np.ndarray | None = None, func: str = "lm_robust") -> CoreFit:
    """Fit one dataset given the outcome, design matrix, weights and cluster codes.

    With ``fe_codes`` (integer codes of each fixed effect), ``X`` must not contain the
    intercept: outcome and design are demeaned within fixed effects first.

    ``X_resid`` is for two-stage least squares: ``X`` then holds the first-stage fitted
    regressors (used for the coefficients, the bread and the meat) and ``X_resid`` the
    original regressors, from which the (structural) residuals are computed, as
    estimatr's second stage does.
    """
    n, k = X.shape
    if n == 0:
        raise EstimationError(f"{func}: no complete rows to fit (every row has a missing "
                              "value in a used column, or the subset is empty).")
    weighted = weights is not None
    iv = X_resid is not None
    fes = bool(fe_codes)
    y_orig = y
    fe_rank = 0
    if fes:
        wd = weights if weighted else np.ones(n)
        y = demean(y, fe_codes, wd)
        X = demean(X, fe_codes, wd) if k else X
        if iv:
            X_resid = demean(X_resid, fe_codes, wd) if k else X_resid
        fe_rank = sum(int(c.max()) for c in fe_codes) + 1
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
        raise EstimationError(f"{func}: the design matrix has no non-zero column.")
    Xk = Xf[:, kept]
    q, R = np.linalg.qr(Xk)
    b = sla_solve_triangular(R, q.T @ yf)
    Rinv = sla_solve_triangular(R, np.eye(r))
    M = Rinv @ Rinv.T
    coef[kept] = b
    if iv:
        Xr = X_resid[:, kept]
        e = yf - (Xr * sw[:, None] if weighted else Xr) @ b
    else:
        e = yf - Xk @ b
    df_res = n - r - fe_rank
    clustered = cluster is not None
    J = None
    if clustered:
        cl = np.unique(cluster, return_inverse=True)[1].reshape(-1)
        J = int(cl.max()) + 1 if n else 0
    else:
        cl = None
    if se_type == "none":
        return CoreFit(coef=coef, se=se, df=dfv, vcov=np.full((r, r), np.nan), kept=kept,
                       nobs=n, df_residual=df_res, res_var=np.nan, r_squared=np.nan,
                       adj_r_squared=np.nan, fstatistic=None, nclusters=J)
    kw: dict[str, Any] = {"extra_rank": fe_rank}
    if weighted and se_type == "CR2":
        Xr_u = X_resid[:, kept] if iv else X[:, kept]
        kw.update(X_unweighted=X[:, kept], e_unweighted=y - Xr_u @ b, sqrt_w=sw,
                  weight_mean=wm)
    if fes and se_type in ("HC2", "HC3", "CR2"):
        D = fe_dummies(fe_codes)
        if weighted:
            D = D * sw[:, None]
        Xc = np.hstack([Xk, D])
        keep_c = pivoted_rank(Xc)
        Xc = Xc[:, keep_c]
        Rc = np.linalg.qr(Xc, mode="r")
        Rci = sla_solve_triangular(Rc, np.eye(Rc.shape[0]))
        kw.update(X_meat=Xc, M_meat=Rci @ Rci.T)
    vr = sandwich(Xk, e, M, se_type, cluster=cl, **kw)
    se[kept] = np.sqrt(np.diag(vr.vcov))
    dfv[kept] = vr.df
    with np.errstate(divide="ignore", invalid="ignore"):   # df_res = 0: Inf as in R
        res_var = float(np.float64(np.sum(e ** 2 * wm)) / df_res) if weighted else vr.res_var

    def r2s(yy: np.ndarray, yw: np.ndarray) -> tuple[float, float, float]:
        if weighted:
            if has_intercept:
                ybar = np.sum(weights * yy) / np.sum(weights)
                tss = float(np.sum(weights * (yy - ybar) ** 2))
            else:
                tss = float(np.sum(yw ** 2 * wm))
        else:
            tss = float(np.sum((yy - yy.mean()) ** 2)) if has_intercept \
                else float(np.sum(yy ** 2))
        r2 = 1.0 - df_res * res_var / tss if tss > 0 else np.nan
        adj = 1.0 - (1.0 - r2) * ((n - int(has_intercept)) / df_res) if df_res > 0 else np.nan
        return r2, adj, tss

    r2, adj, tss = r2s(y, yf)
    numdf = r - (0 if fes else int(has_intercept))
    fstat = None
    if numdf > 0:
        dendf = (J - 1) if clustered else df_res
        if se_type == "classical" and not iv:
            value = r2 * df_res / ((1.0 - r2) * numdf)
        elif se_type == "classical" and not weighted:
            # estimatr's IV F: explained sum of squares of the second-stage regression
            ivrss = float(np.sum((yf - Xk @ b) ** 2))
            value = ((tss - ivrss) / numdf) / res_var
        else:
            # estimatr indexes the full coefficient vector (dropped terms included) but
            # the kept-terms vcov with the same positions, so a dropped term among the
            # first `rank` positions makes the F statistic NA; we reproduce that.
            idx = np.arange(0 if fes else int(has_intercept), r)
            value = wald_f(coef[idx], vr.vcov, idx, numdf)
        fstat = {"value": float(value), "numdf": float(numdf), "dendf": float(dendf)}
    proj = {}
    if fes:
        proj = {"proj_r_squared": r2, "proj_adj_r_squared": adj, "proj_fstatistic": fstat}
        yo_w = y_orig * sw if weighted else y_orig
        r2, adj, _ = r2s(y_orig, yo_w)
        fstat = None
    return CoreFit(coef=coef, se=se, df=dfv, vcov=vr.vcov, kept=kept, nobs=n,
                   df_residual=df_res, res_var=res_var, r_squared=r2, adj_r_squared=adj,
                   fstatistic=fstat, nclusters=J, proj=proj, M=M, resid=e, half=vr.half,
                   scale=vr.scale)


def wald_f(bb: np.ndarray, vcov: np.ndarray, idx: np.ndarray, numdf: float) -> float:
    """``b' V^{-1} b / numdf`` as estimatr's ``compute_fstat`` (NA when V is not PD)."""
    try:
        if len(idx) == 0 or np.max(idx) >= vcov.shape[0] or np.isnan(bb).any():
            return np.nan
        V = vcov[np.ix_(idx, idx)]
        np.linalg.cholesky(V)
        return float(bb @ np.linalg.solve(V, bb) / numdf)
    except np.linalg.LinAlgError:
        return np.nan


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
    fe_codes: list[np.ndarray] = field(default_factory=list)


def data_columns(func: str, data: Any) -> Mapping[str, Any]:
    """The estimator's ``data`` as a mapping of column name to array (checked)."""
    if isinstance(data, pd.DataFrame):
        return {str(c): data[c].to_numpy() for c in data.columns}
    if isinstance(data, Mapping):
        return data
    fail(func, "data", data, "a pandas DataFrame", shown=type(data).__name__)


def prepare(func: str, formula: str, data: Mapping[str, Any], *, weights: Any, subset: Any,
            clusters: Any, fixed_effects: Any, se_type: Any, alpha: Any,
            extra_columns: Any = ()) -> Prepared:
    """Validate the arguments of lm_robust and build the model frame."""
    cols = data_columns(func, data)
    alpha = check_alpha(func, alpha)
    clusters = check_column_arg(func, "clusters", clusters, cols)
    weights = check_column_arg(func, "weights", weights, cols)
    se_type = check_se_type(func, se_type, clusters is not None)
    fe_names = parse_fixed_effects(func, fixed_effects, cols)
    if fe_names and weights is not None and se_type == "CR2":
        fail(func, "se_type", se_type, "'CR0' or 'stata' when fixed_effects and weights are "
             "both given (estimatr has no weighted CR2 with fixed effects)")
    n = len(np.asarray(next(iter(cols.values())))) if cols else 0
    sub = subset_mask(func, subset, cols, n)
    view = {k: np.asarray(v)[sub] for k, v in cols.items()} if subset is not None else cols
    mf = model_frame(formula, view,
                     extra_columns=[c for c in (clusters, weights, *fe_names, *extra_columns)
                                    if c], func=func)
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
    fe_codes = [np.unique(np.asarray(view[f])[mf.mask].astype(str)
                          if np.asarray(view[f]).dtype.kind == "O" else
                          np.asarray(view[f])[mf.mask], return_inverse=True)[1].reshape(-1)
                for f in fe_names]
    return Prepared(mf, w, cl, se_type, alpha, rows, fe_codes)


def parse_fixed_effects(func: str, fixed_effects: Any, cols: Mapping[str, Any]) -> list[str]:
    """Column names of ``fixed_effects``: ``"~ a + b"``, a column name, or a list of names."""
    if fixed_effects is None:
        return []
    if isinstance(fixed_effects, str):
        text = fixed_effects.strip()
        text = text[1:] if text.startswith("~") else text
        names = [p.strip() for p in text.split("+")]
    elif isinstance(fixed_effects, (list, tuple)):
        names = list(fixed_effects)
    else:
        names = []
    if not names or not all(isinstance(v, str) and v.isidentifier() for v in names):
        fail(func, "fixed_effects", fixed_effects, "a one-sided formula of column names like "
             "'~ block + site', a column name or a list of column names")
    missing = [v for v in names if v not in cols]
    if missing:
        fail(func, "fixed_effects", fixed_effects, "made of columns of the data (missing: "
             f"{', '.join(missing)})")
    return names


def mf_outcome_vars(formula: str) -> list[str]:
    """Data variables of the formula's left-hand side."""
    from .model_frame import formula_variables
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
    func = "lm_robust"
    multi = _CBIND.match(formula) if isinstance(formula, str) else None
    if multi:
        return _lm_robust_multi(func, multi, data, weights=weights, subset=subset,
                                clusters=clusters, fixed_effects=fixed_effects,
                                se_type=se_type, ci=ci, alpha=alpha, return_vcov=return_vcov)
    p = prepare(func, formula, data, weights=weights, subset=subset, clusters=clusters,
                fixed_effects=fixed_effects, se_type=se_type, alpha=alpha)
    mf = p.mf
    if mf.y.ndim != 1:
        raise DeclarationError(f"{func}(formula={formula!r}): formula must have one outcome.")
    X, columns = mf.X, list(mf.columns)
    if p.fe_codes and mf.has_intercept:
        i = columns.index("(Intercept)")
        X = np.delete(X, i, axis=1)
        columns.pop(i)
    core = fit_arrays(mf.y, X, weights=p.weights, cluster=p.cluster, se_type=p.se_type,
                      has_intercept=mf.has_intercept, fe_codes=p.fe_codes or None)
    return make_fit(LMRobustFit, columns, core, mf.outcome[0], p.se_type, p.alpha, ci,
                    return_vcov, p.weights is not None)


def make_fit(cls: type, columns: list[str], core: CoreFit, outcome: str, se_type: str,
             alpha: float, ci: bool, return_vcov: bool, weighted: bool, **extra: Any):
    """Build an :class:`LMRobustFit` (or subclass) from a :class:`CoreFit`."""
    stat, pv, lo, hi, dfv = add_cis(core.coef, core.se, core.df, alpha,
                                    ci and se_type != "none")
    if se_type == "none":
        dfv = np.full(len(columns), np.nan)
    kept_names = [columns[i] for i in core.kept]
    vcov = pd.DataFrame(core.vcov, index=kept_names, columns=kept_names) \
        if return_vcov and se_type != "none" else None
    return cls(
        term=list(columns), coefficients=pd.Series(core.coef, index=columns),
        std_error=core.se, statistic=stat, p_value=pv, conf_low=lo, conf_high=hi,
        df=dfv, outcome=outcome, vcov=vcov, nobs=core.nobs,
        df_residual=core.df_residual, rank=len(core.kept), res_var=core.res_var,
        r_squared=core.r_squared, adj_r_squared=core.adj_r_squared,
        fstatistic=core.fstatistic, se_type=se_type, alpha=alpha,
        nclusters=core.nclusters, weighted=weighted, **core.proj, **extra)


_CBIND = re.compile(r"^\s*cbind\((?P<ys>[^()]*)\)\s*~(?P<rhs>.*)$", re.S)


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
        from ._lh import linear_hypothesis
        return linear_hypothesis(self, hypothesis)

    def __repr__(self) -> str:
        return self.tidy().to_string(index=False)


def _lm_robust_multi(func: str, m: re.Match, data: Any, *, weights: Any, subset: Any,
                     clusters: Any, fixed_effects: Any, se_type: Any, ci: bool, alpha: Any,
                     return_vcov: bool) -> MultiOutcomeFit:
    """Several outcomes on one design: per-outcome fits and their joint sandwich."""
    ys = [v.strip() for v in m.group("ys").split(",")]
    if len(ys) < 2 or not all(v.isidentifier() for v in ys) or len(set(ys)) != len(ys):
        fail(func, "formula", f"cbind({m.group('ys')}) ~{m.group('rhs')}",
             "cbind() of two or more distinct column names on the left-hand side")
    rhs = m.group("rhs").strip()
    p = prepare(func, f"{ys[0]} ~ {rhs}", data, weights=weights, subset=subset,
                clusters=clusters, fixed_effects=fixed_effects, se_type=se_type, alpha=alpha,
                extra_columns=ys[1:])
    cols = {str(c): data[c].to_numpy() for c in data.columns} \
        if isinstance(data, pd.DataFrame) else data
    X, columns = p.mf.X, list(p.mf.columns)
    if p.fe_codes and p.mf.has_intercept:
        i = columns.index("(Intercept)")
        X = np.delete(X, i, axis=1)
        columns.pop(i)
    fits, cores = {}, []
    for y in ys:
        check_numeric(func, "formula", y, np.asarray(cols[y]))
        yv = np.asarray(cols[y], dtype=float)[p.rows]
        core = fit_arrays(yv, X, weights=p.weights, cluster=p.cluster, se_type=p.se_type,
                          has_intercept=p.mf.has_intercept, fe_codes=p.fe_codes or None)
        cores.append(core)
        fits[y] = make_fit(LMRobustFit, columns, core, y, p.se_type, p.alpha, ci,
                           return_vcov, p.weights is not None)
    vcov = None
    if return_vcov and p.se_type != "none":
        blocks = [[None] * len(ys) for _ in ys]
        for a, ca in enumerate(cores):
            for b, cb in enumerate(cores):
                if a == b:
                    blocks[a][b] = ca.vcov
                elif p.se_type == "classical":
                    blocks[a][b] = ca.M * float(ca.resid @ cb.resid / ca.df_residual)
                else:
                    blocks[a][b] = ca.M @ (ca.half.T @ cb.half) @ ca.M * ca.scale
        kept = [columns[i] for i in cores[0].kept]
        names = [f"{y}:{t}" for y in ys for t in kept]
        vcov = pd.DataFrame(np.block(blocks), index=names, columns=names)
    return MultiOutcomeFit(fits=fits, vcov=vcov, nobs=cores[0].nobs, se_type=p.se_type,
                           alpha=p.alpha)
