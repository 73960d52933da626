"""fabricate layer: simulated data with levels, draws and potential outcomes (R: fabricatr)."""

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
from ._outcomes import (
    PotentialOutcomes,
    RevealOutcomes,
    potential_outcomes,
    reveal_outcomes,
)
from ._resample import ALL, resample_batch, resample_data

__all__ = [
    "bernoulli", "binomial", "draw_binary", "draw_binary_icc", "draw_binomial",
    "draw_categorical", "draw_count", "draw_likert", "draw_normal_icc", "draw_ordered",
    "draw_quantile", "exponential", "gamma", "lognormal", "normal", "poisson",
    "split_quantile", "uniform",
    "LevelSpec", "add_level", "cross_levels", "fabricate", "fabricate_batch", "join_using",
    "link_levels", "modify_level", "nest_level",
    "PotentialOutcomes", "RevealOutcomes", "potential_outcomes", "reveal_outcomes",
    "ALL", "resample_batch", "resample_data",
]
