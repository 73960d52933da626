"""A design: an immutable sequence of steps, checked as it is composed."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..batch import Batch
from ..errors import DeclareDesignError, DesignError, StepError
from .steps import _UNKNOWN, EstimatorStep, InquiryStep, Step, _VariablesStep

__all__ = ["Design", "RunResult"]


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
        The designer arguments that made this design (set by :func:`expand_design`).
    designer : callable, optional
        The function that made this design, used by :func:`redesign`.
    """

    __slots__ = ("steps", "parameters", "designer")

    def __init__(self, steps: tuple[Step, ...] = (), *,
                 parameters: Mapping[str, Any] | None = None,
                 designer: Callable[..., Design] | None = None, _check: bool = True):
        steps = tuple(steps)
        for i, s in enumerate(steps, 1):
            if not isinstance(s, Step):
                raise DesignError(f"design step {i} is a {type(s).__name__}, not a declared step; "
                                  "build designs from declare_* functions.")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "parameters", dict(parameters or {}))
        object.__setattr__(self, "designer", designer)
        if _check:
            _check_steps(steps)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Design is immutable; compose with + or use replace_step(...)")

    def __reduce__(self) -> tuple[Any, ...]:
        # Frozen slots cannot be restored by pickle's default setattr path.
        return (_restore_design, (self.steps, dict(self.parameters), self.designer))

    # ----------------------------------------------------------- container
    def __add__(self, other: Any) -> Design:
        if isinstance(other, Step):
            return Design(self.steps + (other,), parameters=self.parameters,
                          designer=self.designer)
        if isinstance(other, Design):
            return Design(self.steps + other.steps, parameters=self.parameters,
                          designer=self.designer)
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
        return [q for s in self.steps if isinstance(s, InquiryStep) for q in s.inquiry_labels()]

    @property
    def estimator_labels(self) -> list[str]:
        """Every estimator and test label, in order."""
        return [s.label for s in self.steps if isinstance(s, EstimatorStep)]

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
                elif isinstance(step, InquiryStep):
                    estimands.append(step.compute(_need(batch), rng))
                else:
                    estimates.append(step.estimate(_need(batch)))
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


def _restore_design(steps: tuple[Step, ...], parameters: dict[str, Any],
                    designer: Callable[..., Design] | None) -> Design:
    """Unpickle a design (its steps were checked when it was first built)."""
    return Design(steps, parameters=parameters, designer=designer, _check=False)


def _need(batch: Batch | None) -> Batch:
    if batch is None:
        raise DesignError("no data: the design has no model step before this step.")
    return batch


def _check_steps(steps: tuple[Step, ...]) -> None:
    """DeclareDesign's composition checks, run at every ``+``."""
    inquiries: list[str] = []
    for s in steps:
        if isinstance(s, InquiryStep):
            for q in s.inquiry_labels():
                if q in inquiries:
                    raise DesignError(f"inquiry label {q!r} is declared twice; inquiry labels "
                                      "must be unique.")
                inquiries.append(q)
    seen: list[str] = []
    for s in steps:
        if isinstance(s, EstimatorStep):
            if s.label in seen:
                raise DesignError(f"estimator label {s.label!r} is used twice; give each "
                                  "declare_estimator a unique label=.")
            seen.append(s.label)
            unknown = [q for q in s.inquiry_labels() if q not in inquiries]
            if unknown:
                declared = ", ".join(map(repr, inquiries)) or "none"
                raise DesignError(
                    f"declare_estimator(label={s.label!r}): inquiry {unknown[0]!r} is not "
                    f"declared in the design; declared inquiries: {declared}.")
    # Columns: track what each step creates while every step says so.
    known: set[str] | None = set()
    for i, s in enumerate(steps, 1):
        if known is not None:
            missing = sorted(c for c in _requires(s) if c not in known)
            if missing:
                raise DesignError(
                    f"step {i} ({s.kind} {s.label!r}) uses column {missing[0]!r}, which no "
                    f"earlier step creates; known columns: {', '.join(sorted(known))}.")
        created = s.creates()
        if created is _UNKNOWN:
            known = None
        elif known is not None:
            known |= created  # type: ignore[arg-type]


def _requires(step: Step) -> set[str]:
    req = set(step.requires())
    if isinstance(step, _VariablesStep):
        from ..fabricate import RevealOutcomes

        for v in step.variables.values():
            if isinstance(v, RevealOutcomes):
                req |= set(v.assignment_variables)
    return req
