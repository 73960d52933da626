"""fabricate layer: simulated data with levels, draws and potential outcomes (R: fabricatr).

The package is itself callable as R's ``fabricate()``: ``dd.fabricate(N=5, u=normal())``
calls :func:`~declaredesign.fabricate.fabricate` (also reachable as
``declaredesign.fabricate.fabricate``), while ``import declaredesign.fabricate as fab``
gives this module, so ``fab.normal`` and ``from declaredesign.fabricate import normal``
work as for any subpackage.
"""

import sys
import types
from typing import Any

from ._draws import (
    bernoulli,
    binomial,
    draw_binary,
    draw_binary_icc,
    draw_binomial,
    draw_categorical,
    draw_count,
    draw_likert,
    draw_normal_icc,
    draw_ordered,
    draw_quantile,
    exponential,
    gamma,
    lognormal,
    normal,
    poisson,
    split_quantile,
    uniform,
)
from ._levels import (
    LevelSpec,
    add_level,
    cross_levels,
    fabricate,
    fabricate_batch,
    join_using,
    link_levels,
    modify_level,
    nest_level,
)
from ._multivariate import (
    MultivariateNormal,
    correlate,
    draw_multivariate,
    mvrnorm,
)
from ._outcomes import (
    PotentialOutcomes,
    RevealOutcomes,
    potential_outcomes,
    reveal_outcomes,
)
from ._resample import ALL, resample_batch, resample_data
from ._vectors import rep

__all__ = [
    "bernoulli", "binomial", "draw_binary", "draw_binary_icc", "draw_binomial",
    "draw_categorical", "draw_count", "draw_likert", "draw_normal_icc", "draw_ordered",
    "draw_quantile", "exponential", "gamma", "lognormal", "normal", "poisson",
    "split_quantile", "uniform",
    "LevelSpec", "add_level", "cross_levels", "fabricate", "fabricate_batch", "join_using",
    "link_levels", "modify_level", "nest_level",
    "MultivariateNormal", "correlate", "draw_multivariate", "mvrnorm",
    "PotentialOutcomes", "RevealOutcomes", "potential_outcomes", "reveal_outcomes",
    "ALL", "resample_batch", "resample_data", "rep",
]


class _CallableModule(types.ModuleType):
    """The ``declaredesign.fabricate`` module, callable as :func:`fabricate`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return fabricate(*args, **kwargs)


# A module subclass keeps the module a module (attributes, import, pickling of what it
# defines) and makes ``dd.fabricate(...)`` R's fabricate(); ``__wrapped__`` lets
# ``inspect.signature(dd.fabricate)`` and ``help`` show fabricate's own signature.
sys.modules[__name__].__class__ = _CallableModule
__wrapped__ = fabricate
