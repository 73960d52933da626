"""lm_robust on one data set: argument errors, statsmodels, properties."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from declaredesign.batch import Batch
from declaredesign.errors import DeclarationError, EstimationError, FormulaError
from declaredesign.estimate import difference_in_means, lm_robust

from ._util import batched, varied_frames


@pytest.fixture
def df():
    rng = np.random.default_rng(0)
    n = 24
    return pd.DataFrame({"y": rng.normal(size=n), "z": np.tile([0, 1], n // 2),
                         "cl": np.repeat(np.arange(6), 4) % 6, "w": rng.uniform(1, 2, n),
                         "s": ["a"] * n})


@pytest.mark.parametrize("kw,match", [
    ({"se_type": "CR2"}, r"lm_robust\(se_type='CR2'\): se_type must be one of .*; got 'CR2'\."),
    ({"se_type": "CR0"}, r"se_type must be"),
    ({"se_type": "HC2", "clusters": "cl"}, r"lm_robust\(se_type='HC2'\): se_type must be"),
    ({"se_type": "HC9"}, r"se_type must be"),
    ({"alpha": 0}, r"lm_robust\(alpha=0\): alpha must be a number in \(0, 1\); got 0\."),
    ({"alpha": 1.5}, r"alpha must be"),
    ({"alpha": "x"}, r"alpha must be"),
    ({"clusters": "nope"}, r"lm_robust\(clusters='nope'\): clusters must be a column"),
    ({"weights": "nope"}, r"weights must be a column"),
    ({"weights": "s"}, r"lm_robust\(weights='s'\): weights must be a numeric column"),
    ({"fixed_effects": "~ nope"}, r"lm_robust\(fixed_effects='~ nope'\): fixed_effects must "
     r"be made of columns"),
    ({"fixed_effects": "~ log(cl)"}, r"fixed_effects must be a one-sided formula"),
    ({"fixed_effects": "~ cl", "weights": "w", "clusters": "cl"},
     r"se_type must be 'CR0' or 'stata' when fixed_effects and weights"),
])
def test_lm_robust_bad_arguments(df, kw, match):
    with pytest.raises(DeclarationError, match=match):
        lm_robust("y ~ z", df, **kw)
    with pytest.raises(DeclarationError, match=match):
        batched(lm_robust)(Batch.from_pandas(df), "y ~ z", **kw)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan])
def test_weights_must_be_positive(df, bad):
    d = df.copy()
    d.loc[3, "w"] = bad
    if np.isnan(bad):
        # a missing weight drops the row, as in estimatr
        assert lm_robust("y ~ z", d, weights="w").nobs == len(d) - 1
        d.loc[3, "w"] = np.inf
    with pytest.raises(DeclarationError, match=r"weights must be a column of positive"):
        lm_robust("y ~ z", d, weights="w")
    with pytest.raises(DeclarationError, match=r"weights must be a column of positive"):
        difference_in_means("y ~ z", d, weights="w")


def test_unknown_columns_and_non_numeric_outcome(df):
    with pytest.raises(FormulaError, match="nope"):
        lm_robust("y ~ nope", df)
    with pytest.raises(FormulaError, match="nope"):
        difference_in_means("nope ~ z", df)
    with pytest.raises(DeclarationError, match=r"formula must be a numeric column"):
        lm_robust("s ~ z", df)
    with pytest.raises(DeclarationError, match=r"formula must be a numeric column"):
        difference_in_means("s ~ z", df)


def test_no_complete_rows(df):
    with pytest.raises(EstimationError, match="no complete rows"):
        lm_robust("y ~ z", df.assign(y=np.nan))


@pytest.mark.parametrize("se_type,cov_type,kw", [
    ("HC0", "HC0", {}), ("HC1", "HC1", {}), ("HC2", "HC2", {}), ("HC3", "HC3", {}),
    ("CR0", "cluster", {"use_correction": False}), ("stata", "cluster", {}),
])
def test_against_statsmodels(se_type, cov_type, kw):
    sm = pytest.importorskip("statsmodels.api")
    f = varied_frames(10, n_sims=1)[0]
    X = np.column_stack([np.ones(len(f)), f["z"], f["x"]])
    clustered = cov_type == "cluster"
    if clustered:
        kw = dict(kw, groups=f["cl"].to_numpy())
    res = sm.OLS(f["y"].to_numpy(), X).fit(cov_type=cov_type, cov_kwds=kw or None)
    fit = lm_robust("y ~ z + x", f, se_type=se_type, clusters="cl" if clustered else None)
    np.testing.assert_allclose(fit.coefficients.to_numpy(), res.params, rtol=1e-10)
    np.testing.assert_allclose(fit.vcov.to_numpy(), res.cov_params(), rtol=1e-10)


def _data(seed, n1, n2):
    rng = np.random.default_rng(seed)
    z = np.r_[np.zeros(n1), np.ones(n2)]
    y = rng.normal(size=n1 + n2) * (1 + z) + z
    return pd.DataFrame({"y": y, "z": z, "w": rng.uniform(0.5, 2, n1 + n2)})


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
