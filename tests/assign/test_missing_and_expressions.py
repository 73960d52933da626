"""Issue 12: missing values in grouping arguments are errors; issue 10: grouping
arguments given as expressions over the data (R: ``strata = paste(X, Y)``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from declaredesign.assign import (
    block_and_cluster_ra,
    block_and_cluster_ra_probabilities,
    block_ra,
    block_ra_probabilities,
    cluster_ra,
    cluster_ra_probabilities,
    cluster_rs,
    declare_ra,
    declare_rs,
    obtain_permutation_matrix,
    simple_ra,
    strata_and_cluster_rs,
    strata_rs,
    strata_rs_probabilities,
)
from declaredesign.batch import Batch
from declaredesign.errors import DeclarationError

NAN_CASES = [
    (block_ra, {"blocks": [1, 1, np.nan, 2]}, "blocks"),
    (block_ra_probabilities, {"blocks": ["a", None, "b", "b"]}, "blocks"),
    (cluster_ra, {"clusters": [1.0, np.nan, 2, 2]}, "clusters"),
    (cluster_ra_probabilities, {"clusters": ["a", "a", None, "b"]}, "clusters"),
    (block_and_cluster_ra, {"blocks": [1, 1, np.nan, 2], "clusters": [1, 1, 2, 3]}, "blocks"),
    (block_and_cluster_ra, {"blocks": [1, 1, 2, 2], "clusters": [1, 1, np.nan, 3]},
     "clusters"),
    (block_and_cluster_ra_probabilities,
     {"blocks": [1, 1, 2, 2], "clusters": [1, None, 2, 3]}, "clusters"),
    (strata_rs, {"strata": [1, np.nan, 2, 2]}, "strata"),
    (strata_rs_probabilities, {"strata": [1, np.nan, 2, 2]}, "strata"),
    (cluster_rs, {"clusters": [np.nan, 1, 2, 2]}, "clusters"),
    (strata_and_cluster_rs, {"strata": [1, 1, 2, 2], "clusters": [1, np.nan, 2, 3]},
     "clusters"),
    (strata_and_cluster_rs, {"strata": [1, None, 2, 2], "clusters": [1, 1, 2, 3]},
     "strata"),
]


@pytest.mark.parametrize(("func", "kwargs", "arg"), NAN_CASES,
                         ids=[f"{c[0].__name__}-{c[2]}" for c in NAN_CASES])
def test_missing_grouping_value_is_an_error_naming_the_argument(func, kwargs, arg):
    # randomizr drops such units silently (its result is shorter than the data).
    with pytest.raises(DeclarationError, match=rf"{arg} must be free of missing values"):
        func(**kwargs)


def test_missing_values_in_a_named_column_are_an_error_at_run_time():
    df = pd.DataFrame({"b": [1.0, 1.0, np.nan, 2.0], "p": [0.5, np.nan, 0.5, 0.5]})
    with pytest.raises(DeclarationError, match="blocks must be free of missing values"):
        declare_ra(blocks="b", prob=0.5).conduct(df, seed=1)
    with pytest.raises(DeclarationError, match="prob_unit must be free of missing values"):
        simple_ra(prob_unit="p").conduct(df, seed=1)
    with pytest.raises(DeclarationError, match="strata must be free"):
        obtain_permutation_matrix(declare_rs(strata="b", n=1), df)


def test_missing_values_in_a_batch_column_are_an_error():
    b = Batch({"cl": np.array([1.0, 1.0, 2.0, np.nan])}, sim=np.array([0, 0, 1, 1]),
              n_sims=2)
    with pytest.raises(DeclarationError, match="clusters must be free of missing values"):
        cluster_ra(clusters="cl", prob=0.5).conduct_batch(b, np.random.default_rng(0))


def test_strata_given_as_an_expression():
    df = pd.DataFrame({"X": [0, 0, 1, 1, 1, 0], "Y": [1, 2, 1, 2, 1, 1]})
    d = strata_rs(strata="X * 10 + Y", n=1)
    ref = declare_rs(strata=(df.X * 10 + df.Y).to_numpy(), n=1)
    assert d.probabilities(df)["prob_1"].tolist() == ref.probabilities()["prob_1"].tolist()
    s = d.conduct(df, seed=3)
    strata = df.X * 10 + df.Y
    assert pd.Series(s).groupby(strata.to_numpy()).sum().eq(1).all()


def test_blocks_and_clusters_given_as_expressions():
    df = pd.DataFrame({"school": [1, 1, 1, 1, 2, 2, 2, 2], "cls": [1, 1, 2, 2, 3, 3, 4, 4]})
    d = block_and_cluster_ra(blocks="school * 2", clusters="cls + 100", m=1)
    z = d.conduct(df, seed=2)
    assert z.reshape(4, 2).std(axis=1).max() == 0
    assert z[:4].sum() == 2 and z[4:].sum() == 2


def test_an_unknown_bare_name_still_names_the_columns():
    df = pd.DataFrame({"X": [1, 2]})
    with pytest.raises(DeclarationError, match="must name a column of the data.*X"):
        strata_rs(strata="W", n=1).conduct(df)
    with pytest.raises(DeclarationError):
        strata_rs(strata="W + 1", n=1).conduct(df)


# ------------------------------------------------------- per-block values by name
def test_named_strata_n_matches_strata_by_name():
    s = np.array(["b", "b", "a", "a", "a"])
    got = strata_rs_probabilities(strata=s, strata_n={"b": 2, "a": 1})
    assert got.tolist() == pytest.approx([1, 1, 1 / 3, 1 / 3, 1 / 3])
    series = pd.Series([1, 2], index=["b", "a"])
    assert strata_rs_probabilities(strata=s, strata_n=series).tolist() == \
        pytest.approx([0.5, 0.5, 2 / 3, 2 / 3, 2 / 3])


def test_names_that_are_no_stratum_are_ignored_as_randomizr_does():
    # R: strata_rs_probabilities(strata = s, strata_n = c(x = 2, y = 1)) takes the values
    # in sorted stratum order (a: 2, b: 1), as DesignLibrary's process_tracing relies on.
    s = np.array(["b", "b", "a", "a", "a"])
    got = strata_rs_probabilities(strata=s, strata_n={"x": 2, "y": 1})
    assert got.tolist() == pytest.approx([0.5, 0.5, 2 / 3, 2 / 3, 2 / 3])


def test_partly_matching_names_are_an_error():
    s = np.array(["b", "b", "a", "a", "a"])
    with pytest.raises(DeclarationError, match=r"strata_n must be named by the strata \(a, b\)"):
        strata_rs_probabilities(strata=s, strata_n={"b": 2, "c": 1})


def test_named_block_arguments_in_a_batch_and_after_pickling():
    import pickle

    d = declare_rs(strata="s", strata_n={"b": 2, "a": 1})
    assert repr(d) == "declare_rs(strata='s', strata_n={'b': 2, 'a': 1})"
    d = pickle.loads(pickle.dumps(d))
    # Simulation 1 has only stratum a: names still pick the right value.
    b = Batch({"s": np.array(["b", "b", "a", "a", "a", "a", "a"])},
              np.array([0, 0, 0, 0, 0, 1, 1]), 2)
    s = d.conduct_batch(b, np.random.default_rng(1))
    assert s[:2].sum() == 2 and s[2:5].sum() == 1 and s[5:].sum() == 1
    bm = block_ra_probabilities(blocks=["b", "b", "a", "a", "a"],
                                block_m_each=pd.DataFrame([[1, 1], [2, 1]], index=["b", "a"]))
    assert bm["prob_1"].tolist() == pytest.approx([0.5, 0.5, 1 / 3, 1 / 3, 1 / 3])
    assert block_ra_probabilities(blocks=["b", "b", "a", "a", "a"],
                                  block_prob={"a": 0.2, "b": 1.0})["prob_1"].tolist() == \
        pytest.approx([1, 1, 0.2, 0.2, 0.2])


def test_blocks_must_be_a_vector():
    with pytest.raises(DeclarationError, match="blocks must be a vector"):
        block_ra(blocks=np.zeros((2, 2)))
