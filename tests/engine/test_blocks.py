"""Blocks fix the random streams: chunking, workers and backends never change results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.engine import chunks
from declaredesign.errors import DeclarationError

from .designs import two_arm

SIMS = 60


@pytest.fixture(scope="module")
def default_run() -> pd.DataFrame:
    return dd.simulate_design(two_arm(), sims=SIMS, seed=21, backend="serial")


@pytest.mark.parametrize("chunk_size", [1, 4, 5, 10, 15, 250])
def test_any_chunk_size_gives_the_default_simulations(default_run, small_blocks, chunk_size):
    out = dd.simulate_design(two_arm(), sims=SIMS, seed=21, chunk_size=chunk_size,
                             backend="serial")
    pd.testing.assert_frame_equal(out, default_run, check_exact=True)


def test_serial_processes_and_dask_agree_across_chunk_sizes(default_run):
    distributed = pytest.importorskip("distributed")
    procs = dd.simulate_design(two_arm(), sims=SIMS, seed=21, chunk_size=15,
                               backend="processes", workers=2)
    pd.testing.assert_frame_equal(procs, default_run, check_exact=True)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dask = dd.simulate_design(two_arm(), sims=SIMS, seed=21, chunk_size=10, backend=client)
    pd.testing.assert_frame_equal(dask, default_run, check_exact=True)


def test_chunks_are_whole_blocks(small_blocks):
    assert chunks.chunk_sims(small_blocks, None) == small_blocks
    assert chunks.chunk_sims(small_blocks, 1) == small_blocks
    assert chunks.chunk_sims(small_blocks, 12) == 15
    assert chunks.plan_chunks(12, 5) == [(0, 0, 5), (1, 5, 5), (2, 10, 2)]


def test_a_partial_last_block_is_the_only_thing_sims_changes(small_blocks):
    # Whole blocks are a prefix of a longer run; a partial last block is not.
    long = dd.simulate_design(two_arm(), sims=20, seed=4, backend="serial")
    whole = dd.simulate_design(two_arm(), sims=10, seed=4, backend="serial")
    pd.testing.assert_frame_equal(whole, long.iloc[:len(whole)], check_exact=True)
    part = dd.simulate_design(two_arm(), sims=12, seed=4, backend="serial")
    pd.testing.assert_frame_equal(part.iloc[:20], long.iloc[:20], check_exact=True)
    assert not np.array_equal(part["estimate"].to_numpy()[20:],
                              long["estimate"].to_numpy()[20:24])


def test_impossible_sizes_are_refused_up_front():
    with pytest.raises(DeclarationError, match=r"simulate_design\(sims=10000000000000\): sims "
                       r"must be small enough for the simulations table to fit in memory "
                       r"\(at least [\d.,]+ PiB for 10,000,000,000,000 simulations "
                       r"at one row each .*"
                       r"this machine has"):
        dd.simulate_design(two_arm(), sims=10**13, seed=1)
    with pytest.raises(DeclarationError, match=r"diagnose_design\(sims=10000000000000\)"):
        dd.diagnose_design(two_arm(), sims=10**13, seed=1)
