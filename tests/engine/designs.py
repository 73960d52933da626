"""Small designs shared by the engine tests (importable by subprocesses too)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

import declaredesign as dd
from declaredesign.estimate.protocol import register_estimator, tidy_frame


def two_arm(n: int = 40, effect: float = 0.2) -> dd.Design:
    """A two-arm trial with a batched estimator and a lambda estimator (not picklable)."""
    return (dd.declare_model(N=n, U=dd.normal())
            + dd.declare_potential_outcomes(f"Y ~ {effect} * Z + U")
            + dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
            + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
            + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
            + dd.declare_estimator("Y ~ Z", inquiry="ate", label="ols")
            + dd.declare_estimator(handler=lambda df: pd.DataFrame(
                {"term": ["mean"], "estimate": [df["Y"].mean()]}), label="lambda"))


def _flaky(df: pd.DataFrame) -> pd.DataFrame:
    # U[0] is N(0, 1): above its 90% quantile in about one simulation in ten.
    if df["U"].iloc[0] > 1.2815515655446004:
        raise ValueError("flaky fit failed")
    return pd.DataFrame({"term": ["Z"], "estimate": [df["Y"].mean()], "p_value": [0.5]})


def flaky(n: int = 20) -> dd.Design:
    """A design whose per-dataset estimator raises in about 10% of simulations."""
    return (dd.declare_model(N=n, U=dd.normal())
            + dd.declare_potential_outcomes("Y ~ 0.5 * Z + U")
            + dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
            + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
            + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
            + dd.declare_estimator("Y ~ Z", inquiry="ate", label="ols")
            + dd.declare_estimator(handler=_flaky, inquiry="ate", label="flaky"))


def _fussy_kernel(batch, spec):
    """A batched kernel that fails in sims whose first U is high and warns when low."""
    first = np.searchsorted(batch.sim, np.arange(batch.n_sims))
    u = batch.columns["U"][first]
    y = np.bincount(batch.sim, batch.columns["Y"], minlength=batch.n_sims) / \
        np.bincount(batch.sim, minlength=batch.n_sims)
    err = np.where(u > 1.2815515655446004, "EstimationError: singular", None)
    warn = np.where(u < -1.2815515655446004, "boundary (singular) fit", None)
    est = np.where(err == None, y, np.nan)  # noqa: E711 -- elementwise
    out = tidy_frame(sim=np.arange(batch.n_sims), term="Z", estimate=est,
                     std_error=np.nan, statistic=np.nan, p_value=np.nan, conf_low=np.nan,
                     conf_high=np.nan, df=np.nan, outcome="Y")
    out["error"] = err
    out["warning"] = warn
    return out


@register_estimator(kernel=_fussy_kernel)
def fussy(formula, data, **kwargs):
    """Standalone twin of the fussy kernel (never called in simulations)."""
    raise NotImplementedError


def fussy_design(n: int = 10) -> dd.Design:
    return (dd.declare_model(N=n, U=dd.normal(), Y=dd.normal())
            + dd.declare_inquiry(m="mean(Y)")
            + dd.declare_estimator("Y ~ 1", model=fussy, inquiry="m", label="fussy"))


def _nap(df: pd.DataFrame) -> pd.DataFrame:
    time.sleep(0.005)
    return df


def slow(n: int = 10) -> dd.Design:
    """A design slow enough (~2 ms per simulation) to be killed mid-run."""
    return (dd.declare_model(N=n, U=dd.normal())
            + dd.declare_step(_nap, label="nap")
            + dd.declare_inquiry(m="mean(U)")
            + dd.declare_estimator("U ~ 1", inquiry="m", label="mean", term=True))


def null_test(n: int = 30) -> dd.Design:
    """Y independent of Z: the power of the t-test is alpha = 0.05 (known)."""
    return (dd.declare_model(N=n, Z=dd.bernoulli(0.5), Y=dd.normal())
            + dd.declare_inquiry(zero="mean(Y * 0)")
            + dd.declare_estimator("Y ~ Z", model=dd.lm_robust, se_type="classical",
                                   inquiry="zero", label="t"))
