"""The Batch contract: columns, sims, IDs, grouping."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from declaredesign.batch import Batch, group_codes


def make(n_per_sim):
    sim = np.repeat(np.arange(len(n_per_sim)), n_per_sim)
    return Batch({"x": np.arange(len(sim), dtype=float)}, sim, len(n_per_sim))


def test_sizes_starts_and_empty_sims():
    b = make([2, 0, 3])
    assert b.sim_sizes().tolist() == [2, 0, 3]
    assert b.starts().tolist() == [0, 2, 2, 5]
    assert [len(df) for df in b.split()] == [2, 0, 3]


def test_with_columns_does_not_mutate_and_broadcasts():
    b = make([2, 1])
    b2 = b.with_columns(y=1.5)
    assert "y" not in b and b2["y"].tolist() == [1.5, 1.5, 1.5]


def test_bad_column_length_is_an_error():
    with pytest.raises(ValueError, match="column 'y'"):
        Batch({"y": np.zeros(2)}, np.zeros(3, dtype=int), 1)


def test_ids_are_zero_padded_per_sim():
    b = Batch({"id": np.array([1, 2, 12, 1, 2])}, np.array([0, 0, 0, 1, 1]), 2,
              id_columns=["id"])
    assert b.to_pandas()["id"].tolist() == ["01", "02", "12", "1", "2"]


def test_pandas_round_trip():
    df = pd.DataFrame({"a": [1.0, 2.0], "g": ["u", "v"]})
    pd.testing.assert_frame_equal(Batch.from_pandas(df).to_pandas(), df)


def test_select_and_concat():
    b = make([2, 1, 3])
    sel = b.select_sims([2, 0])
    assert sel.sim_sizes().tolist() == [3, 2]
    assert sel["x"].tolist() == [3.0, 4.0, 5.0, 0.0, 1.0]
    both = Batch.concat([b, sel])
    assert both.n_sims == 5 and both.sim_sizes().tolist() == [2, 1, 3, 3, 2]


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["a", "b", "c"])), min_size=1))
def test_group_codes_partition_by_sim_and_key(rows):
    rows = sorted(rows, key=lambda r: r[0])
    sim = np.array([r[0] for r in rows])
    key = np.array([r[1] for r in rows], dtype=object)
    codes, gsim = group_codes(sim, key)
    # Same (sim, key) <=> same code; codes ordered by sim.
    for i in range(len(rows)):
        for j in range(len(rows)):
            assert (codes[i] == codes[j]) == (rows[i] == rows[j])
    assert np.all(np.diff(gsim) >= 0)
    assert np.array_equal(gsim[codes], sim)


def test_derived_group_indexes_equal_fresh_ones():
    """take / with_columns / drop / repeated concat share or derive the parent's indexes."""
    from declaredesign.groups import GroupIndex

    rng = np.random.default_rng(3)
    base = Batch({"cl": np.array(["b", "a", "c", "a", "b", "b"], dtype=object),
                  "x": rng.normal(size=6)}, sim=np.zeros(6, dtype=np.int64), n_sims=1)
    big = Batch.concat([base] * 4)
    assert big.sim.tolist() == np.repeat(np.arange(4), 6).tolist()

    def fresh(b, *names):
        return GroupIndex.from_keys(b.sim, b.n_sims, *(b.columns[n] for n in names))

    def same(a, b):
        assert a.codes.tolist() == b.codes.tolist()
        assert a.group_sim.tolist() == b.group_sim.tolist()

    for names in [("cl",), (), ("x",)]:
        same(big.groups(*names), fresh(big, *names))
    keep = rng.random(big.n_rows) < 0.6
    keep[:6] = False                     # a simulation without rows
    sub = big.take(keep)
    same(sub.groups("cl"), fresh(sub, "cl"))
    same(sub.groups(), fresh(sub))
    wc = big.with_columns(y=np.ones(big.n_rows))
    assert wc.groups("cl") is big.groups("cl")
    replaced = big.with_columns(cl=np.arange(big.n_rows) % 2)
    same(replaced.groups("cl"), fresh(replaced, "cl"))
    same(big.drop(["x"]).take(keep).groups("cl"), fresh(sub, "cl"))
