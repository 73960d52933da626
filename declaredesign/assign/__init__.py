"""Random assignment and sampling (R: randomizr 1.0).

Assignment (``*_ra``) and sampling (``*_rs``) functions with randomizr's argument
names and rounding rules, their ``*_probabilities`` companions, declarations
(:func:`declare_ra`, :func:`declare_rs`) with batched kernels
(``conduct_batch``/``probabilities_batch``) for designs, and exact enumeration of
the possible assignments.
"""

from .permutations import (
    obtain_num_permutations,
    obtain_permutation_matrix,
    obtain_permutation_probabilities,
)
from .ra import (
    ConditionProbabilities,
    RADeclaration,
    block_and_cluster_ra,
    block_and_cluster_ra_probabilities,
    block_ra,
    block_ra_probabilities,
    cluster_ra,
    cluster_ra_probabilities,
    complete_ra,
    complete_ra_probabilities,
    conduct_ra,
    declare_ra,
    obtain_condition_probabilities,
    simple_ra,
    simple_ra_probabilities,
)
from .rs import (
    RSDeclaration,
    cluster_rs,
    cluster_rs_probabilities,
    complete_rs,
    complete_rs_probabilities,
    declare_rs,
    draw_rs,
    obtain_inclusion_probabilities,
    simple_rs,
    simple_rs_probabilities,
    strata_and_cluster_rs,
    strata_and_cluster_rs_probabilities,
    strata_rs,
    strata_rs_probabilities,
)

__all__ = [
    "ConditionProbabilities",
    "RADeclaration",
    "RSDeclaration",
    "block_and_cluster_ra",
    "block_and_cluster_ra_probabilities",
    "block_ra",
    "block_ra_probabilities",
    "cluster_ra",
    "cluster_ra_probabilities",
    "cluster_rs",
    "cluster_rs_probabilities",
    "complete_ra",
    "complete_ra_probabilities",
    "complete_rs",
    "complete_rs_probabilities",
    "conduct_ra",
    "declare_ra",
    "declare_rs",
    "draw_rs",
    "obtain_condition_probabilities",
    "obtain_inclusion_probabilities",
    "obtain_num_permutations",
    "obtain_permutation_matrix",
    "obtain_permutation_probabilities",
    "simple_ra",
    "simple_ra_probabilities",
    "simple_rs",
    "simple_rs_probabilities",
    "strata_and_cluster_rs",
    "strata_and_cluster_rs_probabilities",
    "strata_rs",
    "strata_rs_probabilities",
]
