"""Mixed models: ``lmer`` (lme4 + lmerTest) and ``glmer`` (lme4), with batched kernels.

One module per estimator (:mod:`.lmer`, :mod:`.glmer`: spec, function, fit, kernel);
the maths in modules named for it: :mod:`.bars` (lme4 formula syntax),
:mod:`.model_matrices`, :mod:`.pls` (penalised least squares), :mod:`.pirls` and
:mod:`.families` (GLMMs), :mod:`.random_intercept`, :mod:`.nested_intercepts` and
:mod:`.random_intercept_glmm` (batched paths), :mod:`.satterthwaite`,
:mod:`.kenward_roger`, :mod:`.derivatives`, :mod:`.small_matrices`, and
:mod:`.merfit` (what the fits share).
"""

from .bars import BarTerm, LmerFormula, parse_lmer_formula
from .glmer import GlmerFit, GlmerSpec, glmer, parse_glmer
from .lmer import LmerFit, LmerSpec, lmer, parse_lmer

__all__ = ["lmer", "LmerFit", "LmerSpec", "parse_lmer", "glmer", "GlmerFit", "GlmerSpec",
           "parse_glmer", "parse_lmer_formula", "LmerFormula", "BarTerm"]
