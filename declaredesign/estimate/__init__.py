"""Estimators (R: estimatr, lme4 + lmerTest), each usable on a DataFrame or in a design.

One module per estimator (``lm_robust``, ``difference_in_means``, ``horvitz_thompson``,
``lm_lin``, ``iv_robust``, ``linear_hypothesis``, ``mixed``), each holding its argument
spec, public function, fit class and batched kernel, registered with
:mod:`.protocol`; the shared maths in modules named for it (:mod:`.ols`,
:mod:`.sandwich`, :mod:`.stacked_ols`, :mod:`.two_arm`, :mod:`.inference`,
:mod:`.condition_probabilities`, :mod:`.model_frame`).
"""

from .commarobust import commarobust
from .difference_in_means import DifferenceInMeansFit, difference_in_means
from .horvitz_thompson import (
    HorvitzThompsonFit,
    declaration_to_condition_pr_mat,
    horvitz_thompson,
    permutations_to_condition_pr_mat,
)
from .iv_robust import iv_robust
from .linear_hypothesis import linear_hypothesis
from .lm_lin import lm_lin
from .lm_robust import LMRobustFit, MultiOutcomeFit, lm_robust
from .mixed import GlmerFit, LmerFit, glmer, lmer
from .model_frame import ModelFrame, model_frame
from .starprep import starprep

__all__ = ["DifferenceInMeansFit", "GlmerFit", "HorvitzThompsonFit", "LMRobustFit", "LmerFit",
           "ModelFrame", "MultiOutcomeFit", "commarobust", "declaration_to_condition_pr_mat",
           "difference_in_means", "glmer", "horvitz_thompson", "iv_robust", "linear_hypothesis",
           "lm_lin", "lm_robust", "lmer", "model_frame", "permutations_to_condition_pr_mat",
           "starprep"]
