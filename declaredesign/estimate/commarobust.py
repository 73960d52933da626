"""``commarobust``: robust standard errors for an ordinary least squares fit (estimatr).

estimatr's ``commarobust(model)`` takes an R ``lm`` object and returns the
``lm_robust`` object with the sandwich variance of the caller's choice. Python has no
``lm`` class in this package, so the model is given either as

* a formula and its data, ``commarobust("y ~ x", df)`` (what ``lm(y ~ x, df)`` holds),
  optionally with ``weights=`` (weighted least squares, as ``lm(weights=)``) and
  ``subset=``; or
* a fitted statsmodels ``OLS``/``WLS`` result (duck-typed: statsmodels is not imported,
  the design matrix, outcome and weights are read from ``result.model``).

Both differ from calling :func:`~declaredesign.estimate.lm_robust` in one place, as
estimatr's ``commarobust`` differs from its ``lm_robust``: the columns dropped for
collinearity are the ones R's ``lm`` drops (a column nearly in the span of the columns
before it, so the later of two collinear columns), not those of estimatr's pivoted QR.
The variance itself is :func:`~declaredesign.estimate.sandwich.sandwich`, through
:func:`~declaredesign.estimate.ols.fit_arrays` on the columns ``lm`` keeps.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail
from .arguments import bind_vectors, check_alpha, check_se_type
from .inference import rms
from .lm_robust import LMRobustFit, make_fit, prepare
from .ols import CoreFit, fit_arrays

__all__ = ["commarobust", "lm_kept_columns"]

_FUNC = "commarobust"
# R's lm (LINPACK dqrdc2) treats a column as collinear when its norm after projection
# on the columns before it is below this fraction of its own norm
LM_TOLERANCE = 1e-7


def lm_kept_columns(X: np.ndarray, tol: float = LM_TOLERANCE) -> np.ndarray:
    """Return the indices of the columns R's ``lm`` keeps, in their original order.

    Columns are taken left to right; one whose residual after projection on the kept
    columns has a norm below ``tol`` times its own norm (or that is all zero) is
    dropped, which is how ``lm``'s limited-pivoting QR moves it to the end and
    reports its coefficient as ``NA``.

    Parameters
    ----------
    X : numpy.ndarray
        The (square-root-weighted) ``n x k`` design matrix.
    tol : float
        The relative tolerance (``lm``'s default ``1e-7``).

    Returns
    -------
    numpy.ndarray
        Integer indices of the kept columns.

    Examples
    --------
    >>> X = np.column_stack([np.ones(4), [0.0, 1, 2, 3], [1.0, 2, 3, 4]])
    >>> lm_kept_columns(X).tolist()
    [0, 1]
    """
    n = X.shape[0]
    basis = np.zeros((n, 0))
    kept = []
    for j in range(X.shape[1]):
        x = np.asarray(X[:, j], dtype=float)
        norm = float(np.linalg.norm(x))
        r = x
        for _ in range(2):      # twice: Gram-Schmidt loses orthogonality once
            r = r - basis @ (basis.T @ r)
        rnorm = float(np.linalg.norm(r))
        if norm == 0.0 or rnorm < tol * norm:
            continue
        basis = np.column_stack([basis, r / rnorm])
        kept.append(j)
    return np.asarray(kept, dtype=int)


def _expand(core: CoreFit, kept: np.ndarray, k: int) -> CoreFit:
    """Put a fit of the kept columns back on all ``k`` columns (NaN for dropped ones)."""
    full = kept[core.kept]
    out = {}
    for name in ("coef", "se", "df"):
        v = np.full(k, np.nan)
        v[full] = getattr(core, name)[core.kept]
        out[name] = v
    return replace(core, kept=full, **out)


def _fit(y: np.ndarray, X: np.ndarray, columns: list[str], outcome: str, *,
         weights: np.ndarray | None, cluster: np.ndarray | None, se_type: str,
         has_intercept: bool, ci: bool, alpha: float) -> LMRobustFit:
    Xf = X if weights is None else X * np.sqrt(weights / np.mean(weights))[:, None]
    kept = lm_kept_columns(Xf)
    if len(kept) == 0:
        fail(_FUNC, "model", "<design>", "a design with at least one non-zero column")
    core = fit_arrays(y, X[:, kept], weights=weights, cluster=cluster, se_type=se_type,
                      has_intercept=has_intercept, func=_FUNC)
    core = _expand(core, kept, X.shape[1])
    return make_fit(LMRobustFit, columns, core, outcome, se_type, alpha, ci, True,
                    weights is not None, y_rms=rms(y), func=_FUNC)


def _is_statsmodels_result(model: Any) -> bool:
    inner = getattr(model, "model", None)
    return inner is not None and hasattr(inner, "exog") and hasattr(inner, "endog") \
        and type(inner).__name__ in ("OLS", "WLS")


def _from_statsmodels(result: Any, clusters: Any) -> dict[str, Any]:
    """Outcome, design, names and weights of a fitted statsmodels OLS/WLS result."""
    m = result.model
    X = np.asarray(m.exog, dtype=float)
    y = np.asarray(m.endog, dtype=float).reshape(-1)
    w = np.asarray(getattr(m, "weights", 1.0), dtype=float)
    weights = None if w.ndim == 0 or np.all(w == w.flat[0]) and w.flat[0] == 1.0 else \
        np.broadcast_to(w, y.shape).astype(float)
    cl = None
    if clusters is not None:
        if isinstance(clusters, str):
            fail(_FUNC, "clusters", clusters, "a vector with one value per row of the "
                 "fitted model when the model is a statsmodels result")
        cl = np.asarray(clusters.to_numpy() if isinstance(clusters, pd.Series) else clusters)
        if cl.ndim != 1 or len(cl) != len(y):
            fail(_FUNC, "clusters", clusters, f"a vector with one value per row of the "
                 f"fitted model ({len(y)} values)", shown=f"<vector of shape {cl.shape}>")
    return {"y": y, "X": X, "columns": [str(c) for c in m.exog_names],
            "outcome": str(getattr(m, "endog_names", "y")), "weights": weights,
            "cluster": cl, "has_intercept": int(getattr(m, "k_constant", 0)) > 0}


def _from_formula(formula: str, data: Any, weights: Any, subset: Any,
                  clusters: Any) -> dict[str, Any]:
    """Outcome, design, names and weights of ``lm(formula, data, weights, subset)``."""
    if data is None:
        fail(_FUNC, "data", None, "a DataFrame when the model is given as a formula")
    data, vec = bind_vectors(_FUNC, data, weights=weights, clusters=clusters)
    p = prepare(_FUNC, formula, data, weights=vec["weights"], subset=subset,
                clusters=vec["clusters"], fixed_effects=None)
    if p.mf.y.ndim != 1:
        fail(_FUNC, "model", formula, "a formula with one outcome")
    return {"y": p.mf.y, "X": p.mf.X, "columns": list(p.mf.columns),
            "outcome": p.mf.outcome[0], "weights": p.weights, "cluster": p.cluster,
            "has_intercept": p.mf.has_intercept}


def commarobust(model: Any, data: Any = None, *, se_type: str | None = None,
                clusters: Any = None, weights: Any = None, subset: Any = None,
                ci: bool = True, alpha: float = 0.05) -> LMRobustFit:
    """Robust standard errors for an ordinary least squares fit, as estimatr's commarobust.

    Parameters
    ----------
    model : str or statsmodels regression result
        The least squares model: a formula such as ``"y ~ z + x"`` (with ``data``), or
        a fitted statsmodels ``OLS``/``WLS`` result. An :class:`LMRobustFit` is
        refused: it already has robust errors (:func:`starprep` passes it through).
    data : pandas.DataFrame, optional
        The data of a formula model.
    se_type : str, optional
        ``"classical"``, ``"HC0"``, ``"HC1"`` (= ``"stata"``), ``"HC2"`` (default) or
        ``"HC3"``; with clusters ``"CR0"``, ``"CR2"`` (default) or ``"stata"``.
    clusters : str or array_like, optional
        Cluster identifiers. With a formula: a column of ``data`` or a vector with one
        value per row of ``data``. With a statsmodels result: a vector with one value
        per row the model used (R's rule for ``lm`` objects).
    weights : str or array_like, optional
        Formula models only: weights of weighted least squares (``lm(weights=)``).
    subset : str or array of bool, optional
        Formula models only: the rows to use.
    ci : bool
        Compute statistics, p-values and confidence intervals.
    alpha : float
        Confidence intervals have level ``1 - alpha``.

    Returns
    -------
    LMRobustFit
        The same result object as :func:`~declaredesign.estimate.lm_robust`.

    Notes
    -----
    R's ``commarobust`` takes only an ``lm`` object; the formula form here stands for
    ``lm(formula, data)``. Collinear columns are dropped as ``lm`` drops them (see
    :func:`lm_kept_columns`), which can differ from ``lm_robust``'s choice.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 2.5, 4.0, 3.0, 5.5],
    ...                    "z": [0, 0, 0, 1, 1, 1]})
    >>> fit = commarobust("y ~ z", df, se_type="HC1")
    >>> fit.se_type, round(float(fit.coefficients["z"]), 4)
    ('HC1', 2.3333)
    """
    alpha = check_alpha(_FUNC, alpha)
    if isinstance(model, str):
        parts = _from_formula(model, data, weights, subset, clusters)
    elif _is_statsmodels_result(model):
        for arg, value in (("data", data), ("weights", weights), ("subset", subset)):
            if value is not None:
                fail(_FUNC, arg, value, "None when the model is a statsmodels result "
                     "(the fit already holds its rows and weights)")
        parts = _from_statsmodels(model, clusters)
    else:
        fail(_FUNC, "model", model, "a formula string (with data) or a fitted statsmodels "
             "OLS/WLS result; an lm_robust fit already has robust standard errors",
             shown=f"<{type(model).__name__}>")
    se_type = check_se_type(_FUNC, se_type, parts["cluster"] is not None)
    return _fit(parts["y"], parts["X"], parts["columns"], parts["outcome"],
                weights=parts["weights"], cluster=parts["cluster"], se_type=se_type,
                has_intercept=parts["has_intercept"], ci=ci, alpha=alpha)
