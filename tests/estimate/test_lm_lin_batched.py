"""lm_lin's kernel == the standalone fit, simulation by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import lm_lin

from ._util import batched, compare, standalone, treatment_frames

LIN_KW = [{}, {"se_type": "classical"}, {"se_type": "HC1"}, {"se_type": "HC3"},
          {"clusters": "cl"}, {"clusters": "cl", "se_type": "CR0"}, {"weights": "w"},
          {"weights": "w", "clusters": "cl"}, {"alpha": 0.2}]


LIN_CASES = [("~ x", kw) for kw in LIN_KW] + [("~ x + x1 + g", kw) for kw in (
    {}, {"clusters": "cl"}, {"weights": "w", "clusters": "cl"})]


@pytest.mark.parametrize("cov,kw", LIN_CASES, ids=[f"{c} {k}" for c, k in LIN_CASES])
def test_lm_lin_kernel_equals_standalone(cov, kw, no_fallback):
    frames = treatment_frames(3)
    out = batched(lm_lin)(Batch.from_frames(frames), "y ~ z", covariates=cov, **kw)
    compare(out, standalone(lm_lin, "y ~ z", frames, covariates=cov, **kw))


def test_lm_lin_kernel_multivalued_treatment_uses_standalone():
    frames = treatment_frames(4, n_sims=3)
    for f in frames:
        f["arm"] = (np.arange(len(f)) % 3).astype(float)
    out = batched(lm_lin)(Batch.from_frames(frames), "y ~ arm", covariates="~ x")
    compare(out, standalone(lm_lin, "y ~ arm", frames, covariates="~ x"))
