"""Where chunks run: in this process, in a process pool, on any Executor or on Dask.

A backend receives *tasks* ``(k, index, first_sim, n_sims)`` (chunk ``index`` of the
``k``-th design of a run) and yields ``(task, rows)`` as chunks finish, in whatever
order they finish. The runner puts results back in task order, and every chunk draws
from its own seed, so the backend changes speed, never results.

Designs may hold lambdas and closures, which the standard pickle refuses:

- the process pool forks where the platform allows it, so workers inherit the designs
  from this process and nothing is pickled on the way in;
- everywhere else (spawn, a user's Executor, Dask) the designs travel once per worker
  as ``cloudpickle`` bytes (plain pickle when cloudpickle is not installed), cached in
  the worker by digest.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import pickle
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail
from ..errors import DeclarationError
from ._threads import limit_blas_threads_forever, single_blas_thread
from .allocator import keep_freed_memory
from .chunks import run_chunk

__all__ = ["Backend", "resolve_backend", "available_cores", "DEFAULT_PROCESS_SIMS", "BACKENDS"]

#: Below this many simulations in a run, the default backend stays serial.
DEFAULT_PROCESS_SIMS = 5000

#: Names accepted by ``backend=`` (besides Executors, Dask clients and scheduler addresses).
BACKENDS = ("serial", "processes", "dask")

#: How long to try reaching a Dask scheduler address before giving up.
SCHEDULER_TIMEOUT = "5s"

_ADDRESS_PREFIXES = ("tcp://", "tls://", "ws://", "wss://", "inproc://", "ucx://")

#: How often a worker checks that the process that started it is still alive (seconds).
PARENT_POLL_SECONDS = 0.5

Task = tuple[int, int, int, int]
#: What a worker needs: one (design, root seed sequence, block size) per design of the run.
Payload = Sequence[tuple[Any, np.random.SeedSequence, int]]


def available_cores() -> int:
    """Cores this process may use (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------ workers
# Module globals, so forked workers inherit them and the other workers fill them once.
_STATE: Payload | None = None
_CACHE: dict[str, Payload] = {}
_CACHE_LOCK = threading.Lock()


def _run_task(payload: Payload, task: Task) -> pd.DataFrame:
    k, _, first, n = task
    design, root, block = payload[k]
    with single_blas_thread():
        return run_chunk(design, root, block, first, n)


def _watch_parent(parent: int) -> None:
    """Exit this worker as soon as the process that started it is gone.

    A parent killed with SIGKILL (or SIGTERM, which skips Python's cleanup) cannot
    stop its pool; without this its workers would run on, adopted by init. Polling
    ``getppid`` works on every POSIX system and for forked and spawned workers alike.
    """
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(payload: Any, serialized: bool, parent: int | None = None) -> None:
    global _STATE
    if parent is not None:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                         name="declaredesign-parent-watch").start()
    limit_blas_threads_forever()
    keep_freed_memory()      # blocks reuse the heap instead of page-faulting it in again
    _STATE = _loads(payload) if serialized else payload


def _pool_task(task: Task) -> pd.DataFrame:
    if _STATE is None:  # pragma: no cover - the initializer always ran
        raise RuntimeError("declaredesign worker started without its designs")
    return _run_task(_STATE, task)


def _blob_task(digest: str, blob: bytes, task: Task) -> pd.DataFrame:
    """Run a task from serialized designs, deserialized once per worker process."""
    with _CACHE_LOCK:
        payload = _CACHE.get(digest)
        if payload is None:
            payload = _loads(blob)
            if len(_CACHE) >= 4:  # a long-lived worker serves many runs
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[digest] = payload
    return _run_task(payload, task)


def _dumps(obj: Any) -> bytes:
    try:
        import cloudpickle
    except ImportError:  # plain pickle works for designs without lambdas
        try:
            return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError) as e:
            raise DeclarationError(
                f"the design cannot be sent to worker processes ({e}); install cloudpickle "
                "(pip install cloudpickle) to send lambdas and closures, or use "
                "backend='serial'.") from e
    return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _loads(blob: bytes) -> Any:
    # cloudpickle output is ordinary pickle data: pickle.loads reads it.
    return pickle.loads(blob)


# ------------------------------------------------------------------ backends
class Backend:
    """Runs tasks somewhere; subclasses decide where."""

    name = "backend"
    workers = 1

    def start(self, payload: Payload) -> None:
        """Make the designs available to the workers."""
        self._payload = payload

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, pd.DataFrame]]:
        """Yield ``(task, rows)`` as each task finishes."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend started (pools, clusters); never the user's."""

    def __repr__(self) -> str:
        """Show the backend and its workers."""
        return f"{type(self).__name__}(workers={self.workers})"


