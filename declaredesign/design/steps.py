"""Declarative, immutable design steps.

A step holds only its parameters. Data steps map a :class:`~declaredesign.batch.Batch`
to a new batch; inquiry steps return one value per simulation and inquiry; estimator
and test steps return tidy rows per simulation. Every step composes with ``+`` into a
:class:`~declaredesign.design.design.Design` and is checked when declared.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._validation import fail
from ..batch import Batch
from ..errors import DeclarationError, EstimationError
from ..estimate._protocol import TIDY_COLUMNS, get_batched
from ..expressions import check, evaluate

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
    "declare_inquiry",
    "declare_estimand",
    "declare_sampling",
    "declare_assignment",
    "declare_measurement",
    "declare_reveal",
    "declare_step",
    "declare_estimator",
    "declare_test",
]

_UNKNOWN = object()


# --------------------------------------------------------------------------- base
class Step:
    """Base class of every design step.

    Subclasses define ``kind`` (what the step does in MIDA terms) and store their
    parameters as attributes; steps are frozen after construction.
    """

    kind: ClassVar[str] = "step"
    #: Data steps transform the batch; others read it and emit rows.
    is_data_step: ClassVar[bool] = True

    _params: tuple[str, ...] = ()
    _frozen = False

    def __setattr__(self, name: str, value: Any) -> None:
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is immutable; use .replace(...)")
        object.__setattr__(self, name, value)

    def _freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)

    # -- params, repr, replace --------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The step's parameters as given at declaration."""
        return {p: getattr(self, p) for p in self._params}

    def replace(self, **changes: Any) -> Step:
        """Return a copy with some parameters changed (checked again)."""
        params = self.get_params()
        unknown = set(changes) - set(params)
        if unknown:
            fail(f"{type(self).__name__}.replace", sorted(unknown)[0], changes[sorted(unknown)[0]],
                 "one of the step's parameters " + ", ".join(params))
        params.update(changes)
        return self._rebuild(params)

    def _rebuild(self, params: dict[str, Any]) -> Step:
        return type(self)(**params)

    def __repr__(self) -> str:
        return f"{self._declare_name()}({_format_args(self._repr_items())})"

    def _declare_name(self) -> str:
        return f"declare_{self.kind}"

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        return [(k, v) for k, v in self.get_params().items() if v is not None]

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    # -- composition ----------------------------------------------------
    def __add__(self, other: Any):
        from .design import Design
        return Design((self,)) + other

    def __radd__(self, other: Any):
        from .design import Design
        if other == 0:  # sum([...]) starts from 0
            return Design((self,))
        return NotImplemented

    # -- what the design checks can know -------------------------------
    @property
    def label(self) -> str:
        return getattr(self, "_label", None) or self.kind

    def creates(self) -> set[str] | object:
        """Column names this step adds, or ``_UNKNOWN`` when they cannot be known."""
        return set()

    def requires(self) -> set[str]:
        """Column names this step needs from earlier steps (where knowable)."""
        return set()

    # -- running --------------------------------------------------------
    def run(self, batch: Batch | None, rng: np.random.Generator, n_sims: int) -> Batch:
        """Apply a data step to a batch (all simulations at once)."""
        raise NotImplementedError


def _format_value(v: Any) -> str:
    if callable(v) and not hasattr(v, "get_params") and hasattr(v, "__name__"):
        return v.__name__
    if isinstance(v, float):
        return repr(v)
    return repr(v)


def _format_args(items: Sequence[tuple[str | None, Any]]) -> str:
    return ", ".join(_format_value(v) if k is None else f"{k}={_format_value(v)}"
                     for k, v in items)


def _check_label(func: str, label: Any) -> str | None:
    if label is None:
        return None
    if not isinstance(label, str) or not label:
        fail(func, "label", label, "a non-empty string")
    return label


