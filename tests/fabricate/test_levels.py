"""Levels, IDs and fabricate(): shapes and conventions of fabricatr, batched."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from declaredesign import Batch, DeclarationError, FormulaError
from declaredesign.fabricate import (
    add_level,
    cross_levels,
    fabricate,
    fabricate_batch,
    join_using,
    link_levels,
    modify_level,
    nest_level,
    normal,
    poisson,
    uniform,
)
from declaredesign.fabricate._levels import _spreader


def forum_levels():
    return dict(
        school=add_level(N=1, school_effect=normal(0, 0.001)),
        classroom=add_level(N=10, class_effect=normal(0, 0.001),
                            n_students=poisson(20) + 5),
        student=add_level(N="n_students", test_ability=uniform(-0.01, 0.01),
                          student_baseline=uniform(0.4, 0.8)),
        test=add_level(N=3, test_effect=normal("test_ability", 0.001)),
    )


# ------------------------------------------------------------------- IDs/shapes
def test_single_level_has_id_column_named_id():
    df = fabricate(N=5, x=normal(), y="x * 2", seed=1)
    assert df.columns.tolist() == ["ID", "x", "y"]
    assert df["ID"].tolist() == ["1", "2", "3", "4", "5"]
    np.testing.assert_array_equal(df["y"], df["x"] * 2)
    assert fabricate(12, seed=1)["ID"].iloc[[0, -1]].tolist() == ["01", "12"]
    assert fabricate(N=3, ID_label="unit", seed=1).columns.tolist() == ["unit"]


def test_nested_ids_are_numbered_across_parents():
    # fabricatr: N = c(2, 12, 1) at a nested level gives "01".."15".
    df = fabricate(a=add_level(N=3), b=add_level(N=[2, 12, 1]), seed=1)
    assert df["b"].tolist() == [f"{i:02d}" for i in range(1, 16)]
    assert df["a"].tolist() == ["1"] * 2 + ["2"] * 12 + ["3"]
    assert df.columns.tolist() == ["a", "b"]


def test_forum_model_shape_and_structure():
    df = fabricate(**forum_levels(), seed=7)
    assert df.columns.tolist() == ["school", "school_effect", "classroom", "class_effect",
                                   "n_students", "student", "test_ability",
                                   "student_baseline", "test", "test_effect"]
    n_students = df.groupby("classroom")["n_students"].first()
    assert (n_students >= 5).all()
    assert len(df) == 3 * n_students.sum()
    assert df["classroom"].iloc[0] == "01" and df["classroom"].iloc[-1] == "10"
    width = len(str(n_students.sum()))
    assert df["student"].iloc[-1] == str(n_students.sum()).zfill(width)
    # class_effect constant within class, test_ability within student, 3 tests each
    assert (df.groupby("classroom")["class_effect"].nunique() == 1).all()
    assert (df.groupby("student")["test_ability"].nunique() == 1).all()
    assert (df.groupby("student").size() == 3).all()
    assert (df.groupby("classroom")["student"].nunique() == n_students).all()


def test_ids_match_r_reference_structure(seed_data):
    # Nest with R's class sizes: the ID strings must equal fabricatr's exactly.
    sizes = seed_data.groupby("class")["student"].nunique().to_numpy()
    df = fabricate(school=add_level(N=1), **{"class": add_level(N=10)},
                   student=add_level(N=sizes), test=add_level(N=3), seed=1)
    for col in ("school", "class", "student", "test"):
        assert df[col].tolist() == seed_data[col].tolist()


def test_determinism_and_seed_sensitivity():
    a = fabricate(**forum_levels(), seed=3)
    b = fabricate(**forum_levels(), seed=3)
    pd.testing.assert_frame_equal(a, b)
    c = fabricate(**forum_levels(), seed=4)
    assert not a["class_effect"].equals(c["class_effect"]) or len(a) != len(c)


# ------------------------------------------------------------------------ batch
def test_batch_levels_per_sim():
    rng = np.random.default_rng(0)
    b = fabricate_batch(forum_levels(), n_sims=3, rng=rng)
    assert b.n_sims == 3
    assert b.id_columns == {"school", "classroom", "student", "test"}
    for s, df in enumerate(b.split()):
        assert len(df) == b.sim_sizes()[s]
        sizes = df.groupby("classroom")["n_students"].first()
        assert len(df) == 3 * sizes.sum()
        assert df["classroom"].nunique() == 10
        # IDs restart at 1 in every simulation
        assert int(df["student"].iloc[0]) == 1
        assert int(df["student"].iloc[-1]) == sizes.sum()
        assert int(df["test"].iloc[-1]) == len(df)
    # simulations are independent draws
    cls = [df.groupby("classroom")["class_effect"].first().to_numpy() for df in b.split()]
    assert not np.allclose(cls[0], cls[1])


def test_batch_is_deterministic_given_rng():
    a = fabricate_batch(forum_levels(), n_sims=4, rng=np.random.default_rng(9))
    b = fabricate_batch(forum_levels(), n_sims=4, rng=np.random.default_rng(9))
    for k in a.names:
        np.testing.assert_array_equal(a[k], b[k])


def test_n_variable_is_rows_of_level_per_sim():
    b = fabricate_batch({"c": add_level(N=2, k=poisson(3) + 1),
                         "s": add_level(N="k", n_here="N")},
                        n_sims=5, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(b["n_here"], b.sim_sizes()[b.sim])


def test_top_level_n_may_vary_per_sim():
    b = fabricate_batch({"u": add_level(N=poisson(50) + 1)}, n_sims=20,
                        rng=np.random.default_rng(3))
    sizes = b.sim_sizes()
    assert len(set(sizes.tolist())) > 1 and sizes.min() >= 1


def test_fixed_length_vector_recycled_per_parent():
    # fabricatr: fabricate(countries = add_level(N = 20),
    #                      cities = nest_level(N = 2, capital = c(TRUE, FALSE)))
    df = fabricate(countries=add_level(N=20),
                   cities=nest_level(N=2, capital=[True, False]), seed=1)
    assert df["capital"].tolist() == [True, False] * 20


def test_variables_see_earlier_ones_and_parent_columns():
    df = fabricate(a=add_level(N=2, x=[1.0, 2.0]),
                   b=add_level(N=2, y="x * 10", z="y + mean(x)"), seed=1)
    assert df["y"].tolist() == [10.0, 10.0, 20.0, 20.0]
    assert df["z"].tolist() == [11.5, 11.5, 21.5, 21.5]


def test_callable_variable():
    df = fabricate(N=3, x=[1.0, 2.0, 3.0], y=lambda d: d.x ** 2, seed=1)
    assert df["y"].tolist() == [1.0, 4.0, 9.0]


def test_data_argument_adds_id_and_variables():
    data = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    df = fabricate(data, y="x + 1", seed=1)
    assert df.columns.tolist() == ["x", "ID", "y"]
    assert df["ID"].tolist() == ["1", "2", "3"]
    # an existing 1..N column stops fabricatr from adding an ID
    data2 = pd.DataFrame({"id": ["1", "2", "3"], "x": [1.0, 2.0, 3.0]})
    assert fabricate(data=data2, y="x").columns.tolist() == ["id", "x", "y"]


def test_data_argument_with_nested_level():
    data = pd.DataFrame({"hh": ["1", "2"], "size": [2, 3]})
    df = fabricate(data=data, person=add_level(N="size", age=uniform(18, 80)), seed=1)
    assert df["hh"].tolist() == ["1", "1", "2", "2", "2"]
    assert df["person"].tolist() == ["1", "2", "3", "4", "5"]


def test_modify_level_by_groups():
    df = fabricate(a=add_level(N=2, x=[1.0, 5.0]), b=add_level(N=2, y="x"),
                   m=modify_level(by="a", centred="y - mean(y)", n_grp="N"), seed=1)
    assert df["centred"].tolist() == [0.0] * 4
    assert df["n_grp"].tolist() == [2] * 4
    df2 = fabricate(a=add_level(N=3, x=[1.0, 2.0, 6.0]), b=modify_level(c="x - mean(x)"))
    assert df2["c"].tolist() == [-2.0, -1.0, 3.0]


def test_modify_level_of_named_upper_level_in_batch():
    b = fabricate_batch({"a": add_level(N=2), "b": add_level(N=3),
                         "a2": modify_level(w=1.0)},
                        n_sims=2, rng=np.random.default_rng(1))
    assert "w" in b


def test_cross_levels_is_cartesian_per_sim():
    levels = dict(
        ps=add_level(N=3, ps_q=uniform(0, 1)),
        ss=add_level(N=2, ss_q=uniform(0, 1), nest=False),
        students=cross_levels(by=join_using("ps_q", "ss_q"), both="ps_q + ss_q"),
    )
    df = fabricate(**levels, seed=1)
    assert len(df) == 6
    assert df["ps"].tolist() == ["1", "2", "3"] * 2  # first hierarchy varies fastest
    assert df["ss"].tolist() == ["1"] * 3 + ["2"] * 3
    assert df["students"].tolist() == [str(i) for i in range(1, 7)]
    np.testing.assert_allclose(df["both"], df["ps_q"] + df["ss_q"])
    b = fabricate_batch({**levels, "ps": add_level(N=poisson(4) + 1, ps_q=uniform(0, 1))},
                        n_sims=6, rng=np.random.default_rng(2))
    per_sim_ps = [df["ps"].nunique() for df in b.split()]
    assert b.sim_sizes().tolist() == [2 * k for k in per_sim_ps]


def test_link_levels_draws_n_rows_and_correlates():
    levels = dict(
        a=add_level(N=50, qa=normal()),
        b=add_level(N=40, qb=normal(), nest=False),
        link=link_levels(N=4000, by=join_using("qa", "qb", rho=0.9)),
    )
    df = fabricate(**levels, seed=1)
    assert len(df) == 4000 and df["link"].iloc[-1] == "4000"
    assert np.corrcoef(df["qa"], df["qb"])[0, 1] > 0.7
    df0 = fabricate(**{**levels, "link": link_levels(N=4000, by=join_using("qa", "qb"))},
                    seed=1)
    assert abs(np.corrcoef(df0["qa"], df0["qb"])[0, 1]) < 0.1


# ------------------------------------------------------------- specs and errors
def test_repr_and_frozen_and_pickle():
    spec = add_level(N=10, class_effect=normal(mean=0, sd=0.001))
    assert repr(spec) == "add_level(N=10, class_effect=normal(mean=0, sd=0.001))"
    assert repr(add_level(N=poisson(20) + 5, nest=False)) == \
        "add_level(N=poisson(lam=20) + 5, nest=False)"
    with pytest.raises(AttributeError):
        spec.N = 3
    again = pickle.loads(pickle.dumps(spec))
    assert repr(again) == repr(spec)
    assert spec.replace(N=5).N == 5 and spec.N == 10


@pytest.mark.parametrize("make,match", [
    (lambda: add_level(N=-1), r"add_level\(N=-1\): N must be a non-negative integer"),
    (lambda: add_level(N=2.5), "N must be a non-negative integer; got 2.5"),
    (lambda: add_level(N=True), "N must be"),
    (lambda: add_level(N={"a": 1}), "N must be"),
    (lambda: add_level(N=[1, -2]), "non-negative integers"),
    (lambda: add_level(N=3, x={"a": 1}), r"add_level\(x=<dict>\): x must be"),
    (lambda: add_level(N=3, nest="yes"), "nest must be True or False"),
    (lambda: nest_level(x=1), "N must be given"),
    (lambda: modify_level(by=3), "by must be"),
    (lambda: cross_levels(by=("a", "b")), "join_using"),
    (lambda: link_levels(N=0, by=join_using("a", "b")), "positive integer"),
    (lambda: join_using("a", "a"), "distinct"),
])
def test_declaration_errors(make, match):
    with pytest.raises(DeclarationError, match=match):
        make()


def test_runtime_errors_name_the_level():
    with pytest.raises(DeclarationError, match="level 'b'.*got 1.5"):
        fabricate(a=add_level(N=2, k=1.5), b=add_level(N="k"), seed=1)
    with pytest.raises(FormulaError, match="b: y.*'nope'.*available columns are: a, b"):
        fabricate(a=add_level(N=2), b=add_level(N=2, y="nope + 1"), seed=1)
    with pytest.raises(DeclarationError, match="all be level calls"):
        fabricate(a=add_level(N=2), x=normal(), seed=1)
    with pytest.raises(DeclarationError, match="exactly one"):
        fabricate(a=add_level(N=2), N=3)
    with pytest.raises(DeclarationError, match="one per row"):
        fabricate(a=add_level(N=3), b=add_level(N=[1, 2]))
    with pytest.raises(DeclarationError, match="cannot be the top"):
        fabricate(a=nest_level(N=3))


# ------------------------------------------------------------ property tests
@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), min_size=1, max_size=5), min_size=1,
                max_size=4))
def test_nested_counts_sum_and_ids_are_consecutive(per_sim_counts):
    # Each simulation gets its own number of parents and children per parent.
    n_sims = len(per_sim_counts)
    parents = np.array([len(c) for c in per_sim_counts])
    counts = np.concatenate([np.array(c) for c in per_sim_counts])
    levels = {"p": add_level(N=lambda d: parents[d.sim]),
              "c": add_level(N=counts)}
    b = fabricate_batch({"p": add_level(N=parents.max())}, n_sims=n_sims,
                        rng=np.random.default_rng(0))
    # Build the parent frame with the exact per-sim sizes instead.
    sim = np.repeat(np.arange(n_sims), parents)
    pid = np.concatenate([np.arange(1, k + 1) for k in parents])
    parent = Batch({"p": pid}, sim, n_sims, ("p",))
    b = fabricate_batch({"c": levels["c"]}, n_sims=n_sims, rng=np.random.default_rng(0),
                        batch=parent)
    totals = [sum(c) for c in per_sim_counts]
    assert b.sim_sizes().tolist() == totals
    for s in range(n_sims):
        ids = b["c"][b.sim == s]
        assert ids.tolist() == list(range(1, totals[s] + 1))
        reps = np.bincount(b["p"][b.sim == s], minlength=len(per_sim_counts[s]) + 1)[1:]
        assert reps.tolist() == per_sim_counts[s]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 10_000))
def test_batch_of_sims_has_per_sim_structure(n_sims, n_classes, seed):
    b = fabricate_batch({"cl": add_level(N=n_classes, k=poisson(2)),
                         "st": add_level(N="k", y=normal())},
                        n_sims=n_sims, rng=np.random.default_rng(seed))
    for df in b.split():
        k = df.groupby("cl")["k"].first() if len(df) else pd.Series([], dtype=int)
        assert len(df) == k.sum()


def test_forum_model_thousand_sims_shape():
    b = fabricate_batch(forum_levels(), n_sims=1000, rng=np.random.default_rng(1))
    assert b.n_sims == 1000 and b.n_rows > 600_000
    assert np.all(np.diff(b.sim) >= 0)


def test_deterministic_design_batch_equals_standalone_per_sim():
    levels = dict(a=add_level(N=3, x=[1.0, 2.0, 4.0]),
                  b=add_level(N="x", y="x - mean(x)", n_b="N"))
    single = fabricate(**levels, seed=1)
    batch = fabricate_batch(levels, n_sims=3, rng=np.random.default_rng(0))
    for df in batch.split():
        pd.testing.assert_frame_equal(df, single)


def test_fabricate_does_not_mutate_data():
    data = pd.DataFrame({"x": [1.0, 2.0]})
    before = data.copy()
    fabricate(data, y="x + 1", z=normal(), seed=1)
    fabricate(data=data, sub=add_level(N=2, w=normal()), seed=1)
    pd.testing.assert_frame_equal(data, before)


@pytest.mark.parametrize("counts", [
    np.full(7, 3), np.array([0, 20, 31, 17, 0, 25]), np.array([1, 0, 2, 3, 1]),
    np.zeros(4, dtype=np.int64), np.zeros(0, dtype=np.int64)])
def test_children_repeat_parent_rows_as_a_gather_would(counts):
    """One count, large counts (np.repeat) and a few children each (gather) agree."""
    counts = counts.astype(np.int64)
    parent = np.arange(counts.size) * 1.5
    idx = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    spread = _spreader(counts, counts.size)
    for v in (parent, np.arange(counts.size, dtype=np.int64), parent.astype(object)):
        out = spread(v)
        assert out.dtype == v.dtype
        np.testing.assert_array_equal(out, v[idx])
