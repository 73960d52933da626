"""The engine: chunks of simulations, seeds, backends, progress, checkpoints.

``simulate_design`` and ``diagnose_design`` cut the requested simulations into chunks
(:func:`~declaredesign.engine.runner.plan_chunks`; the size comes from the design and
the seed, never from the number of workers), run each chunk as one batch with its own
seed, and concatenate the per-simulation rows in chunk order. So a run gives the same
table, bit for bit, on every backend and with any number of workers.

Backends
--------
``backend="serial"``
    This process.
``backend="processes", workers=n``
    A pool of ``n`` processes (default: the usable cores). Forked where the OS allows
    it, so designs holding lambdas and closures need no pickling. The default for
    5,000+ simulations on a machine with more than one core.
``backend=executor``
    Any ``concurrent.futures.Executor`` (a thread pool, an MPI or Ray executor...); the
    designs travel as cloudpickle bytes, once per worker.
``backend="dask"`` or ``backend=client``
    ``pip install declaredesign[dask]``. ``"dask"`` uses the current
    ``dask.distributed`` client, or starts a LocalCluster of ``workers`` processes for
    the run; a ``Client`` or a scheduler address (``"tcp://10.0.0.5:8786"``) sends the
    chunks to that cluster.

Running on a multi-machine Dask cluster
---------------------------------------
Install the same versions of ``declaredesign`` (and anything your design's functions
import) on every machine, then::

    # on the scheduler machine
    dask scheduler                         # prints tcp://10.0.0.5:8786
    # on each worker machine (one single-threaded worker per core works best)
    dask worker tcp://10.0.0.5:8786 --nworkers auto --nthreads 1

    # on your laptop
    dx = dd.diagnose_design(design, sims=1_000_000, seed=1,
                            backend="tcp://10.0.0.5:8786", checkpoint="run_1")

Results only (a few rows per simulation) come back; datasets never leave the workers.
With ``checkpoint=`` a lost connection costs only the chunks in flight: run the same
call again to continue.

Checkpoints and precision
-------------------------
``checkpoint="folder"`` writes each finished chunk as Parquet next to a JSON manifest
(:mod:`~declaredesign.engine.checkpoint`); ``diagnose_design(precision=...)`` adds
whole chunks until the diagnosands' bootstrap standard errors meet their targets.
"""

from .backends import available_cores
from .checkpoint import design_fingerprint
from .runner import Simulation

__all__ = ["Simulation", "available_cores", "design_fingerprint"]
