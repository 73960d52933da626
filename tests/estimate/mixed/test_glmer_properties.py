"""Property tests: glmer's batched fast path agrees with the general fit on random data."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from declaredesign.batch import Batch
from declaredesign.estimate._protocol import get_batched
from declaredesign.estimate.mixed import glmer


@st.composite
def datasets(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    n_groups = draw(st.integers(4, 30))
    max_size = draw(st.integers(3, 12))
    sd_u = draw(st.sampled_from([0.3, 1.0, 2.0]))
    family = draw(st.sampled_from(["binomial", "poisson"]))
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, max_size + 1, n_groups)
    g = np.repeat(np.arange(1, n_groups + 1), sizes)
    x = rng.normal(size=g.size)
    eta = -0.2 + 0.5 * x + rng.normal(0, sd_u, n_groups)[g - 1]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta))) if family == "binomial" else \
        rng.poisson(np.exp(eta))
    return family, pd.DataFrame({"g": g, "x": x, "y": y.astype(float)})


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=datasets(), nagq=st.sampled_from([1, 5]))
def test_fast_equals_general(case, nagq):
    family, d = case
    out = get_batched(glmer)(Batch.from_pandas(d), "y ~ x + (1 | g)", family=family,
                             nAGQ=nagq)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = glmer("y ~ x + (1 | g)", d, family=family, nAGQ=nagq)
    except Exception as e:   # the batched kernel reports the same failure
        assert out["error"].iloc[0].startswith(type(e).__name__)
        return
    want = fit.tidy(effects="fixed").set_index("term")
    got = out.set_index("term").loc[want.index]
    np.testing.assert_allclose(got.estimate, want.estimate, rtol=0,
                               atol=1e-6 * want.std_error.max())
    # SEs come from deriv12's finite-difference Hessian; on tiny, nearly separated
    # data (SEs of 5 on the logit scale) its last digits move with the optimum's.
    np.testing.assert_allclose(got.std_error, want.std_error, rtol=1e-4)
    assert set(got.warning.fillna("")) == {"; ".join(fit.messages)}
