"""DeclareDesign 1.0 semantics an R user relies on (issue 10): numbers checked against R."""

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.errors import DeclareDesignError, DesignError

# One fixed dataset; R's outputs for it are quoted beside each test (DeclareDesign 1.0).
DF = pd.DataFrame({"X": [0, 1, 1, 0, 1, 0], "Y_Z_0": [1.0, 2, 3, 4, 5, 6],
                   "Y_Z_1": [2.0, 4, 3, 7, 9, 6], "Y": [1.0, 4, 3, 7, 5, 6],
                   "Z": [0, 1, 0, 1, 0, 1]})


def _design(*steps):
    base = (dd.declare_model(N=40, U=dd.normal(), X=dd.bernoulli(0.5))
            + dd.declare_potential_outcomes("Y ~ U + Z")
            + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
            + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z")))
    for s in steps:
        base = base + s
    return base


# ------------------------------------------------------------------- 1. inquiries
def test_subset_inquiry_matches_r():
    # R: declare_inquiry(cate = mean(Y_Z_1 - Y_Z_0), subset = X == 1)(df) -> 2
    q = dd.declare_inquiry(cate="mean(Y_Z_1 - Y_Z_0)", subset="X == 1")
    assert q.inquiry_labels() == ["cate"]
    out = q(DF)
    assert list(out.columns) == ["inquiry", "estimand"]
    assert out["inquiry"].tolist() == ["cate"] and out["estimand"].iloc[0] == pytest.approx(2.0)


def test_subset_is_not_an_inquiry_name_in_a_design():
    d = _design(dd.declare_inquiry(cate="mean(Y_Z_1 - Y_Z_0)", subset="X == 1"))
    est = dd.draw_estimands(d, seed=1)
    assert est["inquiry"].tolist() == ["cate"]
    assert est["estimand"].iloc[0] == pytest.approx(1.0)


def test_unnamed_inquiry_is_named_by_label():
    # R: declare_inquiry(mean(Y_Z_1), label = "m")(df) -> m 5.166667
    out = dd.declare_inquiry("mean(Y_Z_1)", label="m")(DF)
    assert out["inquiry"].tolist() == ["m"]
    assert out["estimand"].iloc[0] == pytest.approx(5.166667, abs=1e-6)
    assert dd.declare_inquiry("mean(Y_Z_1)").inquiry_labels() == ["inquiry"]


def test_handler_inquiry_returns_its_rows():
    # R: declare_inquiry(handler = function(data) data.frame(inquiry = c("q1", "q2"), ...))
    def handler(data, shift=0.0):
        return pd.DataFrame({"inquiry": ["q1", "q2"], "estimand": [1.0 + shift, 2.0 + shift]})
    q = dd.declare_inquiry(handler=handler, shift=1.0)
    assert "handler" not in q.inquiry_labels()
    out = q(DF)
    assert out["inquiry"].tolist() == ["q1", "q2"]
    assert out["estimand"].tolist() == [2.0, 3.0]
    d = _design(q, dd.declare_estimator("Y ~ Z", inquiry="q1"))
    res = dd.run_design(d, seed=1)
    assert set(res["inquiry"]) == {"q1", "q2"}


def test_estimator_takes_declared_inquiry_steps():
    ate = dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
    both = dd.declare_inquiry(a="mean(Y_Z_1 - Y_Z_0)", b="mean(Y_Z_1)")
    e = dd.declare_estimator("Y ~ Z", inquiry=ate, label="e1")
    assert e.inquiry == "ate"
    e2 = dd.declare_estimator("Y ~ Z", inquiry=[ate, both], label="e2")
    assert e2.inquiry_labels() == ["ate", "a", "b"]
    res = dd.run_design(_design(ate, both, e, e2), seed=2)
    assert sorted(res.loc[res["estimator"] == "e2", "inquiry"]) == ["a", "ate", "b"]
    with pytest.raises(DeclareDesignError, match="inquiry"):
        dd.declare_estimator("Y ~ Z", inquiry=dd.declare_inquiry(handler=lambda df: 1.0))


# ---------------------------------------------------------- 2. handler estimators
def test_handler_estimator_keeps_its_columns_and_rows():
    # R: declare_estimator(handler = function(data) data.frame(estimator = "mine",
    #    term = c("a", "b"), estimate = c(1, 2), inquiry = "ate")) keeps both rows as given
    def handler(data):
        return pd.DataFrame({"estimator": "mine", "term": ["a", "b"], "estimate": [1.0, 2.0],
                             "inquiry": "ate"})
    d = _design(dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)"),
                dd.declare_estimator(handler=handler, label="h"))
    res = dd.run_design(d, seed=1)
    assert res["estimator"].tolist() == ["mine", "mine"]
    assert res["term"].tolist() == ["a", "b"]
    assert res["inquiry"].tolist() == ["ate", "ate"]
    assert res["estimand"].tolist() == [1.0, 1.0]


