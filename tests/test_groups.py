"""group_codes' fast paths (sorted runs, lookup table, hashing) agree with a plain sort."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from declaredesign.batch import Batch
from declaredesign.groups import GroupIndex, group_codes


def _reference(sim, *keys):
    cols = [np.asarray(sim, dtype=np.int64)]
    for k in keys:
        k = np.asarray(k)
        cols.append(np.unique(k.astype(str) if k.dtype.kind == "O" else k,
                              return_inverse=True)[1].reshape(-1))
    uniq, codes = np.unique(np.column_stack(cols), axis=0, return_inverse=True)
    return codes.reshape(-1), uniq[:, 0]


def _draw_sorted_sims(data, *, max_sims, max_rows):
    """Draw ``(n_sims, n_rows, sim)``: a sorted int64 simulation index."""
    n_sims = data.draw(st.integers(1, max_sims))
    n = data.draw(st.integers(1, max_rows))
    sim = np.sort(np.asarray(data.draw(st.lists(st.integers(0, n_sims - 1), min_size=n,
                                                max_size=n)), dtype=np.int64))
    return n_sims, n, sim


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_group_codes_match_a_sort(data):
    n_sims, n, sim = _draw_sorted_sims(data, max_sims=6, max_rows=60)
    kind = data.draw(st.sampled_from(["nested", "small", "sparse", "text"]))
    if kind == "nested":  # sorted within each simulation, as levels are made
        key = np.concatenate([np.sort(np.asarray(data.draw(st.lists(
            st.integers(1, 5), min_size=int((sim == s).sum()),
            max_size=int((sim == s).sum()))), dtype=np.int64)) for s in range(n_sims)])
    elif kind == "small":
        key = np.asarray(data.draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)))
    elif kind == "sparse":
        key = np.asarray(data.draw(st.lists(st.sampled_from([0, 10**7, 5 * 10**8]),
                                            min_size=n, max_size=n)))
    else:
        key = np.asarray(data.draw(st.lists(st.sampled_from(["b", "a", "ab", "B"]),
                                            min_size=n, max_size=n)), dtype=object)
    extra = np.asarray(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    for keys in ((), (key,), (key, extra)):
        codes, gsim = group_codes(sim, *keys)
        ref_codes, ref_gsim = _reference(sim, *keys)
        assert codes.dtype == np.int64 and gsim.dtype == np.int64
        np.testing.assert_array_equal(codes, ref_codes)
        np.testing.assert_array_equal(gsim, ref_gsim)


def test_object_keys_group_by_text_order_missing_apart():
    k = np.array(["b", None, "a", np.nan, "None", "b", "a"], dtype=object)
    codes, _ = group_codes(np.zeros(7, dtype=np.int64), k)
    # text order: "None" < "a" < "b" < missing ("nan"); None never joins "None"
    assert codes.tolist() == [2, 3, 1, 3, 0, 2, 1]
    mixed = np.array([1, "1", 2.0, "a"], dtype=object)   # printing alike: one group
    codes, _ = group_codes(np.zeros(4, dtype=np.int64), mixed)
    assert codes.tolist() == [0, 0, 1, 2]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_group_index_from_keys_matches_a_sort(data):
    """The small-integer path (sorted runs or lookup table) gives a sort's codes and starts."""
    n_sims, n, sim = _draw_sorted_sims(data, max_sims=5, max_rows=50)
    key = np.asarray(data.draw(st.lists(st.integers(-2, 4), min_size=n, max_size=n)))
    if data.draw(st.booleans()):  # nested levels arrive in (sim, key) order
        key = key[np.lexsort((key, sim))]
    g = GroupIndex.from_keys(sim, n_sims, key)
    ref_codes, ref_gsim = _reference(sim, key)
    np.testing.assert_array_equal(g.codes, ref_codes)
    np.testing.assert_array_equal(g.group_sim, ref_gsim)
    if g.starts is not None:
        np.testing.assert_array_equal(g.starts, np.searchsorted(ref_codes, np.arange(g.n_groups)))
        np.testing.assert_array_equal(g.count(), np.bincount(ref_codes))


def test_batch_keeps_group_indices_of_unchanged_columns():
    """with_columns and drop share the indices of key columns they leave untouched."""
    b = Batch({"g": np.array([1, 1, 2, 1]), "h": np.array([0, 1, 0, 0]), "y": np.zeros(4)},
              sim=np.array([0, 0, 0, 1]), n_sims=2)
    g, h, gh = b.groups("g"), b.groups("h"), b.groups("g", "h")
    b2 = b.with_columns(y=np.ones(4), h=np.array([1, 1, 0, 0]))
    assert b2.groups("g") is g
    assert b2.groups("h") is not h and b2.groups("h").codes.tolist() == [1, 1, 0, 2]
    assert b2.groups("g", "h") is not gh
    b3 = b.drop(["y"])
    assert b3.groups("g") is g and b3.groups("g", "h") is gh
    assert b.take(np.array([0, 1, 3])).groups("g") is not g


@pytest.mark.parametrize("key", [np.array([1, 1, 2, 2, 2, 1]), np.array([2, 1, 2, 1, 1, 1])])
def test_count_where_counts_true_rows_per_group(key):
    """Group order (reduceat) and any order (bincount) count the same rows."""
    sim = np.array([0, 0, 0, 0, 1, 1])
    g = GroupIndex.from_keys(sim, 2, key)
    mask = np.array([True, False, True, True, False, True])
    got = g.count_where(mask)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.bincount(g.codes, weights=mask).astype(np.int64))
