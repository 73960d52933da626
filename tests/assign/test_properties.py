"""Hypothesis property tests: the invariants randomizr guarantees, for any inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from declaredesign.assign import (
    block_ra,
    block_ra_probabilities,
    cluster_ra,
    complete_ra,
    complete_ra_probabilities,
    complete_rs,
    declare_ra,
)
from declaredesign.batch import Batch

seeds = st.integers(0, 2**32 - 1)


@given(N=st.integers(1, 60), data=st.data(), seed=seeds)
def test_complete_ra_exact_m(N, data, seed):
    m = data.draw(st.integers(0, N))
    z = complete_ra(N=N, m=m, seed=seed)
    assert z.sum() == m and set(np.unique(z)) <= {0, 1}


@given(N=st.integers(1, 60), prob=st.floats(0, 1), seed=seeds)
def test_complete_ra_prob_treats_floor_or_ceil(N, prob, seed):
    k = int(complete_ra(N=N, prob=prob, seed=seed).sum())
    fl, ce = np.floor(N * prob), np.ceil(N * prob)
    if ce == N and N > 1:
        assert k == fl
    else:
        assert k in (fl, ce)
    p = complete_ra_probabilities(N=N, prob=prob)["prob_1"].to_numpy()
    assert np.all(p == p[0]) and 0 <= p[0] <= 1


@given(sizes=st.lists(st.integers(1, 8), min_size=1, max_size=6), data=st.data(), seed=seeds)
def test_block_ra_exact_m_per_block(sizes, data, seed):
    blocks = np.repeat(np.arange(len(sizes)), sizes)
    block_m = [data.draw(st.integers(0, s)) for s in sizes]
    z = block_ra(blocks=blocks, block_m=block_m, seed=seed)
    assert [int(z[blocks == b].sum()) for b in range(len(sizes))] == block_m
    p = block_ra_probabilities(blocks=blocks, block_m=block_m)["prob_1"].to_numpy()
    np.testing.assert_allclose(p, (np.array(block_m) / np.array(sizes))[blocks])


@given(clusters=st.lists(st.integers(0, 9), min_size=1, max_size=40),
       prob=st.floats(0, 1), seed=seeds, simple=st.booleans())
def test_cluster_ra_constant_within_clusters(clusters, prob, seed, simple):
    clusters = np.array(clusters)
    z = cluster_ra(clusters=clusters, prob=prob, simple=simple, seed=seed)
    for c in np.unique(clusters):
        assert np.ptp(z[clusters == c]) == 0


@given(N=st.integers(1, 30), k=st.integers(2, 5), data=st.data(), seed=seeds)
def test_multi_arm_conditions_in_declared_set(N, k, data, seed):
    w = np.array(data.draw(st.lists(st.integers(1, 10), min_size=k, max_size=k)), float)
    pe = w / w.sum()
    conds = [f"c{i}" for i in range(k)]
    z = complete_ra(N=N, prob_each=pe, conditions=conds, seed=seed)
    assert set(z.tolist()) <= set(conds)
    counts = np.array([(z == c).sum() for c in conds])
    assert np.all(counts >= np.floor(N * pe)) and np.all(counts <= np.floor(N * pe) + 1)


@given(N=st.integers(1, 40), prob=st.floats(0, 1), seed=seeds)
def test_complete_rs_size(N, prob, seed):
    n = int(complete_rs(N=N, prob=prob, seed=seed).sum())
    fl, ce = np.floor(N * prob), np.ceil(N * prob)
    assert n == fl if (ce == N and N > 1) else n in (fl, ce)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), seed=seeds)
def test_batched_kernel_respects_invariants_per_sim(data, seed):
    n_sims = data.draw(st.integers(1, 8))
    sims, cls, blk = [], [], []
    for s in range(n_sims):
        n_cls = data.draw(st.integers(1, 6))
        sizes = data.draw(st.lists(st.integers(1, 4), min_size=n_cls, max_size=n_cls))
        c = np.repeat(np.arange(1, n_cls + 1), sizes)
        sims.append(np.full(c.size, s))
        cls.append(c)
        blk.append((c % 2) + 1)
    b = Batch({"cls": np.concatenate(cls), "blk": np.concatenate(blk)},
              np.concatenate(sims), n_sims)
    m = data.draw(st.integers(0, 1))
    d = declare_ra(blocks="blk", clusters="cls", m=m)
    z = d.conduct_batch(b, np.random.default_rng(seed))
    p = d.probabilities_batch(b, z)
    assert np.all((p >= 0) & (p <= 1))
    st_ = b.starts()
    for s in range(n_sims):
        sl = slice(st_[s], st_[s + 1])
        cc, bb, zz = b["cls"][sl], b["blk"][sl], z[sl]
        for c in np.unique(cc):
            assert np.ptp(zz[cc == c]) == 0
        for k in np.unique(bb):
            first = {c: v for c, v in zip(cc[bb == k], zz[bb == k], strict=True)}
            assert sum(first.values()) == m
