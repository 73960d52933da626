"""Every registered estimator honours the protocol (declaredesign.estimate.protocol).

Parametrised over ``protocol.estimators()``: the estimatr estimators, the mixed models
once they register, and a user's estimator registered here. For each: the spec accepts
exactly the function's keyword arguments, a bad keyword is a DeclarationError naming the
accepted ones, the batched path equals the standalone fit simulation by simulation, a
failing simulation gives the same error/warning schema through both paths, and fits and
specs pickle.
"""

from __future__ import annotations

import functools
import inspect
import pickle
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch
from declaredesign.errors import DeclarationError
from declaredesign.estimate import protocol
from declaredesign.estimate.arguments import spec_keywords
from declaredesign.formula import parse_formula

from ._util import NUM


# ------------------------------------------------------------- a user's estimator
@dataclass(frozen=True)
class _MeanSpec:
    formula: str
    trim: float = 0.0

    @classmethod
    def parse(cls, formula: str, **kwargs: Any) -> _MeanSpec:
        return cls(formula=formula, **spec_keywords("user_mean", cls, kwargs))

    @property
    def outcome(self) -> str:
        return parse_formula(self.formula).outcome


def _mean_fit(spec: _MeanSpec, df: pd.DataFrame) -> pd.DataFrame:
    y = df[spec.outcome].to_numpy(dtype=float)
    if not np.isfinite(y).any():
        raise ValueError("no finite outcome")
    return pd.DataFrame({"term": ["mean"], "estimate": [float(np.nanmean(y))],
                         "outcome": [spec.outcome]})


def _mean_kernel(batch: Batch, spec: _MeanSpec) -> protocol.KernelResult:
    g = batch.groups()
    y = np.asarray(batch[spec.outcome], dtype=float)
    est = g.mean(y)
    ok = np.isfinite(est)
    tidy = protocol.tidy_frame(sim=g.group_sim[ok], term="mean", estimate=est[ok],
                               outcome=spec.outcome)
    return protocol.KernelResult(tidy, {int(s): "no finite outcome" for s in g.group_sim[~ok]})


@protocol.register_estimator(parse=_MeanSpec.parse, fit=_mean_fit, kernel=_mean_kernel)
def user_mean(formula: str, data: pd.DataFrame, trim: float = 0.0) -> pd.DataFrame:
    """The mean of the outcome (a user's estimator, for the conformance suite)."""
    return _mean_fit(_MeanSpec.parse(formula, trim=trim), data)


