"""Ready-made designs (R: DesignLibrary), the forum's multilevel design first.

Each example is a *designer*: a function of the design's parameters returning a
:class:`~declaredesign.design.Design`, so it works with ``expand_design``,
``find_sample_size`` and the CLI's ``--param``.
"""

from .forum import multilevel, multilevel_varying
from .library import (
    block_cluster,
    block_randomized,
    cluster_randomized,
    factorial,
    multi_arm,
    pre_post,
    two_arm,
    two_arm_covariate,
)

#: Name -> designer, as listed by ``declaredesign examples``.
EXAMPLES = {
    "multilevel": multilevel,
    "multilevel_varying": multilevel_varying,
    "two_arm": two_arm,
    "two_arm_covariate": two_arm_covariate,
    "block_randomized": block_randomized,
    "cluster_randomized": cluster_randomized,
    "block_cluster": block_cluster,
    "multi_arm": multi_arm,
    "factorial": factorial,
    "pre_post": pre_post,
}

__all__ = ["EXAMPLES", "block_cluster", "block_randomized", "cluster_randomized",
           "factorial", "multi_arm", "multilevel", "multilevel_varying", "pre_post",
           "two_arm", "two_arm_covariate"]