def test_handler_estimator_without_columns_gets_label_and_inquiry():
    def handler(data):
        return pd.DataFrame({"term": ["a", "b"], "estimate": [1.0, 2.0]})
    d = _design(dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)"),
                dd.declare_estimator(handler=handler, inquiry="ate", label="lab"))
    res = dd.run_design(d, seed=1)
    assert res["estimator"].tolist() == ["lab", "lab"]
    assert res["inquiry"].tolist() == ["ate", "ate"]


def test_glance_matches_estimatr():
    # R (estimatr 1.0): glance(lm_robust(Y ~ Z + X, df)) on tests' gl data
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"Y": rng.normal(size=30), "Z": np.tile([0, 1], 15),
                       "X": rng.normal(size=30)})
    g = dd.glance(dd.lm_robust("Y ~ Z + X", df))
    fit = dd.lm_robust("Y ~ Z + X", df)
    assert list(g.columns) == ["r_squared", "adj_r_squared", "statistic", "p_value",
                               "df_residual", "nobs", "se_type"]
    assert g["nobs"].iloc[0] == 30 and g["df_residual"].iloc[0] == 27
    assert g["r_squared"].iloc[0] == pytest.approx(fit.r_squared)
    dim = dd.glance(dd.difference_in_means("Y ~ Z", df))
    assert list(dim.columns) == ["design", "df", "nobs", "nblocks", "nclusters",
                                 "condition2", "condition1"]
    assert dim["design"].iloc[0] == "Standard" and dim["condition2"].iloc[0] == 1


def test_glance_numbers_match_r_fixture():
    # R: df <- data.frame(Y = c(1, 2, 4, 3, 6, 5, 8, 7), Z = rep(0:1, 4),
    #    X = c(0.5, 1, 1.5, 2, 3, 2.5, 4, 1)); glance(lm_robust(Y ~ Z + X, df))
    df = pd.DataFrame({"Y": [1.0, 2, 4, 3, 6, 5, 8, 7], "Z": [0, 1] * 4,
                       "X": [0.5, 1, 1.5, 2, 3, 2.5, 4, 1]})
    g = dd.glance(dd.lm_robust("Y ~ Z + X", df)).iloc[0]
    assert g["r_squared"] == pytest.approx(R_GLANCE["r.squared"], rel=1e-6)
    assert g["adj_r_squared"] == pytest.approx(R_GLANCE["adj.r.squared"], rel=1e-6)
    assert g["statistic"] == pytest.approx(R_GLANCE["statistic"], rel=1e-6)
    assert g["p_value"] == pytest.approx(R_GLANCE["p.value"], rel=1e-6)
    assert g["df_residual"] == 5 and g["nobs"] == 8 and g["se_type"] == "HC2"


def test_summary_glance_and_callable_on_estimators():
    d = _design(dd.declare_estimator("Y ~ Z", summary="glance", label="gl"),
                dd.declare_estimator("Y ~ Z", label="custom",
                                     summary=lambda fit: pd.DataFrame({"estimate": [fit.nobs]})))
    res = dd.draw_estimates(d, seed=3)
    gl = res[res["estimator"] == "gl"]
    assert len(gl) == 1 and gl["nobs"].iloc[0] == 40 and gl["r_squared"].iloc[0] > 0
    assert res.loc[res["estimator"] == "custom", "estimate"].iloc[0] == 40
    with pytest.raises(DeclareDesignError, match="summary"):
        dd.declare_estimator("Y ~ Z", summary="nope")


# ---------------------------------------------------------------- 3. term choice
def test_intercept_only_keeps_the_intercept():
    # R: declare_estimator(Y ~ 1)(df) -> (Intercept) 4.333333, SE 0.8819171
    out = dd.declare_estimator("Y ~ 1")(DF)
    assert out["term"].tolist() == ["(Intercept)"]
    assert out["estimate"].iloc[0] == pytest.approx(4.333333, abs=1e-6)
    assert out["std_error"].iloc[0] == pytest.approx(0.8819171, abs=1e-6)


