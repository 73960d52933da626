"""Estimators (R: estimatr, lme4 + lmerTest), each usable on a DataFrame or in a design."""

from .difference_in_means import difference_in_means
from .lm_robust import LMRobustFit, lm_robust
from .mixed import LmerFit, lmer

__all__ = ["LMRobustFit", "LmerFit", "difference_in_means", "lm_robust", "lmer"]
