"""Distribution helpers: moments, fabricatr edge cases, laziness, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.special import expit, ndtr

from declaredesign import Batch, DeclarationError
from declaredesign.expressions import evaluate
from declaredesign.fabricate import (
    bernoulli,
    binomial,
    draw_binary,
    draw_binary_icc,
    draw_binomial,
    draw_categorical,
    draw_count,
    draw_likert,
    draw_normal_icc,
    draw_ordered,
    draw_quantile,
    exponential,
    gamma,
    lognormal,
    normal,
    poisson,
    split_quantile,
    uniform,
)

N = 200_000


def check_moments(x, mean, var, z=5.0):
    """Sample mean and variance within z standard errors (normal approximations)."""
    x = np.asarray(x, dtype=float)
    n = x.size
    assert abs(x.mean() - mean) < z * np.sqrt(var / n), (x.mean(), mean)
    # SE of the sample variance ~ sqrt((mu4 - var^2) / n); use the sample's mu4.
    mu4 = np.mean((x - x.mean()) ** 4)
    assert abs(x.var(ddof=1) - var) < z * np.sqrt(max(mu4 - var**2, 1e-300) / n), \
        (x.var(ddof=1), var)


@pytest.mark.parametrize("draw,mean,var", [
    (normal(mean=2, sd=3), 2, 9),
    (uniform(min=-1, max=3), 1, 16 / 12),
    (poisson(lam=4), 4, 4),
    (binomial(size=10, prob=0.3), 3, 2.1),
    (bernoulli(prob=0.2), 0.2, 0.16),
    (lognormal(meanlog=0, sdlog=0.5), np.exp(0.125), (np.exp(0.25) - 1) * np.exp(0.25)),
    (gamma(shape=2, rate=4), 0.5, 2 / 16),
    (exponential(rate=2), 0.5, 0.25),
    (draw_count(mean=3), 3, 3),
    (draw_binomial(prob=0.4, trials=5), 2, 1.2),
    (draw_binary(prob=0.7), 0.7, 0.21),
    (draw_binary(latent=0.5, link="probit"), ndtr(0.5), ndtr(0.5) * (1 - ndtr(0.5))),
    (draw_binary(latent=-1.0, link="logit"), expit(-1), expit(-1) * (1 - expit(-1))),
])
def test_moments(draw, mean, var):
    check_moments(draw.draw(N=N, seed=11), mean, var)


def test_eager_equals_lazy_and_is_deterministic():
    a = normal(1, 2, N=5, seed=3)
    b = normal(1, 2).draw(N=5, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, normal(1, 2, N=5, seed=4))


def test_argument_columns_arrays_and_nodes():
    b = Batch({"m": np.array([0.0, 100.0, 200.0])}, sim=np.array([0, 0, 1]), n_sims=2)
    x = evaluate(normal(mean="m", sd=0), b, np.random.default_rng(0))
    np.testing.assert_array_equal(x, b["m"])
    y = evaluate(normal(mean=np.array([1.0, 2.0, 3.0]), sd=normal(0, 0) + 0), b,
                 np.random.default_rng(0))
    np.testing.assert_array_equal(y, [1.0, 2.0, 3.0])
    z = evaluate(uniform(min="m", max="m + 1"), b, np.random.default_rng(0))
    assert np.all((z >= b["m"]) & (z < b["m"] + 1))


def test_poisson_plus_five_is_lazy_and_readable():
    node = poisson(20) + 5
    assert repr(node) == "poisson(lam=20) + 5"
    x = node.draw(N=1000, seed=1)
    assert x.min() >= 5
    assert repr(2 * (normal() + 1)) == "2 * (normal(mean=0.0, sd=1.0) + 1)"


def test_nodes_pickle():
    node = np.exp(normal("x", 2) * 3 + poisson(1))
    again = pickle.loads(pickle.dumps(node))
    assert repr(again) == repr(node)


def test_eager_with_column_name_is_refused():
    with pytest.raises(DeclarationError, match="needs data"):
        normal(mean="x", seed=1)


@pytest.mark.parametrize("make,match", [
    (lambda: normal(sd=-1), r"normal\(sd=-1\): sd must be non-negative"),
    (lambda: uniform(min=2, max=1), "max must be at least min"),
    (lambda: poisson(lam=-0.5), "lam must be non-negative"),
    (lambda: binomial(size=3, prob=1.5), "prob must be a number in"),
    (lambda: bernoulli(prob=-0.1), "prob must be"),
    (lambda: draw_binary(prob=2), "prob must be"),
    (lambda: draw_binary(latent=0.0, link="cloglog"), "link must be one of"),
    (lambda: draw_binomial(prob=0.5, trials=0), "trials must be a positive integer"),
    (lambda: draw_ordered([1.0], breaks=[1, 0]), "ascending"),
    (lambda: draw_ordered([1.0], breaks=[0, 1], break_labels=["a", "b"]), "of length 3"),
    (lambda: draw_likert([1.0], min=0, max=5), "breaks must be given"),
    (lambda: draw_likert([1.0], min=0, max=5, bins=5, labels=["a"]), "of length 5"),
    (lambda: split_quantile([1.0, 2.0], type=1), "type must be"),
    (lambda: draw_normal_icc(clusters=[1, 2], ICC=1.5), "ICC must be"),
    (lambda: draw_normal_icc(clusters=[1, 2]), "ICC must be given"),
    (lambda: draw_binary_icc(clusters=[1, 2], ICC=-0.2), "ICC must be"),
    (lambda: draw_categorical([0.5, -0.5]), "non-negative"),
])
def test_declaration_errors(make, match):
    with pytest.raises(DeclarationError, match=match):
        make()


def test_runtime_probability_check_names_the_argument():
    b = Batch({"p": np.array([0.5, 1.5])}, sim=np.zeros(2, int), n_sims=1)
    with pytest.raises(DeclarationError, match=r"draw_binary\(prob=1.5\)"):
        evaluate(draw_binary("p"), b, np.random.default_rng(0))


# ----------------------------------------------------------- fabricatr semantics
def test_draw_ordered_value_on_a_break_goes_up():
    x = np.array([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
    assert draw_ordered(x, breaks=[-1, 0, 1]).tolist() == [1, 2, 2, 3, 3, 4, 4]


def test_draw_ordered_labels_strict_and_infinite_breaks():
    x = np.array([-2.0, 0.0, 2.0, np.nan])
    lab = draw_ordered(x, breaks=[-1, 0, 1], break_labels=["a", "b", "c", "d"])
    assert lab.tolist() == ["a", "c", "d", None]
    strict = draw_ordered(x, breaks=[-1, 0, 1], strict=True)
    assert np.isnan(strict[0]) and strict[1] == 2 and np.isnan(strict[2])
    # With infinite outer breaks fabricatr does not add 1: codes 1..len(breaks)-1.
    inf = draw_ordered(np.array([-5.0, 0.5, 5.0]), breaks=[-np.inf, 0, np.inf])
    assert inf.tolist() == [1, 2, 2]


def test_draw_likert_right_closed_bins():
    x = np.array([-5.0, -4.999, 0.0, 4.999, 5.0, 5.001, -6.0])
    got = draw_likert(x, min=-5, max=5, bins=7)
    assert np.isnan(got[0]) and np.isnan(got[5]) and np.isnan(got[6])
    # cut(x, seq(-5, 5, length.out = 8)) codes
    assert got[1:5].tolist() == [1.0, 4.0, 7.0, 7.0]
    assert got.dtype == np.float64


def test_draw_likert_breaks_and_labels():
    x = np.array([0.5, 1.0, 1.5, 3.0])
    got = draw_likert(x, breaks=[0, 1, 2, 3], labels=["lo", "mid", "hi"])
    assert got.tolist() == ["lo", "lo", "mid", "hi"]


def test_split_quantile_matches_r_cut_of_quantiles():
    x = np.arange(1.0, 11.0)
    # R: cut(1:10, quantile(1:10, 0:4/4), include.lowest=TRUE) ->
    #    1 1 1 2 2 3 3 4 4 4
    assert split_quantile(x, type=4).tolist() == [1, 1, 1, 2, 2, 3, 3, 4, 4, 4]


def test_split_quantile_is_within_each_sim():
    b = Batch({"x": np.array([1.0, 2.0, 100.0, 200.0])}, sim=np.array([0, 0, 1, 1]),
              n_sims=2)
    assert evaluate(split_quantile("x", type=2), b).tolist() == [1, 2, 1, 2]


def test_draw_quantile_equal_groups():
    q = draw_quantile(5, N=1000, seed=2)
    assert np.bincount(q).tolist() == [0, 200, 200, 200, 200, 200]


def test_draw_categorical_frequencies_and_labels():
    p = np.array([0.2, 0.5, 0.3])
    x = draw_categorical(p, N=N, seed=3)
    freq = np.bincount(x, minlength=4)[1:] / N
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / N))
    lab = draw_categorical([[1, 0], [0, 1]], category_labels=["a", "b"], seed=1)
    assert lab.tolist() == ["a", "b"]
    # unnormalised probabilities are normalised, as R's sample() does
    assert set(draw_categorical([0, 2, 0], N=10, seed=1).tolist()) == {2}


def anova_icc(x, clusters):
    """One-way ANOVA estimator of the ICC for equal cluster sizes."""
    k = clusters.max() + 1
    m = x.size // k
    g = x.reshape(k, m)
    msb = m * g.mean(axis=1).var(ddof=1)
    msw = g.var(axis=1, ddof=1).mean()
    return (msb - msw) / (msb + (m - 1) * msw)


def test_draw_normal_icc_recovers_icc_and_total_sd():
    clusters = np.repeat(np.arange(2000), 10)
    x = draw_normal_icc(mean=1.0, clusters=clusters, ICC=0.3, seed=4)
    assert abs(anova_icc(x, clusters) - 0.3) < 0.03
    # sd = 1 within; sd_between = sqrt(.3 / .7)
    check_moments(x, 1.0, 1 + 0.3 / 0.7, z=6)
    y = draw_normal_icc(clusters=clusters, ICC=0.3, total_sd=2.0, seed=4)
    assert abs(np.std(y, ddof=1) - 2.0) < 1e-12


def test_draw_normal_icc_total_sd_is_per_sim():
    b = Batch({"c": np.repeat([1, 2, 1, 2], 50)}, sim=np.repeat([0, 1], 100), n_sims=2)
    y = evaluate(draw_normal_icc(clusters="c", ICC=0.5, total_sd=3.0), b,
                 np.random.default_rng(1))
    for s in (0, 1):
        assert abs(np.std(y[b.sim == s], ddof=1) - 3.0) < 1e-12


def test_draw_binary_icc_extremes_and_icc():
    clusters = np.repeat(np.arange(3000), 8)
    one = draw_binary_icc(0.4, clusters=clusters, ICC=1, seed=5).reshape(3000, 8)
    assert np.all(one == one[:, :1])
    x = draw_binary_icc(0.4, clusters=clusters, ICC=0.25, seed=5)
    check_moments(x, 0.4, 0.24, z=6)
    assert abs(anova_icc(x.astype(float), clusters) - 0.25) < 0.03


def test_icc_clusters_are_grouped_by_sim():
    # Cluster label 1 in sim 0 and in sim 1 are different clusters.
    b = Batch({"c": np.ones(2000, dtype=int)}, sim=np.repeat([0, 1], 1000), n_sims=2)
    y = evaluate(draw_binary_icc(0.5, clusters="c", ICC=1), b, np.random.default_rng(0))
    assert len(set(y[:1000])) == 1 and len(set(y[1000:])) == 1
    sims_differ = [evaluate(draw_normal_icc(clusters="c", sd=0.0, sd_between=1.0), b,
                            np.random.default_rng(s)) for s in range(3)]
    assert all(v[0] != v[-1] for v in sims_differ)


def test_icc_helpers_accept_one_value_per_cluster():
    clusters = np.array([1, 1, 2, 2, 3, 3])
    x = draw_normal_icc(mean=[0.0, 100.0, 200.0], clusters=clusters, sd=0.0,
                        sd_between=0.0, seed=1)
    assert x.tolist() == [0.0, 0.0, 100.0, 100.0, 200.0, 200.0]
    y = draw_binary_icc(prob=[0.0, 1.0, 0.0], clusters=clusters, ICC=0.5, seed=1)
    assert y.tolist() == [0, 0, 1, 1, 0, 0]


def test_cut_semantics_checked_against_base_r():
    # Values printed by R 4.2 (base functions that fabricatr calls):
    #   as.numeric(cut(x, seq(-5, 5, length.out = 8)))
    #   findInterval(c(-1.5, -1, -0.5, 0, 0.5, 1, 1.5), c(-1, 0, 1))
    #   as.integer(cut(y, quantile(y, seq(0, 1, length.out = 5)), include.lowest = TRUE))
    #   as.integer(cut(1:10, quantile(1:10, 0:3/3), include.lowest = TRUE))
    x = np.array([-5, -4.999, 0, 4.999, 5, 5.001, -6])
    np.testing.assert_array_equal(draw_likert(x, min=-5, max=5, bins=7),
                                  [np.nan, 1, 4, 7, 7, np.nan, np.nan])
    r_find = np.array([0, 1, 1, 2, 2, 3, 3])
    got = draw_ordered(np.array([-1.5, -1, -0.5, 0, 0.5, 1, 1.5]), breaks=[-1, 0, 1])
    np.testing.assert_array_equal(got, r_find + 1)
    y = np.array([3.1, 1, 7, 2, 2, 9, 4.4, 5, 6, 0.5, 8, 8])
    assert split_quantile(y, 4).tolist() == [2, 1, 3, 1, 1, 4, 2, 3, 3, 1, 4, 4]
    assert split_quantile(np.arange(1.0, 11), 3).tolist() == [1, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_deterministic_draws_inside_expressions_are_evaluated_per_simulation():
    # draw_ordered / split_quantile on a column inside an expression string: the helper
    # must not evaluate eagerly on the batch's arrays (it used to, and then crashed)
    import declaredesign as dd
    df = dd.fabricate(N=6, x="c(-2, -0.5, 0.5, 2, 3, 4)",
                      Y="draw_ordered(x=x, breaks=qnorm(seq(0, 1, length_out=5)))",
                      q="split_quantile(x, 2)")
    assert df["Y"].tolist() == [1, 2, 3, 4, 4, 4]
    assert df["q"].tolist() == [1, 1, 1, 2, 2, 2]
    draws = dd.simulate_design(
        dd.declare_model(N=4, x="rnorm(N)", q="split_quantile(x, 2)")
        + dd.declare_inquiry(high="sum(q == 2)"), sims=3, seed=1)
    assert draws["estimand"].tolist() == [2, 2, 2]


@pytest.mark.parametrize(("sampler", "a", "b"), [("_s_normal", 0.3, 2.5), ("_s_normal", 0, 1),
                                                 ("_s_uniform", -0.5, 0.5),
                                                 ("_s_uniform", 0, 1)])
def test_scalar_parameters_draw_in_place_with_the_numbers_of_array_ones(sampler, a, b):
    # scalar parameters scale and shift the draw in its own array: the same numbers as
    # the same parameters given row by row
    from types import SimpleNamespace

    from declaredesign.fabricate import _draws
    draw = getattr(_draws, sampler)
    n = 1000

    def ctx():
        return SimpleNamespace(rng=np.random.default_rng(5), n_rows=n)

    scalar = draw(ctx(), a, b)
    rows = draw(ctx(), np.full(n, float(a)), np.full(n, float(b)))
    np.testing.assert_array_equal(scalar, rows)
