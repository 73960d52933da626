"""The ``declare_*`` functions: R's names for declaring each kind of step."""

from __future__ import annotations

import numbers
from typing import Any

from ..._validation import fail
from ...fabricate import reveal_outcomes
from .data import (
    AssignmentStep,
    CustomStep,
    MeasurementHandlerStep,
    MeasurementStep,
    ModelStep,
    PotentialOutcomesStep,
    SamplingHandlerStep,
    SamplingStep,
)
from .estimator import EstimatorStep, TestStep
from .inquiry import InquiryStep

__all__ = [
    "declare_assignment", "declare_estimand", "declare_estimator", "declare_inquiry",
    "declare_measurement", "declare_model", "declare_population", "declare_potential_outcomes",
    "declare_reveal", "declare_sampling", "declare_step", "declare_test",
]


def declare_model(*args: Any, N: Any = None, label: str | None = None, data: Any = None,
                  **levels: Any) -> ModelStep:
    """Declare the model: levels, nesting and variables of the data (R: ``declare_model``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> from declaredesign.fabricate import normal
    >>> m = dd.declare_model(N=100, u=normal())
    >>> m.kind
    'model'
    >>> len(dd.declare_model(5)())  # R's declare_population(N): the size, unnamed
    5
    """
    if len(args) == 1 and N is None and isinstance(args[0], numbers.Integral) \
            and not isinstance(args[0], bool):
        args, N = (), args[0]
    if args:
        fail("declare_model", "args", args, "keyword arguments (levels or variables)",
             shown=repr(args))
    return ModelStep(levels, N=N, label=label, data=data)


declare_population = declare_model


def declare_potential_outcomes(formula: str | None = None, **kwargs: Any) -> PotentialOutcomesStep:
    """Declare potential outcomes from a formula (R: ``declare_potential_outcomes``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.declare_potential_outcomes("Y ~ 0.5 * Z + u").kind
    'potential_outcomes'
    """
    return PotentialOutcomesStep(formula, **kwargs)


def declare_inquiry(*args: Any, label: str | None = None, subset: Any = None,
                    handler: Any = None, **inquiries: Any) -> InquiryStep:
    """Declare inquiries (R: ``declare_inquiry``).

    Keywords name inquiries (``ate="mean(Y_Z_1 - Y_Z_0)"``); one unnamed expression is
    named by ``label`` (default ``"inquiry"``). ``subset="X == 1"`` computes every
    inquiry on the rows where the expression is true. ``handler=f`` computes the
    inquiries with ``f(df, **kwargs)`` returning a DataFrame with columns ``inquiry``
    and ``estimand``; further keywords are then ``f``'s arguments, and ``f`` receives
    the simulation's generator as ``rng=`` when it accepts one. See
    :class:`InquiryStep`.

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
    declare_inquiry(ate='mean(Y_Z_1 - Y_Z_0)')
    >>> dd.declare_inquiry("mean(Y)", label="m").inquiry_labels()
    ['m']
    >>> dd.declare_inquiry(cate="mean(Y_Z_1 - Y_Z_0)", subset="X == 1").subset
    'X == 1'
    """
    if len(args) > 1 or (args and handler is not None):
        fail("declare_inquiry", "args", args, "at most one unnamed expression (named by label=)",
             shown=repr(args))
    if args:
        name = label or "inquiry"
        if name in inquiries:
            fail("declare_inquiry", name, inquiries[name], "given once (the unnamed "
                 "inquiry is named by label=)")
        inquiries = {name: args[0], **inquiries}
    return InquiryStep(inquiries, label=label, subset=subset, handler=handler)


declare_estimand = declare_inquiry
#: R's name for declaring several inquiries in one call (the same function)
declare_inquiries = declare_inquiry


