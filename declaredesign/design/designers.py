"""Designers: functions that make designs, and how designs remember them.

A *designer* is a function of a design's parameters returning a
:class:`~declaredesign.design.Design` (R: DesignLibrary's ``*_designer``). Decorated
with :func:`designer`, the designs it returns remember the function and the
arguments they were made with, so :func:`~declaredesign.redesign` can rebuild them
with some arguments changed: ``redesign(examples.two_arm(), N=[20, 40])``.

A design built directly from steps has no designer; :func:`redesign` then changes
the steps' own parameters by name (see :func:`parameter_names`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from .._validation import fail
from ..errors import DesignError
from .design import Design, Step

__all__ = ["designer", "parameter_names", "set_step_parameters"]

#: Step parameters that hold named arguments a redesign may change one by one.
_NESTED = ("variables", "levels", "model_kwargs", "kwargs", "handler_kwargs")
#: Step parameters that are not design parameters.
_NOT_PARAMETERS = ("label", "inquiries", "handler", "model", "formula", "data")


def designer(func: Callable[..., Design]) -> Callable[..., Design]:
    """Make designs made by ``func`` remember it and their arguments (for redesign).

    Parameters
    ----------
    func : callable
        A designer: keyword parameters in, a Design out.

    Returns
    -------
    callable
        ``func`` with the same signature and docstring; the designs it returns
        carry ``designer`` (the decorated function) and ``designer_args`` (the
        arguments given, by name).

    Examples
    --------
    >>> import declaredesign as dd
    >>> @dd.designer
    ... def my_design(N=10):
    ...     return dd.declare_model(N=N, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    >>> d = my_design(N=20)
    >>> d.designer_args
    {'N': 20}
    >>> [len(dd.draw_data(x, seed=1)) for x in dd.redesign(d, N=[5, 6])]
    [5, 6]
    """
    if not callable(func):
        fail("designer", "func", func, "a function returning a Design")
    sig = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Design:
        design = func(*args, **kwargs)
        if not isinstance(design, Design):
            return design
        given = dict(sig.bind(*args, **kwargs).arguments)
        extra = [k for k, p in sig.parameters.items() if p.kind is p.VAR_KEYWORD]
        for k in extra:
            given.update(given.pop(k, {}))
        return Design(design.steps, parameters=design.parameters, designer=wrapper,
                      designer_args=given, citation=design.citation, _check=False)

    wrapper.__signature__ = sig  # type: ignore[attr-defined]
    return wrapper


def parameter_names(design: Design) -> list[str]:
    """Names a design without a designer can be redesigned by: its steps' parameters.

    These are each step's own parameters (such as ``N`` of ``declare_model``) and the
    named arguments inside them: a model's variables, an assignment's variables, an
    estimator's model arguments, a custom step's arguments.

    Examples
    --------
    >>> import declaredesign as dd
    >>> d = dd.declare_model(N=10, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    >>> dd.parameter_names(d)
    ['N', 'Y']
    """
    names: list[str] = []
    for step in design.steps:
        for name in _step_parameters(step):
            if name not in names:
                names.append(name)
    return names


def _step_parameters(step: Step) -> list[str]:
    params = step.get_params()
    out = [k for k, v in params.items()
           if k not in _NOT_PARAMETERS and k not in _NESTED and v is not None]
    for key in _NESTED:
        if isinstance(params.get(key), dict):
            out += [str(k) for k in params[key]]
    return out


def set_step_parameters(design: Design, values: dict[str, Any]) -> Design:
    """Return ``design`` with every step parameter named in ``values`` set to its value."""
    known = parameter_names(design)
    unknown = [k for k in values if k not in known]
    if unknown:
        fail("redesign", unknown[0], values[unknown[0]],
             "a parameter of the design's steps (" + ", ".join(known) + "), or give the "
             "design a designer (@dd.designer) to redesign by its arguments",
             error=DesignError)
    steps = tuple(_set_in_step(s, values) for s in design.steps)
    return Design(steps, parameters={**design.parameters, **values},
                  designer=design.designer, designer_args=design.designer_args,
                  citation=design.citation)


def _set_in_step(step: Step, values: dict[str, Any]) -> Step:
    params = step.get_params()
    changes: dict[str, Any] = {}
    for key, value in params.items():
        if key in _NESTED and isinstance(value, dict):
            hit = {k: values[k] for k in value if k in values}
            if hit:
                changes[key] = {**value, **hit}
        elif key in values and key not in _NOT_PARAMETERS and value is not None:
            changes[key] = values[key]
    return step.replace(**changes) if changes else step
