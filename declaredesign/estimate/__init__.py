"""estimate layer: estimatr's estimators, standalone on pandas and batched over a Batch."""

from ._dim import DifferenceInMeansFit, difference_in_means
from ._formula import FormulaError, ModelFrame, model_frame
from ._lm_robust import LMRobustFit, lm_robust

__all__ = ["lm_robust", "LMRobustFit", "difference_in_means", "DifferenceInMeansFit",
           "model_frame", "ModelFrame", "FormulaError"]