def test_one_term_for_several_inquiries_gives_a_row_each():
    # R: declare_estimator(Y ~ Z, term = "Z", inquiry = c("a", "b"))(df) -> two rows
    out = dd.declare_estimator("Y ~ Z", term="Z", inquiry=["a", "b"])(DF)
    assert out["inquiry"].tolist() == ["a", "b"] and out["term"].tolist() == ["Z", "Z"]
    assert out["estimate"].tolist() == pytest.approx([2.666667] * 2, abs=1e-6)
    assert out["std_error"].iloc[0] == pytest.approx(1.452966, abs=1e-6)


def test_repeated_term_pairs_with_each_inquiry():
    # R: term = c("Z", "Z"), inquiry = c("a", "b") -> rows Z/a and Z/b
    out = dd.declare_estimator("Y ~ Z", term=["Z", "Z"], inquiry=["a", "b"])(DF)
    assert out["inquiry"].tolist() == ["a", "b"] and out["term"].tolist() == ["Z", "Z"]


def test_unknown_term_is_an_error_listing_terms():
    # R: "Not all of the terms declared in your estimator are present ..., including W."
    with pytest.raises(DeclareDesignError, match=r"'W'.*'\(Intercept\)', 'Z'"):
        dd.declare_estimator("Y ~ Z", term="W")(DF)
    d = _design(dd.declare_estimator("Y ~ Z", term="W"))
    with pytest.raises(DeclareDesignError, match="'W'"):
        dd.diagnose_design(d, sims=5, bootstrap_sims=0, seed=1)


# ------------------------------------------------------ 6. randomness in handlers
def _noisy_step(df, rng):
    return df.assign(noise=rng.normal(size=len(df)))


def _noisy_estimator(data, rng):
    return pd.DataFrame({"term": ["n"], "estimate": [rng.normal()]})


def _noisy_inquiry(data, rng):
    return pd.DataFrame({"inquiry": ["q"], "estimand": [rng.normal()]})


def test_handlers_get_the_simulation_generator():
    d = (dd.declare_model(N=5, U=dd.normal()) + dd.declare_step(_noisy_step)
         + dd.declare_inquiry(handler=_noisy_inquiry, label="q")
         + dd.declare_inquiry(m="mean(noise)")
         + dd.declare_estimator(handler=_noisy_estimator, inquiry="q", label="e"))
    a = dd.simulate_design(d, sims=4, seed=11)
    b = dd.simulate_design(d, sims=4, seed=11)
    c = dd.simulate_design(d, sims=4, seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["estimand"], c["estimand"])
    # Different simulations draw different numbers.
    est = a[a["estimator"] == "e"]["estimate"].to_numpy()
    assert len(set(np.round(est, 12))) == len(est)
    q = a[a["inquiry"] == "q"]["estimand"].to_numpy()
    assert len(set(np.round(q, 12))) == len(q)
    m = a[a["inquiry"] == "m"]["estimand"].to_numpy()
    assert len(set(np.round(m, 12))) == len(m)


# -------------------------------------------------- 7. calling steps on a dataset
def test_calling_steps_returns_their_output():
    model = dd.declare_model(N=6, U=dd.normal())
    df = model(seed=1)
    assert list(df.columns) == ["ID", "U"] and len(df) == 6
    assign = dd.declare_assignment(Z=dd.complete_ra(m=3))
    out = assign(df, seed=2)
    assert list(out.columns) == ["ID", "U", "Z"] and out["Z"].sum() == 3
    assert list(dd.declare_inquiry(m="mean(U)")(df).columns) == ["inquiry", "estimand"]
    est = dd.declare_estimator("Y ~ Z", inquiry="ate", label="x")(DF)
    assert list(est.columns[:3]) == ["estimator", "term", "estimate"]
    assert est["inquiry"].tolist() == ["ate"]
    # R: estimate 2.666667 for this dataset
    assert est["estimate"].iloc[0] == pytest.approx(2.666667, abs=1e-6)


def test_bare_model_and_population_give_ids():
    for declare in (dd.declare_model, dd.declare_population):
        df = declare(N=10)()
        assert list(df.columns) == ["ID"] and len(df) == 10
    d = dd.declare_model(N=10) + dd.declare_assignment(Z=dd.complete_ra(m=5))
    assert dd.draw_data(d, seed=1)["Z"].sum() == 5


