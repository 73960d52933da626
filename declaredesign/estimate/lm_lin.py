"""``lm_lin``: Lin's (2013) covariate-adjusted estimator (estimatr).

The covariates are centred on their (weighted) sample means and interacted with the
treatment; the model is then fitted by :func:`~declaredesign.estimate.lm_robust`'s
machinery (same ``se_type`` menu, clusters, weights). With centred covariates the
treatment coefficient is the covariate-adjusted average treatment effect.

The kernel centres covariates on per-simulation (weighted) means, interacts them with a
0/1 treatment and fits the stacked design with :func:`.stacked_ols.lm_core`; it
declines multi-valued or factor treatments, models without an intercept,
``se_type="none"`` and the simulations the normal equations cannot take.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail
from ..batch import Batch
from ..errors import DeclarationError
from ..formula import parse_formula
from .arguments import bind_vectors, check_alpha, check_column_arg, check_se_type, spec_keywords
from .batch_frame import decline_all, frame, simulations, tidy_result, weights_and_clusters
from .inference import rms
from .lm_robust import LMRobustFit, make_fit, prepare
from .model_frame import formula_variables, model_frame
from .ols import fit_arrays
from .protocol import KernelResult, register_estimator
from .stacked_ols import identified, lm_core

__all__ = ["LmLinSpec", "lm_lin", "lm_lin_kernel"]

_FUNC = "lm_lin"


def _r_num(v: float) -> str:
    """Return a number as R's ``paste0`` prints it (15 significant digits, no trailing zeros)."""
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.15g}"


def _covariate_rhs(covariates: Any) -> str:
    if not isinstance(covariates, str) or not covariates.strip().startswith("~"):
        fail(_FUNC, "covariates", covariates, "a one-sided formula string like '~ x1 + x2'")
    rhs = covariates.strip()[1:].strip()
    if rhs in ("", "0", "1", "-1", "0 + 1", "1 + 0"):
        fail(_FUNC, "covariates", covariates, "a formula with at least one variable on the "
             "right-hand side")
    return rhs


def _centred_names(cov_names: list[str]) -> list[str]:
    """Name centred covariates as estimatr does: ``x_c``, ``(a:b)_c``, ``(log(x))_c``."""
    return [(f"({c})" if re.search(r":|^.+\(", c) else c) + "_c" for c in cov_names]


@dataclass(frozen=True, eq=False)
class LmLinSpec:
    """The validated arguments of :func:`lm_lin` (build with :meth:`parse`)."""

    formula: str
    covariates: str | None = None
    weights: str | None = None
    subset: Any = None
    clusters: str | None = None
    se_type: str | None = None
    ci: bool = True
    alpha: float = 0.05
    return_vcov: bool = True
    try_cholesky: bool = False

    @classmethod
    def parse(cls, formula: str, **kwargs: Any) -> LmLinSpec:
        """Validate the arguments once (unknown keywords are a DeclarationError)."""
        kw = spec_keywords(_FUNC, cls, kwargs)
        kw["alpha"] = check_alpha(_FUNC, kw["alpha"])
        kw["se_type"] = check_se_type(_FUNC, kw["se_type"], kw["clusters"] is not None)
        rhs = formula_variables(formula)[1] if isinstance(formula, str) and "~" in formula \
            else None
        if rhs is None or len(rhs) != 1:
            fail(_FUNC, "formula", formula, "of the form 'outcome ~ treatment' with only the "
                 "treatment on the right-hand side (covariates go in `covariates`)")
        _covariate_rhs(kw["covariates"])
        return cls(formula=formula, **kw)

    @property
    def outcome(self) -> str | None:
        """The formula's single outcome when it is a plain name."""
        return parse_formula(self.formula, func=_FUNC).outcome

    @property
    def full_formula(self) -> str:
        """The treatment and the covariates on one right-hand side."""
        f = parse_formula(self.formula, func=_FUNC)
        return f.with_rhs(f"{f.rhs} + {_covariate_rhs(self.covariates)}")


def _treatment_columns(T: np.ndarray, names: list[str], has_int: bool
                       ) -> tuple[np.ndarray, list[str]]:
    """Return a 0/1 treatment as is; other values one dummy per (non-reference) condition."""
    if np.all(np.isin(T, (0.0, 1.0))):
        return T, names
    vals = np.unique(T[:, 0])
    if has_int:
        vals = vals[1:]
    return (T[:, [0]] == vals[None, :]).astype(float), [f"{names[0]}{_r_num(v)}" for v in vals]


