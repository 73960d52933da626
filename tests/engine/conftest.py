"""Engine tests run with small blocks, so small runs span several blocks and chunks.

Blocks fix the random streams (``engine.chunks``); a block holds at most
``MAX_BLOCK_SIMS`` simulations (1,000 by default, so a 60-simulation test run would
be one block). Five keeps chunking, resuming and backends exercised on tiny runs.
Processes fork after the block size is computed, and the size travels with the
designs to every worker, so the setting reaches them all.
"""

from __future__ import annotations

import pytest

from declaredesign.engine import chunks

SMALL_BLOCK = 5


@pytest.fixture(scope="package", autouse=True)
def small_blocks():
    """Blocks of at most SMALL_BLOCK simulations for the engine tests (module fixtures too)."""
    before = chunks.MAX_BLOCK_SIMS
    chunks.MAX_BLOCK_SIMS = SMALL_BLOCK
    yield SMALL_BLOCK
    chunks.MAX_BLOCK_SIMS = before