# ------------------------------------------------------------- variable steps
class _VariablesStep(Step):
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
        self._label = _check_label(func, label)
        self._freeze()

    def get_params(self) -> dict[str, Any]:
        return {"variables": dict(self.variables), "label": self._label}

    def _rebuild(self, params: dict[str, Any]) -> Step:
        return type(self)(params["variables"], label=params["label"])

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        items: list[tuple[str | None, Any]] = list(self.variables.items())
        if self._label is not None:
            items.append(("label", self._label))
        return items

    def creates(self) -> set[str] | object:
        return set(self.variables)

    def run(self, batch: Batch | None, rng: np.random.Generator, n_sims: int) -> Batch:
        if batch is None:
            raise DeclarationError(f"{self._declare_name()}: there is no data yet; declare a "
                                   "model (declare_model) before this step.")
        return add_variables(batch, self.variables, rng)


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
        from ..fabricate import LevelSpec  # noqa: F401  (validates the layer exists)

        levels = dict(levels or {})
        levels.update(kwargs)
        if data is not None:
            if not isinstance(data, pd.DataFrame):
                fail("declare_model", "data", type(data).__name__, "a pandas DataFrame",
                     shown=type(data).__name__)
        if not levels and data is None:
            raise DeclarationError("declare_model(): give levels (school=add_level(N=...)), "
                                   "variables with N=..., or data=.")
        self.levels = levels
        self.N = N
        self.data = data
        self._label = _check_label("declare_model", label)
        self._check()
        self._freeze()

    def _check(self) -> None:
        from ..fabricate import LevelSpec

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
        from ..fabricate import LevelSpec, PotentialOutcomes

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
                    # A potential_outcomes(...) inside a level adds its own columns.
                    names |= set(v.names) if isinstance(v, PotentialOutcomes) else {var}
        return names

    def run(self, batch: Batch | None, rng: np.random.Generator, n_sims: int) -> Batch:
        from ..fabricate import fabricate_batch

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
    """Potential outcomes from a formula (R: ``declare_potential_outcomes``)."""

    kind = "potential_outcomes"
    _params = ("formula", "conditions", "assignment_variables", "label")

    def __init__(self, formula: str | None = None, *, conditions: Any = None,
                 assignment_variables: Any = None, label: str | None = None, **kwargs: Any):
        from ..fabricate import potential_outcomes

        if not isinstance(formula, str):
            fail("declare_potential_outcomes", "formula", formula,
                 "a formula string such as 'Y ~ 0.5 * Z + u'")
        if "assignment" in kwargs:  # the ARCHITECTURE spelling
            assignment_variables = kwargs.pop("assignment")
        if kwargs:
            k = sorted(kwargs)[0]
            fail("declare_potential_outcomes", k, kwargs[k],
                 "one of formula, conditions, assignment_variables, label")
        self.formula = formula
        self.conditions = conditions
        self.assignment_variables = assignment_variables
        self._label = _check_label("declare_potential_outcomes", label)
        kw = {}
        if conditions is not None:
            kw["conditions"] = conditions
        if assignment_variables is not None:
            kw["assignment_variables"] = assignment_variables
        self._po = potential_outcomes(formula, **kw)
        self._freeze()

    def get_params(self) -> dict[str, Any]:
        return {"formula": self.formula, "conditions": self.conditions,
                "assignment_variables": self.assignment_variables, "label": self._label}

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        items: list[tuple[str | None, Any]] = [(None, self.formula)]
        items += [(k, v) for k, v in self.get_params().items() if k != "formula" and v is not None]
        return items

    def creates(self) -> set[str] | object:
        return set(self._po.names)

    def run(self, batch: Batch | None, rng: np.random.Generator, n_sims: int) -> Batch:
        return self._po.apply(batch, rng)


