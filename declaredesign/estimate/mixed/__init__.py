"""Mixed models: ``lmer`` (lme4 + lmerTest) and ``glmer`` (lme4), with batched kernels."""

from ._formula import BarTerm, LmerFormula, parse_lmer_formula
from .glmer import GlmerFit, glmer
from .lmer import LmerFit, lmer

__all__ = ["lmer", "LmerFit", "glmer", "GlmerFit", "parse_lmer_formula", "LmerFormula", "BarTerm"]
