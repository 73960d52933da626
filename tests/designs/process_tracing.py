"""Process tracing: pick one X = 1, Y = 1 case out of 100 and update by Bayes' rule.

A straw-in-the-wind and a smoking-gun test. As DesignLibrary's
``process_tracing_designer()`` writes it, with the designer's own diagnosands.
"""

import numpy as np
import pandas as pd

import declaredesign as dd

N = 100
prob_X = 0.5
process_proportions = [0.25, 0.25, 0.25, 0.25]
prior_H = 0.5
p_E1_H = 0.8
p_E1_not_H = 0.2
p_E2_H = 0.3
p_E2_not_H = 0
cor_E1E2_H = 0
cor_E1E2_not_H = 0
label_E1 = "Straw in the Wind"
label_E2 = "Smoking Gun"

population = dd.declare_population(
    N=N,
    causal_process='sample(x=c("X_causes_Y", "Y_regardless", "X_causes_not_Y", '
                   '"not_Y_regardless"), size=N, replace=TRUE, '
                   f'prob=c({", ".join(map(str, process_proportions))}))',
    X=f"rbinom(N, 1, {prob_X}) == 1",
    Y='(X & causal_process == "X_causes_Y") | (!X & causal_process == "X_causes_not_Y") |'
      ' (causal_process == "Y_regardless")')
select_case = dd.declare_sampling(S=dd.strata_rs(strata="paste(X, Y)",
                                                 strata_n={"X0Y0": 0, "X0Y1": 0, "X1Y0": 0,
                                                           "X1Y1": 1}))
estimand = dd.declare_inquiry(did_X_cause_Y='causal_process == "X_causes_Y"')


def joint_prob(p1, p2, rho):
    r = rho * (p1 * p2 * (1 - p1) * (1 - p2)) ** 0.5
    return pd.Series({"p00": (1 - p1) * (1 - p2) + r, "p01": p2 * (1 - p1) - r,
                      "p10": p1 * (1 - p2) - r, "p11": p1 * p2 + r})


joint_prob_H = joint_prob(p_E1_H, p_E2_H, cor_E1E2_H)
joint_prob_not_H = joint_prob(p_E1_not_H, p_E2_not_H, cor_E1E2_not_H)


def trace_processes_handler(data, rng):
    data = data.copy()
    data["test_results"] = [
        rng.choice(["00", "01", "10", "11"], 1,
                   p=joint_prob_H if process == "X_causes_Y" else joint_prob_not_H)[0]
        for process in data["causal_process"]]
    data["E1"] = (data["test_results"] == "10") | (data["test_results"] == "11")
    data["E2"] = (data["test_results"] == "01") | (data["test_results"] == "11")
    return data


trace_processes = dd.declare_step(trace_processes_handler)


def bayes_rule(p_H, p_E_H, p_E_not_H):
    return p_E_H * p_H / (p_E_H * p_H + p_E_not_H * (1 - p_H))


def prior_only(data):
    return pd.DataFrame({"posterior_H": [bayes_rule(p_H=prior_H, p_E_H=1, p_E_not_H=1)],
                         "result": [True]})


def E1_only(data):
    return pd.DataFrame({
        "posterior_H": bayes_rule(p_H=prior_H, p_E_H=np.where(data["E1"], p_E1_H, 1 - p_E1_H),
                                  p_E_not_H=np.where(data["E1"], p_E1_not_H, 1 - p_E1_not_H)),
        "result": data["E1"].to_numpy()})


def E2_only(data):
    return pd.DataFrame({
        "posterior_H": bayes_rule(p_H=prior_H, p_E_H=np.where(data["E2"], p_E2_H, 1 - p_E2_H),
                                  p_E_not_H=np.where(data["E2"], p_E2_not_H, 1 - p_E2_not_H)),
        "result": data["E2"].to_numpy()})


def E1_and_E2(data):
    observed = np.isin(["00", "01", "10", "11"], data["test_results"])
    return pd.DataFrame({
        "posterior_H": bayes_rule(p_H=prior_H, p_E_H=joint_prob_H[observed].to_numpy(),
                                  p_E_not_H=joint_prob_not_H[observed].to_numpy()),
        "result": data["test_results"].to_numpy()})


prior_only_estimator = dd.declare_estimator(handler=prior_only, label="No tests (Prior)",
                                            inquiry=estimand)
E1_only_estimator = dd.declare_estimator(handler=E1_only, label=label_E1, inquiry=estimand)
E2_only_estimator = dd.declare_estimator(handler=E2_only, label=label_E2, inquiry=estimand)
E1_and_E2_estimator = dd.declare_estimator(handler=E1_and_E2,
                                           label=f"{label_E1} and {label_E2}",
                                           inquiry=estimand)
process_tracing_design = (population + select_case + trace_processes + estimand
                          + prior_only_estimator + E1_only_estimator + E2_only_estimator
                          + E1_and_E2_estimator)
process_tracing_diagnosands = dd.declare_diagnosands(
    bias=lambda df: (df["posterior_H"] - df["estimand"]).mean(),
    rmse=lambda df: ((df["posterior_H"] - df["estimand"]) ** 2).mean() ** 0.5,
    mean_inquiry=lambda df: df["estimand"].mean(),
    mean_posterior=lambda df: df["posterior_H"].mean(),
    sd_posterior=lambda df: df["posterior_H"].std())