class InquiryStep(Step):
    """Inquiries: named quantities of interest computed on the data (R: ``declare_inquiry``).

    Each inquiry is a string expression reduced per simulation
    (``ate="mean(Y_Z_1 - Y_Z_0)"``) or a callable ``f(df) -> float`` applied to each
    simulated dataset.
    """

    kind = "inquiry"
    is_data_step = False
    _params = ("inquiries", "label")

    def __init__(self, inquiries: Mapping[str, Any] | None = None, *, label: str | None = None,
                 **kwargs: Any):
        inquiries = dict(inquiries or {})
        inquiries.update(kwargs)
        if not inquiries:
            raise DeclarationError("declare_inquiry(): declare at least one inquiry, e.g. "
                                   "declare_inquiry(ate='mean(Y_Z_1 - Y_Z_0)').")
        for name, value in inquiries.items():
            if not (isinstance(value, (str, int, float)) or callable(value)):
                fail("declare_inquiry", name, value,
                     "a string expression, a number or a callable f(df) -> float")
            check(value, f"declare_inquiry({name}=...)")
        self.inquiries = inquiries
        self._label = _check_label("declare_inquiry", label)
        self._freeze()

    def get_params(self) -> dict[str, Any]:
        return {"inquiries": dict(self.inquiries), "label": self._label}

    def _rebuild(self, params: dict[str, Any]) -> Step:
        return InquiryStep(params["inquiries"], label=params["label"])

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        items: list[tuple[str | None, Any]] = list(self.inquiries.items())
        if self._label:
            items.append(("label", self._label))
        return items

    @property
    def label(self) -> str:
        return self._label or ", ".join(self.inquiries)

    def inquiry_labels(self) -> list[str]:
        return list(self.inquiries)

    def compute(self, batch: Batch, rng: np.random.Generator) -> pd.DataFrame:
        """One row per (sim, inquiry): columns sim, inquiry, estimand."""
        frames = []
        for name, expr in self.inquiries.items():
            if isinstance(expr, str) or np.isscalar(expr):
                values = np.asarray(evaluate(expr, batch, rng, per_sim=True), dtype=float)
                if values.ndim == 0:
                    values = np.full(batch.n_sims, float(values))
            else:
                values = np.array([_scalar(expr(df), name) for df in batch.split()], dtype=float)
            frames.append(pd.DataFrame({"sim": np.arange(batch.n_sims), "inquiry": name,
                                        "estimand": values}))
        return pd.concat(frames, ignore_index=True)


def _scalar(value: Any, name: str) -> float:
    arr = np.asarray(value, dtype=float)
    if arr.size != 1:
        raise DeclarationError(f"declare_inquiry({name}=...): the function must return one "
                               f"number per dataset; got {arr.size} values.")
    return float(arr.reshape(-1)[0])


class SamplingStep(_VariablesStep):
    """Sampling (R: ``declare_sampling``): adds the variables, then keeps rows where
    ``filter`` is true (by default the first variable == 1)."""

    kind = "sampling"
    _params = ("variables", "filter", "label")

    def __init__(self, variables: Mapping[str, Any] | None = None, *, filter: Any = None,
                 label: str | None = None, **kwargs: Any):
        check(filter, "declare_sampling(filter=...)")
        object.__setattr__(self, "filter", filter)
        super().__init__(variables, label=label, **kwargs)

    def get_params(self) -> dict[str, Any]:
        return {"variables": dict(self.variables), "filter": self.filter, "label": self._label}

    def _rebuild(self, params: dict[str, Any]) -> Step:
        return SamplingStep(params["variables"], filter=params["filter"], label=params["label"])

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        items = super()._repr_items()
        if self.filter is not None:
            items.append(("filter", self.filter))
        return items

    def run(self, batch: Batch | None, rng: np.random.Generator, n_sims: int) -> Batch:
        batch = super().run(batch, rng, n_sims)
        flt = self.filter if self.filter is not None else f"{next(iter(self.variables))} == 1"
        keep = np.asarray(evaluate(flt, batch, rng)).astype(bool)
        return batch.take(keep)


class AssignmentStep(_VariablesStep):
    """Random assignment (R: ``declare_assignment``), e.g. ``Z=cluster_ra(clusters='cls')``."""

    kind = "assignment"


class MeasurementStep(_VariablesStep):
    """Measurement (R: ``declare_measurement``), e.g. ``Y=reveal_outcomes('Y ~ Z')``."""

    kind = "measurement"


