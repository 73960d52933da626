"""print_code, compare_*, citations and set_diagnosands (issue 10, item 9)."""

import pytest

import declaredesign as dd
from declaredesign import examples
from declaredesign.errors import DesignError


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_print_code_rebuilds_every_example(name, capsys):
    design = examples.EXAMPLES[name]()
    code = dd.print_code(design)
    assert capsys.readouterr().out.strip() == code.strip()
    ns: dict = {}
    exec(code, ns)
    assert ns["design"] == design
    assert repr(ns["design"]).splitlines()[1:] == repr(design).splitlines()[1:]


def test_print_code_of_a_hand_made_design():
    d = (dd.declare_model(N=20, U=dd.normal(), X=dd.bernoulli(0.5))
         + dd.declare_potential_outcomes("Y ~ U + Z")
         + dd.declare_inquiry(cate="mean(Y_Z_1 - Y_Z_0)", subset="X == 1")
         + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
         + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
         + dd.declare_estimator("Y ~ Z", model=dd.difference_in_means, inquiry="cate",
                                summary="glance", label="d"))
    ns: dict = {}
    exec(dd.design_code(d), ns)
    assert ns["design"] == d


def test_compare_designs():
    a = examples.two_arm(N=20)
    b = examples.two_arm(N=30)
    diff = dd.compare_designs(a, b)
    assert set(diff) == {"code", "summaries", "data", "inquiries", "estimates"}
    assert "-    declare_model(N=20" in diff["code"] and "+    declare_model(N=30" in diff["code"]
    assert diff["data"] and diff["estimates"]
    same = dd.compare_designs(a, examples.two_arm(N=20))
    assert all(v == "" for v in same.values())
    assert dd.compare_design_code(a, a) == ""
    assert dd.compare_design_inquiries(a, a) == ""
    assert dd.compare_design_summaries(a, b).startswith("--- design1")


def test_citation():
    d = examples.two_arm()
    assert "set_citation" in dd.cite_design(d)
    c = dd.set_citation(d, author="Ann Lee", title="A trial")
    assert dd.cite_design(c).startswith("Ann Lee (")
    assert "A trial" in c.citation
    assert dd.redesign(c, N=40).citation == c.citation
    with pytest.raises(dd.DeclarationError, match="diagnosands"):
        dd.set_diagnosands(d, "bias")
    assert dd.set_citation(d, citation="X").citation == "X"


def test_set_diagnosands_is_used_by_diagnose():
    d = examples.two_arm(N=20)
    mine = dd.declare_diagnosands("mean_estimate", "power")
    d2 = dd.set_diagnosands(d, mine)
    dx = dd.diagnose_design(d2, sims=20, bootstrap_sims=0, seed=1)
    assert dx.diagnosand_names == ["mean_estimate", "power"]
    assert dd.diagnose_design(d, sims=20, bootstrap_sims=0, seed=1).diagnosand_names != \
        dx.diagnosand_names
    other = dd.set_diagnosands(d, dd.declare_diagnosands("bias"))
    with pytest.raises(DesignError, match="different diagnosands"):
        dd.diagnose_design(d2, other, sims=5, bootstrap_sims=0)
    # Explicit diagnosands win.
    dx = dd.diagnose_design(d2, other, diagnosands=mine, sims=5, bootstrap_sims=0, seed=1)
    assert dx.diagnosand_names == ["mean_estimate", "power"]


def test_print_code_of_one_step_is_a_design():
    d = dd.Design((dd.declare_model(N=10, Y=dd.normal()),))
    ns: dict = {}
    exec(dd.design_code(d), ns)
    assert isinstance(ns["design"], dd.Design) and ns["design"] == d


def test_compare_designs_without_estimators():
    a = dd.declare_model(N=5, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    assert dd.compare_designs(a, a)["estimates"] == ""
