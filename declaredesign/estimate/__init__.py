"""Estimators (R: estimatr, lme4 + lmerTest), each usable on a DataFrame or in a design."""

from ._dim import DifferenceInMeansFit, difference_in_means
from .model_frame import ModelFrame, model_frame
from ._ht import (
    HorvitzThompsonFit,
    declaration_to_condition_pr_mat,
    horvitz_thompson,
    permutations_to_condition_pr_mat,
)
from ._iv import iv_robust
from ._lh import linear_hypothesis
from ._lm_lin import lm_lin
from ._lm_robust import LMRobustFit, MultiOutcomeFit, lm_robust
from .mixed import GlmerFit, LmerFit, glmer, lmer

__all__ = ["DifferenceInMeansFit", "GlmerFit", "HorvitzThompsonFit", "LMRobustFit", "LmerFit",
           "ModelFrame", "MultiOutcomeFit", "declaration_to_condition_pr_mat",
           "difference_in_means", "glmer", "horvitz_thompson", "iv_robust", "linear_hypothesis",
           "lm_lin", "lm_robust", "lmer", "model_frame", "permutations_to_condition_pr_mat"]
