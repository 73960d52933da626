"""Exact probability tables: enumerated assignments against the probability matrices,
and the batched sampler against the enumeration."""

from __future__ import annotations

import numpy as np
import pytest

from declaredesign.assign import (
    declare_ra,
    declare_rs,
    obtain_num_permutations,
    obtain_permutation_matrix,
    obtain_permutation_probabilities,
)
from declaredesign.batch import Batch

DESIGNS = {
    "complete N5 p.5": declare_ra(N=5, prob=0.5),
    "complete N3 p.9 (ceil rule)": declare_ra(N=3, prob=0.9),
    "complete N3 p.2 (floor 0)": declare_ra(N=3, prob=0.2),
    "complete N4 m2": declare_ra(N=4, m=2),
    "complete N1 p.3": declare_ra(N=1, prob=0.3),
    "complete N5 default": declare_ra(N=5),
    "complete N6 3 arms": declare_ra(N=6, num_arms=3),
    "complete N5 3 arms (two remainders)": declare_ra(N=5, num_arms=3),
    "complete N3 prob_each unequal remainders": declare_ra(N=3, prob_each=[0.5, 0.3, 0.2]),
    "complete N9 prob_each unequal remainders": declare_ra(N=9, prob_each=[0.5, 0.3, 0.2]),
    "complete N5 m_each": declare_ra(N=5, m_each=[1, 2, 2], conditions=["a", "b", "c"]),
    "simple N4 p.3": declare_ra(N=4, prob=0.3, simple=True),
    "simple N3 prob_unit": declare_ra(N=3, prob_unit=[0.0, 0.5, 0.8], simple=True),
    "simple N3 prob_each": declare_ra(N=3, prob_each=[0.2, 0.3, 0.5], simple=True),
    "blocked prob .9": declare_ra(blocks=[1, 1, 2, 2, 2], prob=0.9),
    "blocked block_prob": declare_ra(blocks=[1, 1, 2, 2, 2], block_prob=[0.9, 0.5]),
    "blocked block_m": declare_ra(blocks=["a", "b", "a", "b", "b"], block_m=[1, 2]),
    "blocked block_m_each": declare_ra(blocks=[1, 1, 1, 2, 2],
                                       block_m_each=[[1, 1, 1], [0, 1, 1]]),
    "blocked block_prob_each": declare_ra(blocks=[1, 1, 1, 2, 2],
                                          block_prob_each=[[0.2, 0.8], [0.5, 0.5]]),
    "blocked default 3 arms": declare_ra(blocks=[1, 1, 2, 2, 2, 2], num_arms=3),
    "clustered prob .9": declare_ra(clusters=[1, 1, 2, 3, 3, 3], prob=0.9),
    "clustered simple": declare_ra(clusters=[1, 1, 2, 3, 3], prob=0.4, simple=True),
    "blocked and clustered": declare_ra(blocks=[1, 1, 1, 1, 2, 2, 2],
                                        clusters=[1, 1, 2, 3, 4, 5, 5], prob=0.5),
    "rs complete N5": declare_rs(N=5, prob=0.5),
    "rs complete n2": declare_rs(N=4, n=2),
    "rs stratified prob .9 (ceil rule per stratum)": declare_rs(strata=[1, 1, 2, 2, 2],
                                                                prob=0.9),
    "rs stratified strata_n": declare_rs(strata=[1, 1, 2, 2, 2], strata_n=[1, 2]),
    "rs clustered n": declare_rs(clusters=[1, 1, 2, 3, 3], n=2),
    "rs strata and clusters": declare_rs(strata=[1, 1, 2, 2], clusters=[1, 2, 3, 4],
                                         strata_prob=[0.5, 0.9]),
    "rs simple prob_unit": declare_rs(N=3, prob_unit=[0.2, 0.5, 1.0], simple=True),
}


@pytest.mark.parametrize("name", list(DESIGNS))
def test_enumeration_averages_to_probability_matrix(name):
    d = DESIGNS[name]
    perms = obtain_permutation_matrix(d)
    probs = obtain_permutation_probabilities(d)
    assert perms.shape[1] == probs.shape[0] == obtain_num_permutations(d)
    assert np.isclose(probs.sum(), 1.0, rtol=0, atol=1e-13)
    assert np.all(probs > 0)
    # Each column is a distinct assignment.
    assert len({tuple(col) for col in perms.T.tolist()}) == perms.shape[1]
    pm = d.probabilities()
    for col in pm.columns:
        cond = col[len("prob_"):]
        labels = perms.astype(str)
        avg = (labels == cond).astype(float) @ probs
        np.testing.assert_allclose(avg, pm[col].to_numpy(), rtol=0, atol=1e-13)


def _stack(decl, n_sims):
    n = decl._fixed_n()
    return Batch({}, np.repeat(np.arange(n_sims), n), n_sims)


@pytest.mark.parametrize("name", ["complete N5 p.5", "complete N3 prob_each unequal remainders",
                                  "blocked and clustered", "blocked prob .9",
                                  "clustered prob .9", "complete N5 3 arms (two remainders)",
                                  "rs stratified prob .9 (ceil rule per stratum)",
                                  "simple N3 prob_each"])
def test_batched_sampler_frequencies_match_enumeration(name):
    d = DESIGNS[name]
    n_sims = 20_000
    batch = _stack(d, n_sims)
    z = d.conduct_batch(batch, np.random.default_rng(2024)).reshape(n_sims, -1).astype(str)
    perms = obtain_permutation_matrix(d).astype(str)
    probs = obtain_permutation_probabilities(d)
    index = {tuple(col): j for j, col in enumerate(perms.T.tolist())}
    hits = np.array([index[tuple(row)] for row in z.tolist()])   # KeyError: impossible draw
    freq = np.bincount(hits, minlength=probs.size) / n_sims
    se = np.sqrt(probs * (1 - probs) / n_sims)
    # 5 SE with many columns keeps the family-wise false alarm rate tiny.
    assert np.all(np.abs(freq - probs) <= 5 * se + 1e-12), np.max(np.abs(freq - probs) / se)


def test_r_permutation_count_agrees_for_two_arm_designs():
    # randomizr's formula counts remainder draws with replacement; for two arms
    # (at most one remainder) it equals the exact support size.
    assert obtain_num_permutations(declare_ra(N=7, prob=0.5)) == 35 + 35
    assert obtain_num_permutations(declare_ra(blocks=[1] * 3 + [2] * 4, prob=0.5)) == \
        (3 + 3) * 6


def test_permutation_matrix_samples_when_too_many():
    d = declare_ra(N=30, m=15)
    pm = obtain_permutation_matrix(d, maximum_permutations=50, seed=1)
    assert pm.shape == (30, 50)
    assert np.all(pm.sum(axis=0) == 15)