class SerialBackend(Backend):
    name = "serial"

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, pd.DataFrame]]:
        for t in tasks:
            yield t, _run_task(self._payload, t)


class _FuturesBackend(Backend):
    """Shared loop over concurrent.futures: a bounded window of futures in flight."""

    def _submit(self, task: Task) -> Future:
        raise NotImplementedError

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, pd.DataFrame]]:
        todo = list(tasks)
        todo.reverse()
        # Keep every worker busy and one chunk queued behind it, not the whole run in
        # flight: results come back (and are checkpointed) as they finish.
        window = max(2, 2 * self.workers)
        pending: dict[Future, Task] = {}
        try:
            while todo or pending:
                while todo and len(pending) < window:
                    t = todo.pop()
                    pending[self._submit(t)] = t
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for f in sorted(done, key=lambda f: pending[f]):
                    t = pending.pop(f)
                    yield t, self._result(f)
        finally:
            for f in pending:
                f.cancel()

    def _result(self, f: Future) -> pd.DataFrame:
        try:
            return f.result()
        except BrokenProcessPool as e:
            raise RuntimeError(
                "a worker process died while simulating (killed, or out of memory); chunks "
                "finished before it are kept when checkpoint= is set, so re-running the same "
                "call resumes from them.") from e


class ProcessBackend(_FuturesBackend):
    name = "processes"

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def start(self, payload: Payload) -> None:
        super().start(payload)
        if "fork" in mp.get_all_start_methods():
            # Forked workers inherit the designs: no pickling, lambdas welcome.
            ctx = mp.get_context("fork")
            args: tuple[Any, ...] = (payload, False, os.getpid())
        else:  # spawn-only platforms (macOS, Windows)
            ctx = mp.get_context("spawn")
            args = (_dumps(payload), True, os.getpid() if os.name == "posix" else None)
        self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                         initializer=_init_worker, initargs=args)
        # Fork now, before the progress bar starts its monitor thread: forking a
        # process with threads is what fork's deadlock warnings are about.
        self._pool.submit(int).result()

    def _submit(self, task: Task) -> Future:
        assert self._pool is not None
        return self._pool.submit(_pool_task, task)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class ExecutorBackend(_FuturesBackend):
    """A user's ``concurrent.futures.Executor`` (ours to use, not to shut down)."""

    name = "executor"

    def __init__(self, executor: Executor):
        self.executor = executor
        self.workers = int(getattr(executor, "_max_workers", None) or available_cores())
        self._threads = isinstance(executor, ThreadPoolExecutor)

    def start(self, payload: Payload) -> None:
        super().start(payload)
        if not self._threads:
            self._blob = _dumps(payload)
            self._digest = hashlib.sha256(self._blob).hexdigest()

    def _submit(self, task: Task) -> Future:
        if self._threads:  # same process: no need to serialize anything
            return self.executor.submit(_run_task, self._payload, task)
        return self.executor.submit(_blob_task, self._digest, self._blob, task)

    def __repr__(self) -> str:
        return f"ExecutorBackend({type(self.executor).__name__})"


class DaskBackend(Backend):
    """A ``dask.distributed`` client: given, connected to an address, or a LocalCluster."""

    name = "dask"

    def __init__(self, client: Any, owned: tuple[Any, ...] = ()):
        self.client = client
        self._owned = owned  # client/cluster we started and must close
        try:
            n = len(client.scheduler_info().get("workers", {}))
        except Exception:  # pragma: no cover - an exotic client
            n = 0
        self.workers = max(1, n)

    def start(self, payload: Payload) -> None:
        super().start(payload)
        blob = _dumps(payload)
        self._digest = hashlib.sha256(blob).hexdigest()
        # Ship the designs to every worker once, not with each task.
        self._blob = self.client.scatter(blob, broadcast=True, hash=False)

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, pd.DataFrame]]:
        from distributed import as_completed

        futures = {}
        for t in tasks:
            f = self.client.submit(_blob_task, self._digest, self._blob, t, pure=False,
                                   key=f"declaredesign-chunk-{self._digest[:8]}-{t[0]}-{t[1]}"
                                       f"-{os.urandom(4).hex()}")
            futures[f] = t
        try:
            for f in as_completed(list(futures)):
                yield futures[f], f.result()
        finally:
            for f in futures:
                f.cancel()

    def close(self) -> None:
        for obj in self._owned:
            try:
                obj.close()
            except Exception:  # pragma: no cover - closing is best effort
                pass
        self._owned = ()

    def __repr__(self) -> str:
        return f"DaskBackend(workers={self.workers})"