class CustomStep(Step):
    """Any data -> data step (R: ``declare_step``).

    ``handler`` is either a batch-aware step (an object with ``run(batch, rng,
    n_sims)``, such as :func:`summarize`) or a plain function ``f(df, **kwargs) -> df``
    applied to each simulated dataset (correct but slow).
    """

    kind = "step"
    _params = ("handler", "kwargs", "label")

    def __init__(self, handler: Any = None, *, label: str | None = None, **kwargs: Any):
        if handler is None or not (callable(handler) or hasattr(handler, "run")):
            fail("declare_step", "handler", handler,
                 "a function f(df) -> df or a batch step such as summarize(...)")
        self.handler = handler
        self.kwargs = kwargs
        self._label = _check_label("declare_step", label)
        self._freeze()

    def get_params(self) -> dict[str, Any]:
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
        c = getattr(self.handler, "creates", None)
        return c() if callable(c) else _UNKNOWN

    def requires(self) -> set[str]:
        r = getattr(self.handler, "requires", None)
        return r() if callable(r) else set()

    def run(self, batch: Batch | None, rng: np.random.Generator, n_sims: int) -> Batch:
        if hasattr(self.handler, "run") and not inspect.isfunction(self.handler):
            return self.handler.run(batch, rng, n_sims)
        frames = []
        for df in (batch.split() if batch is not None else [None] * n_sims):
            out = self.handler(df, **self.kwargs) if df is not None else self.handler(**self.kwargs)
            if not isinstance(out, pd.DataFrame):
                raise DeclarationError(
                    f"declare_step({_format_value(self.handler)}): the handler must return a "
                    f"pandas DataFrame; got {type(out).__name__}.")
            frames.append(out)
        return Batch.from_frames(frames)