# ------------------------------------------------------------------ the examples
def _frame(rng: np.random.Generator, n: int = 120) -> pd.DataFrame:
    cl = np.repeat(np.arange(12), n // 12)
    z = (np.arange(12) % 2)[cl].astype(float)
    x = rng.normal(size=n)
    inst = x + rng.normal(size=n)
    u = 2 * rng.normal(size=12)[cl]          # a cluster effect, so mixed models are not singular
    y = 1 + z + 0.5 * x + u + rng.normal(size=n)
    b = (0.5 * z + 1.5 * u + rng.logistic(size=n) > 0.5).astype(float)
    return pd.DataFrame({"y": y, "b": b, "z": z, "x": x, "inst": inst, "cl": cl, "p": 0.5})


#: formula and keywords each estimator is exercised with (estimators registered later,
#: e.g. the mixed models, add theirs here)
EXAMPLES = {
    "lm_robust": ("y ~ z + x", {"clusters": "cl"}),
    "difference_in_means": ("y ~ z", {"clusters": "cl"}),
    "horvitz_thompson": ("y ~ z", {"condition_prs": "p"}),
    "lm_lin": ("y ~ z", {"covariates": "~ x"}),
    "iv_robust": ("y ~ x | inst", {}),
    "user_mean": ("y ~ 1", {}),
    "lmer": ("y ~ z + (1 | cl)", {}),
    "glmer": ("b ~ z + (1 | cl)", {"family": "binomial"}),
}

#: the package's estimators and this module's user estimator (others that test modules
#: collected earlier registered have no example here)
NAMES = sorted(n for n, e in protocol.estimators().items()
               if e.function.__module__.startswith("declaredesign.") or n == "user_mean")

#: kernel vs standalone tolerance: closed forms agree to rounding; mixed models optimise
#: numerically (and take df from numerical derivatives), as their own batched tests assert;
#: glmer's standalone SEs come from a finite-difference Hessian (issue 11 replaces it)
RTOL = {"lmer": 1e-7, "glmer": 1e-4}
#: glmer's general fit and its kernel can stop at different Laplace optima on weakly
#: identified data (tests/estimate/mixed/test_glmer_batched.py keeps such a case as a strict
#: xfail for issue 11); its conformance data are drawn from another seed
SEED = {"glmer": 5}


def _example(name: str) -> tuple[protocol.Estimator, str, dict[str, Any]]:
    ex = EXAMPLES.get(name)
    if ex is None:
        pytest.skip(f"no conformance example for {name!r} yet")
    return protocol.estimators()[name], ex[0], dict(ex[1])


def _frames(seed: int = 0, n_sims: int = 4) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    return [_frame(rng) for _ in range(n_sims)]


def test_registry_holds_every_estimatr_estimator_and_the_users():
    assert {"lm_robust", "difference_in_means", "horvitz_thompson", "lm_lin", "iv_robust",
            "user_mean"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_spec_accepts_exactly_the_functions_keywords(name):
    est, formula, kw = _example(name)
    spec = est.parse(formula, **kw)
    if isinstance(spec, protocol.CallSpec):
        pytest.skip("registered without a spec of its own")
    params = inspect.signature(est.function).parameters
    arguments = {k: p.default for k, p in params.items() if k not in ("formula", "data")}
    # every keyword of the function parses, at its default; a spec may resolve some into
    # derived state (glmer's family and link become one family object)
    defaults = {k: d for k, d in arguments.items() if d is not inspect.Parameter.empty}
    est.parse(formula, **{**defaults, **kw})
    spec_fields = {f.name: f.default for f in fields(spec) if f.name in arguments}
    assert list(spec_fields) == [k for k in arguments if k in spec_fields]
    for k, default in spec_fields.items():
        if arguments[k] is not inspect.Parameter.empty and k not in kw:
            assert default == arguments[k], k


@pytest.mark.parametrize("name", NAMES)
def test_bad_keyword_names_the_accepted_arguments(name):
    est, formula, kw = _example(name)
    with pytest.raises(DeclarationError, match="accepted arguments") as info:
        est.parse(formula, **kw, not_an_argument=1)
    assert "not_an_argument" in str(info.value)
    params = [k for k in inspect.signature(est.function).parameters
              if k not in ("formula", "data")]
    assert all(k in str(info.value) for k in params)


@pytest.mark.parametrize("name", NAMES)
def test_kernel_equals_standalone_per_simulation(name):
    est, formula, kw = _example(name)
    frames = _frames(SEED.get(name, 1))
    spec = est.parse(formula, **kw)
    out = protocol.fit_batch(est, spec, Batch.from_frames(frames))
    assert list(out.columns[:len(protocol.TIDY_COLUMNS) + 1]) == ["sim", *protocol.TIDY_COLUMNS]
    assert out["error"].isna().all() and out["warning"].isna().all()
    for s, f in enumerate(frames):
        ref = protocol.to_tidy(est.fit(spec, f))       # the standalone fit of the spec
        got = out[out["sim"] == s]
        assert got["term"].tolist() == ref["term"].tolist()
        cols = [c for c in NUM if c in ref]
        np.testing.assert_allclose(got[cols].to_numpy(float), ref[cols].to_numpy(float),
                                   rtol=RTOL.get(name, 1e-10), atol=1e-300, equal_nan=True)


@pytest.mark.parametrize("name", NAMES)
def test_failure_schema_is_the_same_through_both_paths(name):
    est, formula, kw = _example(name)
    frames = _frames(2, n_sims=3)
    frames[1] = frames[1].assign(y=np.nan, b=np.nan)   # no complete row: the fit fails
    batch = Batch.from_frames(frames)
    spec = est.parse(formula, **kw)
    batched = protocol.fit_batch(est, spec, batch)
    one_by_one = protocol.fit_per_simulation(lambda df: est.fit(spec, df), batch, range(3),
                                             outcome=getattr(spec, "outcome", None))
    for out in (batched, one_by_one):
        assert {"error", "warning"} <= set(out.columns)
        bad = out[out["sim"] == 1]
        assert len(bad) == 1 and bad["error"].str.len().gt(0).all()
        assert bad[[c for c in NUM if c in bad]].isna().all().all()
        assert out.loc[out["sim"] != 1, "error"].isna().all()
    pd.testing.assert_series_equal(batched["error"], one_by_one["error"], check_names=False)
    pd.testing.assert_series_equal(batched["warning"], one_by_one["warning"],
                                   check_names=False)


@pytest.mark.parametrize("name", NAMES)
def test_fits_and_specs_pickle(name):
    est, formula, kw = _example(name)
    spec = est.parse(formula, **kw)
    spec2 = pickle.loads(pickle.dumps(spec))
    assert type(spec2) is type(spec) and spec2.formula == spec.formula
    f = _frames(3, n_sims=1)[0]
    fit = est.fit(spec, f)
    again = pickle.loads(pickle.dumps(fit))
    pd.testing.assert_frame_equal(protocol.to_tidy(again), protocol.to_tidy(fit))
    pd.testing.assert_frame_equal(protocol.to_tidy(est.fit(spec2, f)), protocol.to_tidy(fit))


@pytest.mark.parametrize("name", NAMES)
def test_partial_keeps_the_kernel(name):
    est, formula, kw = _example(name)
    model = functools.partial(est.function, **kw)
    resolved, bound = protocol.resolve_model(model)
    assert resolved is est and bound == kw
