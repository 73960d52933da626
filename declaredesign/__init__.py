"""declaredesign: declare, simulate and diagnose research designs.

The MIDA pipeline of R's DeclareDesign (Model, Inquiry, Data strategy, Answer
strategy) on a batched engine: many simulations of a design run as one columnar
batch, so tens of thousands of simulations take seconds.
"""

from .batch import Batch
from .errors import (
    DeclarationError,
    DeclareDesignError,
    DesignError,
    EstimationError,
    FitWarning,
    FormulaError,
    StepError,
)

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "DeclarationError",
    "DeclareDesignError",
    "DesignError",
    "EstimationError",
    "FitWarning",
    "FormulaError",
    "StepError",
    "__version__",
]
