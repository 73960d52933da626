"""Composing designs: immutability, DeclareDesign's checks, editing steps."""

import pytest

import declaredesign as dd
from declaredesign.errors import DesignError, StepError


def two_arm(n=100, effect=0.2):
    return (
        dd.declare_model(N=n, U=dd.normal())
        + dd.declare_potential_outcomes(f"Y ~ {effect} * Z + U")
        + dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
        + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
        + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
        + dd.declare_estimator("Y ~ Z", model=dd.difference_in_means, inquiry="ate",
                               label="dim")
    )


def test_plus_builds_an_immutable_design_with_readable_repr():
    d = two_arm()
    assert isinstance(d, dd.Design) and len(d) == 6
    text = repr(d)
    assert "declare_inquiry(ate='mean(Y_Z_1 - Y_Z_0)')" in text
    assert "6. declare_estimator('Y ~ Z'" in text
    with pytest.raises(AttributeError):
        d.steps = ()
    step = d[2]
    with pytest.raises(AttributeError):
        step.inquiries = {}
    assert d.estimator_labels == ["dim"] and d.inquiry_labels == ["ate"]


def test_steps_replace_returns_new_step():
    s = dd.declare_estimator("Y ~ Z", inquiry="ate", label="a")
    s2 = s.replace(label="b")
    assert s.label == "a" and s2.label == "b"


def test_duplicate_estimator_labels_rejected():
    with pytest.raises(DesignError, match="estimator label 'dim' is used twice"):
        two_arm() + dd.declare_estimator("Y ~ Z", inquiry="ate", label="dim")


def test_duplicate_inquiry_rejected():
    with pytest.raises(DesignError, match="inquiry label 'ate' is declared twice"):
        two_arm() + dd.declare_inquiry(ate="mean(Y)")


def test_unknown_inquiry_rejected_at_composition():
    with pytest.raises(DesignError, match="inquiry 'att' is not declared"):
        two_arm() + dd.declare_estimator("Y ~ Z", inquiry="att", label="x")


def test_formula_with_unknown_column_rejected_at_composition():
    with pytest.raises(DesignError, match="column 'W'"):
        two_arm() + dd.declare_estimator("Y ~ W", inquiry="ate", label="x")


def test_reveal_without_assignment_rejected():
    with pytest.raises(DesignError, match="'Z'"):
        (dd.declare_model(N=10, U=dd.normal())
         + dd.declare_potential_outcomes("Y ~ Z + U")
         + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z")))


def test_runtime_error_names_the_step():
    d = dd.declare_model(N=5, U=dd.normal()) + dd.declare_step(lambda df: df.assign(V=df["nope"]))
    with pytest.raises(StepError, match=r"step 2 \(step "):
        dd.draw_data(d, seed=1)


def test_insert_replace_delete_steps():
    d = two_arm()
    d2 = dd.delete_step(d, "dim")
    assert len(d2) == 5 and len(d) == 6
    d3 = dd.insert_step(d2, dd.declare_estimator("Y ~ Z", inquiry="ate", label="ols"), after=5)
    assert d3.estimator_labels == ["ols"]
    d4 = dd.replace_step(d3, "ols", dd.declare_estimator("Y ~ Z", inquiry="ate", label="o2"))
    assert d4.estimator_labels == ["o2"]
    with pytest.raises(DesignError, match="no step labelled 'zzz'"):
        dd.delete_step(d, "zzz")


def test_expand_and_redesign_carry_parameters():
    designs = dd.expand_design(two_arm, n=[20, 40], effect=0.1)
    assert [d.parameters for d in designs] == [{"n": 20, "effect": 0.1}, {"n": 40, "effect": 0.1}]
    d = dd.redesign(designs[0], n=60)
    assert d.parameters == {"n": 60, "effect": 0.1}
    assert len(dd.draw_data(d, seed=1)) == 60
    with pytest.raises(DesignError, match="redesign"):
        dd.redesign(two_arm(), n=5)