def fit_lm_lin(spec: LmLinSpec, data: Any) -> LMRobustFit:
    """Return the standalone fit of a validated spec on one dataset."""
    p = prepare(_FUNC, spec.full_formula, data, weights=spec.weights, subset=spec.subset,
                clusters=spec.clusters, fixed_effects=None)
    mf = p.mf
    cols = {str(c): data[c].to_numpy() for c in data.columns} \
        if isinstance(data, pd.DataFrame) else data
    view = {k: np.asarray(v)[p.rows] for k, v in cols.items()}
    # the treatment's own columns, materialised on the same rows
    mf_t = model_frame(spec.formula, view, func=_FUNC)
    treat_names = [c for c in mf_t.columns if c != "(Intercept)"]
    if not treat_names:
        raise DeclarationError(f"{_FUNC}(formula={spec.formula!r}): the formula has no "
                               "treatment.")
    has_int = mf.has_intercept
    T, treat_names = _treatment_columns(
        mf_t.X[:, [mf_t.columns.index(c) for c in treat_names]], treat_names, has_int)
    cov_names = [c for c in mf.columns if c != "(Intercept)" and c not in mf_t.columns]
    if not cov_names:
        fail(_FUNC, "covariates", spec.covariates, "made of variables other than the treatment")
    C = mf.X[:, [mf.columns.index(c) for c in cov_names]]
    center = np.average(C, axis=0, weights=p.weights) if p.weights is not None \
        else C.mean(axis=0)
    Cc = C - center
    c_names = _centred_names(cov_names)
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
    core = fit_arrays(mf.y, X, weights=p.weights, cluster=p.cluster, se_type=spec.se_type,
                      has_intercept=has_int, func=_FUNC)
    fit = make_fit(LMRobustFit, names, core, mf.outcome[0], spec.se_type, spec.alpha, spec.ci,
                   spec.return_vcov, p.weights is not None, y_rms=rms(mf.y), func=_FUNC)
    fit.scaled_center = pd.Series(center, index=cov_names)
    return fit


# ------------------------------------------------------------------ public entry
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
    data, vec = bind_vectors(_FUNC, data, weights=weights, clusters=clusters)
    weights, clusters = vec["weights"], vec["clusters"]
    spec = LmLinSpec.parse(formula, covariates=covariates, weights=weights, subset=subset,
                           clusters=clusters, se_type=se_type, ci=ci, alpha=alpha,
                           return_vcov=return_vcov, try_cholesky=try_cholesky)
    return fit_lm_lin(spec, data)


# ------------------------------------------------------------------------ batched
def lm_lin_kernel(batch: Batch, spec: LmLinSpec) -> KernelResult:
    """Batched :func:`lm_lin`: one tidy row per (simulation, term).

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign.batch import Batch
    >>> rng = np.random.default_rng(0)
    >>> b = Batch({"y": rng.normal(size=40), "z": np.tile([0.0, 1.0], 20),
    ...            "x": rng.normal(size=40)}, sim=np.repeat([0, 1], 20), n_sims=2)
    >>> lm_lin_kernel(b, LmLinSpec.parse("y ~ z", covariates="~ x")).tidy["term"].tolist()[:4]
    ['(Intercept)', 'z', 'x_c', 'z:x_c']
    """
    cols = batch.columns
    clusters = check_column_arg(_FUNC, "clusters", spec.clusters, cols)
    weights = check_column_arg(_FUNC, "weights", spec.weights, cols)
    if spec.se_type == "none":
        return decline_all(batch)
    mf, view, sim = frame(_FUNC, batch, spec.full_formula, spec.subset, [clusters, weights])
    lhs, rhs = formula_variables(spec.formula)
    mask = mf.mask
    mf_t = model_frame(spec.formula, {v: np.asarray(view[v])[mask] for v in [*lhs, *rhs]},
                       func=_FUNC)
    tnames = [c for c in mf_t.columns if c != "(Intercept)"]
    if not mf.has_intercept or len(tnames) != 1:
        return decline_all(batch)
    T = mf_t.X[:, mf_t.columns.index(tnames[0])]
    if not np.all(np.isin(T, (0.0, 1.0))):
        return decline_all(batch)
    cov_names = [c for c in mf.columns if c != "(Intercept)" and c not in mf_t.columns]
    w, cl = weights_and_clusters(_FUNC, batch, view, mf, sim, weights, clusters)
    S = batch.n_sims
    den = np.bincount(sim, weights=w, minlength=S)
    C = mf.X[:, [mf.columns.index(c) for c in cov_names]]
    with np.errstate(invalid="ignore", divide="ignore"):
        center = np.column_stack([np.bincount(sim, weights=c if w is None else c * w,
                                              minlength=S) for c in C.T]) / den[:, None]
    Cc = C - center[sim]
    c_names = _centred_names(cov_names)
    X = np.column_stack([np.ones(len(T)), T, Cc, T[:, None] * Cc])
    names = ["(Intercept)", tnames[0], *c_names, *[f"{tnames[0]}:{c}" for c in c_names]]
    res = lm_core(simulations(batch, sim), mf.y, X, weights=w, clusters=cl, se_type=spec.se_type,
                  intercept_col=0)
    ok = res["ok"] & identified(res, simulations(batch, sim), mf.y)
    return tidy_result(res, ok, names, spec.alpha, spec.ci, mf.outcome[0])


lm_lin = register_estimator(lm_lin, parse=LmLinSpec.parse, fit=fit_lm_lin,
                            kernel=lm_lin_kernel)
