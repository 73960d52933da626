"""Linear mixed models: ``lmer`` as lme4 + lmerTest + broom.mixed, with a batched kernel."""

from ._formula import BarTerm, LmerFormula, parse_lmer_formula
from .lmer import LmerFit, lmer

__all__ = ["lmer", "LmerFit", "parse_lmer_formula", "LmerFormula", "BarTerm"]
