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




@pytest.mark.parametrize("se_type", ["classical", "HC0", "HC1", "HC2", "HC3"])
@pytest.mark.parametrize("weighted", [False, True])
def test_blocks_of_simulations_give_the_whole_batch_bit_for_bit(se_type, weighted,
                                                                 monkeypatch):
    # simulations of unequal sizes fitted in blocks of a few hundred rows: every number
    # equals the one-fit-of-the-whole-batch's exactly (the blocks are a cache-size detail)
    rng = np.random.default_rng(11)
    sizes = rng.integers(20, 90, size=40)
    sizes[7] = 3                    # fewer rows than coefficients: flagged, not fitted
    sim = np.repeat(np.arange(len(sizes)), sizes)
    n = len(sim)
    x = rng.normal(size=n)
    z = (rng.uniform(size=n) > 0.5).astype(float)
    X = np.asfortranarray(np.column_stack([np.ones(n), x, z, x * z, x ** 2]))
    y = X @ np.array([1.0, 0.5, -1.0, 0.2, 0.1]) + rng.normal(size=n) * (1 + z)
    w = rng.uniform(0.5, 2.0, size=n) if weighted else None
    sims = GroupIndex(sim, np.arange(len(sizes)), len(sizes))
    monkeypatch.setattr(stacked_ols, "BLOCK_ROWS", 10 ** 9)
    whole = lm_core(sims, y, X, weights=w, se_type=se_type, intercept_col=0)
    monkeypatch.setattr(stacked_ols, "BLOCK_ROWS", 300)
    assert len(stacked_ols._blocks(sims)) > 5
    blocked = lm_core(sims, y, X, weights=w, se_type=se_type, intercept_col=0)
    assert whole.keys() == blocked.keys()
    for key, value in whole.items():
        if value is None:
            assert blocked[key] is None
        else:
            np.testing.assert_array_equal(blocked[key], value, err_msg=key)


def test_blocks_only_where_sums_are_the_batch_sums():
    # an empty simulation (the batch sums with bincount) or rows out of order: one fit
    sim = np.repeat([0, 2, 3], 30000)
    assert stacked_ols._blocks(sim_index(sim, 4)) is None
    shuffled = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], 30000))
    assert stacked_ols._blocks(sim_index(shuffled, 3)) is None
    in_order = np.repeat([0, 1, 2], 30000)
    spans = stacked_ols._blocks(sim_index(in_order, 3))
    assert spans == [(0, 1, 0, 30000), (1, 2, 30000, 60000), (2, 3, 60000, 90000)]


def _leverages_term_by_term(cols, M, sim):
    """The leverages one term at a time, as the plain formula reads (the reference)."""
    h = np.zeros(len(sim))
    for a in range(len(cols)):
        for b in range(a, len(cols)):
            term = cols[a] * cols[a] if a == b else (2.0 * cols[a]) * cols[b]
            h = h + term * M[sim, a, b]
    return h


@pytest.mark.parametrize("sizes", [[50] * 12, [3, 50, 17, 1, 80, 9]])
def test_leverages_made_a_column_at_a_time_equal_the_term_by_term_sum(sizes):
    rng = np.random.default_rng(9)
    sim = np.repeat(np.arange(len(sizes)), sizes)
    n, k = len(sim), 5
    cols = rng.normal(size=(k, n)) * rng.uniform(0.1, 10, size=(k, 1))
    A = rng.normal(size=(len(sizes), k, k))
    M = A @ np.swapaxes(A, 1, 2)
    n_s = np.bincount(sim, minlength=len(sizes))
    expected = _leverages_term_by_term(cols, M, sim)
    for rep in (n_s, None):
        np.testing.assert_array_equal(stacked_ols._leverages(cols, M, sim, rep), expected)
        np.testing.assert_array_equal(stacked_ols._leverages(list(cols), M, sim, rep), expected)
