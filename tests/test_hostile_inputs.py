"""Issue 12's hostile inputs: every case of its "Why", one test each.

A design tool's worst failure is a confident wrong number: degenerate fits must not
report significance, and nonsense must be refused with one clear line. Cases whose test
needs a subprocess or a long run live beside the code that fixes them, and are named
here so this module is the index of the whole list:

- processes-backend workers die with their parent (SIGKILL and SIGTERM):
  ``tests/engine/test_shutdown.py``;
- bootstrap memory O(sims) and 1M simulations under 1.5 GiB: ``benchmarks/memory.py``
  (run tiny by ``tests/test_benchmarks.py``) and ``tests/design/test_diagnosis.py``;
- truncated, empty, foreign and edited checkpoints, an uncreatable checkpoint path:
  ``tests/engine/test_checkpoint.py``;
- ``chunk_size=250`` equals the default: ``tests/engine/test_blocks.py``;
- ``--out /proc/x.csv``, ``draw --out /nonexistent/d.csv``, Dask without a main guard:
  ``tests/test_cli.py``;
- every expression escape (``np.ctypeslib...``, ``np.load``/``np.save``, ``@`` locals in
  ``subset``, ``I(np....)``) in every place strings are read, plus fuzzed chains:
  ``tests/expressions/test_security.py`` (one of each is repeated below).
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


# ------------------------------------------------------------ silently accepted nonsense
@pytest.mark.parametrize("func,arg", [(dd.block_ra, "blocks"), (dd.cluster_ra, "clusters")])
def test_missing_blocks_or_clusters_are_named(func, arg):
    with pytest.raises(DeclarationError, match=rf"{arg} must be free of missing values"):
        func(**{arg: np.array([1.0, 1.0, np.nan, 2.0])}, seed=1)


def test_unknown_term_lists_the_terms():
    design = dd.examples.two_arm() + dd.declare_estimator("Y ~ Z", term="W", inquiry="ate",
                                                          label="w")
    with pytest.raises(dd.StepError, match=r"term 'W' is not among the estimator's terms "
                       r"\('\(Intercept\)', 'Z'\)"):
        dd.simulate_design(design, sims=5, seed=1, progress=False)


def test_rare_binary_outcome_counts_the_simulations_without_a_p_value():
    design = (dd.declare_model(N=50, U=dd.normal())
              + dd.declare_potential_outcomes("Y ~ (U > 2.5) + 0 * Z")
              + dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
              + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
              + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
              + dd.declare_estimator("Y ~ Z", inquiry="ate"))
    dx = dd.diagnose_design(design, sims=100, seed=1, bootstrap_sims=0)
    row = dx.diagnosands.iloc[0]
    # a constant outcome in a simulation is no p-value (counted), not rounding noise
    assert row["n_nan_p"] > 0 and row["n_failed"] == 0
    assert np.isfinite(row["power"])
    assert "without" in str(dx) and "p-value" in str(dx)


def test_empty_right_hand_side_is_a_formula_error():
    with pytest.raises(dd.FormulaError, match="no right-hand side"):
        lm_robust("Y ~", _data())


def test_single_level_factor_is_rs_contrasts_error():
    with pytest.raises(dd.FormulaError, match="contrasts can be applied only to factors "
                       "with 2 or more levels"):
        lm_robust("Y ~ Z + g", _data().assign(g="a"))


def test_draw_data_with_a_string_is_one_clear_line():
    with pytest.raises(DeclarationError, match=r"draw_data\(data=str\): data must be a "
                       "pandas DataFrame"):
        dd.draw_data(dd.examples.two_arm(), data="x")


@pytest.mark.parametrize("where", ["fabricate", "inquiry", "subset"])
def test_expression_escapes_are_refused(where):
    escape = "np.ctypeslib.ctypes.pythonapi.PyRun_SimpleString('x')"
    with pytest.raises(dd.DeclareDesignError, match="attribute access"):
        if where == "fabricate":
            dd.fabricate(N=3, x=escape)
        elif where == "inquiry":
            dd.declare_inquiry(a=f"mean({escape})")
        else:
            lm_robust("Y ~ Z", _data(), subset=f"{escape} == 0")
