"""iv_robust's kernel == the standalone fit, simulation by simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import iv_robust

from ._util import batched, compare, standalone


def _treatment_frames(seed, n_sims=4):
    """Varied data sets: 4-14 clusters of 1-20 units, clusters nested in 3 blocks."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_sims):
        J = int(rng.integers(6, 14))
        sizes = rng.integers(1, 20, size=J)
        cl = np.repeat(np.arange(J), sizes)
        n = len(cl)
        blk = cl % 3
        zc = np.zeros(J)
        for b in range(3):   # at least one treated and one control cluster per block
            ids = np.flatnonzero(np.arange(J) % 3 == b)
            zc[rng.permutation(ids)[: max(1, len(ids) // 2)]] = 1
        ps = rng.uniform(0.2, 0.8, size=n)
        t = (rng.random(n) < ps).astype(float)
        z1, z2 = rng.normal(size=n), rng.normal(size=n)
        u = rng.normal(size=n)
        x = 0.7 * z1 + 0.4 * z2 + u + rng.normal(size=n)
        y = 1 + zc[cl] + 0.5 * x + u + rng.normal(size=J)[cl]
        order = rng.permutation(n)
        frames.append(pd.DataFrame({
            "y": y, "z": zc[cl], "t": t, "ps": ps, "pc": 0.5, "x": x, "x1": rng.normal(size=n),
            "g": rng.choice(["a", "b", "c"], size=n).astype(object), "z1": z1, "z2": z2,
            "cl": cl, "blk": blk, "w": rng.uniform(0.3, 3, size=n)}).iloc[order]
            .reset_index(drop=True))
    return frames


IV_KW = [{}, {"se_type": "classical"}, {"se_type": "HC0"}, {"se_type": "HC3"},
         {"clusters": "cl"}, {"clusters": "cl", "se_type": "CR0"},
         {"clusters": "cl", "se_type": "stata"}, {"weights": "w"},
         {"weights": "w", "clusters": "cl"}, {"weights": "w", "se_type": "classical"}]


@pytest.mark.parametrize("formula", ["y ~ x | z1 + z2", "y ~ x + x1 | z1 + z2 + x1"])
@pytest.mark.parametrize("kw", IV_KW, ids=[str(k) for k in IV_KW])
def test_iv_robust_kernel_equals_standalone(formula, kw, no_fallback):
    frames = _treatment_frames(5)
    out = batched(iv_robust)(Batch.from_frames(frames), formula, **kw)
    compare(out, standalone(iv_robust, formula, frames, **kw))


def test_iv_robust_kernel_fixed_effects_use_standalone():
    frames = _treatment_frames(6, n_sims=3)
    out = batched(iv_robust)(Batch.from_frames(frames), "y ~ x | z1 + z2",
                                 fixed_effects="~ blk")
    compare(out, standalone(iv_robust, "y ~ x | z1 + z2", frames, fixed_effects="~ blk"))
