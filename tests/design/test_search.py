"""find_sample_size / find_mde recover the analytic answers of a two-arm trial."""

import matplotlib
import numpy as np
import pytest
from scipy.stats import norm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import declaredesign as dd  # noqa: E402
from declaredesign.design.search import SearchResult, find_mde, find_sample_size  # noqa: E402
from declaredesign.errors import DeclarationError  # noqa: E402

Z = norm.ppf(0.975) + norm.ppf(0.8)


def analytic_total_n(effect, sd=1.0):
    """Two equal arms, two-sided 5% Welch/t test, 80% power (statsmodels' t power)."""
    from statsmodels.stats.power import TTestIndPower

    return 2 * TTestIndPower().solve_power(effect / sd, alpha=0.05, power=0.8)


def test_sample_size_recovers_the_t_test_answer():
    res = find_sample_size(dd.examples.two_arm, "N", fixed={"ate": 0.5}, lower=40,
                           upper=300, sims=400, seed=3)
    truth = analytic_total_n(0.5)  # 127.5; the normal formula gives 4 * Z**2 / 0.25 = 125.6
    assert res.conf_low < truth < res.conf_high
    assert res.conf_high - res.conf_low < 20  # informative, not just wide
    assert res.recommended == np.ceil(res.estimate)
    assert isinstance(res, SearchResult) and res.estimator == "DIM"
    # a second round was spent around the answer
    assert set(res.grid["round"]) == {1, 2}
    near = res.grid[res.grid["round"] == 2]["N"]
    assert near.between(res.estimate - 25, res.estimate + 25).all()
    # the fitted curve passes through the target at the estimate
    i = np.argmin(abs(res.curve["N"] - res.estimate))
    assert res.curve["fitted"].iloc[i] == pytest.approx(0.8, abs=0.01)
    assert "N = " in str(res) and "<table" in res._repr_html_()


def test_mde_recovers_the_analytic_effect():
    res = find_mde(dd.examples.two_arm, "ate", fixed={"N": 100}, lower=0.0, upper=1.2,
                   sims=400, seed=4)
    from statsmodels.stats.power import TTestIndPower

    truth = TTestIndPower().solve_power(nobs1=50, alpha=0.05, power=0.8)  # 0.566
    assert res.conf_low < truth < res.conf_high
    assert res.recommended == res.estimate  # effects are not rounded


def test_the_interval_shrinks_with_more_simulations():
    kw = dict(fixed={"ate": 0.5}, lower=40, upper=300, seed=5, rounds=1)
    few = find_sample_size(dd.examples.two_arm, "N", sims=100, **kw)
    many = find_sample_size(dd.examples.two_arm, "N", sims=900, **kw)
    assert (many.conf_high - many.conf_low) < 0.6 * (few.conf_high - few.conf_low)


@pytest.mark.slow
def test_interval_coverage_over_seeds():
    """The 95% interval covers the analytic answer in most of 40 independent searches."""
    truth = analytic_total_n(0.4)
    hits = 0
    for s in range(40):
        r = find_sample_size(dd.examples.two_arm, "N", fixed={"ate": 0.4}, lower=60,
                             upper=400, sims=300, seed=100 + s)
        hits += r.conf_low < truth < r.conf_high
    assert hits >= 33  # P(Binomial(40, 0.95) < 34) ~ 1.4%


def test_several_estimators_need_one_named():
    with pytest.raises(DeclarationError, match="estimator must be one of"):
        find_sample_size(dd.examples.two_arm_covariate, "N", sims=20, seed=1)
    res = find_sample_size(dd.examples.two_arm_covariate, "N", estimator="With controls",
                           fixed={"rho": 0.7}, lower=30, upper=300, sims=150, seed=1)
    plain = find_sample_size(dd.examples.two_arm_covariate, "N", estimator="No controls",
                             fixed={"rho": 0.7}, lower=30, upper=300, sims=150, seed=1)
    assert res.estimate < plain.estimate  # the covariate buys sample size


def test_target_out_of_range_says_where_to_look():
    with pytest.raises(DeclarationError, match="search above it"):
        find_sample_size(dd.examples.two_arm, "N", fixed={"ate": 0.2}, lower=20, upper=60,
                         sims=100, seed=1)


def test_bad_arguments():
    with pytest.raises(DeclarationError, match="target must be"):
        find_sample_size(dd.examples.two_arm, target={"rmse": 0.1})
    with pytest.raises(DeclarationError, match="upper must be greater"):
        find_sample_size(dd.examples.two_arm, lower=100, upper=50)
    with pytest.raises(DeclarationError, match="3 distinct values"):
        find_sample_size(dd.examples.two_arm, lower=10, upper=11)
    with pytest.raises(DeclarationError, match="param must be a parameter"):
        find_sample_size(dd.examples.two_arm, "n_units", lower=10, upper=50, sims=10)


def test_plot_shows_points_fit_and_answer():
    res = find_mde(dd.examples.two_arm, fixed={"N": 100}, upper=1.2, sims=100, seed=1)
    fig = res.plot()
    ax = fig.axes[0]
    assert ax.get_xlabel() == "ate" and ax.get_ylabel() == "Power"
    xs = [ln.get_xdata() for ln in ax.get_lines()]
    # fitted curve, error-bar points, target line, estimate line
    assert any(len(x) == 200 for x in xs)
    assert any(np.allclose(x, res.estimate) for x in xs if len(x) == 2)
    assert sum(len(x) == len(res.grid) for x in xs) >= 1
    plt.close("all")
