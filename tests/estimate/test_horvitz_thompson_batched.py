"""horvitz_thompson's kernel == the standalone fit, simulation by simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import horvitz_thompson

from ._util import batched, compare, standalone, treatment_frames

HT_KW = [({"condition_prs": "ps"}, "y ~ t"), ({"condition_prs": "ps", "se_type": "constant"},
                                             "y ~ t"),
         ({}, "y ~ t"), ({"simple": False}, "y ~ t"), ({"simple": False, "condition_prs": "pc"},
                                                      "y ~ t"),
         ({"clusters": "cl"}, "y ~ z"), ({"clusters": "cl", "simple": False}, "y ~ z"),
         ({"blocks": "blk"}, "y ~ t"), ({"blocks": "blk", "condition_prs": "pc"}, "y ~ t"),
         ({"blocks": "blk", "clusters": "cl"}, "y ~ z"),
         ({"condition_prs": "ps", "se_type": "none"}, "y ~ t"),
         ({"condition_prs": "ps", "alpha": 0.1}, "y ~ t")]


@pytest.mark.parametrize("kw,formula", HT_KW, ids=[str(k) for k, _ in HT_KW])
def test_horvitz_thompson_kernel_equals_standalone(kw, formula, no_fallback):
    frames = treatment_frames(7)
    out = batched(horvitz_thompson)(Batch.from_frames(frames), formula, **kw)
    compare(out, standalone(horvitz_thompson, formula, frames, **kw))


def _decltreatment_frames(seed, n_sims=3, n=40):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_sims):
        blk = np.repeat([1, 2, 3, 4], n // 4)
        cl = np.repeat(np.arange(n // 2), 2)
        zc = np.zeros(n // 2)
        for b in range(4):   # 5 clusters per block, 2 treated
            zc[b * 5 + rng.permutation(5)[:2]] = 1
        frames.append(pd.DataFrame({"y": rng.normal(size=n) + np.arange(n) / n,
                                    "t": rng.permutation(np.arange(n) % 2),
                                    "tb": np.concatenate([rng.permutation(np.arange(10) % 2)
                                                          for _ in range(4)]),
                                    "z": zc[cl], "blk": blk, "cl": cl}))
    return frames


DECLS = [({"N": 40, "m": 20}, "y ~ t"), ({"N": 40, "prob": 0.4, "simple": True}, "y ~ t"),
         ({"blocks": "blk", "prob": 0.5}, "y ~ tb"), ({"clusters": "cl", "m": 8}, "y ~ z"),
         ({"clusters": "cl", "prob": 0.4, "simple": True}, "y ~ z"),
         ({"blocks": "blk", "clusters": "cl", "block_m": [2, 2, 2, 2]}, "y ~ z")]


@pytest.mark.parametrize("decl,formula", DECLS, ids=[str(d) for d, _ in DECLS])
def test_horvitz_thompson_kernel_declarations(decl, formula, no_fallback):
    from declaredesign.assign import declare_ra
    frames = _decltreatment_frames(8)
    d = declare_ra(**decl)
    out = batched(horvitz_thompson)(Batch.from_frames(frames), formula, ra_declaration=d)
    compare(out, standalone(horvitz_thompson, formula, frames, ra_declaration=d))


def test_horvitz_thompson_kernel_declaration_with_missing_rows_uses_standalone():
    from declaredesign.assign import declare_ra
    frames = _decltreatment_frames(9)
    frames[1].loc[3, "y"] = np.nan
    d = declare_ra(N=40, m=20)
    out = batched(horvitz_thompson)(Batch.from_frames(frames), "y ~ t", ra_declaration=d)
    compare(out, standalone(horvitz_thompson, "y ~ t", frames, ra_declaration=d))
