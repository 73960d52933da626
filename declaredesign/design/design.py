"""A design: an immutable sequence of steps, checked as it is composed.

This module holds the two halves of composition: :class:`Step`, the base class every
declared step derives from (parameters, repr, ``replace`` and ``+``), and
:class:`Design`, the sequence ``+`` builds. The concrete steps live in
:mod:`declaredesign.design.steps`; a design knows them only through the base class
(its ``role``, ``inquiry_labels()``, ``creates()``, ``requires()``), so steps import
this module and never the other way round.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._validation import fail
from ..batch import Batch
from ..errors import DeclareDesignError, DesignError, StepError
from .handlers import accepts_rng

__all__ = ["UNKNOWN", "Design", "RunResult", "Step"]

#: What :meth:`Step.creates` returns when the columns a step adds cannot be known.
UNKNOWN = object()


# --------------------------------------------------------------------------- steps
class Step:
    """Base class of every design step.

    Subclasses define ``kind`` (what the step does in MIDA terms) and ``role`` (how a
    design runs it) and store their parameters as attributes; steps are frozen after
    construction.

    Roles
    -----
    ``"data"``
        ``run(batch, rng, n_sims) -> Batch``: model, assignment, measurement...
    ``"inquiry"``
        ``compute(batch, rng) -> DataFrame`` with columns sim, inquiry, estimand;
        ``inquiry_labels()`` lists the inquiries it declares.
    ``"estimator"``
        ``estimate(batch[, rng]) -> DataFrame`` of tidy rows per simulation;
        ``inquiry_labels()`` lists the inquiries it targets.
    """

    kind: ClassVar[str] = "step"
    role: ClassVar[str] = "data"

    _params: tuple[str, ...] = ()
    _frozen = False

    @property
    def is_data_step(self) -> bool:
        """Whether the step transforms the batch (other steps read it and emit rows)."""
        return self.role == "data"

    def __setattr__(self, name: str, value: Any) -> None:
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is immutable; use .replace(...)")
        object.__setattr__(self, name, value)

    def _freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)

    # -- params, repr, replace --------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Return the step's parameters as given at declaration."""
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
        return f"{self._declare_name()}({format_args(self._repr_items())})"

    def _declare_name(self) -> str:
        return f"declare_{self.kind}"

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        return [(k, v) for k, v in self.get_params().items() if v is not None]

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    # -- calling a step on data (R: ``assignment(df)``) --------------------
    def __call__(self, data: pd.DataFrame | None = None, *, seed: Any = None) -> pd.DataFrame:
        """Apply the step to one dataset and return its output, as calling an R step does.

        A data step returns the new dataset (a model called without data draws one);
        an inquiry step its table of ``inquiry``/``estimand``; an estimator its rows.
        ``seed`` seeds the draws (a fresh :func:`numpy.random.default_rng`).
        """
        rng = np.random.default_rng(seed)
        if data is not None and not isinstance(data, pd.DataFrame):
            fail(f"{self._declare_name()}(...)", "data", type(data).__name__,
                 "a pandas DataFrame or None", shown=type(data).__name__)
        batch = None if data is None else Batch.from_pandas(data)
        if self.is_data_step:
            return self.run(batch, rng, 1).to_pandas()
        if batch is None:
            raise DesignError(f"{self._declare_name()}: give a dataset, e.g. step(df).")
        if self.role == "inquiry":
            out = self.compute(batch, rng)  # type: ignore[attr-defined]
        else:
            out = _estimate(self, batch, rng)
        return out.drop(columns="sim").reset_index(drop=True)

    # -- composition ----------------------------------------------------
    def __add__(self, other: Any) -> Design:
        return Design((self,)) + other

    def __radd__(self, other: Any) -> Design:
        if other == 0:  # sum([...]) starts from 0
            return Design((self,))
        return NotImplemented

    # -- what the design checks can know -------------------------------
    @property
    def label(self) -> str:
        """The step's label (its kind unless one was given)."""
        return getattr(self, "_label", None) or self.kind

    def inquiry_labels(self) -> list[str]:
        """Inquiries this step declares (inquiry role) or targets (estimator role)."""
        return []

    def creates(self) -> set[str] | object:
        """Column names this step adds, or :data:`UNKNOWN` when they cannot be known."""
        return set()

    def requires(self) -> set[str]:
        """Column names this step needs from earlier steps (where knowable)."""
        return set()

    # -- running --------------------------------------------------------
    def run(self, batch: Batch | None, rng: np.random.Generator, n_sims: int) -> Batch:
        """Apply a data step to a batch (all simulations at once)."""
        raise NotImplementedError


def format_value(v: Any) -> str:
    """Show a parameter in a step's repr (functions by name)."""
    if callable(v) and not hasattr(v, "get_params") and hasattr(v, "__name__"):
        return v.__name__
    return repr(v)