def test_sampling_and_reveal_handlers():
    def sample(df, n=3):
        return df.iloc[:n].reset_index(drop=True)

    def reveal(df):
        return df.assign(Y=np.where(df["Z"] == 1, df["Y_Z_1"], df["Y_Z_0"]))
    d = (dd.declare_model(N=10, U=dd.normal()) + dd.declare_potential_outcomes("Y ~ U + Z")
         + dd.declare_sampling(handler=sample, n=4)
         + dd.declare_assignment(Z=dd.complete_ra(m=2))
         + dd.declare_reveal(handler=reveal))
    df = dd.draw_data(d, seed=1)
    assert len(df) == 4 and "Y" in df
    assert d[2].kind == "sampling" and d[4].kind == "measurement"
    assert repr(d[2]) == "declare_sampling(handler=sample, n=4)"


def test_step_call_needs_data_for_inquiries():
    with pytest.raises(DesignError, match="dataset"):
        dd.declare_inquiry(m="mean(U)")()


R_GLANCE = {"r.squared": 0.506451881451881, "adj.r.squared": 0.309032634032634,
            "statistic": 4.57672814072587, "p.value": 0.0741769106094854}


def test_mask_subscript_inquiry_matches_r():
    # R: declare_inquiry(cate = mean(Y_Z_1[X == 1] - Y_Z_0[X == 1]))(df) -> 2
    out = dd.declare_inquiry(cate="mean(Y_Z_1[X == 1] - Y_Z_0[X == 1])")(DF)
    assert out["estimand"].iloc[0] == pytest.approx(2.0)


# R: set.seed(1); df <- data.frame(Y = rnorm(20), Z = rep(0:1, 10), X = rnorm(20));
#    df$g <- rep(0:4, 4)
GL = pd.DataFrame({
    "Y": [-0.626453810742332, 0.183643324222082, -0.835628612410047, 1.59528080213779,
          0.329507771815361, -0.820468384118015, 0.487429052428485, 0.738324705129217,
          0.575781351653492, -0.305388387156356, 1.51178116845085, 0.389843236411431,
          -0.621240580541804, -2.2146998871775, 1.12493091814311, -0.044933609015231,
          -0.016190263098946, 0.943836210685299, 0.821221195098089, 0.593901321217509],
    "Z": [0, 1] * 10, "g": [0, 1, 2, 3, 4] * 4})


def test_glance_of_difference_in_means_and_lmer_match_r():
    # R: glance(difference_in_means(Y ~ Z, df)) -> Standard, df 16.65792, nobs 20
    g = dd.glance(dd.difference_in_means("Y ~ Z", GL)).iloc[0]
    assert g["design"] == "Standard" and g["nobs"] == 20
    assert g["df"] == pytest.approx(16.65792, abs=1e-5)
    assert g["condition1"] == 0 and g["condition2"] == 1
    # R: broom.mixed::glance(lmer(Y ~ Z + (1 | g), df)) -> nobs 20, sigma 0.9340326,
    #    logLik -26.61509, AIC 61.23018, BIC 65.21311, REMLcrit 53.23018, df.residual 16
    m = dd.glance(dd.lmer("Y ~ Z + (1|g)", GL)).iloc[0]
    assert m["nobs"] == 20 and m["df_residual"] == 16
    for col, r in (("sigma", 0.9340326), ("logLik", -26.61509), ("AIC", 61.23018),
                   ("BIC", 65.21311), ("REMLcrit", 53.23018)):
        assert m[col] == pytest.approx(r, abs=2e-5), col


def test_glance_with_clusters_matches_estimatr():
    # R: glance(lm_robust(Y ~ Z, df, clusters = cl)) with cl <- rep(1:10, 2):
    #    r.squared 0.009030898, statistic 0.2328979, p.value 0.6409045, df.residual 4
    #    (estimatr reports the first coefficient's CR2 df), nobs 20, CR2
    df = GL.assign(Z=[0, 1] * 10, cl=list(range(1, 11)) * 2)
    g = dd.glance(dd.lm_robust("Y ~ Z", df, clusters="cl")).iloc[0]
    assert g["r_squared"] == pytest.approx(0.009030898, rel=1e-6)
    assert g["statistic"] == pytest.approx(0.2328979, rel=1e-6)
    assert g["p_value"] == pytest.approx(0.6409045, rel=1e-6)
    assert g["df_residual"] == pytest.approx(4.0) and g["se_type"] == "CR2"