def declare_sampling(*, filter: Any = None, label: str | None = None, handler: Any = None,
                     **variables: Any) -> SamplingStep | SamplingHandlerStep:
    """Declare sampling (R: ``declare_sampling``); rows with ``filter`` false are dropped.

    With ``handler=f``, ``f(df, **kwargs)`` returns the sampled dataset (it receives
    ``rng=`` when it accepts one), as R's ``declare_sampling(handler=)``.

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.declare_sampling(S=dd.complete_rs(n=50)).kind
    'sampling'
    >>> dd.declare_sampling(handler=lambda df: df.head(5)).kind
    'sampling'
    """
    if handler is not None:
        if filter is not None:
            fail("declare_sampling", "filter", filter, "None when handler is given")
        return SamplingHandlerStep(handler, label=label, **variables)
    return SamplingStep(variables, filter=filter, label=label)


def declare_assignment(*, label: str | None = None, **variables: Any) -> AssignmentStep:
    """Declare random assignment (R: ``declare_assignment``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.declare_assignment(Z=dd.complete_ra(prob=0.5)).kind
    'assignment'
    """
    return AssignmentStep(variables, label=label)


def declare_measurement(*, label: str | None = None, **variables: Any) -> MeasurementStep:
    """Declare measurement (R: ``declare_measurement``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z")).kind
    'measurement'
    """
    return MeasurementStep(variables, label=label)


def declare_reveal(outcome_variables: Any = "Y", assignment_variables: Any = "Z", *,
                   label: str | None = None, handler: Any = None,
                   **kwargs: Any) -> MeasurementStep | MeasurementHandlerStep:
    """Reveal observed outcomes from potential outcomes (R: ``declare_reveal``).

    ``outcome_variables`` and ``assignment_variables`` are a column name or a list of
    them: ``declare_reveal("Y", ["M", "Z"])`` reads ``Y_M_<m>_Z_<z>`` (R:
    ``declare_reveal(Y, assignment_variables = c("M", "Z"))``). With ``handler=f``,
    ``f(df, **kwargs)`` returns the dataset with the revealed outcomes (it receives
    ``rng=`` when it accepts one).

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.declare_reveal("Y", "Z").kind
    'measurement'
    >>> dd.declare_reveal("Y", ["M", "Z"])
    declare_measurement(Y=reveal_outcomes(outcome_variables='Y', assignment_variables=['M', 'Z']))
    """
    if handler is not None:
        return MeasurementHandlerStep(handler, label=label, **kwargs)
    if kwargs:
        k = sorted(kwargs)[0]
        fail("declare_reveal", k, kwargs[k], "one of outcome_variables, assignment_variables, "
             "label, handler")
    names = {}
    for arg, v in (("outcome_variables", outcome_variables),
                   ("assignment_variables", assignment_variables)):
        vs = [v] if isinstance(v, str) else list(v) if isinstance(v, list | tuple) else [v]
        if not vs or not all(isinstance(x, str) and x.isidentifier() for x in vs):
            fail("declare_reveal", arg, v, "a column name or a list of column names")
        names[arg] = vs
    return MeasurementStep({y: reveal_outcomes(y, names["assignment_variables"])
                            for y in names["outcome_variables"]}, label=label)


def declare_step(handler: Any = None, *, label: str | None = None, **kwargs: Any) -> CustomStep:
    """Declare a custom data step (R: ``declare_step``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> step = dd.declare_step(dd.summarize(by=["cls"], y="mean(y)"))
    >>> step.kind
    'step'
    """
    return CustomStep(handler, label=label, **kwargs)


def declare_estimator(formula: str | None = None, **kwargs: Any) -> EstimatorStep:
    """Declare an estimator (R: ``declare_estimator``); see :class:`EstimatorStep`.

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.declare_estimator("Y ~ Z", inquiry="ate", label="dim").label
    'dim'
    """
    return EstimatorStep(formula, **kwargs)


def declare_test(formula: str | None = None, **kwargs: Any) -> TestStep:
    """Declare a test (R: ``declare_test``): an estimator with no inquiry.

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.declare_test("Y ~ Z", label="t").kind
    'test'
    """
    return TestStep(formula, **kwargs)
