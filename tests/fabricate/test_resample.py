"""resample_data: fabricatr's hierarchical bootstrap, standalone and batched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from declaredesign import Batch, DeclarationError
from declaredesign.fabricate import ALL, resample_batch, resample_data


@pytest.fixture
def cities() -> pd.DataFrame:
    return pd.DataFrame({"city": [1, 1, 1, 2, 2, 3],
                         "cit": [1, 2, 3, 4, 5, 6],
                         "y": np.arange(6.0)})


def test_row_bootstrap_keeps_size_and_rows(cities):
    out = resample_data(cities, seed=1)
    assert len(out) == len(cities)
    assert out.dtypes.equals(cities.dtypes)
    merged = out.merge(cities, on=["city", "cit", "y"], how="left", indicator=True)
    assert (merged["_merge"] == "both").all()
    assert len(resample_data(cities, N=10, seed=1)) == 10


def test_cluster_resample_keeps_whole_clusters(cities):
    out = resample_data(cities, N=5, ID_labels="city", seed=3)
    sizes = {1: 3, 2: 2, 3: 1}
    # rows come in whole-cluster runs
    runs = out["city"].to_numpy()
    i, n_clusters = 0, 0
    while i < len(runs):
        c = runs[i]
        assert runs[i:i + sizes[c]].tolist() == [c] * sizes[c]
        i += sizes[c]
        n_clusters += 1
    assert n_clusters == 5


def test_two_levels_and_all(cities):
    out = resample_data(cities, N=[4, 2], ID_labels=["city", "cit"], seed=2)
    assert len(out) == 8
    out_all = resample_data(cities, N={"city": ALL, "cit": 1}, seed=2)
    assert out_all["city"].tolist() == [1, 2, 3]
    # each citizen stays in its city
    assert set(map(tuple, out[["city", "cit"]].to_numpy())) <= \
        set(map(tuple, cities[["city", "cit"]].to_numpy()))


def test_deterministic(cities):
    a = resample_data(cities, N=[4, 2], ID_labels=["city", "cit"], seed=9)
    b = resample_data(cities, N=[4, 2], ID_labels=["city", "cit"], seed=9)
    pd.testing.assert_frame_equal(a, b)


def test_batched_resamples_within_each_sim():
    b = Batch({"g": np.array([1, 1, 2, 1, 2, 2, 3]), "v": np.arange(7)},
              sim=np.array([0, 0, 0, 1, 1, 1, 1]), n_sims=2)
    out = resample_batch(b, N=3, ID_labels="g", rng=np.random.default_rng(0))
    assert out.n_sims == 2
    for s in range(2):
        rows = out["v"][out.sim == s]
        assert set(rows.tolist()) <= set(b["v"][b.sim == s].tolist())


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=6), st.integers(1, 5),
       st.integers(0, 1000))
def test_two_level_count_is_n1_times_n2(group_sizes, n1, seed):
    g = np.repeat(np.arange(len(group_sizes)), group_sizes)
    df = pd.DataFrame({"g": g, "i": np.arange(len(g))})
    out = resample_data(df, N=[n1, 2], ID_labels=["g", "i"], seed=seed)
    assert len(out) == 2 * n1


def test_errors(cities):
    with pytest.raises(DeclarationError, match="N must be positive integers or ALL"):
        resample_data(cities, N=0, ID_labels="city")
    with pytest.raises(DeclarationError, match="one number per ID label"):
        resample_data(cities, N=[1, 2], ID_labels=["city"])
    with pytest.raises(DeclarationError, match="'town' not found"):
        resample_data(cities, N=2, ID_labels="town")
