"""One BLAS thread during runs, the previous setting restored after."""

from __future__ import annotations

import concurrent.futures as cf

import pytest

from declaredesign.engine import _threads


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
