"""Helpers shared by the estimate tests (not a test module)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from declaredesign.batch import Batch
from declaredesign.estimate import protocol

NUM = ["estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high", "df"]

TIDY_R = {"estimate": "estimate", "std.error": "std_error", "statistic": "statistic",
          "p.value": "p_value", "conf.low": "conf_low", "conf.high": "conf_high", "df": "df"}


def assert_close(actual, expected, rtol=1e-8, atol=1e-300, what=""):
    """Relative comparison where NaN (R's NA) must match NaN."""
    a = np.asarray(actual, dtype=float)
    e = np.asarray([np.nan if v is None else v for v in np.ravel(expected)],
                   dtype=float).reshape(np.shape(expected))
    assert a.shape == e.shape, what
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def batched(func):
    """``func``'s batched path through the public protocol: ``(batch, formula, **kw)``.

    Arguments are parsed once into the estimator's spec; the kernel fits what it can and
    the per-simulation fallback the simulations it declines (as a design runs it).
    """
    est, bound = protocol.resolve_model(func)

    def run(batch, formula, **kwargs):
        return protocol.fit_batch(est, est.parse(formula, **{**bound, **kwargs}), batch)
    return run


def standalone(func, formula, frames, **kw):
    """Tidy rows of ``func`` fitted to each frame, with ``sim`` (the reference)."""
    return pd.concat([func(formula, data=f, **kw).tidy().assign(sim=i)
                      for i, f in enumerate(frames)], ignore_index=True)


def compare(out, ref, rtol=1e-10):
    """Batched rows equal the standalone rows: columns, sims, terms and numbers."""
    assert list(out.columns[:len(protocol.TIDY_COLUMNS) + 1]) == ["sim", *protocol.TIDY_COLUMNS]
    assert out["sim"].tolist() == ref["sim"].tolist()
    assert out["term"].tolist() == ref["term"].tolist()
    np.testing.assert_allclose(out[NUM].to_numpy(float), ref[NUM].to_numpy(float), rtol=rtol,
                               atol=1e-300, equal_nan=True)


def treatment_frames(seed, n_sims=4):
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


def varied_frames(seed, n_sims=6, min_j=3, max_j=14):
    """Data sets of different sizes and numbers of clusters (sizes 1 to 30)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_sims):
        J = int(rng.integers(min_j, max_j))
        sizes = rng.integers(1, 30, size=J)
        cl = np.repeat(np.arange(J), sizes)
        n = len(cl)
        zc = rng.permutation(np.arange(J) % 2)[cl].astype(float)
        x = rng.normal(size=n) * 3 + 1
        g = rng.choice(["a", "b", "c"], size=n).astype(object)
        y = 1 + zc + 0.5 * x + rng.normal(size=n) * (1 + zc) + rng.normal(size=J)[cl]
        order = rng.permutation(n)   # clusters need not be contiguous
        frames.append(pd.DataFrame({"y": y, "z": zc, "x": x, "g": g, "cl": cl,
                                    "w": rng.uniform(0.3, 3, size=n)}).iloc[order]
                      .reset_index(drop=True))
    return frames


def cluster_batch(seed, n_sims=40):
    """Stacked sims with unequal clusters, clusters of size 1, a cluster alone in its arm,
    large outcome means, unsorted rows."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(n_sims):
        J = int(rng.integers(2, 12))
        sizes = rng.integers(1, 25, size=J)
        if s % 5 == 0:
            sizes[0] = 1
        z = rng.permutation(np.arange(J) % 2)
        if s % 7 == 3 and J > 2:
            z = np.zeros(J, dtype=int)
            z[int(rng.integers(J))] = 1                     # one treated cluster
            sizes[z == 1] = max(int(sizes[z == 1][0]), 2)
        cl = np.repeat(np.arange(J), sizes)
        n = len(cl)
        zc = z[cl].astype(float)
        y = rng.normal(size=n) * (1 + zc) + rng.normal(size=J)[cl] + 1e3 * (s % 3)
        order = rng.permutation(n)
        frames.append(pd.DataFrame({"y": y, "z": zc, "cl": cl * 3 + 1}).iloc[order]
                      .reset_index(drop=True))
    return frames


def argument_frame():
    """A small data set with a column for every argument the argument-error tests name."""
    rng = np.random.default_rng(0)
    n = 24
    return pd.DataFrame({"y": rng.normal(size=n), "z": np.tile([0, 1], n // 2),
                         "x": rng.normal(size=n), "z1": rng.normal(size=n),
                         "z2": rng.normal(size=n), "cl": np.repeat(np.arange(12), 2),
                         "blk": np.repeat([1, 2], 12), "p": 0.5,
                         "clz": np.arange(n) % 2 + 2 * (np.arange(n) // 6),
                         "arm": np.tile(["a", "b", "c"], 8)})


def grouped_batch(frames, group: str = "g") -> Batch:
    """Stack datasets, one simulation each, with ``group`` as the ID column mixed models need."""
    b = Batch.from_frames(frames)
    return Batch(b.columns, b.sim, b.n_sims, id_columns=[group])
