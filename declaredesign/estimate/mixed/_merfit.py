"""Accessors shared by lmer and glmer fits (lme4's merMod methods)."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
