"""declaredesign: declare, simulate and diagnose research designs.

The MIDA pipeline of R's DeclareDesign (Model, Inquiry, Data strategy, Answer
strategy) with fabricatr, randomizr, estimatr and lme4/lmerTest counterparts, on a
batched engine: many simulations of a design run as one columnar batch, so tens of
thousands of simulations take seconds.

Examples
--------
>>> import declaredesign as dd
>>> design = (
...     dd.declare_model(N=100, U=dd.normal())
...     + dd.declare_potential_outcomes("Y ~ 0.2 * Z + U")
...     + dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
...     + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
...     + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
...     + dd.declare_estimator("Y ~ Z", model=dd.difference_in_means, inquiry="ate")
... )
>>> dx = dd.diagnose_design(design, sims=100, bootstrap_sims=0, seed=1)
>>> sorted(dx.diagnosands.columns)[:3]
['bias', 'coverage', 'design']
"""

from . import examples, plot
from ._version import __version__
from .assign import *  # noqa: F403
from .assign import __all__ as _assign_all
from .batch import Batch
from .design import *  # noqa: F403
from .design import __all__ as _design_all
from .errors import (
    DeclarationError,
    DeclareDesignError,
    DesignError,
    EstimationError,
    FitWarning,
    FormulaError,
    StepError,
)
from .estimate import *  # noqa: F403
from .estimate import __all__ as _estimate_all
from .fabricate import *  # noqa: F403
from .fabricate import __all__ as _fabricate_all
from .plot import plot_diagnosands, plot_diagnosis, plot_power_curve, write_report

__all__ = sorted({
    *_assign_all, *_design_all, *_estimate_all, *_fabricate_all,
    "Batch", "DeclarationError", "DeclareDesignError", "DesignError", "EstimationError",
    "FitWarning", "FormulaError", "StepError", "examples", "plot", "plot_diagnosands",
    "plot_diagnosis", "plot_power_curve", "write_report", "__version__",
})
