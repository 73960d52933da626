"""Checkpoints: finished chunks on disk, verified, so a killed run resumes where it stopped.

A checkpoint is a folder holding ``manifest.json`` and one Parquet file per finished
chunk. The manifest records what the chunks belong to: a fingerprint of the designs
(their repr, parameters, the code of any functions they hold), this library's
version, the seed's entropy and spawn key, the block and chunk sizes and the number
of simulations asked for; and, per finished chunk, its design, simulation range and
the SHA-256 of its file. The manifest carries the SHA-256 of its own content, and
every chunk file carries the fingerprint of the run that wrote it in its Parquet
metadata. So:

- a run whose designs, seed, chunking or library version differ refuses the folder
  and writes nothing to it;
- a manifest edited by hand (say, its seed) is refused;
- a chunk whose file fails its checksum or cannot be read (truncated, emptied) is
  computed again, with a warning;
- a chunk file the manifest does not list is taken only when its metadata says this
  run wrote it (a run killed between writing a chunk and recording it); a chunk of
  another run (copied in from another seed or design) is refused, never overwritten.

Checkpoints hold data only (JSON and Parquet, never pickles), so opening one cannot
run code. Files are written to a temporary name and renamed, so a run killed
mid-write leaves no half file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import types
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail
from .._version import __version__
from ..errors import DeclarationError

__all__ = ["Checkpoint", "CheckpointWarning", "design_fingerprint", "read_manifest"]

FORMAT = "declaredesign-checkpoint"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
#: Key of the run fingerprint in each chunk file's Parquet metadata.
META_KEY = b"declaredesign.checkpoint"
_SELF_HASH = "manifest_sha256"
_CHUNK_RE = re.compile(r"^d(\d+)-c(\d+)-s(\d+)-n(\d+)\.parquet$")


class CheckpointWarning(UserWarning):
    """A checkpoint chunk could not be used and is computed again."""


#: A memory address in a repr (``<function f at 0x7f...>``).
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


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
                # without memory addresses, which change between processes (a registered
                # estimator's public entry holds the function it calls)
                h.update(_ADDRESS.sub("", repr(cell.cell_contents)).encode())
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
    """SHA-256 of what makes simulations of these designs what they are.

    Parameters
    ----------
    named : sequence of (name, design)
        The run's designs.

    Returns
    -------
    str
        Hex digest; covers this library's version too.
    """
    h = hashlib.sha256()
    h.update(f"declaredesign {__version__}\n".encode())
    for name, design in named:
        # Memory addresses in reprs change between processes; they are not the design.
        text = _ADDRESS.sub("", repr(design))
        h.update(f"{name}\n{text}\n{sorted(map(str, design.parameters.items()))}\n".encode())
        for step in design.steps:
            _walk_callables(step, h)
    return h.hexdigest()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _import_pyarrow(func: str) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as e:
        raise ImportError(f"{func}(checkpoint=...): checkpoints are Parquet files and need "
                          "pyarrow; install it with: pip install declaredesign[parquet]") from e


Task = tuple[int, int, int, int]


class Checkpoint:
    """A checkpoint folder, opened (and checked) for one run.

    Parameters
    ----------
    path : str or path
        The folder (created when missing).
    func : str
        Public function named in errors.
    named : sequence of (name, design)
        The run's designs.
    root : numpy.random.SeedSequence
        The run's root seed.
    chunk_sizes, block_sizes : sequence of int
        Per design.
    sims : int
        Simulations of each design asked for.
    """

    def __init__(self, path: Any, *, func: str, named: Sequence[tuple[str, Any]],
                 root: np.random.SeedSequence, chunk_sizes: Sequence[int],
                 block_sizes: Sequence[int], sims: int):
        _import_pyarrow(func)
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            fail(func, "checkpoint", path, "None or the path of a folder")
        self.path = Path(path)
        self.func = func
        run = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "fingerprint": design_fingerprint(named),
            "designs": [name for name, _ in named],
            "seed_entropy": str(root.entropy),
            "seed_spawn_key": [int(k) for k in root.spawn_key],
            "block_sizes": [int(b) for b in block_sizes],
            "chunk_sizes": [int(c) for c in chunk_sizes],
        }
        self.run_fingerprint = hashlib.sha256(_canonical(run)).hexdigest()
        self.manifest = {**run, "run_fingerprint": self.run_fingerprint, "sims": int(sims),
                         "chunks": {}}
        old = read_manifest(self.path, func)
        if old is None:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                fail(func, "checkpoint", str(self.path), "a folder that can be created "
                     f"({type(e).__name__}: {e.strerror or e})")
            self._write_manifest()
            return
        self._check(old)
        self.manifest["chunks"] = dict(old.get("chunks", {}))
        for p in self.path.iterdir():
            if _CHUNK_RE.match(p.name) and p.name not in self.manifest["chunks"]:
                self._check_unrecorded(p)
        self.manifest["sims"] = max(int(sims), int(old.get("sims", 0)))
        if old.get("sims", 0) < sims:
            self._write_manifest()
        for p in self.path.glob(".tmp-*"):
            # Left by a run killed mid-write; its chunk will be written again.
            p.unlink(missing_ok=True)

    def _check(self, old: dict[str, Any]) -> None:
        new = self.manifest
        for key, what in (("fingerprint", "design"), ("seed_entropy", "seed"),
                          ("seed_spawn_key", "seed"), ("block_sizes", "block size"),
                          ("chunk_sizes", "chunk size"), ("designs", "design names"),
                          ("package_version", "declaredesign version"),
                          ("run_fingerprint", "run")):
            if old.get(key) != new[key]:
                fail(self.func, "checkpoint", str(self.path),
                     f"a folder written by this same call (it holds simulations of another "
                     f"{what}; use a new folder or delete this one)")

    def _write_manifest(self) -> None:
        body = {k: v for k, v in self.manifest.items() if k != _SELF_HASH}
        body[_SELF_HASH] = hashlib.sha256(_canonical(body)).hexdigest()
        _atomic_write(self.path / MANIFEST, json.dumps(body, indent=2).encode())

    @staticmethod
    def _name(task: Task) -> str:
        k, index, first, n = task
        return f"d{k}-c{index:06d}-s{first}-n{n}.parquet"

    def load(self, task: Task) -> pd.DataFrame | None:
        """Return the rows of a finished chunk, or None when it must be computed (again).

        Parameters
        ----------
        task : (design, index, first_sim, n_sims)
            The chunk.

        Returns
        -------
        pandas.DataFrame or None
        """
        name = self._name(task)
        path = self.path / name
        if not path.exists():
            return None
        entry = self.manifest["chunks"].get(name)
        if entry is None:
            return self._adopt(task, path)
        if _sha256_file(path) != entry.get("sha256"):
            return self._redo(name, "its file does not match the checksum in the manifest "
                                    "(truncated or changed)")
        try:
            rows = self._read(path)
        except DeclarationError:
            raise
        except Exception as e:  # any unreadable file: recompute it rather than fail
            return self._redo(name, f"it cannot be read ({type(e).__name__})")
        return rows

    def _redo(self, name: str, why: str) -> None:
        warnings.warn(f"{self.func}(checkpoint={str(self.path)!r}): chunk {name} is computed "
                      f"again: {why}.", CheckpointWarning, stacklevel=4)
        return None

    def _check_unrecorded(self, path: Path) -> None:
        """Refuse a chunk file missing from the manifest unless its metadata says it is ours."""
        import pyarrow.parquet as pq

        try:
            meta = pq.read_schema(path).metadata or {}
            mine = json.loads(meta.get(META_KEY, b"{}"))
        except Exception:  # unreadable, and not recorded: whose is it?
            mine = None
        task = [int(g) for g in _CHUNK_RE.match(path.name).groups()]  # type: ignore[union-attr]
        if not isinstance(mine, dict) or mine.get("run") != self.run_fingerprint or \
                mine.get("task") != task:
            fail(self.func, "checkpoint", str(self.path), f"a folder written by this same "
                 f"call only (chunk file {path.name} was not written by this run: another "
                 "seed or design; remove it or use a new folder)")

    def _adopt(self, task: Task, path: Path) -> pd.DataFrame | None:
        """Adopt a chunk file missing from the manifest if its metadata says it is ours."""
        self._check_unrecorded(path)
        try:
            rows = self._read(path)
        except Exception as e:  # written by this run, so ours to compute again
            return self._redo(path.name, f"it cannot be read ({type(e).__name__})")
        self._record(task, path)
        return rows

    def _read(self, path: Path) -> pd.DataFrame:
        """Read a chunk file, with the dtypes it was written with."""
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
        if meta.get("run") != self.run_fingerprint:
            fail(self.func, "checkpoint", str(self.path), f"a folder written by this same "
                 f"call only (chunk file {path.name} was written by another run: another "
                 "seed or design; remove it or use a new folder)")
        df = table.to_pandas()
        # pandas >= 3 reads text back as its `str` dtype; the run made plain objects.
        pmeta = table.schema.pandas_metadata or {}
        for col in pmeta.get("columns", []):
            name = col.get("name")
            if col.get("numpy_type") == "object" and name in df.columns and \
                    df[name].dtype != object:
                df[name] = df[name].astype(object)
        return df

    def _record(self, task: Task, path: Path) -> None:
        k, index, first, n = task
        self.manifest["chunks"][path.name] = {
            "design": int(k), "index": int(index), "first_sim": int(first) + 1,
            "last_sim": int(first + n), "sha256": _sha256_file(path)}
        self._write_manifest()

    def write(self, task: Task, rows: pd.DataFrame) -> None:
        """Store a finished chunk (atomically) and record its checksum in the manifest.

        Parameters
        ----------
        task : (design, index, first_sim, n_sims)
            The chunk.
        rows : pandas.DataFrame
            Its rows of the simulations table.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(rows, preserve_index=False)
        tag = json.dumps({"run": self.run_fingerprint, "task": list(task)}).encode()
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: tag})
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=self.path)
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, self.path / self._name(task))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._record(task, self.path / self._name(task))


def read_manifest(path: Path, func: str) -> dict[str, Any] | None:
    """Read the folder's manifest, verified; None for a new or empty folder.

    Parameters
    ----------
    path : pathlib.Path
        The checkpoint folder.
    func : str
        Public function named in errors.

    Returns
    -------
    dict or None

    Raises
    ------
    DeclarationError
        A file, a folder of other files, or a manifest that is unreadable, not ours,
        from an older format or edited (its self-checksum fails).
    """
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
    if m.get("format_version") != FORMAT_VERSION:
        fail(func, "checkpoint", str(path), "a checkpoint folder written by this version of "
             "declaredesign (use a new folder)")
    body = {k: v for k, v in m.items() if k != _SELF_HASH}
    if m.get(_SELF_HASH) != hashlib.sha256(_canonical(body)).hexdigest():
        fail(func, "checkpoint", str(path), "a checkpoint folder whose manifest.json is as "
             "declaredesign wrote it (it was edited: its checksum does not match)")
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
