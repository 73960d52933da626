"""Diagnosand declarations and the built-ins' values, NA rules included, against a
direct transcription of DeclareDesign 1.0.10's R expressions (pandas' nullable
booleans follow R's three-valued logic)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from declaredesign.design.diagnosands import (
    BUILTIN_DIAGNOSANDS,
    DEFAULT_DIAGNOSANDS,
    EXTENDED_DIAGNOSANDS,
    Diagnosands,
    declare_diagnosands,
)
from declaredesign.design.diagnosis import diagnose_simulations
from declaredesign.errors import DeclarationError

# ------------------------------------------------------------------ declaration


def test_defaults_are_r_defaults_in_order():
    d = declare_diagnosands()
    assert d.names == ["mean_estimand", "mean_estimate", "bias", "sd_estimate", "rmse",
                       "power", "coverage"]
    assert tuple(d.names) == DEFAULT_DIAGNOSANDS
    assert d.alpha == 0.05
    assert set(EXTENDED_DIAGNOSANDS) == set(BUILTIN_DIAGNOSANDS)


def test_builtins_by_name_positional_select_and_renamed():
    d = declare_diagnosands("bias", select=["power", "mean_se"], my_rmse="rmse", alpha=0.1)
    assert d.names == ["bias", "power", "mean_se", "my_rmse"]
    assert d.builtin == {"bias": "bias", "power": "power", "mean_se": "mean_se",
                         "my_rmse": "rmse"}
    assert d.custom == {}
    assert d.alpha == 0.1


def test_custom_replaces_defaults_as_in_r():
    def med(df):
        return float(np.median(df.estimate))

    d = declare_diagnosands(median_estimate=med)
    assert d.names == ["median_estimate"]
    assert d.custom == {"median_estimate": med}


def test_repr_is_readable_and_object_is_frozen():
    def med(df):
        return 0.0

    d = declare_diagnosands("bias", m=med, alpha=0.1)
    assert repr(d) == ("declare_diagnosands('bias', m=<function "
                       "test_repr_is_readable_and_object_is_frozen.<locals>.med>, alpha=0.1)")
    assert repr(declare_diagnosands("power", p2="power")) == \
        "declare_diagnosands('power', p2='power')"
    with pytest.raises(AttributeError):
        d.alpha = 0.2  # type: ignore[misc]
    assert d.replace(alpha=0.2).alpha == 0.2 and d.alpha == 0.1
    e = declare_diagnosands("bias", "power")
    assert pickle.loads(pickle.dumps(e)) == e


@pytest.mark.parametrize("call, match", [
    (lambda: declare_diagnosands("nope"), r"select='nope'\): select must be names of"),
    (lambda: declare_diagnosands(alpha=2), r"alpha must be a number in \[0, 1\]"),
    (lambda: declare_diagnosands(x=3), r"x must be a function"),
    (lambda: declare_diagnosands(x="nope"), r"x must be a function or the name"),
    (lambda: declare_diagnosands("bias", bias="power"), r"uniquely labelled"),
    (lambda: declare_diagnosands("bias", bias_se="power"), r"does not clash"),
    (lambda: declare_diagnosands(n_sims="power"), r"does not clash"),
    (lambda: declare_diagnosands(subset=3), r"subset must be a function"),
])
def test_declaration_errors(call, match):
    with pytest.raises(DeclarationError, match=match):
        call()


# ------------------------------------------------------------------ values vs R's expressions

def _lgl(x, na):
    return pd.array(np.where(na, None, x).tolist(), dtype="boolean")


def _num(a) -> np.ndarray:
    """A logical (nullable boolean) or numeric vector as floats with NaN for NA."""
    if isinstance(a, pd.arrays.BooleanArray):
        return a.to_numpy(dtype=float, na_value=np.nan)
    return np.asarray(a, dtype=float)


def r_mean(x, na_rm=False) -> float:
    """R's mean(x, na.rm): NA if any NA (unless dropped); NaN for an empty vector."""
    x = _num(x)
    if na_rm:
        x = x[~np.isnan(x)]
    if len(x) == 0 or np.isnan(x).any():
        return np.nan
    with np.errstate(invalid="ignore"):
        return float(np.mean(x))


