"""potential_outcomes and reveal_outcomes, including R's forum dataset."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from declaredesign import Batch, DeclarationError, FormulaError
from declaredesign.expressions import evaluate
from declaredesign.fabricate import (
    add_level,
    fabricate,
    fabricate_batch,
    normal,
    potential_outcomes,
    reveal_outcomes,
)

FORUM_PO = ("score ~ student_baseline + (1 + treatment) * "
            "(school_effect + class_effect + test_effect)")


def test_names_follow_fabricatr():
    assert potential_outcomes("Y ~ 0.5 * Z").names == ["Y_Z_0", "Y_Z_1"]
    assert potential_outcomes("Y ~ Z", conditions=[1, 2, 3]).names == \
        ["Y_Z_1", "Y_Z_2", "Y_Z_3"]
    assert potential_outcomes("Y ~ D", assignment_variables="D").names == ["Y_D_0", "Y_D_1"]
    multi = potential_outcomes("Y ~ Z1 + 2 * Z2", conditions={"Z1": [0, 1], "Z2": [0, 1]})
    assert multi.names == ["Y_Z1_0_Z2_0", "Y_Z1_1_Z2_0", "Y_Z1_0_Z2_1", "Y_Z1_1_Z2_1"]
    assert potential_outcomes("Y ~ Z", conditions=[0.0, 1.0]).names == ["Y_Z_0", "Y_Z_1"]
    assert potential_outcomes("Y ~ Z", conditions=["a", "b"]).names == ["Y_Z_a", "Y_Z_b"]


def test_values_multi_factor():
    b = Batch({"u": np.array([0.0, 10.0])}, sim=np.array([0, 1]), n_sims=2)
    po = potential_outcomes("Y ~ Z1 + 2 * Z2 + u", conditions={"Z1": [0, 1], "Z2": [0, 1]})
    out = po.apply(b, np.random.default_rng(0))
    assert out["Y_Z1_1_Z2_0"].tolist() == [1.0, 11.0]
    assert out["Y_Z1_0_Z2_1"].tolist() == [2.0, 12.0]
    assert out["Y_Z1_1_Z2_1"].tolist() == [3.0, 13.0]


def test_matches_r_forum_dataset(seed_data):
    # R computed score_treatment_0/1 with the same formula on the same columns.
    data = seed_data.drop(columns=["score_treatment_0", "score_treatment_1", "score"])
    out = potential_outcomes(FORUM_PO, conditions={"treatment": [0, 1]})(data)
    for col in ("score_treatment_0", "score_treatment_1"):
        np.testing.assert_allclose(out[col], seed_data[col], rtol=1e-15, atol=0)
    revealed = reveal_outcomes("score ~ treatment")(out)
    np.testing.assert_array_equal(revealed["score"], seed_data["score"])


def test_reveal_forms_and_multiple_assignments():
    df = pd.DataFrame({"Y_Z1_0_Z2_0": [0.0] * 4, "Y_Z1_1_Z2_0": [1.0] * 4,
                       "Y_Z1_0_Z2_1": [2.0] * 4, "Y_Z1_1_Z2_1": [3.0] * 4,
                       "Z1": [0, 1, 0, 1], "Z2": [0, 0, 1, 1]})
    got = reveal_outcomes("Y ~ Z1 + Z2")(df)["Y"].tolist()
    assert got == [0.0, 1.0, 2.0, 3.0]
    got2 = reveal_outcomes(outcome_variables="Y", assignment_variables=["Z1", "Z2"])(df)
    assert got2["Y"].tolist() == got
    assert "Y" not in df  # the input is not mutated


def test_reveal_float_assignment_uses_r_names():
    df = pd.DataFrame({"Y_Z_0": [5.0, 5.0], "Y_Z_1": [7.0, 7.0], "Z": [1.0, 0.0]})
    assert reveal_outcomes()(df)["Y"].tolist() == [7.0, 5.0]


def test_reveal_is_lazy_value_in_evaluate():
    b = Batch({"Y_Z_0": np.zeros(3), "Y_Z_1": np.ones(3), "Z": np.array([1, 0, 1])},
              sim=np.array([0, 0, 1]), n_sims=2)
    assert evaluate(reveal_outcomes("Y ~ Z"), b).tolist() == [1.0, 0.0, 1.0]


def test_reveal_missing_column_lists_potential_outcomes():
    df = pd.DataFrame({"Y_Z_0": [0.0], "Y_Z_1": [1.0], "Z": [2]})
    with pytest.raises(FormulaError, match="'Y_Z_2' does not exist.*Y_Z_0, Y_Z_1"):
        reveal_outcomes("Y ~ Z")(df)
    with pytest.raises(FormulaError, match="assignment variable 'D'"):
        reveal_outcomes("Y ~ D")(df)


def test_potential_outcomes_inside_a_level_and_batched():
    po = potential_outcomes("Y ~ Z * 2 + u", conditions=[0, 1])
    b = fabricate_batch({"i": add_level(N=4, u=normal(), po=po)}, n_sims=3,
                        rng=np.random.default_rng(1))
    np.testing.assert_allclose(b["Y_Z_1"] - b["Y_Z_0"], 2.0)
    assert "po" not in b
    df = fabricate(N=3, u=normal(), pos=po, seed=2)
    assert df.columns.tolist() == ["ID", "u", "Y_Z_0", "Y_Z_1"]


def test_draws_in_formula_are_fresh_per_condition_and_seeded():
    po = potential_outcomes("Y ~ Z + normal(0, 1)")
    df = pd.DataFrame({"x": np.zeros(50)})
    a, b = po(df, seed=1), po(df, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["Y_Z_1"] - a["Y_Z_0"], 1.0)


def test_repr_pickle_and_errors():
    po = potential_outcomes("Y ~ 0.5 * Z")
    assert repr(po) == "potential_outcomes('Y ~ 0.5 * Z', conditions={'Z': [0, 1]})"
    assert pickle.loads(pickle.dumps(po)).names == po.names
    r = reveal_outcomes("Y ~ Z")
    assert repr(pickle.loads(pickle.dumps(r))) == repr(r)
    with pytest.raises(DeclarationError, match="formula must be"):
        potential_outcomes("0.5 * Z")
    with pytest.raises(DeclarationError, match="formula must be named"):
        potential_outcomes("1 ~ Z")
    with pytest.raises(DeclarationError, match="distinct"):
        potential_outcomes("Y ~ Z", conditions=[0, 0])
    with pytest.raises(DeclarationError, match="dict"):
        potential_outcomes("Y ~ Z", conditions=[0, 1], assignment_variables=["A", "B"])
    with pytest.raises(DeclarationError, match="outcome_variables"):
        reveal_outcomes(outcome_variables="1Y")


@pytest.mark.parametrize("conditions", [["Yes", "Truth"], ["Truth", "Yes"], ["Yes"],
                                        ["b", "a", "c"], ["", "a"]])
@pytest.mark.parametrize("as_object", [False, True])
def test_reveal_text_conditions_pick_each_rows_column(conditions, as_object):
    # text keys take the two-comparison or hashing shortcuts: every row must still get
    # the potential outcome of its own condition, whatever order the values come in
    rng = np.random.default_rng(7)
    z = np.array(conditions)[rng.integers(0, len(conditions), 50)]
    z = z.astype(object) if as_object else z
    pos = {f"Y_Z_{c}": rng.normal(size=50) for c in conditions}
    got = reveal_outcomes("Y ~ Z").apply(Batch({**pos, "Z": z}, sim=np.zeros(50, int),
                                               n_sims=1))["Y"]
    want = np.array([pos[f"Y_Z_{c}"][i] for i, c in enumerate(z)])
    np.testing.assert_array_equal(got, want)


def test_reveal_object_key_missing_condition_names_the_column():
    b = Batch({"Y_Z_a": np.zeros(3), "Z": np.array(["a", None, "a"], dtype=object)},
              sim=np.zeros(3, int), n_sims=1)
    with pytest.raises(FormulaError, match="Y_Z_NA"):
        reveal_outcomes("Y ~ Z").apply(b)
