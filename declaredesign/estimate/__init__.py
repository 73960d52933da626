"""Estimators (R: estimatr, lme4 + lmerTest), each usable on a DataFrame or in a design."""

from ._dim import DifferenceInMeansFit, difference_in_means
from ._formula import ModelFrame, model_frame
from ._lm_robust import LMRobustFit, lm_robust
from .mixed import LmerFit, lmer

__all__ = ["DifferenceInMeansFit", "LMRobustFit", "LmerFit", "ModelFrame",
           "difference_in_means", "lm_robust", "lmer", "model_frame"]
