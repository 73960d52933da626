"""Run a design many times: chunks of simulations, each one batch, then one table.

The engine never keeps simulated datasets: each chunk returns its inquiry and
estimator rows, which are concatenated. Backends only decide where chunks run.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..design.design import Design
from .backends import Backend, Task, resolve_backend
from .checkpoint import Checkpoint, read_manifest
from .seeding import PILOT_KEY, chunk_rng

__all__ = ["plan_chunks", "run_chunk", "run_chunks", "assemble", "SIM_COLUMNS", "Simulation",
           "design_root", "checkpoint_root"]

#: Column order of a simulations table (R's simulate_design, snake_case).
SIM_COLUMNS = ["design", "sim_id", "inquiry", "estimand", "estimator", "term", "estimate",
               "std_error", "statistic", "p_value", "conf_low", "conf_high", "df", "outcome"]

#: Rows per chunk the automatic chunk size aims at (memory stays well under 1 GiB).
TARGET_ROWS_PER_CHUNK = 2_000_000
MAX_CHUNK_SIMS = 1000
#: Per-simulation messages of estimators; None when the fit was clean.
MESSAGE_COLUMNS = ["error", "warning"]


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
    if "estimator" in out.columns:
        # Every chunk has the same columns, whether or not one of its fits failed, so
        # chunks concatenate (and checkpoint) the same way however the run is cut.
        for c in MESSAGE_COLUMNS:
            out[c] = _messages(out[c]) if c in out.columns else None
    return _order_columns(out).reset_index(drop=True)


def _messages(col: pd.Series) -> pd.Series:
    """An error/warning column as objects, None where there is no message."""
    col = col.astype(object)
    return col.where(col.notna(), None)


def _label_failures(df: pd.DataFrame) -> pd.DataFrame:
    """Give a failed fit's row the term and outcome its estimator reports elsewhere.

    A fit that raised knows no term, so its row would form a group of its own in the
    diagnosis; when every successful row of that estimator (in that design) has the
    same term and outcome, the failure is counted in that group instead. Done on the
    whole table, so it does not depend on how the run was cut into chunks.
    """
    if "error" not in df.columns or "term" not in df.columns:
        return df
    failed = df["error"].notna().to_numpy() & df["term"].isna().to_numpy()
    if not failed.any():
        return df
    df = df.copy()
    keys = [c for c in ("design", "estimator") if c in df.columns]
    cols = [c for c in ("term", "outcome") if c in df.columns]
    ok = df.loc[~df["error"].notna()]
    labels = ok.groupby(keys, sort=False, dropna=False)[cols].nunique(dropna=False)
    firsts = ok.groupby(keys, sort=False, dropna=False)[cols].first()
    single = labels.index[(labels == 1).all(axis=1)]
    fill = firsts.loc[single].reset_index()
    rows = df.loc[failed, keys].reset_index(names="_row").merge(fill, on=keys, how="inner")
    for c in cols:
        df.loc[rows["_row"].to_numpy(), c] = rows[c].to_numpy()
    return df


def _order_columns(df: pd.DataFrame, first: Sequence[str] = ()) -> pd.DataFrame:
    cols = [c for c in (*first, *SIM_COLUMNS, *MESSAGE_COLUMNS) if c in df.columns]
    cols = list(dict.fromkeys(cols))
    return df[cols + [c for c in df.columns if c not in cols]]


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


def _progress_bar(progress: bool | None, total: int, desc: str, initial: int = 0) -> Any:
    if progress is None:
        progress = total >= 5000 and _interactive()
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress is a nicety; the run goes on without it
        return None
    return tqdm(total=total, desc=desc, unit="sim", leave=False, initial=initial,
                dynamic_ncols=True)


def _interactive() -> bool:
    """A terminal or a notebook: somewhere a progress bar is read, not logged."""
    try:
        if sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False
    return "ipykernel" in sys.modules



# ------------------------------------------------------------------ one run
def design_root(root: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    """Seed of the ``k``-th design of a run (the first uses the run's own)."""
    if k == 0:
        return root
    return np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, 2**32 - 2, k),
                                  pool_size=root.pool_size)


def checkpoint_root(checkpoint: Any, seed: Any, root: np.random.SeedSequence,
                    func: str) -> np.random.SeedSequence:
    """With ``seed=None``, resuming a checkpoint continues with the seed it was run with."""
    if checkpoint is None or seed is not None:
        return root
    from pathlib import Path

    if not isinstance(checkpoint, (str, Path)):
        return root  # Checkpoint() reports the bad value
    m = read_manifest(Path(checkpoint), func)
    if m is None:
        return root
    return np.random.SeedSequence(int(m["seed_entropy"]),
                                  spawn_key=tuple(m.get("seed_spawn_key", ())))