# ------------------------------------------------------------------ choosing
def _import_distributed(func: str) -> Any:
    try:
        import distributed
    except ImportError as e:
        raise ImportError(
            f"{func}(backend='dask'): the Dask backend needs dask.distributed, which is not "
            "installed; install it with: pip install declaredesign[dask]") from e
    return distributed


_MAIN_GUARD = re.compile(r"""__name__\s*==\s*['"]__main__['"]|['"]__main__['"]\s*==\s*__name__""")


def _check_main_guard(func: str) -> None:
    """Refuse to start a LocalCluster from a script that has no ``__main__`` guard.

    Dask starts its workers with ``spawn``: each re-runs the user's script, which
    would start the run (and a cluster) again, ending in pages of "Nanny failed to
    start". One line saying how to fix it is better.
    """
    fix = (f"{func}(backend='dask') starts worker processes that re-run your script; put "
           "the call under `if __name__ == \"__main__\":` (or start a dask.distributed "
           "Client there and pass it as backend=).")
    main = sys.modules.get("__main__")
    if getattr(main, "__name__", "") == "__mp_main__":  # a spawned child re-running it
        raise DeclarationError(fix)
    path = getattr(main, "__file__", None)
    if not path or getattr(main, "__spec__", None) is not None:
        return  # an interactive session, a notebook or `python -m`: nothing re-runs
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return
    if not _MAIN_GUARD.search(text):
        raise DeclarationError(fix)


def _is_dask_client(obj: Any) -> bool:
    mod = type(obj).__module__ or ""
    return mod.startswith("distributed") and type(obj).__name__ == "Client"


def _check_workers(func: str, workers: Any) -> int | None:
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        fail(func, "workers", workers, "None or a positive integer")
    return int(workers)


def resolve_backend(backend: Any, workers: Any, *, sims: int, n_tasks: int,
                    func: str = "simulate_design") -> Backend:
    """Turn the user's ``backend=``/``workers=`` into a :class:`Backend`.

    ``None`` picks processes when the run has at least :data:`DEFAULT_PROCESS_SIMS`
    simulations, more than one chunk and more than one core; serial otherwise.
    """
    workers = _check_workers(func, workers)
    if backend is None:
        cores = available_cores() if workers is None else workers
        backend = "processes" if (sims >= DEFAULT_PROCESS_SIMS and n_tasks > 1 and cores > 1) \
            else "serial"
    if isinstance(backend, Backend):
        return backend
    if isinstance(backend, Executor):
        if workers is not None:
            fail(func, "workers", workers, "None when backend is an Executor (it has its own "
                 "workers)")
        return ExecutorBackend(backend)
    if _is_dask_client(backend):
        if workers is not None:
            fail(func, "workers", workers, "None when backend is a Dask Client (the cluster "
                 "has its own workers)")
        return DaskBackend(backend)
    if isinstance(backend, str):
        if backend == "serial":
            if workers not in (None, 1):
                fail(func, "workers", workers, "None or 1 with backend='serial'")
            return SerialBackend()
        if backend == "processes":
            return ProcessBackend(workers or available_cores())
        if backend == "dask" or backend.startswith(_ADDRESS_PREFIXES) or \
                backend.startswith("dask://"):
            return _dask_backend(func, backend, workers)
    fail(func, "backend", backend, "one of 'serial', 'processes', 'dask', a Dask scheduler "
         "address ('tcp://host:8786'), a concurrent.futures.Executor or a "
         "dask.distributed.Client")
    raise AssertionError  # pragma: no cover


def _dask_backend(func: str, backend: str, workers: int | None) -> DaskBackend:
    distributed = _import_distributed(func)
    if backend == "dask":
        try:
            client = distributed.default_client()
        except ValueError:
            client = None
        if client is not None:
            if workers is not None:
                fail(func, "workers", workers, "None when a Dask client is running (its "
                     "cluster has its own workers)")
            return DaskBackend(client)
        # No cluster yet: start one on this machine for the run, and close it after.
        _check_main_guard(func)
        cluster = distributed.LocalCluster(n_workers=workers or available_cores(),
                                           threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
        return DaskBackend(client, owned=(client, cluster))
    address = backend[len("dask://"):] if backend.startswith("dask://") else backend
    if workers is not None:
        fail(func, "workers", workers, "None when backend is a scheduler address (the cluster "
             "has its own workers)")
    try:
        client = distributed.Client(address, timeout=SCHEDULER_TIMEOUT)
    except (OSError, TimeoutError) as e:
        fail(func, "backend", backend, "the address of a reachable Dask scheduler "
             f"(connecting failed: {type(e).__name__}: {e})".rstrip())
    return DaskBackend(client, owned=(client,))
