"""Helpers shared by the estimate tests (not a test module)."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
