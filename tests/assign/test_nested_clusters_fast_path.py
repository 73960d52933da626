"""Clusters must nest in blocks; the one-block-per-simulation shortcut keeps the check."""

from __future__ import annotations

import numpy as np
import pytest

import declaredesign as dd
from declaredesign.errors import DeclareDesignError

CLUSTERS = np.array([1, 1, 2, 2, 3, 3])


def test_clusters_across_blocks_still_refused():
    with pytest.raises(DeclareDesignError, match="nested"):
        dd.block_and_cluster_ra(blocks=np.array(["a", "a", "a", "b", "b", "b"]),
                                clusters=CLUSTERS, seed=1)


def test_one_block_is_nested():
    z = np.asarray(dd.block_and_cluster_ra(blocks=np.array(["a"] * 6), clusters=CLUSTERS,
                                           seed=1))
    assert z.shape == (6,) and (z[0::2] == z[1::2]).all()
