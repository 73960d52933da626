"""iv_robust's kernel == the standalone fit, simulation by simulation."""

from __future__ import annotations

import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import iv_robust

from ._util import batched, compare, standalone, treatment_frames

IV_KW = [{}, {"se_type": "classical"}, {"se_type": "HC0"}, {"se_type": "HC3"},
         {"clusters": "cl"}, {"clusters": "cl", "se_type": "CR0"},
         {"clusters": "cl", "se_type": "stata"}, {"weights": "w"},
         {"weights": "w", "clusters": "cl"}, {"weights": "w", "se_type": "classical"}]


@pytest.mark.parametrize("formula", ["y ~ x | z1 + z2", "y ~ x + x1 | z1 + z2 + x1"])
@pytest.mark.parametrize("kw", IV_KW, ids=[str(k) for k in IV_KW])
def test_iv_robust_kernel_equals_standalone(formula, kw, no_fallback):
    frames = treatment_frames(5)
    out = batched(iv_robust)(Batch.from_frames(frames), formula, **kw)
    compare(out, standalone(iv_robust, formula, frames, **kw))


def test_iv_robust_kernel_fixed_effects_use_standalone():
    frames = treatment_frames(6, n_sims=3)
    out = batched(iv_robust)(Batch.from_frames(frames), "y ~ x | z1 + z2",
                                 fixed_effects="~ blk")
    compare(out, standalone(iv_robust, "y ~ x | z1 + z2", frames, fixed_effects="~ blk"))
