"""Issue 10 items 9 and 12: randomizr's custom assignment (``declare_ra(permutation_matrix
=)``) and ``obtain_condition_probabilities(assignment=, conditions=, prob_each=)`` inside a
step, as R users write them. Expected numbers are randomizr 1.0's (see the R lines)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.assign import (
    ConditionProbabilities,
    conduct_ra,
    declare_ra,
    obtain_condition_probabilities,
    obtain_num_permutations,
    obtain_permutation_matrix,
    obtain_permutation_probabilities,
)
from declaredesign.batch import Batch
from declaredesign.errors import DeclarationError
from declaredesign.fabricate import normal

M = np.array([[1, 0, 1], [0, 1, 1], [0, 0, 0], [1, 1, 0]])


def test_custom_declaration_matches_randomizr():
    # R: d <- declare_ra(permutation_matrix = M); d$probabilities_matrix;
    #    obtain_condition_probabilities(d, c(1, 0, 0, 1))
    d = declare_ra(permutation_matrix=M)
    assert d.ra_type == "custom"
    assert np.allclose(d.probabilities()["prob_1"], [2 / 3, 2 / 3, 0, 2 / 3])
    assert np.allclose(obtain_condition_probabilities(d, [1, 0, 0, 1]),
                       [2 / 3, 1 / 3, 1, 2 / 3])
    assert obtain_num_permutations(d) == 3
    assert np.array_equal(obtain_permutation_matrix(d), M)
    assert np.allclose(obtain_permutation_probabilities(d), 1 / 3)
    assert "Custom random assignment" in d.summary()
    assert pickle.loads(pickle.dumps(d)).ra_type == "custom"


def test_custom_conduct_draws_a_column_uniformly_per_simulation():
    d = declare_ra(permutation_matrix=M)
    z = conduct_ra(d, seed=1)
    assert any(np.array_equal(z, M[:, j]) for j in range(3))
    b = Batch({}, np.repeat(np.arange(3000), 4), 3000)
    zz = d.conduct_batch(b, np.random.default_rng(2)).reshape(3000, 4)
    cols = [int(np.flatnonzero((M.T == row).all(axis=1))[0]) for row in zz]
    assert np.allclose(np.bincount(cols) / 3000, 1 / 3, atol=0.04)
    pr = d.probabilities_batch(b, zz.reshape(-1)).reshape(3000, 4)
    assert np.allclose(pr[:, 2], 1.0)


def test_custom_declaration_checks():
    with pytest.raises(DeclarationError, match="permutation_matrix must be a matrix"):
        declare_ra(permutation_matrix=[1, 0, 1])
    with pytest.raises(DeclarationError, match="m must be omitted with permutation_matrix"):
        declare_ra(permutation_matrix=M, m=2)
    with pytest.raises(DeclarationError, match="N must be the number of rows"):
        declare_ra(N=5, permutation_matrix=M)
    with pytest.raises(DeclarationError, match="one row per unit of the data"):
        declare_ra(permutation_matrix=M).conduct(6)


def test_condition_probabilities_from_declare_ra_arguments():
    # R: obtain_condition_probabilities(assignment = c(1, 2, 3, 3), conditions = 1:3,
    #                                   prob_each = c(.25, .25, .5))
    pr = obtain_condition_probabilities(assignment=[1, 2, 3, 3], conditions=[1, 2, 3],
                                        prob_each=[0.25, 0.25, 0.5])
    assert pr.tolist() == [0.25, 0.25, 0.5, 0.5]
    with pytest.raises(DeclarationError, match="assignment must be given"):
        obtain_condition_probabilities(prob=0.5)
    with pytest.raises(DeclarationError, match="m must be omitted when a declaration"):
        obtain_condition_probabilities(declare_ra(N=4, m=1), [1, 0, 0, 0], m=2)


def test_condition_probabilities_inside_a_step_as_in_the_factorial_designer():
    conds = list(range(1, 9))
    design = (dd.declare_model(N=40, u=normal())
              + dd.declare_assignment(
                  Z=dd.complete_ra(conditions=conds, prob_each=[0.125] * 8),
                  Z_cond_prob=obtain_condition_probabilities(
                      assignment="Z", conditions=conds, prob_each=[0.125] * 8)))
    df = dd.draw_data(design, seed=1)
    assert np.allclose(df["Z_cond_prob"], 0.125)
    lazy = obtain_condition_probabilities(assignment="Z", blocks="b", block_m=[1, 2])
    assert isinstance(lazy, ConditionProbabilities)
    assert pickle.loads(pickle.dumps(lazy)).assignment == "Z"
    data = pd.DataFrame({"b": [1, 1, 2, 2, 2]})
    design = (dd.declare_model(data=data)
              + dd.declare_assignment(Z=dd.block_ra(blocks="b", block_m=[1, 2]), p=lazy))
    df = dd.draw_data(design, seed=4)
    expect = np.where(df.b == 1, 0.5, np.where(df.Z == 1, 2 / 3, 1 / 3))
    assert np.allclose(df["p"], expect)


def test_condition_probabilities_of_a_custom_declaration_in_a_step():
    d = declare_ra(permutation_matrix=M)
    design = (dd.declare_model(N=4, u=normal())
              + dd.declare_assignment(Z=d, p=obtain_condition_probabilities(d, "Z")))
    df = dd.draw_data(design, seed=3)
    assert np.allclose(df["p"], obtain_condition_probabilities(d, df["Z"].to_numpy()))


def test_custom_sampling_declare_rs_permutation_matrix():
    from declaredesign.assign import declare_rs, draw_rs, obtain_inclusion_probabilities

    S = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1], [0, 0, 0]])
    d = declare_rs(permutation_matrix=S)
    assert d.rs_type == "custom"
    assert np.allclose(obtain_inclusion_probabilities(d), [2 / 3, 2 / 3, 2 / 3, 0])
    s = draw_rs(d, seed=5)
    assert any(np.array_equal(s, S[:, j]) for j in range(3))
    assert obtain_num_permutations(d) == 3
    b = Batch({}, np.repeat(np.arange(5), 4), 5)
    assert np.allclose(d.inclusion_probabilities_batch(b), np.tile([2 / 3, 2 / 3, 2 / 3, 0], 5))
    with pytest.raises(DeclarationError, match="a matrix of 0s and 1s"):
        declare_rs(permutation_matrix=[[0, 2], [1, 1]])
    with pytest.raises(DeclarationError, match="n must be omitted with permutation_matrix"):
        declare_rs(permutation_matrix=S, n=2)
