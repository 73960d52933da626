"""n copies of one dataset (RepeatedColumns) against the same copies made plainly.

``Batch.concat([one] * n)`` holds its columns as the one dataset's values, tiled when
read; every operation on it must give what it gives on the plainly tiled batch, bit for
bit: columns, row selection, group indexes, assignment plans and draws, inquiries.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.assign._declaration import build_plan
from declaredesign.batch import Batch, RepeatedColumns
from declaredesign.design.steps.inquiry import InquiryStep

N_SIMS = 7


def one_dataset(n_rows: int = 43, seed: int = 0) -> Batch:
    """A population with string IDs of different widths, NA values and an ID column."""
    rng = np.random.default_rng(seed)
    cluster = np.sort(np.arange(n_rows) % 11 + 1)      # 11 clusters of 3 rows or more
    y = rng.normal(size=n_rows)
    y[[3, 17]] = np.nan
    label = np.array([str(10 ** (i % 4)) for i in range(n_rows)], dtype=object)
    label[5] = None
    return Batch({
        "block": np.where(cluster < 6, "b1", "b22").astype(object),
        "cluster": np.array([f"c{c}" for c in cluster], dtype=object),
        "label": label,
        "x": rng.integers(0, 2, size=n_rows),
        "y": y,
        "u": rng.uniform(size=n_rows),
        "unit": np.arange(1, n_rows + 1),
    }, np.zeros(n_rows, dtype=np.int64), 1, id_columns=["unit"])


def plain_copies(one: Batch, n: int) -> Batch:
    """The copies made the plain way: every column tiled."""
    return Batch({k: np.tile(v, n) for k, v in one.columns.items()},
                 np.repeat(np.arange(n, dtype=np.int64), one.n_rows), n, one.id_columns)


def assert_same_batch(a: Batch, b: Batch) -> None:
    assert a.n_sims == b.n_sims and a.names == b.names and a.id_columns == b.id_columns
    np.testing.assert_array_equal(a.sim, b.sim)
    for name in a.names:
        assert a[name].dtype == b[name].dtype, name
        pd.testing.assert_series_equal(pd.Series(a[name]), pd.Series(b[name]), obj=name,
                                       check_exact=True)
    pd.testing.assert_frame_equal(a.to_pandas(), b.to_pandas(), check_exact=True)


def assert_same_groups(a: Batch, b: Batch, *names: str) -> None:
    ga, gb = a.groups(*names), b.groups(*names)
    np.testing.assert_array_equal(ga.codes, gb.codes)
    np.testing.assert_array_equal(ga.group_sim, gb.group_sim)
    assert ga.n_sims == gb.n_sims


def test_repeated_columns_are_the_tiled_columns():
    one = one_dataset()
    rep = Batch.concat([one] * N_SIMS)
    assert isinstance(rep.columns, RepeatedColumns)
    assert rep.repeated() is one
    assert_same_batch(rep, plain_copies(one, N_SIMS))
    assert set(rep.columns) == set(one.columns) and "y" in rep and "nope" not in rep


@pytest.mark.parametrize("names", [(), ("cluster",), ("block",), ("block", "cluster"),
                                   ("label",), ("unit",), ("x", "block")])
def test_group_indexes_match_before_and_after_selecting_rows(names):
    one = one_dataset()
    rep, plain = Batch.concat([one] * N_SIMS), plain_copies(one, N_SIMS)
    assert_same_groups(rep, plain, *names)
    keep = np.random.default_rng(1).random(rep.n_rows) < 0.4
    # asked before and after the parent's index is made
    for a, b in ((Batch.concat([one] * N_SIMS).take(keep), plain.take(keep)),
                 (rep.take(keep), plain.take(keep))):
        assert_same_groups(a, b, *names)
        again = np.random.default_rng(2).random(a.n_rows) < 0.5
        assert_same_groups(a.take(again), b.take(again), *names)


def test_with_columns_drop_and_take_keep_the_copies_equal():
    one = one_dataset()
    rep, plain = Batch.concat([one] * N_SIMS), plain_copies(one, N_SIMS)
    z = np.arange(rep.n_rows) % 3
    rep2, plain2 = rep.with_columns(z=z, y=1.5), plain.with_columns(z=z, y=1.5)
    assert rep2.repeated() is None and rep.drop(["x"]).repeated() is not None
    assert_same_batch(rep2, plain2)
    assert_same_batch(rep.drop(["x", "label"]), plain.drop(["x", "label"]))
    assert rep.drop(["x"]).repeated().names == [n for n in one.names if n != "x"]
    keep = np.random.default_rng(3).random(rep.n_rows) < 0.3
    assert_same_batch(rep2.take(keep), plain2.take(keep))
    assert_same_batch(rep.take(np.flatnonzero(keep)), plain.take(keep))
    assert_same_batch(rep.select_sims([3, 1]), plain.select_sims([3, 1]))
    assert_same_groups(rep2.take(keep), plain2.take(keep), "z", "cluster")
    # rows selected twice (indexes composed), with a column added in between
    again = np.random.default_rng(4).random(int(keep.sum())) < 0.6
    w = np.arange(int(keep.sum()), dtype=float)
    assert_same_batch(rep2.take(keep).with_columns(w=w).take(again),
                      plain2.take(keep).with_columns(w=w).take(again))
    assert rep2.take(keep).repeated() is None


def test_an_empty_dataset_repeated():
    one = Batch({"g": np.zeros(0, dtype=object), "y": np.zeros(0)}, np.zeros(0, dtype=int), 1)
    rep = Batch.concat([one] * 3)
    assert rep.n_rows == 0 and rep.n_sims == 3
    assert_same_batch(rep, plain_copies(one, 3))
    assert_same_groups(rep, plain_copies(one, 3), "g")
    assert rep.take(np.zeros(0, dtype=bool)).n_rows == 0


def declarations():
    return [
        dd.complete_ra(m=20),
        dd.simple_ra(prob=0.3),
        dd.block_ra(blocks="block", prob=0.5),
        dd.block_ra(blocks="block", block_m={"b1": 3, "b22": 4}),
        dd.cluster_ra(clusters="cluster", m=4),
        dd.block_and_cluster_ra(blocks="block", clusters="cluster"),
        dd.complete_ra(conditions=["a", "b", "c"], m_each=[10, 20, 13]),
        dd.simple_ra(prob_unit="u"),
        dd.strata_rs(strata="cluster", n=2),
        dd.strata_and_cluster_rs(strata="block", clusters="cluster", n=2),
        dd.cluster_rs(clusters="cluster", prob=0.4),
        dd.complete_rs(n=9),
    ]


@pytest.mark.parametrize("decl", declarations(), ids=repr)
def test_plans_and_draws_on_copies_equal_the_plain_ones(decl):
    one = one_dataset()
    rep, plain = Batch.concat([one] * N_SIMS), plain_copies(one, N_SIMS)
    p, q = decl.plan(rep), build_plan(decl, plain)
    np.testing.assert_array_equal(p.row_units(), q.row_units())
    np.testing.assert_array_equal(p.row_prob_matrix(), q.row_prob_matrix())
    for field in ("n_sims", "conditions", "unit_group", "group_sim", "group_n", "simple",
                  "unit_prob", "floor", "weight", "rem", "reported", "rows_are_units"):
        a, b = getattr(p, field), getattr(q, field)
        assert (a is None) == (b is None), field
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=field)
            assert np.asarray(a).dtype == np.asarray(b).dtype, field
    drawn = decl.conduct_batch(rep, np.random.default_rng(5))
    np.testing.assert_array_equal(drawn, decl.conduct_batch(plain, np.random.default_rng(5)))
    assert drawn.dtype == decl.conduct_batch(plain, np.random.default_rng(5)).dtype
    np.testing.assert_array_equal(p.per_row(p.draw_units(np.random.default_rng(5))),
                                  q.per_row(q.draw_units(np.random.default_rng(5))))
    np.testing.assert_array_equal(decl.probabilities_batch(rep, drawn),
                                  decl.probabilities_batch(plain, drawn))


def test_a_plan_is_not_taken_from_copies_once_a_column_changes():
    one = one_dataset()
    rep = Batch.concat([one] * N_SIMS)
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 2, size=rep.n_rows)   # differs between simulations
    decl = dd.block_ra(blocks="cluster")
    changed = rep.with_columns(cluster=blocks)
    np.testing.assert_array_equal(
        decl.conduct_batch(changed, np.random.default_rng(1)),
        decl.conduct_batch(plain_copies(one, N_SIMS).with_columns(cluster=blocks),
                           np.random.default_rng(1)))


INQUIRIES = {
    "mean": "mean(y)", "mean_na": "mean(y, na_rm=True)", "sd": "sd(u)", "var": "var(u)",
    "median": "median(u)", "q": "quantile(u, probs=0.3)", "min": "min(u)", "max": "max(y)",
    "n": "n()", "sum_mask": "sum(u[x == 1])", "mean_cluster": "mean(u[cluster == 'c3'])",
    "empty": "mean(u[u > 2])", "elementwise": "mean(exp(u) + log(u) * sqrt(u))",
    "pnorm": "mean(pnorm(u) - qnorm(u / 2))", "N": "mean(N + u)", "np": "np.std(u)",
    "const": 3, "label": "sum(label == '100', na_rm=True)",
}


@pytest.mark.parametrize("n_rows", [43, 4000, 4003])
def test_inquiries_on_copies_equal_the_plain_ones(n_rows):
    one = one_dataset(n_rows)
    rep, plain = Batch.concat([one] * N_SIMS), plain_copies(one, N_SIMS)
    for step in (InquiryStep(INQUIRIES), InquiryStep(INQUIRIES, subset="x == 1")):
        got = step.compute(rep, np.random.default_rng(0))
        pd.testing.assert_frame_equal(got, step.compute(plain, np.random.default_rng(0)),
                                      check_exact=True)
        assert rep.columns._entries["u"]._made is None     # computed on the one dataset
        # the plain path gives every copy the same value too
        values = got["estimand"].to_numpy().reshape(len(INQUIRIES), N_SIMS)
        np.testing.assert_array_equal(values, np.repeat(values[:, :1], N_SIMS, axis=1))


def test_random_and_accumulating_inquiries_are_computed_per_simulation():
    one = one_dataset()
    rep, plain = Batch.concat([one] * N_SIMS), plain_copies(one, N_SIMS)
    step = InquiryStep(draw="mean(rnorm(N))", acc="max(cumsum(u))", vec="mean(c(1, 2) + 0)")
    got = step.compute(rep, np.random.default_rng(0))
    pd.testing.assert_frame_equal(got, step.compute(plain, np.random.default_rng(0)),
                                      check_exact=True)
    draws = got.loc[got["inquiry"] == "draw", "estimand"]
    assert draws.nunique() == N_SIMS          # a new draw in every simulation


def test_an_inquiry_error_is_the_plain_paths():
    one = one_dataset()
    rep, plain = Batch.concat([one] * N_SIMS), plain_copies(one, N_SIMS)
    step = InquiryStep(bad="y + 1")
    with pytest.raises(dd.DeclareDesignError) as on_copies:
        step.compute(rep, np.random.default_rng(0))
    with pytest.raises(dd.DeclareDesignError) as on_plain:
        step.compute(plain, np.random.default_rng(0))
    assert str(on_copies.value) == str(on_plain.value)
