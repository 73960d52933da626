"""Property tests: the batched fast path agrees with the general fit on random data."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from declaredesign.batch import Batch
from declaredesign.estimate._protocol import get_batched
from declaredesign.estimate.mixed import lmer


@st.composite
def datasets(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    n_groups = draw(st.integers(3, 25))
    max_size = draw(st.integers(1, 8))
    sd_u = draw(st.sampled_from([0.0, 0.1, 1.0, 5.0]))
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_size + 1, n_groups)
    if sizes.sum() <= n_groups + 2:        # lme4 needs more rows than groups
        sizes[0] += 3
    g = np.repeat(np.arange(1, n_groups + 1), sizes)
    x = rng.normal(size=g.size)
    y = 2 + x + rng.normal(0, sd_u, n_groups)[g - 1] + rng.normal(size=g.size)
    return pd.DataFrame({"g": g, "x": x, "y": y})


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=datasets(), reml=st.booleans())
def test_fast_equals_general(d, reml):
    out = get_batched(lmer)(Batch.from_pandas(d), "y ~ x + (1 | g)", REML=reml)
    fit = lmer("y ~ x + (1 | g)", d, REML=reml)
    want = fit.tidy(effects="fixed").set_index("term")
    got = out.set_index("term").loc[want.index]
    np.testing.assert_allclose(got.estimate, want.estimate, rtol=1e-7,
                               atol=1e-9 * want.std_error.max())
    np.testing.assert_allclose(got.std_error, want.std_error, rtol=1e-6)
    np.testing.assert_allclose(got.df, want.df, rtol=1e-5)
    assert (got.warning.notna() == fit.is_singular).all()
