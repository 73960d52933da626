"""What the engine runs: a small protocol, so the engine never imports ``design``.

The engine simulates anything that offers the two methods below; ``design.Design``
is the one implementation shipped (layers: ``engine`` < ``design``, so the design
module imports the engine and never the other way round).

A *simulation target* is asked for

- its **data steps**, once, with one simulation, to size blocks of simulations
  (:meth:`SimulationTarget.pilot_rows` is derived from ``steps``: each step says
  whether it draws data with ``is_data_step`` and runs with ``run(batch, rng, n)``);
- a **batch**: ``run_batch(n_sims, rng)`` simulates ``n_sims`` simulations from one
  generator and returns their inquiry rows (``estimands``) and estimator rows
  (``estimates``), each with a 0-based ``sim`` column;
- its ``parameters`` (designer parameters, added as columns) and, for checkpoint
  fingerprints, its ``repr`` and ``steps``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["BatchResult", "DataStep", "SimulationTarget", "pilot_rows"]


class BatchResult(Protocol):
    """Rows of a batch of simulations."""

    #: Inquiry rows: ``sim``, ``inquiry``, ``estimand``.
    estimands: pd.DataFrame
    #: Estimator rows: ``sim``, ``estimator``, ``term``, ``estimate``, ...
    estimates: pd.DataFrame


class DataStep(Protocol):
    """A step of a target; only data steps are run by the pilot."""

    is_data_step: bool

    def run(self, batch: Any, rng: np.random.Generator, n_sims: int) -> Any:
        """Run the step on ``batch`` (None for the first) for ``n_sims`` simulations."""


@runtime_checkable
class SimulationTarget(Protocol):
    """Anything the engine can simulate (``declaredesign.Design`` is one)."""

    steps: Sequence[DataStep]
    parameters: Mapping[str, Any]

    def run_batch(self, n_sims: int, rng: np.random.Generator) -> BatchResult:
        """Simulate ``n_sims`` simulations drawing from ``rng`` only."""


def pilot_rows(target: SimulationTarget, rng: np.random.Generator) -> int:
    """Most rows any data step of ``target`` holds in one simulation.

    Parameters
    ----------
    target : SimulationTarget
        What will be simulated.
    rng : numpy.random.Generator
        The pilot's own generator (never one of a block).

    Returns
    -------
    int
        At least 1.
    """
    batch = None
    max_rows = 1
    for step in target.steps:
        if step.is_data_step:
            batch = step.run(batch, rng, 1)
            max_rows = max(max_rows, batch.n_rows)
    return max_rows
