"""Data steps: the model, potential outcomes, sampling, assignment, measurement, custom.

Each maps a :class:`~declaredesign.batch.Batch` to a new batch, all simulations at once.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ... import fabricate as _fabricate_module
from ..._validation import fail
from ...batch import Batch
from ...errors import DeclarationError
from ...expressions import Lazy, check, evaluate
from ...fabricate import (
    LevelSpec,
    PotentialOutcomes,
    RevealOutcomes,
    fabricate_batch,
    potential_outcomes,
)
from ..batched_handlers import run_data_handler_batched
from ..design import UNKNOWN, Step, check_label, format_value
from ..handlers import call_handler

__all__ = ["AssignmentStep", "CustomStep", "MeasurementHandlerStep", "MeasurementStep",
           "ModelStep", "PotentialOutcomesStep", "SamplingHandlerStep", "SamplingStep",
           "VariablesStep", "add_variables"]


class VariablesStep(Step):
    """A data step defined by named variables evaluated in order (fabricate-style).

    A value may be a scalar, an array, a string expression over columns, a lazy draw
    (``normal(0, 1)``), an assignment or sampling declaration (``complete_ra(m=50)``),
    an object with ``apply(batch, rng)`` such as ``reveal_outcomes(...)``, or a callable.
    """

    _params = ("variables", "label")

    def __init__(self, variables: Mapping[str, Any] | None = None, *, label: str | None = None,
                 **kwargs: Any):
        func = self._declare_name()
        variables = dict(variables or {})
        variables.update(kwargs)
        if not variables:
            raise DeclarationError(f"{func}(): declare at least one variable, e.g. "
                                   f"{func}(Z=complete_ra(prob=0.5)).")
        for name in variables:
            if not name.isidentifier():
                fail(func, name, name, "a valid Python identifier as variable name")
            check(variables[name], f"{func}({name}=...)")
        self.variables = variables
        self._label = check_label(func, label)
        self._freeze()

    def get_params(self) -> dict[str, Any]:
        """Return the step's parameters as given at declaration."""
        return {"variables": dict(self.variables), "label": self._label}

    def _rebuild(self, params: dict[str, Any]) -> Step:
        return type(self)(params["variables"], label=params["label"])

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        items: list[tuple[str | None, Any]] = list(self.variables.items())
        if self._label is not None:
            items.append(("label", self._label))
        return items

    def creates(self) -> set[str] | object:
        """Return the columns this step adds (:data:`UNKNOWN` when unknowable)."""
        names: set[str] = set()
        for var, v in self.variables.items():
            names |= _created(var, v)
        return names

    def requires(self) -> set[str]:
        """Columns revealed outcomes are read from: their assignment variables."""
        req: set[str] = set()
        for v in self.variables.values():
            if isinstance(v, RevealOutcomes):
                req |= set(v.assignment_variables)
        return req

    def run(self, batch: Batch | None, rng: np.random.Generator, n_sims: int) -> Batch:
        """Apply the step to a batch (all simulations at once)."""
        if batch is None:
            raise DeclarationError(f"{self._declare_name()}: there is no data yet; declare a "
                                   "model (declare_model) before this step.")
        return add_variables(batch, self.variables, rng)


def _created(var: str, value: Any) -> set[str]:
    """Columns a variable adds: its name, or the columns of a multi-column generator."""
    # potential_outcomes(...) or draw_multivariate(...) add their own columns.
    if isinstance(value, PotentialOutcomes) or (
            hasattr(value, "apply") and isinstance(getattr(value, "names", None), list)):
        return set(value.names)
    return {var}


def add_variables(batch: Batch, variables: Mapping[str, Any], rng: np.random.Generator) -> Batch:
    """Evaluate named variables in order on a batch and add them as columns."""
    for name, value in variables.items():
        if hasattr(value, "conduct_batch"):
            batch = batch.with_columns({name: value.conduct_batch(batch, rng)})
        elif hasattr(value, "apply") and not isinstance(value, (np.ndarray, pd.Series)):
            out = value.apply(batch, rng)
            if isinstance(out, Batch):
                batch = out
            else:
                batch = batch.with_columns({name: out})
        else:
            batch = batch.with_columns({name: evaluate(value, batch, rng)})
    return batch