def format_args(items: Sequence[tuple[str | None, Any]]) -> str:
    """Show ``(name, value)`` pairs as call arguments (``None`` names: positional)."""
    return ", ".join(format_value(v) if k is None else f"{k}={format_value(v)}"
                     for k, v in items)


def check_label(func: str, label: Any) -> str | None:
    """Validate a step's ``label=`` (None or a non-empty string)."""
    if label is None:
        return None
    if not isinstance(label, str) or not label:
        fail(func, "label", label, "a non-empty string")
    return label


# -------------------------------------------------------------------------- design
@dataclass(frozen=True)
class RunResult:
    """What one batch of simulations of a design produced (chunk-local ``sim``)."""

    estimands: pd.DataFrame
    estimates: pd.DataFrame
    n_sims: int


class Design:
    """A research design: model, inquiry, data and answer strategies as steps.

    Designs are built with ``+`` from declared steps and never change afterwards;
    :func:`insert_step`, :func:`replace_step` and :func:`delete_step` return new designs.

    Parameters
    ----------
    steps : sequence of Step
    parameters : mapping, optional
        The designer arguments that made this design (set by :func:`expand_design`
        and :func:`redesign`); simulations carry them as columns.
    designer : callable, optional
        The function that made this design, used by :func:`redesign`.
    designer_args : mapping, optional
        The arguments the designer was called with (set by :func:`designer`).
    citation : str, optional
        How to cite the design (:func:`set_citation`, :func:`cite_design`).
    diagnosands : declare_diagnosands(...), optional
        The design's own diagnosands (:func:`set_diagnosands`), used by
        :func:`diagnose_design` when none are given.
    """

    __slots__ = ("steps", "parameters", "designer", "designer_args", "citation", "diagnosands")

    def __init__(self, steps: tuple[Step, ...] = (), *,
                 parameters: Mapping[str, Any] | None = None,
                 designer: Callable[..., Design] | None = None,
                 designer_args: Mapping[str, Any] | None = None,
                 citation: str | None = None, diagnosands: Any = None, _check: bool = True):
        steps = tuple(steps)
        for i, s in enumerate(steps, 1):
            if not isinstance(s, Step):
                raise DesignError(f"design step {i} is a {type(s).__name__}, not a declared step; "
                                  "build designs from declare_* functions.")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "parameters", dict(parameters or {}))
        object.__setattr__(self, "designer", designer)
        object.__setattr__(self, "designer_args", dict(designer_args or {}))
        object.__setattr__(self, "citation", citation)
        object.__setattr__(self, "diagnosands", diagnosands)
        if _check:
            _check_steps(steps)

    def with_steps(self, steps: Sequence[Step], *, _check: bool = True, **changes: Any) -> Design:
        """Return a design with other steps (and attributes), keeping the rest."""
        meta = {k: getattr(self, k) for k in self.__slots__ if k != "steps"}
        meta.update(changes)
        return Design(tuple(steps), _check=_check, **meta)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Design is immutable; compose with + or use replace_step(...)")

    def __reduce__(self) -> tuple[Any, ...]:
        # Frozen slots cannot be restored by pickle's default setattr path.
        meta = {k: getattr(self, k) for k in self.__slots__ if k != "steps"}
        return (_restore_design, (self.steps, meta))

    # ----------------------------------------------------------- container
    def __add__(self, other: Any) -> Design:
        if isinstance(other, Step):
            return self.with_steps(self.steps + (other,))
        if isinstance(other, Design):
            return self.with_steps(self.steps + other.steps)
        return NotImplemented

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __getitem__(self, i: int) -> Step:
        return self.steps[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Design) and self.steps == other.steps

    def __hash__(self) -> int:
        return hash(self.steps)

    def __repr__(self) -> str:
        lines = [f"Design with {len(self.steps)} steps:"]
        for i, s in enumerate(self.steps, 1):
            lines.append(f"  {i}. {s!r}")
        if self.parameters:
            lines.append("  parameters: " + ", ".join(f"{k}={v!r}"
                                                      for k, v in self.parameters.items()))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        items = "".join(f"<li><code>{html.escape(repr(s))}</code></li>" for s in self.steps)
        return f"<div><b>Design</b> ({len(self.steps)} steps)<ol>{items}</ol></div>"

    # -------------------------------------------------------------- labels
    @property
    def inquiry_labels(self) -> list[str]:
        """Every inquiry declared, in order."""
        return [q for s in self.steps if s.role == "inquiry" for q in s.inquiry_labels()]

    @property
    def estimator_labels(self) -> list[str]:
        """Every estimator and test label, in order."""
        return [s.label for s in self.steps if s.role == "estimator"]

    def step_index(self, step: int | str) -> int:
        """0-based position of a step given by 1-based number or label."""
        if isinstance(step, (int, np.integer)) and not isinstance(step, bool):
            if not 1 <= step <= len(self.steps):
                raise DesignError(f"step must be between 1 and {len(self.steps)}; got {step}.")
            return int(step) - 1
        matches = [i for i, s in enumerate(self.steps) if s.label == step]
        if len(matches) != 1:
            labels = ", ".join(repr(s.label) for s in self.steps)
            what = "no step" if not matches else f"{len(matches)} steps"
            raise DesignError(f"{what} labelled {step!r}; step labels are: {labels}.")
        return matches[0]

    # ------------------------------------------------------------- running
    def run_batch(self, n_sims: int, rng: np.random.Generator, *,
                  data: Batch | None = None, start: int = 0) -> RunResult:
        """Run every step on ``n_sims`` simulations at once."""
        batch = data
        estimands, estimates = [], []
        for i in range(start, len(self.steps)):
            step = self.steps[i]
            with self._naming_step(i):
                if step.is_data_step:
                    batch = step.run(batch, rng, n_sims)
                elif step.role == "inquiry":
                    estimands.append(step.compute(_need(batch), rng))
                else:
                    estimates.append(_estimate(step, _need(batch), rng))
        est = pd.concat(estimands, ignore_index=True) if estimands else \
            pd.DataFrame({"sim": pd.Series(dtype=int), "inquiry": pd.Series(dtype=object),
                          "estimand": pd.Series(dtype=float)})
        tidy = pd.concat(estimates, ignore_index=True) if estimates else pd.DataFrame()
        return RunResult(est, tidy, n_sims)

    def run_data_steps(self, n_sims: int, rng: np.random.Generator, *,
                       data: Batch | None = None, start: int = 0,
                       stop: int | None = None) -> Batch | None:
        """Run only the data steps with 0-based positions in ``[start, stop)``."""
        batch = data
        for i in range(start, len(self.steps) if stop is None else stop):
            step = self.steps[i]
            if step.is_data_step:
                with self._naming_step(i):
                    batch = step.run(batch, rng, n_sims)
        return batch

    @contextmanager
    def _naming_step(self, i: int) -> Iterator[None]:
        """Re-raise a step's failure as a StepError naming its position and label."""
        step = self.steps[i]
        try:
            yield
        except StepError:
            raise
        except Exception as e:
            # Our own errors already say what is wrong; others need their type.
            what = str(e) if isinstance(e, DeclareDesignError) else f"{type(e).__name__}: {e}"
            raise StepError(f"step {i + 1} ({step.kind} {step.label!r}): {what}",
                            step_index=i + 1, step_label=step.label) from e

    def last_data_generating_step(self) -> int:
        """0-based index after the last model/assignment/sampling/measurement step."""
        last = 0
        for i, s in enumerate(self.steps):
            if s.kind in ("model", "potential_outcomes", "sampling", "assignment",
                          "measurement"):
                last = i + 1
        return last


