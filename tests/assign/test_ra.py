"""Unit tests of the assignment functions, with randomizr's documented behaviours."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from declaredesign.assign import (
    RADeclaration,
    block_and_cluster_ra,
    block_and_cluster_ra_probabilities,
    block_ra,
    block_ra_probabilities,
    cluster_ra,
    cluster_ra_probabilities,
    complete_ra,
    complete_ra_probabilities,
    conduct_ra,
    declare_ra,
    obtain_condition_probabilities,
    obtain_num_permutations,
    simple_ra,
    simple_ra_probabilities,
)
from declaredesign.errors import DeclarationError


def treat_prob(df: pd.DataFrame) -> np.ndarray:
    return df["prob_1"].to_numpy()


# ----------------------------------------------------------- complete_ra rules
@pytest.mark.parametrize("N, prob, expected", [
    (5, 0.5, 0.5),          # floor/ceil mixture 1/2 each
    (3, 0.9, 2 / 3),        # ceil == N -> floor
    (2, 0.9, 0.5),
    (4, 0.8, 0.75),
    (3, 0.2, 0.2),          # floor == 0 keeps the mixture
    (10, 0.3, 0.3),
])
def test_complete_ra_prob_rounding_rules(N, prob, expected):
    p = treat_prob(complete_ra_probabilities(N=N, prob=prob))
    assert np.allclose(p, expected, rtol=0, atol=1e-15)


def test_complete_ra_ceil_rule_always_floor():
    z = np.array([complete_ra(N=3, prob=0.9, seed=s).sum() for s in range(50)])
    assert np.all(z == 2)


def test_complete_ra_floor_zero_keeps_mixture():
    sums = {int(complete_ra(N=3, prob=0.2, seed=s).sum()) for s in range(200)}
    assert sums == {0, 1}


def test_complete_ra_odd_n_half_mixture():
    sums = np.array([complete_ra(N=5, prob=0.5, seed=s).sum() for s in range(400)])
    assert set(sums.tolist()) == {2, 3}
    assert abs((sums == 3).mean() - 0.5) < 4 * np.sqrt(0.25 / 400)


def test_complete_ra_m_exact_and_m_equals_n():
    assert complete_ra(N=100, m=50, seed=1).sum() == 50
    assert complete_ra(N=4, m=4, seed=1).tolist() == [1, 1, 1, 1]
    assert complete_ra(N=4, m=0, seed=1).tolist() == [0, 0, 0, 0]


def test_complete_ra_default_two_arms():
    z = complete_ra(N=6, seed=3)
    assert z.dtype.kind == "i" and z.sum() == 3
    assert treat_prob(complete_ra_probabilities(N=7)).tolist() == [0.5] * 7


def test_complete_ra_multi_arm_labels_and_counts():
    z = complete_ra(N=9, num_arms=3, seed=1)
    assert sorted(set(z.tolist())) == ["T1", "T2", "T3"]
    assert all((z == c).sum() == 3 for c in ["T1", "T2", "T3"])
    z = complete_ra(N=6, m_each=[1, 2, 3], conditions=["a", "b", "c"], seed=2)
    assert [(z == c).sum() for c in "abc"] == [1, 2, 3]
    pm = complete_ra_probabilities(N=6, m_each=[1, 2, 3], conditions=["a", "b", "c"])
    assert list(pm.columns) == ["prob_a", "prob_b", "prob_c"]
    assert np.allclose(pm.iloc[0], [1 / 6, 2 / 6, 3 / 6])


def test_complete_ra_prob_each_remainder_one_reports_prob_each():
    pm = complete_ra_probabilities(N=10, prob_each=[0.25, 0.25, 0.5])
    assert pm.iloc[0].tolist() == [0.25, 0.25, 0.5]
    z = complete_ra(N=10, prob_each=[0.25, 0.25, 0.5], seed=1)
    counts = sorted([(z == c).sum() for c in ["T1", "T2"]])
    assert (z == "T3").sum() == 5 and counts in ([2, 3],)


def test_complete_ra_prob_each_two_remainders_marginals_are_exact():
    # randomizr reports prob_each here, but its successive sampling of the two
    # remaining units gives other marginals; we report the true ones.
    pm = complete_ra_probabilities(N=9, prob_each=[0.5, 0.3, 0.2]).iloc[0].to_numpy()
    w = np.array([0.25, 0.35, 0.4])
    inc = np.array([w[i] + sum(w[j] * w[i] / (1 - w[j]) for j in range(3) if j != i)
                    for i in range(3)])
    assert np.allclose(pm, (np.array([4, 2, 1]) + inc) / 9, atol=1e-15)
    assert abs(pm[0] - 0.5) > 1e-3


def test_complete_ra_n1_keeps_mixture():
    # randomizr's complete_ra(N=1, prob=p) always assigns control although its
    # probabilities say p; we keep the mixture so both agree (as complete_rs does).
    z = np.array([complete_ra(N=1, prob=0.5, seed=s)[0] for s in range(200)])
    assert 0 < z.mean() < 1
    assert treat_prob(complete_ra_probabilities(N=1, prob=0.3)).tolist() == [0.3]


# --------------------------------------------------------------- simple_ra
def test_simple_ra_independent_and_prob_unit():
    z = simple_ra(N=2000, prob=0.3, seed=1)
    assert abs(z.mean() - 0.3) < 4 * np.sqrt(0.21 / 2000)
    p = simple_ra_probabilities(N=3, prob_unit=[0.1, 0.5, 0.9])
    assert treat_prob(p).tolist() == [0.1, 0.5, 0.9]
    assert simple_ra(N=3, prob_unit=[0, 1, 1], seed=2).tolist() == [0, 1, 1]


def test_simple_ra_prob_each_matrix():
    pe = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert simple_ra(N=2, prob_each=pe, seed=1).tolist() == ["T1", "T3"]


# ---------------------------------------------------------------- block_ra
def test_block_ra_prob_has_no_ceil_rule():
    blocks = [1, 1, 2, 2, 2]
    p = treat_prob(block_ra_probabilities(blocks=blocks, prob=0.9))
    assert np.allclose(p, 0.9, atol=1e-15)
    draws = np.array([block_ra(blocks=blocks, prob=0.9, seed=s) for s in range(300)])
    assert (draws[:, :2].sum(1) == 2).any()       # whole blocks can be all treated
    assert abs(draws.mean() - 0.9) < 4 * np.sqrt(0.09 / 1500) + 0.02


def test_block_ra_block_prob_follows_complete_ra():
    p = treat_prob(block_ra_probabilities(blocks=[1, 1, 1, 2, 2], block_prob=[0.9, 0.5]))
    assert np.allclose(p, [2 / 3] * 3 + [0.5] * 2)


def test_block_ra_block_m_and_order_of_blocks():
    blocks = np.array(["b", "a", "b", "a", "b", "a"])
    # block_m follows the sorted block levels ("a", "b"), as R's factor levels.
    for s in range(20):
        z = block_ra(blocks=blocks, block_m=[0, 3], seed=s)
        assert z[blocks == "a"].sum() == 0 and z[blocks == "b"].sum() == 3


def test_block_ra_block_m_each_and_prob_each():
    blocks = [1, 1, 1, 2, 2, 2, 2]
    z = block_ra(blocks=blocks, block_m_each=[[1, 1, 1], [2, 1, 1]], seed=3)
    assert [(z[:3] == c).sum() for c in ["T1", "T2", "T3"]] == [1, 1, 1]
    assert [(z[3:] == c).sum() for c in ["T1", "T2", "T3"]] == [2, 1, 1]
    pm = block_ra_probabilities(blocks=blocks, block_prob_each=[[0.5, 0.5], [0.25, 0.75]])
    assert np.allclose(pm["prob_1"], [0.5] * 3 + [0.75] * 4)


def test_block_ra_m_and_m_unit_and_prob_unit():
    blocks = [1, 1, 2, 2, 2]
    assert block_ra(blocks=blocks, m=1, seed=1).sum() == 2
    z = block_ra(blocks=blocks, m_unit=[1, 1, 2, 2, 2], seed=1)
    assert z[:2].sum() == 1 and z[2:].sum() == 2
    p = treat_prob(block_ra_probabilities(blocks=blocks, prob_unit=[0.5, 0.5, 0.9, 0.9, 0.9]))
    assert np.allclose(p, [0.5, 0.5, 2 / 3, 2 / 3, 2 / 3])


# -------------------------------------------------------------- cluster_ra
def test_cluster_ra_constant_within_clusters_and_ceil_rule():
    clusters = np.repeat(["x", "y", "z"], [2, 3, 1])
    for s in range(30):
        z = cluster_ra(clusters=clusters, prob=0.9, seed=s)
        for c in "xyz":
            assert len(set(z[clusters == c])) == 1
        assert len(set(z[clusters == c][0] for c in "xyz")) == 2 or True
        assert sum(z[clusters == c][0] for c in "xyz") == 2
    assert np.allclose(treat_prob(cluster_ra_probabilities(clusters=clusters, prob=0.9)), 2 / 3)


def test_cluster_ra_simple():
    clusters = np.repeat(np.arange(200), 2)
    z = cluster_ra(clusters=clusters, prob=0.25, simple=True, seed=1)
    assert np.all(z[::2] == z[1::2])
    assert abs(z[::2].mean() - 0.25) < 4 * np.sqrt(0.1875 / 200)


def test_block_and_cluster_ra():
    blocks = [1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    clusters = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    z = block_and_cluster_ra(blocks=blocks, clusters=clusters, block_m=[1, 2], seed=2)
    assert z[:4].sum() == 2 and z[4:].sum() == 4
    p = treat_prob(block_and_cluster_ra_probabilities(blocks=blocks, clusters=clusters,
                                                      block_m=[1, 2]))
    assert np.allclose(p, [0.5] * 4 + [2 / 3] * 6)


# ------------------------------------------------------------ declarations
def test_declarative_mode_and_repr():
    d = cluster_ra(clusters="classroom", prob=0.5)
    assert isinstance(d, RADeclaration)
    assert repr(d) == "cluster_ra(clusters='classroom', prob=0.5)"
    assert d.ra_type == "clustered"
    assert isinstance(complete_ra(m=2), RADeclaration)
    assert isinstance(complete_ra(N=4, m=2), np.ndarray)
    assert repr(declare_ra(N=4, m=2)) == "declare_ra(N=4, m=2)"
    assert repr(simple_ra(prob=0.3)) == "simple_ra(prob=0.3)"
    assert repr(declare_ra(prob=0.3, simple=True)) == "declare_ra(prob=0.3, simple=True)"


@pytest.mark.parametrize("kwargs, ra_type", [
    (dict(N=4), "complete"),
    (dict(N=4, simple=True), "simple"),
    (dict(blocks=[1, 1, 2, 2]), "blocked"),
    (dict(clusters=[1, 1, 2, 2]), "clustered"),
    (dict(blocks=[1, 1, 2, 2], clusters=[1, 1, 2, 2]), "blocked_and_clustered"),
])
def test_ra_type(kwargs, ra_type):
    assert declare_ra(**kwargs).ra_type == ra_type


def test_declaration_is_frozen_picklable_and_replaceable():
    d = declare_ra(N=10, m=3)
    with pytest.raises(AttributeError):
        d.m = 4
    d2 = pickle.loads(pickle.dumps(d))
    assert repr(d2) == repr(d)
    assert d2.conduct(seed=3).tolist() == d.conduct(seed=3).tolist()
    assert d.replace(m=4).conduct(seed=1).sum() == 4


def test_conduct_on_dataframe_with_columns():
    df = pd.DataFrame({"cls": np.repeat([1, 2, 3, 4], 3), "p": 0.5})
    d = cluster_ra(clusters="cls", prob_unit="p")
    z = conduct_ra(d, df, seed=1)
    assert z.reshape(4, 3).std(axis=1).max() == 0 and z.sum() == 6
    pr = obtain_condition_probabilities(d, z, df)
    assert np.allclose(pr, 0.5)


def test_obtain_condition_probabilities_labels():
    d = declare_ra(N=6, m_each=[1, 2, 3], conditions=["a", "b", "c"])
    z = d.conduct(seed=1)
    pr = obtain_condition_probabilities(d, z)
    expected = np.select([z == "a", z == "b"], [1 / 6, 2 / 6], 3 / 6)
    assert np.allclose(pr, expected)


def test_num_permutations_known_values():
    assert obtain_num_permutations(declare_ra(N=5, prob=0.5)) == 20
    assert obtain_num_permutations(declare_ra(N=4, m=2)) == 6
    assert obtain_num_permutations(declare_ra(N=3, prob=0.9)) == 3
    assert obtain_num_permutations(declare_ra(N=3, simple=True)) == 8
    assert obtain_num_permutations(declare_ra(blocks=[1, 1, 2, 2, 2], block_m=[1, 1])) == 6
    assert obtain_num_permutations(declare_ra(clusters=[1, 1, 2, 2, 3, 3], m=1)) == 3


def test_determinism_under_seed():
    a = block_ra(blocks=np.repeat([1, 2, 3], 5), prob=0.5, seed=42)
    b = block_ra(blocks=np.repeat([1, 2, 3], 5), prob=0.5, seed=42)
    assert a.tolist() == b.tolist()
    gen = np.random.default_rng(7)
    c = complete_ra(N=20, m=10, seed=gen)
    assert c.tolist() != complete_ra(N=20, m=10, seed=gen).tolist()


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("call, match", [
    (lambda: complete_ra(N=5, prob=1.5), r"complete_ra\(prob=1.5\): prob must be a number in "
                                         r"\[0, 1\]; got 1.5\."),
    (lambda: complete_ra(N=5, m=6), r"complete_ra\(m=6\): m must be at most N \(5\); got 6\."),
    (lambda: complete_ra(N=5, m=2.5), r"m must be a non-negative integer; got 2.5"),
    (lambda: complete_ra(N=0), r"N must be a positive integer; got 0"),
    (lambda: complete_ra(N=5, m=2, prob=0.5), r"specify only one of prob, m"),
    (lambda: block_and_cluster_ra(blocks=[1, 1, 2, 2], clusters=[1, 2, 2, 3]),
     r"clusters must be nested within blocks \(cluster 2 has units in more than one block\)"),
    (lambda: block_ra(blocks=[1, 1, 2, 2], block_m=[1, 1, 1]),
     r"block_ra\(block_m=\[1, 1, 1\]\): block_m must be of length equal to the number of "
     r"blocks \(2\)"),
    (lambda: block_ra(blocks=[1, 1, 2, 2], block_m=[1, 3]),
     r"block_m must be at most the number of units \(a block has 2 units\)"),
    (lambda: block_ra(blocks=[1, 1, 2], m=2), r"m must be at most the number of units"),
    (lambda: complete_ra(N=4, prob_each=[0.2, 0.2]), r"prob_each must be probabilities summing"),
    (lambda: complete_ra(N=4, m_each=[1, 2]), r"m_each must be counts summing to N \(4\)"),
    (lambda: declare_ra(N=4, block_m=[1]), r"block_m must be given only with blocks"),
    (lambda: declare_ra(blocks=[1, 2], simple=True), r"simple must be False"),
    (lambda: declare_ra(N=4, m=2, simple=True),
     r"m must be left unset when simple=True"),
    (lambda: complete_ra(N=4, conditions=["a", "a"]), r"conditions must be unique labels"),
    (lambda: complete_ra(N=4, num_arms=3, conditions=["a", "b"]), r"num_arms must be equal"),
    (lambda: complete_ra(N=4, num_arms=3, prob=0.5), r"prob must be used with two conditions"),
    (lambda: complete_ra(N=4, prob_unit=[0.5, 0.5, 0.4, 0.5]), r"prob_unit must be the same "
                                                               r"for all units"),
    (lambda: block_ra(blocks=[1, 1, 2], prob_unit=[0.1, 0.2, 0.3]),
     r"prob_unit must be the same within each block"),
    (lambda: block_ra(blocks=[1, 1, 2], prob_unit=[0.1, 0.1]), r"prob_unit must be of length N"),
    (lambda: cluster_ra(clusters=None), r"cluster_ra\(clusters=None\): clusters must be given"),
    (lambda: complete_ra(m=2).conduct(pd.DataFrame({"x": [1]})),
     r"m must be at most the number of units \(N = 1\)"),
    (lambda: cluster_ra(clusters="cls").conduct(pd.DataFrame({"x": [1]})),
     r"clusters must name a column of the data; got 'cls', and the columns are: x\."),
    (lambda: obtain_condition_probabilities(declare_ra(N=2), [0, 2]),
     r"assignment must be one of the declared conditions \(0, 1\); got 2\."),
])
def test_errors(call, match):
    with pytest.raises(DeclarationError, match=match):
        call()


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        complete_ra(N=5, prob=-0.1)


def test_summary_mentions_design_facts():
    text = declare_ra(blocks=[1, 1, 2, 2, 2], clusters=[1, 1, 2, 3, 3], prob=0.5).summary()
    assert "Blocked and clustered random assignment" in text
    assert "Number of blocks: 2" in text and "Number of clusters: 3" in text
    assert "NOT constant" not in text
    text = declare_ra(blocks=[1, 1, 2, 2, 2], block_m=[1, 1]).summary()
    assert "NOT constant" in text and "is 6." in text