class ModelStep(Step):
    """The model: levels of data and their variables (R: ``declare_model``)."""

    kind = "model"
    _params = ("levels", "N", "label")

    def __init__(self, levels: Mapping[str, Any] | None = None, *, N: Any = None,
                 label: str | None = None, data: pd.DataFrame | None = None, **kwargs: Any):
        levels = dict(levels or {})
        levels.update(kwargs)
        if data is not None:
            if not isinstance(data, pd.DataFrame):
                fail("declare_model", "data", type(data).__name__, "a pandas DataFrame",
                     shown=type(data).__name__)
        if not levels and data is None and N is None:
            raise DeclarationError("declare_model(): give levels (school=add_level(N=...)), "
                                   "variables with N=..., N alone (an ID column), or data=.")
        self.levels = levels
        self.N = N
        self.data = data
        self._label = check_label("declare_model", label)
        self._check()
        self._freeze()

    def _check(self) -> None:
        has_levels = any(isinstance(v, LevelSpec) for v in self.levels.values())
        for name, value in self.levels.items():
            check(value, f"declare_model({name}=...)")
        if has_levels and self.N is not None:
            fail("declare_model", "N", self.N, "None when levels are declared with add_level")
        if not has_levels and self.N is None and self.data is None:
            raise DeclarationError(
                "declare_model(N=None): N must be given for a single-level model; "
                "e.g. declare_model(N=100, u=normal()).")

    def get_params(self) -> dict[str, Any]:
        """Return the step's parameters as given at declaration."""
        return {"levels": dict(self.levels), "N": self.N, "label": self._label,
                "data": self.data}

    def _rebuild(self, params: dict[str, Any]) -> Step:
        return ModelStep(params["levels"], N=params["N"], label=params["label"],
                         data=params["data"])

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        items: list[tuple[str | None, Any]] = []
        if self.N is not None:
            items.append(("N", self.N))
        if self.data is not None:
            items.append(("data", _Shown(f"<DataFrame {self.data.shape[0]}x{self.data.shape[1]}>")))
        items.extend(self.levels.items())
        if self._label:
            items.append(("label", self._label))
        return items

    def creates(self) -> set[str] | object:
        """Return the columns this step adds (:data:`UNKNOWN` when unknowable)."""
        names: set[str] = set()
        if self.data is not None:
            names |= {str(c) for c in self.data.columns}
        has_levels = any(isinstance(v, LevelSpec) for v in self.levels.values())
        if not has_levels:
            names.add("ID")
        for key, value in self.levels.items():
            names.add(key)
            if isinstance(value, LevelSpec):
                for var, v in value.variable_dict.items():
                    names |= _created(var, v)
        return names

    def run(self, batch: Batch | None, rng: np.random.Generator, n_sims: int) -> Batch:
        """Apply the step to a batch (all simulations at once)."""
        if self.data is not None:
            base = Batch.from_pandas(self.data)
            if n_sims > 1:
                base = Batch.concat([base] * n_sims)
            batch = base if batch is None else batch
            if not self.levels:
                return batch
        return fabricate_batch(self.levels, n_sims=n_sims, rng=rng, batch=batch, N=self.N)


class _Shown:
    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