def _restore_design(steps: tuple[Step, ...], meta: dict[str, Any]) -> Design:
    """Unpickle a design (its steps were checked when it was first built)."""
    return Design(steps, _check=False, **meta)


def _estimate(step: Step, batch: Batch, rng: np.random.Generator) -> pd.DataFrame:
    """Run an estimator step, giving it the generator when its ``estimate`` takes one."""
    if accepts_rng(type(step).estimate):
        return step.estimate(batch, rng=rng)
    return step.estimate(batch)


def _need(batch: Batch | None) -> Batch:
    if batch is None:
        raise DesignError("no data: the design has no model step before this step.")
    return batch


def _check_steps(steps: tuple[Step, ...]) -> None:
    """DeclareDesign's composition checks, run at every ``+``."""
    inquiries: list[str] = []
    # A handler inquiry names its inquiries only when it runs.
    open_inquiries = any(not getattr(s, "labels_known", True) for s in steps
                         if s.role == "inquiry")
    for s in steps:
        if s.role == "inquiry":
            for q in s.inquiry_labels():
                if q in inquiries:
                    raise DesignError(f"inquiry label {q!r} is declared twice; inquiry labels "
                                      "must be unique.")
                inquiries.append(q)
    seen: list[str] = []
    for s in steps:
        if s.role == "estimator":
            if s.label in seen:
                raise DesignError(f"estimator label {s.label!r} is used twice; give each "
                                  "declare_estimator a unique label=.")
            seen.append(s.label)
            unknown = [q for q in s.inquiry_labels() if q not in inquiries]
            if unknown and not open_inquiries:
                declared = ", ".join(map(repr, inquiries)) or "none"
                raise DesignError(
                    f"declare_estimator(label={s.label!r}): inquiry {unknown[0]!r} is not "
                    f"declared in the design; declared inquiries: {declared}.")
    # Columns: track what each step creates while every step says so.
    known: set[str] | None = set()
    for i, s in enumerate(steps, 1):
        if known is not None:
            missing = sorted(c for c in s.requires() if c not in known)
            if missing:
                raise DesignError(
                    f"step {i} ({s.kind} {s.label!r}) uses column {missing[0]!r}, which no "
                    f"earlier step creates; known columns: {', '.join(sorted(known))}.")
        created = s.creates()
        if created is UNKNOWN:
            known = None
        elif known is not None:
            known |= created  # type: ignore[arg-type]

