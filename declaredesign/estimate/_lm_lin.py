"""``lm_lin``: Lin's (2013) covariate-adjusted estimator (estimatr).

The covariates are centred on their (weighted) sample means and interacted with the
treatment; the model is then fitted by :func:`~declaredesign.estimate.lm_robust`'s
machinery (same ``se_type`` menu, clusters, weights). With centred covariates the
treatment coefficient is the covariate-adjusted average treatment effect.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail
from ..errors import DeclarationError
from .model_frame import formula_variables, model_frame
from ._lm_robust import LMRobustFit, fit_arrays, make_fit, prepare
from ._protocol import batched

__all__ = ["lm_lin"]


def _r_num(v: float) -> str:
    """A number as R's ``paste0`` prints it (15 significant digits, no trailing zeros)."""
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.15g}"


def _covariate_rhs(func: str, covariates: Any) -> str:
    if not isinstance(covariates, str) or not covariates.strip().startswith("~"):
        fail(func, "covariates", covariates, "a one-sided formula string like '~ x1 + x2'")
    rhs = covariates.strip()[1:].strip()
    if rhs in ("", "0", "1", "-1", "0 + 1", "1 + 0"):
        fail(func, "covariates", covariates, "a formula with at least one variable on the "
             "right-hand side")
    return rhs


def _lm_lin_batched(batch, formula, **kwargs):
    from ._kernels_more import lm_lin_kernel
    return lm_lin_kernel(batch, formula, **kwargs)


@batched(_lm_lin_batched)
def lm_lin(formula: str, covariates: str, data: pd.DataFrame, weights: str | None = None,
           subset: Any = None, clusters: str | None = None, se_type: str | None = None,
           ci: bool = True, alpha: float = 0.05, return_vcov: bool = True,
           try_cholesky: bool = False) -> LMRobustFit:
    """Lin's estimator: treatment interacted with mean-centred covariates (estimatr).

    Parameters
    ----------
    formula : str
        ``"outcome ~ treatment"`` with the treatment only; ``"y ~ 0 + z"`` drops the
        intercept. A numeric treatment with values other than 0/1, or a factor, gives
        one dummy per non-reference condition (all conditions without intercept).
    covariates : str
        One-sided formula of pre-treatment covariates, ``"~ x1 + x2"`` (factors and
        interactions allowed).
    data : pandas.DataFrame
        The data; rows with a missing value in any used column are dropped.
    weights, subset, clusters, se_type, ci, alpha, return_vcov, try_cholesky
        As in :func:`~declaredesign.estimate.lm_robust`.

    Returns
    -------
    LMRobustFit
        Terms as estimatr names them: ``x1_c`` for a centred covariate and
        ``z:x1_c`` for its interaction; ``scaled_center`` holds the centring means.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 2.5, 4.0, 3.0, 5.5, 4.5, 6.0],
    ...                    "z": [0, 0, 0, 0, 1, 1, 1, 1], "x": [1, 3, 2, 5, 4, 6, 2, 3]})
    >>> lm_lin("y ~ z", "~ x", df).term
    ['(Intercept)', 'z', 'x_c', 'z:x_c']
    """
    func = "lm_lin"
    lhs, rhs = formula_variables(formula) if isinstance(formula, str) and "~" in formula \
        else (None, None)
    if rhs is None or len(rhs) != 1:
        fail(func, "formula", formula, "of the form 'outcome ~ treatment' with only the "
             "treatment on the right-hand side (covariates go in `covariates`)")
    cov_rhs = _covariate_rhs(func, covariates)
    lhs_text, rhs_text = formula.split("~", 1)
    full = f"{lhs_text.strip()} ~ {rhs_text.strip()} + {cov_rhs}"
    p = prepare(func, full, data, weights=weights, subset=subset, clusters=clusters,
                fixed_effects=None, se_type=se_type, alpha=alpha)
    mf = p.mf
    cols = {str(c): data[c].to_numpy() for c in data.columns} \
        if isinstance(data, pd.DataFrame) else data
    view = {k: np.asarray(v)[p.rows] for k, v in cols.items()}
    # the treatment's own columns, materialised on the same rows
    mf_t = model_frame(formula, view, func=func)
    treat_names = [c for c in mf_t.columns if c != "(Intercept)"]
    if not treat_names:
        raise DeclarationError(f"{func}(formula={formula!r}): the formula has no treatment.")
    has_int = mf.has_intercept
    T = mf_t.X[:, [mf_t.columns.index(c) for c in treat_names]]
    if not np.all(np.isin(T, (0.0, 1.0))):
        vals = np.unique(T[:, 0])
        if has_int:
            vals = vals[1:]
        treat_names = [f"{treat_names[0]}{_r_num(v)}" for v in vals]
        T = (T[:, [0]] == vals[None, :]).astype(float)
    cov_names = [c for c in mf.columns if c != "(Intercept)" and c not in mf_t.columns]
    if not cov_names:
        fail(func, "covariates", covariates, "made of variables other than the treatment")
    C = mf.X[:, [mf.columns.index(c) for c in cov_names]]
    center = np.average(C, axis=0, weights=p.weights) if p.weights is not None \
        else C.mean(axis=0)
    Cc = C - center
    import re
    c_names = [(f"({c})" if re.search(r":|^.+\(", c) else c) + "_c" for c in cov_names]
    inter = np.column_stack([T[:, j] * Cc[:, i] for i in range(len(c_names))
                             for j in range(T.shape[1])])
    inter_names = [f"{treat_names[j]}:{c_names[i]}" for i in range(len(c_names))
                   for j in range(T.shape[1])]
    n = len(mf.y)
    if has_int:
        X = np.column_stack([np.ones(n), T, Cc, inter])
        names = ["(Intercept)", *treat_names, *c_names, *inter_names]
    elif T.shape[1] == 1:
        X = np.column_stack([T, Cc, inter])
        names = [*treat_names, *c_names, *inter_names]
    else:
        X = np.column_stack([T, inter])
        names = [*treat_names, *inter_names]
    core = fit_arrays(mf.y, X, weights=p.weights, cluster=p.cluster, se_type=p.se_type,
                      has_intercept=has_int, func=func)
    fit = make_fit(LMRobustFit, names, core, mf.outcome[0], p.se_type, p.alpha, ci,
                   return_vcov, p.weights is not None)
    fit.scaled_center = pd.Series(center, index=cov_names)
    return fit
