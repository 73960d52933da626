"""redesign on any design whose steps take parameters (issue 10, item 7)."""

import pickle

import pytest

import declaredesign as dd
from declaredesign import examples
from declaredesign.errors import DeclareDesignError


def test_examples_remember_their_designer_and_arguments():
    d = examples.two_arm(N=30, ate=0.2)
    assert d.designer is examples.two_arm
    assert d.designer_args == {"N": 30, "ate": 0.2}
    assert d.parameters == {}            # no parameter columns unless redesigned
    assert pickle.loads(pickle.dumps(d)).designer_args == d.designer_args


def test_redesign_an_example_over_a_grid():
    designs = dd.redesign(examples.two_arm(), N=[20, 40])
    assert [len(dd.draw_data(d, seed=1)) for d in designs] == [20, 40]
    assert [d.parameters for d in designs] == [{"N": 20}, {"N": 40}]
    # Arguments given to the designer survive a redesign of another one.
    d = dd.redesign(examples.two_arm(N=30, ate=0.0), N=50)
    assert d.designer_args == {"N": 50, "ate": 0.0}
    assert d == examples.two_arm(N=50, ate=0.0)
    dx = dd.diagnose_design(designs, sims=20, bootstrap_sims=0, seed=1)
    assert sorted(dx.diagnosands["N"]) == [20, 40]


def test_every_example_redesigns():
    for name, designer in examples.EXAMPLES.items():
        d = designer()
        assert d.designer is designer, name
        assert dd.redesign(d) == d, name


def test_user_designer_decorator():
    @dd.designer
    def mine(N=10, effect=0.5):
        return (dd.declare_model(N=N, U=dd.normal())
                + dd.declare_potential_outcomes(f"Y ~ {effect} * Z + U"))
    d = mine(12)
    assert d.designer_args == {"N": 12}
    assert len(dd.draw_data(dd.redesign(d, effect=1.0), seed=1)) == 12


def test_plain_design_redesigns_step_parameters():
    plain = (dd.declare_model(N=10, U=dd.normal())
             + dd.declare_assignment(Z=dd.complete_ra(m=5))
             + dd.declare_inquiry(m="mean(U)"))
    assert dd.parameter_names(plain) == ["N", "U", "Z"]
    designs = dd.redesign(plain, N=[20, 30])
    assert [len(dd.draw_data(d, seed=1)) for d in designs] == [20, 30]
    assert designs[0].parameters == {"N": 20}
    d = dd.redesign(plain, Z=dd.complete_ra(m=2))
    assert dd.draw_data(d, seed=1)["Z"].sum() == 2
    with pytest.raises(DeclareDesignError, match=r"redesign\(n=5\).*N, U, Z"):
        dd.redesign(plain, n=5)


def test_empty_grids_are_errors():
    with pytest.raises(DeclareDesignError, match="empty grid"):
        dd.expand_design(examples.two_arm, N=[])
    with pytest.raises(DeclareDesignError, match="empty grid"):
        dd.redesign(examples.two_arm(), N=[])
