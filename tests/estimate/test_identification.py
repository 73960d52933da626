"""Identification rules (issue 12): a standard error that is not identified is NaN.

No residual degrees of freedom, a cluster-robust SE with fewer than two clusters and a
standard error that is zero up to rounding give NaN SE, statistic, p-value, CI and df
plus a FitWarning, in the standalone fit and in the batched kernel identically.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.batch import Batch
from declaredesign.errors import FitWarning
from declaredesign.estimate import difference_in_means, iv_robust, lm_lin, lm_robust
from declaredesign.estimate.inference import (
    SE_ROUNDING_TOL,
    screen_scale,
    screen_unidentified,
    unidentified,
)
from declaredesign.groups import GroupIndex

from ._util import batched, compare, standalone

NAN_COLS = ["std_error", "statistic", "p_value", "conf_low", "conf_high", "df"]


def _frame(n=20, seed=1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"Y": rng.normal(size=n), "Z": np.tile([0.0, 1.0], n // 2),
                         "X": rng.normal(size=n), "one": 1, "cl": np.repeat([0, 1], n // 2),
                         "K": 3.7})


def _frames(n_sims=4, n=20):
    return [_frame(n, seed=s) for s in range(n_sims)]


def _fit_warns(func, formula, data, match, **kw):
    with pytest.warns(FitWarning, match=match):
        fit = func(formula, data, **kw)
    return fit.tidy()


def _all_nan(tidy, rows=slice(None)):
    assert tidy.loc[rows, NAN_COLS].isna().all().all(), tidy


def _same_both_paths(func, formula, frames, **kw):
    """Batched rows equal the standalone fits, warnings included."""
    out = batched(func)(Batch.from_frames(frames), formula, **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = standalone(func, formula, frames, **kw)
    compare(out, ref)
    texts = {str(w.message) for w in caught if issubclass(w.category, FitWarning)}
    assert set(out["warning"].dropna()) == texts
    return out


# ------------------------------------------------------------------ lm_robust
@pytest.mark.parametrize("se_type", ["CR2", "CR0", "stata"])
def test_one_cluster_is_not_a_standard_error(se_type):
    tidy = _fit_warns(lm_robust, "Y ~ Z", _frame(), "fewer than two clusters",
                      clusters="one", se_type=se_type)
    _all_nan(tidy)
    assert np.isfinite(tidy["estimate"]).all()


@pytest.mark.parametrize("se_type", ["CR2", "CR0", "stata"])
def test_two_clusters_one_per_arm(se_type):
    df = _frame().assign(Z=lambda d: d["cl"].astype(float))
    tidy = _fit_warns(lm_robust, "Y ~ Z", df, "zero up to rounding", clusters="cl",
                      se_type=se_type)
    _all_nan(tidy)
    frames = [f.assign(Z=f["cl"].astype(float)) for f in _frames()]
    out = _same_both_paths(lm_robust, "Y ~ Z", frames, clusters="cl", se_type=se_type)
    assert out["p_value"].isna().all()


def test_constant_outcome_and_perfect_fit():
    tidy = _fit_warns(lm_robust, "K ~ Z", _frame(), "zero up to rounding")
    _all_nan(tidy)
    df = _frame().assign(P=lambda d: 1.5 + 2 * d["Z"] + 3 * d["X"])
    _all_nan(_fit_warns(lm_robust, "P ~ Z + X", df, "zero up to rounding",
                        se_type="classical"))
    out = _same_both_paths(lm_robust, "K ~ Z + X", _frames())
    assert out["p_value"].isna().all()


def test_vcov_and_linear_hypothesis_of_unidentified_terms_are_nan():
    with pytest.warns(FitWarning):
        fit = lm_robust("K ~ Z", _frame())
    assert fit.vcov.isna().all().all()
    assert fit.linear_hypothesis("Z = 0")["p_value"].isna().all()


def test_more_terms_than_rows():
    df = _frame(n=4)
    df["W"] = [1.0, 4.0, 2.0, 8.0]
    df["V"] = [3.0, 1.0, 0.0, 5.0]
    tidy = _fit_warns(lm_robust, "Y ~ Z + X + W + V", df, "no residual degrees of freedom")
    assert tidy["std_error"].isna().all() and tidy["p_value"].isna().all()


def test_only_the_unidentified_terms_are_nan():
    # clusters nested in arms: the slope on a within-cluster covariate stays identified
    rng = np.random.default_rng(5)
    frames = []
    for _ in range(4):
        n = 40
        cl = np.repeat(np.arange(4), n // 4)
        frames.append(pd.DataFrame({"Y": rng.normal(size=n), "Z": (cl % 2).astype(float),
                                    "X": rng.normal(size=n), "cl": cl}))
    _same_both_paths(lm_robust, "Y ~ Z + X", frames, clusters="cl")


def test_well_identified_fits_are_untouched():
    # a large mean over a small spread is not rounding noise
    df = _frame()
    df["Y"] = 1e6 + df["Y"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        tidy = lm_robust("Y ~ Z + X", df).tidy()
        dim = difference_in_means("Y ~ Z", df).tidy()
    assert np.isfinite(tidy[NAN_COLS].to_numpy()).all()
    assert np.isfinite(dim[NAN_COLS].to_numpy(float)).all()


def test_rule_is_relative_to_the_outcome_scale():
    se = np.array([1e-3, 1e-12])
    mask, reason = unidentified(se, np.array([1.0, 1.0]), 1.0, df_residual=5, n_clusters=None)
    assert mask.tolist() == [False, True] and "rounding" in reason
    # the same SEs on an outcome 1e-6 as large are both real
    mask, reason = unidentified(se, np.array([1.0, 1.0]), 1e-6 * SE_ROUNDING_TOL * 1e6,
                                df_residual=5, n_clusters=None)
    assert not mask.any() and reason is None


def test_lm_lin_and_iv_robust_constant_outcome():
    def lin(formula, data, **kw):
        return lm_lin(formula, "~ X", data, **kw)
    _all_nan(_fit_warns(lin, "K ~ Z", _frame(), "zero up to rounding"))
    _all_nan(_fit_warns(iv_robust, "K ~ X | Z", _frame(), "zero up to rounding"))
    _same_both_paths(lm_lin, "K ~ Z", _frames(), covariates="~ X")


# ------------------------------------------------------------ difference_in_means
def test_dim_two_clusters_one_per_arm():
    df = _frame().assign(Z=lambda d: d["cl"].astype(float))
    _all_nan(_fit_warns(difference_in_means, "Y ~ Z", df, "zero up to rounding",
                        clusters="cl"))
    frames = [f.assign(Z=f["cl"].astype(float)) for f in _frames()]
    out = _same_both_paths(difference_in_means, "Y ~ Z", frames, clusters="cl")
    assert out["p_value"].isna().all()


@pytest.mark.parametrize("kw", [{}, {"blocks": "cl"}])
def test_dim_constant_outcome(kw):
    _all_nan(_fit_warns(difference_in_means, "K ~ Z", _frame(), "zero up to rounding", **kw))
    out = _same_both_paths(difference_in_means, "K ~ Z", _frames(), **kw)
    assert out["p_value"].isna().all()


# ------------------------------------------------------------------- diagnosis
def _dim(formula, data, **kw):
    # a plain function: no kernel, every simulation through the standalone fit
    return difference_in_means(formula, data, **kw)


def test_two_cluster_design_counts_nan_p_values_on_both_paths():
    d = dd.examples.cluster_randomized(N_clusters=2)
    plain = dd.replace_step(d, "Clustered DIM", dd.declare_estimator(
        "Y ~ Z", model=_dim, clusters="cluster", inquiry="ate", term="Z",
        label="Clustered DIM"))
    a = dd.diagnose_design(d, sims=40, seed=3, bootstrap_sims=0)
    b = dd.diagnose_design(plain, sims=40, seed=3, bootstrap_sims=0)
    sa, sb = a.simulations, b.simulations
    assert sa["p_value"].isna().all() and sb["p_value"].isna().all()
    assert (sa["warning"] == sb["warning"]).all()
    np.testing.assert_allclose(sa["estimate"], sb["estimate"], rtol=1e-10)
    assert int(a.diagnosands["n_nan_p"].iloc[0]) == 40
    assert int(b.diagnosands["n_nan_p"].iloc[0]) == 40
    assert int(a.diagnosands["n_failed"].iloc[0]) == 0


# --------------------------------------------- silently accepted nonsense (issue 12)
@pytest.mark.parametrize("func", [lm_robust, difference_in_means])
@pytest.mark.parametrize("value", ["no", 1, None, "FALSE"])
def test_ci_must_be_boolean(func, value):
    with pytest.raises(dd.DeclarationError, match=r"ci must be True or False"):
        func("Y ~ Z", _frame(), ci=value)


def test_ci_numpy_bool_is_a_boolean():
    assert np.isnan(lm_robust("Y ~ Z", _frame(), ci=np.bool_(False)).p_value).all()


def test_infinity_in_a_regressor_is_named():
    df = _frame()
    df.loc[3, "X"] = np.inf
    with pytest.raises(dd.EstimationError, match=r"regressor\(s\) 'X' have infinite values"):
        lm_robust("Y ~ Z + X", df)
    with pytest.raises(dd.EstimationError, match=r"'X' have infinite values"):
        batched(lm_robust)(Batch.from_frames([df, _frame()]), "Y ~ Z + X")


def test_infinity_in_the_outcome_is_named():
    df = _frame()
    df.loc[3, "Y"] = -np.inf
    for func in (lm_robust, difference_in_means):
        with pytest.raises(dd.EstimationError, match=r"outcome 'Y' has infinite values"):
            func("Y ~ Z", df)


def test_duplicate_column_names_are_named():
    df = pd.concat([_frame(), _frame()[["X"]]], axis=1)
    for func in (lm_robust, difference_in_means):
        with pytest.raises(dd.DeclarationError, match=r"distinct column names \(duplicated: 'X'\)"):
            func("Y ~ Z", df)


@pytest.mark.parametrize("func", [lm_robust, difference_in_means])
def test_all_missing_outcome_names_the_outcome(func):
    with pytest.raises(dd.EstimationError, match=r"outcome 'Y' has no non-missing value") as e:
        func("Y ~ Z", _frame().assign(Y=np.nan))
    assert "treatment" not in str(e.value)


def test_unknown_keyword_lists_the_accepted_arguments_at_declaration():
    msg = r"'inquire' is not an argument of lm_robust; the accepted arguments are: weights"
    with pytest.raises(dd.DeclarationError, match=msg):
        dd.declare_estimator("Y ~ Z", model=lm_robust, inquire="ate")
    with pytest.raises(dd.DeclarationError, match=r"'inquire' is not an argument of "
                       r"difference_in_means; the accepted arguments are: blocks"):
        dd.declare_estimator("Y ~ Z", model=difference_in_means, inquire="ate")
    with pytest.raises(TypeError, match="inquire"):
        lm_robust("Y ~ Z", _frame(), inquire="ate")


def _clustered_frame():
    df = _frame(24)
    df["cl"] = np.repeat(np.arange(6), 4)
    df["Z"] = (df["cl"] % 2).astype(float)
    df["w"] = np.linspace(1, 2, 24)
    df["b"] = np.repeat([0, 1], 12)
    df["p"] = 0.5
    return df


@pytest.mark.parametrize(("func", "kw"), [
    (lm_robust, {"clusters": "cl", "weights": "w"}),
    (difference_in_means, {"clusters": "cl", "blocks": "b"}),
    (difference_in_means, {"weights": "w"}),
    (dd.horvitz_thompson, {"condition_prs": "p", "clusters": "cl"}),
    (lm_robust, {"subset": "X > -1"}),
])
def test_column_arguments_accept_vectors(func, kw):
    df = _clustered_frame()
    ref = func("Y ~ Z", df, **kw).tidy()
    as_series = {k: (df.eval(v) if k == "subset" else df[v]) for k, v in kw.items()}
    as_array = {k: np.asarray(v) for k, v in as_series.items()}
    pd.testing.assert_frame_equal(func("Y ~ Z", df, **as_series).tidy(), ref)
    pd.testing.assert_frame_equal(func("Y ~ Z", df, **as_array).tidy(), ref)


def test_vector_arguments_must_match_the_data():
    df = _clustered_frame()
    with pytest.raises(dd.DeclarationError, match=r"one value per row of the data \(24 values"):
        lm_robust("Y ~ Z", df, clusters=df["cl"].to_numpy()[:5])
    # in a design they remain column names, checked at declaration
    with pytest.raises(dd.DeclarationError, match="column name"):
        batched(lm_robust)(Batch.from_frames([df]), "Y ~ Z", clusters=df["cl"].to_numpy())
    with pytest.raises(dd.DeclarationError, match=r"clusters=<ndarray of length 24>\): "
                       "clusters must be a column name"):
        dd.declare_estimator("Y ~ Z", model=lm_robust, clusters=df["cl"].to_numpy())


def test_screen_scale_flags_what_the_exact_scale_flags():
    """The batch-wide bound on rms(y) only stands in when it cannot change a flag."""
    rng = np.random.default_rng(5)
    sim = np.repeat(np.arange(6), 20)
    sims = GroupIndex.from_keys(sim, 6)
    y = rng.normal(3.0, 2.0, sim.size)
    y[sim == 5] = 7.0                                   # a constant outcome
    m_diag = np.full((6, 2), 0.1)
    calls = []

    def exact():
        calls.append(1)
        return np.sqrt(sims.sum_by_sim(y * y) / sims.count())

    for se in (np.full((6, 2), 0.5),                    # far from rounding: the bound serves
               np.r_[np.full((5, 2), 0.5), [[1e-15, 0.5]]]):   # one near zero: exact
        calls.clear()
        got = screen_scale(se, m_diag, y, exact)
        want = exact()
        assert len(calls) == (2 if se.min() < 1e-9 else 1)
        np.testing.assert_array_equal(
            screen_unidentified(se, m_diag, got, df_residual=np.full(6, 10.0)),
            screen_unidentified(se, m_diag, want, df_residual=np.full(6, 10.0)))
    bad = y.copy()
    bad[3] = np.nan                                     # NaN outcomes: always the exact scale
    calls.clear()
    screen_scale(np.full((6, 2), 0.5), m_diag, bad, exact)
    assert calls == [1]


def test_t_quantiles_once_per_distinct_df_are_those_of_every_row():
    # add_cis computes the inverse t once per distinct df of a batch: the same numbers
    from scipy import special

    from declaredesign.estimate.inference import _t_quantile, add_cis
    rng = np.random.default_rng(2)
    df = rng.choice([3.0, 17.0, 490.0, np.nan, 1e6], size=(400, 3))
    np.testing.assert_array_equal(_t_quantile(df, 0.975), special.stdtrit(df, 0.975))
    est, se = rng.normal(size=df.shape), rng.uniform(0.1, 2, size=df.shape)
    _, _, lo, hi, _ = add_cis(est, se, df, 0.05, True)
    crit = special.stdtrit(np.where(df > 0, df, np.nan), 0.975) * se
    np.testing.assert_array_equal(lo, est - crit)
    np.testing.assert_array_equal(hi, est + crit)