class PotentialOutcomesStep(Step):
    """Potential outcomes (R: ``declare_potential_outcomes``).

    From a formula (``"Y ~ 0.5 * Z + u"``), or in the column form, the columns by name
    (``Y_Z_0="u", Y_Z_1="u + 0.5"``), as R's ``declare_potential_outcomes`` takes both.
    """

    kind = "potential_outcomes"
    _params = ("formula", "conditions", "assignment_variables", "label")

    def __init__(self, formula: str | None = None, *, conditions: Any = None,
                 assignment_variables: Any = None, label: str | None = None, **kwargs: Any):
        if "assignment" in kwargs:  # the ARCHITECTURE spelling
            assignment_variables = kwargs.pop("assignment")
        if kwargs.get("columns") is not None and isinstance(kwargs["columns"], dict):
            kwargs = {**kwargs.pop("columns"), **kwargs}   # from get_params / replace
        kwargs.pop("columns", None)
        if formula is None and kwargs:
            self.columns = dict(kwargs)
        else:
            if not isinstance(formula, str):
                fail("declare_potential_outcomes", "formula", formula,
                     "a formula string such as 'Y ~ 0.5 * Z + u', or the potential "
                     "outcome columns by name (Y_Z_0='u', Y_Z_1='u + 0.5')")
            if kwargs:
                k = sorted(kwargs)[0]
                fail("declare_potential_outcomes", k, kwargs[k],
                     "one of formula, conditions, assignment_variables, label (or give "
                     "the columns by name without a formula)")
            self.columns = None
        self.formula = formula
        self.conditions = conditions
        self.assignment_variables = assignment_variables
        self._label = check_label("declare_potential_outcomes", label)
        kw = {}
        if conditions is not None:
            kw["conditions"] = conditions
        if assignment_variables is not None:
            kw["assignment_variables"] = assignment_variables
        self._po = potential_outcomes(formula, **kw, **(self.columns or {}))
        self._freeze()

    def get_params(self) -> dict[str, Any]:
        """Return the step's parameters as given at declaration."""
        params = {"formula": self.formula, "conditions": self.conditions,
                  "assignment_variables": self.assignment_variables, "label": self._label}
        if self.columns is not None:
            params["columns"] = dict(self.columns)
        return params

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        if self.columns is not None:
            items: list[tuple[str | None, Any]] = list(self.columns.items())
        else:
            items = [(None, self.formula)]
        items += [(k, v) for k, v in self.get_params().items()
                  if k not in ("formula", "columns") and v is not None]
        return items

    def creates(self) -> set[str] | object:
        """Return the columns this step adds (:data:`UNKNOWN` when unknowable)."""
        return set(self._po.names)

    def run(self, batch: Batch | None, rng: np.random.Generator, n_sims: int) -> Batch:
        """Apply the step to a batch (all simulations at once)."""
        return self._po.apply(batch, rng)


class SamplingStep(VariablesStep):
    """Sampling (R: ``declare_sampling``).

    Adds the variables, then keeps rows where ``filter`` is true (by default the first
    variable == 1).
    """

    kind = "sampling"
    _params = ("variables", "filter", "label")

    def __init__(self, variables: Mapping[str, Any] | None = None, *, filter: Any = None,
                 label: str | None = None, **kwargs: Any):
        check(filter, "declare_sampling(filter=...)")
        object.__setattr__(self, "filter", filter)
        super().__init__(variables, label=label, **kwargs)

    def get_params(self) -> dict[str, Any]:
        """Return the step's parameters as given at declaration."""
        return {"variables": dict(self.variables), "filter": self.filter, "label": self._label}

    def _rebuild(self, params: dict[str, Any]) -> Step:
        return SamplingStep(params["variables"], filter=params["filter"], label=params["label"])

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        items = super()._repr_items()
        if self.filter is not None:
            items.append(("filter", self.filter))
        return items

    def run(self, batch: Batch | None, rng: np.random.Generator, n_sims: int) -> Batch:
        """Apply the step to a batch (all simulations at once)."""
        batch = super().run(batch, rng, n_sims)
        flt = self.filter if self.filter is not None else f"{next(iter(self.variables))} == 1"
        keep = np.asarray(evaluate(flt, batch, rng)).astype(bool)
        return batch.take(keep)


class AssignmentStep(VariablesStep):
    """Random assignment (R: ``declare_assignment``), e.g. ``Z=cluster_ra(clusters='cls')``."""

    kind = "assignment"


class MeasurementStep(VariablesStep):
    """Measurement (R: ``declare_measurement``), e.g. ``Y=reveal_outcomes('Y ~ Z')``."""

    kind = "measurement"


