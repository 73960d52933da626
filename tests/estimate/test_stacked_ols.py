"""The stacked (batched) least squares and sandwich against the single-data-set ones."""

from __future__ import annotations

import numpy as np
import pytest

from declaredesign.estimate import sandwich as sandwich_maths
from declaredesign.estimate import stacked_ols
from declaredesign.estimate.grouped_sums import sim_index
from declaredesign.estimate.sandwich import sandwich
from declaredesign.estimate.stacked_ols import lm_core
from declaredesign.groups import GroupIndex

from ._util import varied_frames


def test_cr2_kxk_pieces_equal_direct_computation():
    """The k x k CR2 formulas (vcov and Bell-McCaffrey df) against the n_g x n_g route."""
    rng = np.random.default_rng(7)
    sizes = np.array([1, 1, 2, 5, 9, 17, 40])
    cl = np.repeat(np.arange(len(sizes)), sizes)
    n = len(cl)
    X = np.column_stack([np.ones(n), rng.normal(size=n), (cl % 2).astype(float),
                         rng.normal(size=n) ** 2])
    y = X @ np.array([1.0, 0.5, -1.0, 0.2]) + rng.normal(size=n)
    clusters = GroupIndex(cl, np.zeros(len(sizes), dtype=np.int64), 1)
    res = lm_core(sim_index(np.zeros(n, dtype=np.int64), 1), y, X, clusters=clusters,
                  se_type="CR2")
    M = np.linalg.inv(X.T @ X)
    b = M @ X.T @ y
    direct = sandwich(X, y - X @ b, M, "CR2", cluster=cl)
    np.testing.assert_allclose(res["coef"][0], b, rtol=1e-11)
    np.testing.assert_allclose(res["se"][0], np.sqrt(np.diag(direct.vcov)), rtol=1e-11)
    np.testing.assert_allclose(res["df"][0], direct.df, rtol=1e-10)


def _k2_frames(seed, n_sims=8):
    """Two-coefficient CR2 fits: size-1 clusters, a leverage-one cluster (a dummy that is
    non-zero only there), cluster-constant regressors (rank-1 ``A_g``)."""
    frames = varied_frames(seed, n_sims=n_sims)
    for i, f in enumerate(frames):
        f["d"] = (f["cl"] == f["cl"].iloc[0]).astype(float)
        f["xc"] = f.groupby("cl")["x"].transform("mean")
        if i % 2:
            f["y"] = f["y"] + 1e4
    return frames


@pytest.mark.parametrize("col", ["x", "z", "d", "xc"])
def test_cr2_two_coefficients_equals_general_kxk(col, monkeypatch):
    frames = _k2_frames(12, n_sims=10)
    sim = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
    y = np.concatenate([f["y"].to_numpy() for f in frames])
    x = np.concatenate([f[col].to_numpy() for f in frames])
    cl = np.concatenate([f["cl"].to_numpy() for f in frames])
    S = len(frames)
    g = GroupIndex.from_keys(sim, S, cl)
    X = np.column_stack([np.ones(len(y)), x])
    fast = lm_core(sim_index(sim, S), y, X, clusters=g, se_type="CR2", intercept_col=0)
    monkeypatch.setattr(stacked_ols, "cr2_stacked", sandwich_maths._cr2_general)
    ref = lm_core(sim_index(sim, S), y, X, clusters=g, se_type="CR2", intercept_col=0)
    np.testing.assert_allclose(fast["coef"], ref["coef"], rtol=1e-12)
    np.testing.assert_allclose(fast["se"], ref["se"], rtol=1e-9)
    np.testing.assert_allclose(fast["df"], ref["df"], rtol=1e-9, equal_nan=True)


