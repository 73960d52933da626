"""fabricatr's correlate (against R's deterministic rho = +-1 cases, fixtures in
tests/fixtures/fabricatr_correlate), draw_multivariate/mvrnorm, and draw_count /
draw_categorical latent/link as fabricatr 1.0 has them."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.batch import Batch
from declaredesign.errors import DeclarationError
from declaredesign.expressions import evaluate
from declaredesign.fabricate import (
    correlate,
    draw_binary,
    draw_binomial,
    draw_categorical,
    draw_count,
    draw_multivariate,
    exponential,
    gamma,
    lognormal,
    mvrnorm,
    normal,
    poisson,
    uniform,
)
from declaredesign.fabricate._multivariate import group_ranks

FIXTURE = pd.read_csv(Path(__file__).parents[1] / "fixtures" / "fabricatr_correlate" /
                      "correlate.csv")
GIVEN = FIXTURE.loc[FIXTURE.case == "rpois_rho1", "given"].to_numpy()

CASES = {
    "rpois_rho1": lambda g: correlate("rpois", given=g, rho=1, **{"lambda": 3}),
    "rpois_rho_neg1": lambda g: correlate(poisson, lam=3, given=g, rho=-1),
    "rnorm_rho1": lambda g: correlate("rnorm", mean=1, sd=2, given=g, rho=1),
    "runif_rho1": lambda g: correlate(uniform, min=2, max=5, given=g, rho=1),
    "rlnorm_rho1": lambda g: correlate(lognormal, meanlog=0, sdlog=0.5, given=g, rho=1),
    "rgamma_rho_neg1": lambda g: correlate(gamma, shape=2, rate=3, given=g, rho=-1),
    "rexp_rho1": lambda g: correlate(exponential, rate=2, given=g, rho=1),
    "rbinom_rho1": lambda g: correlate("rbinom", size=4, prob=0.6, given=g, rho=1),
    "draw_count_rho1": lambda g: correlate(draw_count, mean=2.5, given=g, rho=1),
    "draw_binomial_rho1": lambda g: correlate(draw_binomial, prob=0.3, trials=5, given=g,
                                              rho=1),
    "draw_binary_probit": lambda g: correlate(draw_binary, latent=0.4, link="probit",
                                              given=g, rho=1),
    "draw_binary_logit_neg": lambda g: correlate(draw_binary, latent=-0.3, link="logit",
                                                 given=g, rho=-1),
    "draw_binary_prob": lambda g: correlate(draw_binary, prob=0.45, given=g, rho=1),
}


def test_every_fixture_case_is_covered():
    assert set(FIXTURE.case) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_correlate_matches_fabricatr_when_deterministic(name):
    expected = FIXTURE.loc[FIXTURE.case == name, "value"].to_numpy()
    got = CASES[name](GIVEN).draw(seed=1)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_correlate_ranks_within_each_simulation():
    # Two simulations with the same ranks give the same deterministic result.
    b = Batch({"x": np.concatenate([GIVEN, GIVEN * 10 - 3])},
              np.repeat([0, 1], GIVEN.shape[0]), 2)
    out = evaluate(correlate(poisson, lam=3, given="x", rho=1), b, np.random.default_rng(0))
    assert np.array_equal(out[:12], out[12:])
    assert out[:12].tolist() == FIXTURE.loc[FIXTURE.case == "rpois_rho1", "value"].tolist()


def test_group_ranks_average_ties_like_r():
    r, n = group_ranks(np.array([2.0, 1.0, 2.0, 9.0, 1.0]), np.array([0, 0, 0, 1, 1]), 2)
    assert r.tolist() == [2.5, 1.0, 2.5, 2.0, 1.0] and n.tolist() == [3, 3, 3, 2, 2]


def test_correlate_gives_the_requested_rank_correlation_in_a_design():
    df = dd.fabricate(N=4000, x=normal(), y=correlate(draw_count, mean=3, given="x", rho=0.7),
                      z=correlate("rnorm", mean=0, sd=1, given="x", rho=-0.5), seed=2)
    assert abs(df[["x", "z"]].corr().iloc[0, 1] + 0.5) < 0.05
    assert 0.55 < df[["x", "y"]].corr(method="spearman").iloc[0, 1] < 0.75
    assert df["y"].dtype.kind == "i"


def test_correlate_with_a_quantile_y_function_and_checks():
    def draw_scaled(scale, quantile_y):
        return scale * quantile_y

    out = correlate(draw_scaled, scale=10, given=[3.0, 1.0, 2.0], rho=1).draw(seed=1)
    np.testing.assert_allclose(out, [7.5, 2.5, 5.0])
    node = correlate(draw_count, mean=2, given="x", rho=0.3)
    assert repr(node) == "correlate(draw_count, mean=2, given='x', rho=0.3)"
    assert repr(pickle.loads(pickle.dumps(node))) == repr(node)
    with pytest.raises(DeclarationError, match="rho must be a single number in"):
        correlate(draw_count, mean=2, given="x", rho=1.5)
    with pytest.raises(DeclarationError, match="draw_handler must be"):
        correlate(len, given="x", rho=0.5)
    with pytest.raises(DeclarationError, match="lambda must be given for rpois"):
        correlate("rpois", given="x", rho=0.5)


def test_draw_multivariate_with_mvrnorm():
    sigma = [[1.0, 0.8], [0.8, 2.0]]
    df = dd.fabricate(N=20000, mv=draw_multivariate(["A", "B"], mvrnorm([0.0, 1.0], sigma)),
                      seed=3)
    assert list(df.columns) == ["ID", "A", "B"]
    np.testing.assert_allclose(df[["A", "B"]].mean(), [0.0, 1.0], atol=0.04)
    np.testing.assert_allclose(df[["A", "B"]].cov(), sigma, atol=0.06)
    d = draw_multivariate("Y", mvrnorm([0, 0, 0], np.eye(3)))
    assert d.names == ["Y_1", "Y_2", "Y_3"] and d(5, seed=1).shape == (5, 3)
    assert pickle.loads(pickle.dumps(d)).names == d.names


def test_draw_multivariate_with_a_function_in_a_design_step():
    def two_uniforms(N, rng):
        u = rng.random(N)
        return np.column_stack([u, 1 - u])

    mv = draw_multivariate(["u1", "u2"], two_uniforms)
    design = (dd.declare_model(N=10, x=normal())
              + dd.declare_measurement(mv=mv)
              + dd.declare_inquiry(s="mean(u1 + u2)"))
    df = dd.draw_data(design, seed=1)
    assert np.allclose(df.u1 + df.u2, 1.0) and "mv" not in df
    assert design.steps[1].creates() == {"u1", "u2"}


def test_draw_multivariate_checks():
    with pytest.raises(DeclarationError, match="Sigma must be positive"):
        mvrnorm([0, 0], [[1, 2], [2, 1]])
    with pytest.raises(DeclarationError, match="Sigma must be a 2 x 2 matrix"):
        mvrnorm([0, 0], np.eye(3))
    with pytest.raises(DeclarationError, match="k must be given"):
        draw_multivariate("Y", lambda N, rng: np.zeros((N, 2)))
    with pytest.raises(DeclarationError, match="names must be 2 names"):
        draw_multivariate(["a"], mvrnorm([0, 0], np.eye(2)))
    bad = draw_multivariate(["a", "b"], lambda N, rng: np.zeros((N, 3)))
    with pytest.raises(DeclarationError, match="N x 2 matrix"):
        bad(4)


def test_draw_count_and_categorical_take_latent_with_the_identity_link_only():
    x = np.array([0.0, 0.0, 0.0])
    assert draw_count(latent=x, seed=1).tolist() == [0, 0, 0]
    assert draw_count(latent=x, link="identity", seed=1).tolist() == [0, 0, 0]
    assert draw_categorical(latent=[0, 0, 1], N=3, seed=1).tolist() == [3, 3, 3]
    with pytest.raises(DeclarationError, match="count data take no link function"):
        draw_count(latent="x", link="logit")
    with pytest.raises(DeclarationError, match="categorical data take no link function"):
        draw_categorical(latent=[0.5, 0.5], link="probit")
    with pytest.raises(DeclarationError, match="mean must be omitted when latent"):
        draw_count(mean=2, latent="x")
    # Streams of the existing form are unchanged: mean= and latent= draw the same values.
    assert draw_count(mean=[1.0, 5.0], seed=4).tolist() == \
        draw_count(latent=[1.0, 5.0], seed=4).tolist()


def test_rep_as_r():
    from declaredesign.fabricate import rep

    assert rep(0.125, 8).tolist() == [0.125] * 8
    assert rep([1, 2], times=2, each=2).tolist() == [1, 1, 2, 2, 1, 1, 2, 2]
    assert rep(["a", "b"], times=[2, 1]).tolist() == ["a", "a", "b"]
    assert rep([1, 2, 3], length_out=5).tolist() == [1, 2, 3, 1, 2]
    with pytest.raises(DeclarationError, match="times must be one count or one per element"):
        rep([1, 2], times=[1, 2, 3])
    with pytest.raises(DeclarationError, match="times must be a non-negative integer"):
        rep(1, times=-1)


def test_draw_categorical_refuses_a_row_without_positive_probability():
    # R: sample() stops with "too few positive probabilities".
    with pytest.raises(DeclarationError, match="positive in at least one category"):
        draw_categorical([[0, 0], [1, 1]], seed=1)


def test_missing_parameters_give_missing_draws_as_in_r():
    # R: rpois(2, c(NA, 1)) and rbinom(...) give NA (with a warning), not a crash.
    out = draw_count(mean=[np.nan, 1.0], seed=1)
    assert np.isnan(out[0]) and out[1] >= 0
    assert np.isnan(poisson([np.nan, 1.0], seed=1)[0])
    assert np.isnan(draw_binomial(prob=[np.nan, 0.5], trials=2, seed=1)[0])
    # Without NaN the stream is the one drawn before (integers, same values).
    assert poisson([2.0, 1.0], seed=1).tolist() == \
        np.random.default_rng(1).poisson([2.0, 1.0]).tolist()
    # R's runif gives NaN where max < min.
    u = uniform([0, 2], [1, 1], seed=1)
    assert 0 <= u[0] < 1 and np.isnan(u[1])