def r_builtin(df: pd.DataFrame, name: str, alpha: float = 0.05, na_rm: bool = False) -> float:
    """DeclareDesign 1.0.10's expressions, literally (``na_rm`` adds na.rm = TRUE).

    One documented departure: power and coverage use only rows with a p-value.
    """
    if name in ("power", "coverage"):
        df = df[df.p_value.notna()]
    e, d = df.estimate.to_numpy(float), df.estimand.to_numpy(float)
    p, se = df.p_value.to_numpy(float), df.std_error.to_numpy(float)
    lo, hi = df.conf_low.to_numpy(float), df.conf_high.to_numpy(float)
    sig = _lgl(p <= alpha, np.isnan(p))
    with np.errstate(all="ignore"):
        if name in ("sd_estimate", "var_estimate"):
            x = e[~np.isnan(e)] if na_rm else e
            if np.isnan(x).any():
                return np.nan
            if name == "var_estimate":
                return r_mean((x - np.mean(x)) ** 2) if len(x) else np.nan
            return np.std(x, ddof=1) if len(x) > 1 else np.nan
        if name in ("type_s_rate", "exaggeration_ratio"):
            if name == "type_s_rate":
                v = np.where(np.isnan(e) | np.isnan(d), np.nan,
                             (np.sign(e) != np.sign(d)).astype(float))
            else:
                v = e / d
            # x[idx] keeps TRUE positions and yields NA at NA positions
            idx = _num(sig)
            x = np.where(np.isnan(idx), np.nan, v)[np.isnan(idx) | (idx == 1)]
            return r_mean(x, na_rm)
        x = {
            "mean_estimand": lambda: d,
            "mean_estimate": lambda: e,
            "bias": lambda: e - d,
            "rmse": lambda: (e - d) ** 2,
            "power": lambda: sig,
            "coverage": lambda: (_lgl(d <= hi, np.isnan(d) | np.isnan(hi))
                                 & _lgl(d >= lo, np.isnan(d) | np.isnan(lo))),
            "mean_se": lambda: se,
            "mean_var_hat": lambda: se ** 2,
            "mean_ci_length": lambda: hi - lo,
            "prop_pos_sig": lambda: _lgl(e > 0, np.isnan(e)) & sig,
        }[name]()
        m = r_mean(x, na_rm)
        return np.sqrt(m) if name == "rmse" else m


def _sims(n=300, seed=0, n_est=2):
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_est):
        est = rng.normal(0.1 * k, 0.2, n)
        se = rng.uniform(0.1, 0.3, n)
        rows.append(pd.DataFrame({
            "sim_id": np.arange(1, n + 1), "inquiry": "ATE",
            "estimand": rng.normal(0.05, 0.05, n), "estimator": f"est{k}", "term": "Z",
            "estimate": est, "std_error": se, "p_value": rng.uniform(0, 0.3, n),
            "conf_low": est - 1.96 * se, "conf_high": est + 1.96 * se}))
    return pd.concat(rows, ignore_index=True)


def _check_all(sims, alpha=0.05, na_rm=False):
    ds = declare_diagnosands(*EXTENDED_DIAGNOSANDS, na_rm=na_rm)
    d = diagnose_simulations(sims, ds, bootstrap_sims=0, alpha=alpha)
    for i, (est, df) in enumerate(sims.groupby("estimator", sort=True)):
        assert d.diagnosands["estimator"].iloc[i] == est
        for name in EXTENDED_DIAGNOSANDS:
            want = r_builtin(df, name, alpha, na_rm)
            got = d.diagnosands[name].iloc[i]
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15,
                                       err_msg=f"{name} ({est})")
    return d


@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_extended_diagnosands_match_r_expressions(alpha):
    d = _check_all(_sims(), alpha)
    assert d.diagnosands["power"].between(0.01, 0.99).all()


def _na_sims():
    sims = _sims(n=40, n_est=4)
    e0 = sims.estimator == "est0"
    # est0: an NA conf_low where the estimand lies above conf_high -> FALSE & NA = FALSE,
    # so coverage stays a number; est1: NA p-value -> power, type S ... are NA.
    i0 = sims.index[e0][:2]
    sims.loc[i0, "estimand"] = sims.loc[i0, "conf_high"] + 1
    sims.loc[i0, "conf_low"] = np.nan
    sims.loc[sims.index[sims.estimator == "est1"][3], "p_value"] = np.nan
    # est2: NA estimate in a non-significant row -> type S unaffected, bias NA.
    i2 = sims.index[sims.estimator == "est2"][5]
    sims.loc[i2, ["estimate", "p_value"]] = [np.nan, 0.9]
    # est3: an infinite estimate
    sims.loc[sims.index[sims.estimator == "est3"][0], "estimate"] = np.inf
    return sims


