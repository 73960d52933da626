"""EstimatorStep runs models through the public estimator protocol."""

from __future__ import annotations

import functools
import pickle

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.errors import DeclarationError
from declaredesign.estimate import protocol
from declaredesign.estimate.protocol import CallSpec, resolve_model

# A user's estimator with a batched kernel that counts its calls: the honest observable
# of which path a design took (no monkeypatching).
CALLS = {"kernel": 0, "fit": 0}


def _counting_kernel(batch, spec):
    CALLS["kernel"] += 1
    g = batch.groups()
    y = batch[spec.outcome] * spec.kwargs.get("scale", 1.0)
    return protocol.tidy_frame(sim=g.group_sim, term="mean", estimate=g.mean(y))


def _parse(formula, scale=1.0):
    if not isinstance(scale, (int, float)):
        raise DeclarationError(f"scaled_mean(scale={scale!r}): scale must be a number.")
    return CallSpec(formula, {"scale": scale})


def scaled_mean(formula, data, scale=1.0):
    CALLS["fit"] += 1
    y = data[formula.split("~")[0].strip()] * scale
    return pd.DataFrame({"term": ["mean"], "estimate": [float(y.mean())]})


protocol.register_estimator(scaled_mean, kernel=_counting_kernel, parse=_parse)


def _design(model, **kwargs):
    return (dd.declare_model(N=40, g=dd.normal(), Y=dd.normal(), Z=dd.bernoulli(0.5))
            + dd.declare_assignment(cl=dd.complete_ra(m=20))
            + dd.declare_estimator("Y ~ Z", model=model, label="e", **kwargs))


def test_partial_of_a_registered_estimator_runs_its_kernel_once_per_batch():
    CALLS.update(kernel=0, fit=0)
    model = functools.partial(scaled_mean, scale=2.0)
    res = _design(model, term=True).run_batch(7, np.random.default_rng(1))
    assert CALLS == {"kernel": 1, "fit": 0}
    assert res.estimates["sim"].tolist() == list(range(7))
    # the partial's keyword reached the kernel
    CALLS.update(kernel=0)
    plain = _design(scaled_mean, term=True).run_batch(7, np.random.default_rng(1))
    np.testing.assert_allclose(res.estimates["estimate"], 2.0 * plain.estimates["estimate"])


def test_partial_lm_robust_keeps_the_batched_kernel_and_matches_the_standalone_fit():
    model = functools.partial(dd.lm_robust, clusters="cl")
    est, bound = resolve_model(model)
    assert est.kernel is not None and est.function is dd.lm_robust
    assert bound == {"clusters": "cl"}
    design = (dd.declare_model(N=60, cl=dd.normal(), u=dd.normal())
              + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
              + dd.declare_measurement(cl="np.floor(ID / 6)", Y="0.3 * Z + u")
              + dd.declare_estimator("Y ~ Z", model=model, label="cr2"))
    step = design[-1]
    assert step.estimator.function is dd.lm_robust and step.estimator.kernel is not None
    df = dd.draw_data(design, seed=3)
    got = dd.get_estimates(design, df)
    want = dd.lm_robust("Y ~ Z", df, clusters="cl").tidy()
    want = want[want["term"] == "Z"]
    for col in ("estimate", "std_error", "p_value", "conf_low", "conf_high", "df"):
        np.testing.assert_allclose(got[col].to_numpy(dtype=float),
                                   want[col.replace("_", ".") if col not in want else col]
                                   .to_numpy(dtype=float), rtol=1e-10)


def test_a_bad_keyword_is_an_error_at_declaration():
    with pytest.raises(DeclarationError, match="scale must be a number"):
        dd.declare_estimator("Y ~ Z", model=scaled_mean, scale="big")
    with pytest.raises(DeclarationError, match="scale must be a number"):
        dd.declare_estimator("Y ~ Z", model=functools.partial(scaled_mean, scale="big"))


def test_the_spec_is_derived_state_pickles_carry_the_parameters():
    step = dd.declare_estimator("Y ~ Z", model=functools.partial(scaled_mean, scale=2.0),
                                label="m")
    again = pickle.loads(pickle.dumps(step))
    assert again == step and repr(again) == repr(step)
    assert repr(again.get_params()) == repr(step.get_params())
    assert again.estimator.kernel is _counting_kernel
    assert "_spec" not in step.__getstate__()
    assert "Estimator(" not in repr(step)          # derived state stays out of the repr


def test_a_handler_goes_through_the_per_simulation_fallback():
    def handler(df):
        if df["Y"].mean() > 0:
            raise ValueError("positive")
        return pd.DataFrame({"term": ["m"], "estimate": [df["Y"].mean()]})

    design = (dd.declare_model(N=5, Y=dd.normal())
              + dd.declare_estimator(handler=handler, label="h", term=["m"]))
    out = design.run_batch(20, np.random.default_rng(4)).estimates
    failed = out[out["error"].notna()]
    assert len(failed) and (failed["error"] == "ValueError: positive").all()
    assert (failed["term"] == "m").all()           # counted under the declared term
    assert out["estimate"].notna().sum() == 20 - len(failed)
