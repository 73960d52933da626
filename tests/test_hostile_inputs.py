"""Issue 12's hostile inputs: each case of its "Why" that is fixed, one test each.

A design tool's worst failure is a confident wrong number: degenerate fits must not
report significance, and nonsense must be refused with one clear line. The cases owned
by other parts of the package (expression sandbox, randomizr NaN blocks, formula and
factor checks, unknown ``term``, workers, memory, checkpoints, chunking) are tested
where they are fixed; the ones already fixed and cheap to check are repeated here.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.batch import Batch
from declaredesign.errors import DeclarationError, EstimationError, FitWarning
from declaredesign.estimate import difference_in_means, lm_robust, protocol

INFERENCE = ["std_error", "statistic", "p_value", "conf_low", "conf_high", "df"]


def _data(n=20, seed=7):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"Y": rng.normal(size=n), "Z": np.tile([0.0, 1.0], n // 2),
                         "X": rng.normal(size=n), "one": 1, "cl": np.repeat([0, 1], n // 2)})


def _quiet_fit(func, formula, data, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tidy = func(formula, data, **kw).tidy()
    return tidy, [str(w.message) for w in caught if issubclass(w.category, FitWarning)]


def _batched(func, frames, formula, **kw):
    est, _ = protocol.resolve_model(func)
    return protocol.fit_batch(est, est.parse(formula, **kw), Batch.from_frames(frames))


# ------------------------------------------------------ degenerate fits report significance
def test_one_cluster_gives_no_p_value():
    tidy, notes = _quiet_fit(lm_robust, "Y ~ Z", _data(), clusters="one")
    assert tidy[INFERENCE].isna().all().all()
    assert notes and "fewer than two clusters" in notes[0]


def test_two_clusters_one_per_arm_agree_between_paths():
    frames = [_data(seed=s).assign(Z=lambda d: d["cl"].astype(float)) for s in range(3)]
    out = _batched(lm_robust, frames, "Y ~ Z", clusters="cl")
    ref = [_quiet_fit(lm_robust, "Y ~ Z", f, clusters="cl") for f in frames]
    assert out["p_value"].isna().all() and out["std_error"].isna().all()
    assert all(t["p_value"].isna().all() for t, _ in ref)
    assert out["warning"].tolist() == [n[0] for _, n in ref for _ in range(2)]


def test_two_cluster_design_counts_nan_p_values():
    dx = dd.diagnose_design(dd.examples.cluster_randomized(N_clusters=2), sims=30, seed=2,
                            bootstrap_sims=0)
    row = dx.diagnosands.iloc[0]
    assert int(row["n_nan_p"]) == 30 and int(row["n_failed"]) == 0
    assert np.isnan(row["power"])


def test_stata_with_too_few_clusters_is_not_a_zero_division():
    one_per_arm = _data().assign(Z=lambda d: d["cl"].astype(float))
    for data, clusters in ((_data(), "one"), (one_per_arm, "cl")):
        tidy, notes = _quiet_fit(lm_robust, "Y ~ Z", data, clusters=clusters,
                                 se_type="stata")
        assert tidy["p_value"].isna().all() and notes


def test_constant_outcome_gives_no_p_value():
    data = _data().assign(K=3.7)
    for func in (lm_robust, difference_in_means):
        tidy, notes = _quiet_fit(func, "K ~ Z", data)
        assert tidy["p_value"].isna().all() and "zero up to rounding" in notes[0]


def test_lmer_constant_outcome_reports_no_p_value():
    data = _data().assign(K=1.0, g=np.repeat(np.arange(5), 4))
    try:
        tidy = dd.lmer("K ~ Z + (1 | g)", data).tidy()
    except EstimationError:
        return
    assert not (tidy["p_value"] < 0.05).any()


def test_more_terms_than_rows_gives_nan_standard_errors():
    data = _data(4).assign(W=[1.0, 4.0, 2.0, 8.0], V=[3.0, 1.0, 0.0, 5.0])
    tidy, notes = _quiet_fit(lm_robust, "Y ~ Z + X + W + V", data)
    assert tidy["std_error"].isna().all()
    assert any("no residual degrees of freedom" in n for n in notes)


# ------------------------------------------------------- silently accepted nonsense
def test_ci_no_is_an_error():
    with pytest.raises(DeclarationError, match="ci must be True or False"):
        lm_robust("Y ~ Z", _data(), ci="no")


def test_empty_grid_is_an_error():
    with pytest.raises(DeclarationError, match="empty grid"):
        dd.expand_design(lambda N: dd.examples.cluster_randomized(N_clusters=N), N=[])


# ------------------------------------------------------------------- raw tracebacks
def test_infinity_in_a_regressor_is_named():
    data = _data()
    data.loc[0, "X"] = np.inf
    with pytest.raises(EstimationError, match="'X' have infinite values"):
        lm_robust("Y ~ Z + X", data)


def test_duplicate_column_names_are_named():
    data = pd.concat([_data(), _data()[["X"]]], axis=1)
    with pytest.raises(DeclarationError, match="duplicated: 'X'"):
        lm_robust("Y ~ Z + X", data)


def test_all_missing_outcome_blames_the_outcome():
    with pytest.raises(EstimationError, match="outcome 'Y' has no non-missing value"):
        difference_in_means("Y ~ Z", _data().assign(Y=np.nan))


def test_misspelled_estimator_keyword_fails_at_declaration():
    with pytest.raises(DeclarationError, match="'inquire' is not an argument of lm_robust; "
                       "the accepted arguments are"):
        dd.declare_estimator("Y ~ Z", model=lm_robust, inquire="ate")


def test_impossible_number_of_simulations_is_refused_up_front():
    with pytest.raises(DeclarationError, match="fit in memory"):
        dd.diagnose_design(dd.examples.cluster_randomized(N_clusters=4), sims=10 ** 13)
