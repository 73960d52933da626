"""Explicit, backend-independent randomness.

A run's root :class:`numpy.random.SeedSequence` comes from the user's ``seed``; chunk
``i`` of the run draws from the child with spawn key ``(i,)``. Chunk boundaries depend
only on the design, ``sims`` and the seed, never on workers or backend, so every way
of running the same call gives bit-identical simulations.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._validation import fail

__all__ = ["root_seed_sequence", "chunk_rng", "PILOT_KEY"]

#: Spawn key of the one-simulation pilot that sizes chunks (never a chunk index).
PILOT_KEY = 2**32 - 1


def root_seed_sequence(seed: Any, func: str = "simulate_design") -> np.random.SeedSequence:
    """Turn ``seed`` (None, a non-negative int or a SeedSequence) into a SeedSequence."""
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0:
        return np.random.SeedSequence(int(seed))
    fail(func, "seed", seed, "None, a non-negative integer or a numpy SeedSequence")


def chunk_rng(root: np.random.SeedSequence, index: int) -> np.random.Generator:
    """The generator of chunk ``index`` of a run seeded by ``root``."""
    child = np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + (int(index),),
                                   pool_size=root.pool_size)
    return np.random.Generator(np.random.PCG64(child))
