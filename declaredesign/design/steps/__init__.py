"""Declarative, immutable design steps, one module per kind of step.

A step holds only its parameters. Data steps (:mod:`.data`) map a
:class:`~declaredesign.batch.Batch` to a new batch; inquiry steps (:mod:`.inquiry`)
return one value per simulation and inquiry; estimator and test steps
(:mod:`.estimator`) return tidy rows per simulation. Every step derives from
:class:`~declaredesign.design.design.Step`, composes with ``+`` into a
:class:`~declaredesign.design.design.Design` and is checked when declared
(:mod:`.declare` holds the ``declare_*`` functions).
"""

from ..design import Step
from .data import (
    AssignmentStep,
    CustomStep,
    MeasurementStep,
    ModelStep,
    PotentialOutcomesStep,
    SamplingStep,
)
from .declare import (
    declare_assignment,
    declare_estimand,
    declare_estimator,
    declare_inquiries,
    declare_inquiry,
    declare_measurement,
    declare_model,
    declare_population,
    declare_potential_outcomes,
    declare_reveal,
    declare_sampling,
    declare_step,
    declare_test,
)
from .estimator import EstimatorStep, TestStep
from .inquiry import InquiryStep

__all__ = [
    "Step",
    "ModelStep",
    "PotentialOutcomesStep",
    "InquiryStep",
    "SamplingStep",
    "AssignmentStep",
    "MeasurementStep",
    "CustomStep",
    "EstimatorStep",
    "TestStep",
    "declare_model",
    "declare_population",
    "declare_potential_outcomes",
    "declare_inquiries",
    "declare_inquiry",
    "declare_estimand",
    "declare_sampling",
    "declare_assignment",
    "declare_measurement",
    "declare_reveal",
    "declare_step",
    "declare_test",
    "declare_estimator",
]
