"""Sampling functions (randomizr's *_rs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from declaredesign.assign import (
    RSDeclaration,
    cluster_rs,
    cluster_rs_probabilities,
    complete_rs,
    complete_rs_probabilities,
    declare_rs,
    draw_rs,
    obtain_inclusion_probabilities,
    obtain_num_permutations,
    simple_rs,
    simple_rs_probabilities,
    strata_and_cluster_rs,
    strata_and_cluster_rs_probabilities,
    strata_rs,
    strata_rs_probabilities,
)
from declaredesign.batch import Batch
from declaredesign.errors import DeclarationError


def test_defaults_are_half():
    assert simple_rs_probabilities(N=3).tolist() == [0.5] * 3
    assert complete_rs_probabilities(N=3).tolist() == [0.5] * 3
    assert complete_rs(N=10, seed=1).sum() == 5
    assert strata_rs_probabilities(strata=[1, 1, 2]).tolist() == [0.5] * 3


def test_complete_rs_rounding_rules():
    assert np.allclose(complete_rs_probabilities(N=3, prob=0.9), 2 / 3)
    assert all(complete_rs(N=3, prob=0.9, seed=s).sum() == 2 for s in range(20))
    # N = 1 keeps the mixture in randomizr's complete_rs.
    draws = [complete_rs(N=1, prob=0.5, seed=s)[0] for s in range(100)]
    assert 0 < np.mean(draws) < 1
    assert complete_rs_probabilities(N=4, n=1).tolist() == [0.25] * 4


def test_strata_rs_prob_applies_rounding_per_stratum():
    # randomizr samples floor(N p) in a stratum where ceil(N p) == N but reports p;
    # we report the probability the sampler actually has.
    p = strata_rs_probabilities(strata=[1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2], prob=0.9)
    np.testing.assert_allclose(p, [2 / 3] * 3 + [0.9] * 10)
    s = strata_rs(strata=[1, 1, 1, 2, 2], prob=0.9, seed=3)
    assert s[:3].sum() == 2 and s[3:].sum() == 1


def test_strata_n_and_strata_prob_and_clusters():
    s = strata_rs(strata=["b", "a", "b", "a", "b"], strata_n=[2, 1], seed=1)
    assert s[[1, 3]].sum() == 2 and s[[0, 2, 4]].sum() == 1
    np.testing.assert_allclose(strata_rs_probabilities(strata=[1, 1, 2, 2],
                                                       strata_prob=[0.5, 1.0]),
                               [0.5, 0.5, 1.0, 1.0])
    c = cluster_rs(clusters=[1, 1, 2, 2, 3], n=2, seed=4)
    assert c[0] == c[1] and c[2] == c[3]
    assert c[0] + c[2] + c[4] == 2
    np.testing.assert_allclose(cluster_rs_probabilities(clusters=[1, 1, 2, 2, 3], n=2), 2 / 3)
    sc = strata_and_cluster_rs(strata=[1, 1, 1, 2, 2], clusters=[1, 1, 2, 3, 4], n=1, seed=2)
    assert sc[0] == sc[1] and sc[0] + sc[2] == 1 and sc[3] + sc[4] == 1
    np.testing.assert_allclose(
        strata_and_cluster_rs_probabilities(strata=[1, 1, 1, 2, 2], clusters=[1, 1, 2, 3, 4],
                                            n=1), 0.5)


def test_simple_rs_prob_unit():
    assert simple_rs(N=3, prob_unit=[0, 1, 0], seed=1).tolist() == [0, 1, 0]
    assert simple_rs_probabilities(N=2, prob_unit=[0.1, 0.7]).tolist() == [0.1, 0.7]


@pytest.mark.parametrize("kwargs, rs_type", [
    (dict(N=4), "complete"), (dict(N=4, simple=True), "simple"),
    (dict(strata=[1, 2]), "stratified"), (dict(clusters=[1, 2]), "clustered"),
    (dict(strata=[1, 2], clusters=[1, 2]), "stratified_and_clustered"),
])
def test_rs_type(kwargs, rs_type):
    assert declare_rs(**kwargs).rs_type == rs_type


def test_declaration_batch_and_inclusion():
    d = cluster_rs(clusters="village", n=2)
    assert isinstance(d, RSDeclaration)
    assert repr(d) == "cluster_rs(clusters='village', n=2)"
    b = Batch({"village": np.tile([1, 1, 2, 3, 3, 4], 3)}, np.repeat([0, 1, 2], 6), 3)
    s = d.conduct_batch(b, np.random.default_rng(1)).reshape(3, 6)
    assert np.all(s[:, 0] == s[:, 1]) and np.all(s[:, [0, 2, 3, 5]].sum(1) == 2)
    np.testing.assert_allclose(d.inclusion_probabilities_batch(b), 0.5)
    df = pd.DataFrame({"village": [1, 2, 2, 3]})
    assert draw_rs(d, df, seed=1).tolist() == d.conduct(df, seed=1).tolist()
    np.testing.assert_allclose(obtain_inclusion_probabilities(d, df), 2 / 3)
    assert obtain_num_permutations(d, df) == 3


@pytest.mark.parametrize("call, match", [
    (lambda: complete_rs(N=3, n=4), r"complete_rs\(n=4\): n must be at most N \(3\); got 4\."),
    (lambda: complete_rs(N=3, prob=-1), r"prob must be a number in \[0, 1\]"),
    (lambda: strata_rs(strata=[1, 1, 2], strata_n=[1]), r"strata_n must be of length equal to "
                                                        r"the number of strata \(2\)"),
    (lambda: strata_rs(strata=[1, 1, 2], n=2), r"n must be at most the number of units \(a "
                                               r"stratum has 1 units\)"),
    (lambda: strata_and_cluster_rs(strata=[1, 2], clusters=[1, 1]),
     r"clusters must be nested within strata"),
    (lambda: declare_rs(N=3, n=1, prob=0.5), r"specify only one of prob, n"),
    (lambda: declare_rs(strata=[1, 2], simple=True), r"simple must be False"),
])
def test_rs_errors(call, match):
    with pytest.raises(DeclarationError, match=match):
        call()