class Simulation:
    """The chunks of one call: designs, seeds, chunk plan, backend, checkpoint.

    :meth:`run` may be called with a growing number of simulations (target-precision
    mode); chunks already computed (in memory or in the checkpoint) are reused, and
    a prefix of whole chunks is the same whatever ``sims`` the call asks for.
    Use as a context manager so pools and clusters the run started are closed.
    """

    def __init__(self, named: Sequence[tuple[str, Design]], root: np.random.SeedSequence, *,
                 func: str = "simulate_design", chunk_size: int | None = None,
                 backend: Any = None, workers: Any = None, progress: bool | None = None,
                 checkpoint: Any = None, sims_hint: int = 0):
        self.named = list(named)
        self.root = root
        self.func = func
        self.roots = [design_root(root, k) for k in range(len(self.named))]
        self.chunk_sizes = [chunk_size or auto_chunk_size(d, r)
                            for (_, d), r in zip(self.named, self.roots)]
        n_tasks = sum(math.ceil(sims_hint / c) for c in self.chunk_sizes)
        self.backend: Backend = resolve_backend(backend, workers,
                                                sims=sims_hint * len(self.named),
                                                n_tasks=n_tasks, func=func)
        try:
            self.checkpoint = None if checkpoint is None else Checkpoint(
                checkpoint, func=func, named=self.named, root=root,
                chunk_sizes=self.chunk_sizes, sims=sims_hint)
        except BaseException:
            self.backend.close()
            raise
        self.progress = progress
        self._cache: dict[Task, pd.DataFrame] = {}
        self._started = False

    # -- context --------------------------------------------------------
    def __enter__(self) -> Simulation:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers this run started."""
        self.backend.close()

    @property
    def chunk_step(self) -> int:
        """A round of simulations that ends on whole chunks (of every design if cheap)."""
        lcm, big = math.lcm(*self.chunk_sizes), max(self.chunk_sizes)
        # A partial chunk costs one recomputation later, never a wrong result.
        return lcm if lcm <= 4 * big else big

    # -- running --------------------------------------------------------
    def tasks(self, sims: int) -> list[Task]:
        """Every chunk of every design for ``sims`` simulations, in output order."""
        out = []
        for k, ((_, design), r, cs) in enumerate(zip(self.named, self.roots, self.chunk_sizes)):
            out += [(k, i, f, n) for i, f, n in plan_chunks(design, sims, r, cs)]
        return out

    def run(self, sims: int) -> pd.DataFrame:
        """The simulations table for ``sims`` simulations of each design."""
        tasks = self.tasks(sims)
        missing = [t for t in tasks if t not in self._cache]
        if missing and self.checkpoint is not None:
            on_disk = self.checkpoint.done()
            for t in missing:
                if t in on_disk:
                    self._cache[t] = self.checkpoint.read(t)
            missing = [t for t in missing if t not in self._cache]
        if missing:
            self._compute(missing, total=sum(t[3] for t in tasks))
        return self._table(tasks)

    def _compute(self, todo: list[Task], total: int) -> None:
        if not self._started:
            self.backend.start([(d, r) for (_, d), r in zip(self.named, self.roots)])
            self._started = True
        remaining = sum(t[3] for t in todo)
        desc = self.named[0][0] if len(self.named) == 1 else "simulating"
        bar = _progress_bar(self.progress, total=total, desc=desc, initial=total - remaining)
        try:
            for task, rows in self.backend.run(todo):
                if self.checkpoint is not None:
                    self.checkpoint.write(task, rows)
                self._cache[task] = rows
                if bar is not None:
                    bar.update(task[3])
        finally:
            if bar is not None:
                bar.close()

    def _table(self, tasks: list[Task]) -> pd.DataFrame:
        frames = []
        for k, (name, design) in enumerate(self.named):
            parts = [self._cache[t] for t in tasks if t[0] == k]
            df = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].copy()
            df.insert(0, "design", name)
            for p, v in design.parameters.items():
                df[p] = v
            frames.append(df)
        out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        for c in MESSAGE_COLUMNS:
            if c in out.columns:
                out[c] = _messages(out[c])
        out = _order_columns(_label_failures(out), first=["design"])
        params: list[str] = []
        for _, design in self.named:
            params += [p for p in design.parameters if p not in params]
        out.attrs["seed_entropy"] = self.root.entropy
        out.attrs["parameters"] = params
        return out
