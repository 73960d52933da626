"""lmer alone: its argument spec, errors, the fit object, and its registration."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch
from declaredesign.errors import DeclarationError, FormulaError
from declaredesign.estimate import protocol
from declaredesign.estimate.mixed import LmerSpec, lmer, parse_lmer
from declaredesign.estimate.mixed.lmer import lmer_kernel

# lmer warns on singular fits (as lme4); these tests compare numbers, not warnings
pytestmark = pytest.mark.filterwarnings("ignore::declaredesign.errors.FitWarning")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(10), 4)
    return pd.DataFrame({"g": g, "x": rng.normal(size=40),
                         "y": rng.normal(size=40) + rng.normal(size=10)[g]})


def test_unknown_columns_are_formula_errors(data):
    with pytest.raises(FormulaError, match="'school'"):
        lmer("y ~ x + (1 | school)", data)
    with pytest.raises(FormulaError, match="'w'"):
        lmer("y ~ w + (1 | g)", data)
    with pytest.raises(FormulaError, match="'w'"):
        lmer("y ~ x + (w | g)", data)


def test_bad_arguments(data):
    with pytest.raises(DeclarationError, match=r"lmer\(REML="):
        lmer("y ~ x + (1 | g)", data, REML="yes")
    with pytest.raises(DeclarationError, match=r"lmer\(ddf="):
        lmer("y ~ x + (1 | g)", data, ddf="satterthwaite")
    with pytest.raises(DeclarationError, match=r"lmer\(data="):
        lmer("y ~ x + (1 | g)", data.to_dict())
    with pytest.raises(DeclarationError, match=r"lmer\(formula="):
        lmer(3, data)


def test_intercept_only_fixed_part(data):
    fit = lmer("y ~ (1 | g)", data)
    assert list(fit.fixef.index) == ["(Intercept)"]
    # the intercept-only REML estimate of a balanced design is the grand mean
    assert fit.fixef.iloc[0] == pytest.approx(data.y.mean(), rel=1e-10)


def test_fit_object_accessors(data):
    fit = lmer("y ~ x + (1 + x | g)", data)
    re = fit.ranef()["g"]
    assert list(re.columns) == ["(Intercept)", "x"] and len(re) == 10
    assert fit.npar == 2 + 3 + 1
    assert "LmerFit" in repr(fit)
    import pickle

    back = pickle.loads(pickle.dumps(fit))
    assert back.fixef.equals(fit.fixef)
    t = fit.tidy(conf_int=False)
    assert "conf_low" not in t.columns
    assert t.term.tolist() == ["(Intercept)", "x", "sd__(Intercept)", "cor__(Intercept).x",
                               "sd__x", "sd__Observation"]


# ------------------------------------------------------------------ the spec
def test_spec_is_parsed_once_and_frozen():
    spec = parse_lmer("y ~ x + (1 | g)", REML=False, ddf="residual", conf_level=0.9)
    assert isinstance(spec, LmerSpec)
    assert (spec.REML, spec.ddf, spec.conf_level, spec.outcome) == (False, "residual", 0.9, "y")
    assert spec.variables == ("g", "x", "y")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.REML = True


def test_unknown_keyword_names_it_and_the_accepted_ones():
    with pytest.raises(DeclarationError, match=r"lmer\(clusters='g'\).*REML, ddf, conf_level"):
        parse_lmer("y ~ x + (1 | g)", clusters="g")


@pytest.mark.parametrize("kw,match", [
    (dict(REML="yes"), r"lmer\(REML="), (dict(ddf="KR"), r"lmer\(ddf="),
    (dict(conf_level=95), r"lmer\(conf_level="),
])
def test_spec_names_the_bad_argument(kw, match):
    with pytest.raises(DeclarationError, match=match):
        parse_lmer("y ~ x + (1 | g)", **kw)


def test_registered_with_the_protocol():
    est = protocol.get_estimator(lmer)
    assert est.name == "lmer" and est.kernel is lmer_kernel and est.parse is parse_lmer
    # a partial keeps the kernel and its keywords
    est2, bound = protocol.resolve_model(functools.partial(lmer, REML=False))
    assert est2 is est and bound == {"REML": False}


def test_kernel_declines_what_it_cannot_fit(data):
    b = Batch.from_frames([data, data.assign(g=1), data.assign(x=0.0)])
    res = lmer_kernel(b, parse_lmer("y ~ x + (1 | g)"))
    assert set(res.fallback) == {1, 2}            # one group; x aliased with the intercept
    assert "rank-deficient" in res.fallback[2]
    assert set(res.tidy["sim"]) == {0}
    # random slopes take the batched slopes path, with the same declines
    slopes = lmer_kernel(b, parse_lmer("y ~ x + (1 + x | g)"))
    assert set(slopes.fallback) == {1, 2} and set(slopes.tidy["sim"]) == {0}
    other = lmer_kernel(b, parse_lmer("y ~ x + (0 + x | g)"))
    assert set(other.fallback) == {0, 1, 2} and len(other.tidy) == 0
