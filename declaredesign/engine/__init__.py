"""The engine: blocks and chunks of simulations, seeds, backends, progress, checkpoints.

The engine runs anything that follows
:class:`~declaredesign.engine.protocol.SimulationTarget` (``declaredesign.Design``
does) and never imports ``design``. ``simulate_design`` and ``diagnose_design`` cut
each design's simulations into fixed blocks, each drawn as one
batch from its own seed (:mod:`~declaredesign.engine.chunks`; the block size comes from
the design and the seed only), group whole blocks into chunks of work, and concatenate
the per-simulation rows in order. So a run gives the same table, bit for bit, on every
backend, with any number of workers and any ``chunk_size``.

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
that records each chunk's checksum (:mod:`~declaredesign.engine.checkpoint`);
``diagnose_design(precision=...)`` adds whole chunks until the diagnosands' bootstrap
standard errors meet their targets.
"""

from .backends import available_cores
from .checkpoint import CheckpointWarning, design_fingerprint
from .protocol import SimulationTarget
from .runner import Simulation

__all__ = ["CheckpointWarning", "Simulation", "SimulationTarget", "available_cores",
           "design_fingerprint"]