def test_estimator_column_arguments_may_be_expressions():
    # R: declare_estimator(Y ~ Z, weights = 1 / p, ...): the expression is evaluated on
    # the data of each simulation, as if the column existed
    import numpy as np

    import declaredesign as dd
    base = (dd.declare_model(N=40, p="runif(N, 0.2, 0.8)", g="rep(1:8, each=5)",
                             Y="rnorm(N)")
            + dd.declare_assignment(Z=dd.complete_ra()))
    with_expr = base + dd.declare_estimator("Y ~ Z", weights="1 / p", clusters="g + 0",
                                            label="e")
    with_col = (base + dd.declare_measurement(w="1 / p")
                + dd.declare_estimator("Y ~ Z", weights="w", clusters="g", label="e"))
    a = dd.simulate_design(with_expr, sims=3, seed=4)
    b = dd.simulate_design(with_col, sims=3, seed=4)
    np.testing.assert_allclose(a["estimate"], b["estimate"])
    np.testing.assert_allclose(a["std_error"], b["std_error"])
    with pytest.raises(dd.errors.DeclarationError, match="weights"):
        dd.declare_estimator("Y ~ Z", weights="open('x')")


def test_declare_step_fabricate_adds_variables_per_simulation():
    # R: declare_step(fabricate, ...) adds variables to each simulated dataset; it runs
    # on the whole batch (no per-simulation loop) with reductions still per simulation
    import declaredesign as dd
    design = (dd.declare_model(N=5, x="rnorm(N)")
              + dd.declare_step(dd.fabricate, m="mean(x)", d="x - m", z="rnorm(N)"))
    data = dd.draw_data(design, seed=3)
    np.testing.assert_allclose(data["m"], data["x"].mean())
    np.testing.assert_allclose(data["d"], data["x"] - data["x"].mean())
    sims = dd.simulate_design(design + dd.declare_inquiry(a="mean(d)", b="sd(z)"),
                              sims=4, seed=3)
    np.testing.assert_allclose(sims.loc[sims.inquiry == "a", "estimand"], 0, atol=1e-12)
    assert sims.loc[sims.inquiry == "b", "estimand"].nunique() == 4


# ------------------------------------------------ gaps found porting DesignLibrary
@pytest.mark.parametrize("n_arg", ["N", 40])
def test_complete_ra_with_explicit_n_inside_a_step(n_arg):
    # R: declare_assignment(Z = complete_ra(N, prob = 0.25)): N is the data's rows
    d = (dd.declare_model(N=40, U=dd.normal())
         + dd.declare_assignment(Z=dd.complete_ra(n_arg, prob=0.25)))
    ref = (dd.declare_model(N=40, U=dd.normal())
           + dd.declare_assignment(Z=dd.complete_ra(prob=0.25)))
    a, b = dd.draw_data(d, seed=5), dd.draw_data(ref, seed=5)
    assert a["Z"].sum() == 10
    assert a["Z"].tolist() == b["Z"].tolist()
    s = dd.draw_data(dd.declare_model(N=40, U=dd.normal())
                     + dd.declare_sampling(S=dd.complete_rs("N", n=7)), seed=5)
    assert len(s) == 7


def test_declare_inquiries_is_declare_inquiry():
    q = dd.declare_inquiries(ate="mean(Y_Z_1 - Y_Z_0)", att="mean(Y_Z_1[Z == 1] - Y_Z_0[Z == 1])")
    assert q.inquiry_labels() == ["ate", "att"]
    assert q(DF)["estimand"].tolist() == pytest.approx([10 / 6, 5 / 3])


def test_handler_rows_without_a_term_have_an_na_term():
    # R: label_estimator(function(data) data.frame(estimate = mean(data$Y))) -> term NA
    d = _design(dd.declare_estimator(
        handler=lambda df: pd.DataFrame({"estimate": [df["Y"].mean()]}), label="m"))
    est = dd.draw_estimates(d, seed=2)
    assert est["term"].isna().all() and len(est) == 1
    diag = dd.diagnose_design(d, sims=20, bootstrap_sims=0, seed=2)
    assert diag.diagnosands["term"].isna().all()
