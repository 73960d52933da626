"""One BLAS thread while simulating.

The kernels call LAPACK on many tiny matrices (2x2 stacks, one cluster's 75x75 block);
a multi-threaded OpenBLAS spends more time waking threads than computing, and on a
busy machine an ``eigh`` of a 75x75 matrix measured 100 ms with threads against 2 ms
without. Parallelism comes from running chunks side by side instead, so the engine
asks BLAS for one thread during a run and restores the previous setting after.

Uses threadpoolctl when installed; otherwise talks to the OpenBLAS builds that numpy
and scipy ship, found among the loaded libraries (Linux only). Anything else is left
alone: this is a speed-up, never a requirement.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["single_blas_thread"]

_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("64_", "")


def _openblas_handles() -> list[tuple[Any, Any]]:
    """(get, set) function pairs of every OpenBLAS loaded in this process."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()
                     and line.split()[-1].startswith("/")}
    except OSError:
        return []
    out = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for pre in _PREFIXES:
            for suf in _SUFFIXES:
                get = getattr(lib, f"{pre}_get_num_threads{suf}", None)
                put = getattr(lib, f"{pre}_set_num_threads{suf}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    put.argtypes = [ctypes.c_int]
                    out.append((get, put))
                    break
            else:
                continue
            break
    return out


_LOCK = threading.Lock()
_DEPTH = 0
_RESTORE: list[Any] = []
_HANDLES: list[tuple[Any, Any]] | None = None


def _limit() -> list[Any]:
    """Set one thread; return how to undo it."""
    global _HANDLES
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        limiter = threadpool_limits(limits=1, user_api="blas")
        return [limiter.restore_original_limits]
    if _HANDLES is None:
        _HANDLES = _openblas_handles()
    undo = []
    for get, put in _HANDLES:
        try:
            n = get()
            put(1)
        except Exception:  # pragma: no cover - an unexpected build: leave it be
            continue
        undo.append(lambda put=put, n=n: put(n))
    return undo


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Limit BLAS to one thread inside the block (best effort, thread-safe).

    Nested and concurrent blocks (chunks on a thread pool) share one limit: the
    first to enter sets it, the last to leave restores the previous setting.
    """
    global _DEPTH, _RESTORE
    with _LOCK:
        if _DEPTH == 0:
            _RESTORE = _limit()
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                for undo in _RESTORE:
                    undo()
                _RESTORE = []


def limit_blas_threads_forever() -> None:
    """In a worker process the engine owns: one BLAS thread from now on."""
    global _DEPTH
    with _LOCK:
        if _DEPTH == 0:
            _limit()
        _DEPTH += 1  # never released: the process exists to run chunks
