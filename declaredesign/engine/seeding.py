"""Explicit, backend-independent randomness, in fixed blocks of simulations.

A run's root :class:`numpy.random.SeedSequence` comes from the user's ``seed``. The
simulations of a design are cut into **blocks** of a fixed size ``B`` (chosen from the
design and the seed by a one-simulation pilot, see :mod:`~declaredesign.engine.chunks`);
block ``i`` (simulations ``i*B+1 .. (i+1)*B``) is one batch drawn from the generator
with spawn key ``(i,)``. Chunks, workers and backends only group whole blocks, so
they never change the simulations.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._validation import fail

__all__ = ["root_seed_sequence", "block_rng", "chunk_rng", "PILOT_KEY"]

#: Spawn key of the one-simulation pilot that sizes blocks (never a block index).
PILOT_KEY = 2**32 - 1


def root_seed_sequence(seed: Any, func: str = "simulate_design") -> np.random.SeedSequence:
    """Turn ``seed`` (None, a non-negative int or a SeedSequence) into a SeedSequence.

    Parameters
    ----------
    seed : None, int or numpy.random.SeedSequence
        The user's seed; None draws fresh entropy.
    func : str
        Public function named in the error message.

    Returns
    -------
    numpy.random.SeedSequence
    """
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0:
        return np.random.SeedSequence(int(seed))
    fail(func, "seed", seed, "None, a non-negative integer or a numpy SeedSequence")


def block_rng(root: np.random.SeedSequence, index: int) -> np.random.Generator:
    """Return the generator of block ``index`` of a run seeded by ``root``.

    Parameters
    ----------
    root : numpy.random.SeedSequence
        The run's (or the design's) root.
    index : int
        Block number (0-based), or :data:`PILOT_KEY`.

    Returns
    -------
    numpy.random.Generator
    """
    child = np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + (int(index),),
                                   pool_size=root.pool_size)
    return np.random.Generator(np.random.PCG64(child))


#: Former name of :func:`block_rng` (one-simulation verbs use block 0).
chunk_rng = block_rng
