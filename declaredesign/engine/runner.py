"""Run a design many times: chunks of simulations, each one batch, then one table.

The engine never keeps simulated datasets: each chunk returns its inquiry and
estimator rows, which are concatenated. Backends only decide where chunks run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..design.design import Design
from .seeding import PILOT_KEY, chunk_rng

__all__ = ["plan_chunks", "run_chunk", "run_chunks", "assemble", "SIM_COLUMNS"]

#: Column order of a simulations table (R's simulate_design, snake_case).
SIM_COLUMNS = ["design", "sim_id", "inquiry", "estimand", "estimator", "term", "estimate",
               "std_error", "statistic", "p_value", "conf_low", "conf_high", "df", "outcome"]

#: Rows per chunk the automatic chunk size aims at (memory stays well under 1 GiB).
TARGET_ROWS_PER_CHUNK = 2_000_000
MAX_CHUNK_SIMS = 1000


def plan_chunks(design: Design, sims: int, root: np.random.SeedSequence,
                chunk_size: int | None = None) -> list[tuple[int, int, int]]:
    """Cut ``sims`` into chunks ``(index, first_sim, n_sims)``.

    Without ``chunk_size`` the size comes from a one-simulation pilot run of the data
    steps (seeded from ``root``), so it depends on the design and seed only.
    """
    if chunk_size is None:
        chunk_size = auto_chunk_size(design, root)
    out = []
    first = 0
    index = 0
    while first < sims:
        n = min(chunk_size, sims - first)
        out.append((index, first, n))
        first += n
        index += 1
    return out


def auto_chunk_size(design: Design, root: np.random.SeedSequence) -> int:
    """Simulations per chunk so a chunk holds about TARGET_ROWS_PER_CHUNK rows."""
    rng = chunk_rng(root, PILOT_KEY)
    batch = None
    max_rows = 1
    for step in design.steps:
        if step.is_data_step:
            batch = step.run(batch, rng, 1)
            max_rows = max(max_rows, batch.n_rows)
    return int(np.clip(TARGET_ROWS_PER_CHUNK // max_rows, 1, MAX_CHUNK_SIMS))


def run_chunk(design: Design, root: np.random.SeedSequence, index: int, first_sim: int,
              n_sims: int) -> pd.DataFrame:
    """Simulate one chunk and return its rows of the simulations table."""
    res = design.run_batch(n_sims, chunk_rng(root, index))
    return assemble(res.estimands, res.estimates, first_sim)


def assemble(estimands: pd.DataFrame, estimates: pd.DataFrame, first_sim: int = 0) -> pd.DataFrame:
    """Join inquiry rows and estimator rows per simulation, as R's simulate_design."""
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
    cols = [c for c in SIM_COLUMNS if c in out.columns]
    extra = [c for c in out.columns if c not in cols]
    return out[cols + extra].reset_index(drop=True)


def run_chunks(design: Design, root: np.random.SeedSequence,
               chunks: Iterable[tuple[int, int, int]], *, progress: bool | None = None,
               desc: str = "simulating") -> list[pd.DataFrame]:
    """Run chunks serially, in order, with an optional progress bar."""
    chunks = list(chunks)
    bar = _progress_bar(progress, total=sum(c[2] for c in chunks), desc=desc)
    out = []
    try:
        for index, first, n in chunks:
            out.append(run_chunk(design, root, index, first, n))
            if bar is not None:
                bar.update(n)
    finally:
        if bar is not None:
            bar.close()
    return out


def _progress_bar(progress: bool | None, total: int, desc: str) -> Any:
    if progress is None:
        progress = total >= 5000 and sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress is a nicety; the run goes on without it
        return None
    return tqdm(total=total, desc=desc, unit="sim", leave=False)

