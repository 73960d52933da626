"""The batched kernels: invariants per simulation, calibration, determinism, and the
batch-of-one path against the DataFrame path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from declaredesign.assign import (
    block_and_cluster_ra,
    block_ra,
    cluster_ra,
    cluster_rs,
    complete_ra,
    declare_ra,
    simple_ra,
    strata_rs,
)
from declaredesign.batch import Batch


def multilevel_batch(n_sims: int, seed: int = 0) -> Batch:
    """Sims with a random number of classes (IDs 1..n within each sim), random class
    sizes, and two schools (blocks) that classes nest in."""
    rng = np.random.default_rng(seed)
    sims, cls, school = [], [], []
    for s in range(n_sims):
        n_cls = int(rng.integers(4, 9))
        sizes = rng.integers(1, 6, size=n_cls)
        c = np.repeat(np.arange(1, n_cls + 1), sizes)
        sims.append(np.full(c.size, s))
        cls.append(c)
        school.append(np.where(c <= n_cls // 2, 1, 2))
    return Batch({"cls": np.concatenate(cls), "school": np.concatenate(school)},
                 np.concatenate(sims), n_sims, id_columns=["cls", "school"])


def per_sim(batch: Batch):
    st = batch.starts()
    for s in range(batch.n_sims):
        yield s, slice(st[s], st[s + 1])


def test_cluster_ra_batch_invariants():
    b = multilevel_batch(300)
    d = cluster_ra(clusters="cls", prob=0.5)
    z = d.conduct_batch(b, np.random.default_rng(1))
    assert z.shape == (b.n_rows,) and set(np.unique(z)) <= {0, 1}
    for _, sl in per_sim(b):
        cls, zz = b["cls"][sl], z[sl]
        first = {c: v for c, v in zip(cls[::-1], zz[::-1], strict=True)}
        assert all(first[c] == v for c, v in zip(cls, zz, strict=True))  # cluster-constant
        n_cls = cls.max()
        treated = sum(first.values())
        assert treated in (np.floor(n_cls / 2), np.ceil(n_cls / 2))


def test_block_and_cluster_ra_batch_invariants_and_probabilities():
    b = multilevel_batch(40, seed=3)
    d = block_and_cluster_ra(blocks="school", clusters="cls", m=1)
    rng = np.random.default_rng(5)
    z = d.conduct_batch(b, rng)
    p = d.probabilities_batch(b, z)
    for _, sl in per_sim(b):
        df = pd.DataFrame({"cls": b["cls"][sl], "school": b["school"][sl], "z": z[sl]})
        per_cluster = df.groupby("cls").agg(z=("z", "first"), zs=("z", "nunique"),
                                            school=("school", "first"))
        assert (per_cluster.zs == 1).all()
        assert (per_cluster.groupby("school").z.sum() == 1).all()
        n_cls = per_cluster.groupby("school").size()
        expected = np.where(df.z == 1, 1 / n_cls[df.school].to_numpy(),
                            1 - 1 / n_cls[df.school].to_numpy())
        np.testing.assert_allclose(p[sl], expected, rtol=0, atol=1e-15)


def test_block_ra_batch_exact_m_per_block_multi_arm():
    b = multilevel_batch(100, seed=4)
    d = block_ra(blocks="cls", prob_each=[0.2, 0.3, 0.5], conditions=["a", "b", "c"])
    z = d.conduct_batch(b, np.random.default_rng(2))
    assert set(np.unique(z)) <= {"a", "b", "c"}
    for _, sl in per_sim(b):
        for c in np.unique(b["cls"][sl]):
            zz = z[sl][b["cls"][sl] == c]
            n = zz.size
            for lab, p in zip("abc", [0.2, 0.3, 0.5], strict=True):
                k = (zz == lab).sum()
                assert np.floor(n * p) <= k <= np.floor(n * p) + 1


def test_batch_of_one_matches_dataframe_path():
    df = pd.DataFrame({"cls": np.repeat([3, 1, 2, 5], [2, 3, 1, 4]),
                       "blk": np.repeat([1, 1, 2, 2], [2, 3, 1, 4])})
    for d in [cluster_ra(clusters="cls", prob=0.5), block_ra(blocks="blk", prob=0.3),
              complete_ra(m=4), simple_ra(prob=0.4),
              block_and_cluster_ra(blocks="blk", clusters="cls", prob=0.5),
              strata_rs(strata="blk", n=1), cluster_rs(clusters="cls", n=2)]:
        a = d.conduct(df, seed=11)
        b = d.conduct_batch(Batch.from_pandas(df), np.random.default_rng(11))
        assert a.tolist() == b.tolist(), d
        np.testing.assert_array_equal(d.probabilities_batch(Batch.from_pandas(df), b),
                                      d.condition_probabilities(a, df))


def test_batch_determinism_and_independence_across_sims():
    b = multilevel_batch(50, seed=7)
    d = cluster_ra(clusters="cls", prob=0.5)
    z1 = d.conduct_batch(b, np.random.default_rng(9))
    z2 = d.conduct_batch(b, np.random.default_rng(9))
    assert z1.tolist() == z2.tolist()
    z3 = d.conduct_batch(b, np.random.default_rng(10))
    assert z1.tolist() != z3.tolist()


def test_same_data_in_every_sim_gives_distinct_draws():
    n_sims, n = 400, 12
    b = Batch({}, np.repeat(np.arange(n_sims), n), n_sims)
    z = complete_ra(m=6).conduct_batch(b, np.random.default_rng(0)).reshape(n_sims, n)
    assert np.all(z.sum(axis=1) == 6)
    assert len({tuple(r) for r in z.tolist()}) > 300


@pytest.mark.parametrize("decl, sizes", [
    (complete_ra(prob=0.3), [7, 7, 10, 3]),
    (block_ra(blocks="blk", prob=0.9), [5, 5, 5, 5]),
    (cluster_ra(clusters="cls", prob=0.9), [6, 6, 6, 6]),
    (simple_ra(prob_each=[0.1, 0.2, 0.7]), [4, 4, 4, 4]),
    (complete_ra(prob_each=[0.5, 0.3, 0.2]), [3, 3, 9, 9]),
])
def test_empirical_frequencies_match_probabilities(decl, sizes):
    """Many sims at once: the share of each condition per row position matches the
    probability matrix within a binomial-SE tolerance."""
    reps = 3000
    sizes = np.tile(sizes, reps)
    n_sims = sizes.size
    sim = np.repeat(np.arange(n_sims), sizes)
    pos = np.concatenate([np.arange(k) for k in sizes])
    b = Batch({"blk": (pos >= 2).astype(int) + 1, "cls": pos // 2 + 1}, sim, n_sims)
    z = decl.conduct_batch(b, np.random.default_rng(123))
    plan = decl.plan(b)
    pm = plan.row_prob_matrix()
    # Group rows by (sim size, position): same design cell, same probabilities.
    size_of_row = sizes[sim]
    for cond_i, cond in enumerate(plan.conditions):
        hit = (z == cond).astype(float)
        key = size_of_row * 100 + pos
        for kv in np.unique(key):
            rows = key == kv
            p = pm[rows, cond_i]
            assert np.ptp(p) == 0
            se = np.sqrt(p[0] * (1 - p[0]) / rows.sum())
            assert abs(hit[rows].mean() - p[0]) <= 4.5 * se + 1e-12, (cond, kv)


def test_probabilities_batch_simple_and_labels():
    b = Batch({}, np.repeat([0, 1], [3, 2]), 2)
    d = declare_ra(prob_each=[0.2, 0.8], conditions=["x", "y"], simple=True)
    z = d.conduct_batch(b, np.random.default_rng(1))
    p = d.probabilities_batch(b, z)
    np.testing.assert_allclose(p, np.where(z == "x", 0.2, 0.8))


def test_declared_n_must_match_data():
    b = Batch({}, np.repeat([0, 1], [3, 2]), 2)
    with pytest.raises(ValueError, match=r"N must be equal to the number of rows"):
        declare_ra(N=3, m=1).conduct_batch(b, np.random.default_rng(1))


def test_conduct_does_not_mutate_inputs():
    b = multilevel_batch(5, seed=1)
    before = {k: v.copy() for k, v in b.columns.items()}
    blocks = np.array([2, 1, 2, 1])
    d = block_and_cluster_ra(blocks="school", clusters="cls", prob=0.5)
    d.conduct_batch(b, np.random.default_rng(0))
    block_ra(blocks=blocks, prob=0.5, seed=1)
    assert all(np.array_equal(before[k], b[k]) for k in before)
    assert blocks.tolist() == [2, 1, 2, 1]


def test_forum_design_cluster_assignment_on_r_data(seed_data):
    """The forum's assignment, cluster_ra(clusters=class, prob=.5), on R's dataset with
    fabricatr's zero-padded string IDs: 10 classes, 5 treated, constant within class."""
    d = cluster_ra(clusters="class", prob=0.5)
    z = d.conduct(seed_data, seed=20240601)
    per_class = pd.Series(z).groupby(seed_data["class"].to_numpy()).agg(["min", "max"])
    assert len(per_class) == 10 and (per_class["min"] == per_class["max"]).all()
    assert per_class["min"].sum() == 5
    np.testing.assert_allclose(d.condition_probabilities(z, seed_data), 0.5)
    # R's own draw in the fixture satisfies the same invariants.
    r = seed_data.groupby("class")["treatment"].agg(["min", "max"])
    assert (r["min"] == r["max"]).all() and r["min"].sum() == 5


def test_plan_reused_for_batch_with_added_columns():
    b = multilevel_batch(10, seed=2)
    d = cluster_ra(clusters="cls", prob=0.5)
    z = d.conduct_batch(b, np.random.default_rng(0))
    plan = d.plan(b)
    b2 = b.with_columns(Z=z)
    assert d.plan(b2) is plan
    np.testing.assert_allclose(d.probabilities_batch(b2, b2["Z"]), 0.5)
    b3 = b.with_columns(cls=b["cls"][::-1].copy())
    assert d.plan(b3) is not plan
