"""Blocks and chunks of simulations, and the rows one chunk returns.

**Blocks** fix the random streams: the simulations of a design are cut into blocks of
``B`` simulations, block ``i`` drawn as one batch from its own generator
(:func:`~declaredesign.engine.seeding.block_rng`). ``B`` comes from a one-simulation
pilot of the data steps (so a block holds about :data:`TARGET_ROWS_PER_BLOCK` rows, at
most :data:`MAX_BLOCK_SIMS` simulations): it depends on the design and the seed only.

**Chunks** are units of work (what a worker runs, what a checkpoint stores): whole
blocks, ``chunk_size`` rounded up to a multiple of ``B`` (default one block). Since
a chunk runs each of its blocks with the block's own generator, chunking, workers and
backends never change the simulations. What does change them: the seed, the design
(which includes ``B``), and ``sims`` when it is not a multiple of ``B`` (the last
block is then a smaller batch, drawn differently from the start of a full one).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .protocol import SimulationTarget, pilot_rows
from .seeding import PILOT_KEY, block_rng

__all__ = ["SIM_COLUMNS", "MESSAGE_COLUMNS", "TARGET_ROWS_PER_BLOCK", "MAX_BLOCK_SIMS",
           "block_size", "chunk_sims", "plan_chunks", "run_chunk", "assemble", "messages",
           "order_columns"]

#: Column order of a simulations table (R's simulate_design, snake_case).
SIM_COLUMNS = ["design", "sim_id", "inquiry", "estimand", "estimator", "term", "estimate",
               "std_error", "statistic", "p_value", "conf_low", "conf_high", "df", "outcome"]

#: Per-simulation messages of estimators; None when the fit was clean.
MESSAGE_COLUMNS = ["error", "warning"]

#: Rows per block the block size aims at (memory stays well under 1 GiB).
TARGET_ROWS_PER_BLOCK = 2_000_000
#: Most simulations in one block. Part of the random streams: changing it changes results.
MAX_BLOCK_SIMS = 1000


def block_size(target: SimulationTarget, root: np.random.SeedSequence) -> int:
    """Return the simulations per block of ``target`` under ``root`` (design, seed only).

    Parameters
    ----------
    target : SimulationTarget
        The design.
    root : numpy.random.SeedSequence
        The design's root seed; the pilot draws from its own child.

    Returns
    -------
    int
        Between 1 and :data:`MAX_BLOCK_SIMS`.
    """
    rows = pilot_rows(target, block_rng(root, PILOT_KEY))
    return int(np.clip(TARGET_ROWS_PER_BLOCK // rows, 1, MAX_BLOCK_SIMS))


def chunk_sims(block: int, chunk_size: int | None) -> int:
    """Return simulations per chunk: ``chunk_size`` rounded up to whole blocks."""
    if chunk_size is None:
        return block
    return -(-chunk_size // block) * block


def plan_chunks(sims: int, chunk: int) -> list[tuple[int, int, int]]:
    """Cut ``sims`` into chunks ``(index, first_sim, n_sims)`` of ``chunk`` simulations.

    Parameters
    ----------
    sims : int
        Simulations of the design.
    chunk : int
        Simulations per chunk (a multiple of the block size).

    Returns
    -------
    list of tuple
        In order; the last chunk may be shorter.
    """
    return [(i, first, min(chunk, sims - first))
            for i, first in enumerate(range(0, sims, chunk))]


def run_chunk(target: SimulationTarget, root: np.random.SeedSequence, block: int,
              first_sim: int, n_sims: int) -> pd.DataFrame:
    """Simulate one chunk, block by block, and return its rows of the simulations table.

    Parameters
    ----------
    target : SimulationTarget
        The design.
    root : numpy.random.SeedSequence
        The design's root seed.
    block : int
        Block size; ``first_sim`` is a multiple of it.
    first_sim, n_sims : int
        The chunk's simulations (0-based first).

    Returns
    -------
    pandas.DataFrame
    """
    parts = []
    for start in range(first_sim, first_sim + n_sims, block):
        n = min(block, first_sim + n_sims - start)
        res = target.run_batch(n, block_rng(root, start // block))
        parts.append(assemble(res.estimands, res.estimates, start))
    if len(parts) == 1:
        return parts[0]
    return order_columns(pd.concat(parts, ignore_index=True))


def assemble(estimands: pd.DataFrame, estimates: pd.DataFrame, first_sim: int = 0) -> pd.DataFrame:
    """Join inquiry rows and estimator rows per simulation, as R's simulate_design.

    Parameters
    ----------
    estimands, estimates : pandas.DataFrame
        A batch's rows, with a 0-based ``sim`` column.
    first_sim : int
        Simulations before this batch (``sim_id`` is 1-based).

    Returns
    -------
    pandas.DataFrame
    """
    if estimates.empty:
        out = estimands.copy()
    elif estimands.empty:
        out = estimates.copy()
    else:
        est = estimates.copy()
        est["_order"] = np.arange(len(est))
        out = estimands.merge(est, on=["sim", "inquiry"], how="outer", sort=False)
        out = out.sort_values(["sim", "_order"], kind="stable", na_position="last")
        out = out.drop(columns="_order")
    out["sim"] = out["sim"].astype(np.int64) + first_sim + 1  # R numbers sims from 1
    out = out.rename(columns={"sim": "sim_id"})
    if "estimator" in out.columns:
        # Every chunk has the same columns, whether or not one of its fits failed, so
        # chunks concatenate (and checkpoint) the same way however the run is cut.
        for c in MESSAGE_COLUMNS:
            out[c] = messages(out[c]) if c in out.columns else None
    return order_columns(out).reset_index(drop=True)


def messages(col: pd.Series) -> pd.Series:
    """Return an error/warning column as objects, None where there is no message."""
    col = col.astype(object)
    return col.where(col.notna(), None)


def order_columns(df: pd.DataFrame, first: Sequence[str] = ()) -> pd.DataFrame:
    """Columns in the simulations table's order, unknown ones last."""
    cols = [c for c in (*first, *SIM_COLUMNS, *MESSAGE_COLUMNS) if c in df.columns]
    cols = list(dict.fromkeys(cols))
    return df[cols + [c for c in df.columns if c not in cols]]
