"""group_codes' fast paths (sorted runs, lookup table, hashing) agree with a plain sort."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from declaredesign.groups import group_codes


def _reference(sim, *keys):
    cols = [np.asarray(sim, dtype=np.int64)]
    for k in keys:
        k = np.asarray(k)
        cols.append(np.unique(k.astype(str) if k.dtype.kind == "O" else k,
                              return_inverse=True)[1].reshape(-1))
    uniq, codes = np.unique(np.column_stack(cols), axis=0, return_inverse=True)
    return codes.reshape(-1), uniq[:, 0]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_group_codes_match_a_sort(data):
    n_sims = data.draw(st.integers(1, 6))
    n = data.draw(st.integers(1, 60))
    sim = np.sort(np.asarray(data.draw(st.lists(st.integers(0, n_sims - 1), min_size=n,
                                                max_size=n))))
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
    from declaredesign.groups import group_codes

    k = np.array(["b", None, "a", np.nan, "None", "b", "a"], dtype=object)
    codes, _ = group_codes(np.zeros(7, dtype=np.int64), k)
    # text order: "None" < "a" < "b" < missing ("nan"); None never joins "None"
    assert codes.tolist() == [2, 3, 1, 3, 0, 2, 1]
    mixed = np.array([1, "1", 2.0, "a"], dtype=object)   # printing alike: one group
    codes, _ = group_codes(np.zeros(4, dtype=np.int64), mixed)
    assert codes.tolist() == [0, 0, 1, 2]
