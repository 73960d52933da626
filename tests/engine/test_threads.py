"""Worker settings: one BLAS thread during runs (restored after); pool workers keep freed memory."""

from __future__ import annotations

import concurrent.futures as cf
import platform
import sys

import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.engine import _threads, allocator


def _counts():
    return [get() for get, _ in _threads._openblas_handles()]


def test_single_blas_thread_nests_and_restores():
    before = _counts()
    if not before:
        pytest.skip("no OpenBLAS found in this process")
    with _threads.single_blas_thread():
        assert set(_counts()) == {1}
        with _threads.single_blas_thread():
            assert set(_counts()) == {1}
        assert set(_counts()) == {1}
    assert _counts() == before


def test_concurrent_blocks_restore_once():
    before = _counts()
    if not before:
        pytest.skip("no OpenBLAS found in this process")

    def work(_):
        with _threads.single_blas_thread():
            return set(_counts())

    with cf.ThreadPoolExecutor(4) as ex:
        seen = list(ex.map(work, range(40)))
    assert all(s == {1} for s in seen)
    assert _counts() == before



def test_pool_workers_keep_freed_memory_and_results_do_not_change():
    """The process pool's workers raise glibc's mmap/trim thresholds; results are the same."""
    with cf.ProcessPoolExecutor(1) as ex:
        agreed = ex.submit(allocator.keep_freed_memory).result()
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert agreed is glibc
    design = dd.examples.two_arm(N=30)
    serial = dd.simulate_design(design, sims=40, seed=2, backend="serial", progress=False)
    pooled = dd.simulate_design(design, sims=40, seed=2, backend="processes", workers=2,
                                chunk_size=10, progress=False)
    pd.testing.assert_frame_equal(serial, pooled)