class CustomStep(Step):
    """Any data -> data step (R: ``declare_step``).

    ``handler`` is either a batch-aware step (an object with ``run(batch, rng,
    n_sims)``, such as :func:`summarize`) or a plain function ``f(df, **kwargs) -> df``
    applied to each simulated dataset (correct but slow). A function with an ``rng``
    parameter (``def f(df, rng): ...``) receives the simulation's
    :class:`numpy.random.Generator`, so its draws follow ``seed=`` and differ between
    simulations.
    """

    kind = "step"
    _params = ("handler", "kwargs", "label")

    def __init__(self, handler: Any = None, *, label: str | None = None, **kwargs: Any):
        if handler is None or not (callable(handler) or hasattr(handler, "run")):
            fail("declare_step", "handler", handler,
                 "a function f(df) -> df or a batch step such as summarize(...)")
        self.handler = handler
        self.kwargs = kwargs
        self._label = check_label("declare_step", label)
        self._freeze()

    def get_params(self) -> dict[str, Any]:
        """Return the step's parameters as given at declaration."""
        return {"handler": self.handler, "kwargs": dict(self.kwargs), "label": self._label}

    def _rebuild(self, params: dict[str, Any]) -> Step:
        return CustomStep(params["handler"], label=params["label"], **params["kwargs"])

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        items: list[tuple[str | None, Any]] = [(None, self.handler)]
        items += list(self.kwargs.items())
        if self._label:
            items.append(("label", self._label))
        return items

    def creates(self) -> set[str] | object:
        """Return the columns this step adds (:data:`UNKNOWN` when unknowable)."""
        c = getattr(self.handler, "creates", None)
        return c() if callable(c) else UNKNOWN

    def requires(self) -> set[str]:
        """Return the columns this step reads from earlier steps."""
        r = getattr(self.handler, "requires", None)
        return r() if callable(r) else set()

    def run(self, batch: Batch | None, rng: np.random.Generator, n_sims: int) -> Batch:
        """Apply the step to a batch (all simulations at once)."""
        if hasattr(self.handler, "run") and not inspect.isfunction(self.handler):
            return self.handler.run(batch, rng, n_sims)
        if batch is not None and _adds_plain_variables(self.handler, self.kwargs):
            # declare_step(fabricate, Z = ...) adds variables to each dataset: the same as
            # a measurement step, evaluated on all simulations at once
            return add_variables(batch, self.kwargs, rng)
        if batch is not None:
            # a handler keeping some rows by an elementwise mask runs once for all
            # simulations (None: it does something else; run it per simulation)
            # the handler in a closure cell: the stand-in's call gets its twin-enabled copy
            handler, kwargs = self.handler, self.kwargs
            out = run_data_handler_batched(
                lambda df: call_handler(handler, df, rng=rng, **kwargs), batch,
                handler=handler)
            if out is not None:
                return out
        frames = []
        for df in (batch.split() if batch is not None else [None] * n_sims):
            args = () if df is None else (df,)
            out = call_handler(self.handler, *args, rng=rng, **self.kwargs)
            if not isinstance(out, pd.DataFrame):
                raise DeclarationError(
                    f"declare_step({format_value(self.handler)}): the handler must return a "
                    f"pandas DataFrame; got {type(out).__name__}.")
            frames.append(out)
        return Batch.from_frames(frames)


def _adds_plain_variables(handler: Any, kwargs: Mapping[str, Any]) -> bool:
    """Whether ``handler(df, **kwargs)`` is fabricate adding expression or draw variables."""
    if handler is not _fabricate_module and handler is not _fabricate_module.fabricate:
        return False
    if not kwargs or any(k in ("data", "N", "ID_label") for k in kwargs):
        return False
    return all(isinstance(v, (str, int, float, Lazy)) and not isinstance(v, bool)
               for v in kwargs.values())


class _HandlerStep(CustomStep):
    """A data step of another kind defined by a handler (R: ``declare_sampling(handler=f)``)."""

    def _declare_name(self) -> str:
        return f"declare_{self.kind}"

    def _rebuild(self, params: dict[str, Any]) -> Step:
        return type(self)(params["handler"], label=params["label"], **params["kwargs"])

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        return [("handler", self.handler), *super()._repr_items()[1:]]


class SamplingHandlerStep(_HandlerStep):
    """Sampling by a function ``f(df, **kwargs) -> df`` (R: ``declare_sampling(handler=)``)."""

    kind = "sampling"


class MeasurementHandlerStep(_HandlerStep):
    """Measurement or reveal by a function ``f(df, **kwargs) -> df`` (R: ``handler=``)."""

    kind = "measurement"