def test_na_follows_r_three_valued_logic():
    d = _check_all(_na_sims()).diagnosands.set_index("estimator")
    assert np.isfinite(d.loc["est0", "coverage"])
    assert np.isnan(d.loc["est0", "mean_ci_length"])
    # A row without a p-value is counted and left out of power (and coverage), not
    # allowed to turn them into NaN; the other p-based diagnosands follow R.
    assert np.isfinite(d.loc["est1", "power"]) and np.isnan(d.loc["est1", "type_s_rate"])
    assert d["n_nan_p"].tolist() == [0, 1, 0, 0]
    assert np.isfinite(d.loc["est1", "bias"])
    assert np.isnan(d.loc["est2", "bias"]) and np.isfinite(d.loc["est2", "type_s_rate"])
    assert d.loc["est3", "mean_estimate"] == np.inf and np.isnan(d.loc["est3", "sd_estimate"])


def test_na_rm_drops_na_values_per_diagnosand():
    sims = _na_sims()
    d = _check_all(sims, na_rm=True).diagnosands.set_index("estimator")
    assert np.isfinite(d.loc["est1", "power"]) and np.isfinite(d.loc["est2", "bias"])
    assert np.isfinite(d.loc["est0", "mean_ci_length"])
    df = sims[sims.estimator == "est1"]
    assert d.loc["est1", "power"] == (df.p_value <= 0.05).sum() / df.p_value.notna().sum()
    assert repr(declare_diagnosands("bias", na_rm=True)) == \
        "declare_diagnosands('bias', na_rm=True)"


def test_type_s_and_exaggeration_with_no_significant_result_are_nan():
    sims = _sims(n=20, n_est=1).assign(p_value=0.5)
    d = diagnose_simulations(sims, ["type_s_rate", "exaggeration_ratio", "power"],
                             bootstrap_sims=0).diagnosands
    assert np.isnan(d["type_s_rate"].iloc[0]) and np.isnan(d["exaggeration_ratio"].iloc[0])
    assert d["power"].iloc[0] == 0


def test_missing_columns_give_nan_like_r():
    sims = _sims(n=10, n_est=1).drop(columns=["p_value"])
    d = diagnose_simulations(sims, ["power", "bias"], bootstrap_sims=0).diagnosands
    assert np.isnan(d["power"].iloc[0]) and np.isfinite(d["bias"].iloc[0])


def test_sd_estimate_precise_for_large_offsets():
    # centring on the group mean keeps the one-pass variance exact
    sims = _sims(n=200, n_est=1)
    sims["estimate"] += 1e8
    d = diagnose_simulations(sims, ["sd_estimate", "var_estimate"], bootstrap_sims=0)
    want = np.std(sims.estimate, ddof=1)
    np.testing.assert_allclose(d.diagnosands["sd_estimate"].iloc[0], want, rtol=1e-9)


def test_custom_diagnosands_and_subset():
    sims = _sims(n=100)
    ds = declare_diagnosands(
        "bias",
        median_bias=lambda df: np.median(df.estimate - df.estimand),
        n_rows=len,
        subset=lambda df: df.p_value < 0.2)
    d = diagnose_simulations(sims, ds, bootstrap_sims=0).diagnosands
    for i, (_, df) in enumerate(sims.groupby("estimator")):
        df = df[df.p_value < 0.2]
        assert d["n_rows"].iloc[i] == len(df)
        np.testing.assert_allclose(d["median_bias"].iloc[i],
                                   np.median(df.estimate - df.estimand), rtol=1e-14)
        np.testing.assert_allclose(d["bias"].iloc[i], np.mean(df.estimate - df.estimand),
                                   rtol=1e-12)
        assert d["n_sims"].iloc[i] == 100  # subset rows still count as simulations


def test_custom_diagnosand_errors_name_the_diagnosand():
    sims = _sims(n=10)
    with pytest.raises(DeclarationError, match="diagnosand 'boom' raised ZeroDivisionError"):
        diagnose_simulations(sims, {"boom": lambda df: 1 / 0}, bootstrap_sims=0)
    with pytest.raises(DeclarationError, match="returning a scalar"):
        diagnose_simulations(sims, {"vec": lambda df: df.estimate.to_numpy()},
                             bootstrap_sims=0)


def test_diagnosands_argument_forms():
    sims = _sims(n=30)
    by_obj = diagnose_simulations(sims, declare_diagnosands("bias"), bootstrap_sims=0)
    by_str = diagnose_simulations(sims, "bias", bootstrap_sims=0)
    by_list = diagnose_simulations(sims, ["bias"], bootstrap_sims=0)
    for d in (by_str, by_list):
        pd.testing.assert_frame_equal(d.diagnosands, by_obj.diagnosands)
    assert isinstance(by_obj.diagnosand_set, Diagnosands)
    with pytest.raises(DeclarationError, match="diagnosands must be"):
        diagnose_simulations(sims, 3, bootstrap_sims=0)