# ------------------------------------------------------------------ estimators
class EstimatorStep(Step):
    """An estimator: a model fitted to each simulated dataset (R: ``declare_estimator``).

    Parameters
    ----------
    formula : str, optional
        Model formula, passed to ``model``.
    model : callable, default lm_robust
        ``model(formula, data, **kwargs)`` returning a fit with ``tidy()`` or a DataFrame.
        Models with a batched kernel fit all simulations at once.
    inquiry : str or list of str, optional
        Inquiry label(s) this estimator targets. A list paired with a list of ``term``
        links each term to its inquiry.
    term : str, list of str or bool, optional
        Coefficient(s) to keep. ``None``/``False``: the first non-intercept term (R's
        default); ``True``: all terms.
    label : str, default "estimator"
        The estimator's label in results.
    handler : callable, optional
        Instead of ``model``: ``handler(df) -> DataFrame`` of tidy rows, per dataset.
    **model_kwargs
        Further arguments for the model (e.g. ``clusters="classroom"``).
    """

    kind = "estimator"
    is_data_step = False
    _params = ("formula", "model", "inquiry", "term", "label", "handler", "model_kwargs")

    def __init__(self, formula: str | None = None, *, model: Callable | None = None,
                 inquiry: str | Sequence[str] | None = None, term: Any = None,
                 label: str | None = None, handler: Callable | None = None,
                 estimand: str | Sequence[str] | None = None, **model_kwargs: Any):
        func = f"declare_{self.kind}"
        if estimand is not None:
            if inquiry is not None:
                fail(func, "estimand", estimand, "None when inquiry is given (estimand is its "
                     "old name)")
            inquiry = estimand
        if handler is not None and model is not None:
            fail(func, "handler", handler, "None when model is given")
        if handler is not None and not callable(handler):
            fail(func, "handler", handler, "a callable f(df) -> DataFrame")
        if model is None and handler is None:
            from ..estimate import lm_robust
            model = lm_robust
        if model is not None and not callable(model):
            fail(func, "model", model, "a callable such as dd.lm_robust")
        if formula is not None and not isinstance(formula, str):
            fail(func, "formula", formula, "a formula string such as 'Y ~ Z'")
        if handler is None and formula is None:
            fail(func, "formula", formula, "a formula string such as 'Y ~ Z'")
        if formula is not None and "~" not in formula:
            fail(func, "formula", formula, "a formula with '~', such as 'Y ~ Z'")
        check(model_kwargs.get("subset"), f"{func}(subset=...)")
        inquiries = _as_list(inquiry, func, "inquiry")
        if isinstance(term, str):
            terms: Any = [term]
        elif term is None or isinstance(term, bool):
            terms = term
        else:
            terms = _as_list(term, func, "term")
        if isinstance(terms, list) and inquiries and len(inquiries) > 1 and \
                len(terms) != len(inquiries):
            fail(func, "term", term, f"a list as long as inquiry ({len(inquiries)}) to pair them")
        self.formula = formula
        self.model = model
        self.inquiry = inquiry
        self.term = term
        self.handler = handler
        self.model_kwargs = model_kwargs
        self._label = _check_label(func, label)
        self._inquiries = inquiries
        self._terms = terms
        self._freeze()

    def get_params(self) -> dict[str, Any]:
        return {"formula": self.formula, "model": self.model, "inquiry": self.inquiry,
                "term": self.term, "label": self._label, "handler": self.handler,
                "model_kwargs": dict(self.model_kwargs)}

    def _rebuild(self, params: dict[str, Any]) -> Step:
        kw = dict(params.pop("model_kwargs"))
        return type(self)(**params, **kw)

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        items: list[tuple[str | None, Any]] = []
        if self.formula is not None:
            items.append((None, self.formula))
        for k in ("model", "handler", "inquiry", "term"):
            v = getattr(self, k)
            if v is not None:
                items.append((k, v))
        items += list(self.model_kwargs.items())
        if self._label:
            items.append(("label", self._label))
        return items

    @property
    def label(self) -> str:
        return self._label or self.kind

    def inquiry_labels(self) -> list[str]:
        return list(self._inquiries)

    def requires(self) -> set[str]:
        cols: set[str] = set()
        if self.formula is not None:
            cols |= _formula_names(self.formula)
        for k in ("clusters", "blocks", "weights", "fixed_effects"):
            v = self.model_kwargs.get(k)
            if isinstance(v, str) and v.isidentifier():
                cols.add(v)
        return cols

    # -- running --------------------------------------------------------
    def estimate(self, batch: Batch) -> pd.DataFrame:
        """Tidy rows for every simulation: sim, estimator, term, ..., inquiry."""
        kernel = get_batched(self.model) if self.handler is None else None
        if kernel is not None:
            out = kernel(batch, self.formula, **self.model_kwargs)
        else:
            out = self._per_dataset(batch)
        if "error" in out and len(out) and out["error"].notna().all():
            # Failing in every simulation is a bug in the declaration, not bad luck.
            raise EstimationError(f"the estimator failed in every simulation; first error: "
                                  f"{out['error'].iloc[0]}")
        out = self._select_terms(out)
        out.insert(1, "estimator", self.label)
        return out.reset_index(drop=True)

    def _per_dataset(self, batch: Batch) -> pd.DataFrame:
        frames = []
        for s, df in enumerate(batch.split()):
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    if self.handler is not None:
                        res = self.handler(df, **self.model_kwargs)
                    else:
                        res = self.model(self.formula, data=df, **self.model_kwargs)
                tidy = _to_tidy(res)
                if caught:
                    tidy["warning"] = "; ".join(str(w.message) for w in caught)
            except Exception as e:  # a fit failing in one simulation is data, not a crash
                tidy = pd.DataFrame({"term": [self._failed_term()],
                                     "outcome": [self._outcome()],
                                     "error": [f"{type(e).__name__}: {e}"]})
            tidy.insert(0, "sim", s)
            frames.append(tidy)
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"sim": []})
        for c in TIDY_COLUMNS:
            if c not in out:
                out[c] = np.nan
        return out

    def _failed_term(self) -> str | None:
        # A failed fit is counted under the term the estimator was declared to report.
        terms = self._terms
        return terms[0] if isinstance(terms, list) and len(terms) == 1 else None

    def _outcome(self) -> str | None:
        if self.formula is None:
            return None
        lhs = self.formula.split("~")[0].strip()
        return lhs if lhs.isidentifier() else None

    def _select_terms(self, out: pd.DataFrame) -> pd.DataFrame:
        terms = self._terms
        # Rows of a failed fit have no real term: keep them, under the reported term.
        failed = out["term"].isna() | (out["error"].notna() if "error" in out else False)
        if terms is True:
            sel = out.copy()
        elif isinstance(terms, list):
            sel = out[out["term"].isin(terms) | failed].copy()
        else:
            ok = out.loc[~failed, "term"]
            non_int = ok[ok != "(Intercept)"]
            first = non_int.iloc[0] if len(non_int) else None
            sel = out[(out["term"] == first) | (failed & out["term"].isna())].copy()
            if first is not None:
                sel.loc[sel["term"].isna(), "term"] = first
        # Link inquiries: one inquiry for all rows, or pairwise with the term list.
        inqs = self._inquiries
        if not inqs:
            sel["inquiry"] = None
        elif len(inqs) == 1:
            sel["inquiry"] = inqs[0]
        elif isinstance(terms, list):
            mapping = dict(zip(terms, inqs))
            sel["inquiry"] = sel["term"].map(mapping)
        else:
            sel = pd.concat([sel.assign(inquiry=q) for q in inqs], ignore_index=True)
        return sel


