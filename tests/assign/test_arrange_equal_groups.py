"""arrange's per-group sort (groups of one size, units contiguous) equals the one sort.

The reference is the arrangement by one sort of (group, key) over every unit, which
``arrange`` uses for any other layout and whenever two keys of a group tie.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from declaredesign.assign._plan import _KEY_BITS, _arrange_equal_groups, arrange


def one_sort(counts, unit_group, group_n, keys):
    """The arrangement from one sort of (group, key) over every unit."""
    order = np.argsort((unit_group.astype(np.int64) << _KEY_BITS) | keys)
    g_sorted = unit_group[order]
    starts = np.concatenate([[0], np.cumsum(group_n)[:-1]])
    pos = np.arange(unit_group.shape[0]) - starts[g_sorted]
    cum = np.cumsum(counts, axis=1)[:, :-1]
    out = np.empty(unit_group.shape[0], dtype=np.int64)
    out[order] = (pos[:, None] >= cum[g_sorted]).sum(axis=1)
    return out


class FixedKeys:
    """A generator whose ``integers`` returns given keys (to force ties)."""

    def __init__(self, keys):
        self.keys = keys

    def integers(self, low, high, size, dtype):
        assert size == self.keys.shape[0]
        return self.keys


@settings(max_examples=60, deadline=None)
@given(n_groups=st.integers(1, 30), m=st.integers(1, 25), k=st.integers(2, 4),
       seed=st.integers(0, 2**32 - 1), tie_range=st.sampled_from([None, 3, 40]))
def test_equal_groups_match_the_one_sort(n_groups, m, k, seed, tie_range):
    rng = np.random.default_rng(seed)
    unit_group = np.repeat(np.arange(n_groups), m)
    group_n = np.full(n_groups, m)
    counts = rng.multinomial(m, np.ones(k) / k, size=n_groups).astype(np.int64)
    high = 2 ** _KEY_BITS if tie_range is None else tie_range    # small: ties in groups
    keys = rng.integers(0, high, size=unit_group.size, dtype=np.int64)
    got = arrange(counts, unit_group, group_n, FixedKeys(keys))
    np.testing.assert_array_equal(got, one_sort(counts, unit_group, group_n, keys))
    assert got.dtype == np.int64
    ordered = np.sort(keys.reshape(n_groups, m), axis=1)
    tied = bool((ordered[:, 1:] == ordered[:, :-1]).any())
    fast = _arrange_equal_groups(counts, unit_group, group_n, keys)
    assert (fast is None) == tied


@pytest.mark.parametrize("layout", ["unequal", "interleaved"])
def test_other_layouts_use_the_one_sort(layout):
    rng = np.random.default_rng(1)
    if layout == "unequal":
        unit_group = np.repeat(np.arange(4), [3, 5, 3, 3])
    else:
        unit_group = np.tile(np.arange(4), 3)
    group_n = np.bincount(unit_group)
    counts = np.column_stack([group_n - 1, np.ones(4, dtype=np.int64)])
    keys = rng.integers(0, 2 ** _KEY_BITS, size=unit_group.size, dtype=np.int64)
    assert _arrange_equal_groups(counts, unit_group, group_n, keys) is None
    np.testing.assert_array_equal(arrange(counts, unit_group, group_n, FixedKeys(keys)),
                                  one_sort(counts, unit_group, group_n, keys))
