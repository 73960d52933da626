"""Checkpoints: finished chunks on disk, so a killed run resumes where it stopped.

A checkpoint is a folder holding ``manifest.json`` and one Parquet file per finished
chunk. The manifest records what the chunks belong to: a fingerprint of the designs
(their repr, parameters, the code of any functions they hold, and this library's
version), the seed's entropy and spawn key, the chunk sizes and the number of
simulations asked for. A run whose designs or seed differ refuses the folder and
writes nothing to it. Checkpoints hold data only (JSON and Parquet, never pickles),
so opening one cannot run code.

A chunk file is written to a temporary name and renamed, so a run killed mid-write
leaves no half file behind; a chunk is reused only when its file name (design,
chunk index, first simulation, size) matches the plan of the current run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail

__all__ = ["Checkpoint", "design_fingerprint"]

FORMAT = "declaredesign-checkpoint"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_CHUNK_RE = re.compile(r"^d(\d+)-c(\d+)-s(\d+)-n(\d+)\.parquet$")


def _code_digest(code: types.CodeType, h: Any) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _code_digest(c, h)
        else:
            h.update(repr(c).encode())


def _walk_callables(obj: Any, h: Any, depth: int = 0) -> None:
    """Hash the code of functions a step holds: a changed lambda is another design."""
    if depth > 4:
        return
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        _code_digest(code, h)
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                h.update(repr(cell.cell_contents).encode())
            except ValueError:  # an empty cell
                pass
        return
    if isinstance(obj, dict):
        for v in obj.values():
            _walk_callables(v, h, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _walk_callables(v, h, depth + 1)
    elif hasattr(obj, "get_params"):
        try:
            params = obj.get_params()
        except Exception:  # a user's object: its repr is already in the fingerprint
            return
        _walk_callables(params, h, depth + 1)


def design_fingerprint(named: Sequence[tuple[str, Any]]) -> str:
    """SHA-256 of what makes simulations of these designs what they are."""
    from .. import __version__ as version

    h = hashlib.sha256()
    h.update(f"declaredesign {version}\n".encode())
    for name, design in named:
        # Memory addresses in reprs change between processes; they are not the design.
        text = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(design))
        h.update(f"{name}\n{text}\n{sorted(map(str, design.parameters.items()))}\n".encode())
        for step in design.steps:
            _walk_callables(step, h)
    return h.hexdigest()


def _import_pyarrow(func: str) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as e:
        raise ImportError(f"{func}(checkpoint=...): checkpoints are Parquet files and need "
                          "pyarrow; install it with: pip install declaredesign[parquet]") from e


class Checkpoint:
    """A checkpoint folder, opened (and checked) for one run."""

    def __init__(self, path: Any, *, func: str, named: Sequence[tuple[str, Any]],
                 root: np.random.SeedSequence, chunk_sizes: Sequence[int], sims: int):
        _import_pyarrow(func)
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            fail(func, "checkpoint", path, "None or the path of a folder")
        self.path = Path(path)
        self.func = func
        self.manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "fingerprint": design_fingerprint(named),
            "designs": [name for name, _ in named],
            "seed_entropy": str(root.entropy),
            "seed_spawn_key": [int(k) for k in root.spawn_key],
            "chunk_sizes": [int(c) for c in chunk_sizes],
            "sims": int(sims),
        }
        old = read_manifest(self.path, func)
        if old is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._write_manifest()
        else:
            self._check(old)
            if old.get("sims", 0) < sims:
                self._write_manifest()
            for p in self.path.glob(".tmp-*"):
                # Left by a run killed mid-write; its chunk will be written again.
                p.unlink(missing_ok=True)

    def _check(self, old: dict[str, Any]) -> None:
        new = self.manifest
        for key, what in (("fingerprint", "design"), ("seed_entropy", "seed"),
                          ("seed_spawn_key", "seed"), ("chunk_sizes", "chunk size"),
                          ("designs", "design names")):
            if old.get(key) != new[key]:
                fail(self.func, "checkpoint", str(self.path),
                     f"a folder written by this same call (it holds simulations of another "
                     f"{what}; use a new folder or delete this one)")

    def _write_manifest(self) -> None:
        _atomic_write(self.path / MANIFEST,
                      json.dumps(self.manifest, indent=2).encode())

    @staticmethod
    def _name(task: tuple[int, int, int, int]) -> str:
        k, index, first, n = task
        return f"d{k}-c{index:06d}-s{first}-n{n}.parquet"

    def done(self) -> set[tuple[int, int, int, int]]:
        """Tasks whose chunk file is on disk."""
        out = set()
        for p in self.path.iterdir():
            m = _CHUNK_RE.match(p.name)
            if m:
                out.add(tuple(int(g) for g in m.groups()))  # type: ignore[arg-type]
        return out

    def read(self, task: tuple[int, int, int, int]) -> pd.DataFrame:
        """The rows of a finished chunk, with the dtypes it was written with."""
        import pyarrow.parquet as pq

        table = pq.read_table(self.path / self._name(task))
        df = table.to_pandas()
        # pandas >= 3 reads text back as its `str` dtype; the run made plain objects.
        meta = table.schema.pandas_metadata or {}
        for col in meta.get("columns", []):
            name = col.get("name")
            if col.get("numpy_type") == "object" and name in df.columns and \
                    df[name].dtype != object:
                df[name] = df[name].astype(object)
        return df

    def write(self, task: tuple[int, int, int, int], rows: pd.DataFrame) -> None:
        """Store a finished chunk (atomically: a killed write leaves no file)."""
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=self.path)
        os.close(fd)
        try:
            rows.to_parquet(tmp, index=False)
            os.replace(tmp, self.path / self._name(task))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def read_manifest(path: Path, func: str) -> dict[str, Any] | None:
    """The folder's manifest; None for a new or empty folder; refuses anything else."""
    if not path.exists():
        return None
    if not path.is_dir():
        fail(func, "checkpoint", str(path), "a folder (this path is a file)")
    mpath = path / MANIFEST
    if not mpath.exists():
        if any(path.iterdir()):
            fail(func, "checkpoint", str(path), "a new folder, an empty one or a checkpoint "
                 "folder (it holds other files and no manifest.json)")
        return None
    try:
        m = json.loads(mpath.read_text())
    except (OSError, ValueError) as e:
        fail(func, "checkpoint", str(path), f"a checkpoint folder with a readable "
             f"manifest.json ({type(e).__name__}: {e})")
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        fail(func, "checkpoint", str(path), "a checkpoint folder written by declaredesign")
    return m


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
