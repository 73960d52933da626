"""Invariants: estimator identities, no input mutation, pickling, determinism."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from declaredesign.estimate import difference_in_means, lm_robust

from ._util import batched


def _data(seed, n1, n2):
    rng = np.random.default_rng(seed)
    z = np.r_[np.zeros(n1), np.ones(n2)]
    y = rng.normal(size=n1 + n2) * (1 + z) + z
    return pd.DataFrame({"y": y, "z": z, "w": rng.uniform(0.5, 2, n1 + n2)})


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n1=st.integers(2, 30), n2=st.integers(2, 30))
def test_difference_in_means_is_the_ols_slope_and_welch_is_hc2(seed, n1, n2):
    d = _data(seed, n1, n2)
    dim = difference_in_means("y ~ z", d)
    ols = lm_robust("y ~ z", d)
    np.testing.assert_allclose(dim.estimate, ols.coefficients["z"], rtol=1e-10)
    # with a binary regressor the HC2 standard error equals Welch's
    np.testing.assert_allclose(dim.std_error, ols.std_error[1], rtol=1e-10)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 100))
def test_weights_are_scale_free(seed, scale):
    d = _data(seed, 8, 9)
    a = lm_robust("y ~ z", d, weights="w").tidy()
    b = lm_robust("y ~ z", d.assign(w=d["w"] * scale), weights="w").tidy()
    np.testing.assert_allclose(a["std_error"], b["std_error"], rtol=1e-9)


def test_inputs_not_mutated_and_fits_pickle():
    d = _data(1, 10, 12).assign(cl=np.arange(22) // 2)
    before = d.copy()
    fit = lm_robust("y ~ z", d, clusters="cl")
    dim = difference_in_means("y ~ z", d, clusters="cl")
    pd.testing.assert_frame_equal(d, before)
    for f in (fit, dim):
        g = pickle.loads(pickle.dumps(f))
        pd.testing.assert_frame_equal(g.tidy(), f.tidy())
    assert "CR2" in fit.summary()
    pd.testing.assert_frame_equal(lm_robust("y ~ z", d, clusters="cl").tidy(), fit.tidy())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 100_000), n_sims=st.integers(1, 4),
       se=st.sampled_from(["CR2", "CR0", "stata", "HC2", "HC3", "classical"]),
       weighted=st.booleans(), factor=st.booleans())
def test_kernel_equals_standalone_on_random_designs(seed, n_sims, se, weighted, factor):
    from declaredesign.batch import Batch

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_sims):
        J = int(rng.integers(2, 8))
        cl = np.repeat(np.arange(J), rng.integers(1, 6, size=J))
        n = len(cl)
        frames.append(pd.DataFrame({
            "y": rng.normal(size=n), "x": rng.normal(size=n),
            "z": rng.integers(0, 2, size=J)[cl].astype(float),
            "g": rng.choice(["a", "b"], size=n).astype(object), "cl": cl,
            "w": rng.uniform(0.2, 3, size=n)}))
    kw = {"se_type": se, "weights": "w" if weighted else None,
          "clusters": "cl" if se in ("CR2", "CR0", "stata") else None}
    formula = "y ~ z + x + g" if factor else "y ~ z + x"
    out = batched(lm_robust)(Batch.from_frames(frames), formula, **kw)
    for s, f in enumerate(frames):
        got = out[out["sim"] == s]
        try:
            fit = lm_robust(formula, f, **kw)
        except Exception:
            assert got["error"].notna().all()
            continue
        if not 1e-20 < fit.res_var < np.inf:
            continue          # perfect fit (or no residual df): SEs are rounding noise in R too
        if kw["clusters"] and f["cl"].nunique() <= fit.rank:
            continue          # fewer clusters than coefficients: a rank-deficient meat whose
            #                   CR2 df sit on a near-singular G (df ~ 1 +- rounding noise)
        ref = fit.tidy()
        if np.nanmax(ref["std_error"]) < 1e-12 * max(1.0, np.nanmax(np.abs(ref["estimate"]))):
            continue          # SEs zero in exact arithmetic (e.g. two clusters): noise
        assert got["term"].tolist() == ref["term"].tolist()
        cols = ["estimate", "std_error", "df", "p_value"]
        np.testing.assert_allclose(got[cols].to_numpy(float), ref[cols].to_numpy(float),
                                   rtol=1e-8, atol=1e-12, equal_nan=True)
