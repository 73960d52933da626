"""Stacking per-simulation DataFrames from their arrays equals pandas' concatenation.

:func:`declaredesign.batch.stack_frames` is the fast path under ``Batch.from_frames``
(data-step handlers) and ``fit_per_simulation`` (handler estimators): each column must
be exactly what ``pd.concat(frames, ignore_index=True)`` gives, and anything it does not
do exactly must be left to pandas (None).
"""

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch, stack_frames


def _frame_of(arrays):
    return pd.DataFrame({k: pd.Series(a, dtype=a.dtype, copy=False) for k, a in arrays.items()})


def _assert_same_as_concat(frames):
    got = stack_frames(frames)
    assert got is not None
    ref = pd.concat(frames, ignore_index=True)
    assert list(got) == list(ref.columns)
    if not got:     # frames without columns: only their lengths count
        return
    for name in ref.columns:
        assert got[name].dtype == ref[name].dtype, name
    pd.testing.assert_frame_equal(_frame_of(got), ref, check_exact=True,
                                  check_column_type=False)


def _frames(make, n=5):
    rng = np.random.default_rng(0)
    return [make(rng, k) for k in range(n)]


KINDS = {
    "numbers": lambda rng, k: pd.DataFrame({"x": rng.normal(size=k + 1),
                                            "n": np.arange(k + 1), "b": rng.random(k + 1) > .5}),
    "text": lambda rng, k: pd.DataFrame({"s": [f"v{i}" for i in range(k + 1)],
                                         "y": np.arange(k + 1.0)}),
    "text_missing": lambda rng, k: pd.DataFrame({"s": ["a", None][: k % 2 + 1]}),
    "object": lambda rng, k: pd.DataFrame({"o": pd.Series(["a", None, 1][: k % 3 + 1],
                                                          dtype=object)}),
    "nullable": lambda rng, k: pd.DataFrame({"i": pd.array([1, None][: k % 2 + 1],
                                                           dtype="Int64")}),
    "categorical": lambda rng, k: pd.DataFrame({"c": pd.Categorical(["a", "b"][: k % 2 + 1],
                                                                    categories=["a", "b"])}),
    "datetime_tz": lambda rng, k: pd.DataFrame({"t": pd.date_range(
        "2020-01-01", periods=k + 1, tz="UTC")}),
    "empty_frames": lambda rng, k: pd.DataFrame({"x": np.arange(float(k % 2)),
                                                 "s": pd.Series(["z"] * (k % 2), dtype="str")}),
    "no_columns": lambda rng, k: pd.DataFrame(index=range(k)),
    "a_slice": lambda rng, k: pd.DataFrame({"x": np.arange(10.0), "s": list("abcdefghij")}
                                           ).iloc[k:k + 2],
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_stacked_columns_are_pandas_concatenation(kind):
    _assert_same_as_concat(_frames(KINDS[kind]))


@pytest.mark.parametrize("frames", [
    [pd.DataFrame({"x": [1.0]}), pd.DataFrame({"y": [1.0]})],               # other names
    [pd.DataFrame({"x": [1.0], "y": [2]}), pd.DataFrame({"y": [2], "x": [1.0]})],  # order
    [pd.DataFrame({"x": [1.0]}), pd.DataFrame({"x": [1]})],                 # dtypes
    [pd.DataFrame({"x": ["a"]}), pd.DataFrame({"x": pd.Series(["a"], dtype=object)})],
    [pd.DataFrame([[1, 2]], columns=["x", "x"])] * 2,                        # repeated name
    [pd.DataFrame({0: [1.0]})] * 2,                                         # not a string
    [pd.DataFrame({"c": pd.Categorical(["a"])}), pd.DataFrame({"c": pd.Categorical(["b"])})],
    [pd.DataFrame({"s": []}), pd.DataFrame({"s": ["a"]})],                  # empty: object
    [],
])
def test_frames_it_does_not_stack_exactly_are_left_to_pandas(frames):
    assert stack_frames(frames) is None


def test_frames_with_attrs_or_flags_are_left_to_pandas():
    a, b = pd.DataFrame({"x": [1.0]}), pd.DataFrame({"x": [2.0]})
    b.attrs["note"] = "kept by pandas"
    assert stack_frames([a, b]) is None
    c = pd.DataFrame({"x": [3.0]}).set_flags(allows_duplicate_labels=False)
    assert stack_frames([a, c]) is None


def test_names_given_by_the_caller_are_used():
    frames = [pd.DataFrame({"x": [1.0]}), pd.DataFrame({"x": [2.0]})]
    assert stack_frames(frames, [("x",), ("x",)])["x"].tolist() == [1.0, 2.0]
    assert stack_frames(frames, [("x",), ("y",)]) is None


def _plain_batch(frames):
    """Batch.from_frames as pandas stacks the frames (the reference)."""
    stacked = Batch.from_pandas(pd.concat(frames, ignore_index=True))
    sizes = [len(f) for f in frames]
    return Batch(stacked.columns, np.repeat(np.arange(len(frames)), sizes), len(frames))


@pytest.mark.parametrize("kind", ["numbers", "text", "text_missing", "empty_frames",
                                  "no_columns", "a_slice"])
def test_batch_from_frames_is_the_concatenation(kind):
    frames = _frames(KINDS[kind])
    got, ref = Batch.from_frames(frames), _plain_batch(frames)
    assert got.n_sims == ref.n_sims and got.sim.tolist() == ref.sim.tolist()
    assert list(got.columns) == list(ref.columns)
    for name in ref.columns:
        assert got[name].dtype == ref[name].dtype
        missing = pd.isna(ref[name])
        np.testing.assert_array_equal(pd.isna(got[name]), missing)
        np.testing.assert_array_equal(got[name][~missing], ref[name][~missing])
        assert [type(v) for v in got[name]] == [type(v) for v in ref[name]]


def test_batch_from_frames_of_other_dtypes_still_stacks():
    frames = _frames(KINDS["nullable"]) + [pd.DataFrame({"i": [1.5]})]
    b = Batch.from_frames(frames)
    assert b.n_sims == 6 and len(b["i"]) == b.n_rows
