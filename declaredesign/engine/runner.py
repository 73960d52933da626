"""Run a design many times: chunks of whole blocks of simulations, then one table.

The engine never keeps simulated datasets: each chunk returns its inquiry and
estimator rows, which are concatenated. Each block draws from its own generator
(:mod:`~declaredesign.engine.chunks`), so chunking and backends only decide where
and in which groups blocks run, never what they draw.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail
from .backends import Backend, Task, resolve_backend
from .checkpoint import Checkpoint, read_manifest
from .chunks import (
    MESSAGE_COLUMNS,
    SIM_COLUMNS,
    assemble,
    block_size,
    chunk_sims,
    messages,
    order_columns,
    plan_chunks,
    run_chunk,
)
from .protocol import SimulationTarget

__all__ = ["plan_chunks", "run_chunk", "run_chunks", "assemble", "SIM_COLUMNS", "Simulation",
           "design_root", "checkpoint_root", "check_memory", "BYTES_PER_ROW"]

#: Least memory one row of a simulations table takes (16 columns of 8 bytes; a real
#: table takes more); used to refuse runs that cannot possibly fit.
BYTES_PER_ROW = 128


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


def run_chunks(design: SimulationTarget, root: np.random.SeedSequence,
               chunks: Iterable[tuple[int, int, int]], *, block: int | None = None,
               progress: bool | None = None, desc: str = "simulating") -> list[pd.DataFrame]:
    """Run chunks serially, in order, with an optional progress bar.

    Parameters
    ----------
    design : SimulationTarget
        The design.
    root : numpy.random.SeedSequence
        The design's root seed.
    chunks : iterable of (index, first_sim, n_sims)
        From :func:`plan_chunks`.
    block : int, optional
        Block size (default: the design's, from its pilot).
    progress : bool, optional
        Show a progress bar.
    desc : str
        The bar's label.

    Returns
    -------
    list of pandas.DataFrame
        One table per chunk.
    """
    chunks = list(chunks)
    block = block_size(design, root) if block is None else block
    bar = _progress_bar(progress, total=sum(c[2] for c in chunks), desc=desc)
    out = []
    try:
        for _, first, n in chunks:
            out.append(run_chunk(design, root, block, first, n))
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
    """Tell whether a progress bar would be read (a terminal or a notebook), not logged."""
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
    if not isinstance(checkpoint, (str, Path)):
        return root  # Checkpoint() reports the bad value
    m = read_manifest(Path(checkpoint), func)
    if m is None:
        return root
    return np.random.SeedSequence(int(m["seed_entropy"]),
                                  spawn_key=tuple(m.get("seed_spawn_key", ())))


def check_memory(func: str, sims: int) -> None:
    """Refuse a run whose simulations table alone cannot fit in this machine's memory.

    Parameters
    ----------
    func : str
        Public function named in the error.
    sims : int
        Simulations of all designs together (each gives at least one row).

    Raises
    ------
    DeclarationError
        With the memory the run would need.
    """
    need = sims * BYTES_PER_ROW
    have = _physical_memory()
    if have and need > have:
        fail(func, "sims", sims, f"small enough for the simulations table to fit in memory "
             f"(at least {_bytes(need)} for {sims:,} simulations at one row each and "
             f"{BYTES_PER_ROW} bytes per row; this machine has {_bytes(have)})")


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 0


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


class Simulation:
    """The chunks of one call: designs, seeds, chunk plan, backend, checkpoint.

    :meth:`run` may be called with a growing number of simulations (target-precision
    mode); chunks already computed (in memory or in the checkpoint) are reused, and
    a prefix of whole chunks is the same whatever ``sims`` the call asks for.
    Use as a context manager so pools and clusters the run started are closed.
    """

    def __init__(self, named: Sequence[tuple[str, SimulationTarget]],
                 root: np.random.SeedSequence, *, func: str = "simulate_design",
                 chunk_size: int | None = None, backend: Any = None, workers: Any = None,
                 progress: bool | None = None, checkpoint: Any = None, sims_hint: int = 0):
        self.named = list(named)
        check_memory(func, sims_hint * len(self.named))
        self.root = root
        self.func = func
        self.roots = [design_root(root, k) for k in range(len(self.named))]
        self.block_sizes = [block_size(d, r) for (_, d), r in zip(self.named, self.roots)]
        self.chunk_sizes = [chunk_sims(b, chunk_size) for b in self.block_sizes]
        n_tasks = sum(math.ceil(sims_hint / c) for c in self.chunk_sizes)
        self.backend: Backend = resolve_backend(backend, workers,
                                                sims=sims_hint * len(self.named),
                                                n_tasks=n_tasks, func=func)
        try:
            self.checkpoint = None if checkpoint is None else Checkpoint(
                checkpoint, func=func, named=self.named, root=root,
                chunk_sizes=self.chunk_sizes, block_sizes=self.block_sizes, sims=sims_hint)
        except BaseException:
            self.backend.close()
            raise
        self.progress = progress
        self._cache: dict[Task, pd.DataFrame] = {}
        self._started = False

    # -- context --------------------------------------------------------
    def __enter__(self) -> Simulation:
        """Return this run; leaving the block stops its workers."""
        return self

    def __exit__(self, *exc: Any) -> None:
        """Stop the workers this run started."""
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
        for k, cs in enumerate(self.chunk_sizes):
            out += [(k, i, f, n) for i, f, n in plan_chunks(sims, cs)]
        return out

    def run(self, sims: int) -> pd.DataFrame:
        """Return the simulations table for ``sims`` simulations of each design."""
        tasks = self.tasks(sims)
        missing = [t for t in tasks if t not in self._cache]
        if missing and self.checkpoint is not None:
            for t in missing:
                rows = self.checkpoint.load(t)
                if rows is not None:
                    self._cache[t] = rows
            missing = [t for t in missing if t not in self._cache]
        if missing:
            self._compute(missing, total=sum(t[3] for t in tasks))
        return self._table(tasks)

    def _compute(self, todo: list[Task], total: int) -> None:
        if not self._started:
            self.backend.start([(d, r, b) for (_, d), r, b
                                in zip(self.named, self.roots, self.block_sizes)])
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
                out[c] = messages(out[c])
        out = order_columns(_label_failures(out), first=["design"])
        params: list[str] = []
        for _, design in self.named:
            params += [p for p in design.parameters if p not in params]
        out.attrs["seed_entropy"] = self.root.entropy
        out.attrs["parameters"] = params
        return out
