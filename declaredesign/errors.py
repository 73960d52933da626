"""The error hierarchy of declaredesign.

Every error the library raises on purpose derives from :class:`DeclareDesignError`,
and also from the builtin that matches its meaning, so ``except ValueError`` keeps
working for callers who do not know this library.
"""

from __future__ import annotations

__all__ = [
    "DeclareDesignError",
    "DeclarationError",
    "DesignError",
    "EstimationError",
    "FormulaError",
    "StepError",
    "DeclareDesignWarning",
    "FitWarning",
]


class DeclareDesignError(Exception):
    """Root of every error raised by declaredesign."""


class DeclarationError(DeclareDesignError, ValueError):
    """A function or step was given an invalid argument."""


class FormulaError(DeclarationError):
    """A formula could not be parsed or names something that does not exist."""


class DesignError(DeclareDesignError, ValueError):
    """Steps do not compose into a valid design (duplicate labels, unknown inquiry, ...)."""


class EstimationError(DeclareDesignError, RuntimeError):
    """A model could not be fitted to the data it was given."""


class StepError(DeclareDesignError, RuntimeError):
    """A step failed while a design ran; the message names the step.

    The original exception is chained as ``__cause__``.
    """

    def __init__(self, message: str, *, step_index: int | None = None,
                 step_label: str | None = None):
        super().__init__(message)
        self.step_index = step_index
        self.step_label = step_label


class DeclareDesignWarning(UserWarning):
    """Root of the warnings declaredesign emits."""


class FitWarning(DeclareDesignWarning):
    """A fit finished but is questionable (singular, not converged, rank deficient)."""