def _as_list(value: Any, func: str, arg: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    fail(func, arg, value, "a string or a list of strings")


def _to_tidy(res: Any) -> pd.DataFrame:
    if isinstance(res, pd.DataFrame):
        df = res.copy()
    elif hasattr(res, "tidy"):
        df = res.tidy()
    else:
        raise EstimationError(f"the model returned {type(res).__name__}, which has no tidy(); "
                              "return a DataFrame or a fit with .tidy().")
    df = df.rename(columns={c: c.replace(".", "_") for c in df.columns})
    if "term" not in df:
        df["term"] = "estimate"
    return df


def _formula_names(formula: str) -> set[str]:
    import re

    body = re.sub(r"\(([^()|]*)\|([^()]*)\)", r"\1 + \2", formula)
    tokens = set(re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", body))
    # Function names used as calls are not columns.
    calls = set(re.findall(r"([A-Za-z_][A-Za-z0-9_.]*)\s*\(", body))
    return {t for t in tokens - calls if t not in {"I", "C", "np", "log", "exp"}}


class TestStep(EstimatorStep):
    """A test (R: ``declare_test``): an estimator without an inquiry."""

    __test__ = False  # not a pytest class
    kind = "test"

    def __init__(self, formula: str | None = None, **kwargs: Any):
        if kwargs.get("inquiry") is not None:
            fail("declare_test", "inquiry", kwargs["inquiry"], "None (tests have no inquiry)")
        super().__init__(formula, **kwargs)


# ------------------------------------------------------------- declare_* API
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
    """
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


def declare_inquiry(*args: Any, label: str | None = None, **inquiries: Any) -> InquiryStep:
    """Declare inquiries (R: ``declare_inquiry``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
    declare_inquiry(ate='mean(Y_Z_1 - Y_Z_0)')
    """
    if args:
        fail("declare_inquiry", "args", args, "keyword arguments name=expression",
             shown=repr(args))
    return InquiryStep(inquiries, label=label)


declare_estimand = declare_inquiry


def declare_sampling(*, filter: Any = None, label: str | None = None,
                     **variables: Any) -> SamplingStep:
    """Declare sampling (R: ``declare_sampling``); rows with ``filter`` false are dropped.

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.declare_sampling(S=dd.complete_rs(n=50)).kind
    'sampling'
    """
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


def declare_reveal(outcome_variables: str = "Y", assignment_variables: str = "Z", *,
                   label: str | None = None) -> MeasurementStep:
    """Reveal observed outcomes from potential outcomes (R: ``declare_reveal``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.declare_reveal("Y", "Z").kind
    'measurement'
    """
    from ..fabricate import reveal_outcomes

    for arg, v in (("outcome_variables", outcome_variables),
                   ("assignment_variables", assignment_variables)):
        if not isinstance(v, str) or not v.isidentifier():
            fail("declare_reveal", arg, v, "a column name")
    return MeasurementStep({outcome_variables: reveal_outcomes(
        f"{outcome_variables} ~ {assignment_variables}")}, label=label)


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
