"""horvitz_thompson on one data set: argument errors."""

from __future__ import annotations

import numpy as np
import pytest

from declaredesign.assign import declare_ra
from declaredesign.errors import DeclarationError
from declaredesign.estimate import (
    declaration_to_condition_pr_mat,
    horvitz_thompson,
)

from ._util import argument_frame


@pytest.fixture
def df():
    return argument_frame()


@pytest.mark.parametrize("kw,match", [
    ({"se_type": "HC2"}, r"horvitz_thompson\(se_type='HC2'\): se_type must be one of"),
    ({"clusters": "clz", "se_type": "constant"}, r"se_type must be 'youngs' for clustered"),
    ({"blocks": "blk", "se_type": "constant"}, r"se_type must be 'youngs' unless"),
    ({"simple": False, "se_type": "constant"}, r"se_type must be 'youngs' unless"),
    ({"condition_prs": "nope"}, r"condition_prs must be a column"),
    ({"condition_prs": 1.5}, r"condition_prs must be probabilities in \(0, 1\]"),
    ({"ra_declaration": declare_ra(N=24, m=12), "clusters": "cl"},
     r"clusters must be None when ra_declaration is given"),
    ({"ra_declaration": declare_ra(N=10, m=5)}, r"N must be equal to the number of rows"),
    ({"ra_declaration": "decl"}, r"ra_declaration must be a declaration from declare_ra"),
    ({"condition_pr_mat": np.eye(10)}, r"condition_pr_mat must be 2N x 2N with N = 24"),
    ({"alpha": 0}, r"alpha must be a number in \(0, 1\)"),
])
def test_horvitz_thompson_errors(df, kw, match):
    with pytest.raises(DeclarationError, match=match):
        horvitz_thompson("y ~ z", df, **kw)


def test_horvitz_thompson_three_arm_declaration(df):
    with pytest.raises(DeclarationError, match="two-arm"):
        horvitz_thompson("y ~ arm", df, ra_declaration=declare_ra(N=24, num_arms=3))
    with pytest.raises(DeclarationError, match="two-arm"):
        declaration_to_condition_pr_mat(declare_ra(N=24, num_arms=3))


def test_horvitz_thompson_clusters_must_be_constant(df):
    with pytest.raises(DeclarationError, match="constant within clusters"):
        horvitz_thompson("y ~ z", df, clusters="blk")


def test_declaration_conditions_both_or_neither():
    with pytest.raises(DeclarationError, match="give both condition1 and condition2"):
        declaration_to_condition_pr_mat(declare_ra(N=4, m=2), condition2=1)


def test_custom_declaration_uses_its_permutation_matrix():
    # R (estimatr 1.0 + randomizr 1.0): declaration_to_condition_pr_mat(declare_ra(
    # permutation_matrix = matrix(c(1,0,1,0, 0,1,0,1), 4, 2))) has treated-block rows
    # (0.5, 0, 0.5, 0) and (0, 0.5, 0, 0.5): units 1 and 3 are always treated together.
    import declaredesign as dd

    pm = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    got = dd.declaration_to_condition_pr_mat(dd.declare_ra(permutation_matrix=pm)).to_numpy()
    want_treated = np.array([[0.5, 0, 0.5, 0], [0, 0.5, 0, 0.5]] * 2)
    np.testing.assert_allclose(got[4:, 4:], want_treated)
    np.testing.assert_allclose(got, dd.permutations_to_condition_pr_mat(pm).to_numpy())
