"""What lmer and glmer fits share: lme4's merMod behaviour and the rows designs get.

- :class:`MerFitMixin`: logLik, AIC, BIC, VarCorr and ranef;
- lme4's checks before a fit (rank-deficient fixed effects dropped, grouping factors
  with too few or too many levels refused) and after it (the singular-fit message);
- the variance-component table and broom.mixed's ``ran_pars`` rows;
- for designs: the complete rows of a batch, which simulations have full-rank fixed
  effects, and :class:`FixedEffectRows`, the fit the per-simulation fallback tidies
  (fixed effects only, dropped coefficients as NaN rows, lme4's messages), so the
  batched kernels and the fallback report a simulation in the same words.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla

from ...batch import Batch
from ...errors import EstimationError
from ..arguments import reject_unknown
from ..protocol import TIDY_COLUMNS
from .model_matrices import ReTerms

__all__ = ["SINGULAR_MESSAGE", "VARCORR_COLUMNS", "MerFitMixin", "FixedEffectRows",
           "check_keywords", "check_levels", "complete_rows", "drop_rank_deficient",
           "dropped_message", "fit_quietly", "full_rank", "is_singular", "ran_pars_table",
           "singular_rows", "variance_components"]

#: lme4's message for a fit with a variance (or a correlation's factor) on the boundary;
#: the same words from the batched paths and the per-simulation fits.
SINGULAR_MESSAGE = "boundary (singular) fit: see help('isSingular')"
_SINGULAR_TOL = 1e-4  # lme4's isSingular default


class MerFitMixin:
    """logLik, AIC, BIC, VarCorr and ranef from a fit's criterion and tables.

    A fit provides ``_crit`` (lme4's objective: -2 log-likelihood, REML or not),
    ``npar``, ``nobs``, ``_varcorr`` and ``_ranef``.
    """

    _crit: float
    _varcorr: pd.DataFrame
    _ranef: dict[str, pd.DataFrame]
    nobs: int

    @property
    def npar(self) -> int:  # pragma: no cover - each fit counts its own
        """Number of parameters counted by logLik."""
        raise NotImplementedError

    @property
    def logLik(self) -> float:
        """``-criterion / 2`` as lme4 (the REML log-likelihood for a REML fit)."""
        return -0.5 * self._crit

    @property
    def AIC(self) -> float:
        """``-2 logLik + 2 npar``."""
        return self._crit + 2.0 * self.npar

    @property
    def BIC(self) -> float:
        """``-2 logLik + log(nobs) npar``."""
        return self._crit + np.log(self.nobs) * self.npar

    def VarCorr(self) -> pd.DataFrame:
        """Variance components as ``as.data.frame(VarCorr(fit))``."""
        return self._varcorr.copy()

    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, one frame per grouping factor."""
        return {k: v.copy() for k, v in self._ranef.items()}


# ------------------------------------------------------------- lme4's checks
def check_keywords(func: str, kwargs: dict[str, Any], accepted: tuple[str, ...]) -> None:
    """Refuse keywords ``func`` does not take, naming them and the accepted ones."""
    reject_unknown(func, list(accepted), kwargs)


def drop_rank_deficient(X: np.ndarray, names: list[str]):
    """Keep a full-rank subset of columns, as lme4's pivoted-QR check.

    Returns the kept columns, their names and the names of the dropped ones.
    """
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


def dropped_message(dropped: list[str]) -> str:
    """lme4's message when rank-deficient fixed-effect columns are dropped."""
    return (f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
            f"column(s): {', '.join(dropped)}")


def check_levels(func: str, re: ReTerms, n: int) -> None:
    """lme4's refusal of grouping factors with one level, or as many levels as rows."""
    for t in re.terms:
        if t.nl < 2:
            raise EstimationError(f"{func}: grouping factor {t.group!r} must have > 1 sampled "
                                  f"level; got {t.nl}.")
        if t.nl >= n:
            raise EstimationError(
                f"{func}: number of levels of each grouping factor must be < number of "
                f"observations (grouping factor {t.group!r} has {t.nl} levels, {n} rows).")


def is_singular(re: ReTerms, theta: np.ndarray) -> bool:
    """lme4's isSingular: a diagonal element of a relative covariance factor near 0."""
    return bool(np.any(theta[re.lower == 0] < _SINGULAR_TOL))


def singular_rows(theta: np.ndarray) -> np.ndarray:
    """Per dataset (rows of ``theta``, all scalar intercepts): is the fit singular."""
    th = theta if theta.ndim == 2 else theta[:, None]
    return np.any(th < _SINGULAR_TOL, axis=1)


# ------------------------------------------------------- variance components
def _group_labels(re: ReTerms) -> list[str]:
    # Repeated grouping factors are told apart as R's make.unique does (g, g.1).
    seen: dict[str, int] = {}
    labels = []
    for t in re.terms:
        c = seen.get(t.group, 0)
        labels.append(t.group if c == 0 else f"{t.group}.{c}")
        seen[t.group] = c + 1
    return labels


def variance_components(re: ReTerms, theta: np.ndarray, u: np.ndarray, scale2: float = 1.0):
    """VarCorr rows, conditional modes and level counts of a fit.

    Parameters
    ----------
    re : ReTerms
    theta : ndarray
        Relative covariance factor parameters.
    u : ndarray
        Spherical conditional modes (lme4's ``u``).
    scale2 : float
        Residual variance (1 for families without a scale).

    Returns
    -------
    rows : list of tuple
        ``(grp, var1, var2, vcov, sdcor)`` per variance and correlation.
    ranef : dict of str to DataFrame
        Conditional modes per grouping factor (terms of one factor joined).
    ngrps : dict of str to int
    """
    rows, ranef, off = [], {}, 0
    for t, T, label in zip(re.terms, re.T_list(theta), _group_labels(re), strict=True):
        Sig = scale2 * T @ T.T
        sd = np.sqrt(np.diag(Sig))
        for i in range(t.k):
            rows.append((label, t.cnames[i], None, Sig[i, i], sd[i]))
        for j in range(t.k):
            for i in range(j + 1, t.k):
                cor = Sig[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                rows.append((label, t.cnames[j], t.cnames[i], Sig[i, j], cor))
        b = u[off:off + t.k * t.nl].reshape(t.nl, t.k) @ T.T
        frame = pd.DataFrame(b, index=pd.Index(t.levels, name=t.group), columns=t.cnames)
        # lme4's ranef joins the terms of one grouping factor into one frame.
        ranef[t.group] = frame if t.group not in ranef else ranef[t.group].join(frame)
        off += t.k * t.nl
    ngrps: dict[str, int] = {}
    for t in re.terms:
        ngrps.setdefault(t.group, t.nl)
    return rows, ranef, ngrps


VARCORR_COLUMNS = ["grp", "var1", "var2", "vcov", "sdcor"]


def _ran_pars_order(vc: pd.DataFrame) -> list:
    order = []
    for grp in pd.unique(vc["grp"]):
        block = vc.index[vc["grp"] == grp]
        for i in block:
            if pd.isna(vc.at[i, "var2"]):
                order.append(i)
                order.extend(j for j in block if not pd.isna(vc.at[j, "var2"])
                             and vc.at[j, "var1"] == vc.at[i, "var1"])
    return order


def _ran_pars_term(r: pd.Series) -> str:
    if r["grp"] == "Residual":
        return "sd__Observation"
    if pd.isna(r["var2"]):
        return f"sd__{r['var1']}"
    return f"cor__{r['var1']}.{r['var2']}"


def ran_pars_table(varcorr: pd.DataFrame) -> pd.DataFrame:
    """broom.mixed's ``ran_pars`` rows from an ``as.data.frame(VarCorr(fit))`` table.

    Per group, each sd is followed by its correlations with the later terms
    (sd1, cor12, cor13, sd2, cor23, sd3); the residual sd is ``sd__Observation``.
    """
    vc = varcorr.loc[_ran_pars_order(varcorr)]
    terms = [_ran_pars_term(r) for _, r in vc.iterrows()]
    return pd.DataFrame({
        "effect": "ran_pars", "group": vc["grp"].to_numpy(), "term": terms,
        "estimate": vc["sdcor"].to_numpy(), "std_error": np.nan, "statistic": np.nan,
        "df": np.nan, "p_value": np.nan, "conf_low": np.nan, "conf_high": np.nan})


# ------------------------------------------------------------------ designs
def complete_rows(batch: Batch, needed: list[str]
                  ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Keep the needed columns on rows without missing values (R's na.omit).

    Returns the columns, the kept-row mask and the kept rows' simulation index.
    """
    cols = {c: batch[c] for c in needed}
    ok = np.ones(batch.n_rows, dtype=bool)
    for v in cols.values():
        if v.dtype.kind not in "biu":
            ok &= ~pd.isna(v)
    if not ok.all():
        cols = {c: v[ok] for c, v in cols.items()}
    return cols, ok, batch.sim[ok]


def full_rank(XtX: np.ndarray) -> np.ndarray:
    """Per dataset, whether the stacked cross-product matrices (S, p, p) have full rank."""
    S, p = XtX.shape[0], XtX.shape[1]
    scale = np.maximum(np.max(np.abs(np.diagonal(XtX, axis1=1, axis2=2)), axis=1), 1e-300)
    ev = np.linalg.eigvalsh(XtX / scale[:, None, None]) if p else np.ones((S, 1))
    return ev[:, 0] > 1e-10


class FixedEffectRows:
    """A fit as designs see it: fixed-effect rows, dropped terms as NaN rows, messages.

    What the registered ``fit`` of lmer and glmer returns to the per-simulation
    fallback (:func:`declaredesign.estimate.protocol.fit_per_simulation`).

    Parameters
    ----------
    fit : LmerFit or GlmerFit
    conf_level : float
    """

    def __init__(self, fit: Any, conf_level: float):
        self.fit = fit
        self.conf_level = conf_level
        self.messages = list(fit.messages)

    def tidy(self) -> pd.DataFrame:
        """Fixed-effect rows in the tidy columns; dropped (aliased) terms as NaN rows."""
        t = self.fit.tidy(effects=("fixed",), conf_level=self.conf_level)
        t = t.drop(columns=["effect", "group"])
        if self.fit.dropped:
            # One row per term across simulations, as lm_robust reports aliased terms.
            t = pd.concat([t, pd.DataFrame({"term": self.fit.dropped,
                                            "outcome": self.fit.response})],
                          ignore_index=True)
        return t.reindex(columns=TIDY_COLUMNS)


def fit_quietly(func: str, fit: Callable[[], Any]) -> Any:
    """Run ``fit()`` keeping its messages as data.

    Warnings that repeat one of the fit's own ``messages`` (``"lmer: <message>"``)
    are not raised again; others are.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fit()
    known = {f"{func}: {m}" for m in res.messages}
    for w in caught:
        if str(w.message) not in known:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return res
