"""Helpers shared by the estimate tests (not a test module)."""

from __future__ import annotations

import numpy as np

TIDY_R = {"estimate": "estimate", "std.error": "std_error", "statistic": "statistic",
          "p.value": "p_value", "conf.low": "conf_low", "conf.high": "conf_high", "df": "df"}


def assert_close(actual, expected, rtol=1e-8, atol=1e-300, what=""):
    """Relative comparison where NaN (R's NA) must match NaN."""
    a = np.asarray(actual, dtype=float)
    e = np.asarray([np.nan if v is None else v for v in np.ravel(expected)],
                   dtype=float).reshape(np.shape(expected))
    assert a.shape == e.shape, what
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)
