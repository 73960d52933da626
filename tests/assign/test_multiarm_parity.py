"""Multi-arm and factorial assignment against randomizr 1.0's exact probabilities and
permutation matrices (tests/fixtures/randomizr_multiarm, made by make_fixtures.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from declaredesign.assign import (
    block_and_cluster_ra_probabilities,
    block_ra_probabilities,
    cluster_ra_probabilities,
    complete_ra_probabilities,
    declare_ra,
    obtain_num_permutations,
    obtain_permutation_matrix,
    simple_ra_probabilities,
)

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "randomizr_multiarm" /
                      "cases.json").read_text())

BLOCKS = np.repeat(["A", "B", "C"], [4, 6, 5])
CLUSTERS = np.repeat(np.arange(1, 10), [2, 2, 3, 3, 1, 2, 2, 2, 3])
CL_BLOCKS = np.repeat(list("AAABBBCCC"), [2, 2, 3, 3, 1, 2, 2, 2, 3])

PYTHON = {
    "complete_num_arms3": lambda: complete_ra_probabilities(N=10, num_arms=3),
    "complete_num_arms2": lambda: complete_ra_probabilities(N=6, num_arms=2),
    "complete_conditions_abc": lambda: complete_ra_probabilities(N=10, conditions=["a", "b", "c"]),
    "complete_m_each": lambda: complete_ra_probabilities(N=11, m_each=[3, 3, 5]),
    "complete_m_each_labels": lambda: complete_ra_probabilities(
        N=11, m_each=[3, 3, 5], conditions=["x", "y", "z"]),
    "complete_m_each_2": lambda: complete_ra_probabilities(N=7, m_each=[3, 4]),
    "complete_prob_each_2": lambda: complete_ra_probabilities(N=7, prob_each=[0.3, 0.7]),
    "complete_prob_each_exact": lambda: complete_ra_probabilities(N=10, prob_each=[.2, .3, .5]),
    "complete_prob_each_rem1": lambda: complete_ra_probabilities(N=7, prob_each=[.2, .3, .5]),
    "complete_prob_each_rem1b": lambda: complete_ra_probabilities(N=9, prob_each=[.15, .35, .5]),
    "complete_prob_each_equal": lambda: complete_ra_probabilities(N=5, prob_each=[.3, .3, .4]),
    "factorial_2x2x2": lambda: complete_ra_probabilities(N=256, conditions=list(range(1, 9)),
                                                         prob_each=[0.125] * 8),
    "factorial_2x2_m_each": lambda: complete_ra_probabilities(
        N=20, conditions=["00", "01", "10", "11"], m_each=[5, 5, 5, 5]),
    "factorial_2x2_num_arms": lambda: complete_ra_probabilities(N=18, num_arms=4),
    "block_num_arms3": lambda: block_ra_probabilities(blocks=BLOCKS, num_arms=3),
    "block_prob_each": lambda: block_ra_probabilities(blocks=BLOCKS, prob_each=[.2, .3, .5],
                                                      conditions=["x", "y", "z"]),
    "block_m_each": lambda: block_ra_probabilities(
        blocks=BLOCKS, block_m_each=[[1, 1, 2], [2, 2, 2], [1, 3, 1]]),
    "block_m_each_labels": lambda: block_ra_probabilities(
        blocks=BLOCKS, block_m_each=[[1, 3], [2, 4], [5, 0]], conditions=["ctl", "trt"]),
    "block_block_prob_each": lambda: block_ra_probabilities(
        blocks=BLOCKS, block_prob_each=[[.25, .25, .5], [.5, .25, .25], [.2, .4, .4]]),
    "cluster_m_each": lambda: cluster_ra_probabilities(clusters=CLUSTERS, m_each=[2, 3, 4]),
    "cluster_num_arms3": lambda: cluster_ra_probabilities(clusters=CLUSTERS, num_arms=3),
    "block_cluster_m_each": lambda: block_and_cluster_ra_probabilities(
        blocks=CL_BLOCKS, clusters=CLUSTERS, block_m_each=[[1, 1, 1], [1, 1, 1], [0, 1, 2]]),
    "block_cluster_prob_each": lambda: block_and_cluster_ra_probabilities(
        blocks=CL_BLOCKS, clusters=CLUSTERS, prob_each=[1 / 3, 1 / 3, 1 / 3]),
    "simple_prob_each": lambda: simple_ra_probabilities(N=4, prob_each=[.2, .3, .5]),
    "simple_num_arms": lambda: simple_ra_probabilities(N=4, num_arms=3,
                                                       conditions=["a", "b", "c"]),
}

PERMUTATIONS = {
    "perm_m_each": lambda: declare_ra(N=4, m_each=[1, 1, 2]),
    "perm_num_arms": lambda: declare_ra(N=3, num_arms=3),
    "perm_block_m_each": lambda: declare_ra(blocks=[1, 1, 2, 2, 2],
                                            block_m_each=[[1, 1, 0], [1, 1, 1]]),
    "perm_conditions": lambda: declare_ra(N=4, conditions=["a", "b"], m=2),
}


def test_every_fixture_case_has_a_python_call():
    assert {c["name"] for c in FIXTURE["probabilities"]} == set(PYTHON)
    assert {c["name"] for c in FIXTURE["permutations"]} == set(PERMUTATIONS)


@pytest.mark.parametrize("case", FIXTURE["probabilities"], ids=lambda c: c["name"])
def test_condition_probabilities_equal_randomizr(case):
    got = PYTHON[case["name"]]()
    assert list(got.columns) == case["columns"], case["call"]
    np.testing.assert_allclose(got.to_numpy(), np.asarray(case["probs"]), rtol=0, atol=1e-12,
                               err_msg=case["call"])


@pytest.mark.parametrize("case", FIXTURE["permutations"], ids=lambda c: c["name"])
def test_permutation_matrix_equals_randomizr_as_a_set_of_columns(case):
    decl = PERMUTATIONS[case["name"]]()
    assert obtain_num_permutations(decl) == case["num_permutations"]
    ours = obtain_permutation_matrix(decl).astype(str)
    theirs = np.asarray(case["matrix"], dtype=str)
    assert ours.shape == theirs.shape
    assert sorted(map(tuple, ours.T)) == sorted(map(tuple, theirs.T))
