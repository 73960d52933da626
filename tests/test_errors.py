"""Bad input is a clear error naming the argument and value, raised as early as possible.

One place that walks the list of the core issue's error cases; each layer's own tests
cover more.
"""

import pytest

import declaredesign as dd
from declaredesign.errors import DeclarationError, DesignError, StepError


def model():
    return dd.declare_model(
        cls=dd.add_level(N=4),
        unit=dd.add_level(N=5, U=dd.normal()),
    )


def test_unknown_column_in_an_estimator_formula_at_composition():
    with pytest.raises(DesignError, match=r"step 2 \(estimator 'e'\) uses column 'Q'"):
        model() + dd.declare_estimator("U ~ Q", label="e")


def test_probability_out_of_range_at_declaration():
    with pytest.raises(DeclarationError, match=r"prob=1\.5"):
        dd.complete_ra(prob=1.5)


def test_m_larger_than_n():
    with pytest.raises(DeclarationError, match=r"m=7"):
        dd.complete_ra(N=5, m=7)


def test_clusters_split_across_blocks():
    with pytest.raises(DeclarationError, match="clusters"):
        dd.block_and_cluster_ra(blocks=[1, 1, 2, 2], clusters=["a", "a", "a", "b"])


def test_duplicate_estimator_labels():
    d = model() + dd.declare_estimator("U ~ 1", term=True, label="e")
    with pytest.raises(DesignError, match="'e' is used twice"):
        d + dd.declare_estimator("U ~ 1", term=True, label="e")


def test_inquiry_label_no_step_defines():
    with pytest.raises(DesignError, match="inquiry 'ate' is not declared"):
        model() + dd.declare_estimator("U ~ 1", inquiry="ate", label="e")


def test_reveal_with_no_assignment():
    with pytest.raises(DesignError, match="uses column 'Z'"):
        (model() + dd.declare_potential_outcomes("Y ~ Z + U")
         + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z")))


def test_sims_zero():
    with pytest.raises(DeclarationError,
                       match=r"^diagnose_design\(sims=0\): sims must be a positive integer; "
                             r"got 0\.$"):
        dd.diagnose_design(model(), sims=0)


def test_runtime_error_names_the_step_and_chains_the_cause():
    d = model() + dd.declare_inquiry(m="mean(nothing_here)")
    with pytest.raises(StepError, match=r"^step 2 \(inquiry 'm'\): .*nothing_here") as info:
        dd.simulate_design(d, sims=2, seed=1)
    assert info.value.__cause__ is not None
    assert info.value.step_index == 2


def test_errors_share_one_root_and_builtin_meaning():
    with pytest.raises(ValueError):
        dd.complete_ra(prob=2)
    with pytest.raises(dd.DeclareDesignError):
        dd.complete_ra(prob=2)
