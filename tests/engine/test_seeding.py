"""Seeds: explicit, and independent of how chunks are run."""

import numpy as np
import pytest

from declaredesign.engine.seeding import chunk_rng, root_seed_sequence
from declaredesign.errors import DeclarationError


def test_chunk_streams_depend_only_on_seed_and_index():
    a = chunk_rng(root_seed_sequence(5), 3).random(4)
    b = chunk_rng(root_seed_sequence(5), 3).random(4)
    c = chunk_rng(root_seed_sequence(5), 2).random(4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("bad", [-1, 1.5, "x", True])
def test_bad_seed(bad):
    with pytest.raises(DeclarationError, match=r"simulate_design\(seed="):
        root_seed_sequence(bad)
