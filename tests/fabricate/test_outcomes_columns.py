"""Issue 10 item 3: column-form potential outcomes, and revealing from several
assignment variables, as R's DesignLibrary designers write them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.errors import DeclarationError
from declaredesign.fabricate import normal, potential_outcomes


def test_column_form_names_and_values():
    po = potential_outcomes(Y_Z_0="U", Y_Z_1="U + 1")
    assert po.names == ["Y_Z_0", "Y_Z_1"]
    out = po(pd.DataFrame({"U": [1.0, 2.0]}))
    assert out["Y_Z_0"].tolist() == [1.0, 2.0] and out["Y_Z_1"].tolist() == [2.0, 3.0]
    assert repr(po) == "potential_outcomes(Y_Z_0='U', Y_Z_1='U + 1')"


def test_column_form_later_columns_see_earlier_ones_and_take_callables():
    po = potential_outcomes(Y_Z_0=lambda d: d["U"] * 2, Y_Z_1="Y_Z_0 + 1", Y_Z_2=3)
    out = po(pd.DataFrame({"U": [1.0, 2.0]}))
    assert out["Y_Z_1"].tolist() == [3.0, 5.0] and out["Y_Z_2"].tolist() == [3, 3]


def test_column_form_refuses_mixing_with_a_formula_or_conditions():
    with pytest.raises(DeclarationError, match="formula must be omitted"):
        potential_outcomes("Y ~ Z", Y_Z_0="U")
    with pytest.raises(DeclarationError, match="conditions must be omitted"):
        potential_outcomes(conditions=[0, 1], Y_Z_0="U")
    with pytest.raises(DeclarationError, match="formula must be"):
        potential_outcomes()


def test_declare_potential_outcomes_column_form_in_a_design():
    design = (dd.declare_model(N=50, U=normal())
              + dd.declare_potential_outcomes(Y_Z_0="U", Y_Z_1="U + 1")
              + dd.declare_assignment(Z=dd.complete_ra(m=25))
              + dd.declare_reveal("Y", "Z"))
    df = dd.draw_data(design, seed=3)
    assert np.allclose(df["Y_Z_1"] - df["Y_Z_0"], 1.0)
    assert np.allclose(df["Y"], np.where(df["Z"] == 1, df["Y_Z_1"], df["Y_Z_0"]))
    step = design.steps[1]
    assert repr(step) == "declare_potential_outcomes(Y_Z_0='U', Y_Z_1='U + 1')"
    again = step.replace(label="po")
    assert again.columns == {"Y_Z_0": "U", "Y_Z_1": "U + 1"} and again.label == "po"
    with pytest.raises(DeclarationError, match="Y_Z_0"):
        dd.declare_potential_outcomes("Y ~ Z", Y_Z_0="U")


def test_randomized_response_string_conditions():
    # randomized_response_designer: Y_Z_Yes = 1, Y_Z_Truth = sensitive_trait.
    design = (dd.declare_model(N=200, sensitive_trait=dd.draw_binary(prob=0.1))
              + dd.declare_assignment(Z=dd.complete_ra(prob=0.6, conditions=["Truth", "Yes"]))
              + dd.declare_potential_outcomes(Y_Z_Yes=1, Y_Z_Truth="sensitive_trait")
              + dd.declare_reveal("Y", "Z"))
    df = dd.draw_data(design, seed=1)
    yes = df["Z"] == "Yes"
    assert (df.loc[yes, "Y"] == 1).all()
    assert (df.loc[~yes, "Y"] == df.loc[~yes, "sensitive_trait"]).all()


def test_column_form_inside_a_level():
    df = dd.fabricate(N=3, U=[1.0, 2.0, 3.0], po=potential_outcomes(Y_Z_0="U", Y_Z_1="U * 2"))
    assert df["Y_Z_1"].tolist() == [2.0, 4.0, 6.0] and "po" not in df


def test_mediation_reveal_from_two_assignment_variables():
    # mediation_analysis_designer: POs of M in Z, of Y in (M, Z), then
    # declare_reveal(M, Z) and declare_reveal(Y, assignment_variables = c("M", "Z")).
    design = (dd.declare_model(N=100, e1=normal(), e2=normal())
              + dd.declare_potential_outcomes("M ~ 1 * (0.5 * Z + e1 > 0)")
              + dd.declare_potential_outcomes("Y ~ 0.5 * Z + 0.5 * M + e2",
                                              conditions={"M": [0, 1], "Z": [0, 1]})
              + dd.declare_potential_outcomes(Y_nat0_Z_0="0.5 * M_Z_0 + e2",
                                              Y_nat0_Z_1="0.5 + 0.5 * M_Z_0 + e2")
              + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
              + dd.declare_reveal("M", "Z")
              + dd.declare_reveal("Y", ["M", "Z"])
              + dd.declare_reveal("Y_nat0"))
    df = dd.draw_data(design, seed=2)
    assert {"Y_M_0_Z_0", "Y_M_1_Z_0", "Y_M_0_Z_1", "Y_M_1_Z_1"} <= set(df)
    expect = [df.loc[i, f"Y_M_{int(df.M[i])}_Z_{int(df.Z[i])}"] for i in df.index]
    assert np.allclose(df["Y"], expect)
    assert np.allclose(df["Y_nat0"], np.where(df.Z == 1, df.Y_nat0_Z_1, df.Y_nat0_Z_0))


def test_declare_reveal_validates_names():
    with pytest.raises(DeclarationError, match="assignment_variables must be"):
        dd.declare_reveal("Y", ["Z", "not a name"])
    with pytest.raises(DeclarationError, match="outcome_variables must be"):
        dd.declare_reveal([], "Z")
