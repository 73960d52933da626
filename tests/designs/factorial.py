"""2^3 factorial, N = 256, complete assignment to the 8 cells.

As DesignLibrary's ``factorial_designer(N=256, k=3, outcome_means=c(0, .2, .2, .4, .1,
.3, .3, .6))`` writes it: potential-outcome columns ``Y_<T1>_<T2>_<T3>``; the estimator
centres the factors and weights by ``1 / Z_cond_prob``.
"""

import numpy as np

import declaredesign as dd

N = 256
outcome_means = [0, 0.2, 0.2, 0.4, 0.1, 0.3, 0.3, 0.6]
outcome_sds = [1, 1, 1, 1, 1, 1, 1, 1]

population = dd.declare_population(N)
potential_outcomes = dd.declare_potential_outcomes(
    Y_0_0_0=f"{outcome_means[0]} + rnorm(N, 0, {outcome_sds[0]})",
    Y_1_0_0=f"{outcome_means[1]} + rnorm(N, 0, {outcome_sds[1]})",
    Y_0_1_0=f"{outcome_means[2]} + rnorm(N, 0, {outcome_sds[2]})",
    Y_1_1_0=f"{outcome_means[3]} + rnorm(N, 0, {outcome_sds[3]})",
    Y_0_0_1=f"{outcome_means[4]} + rnorm(N, 0, {outcome_sds[4]})",
    Y_1_0_1=f"{outcome_means[5]} + rnorm(N, 0, {outcome_sds[5]})",
    Y_0_1_1=f"{outcome_means[6]} + rnorm(N, 0, {outcome_sds[6]})",
    Y_1_1_1=f"{outcome_means[7]} + rnorm(N, 0, {outcome_sds[7]})")


def reveal_Y_handler(data):
    potential_cols = ("Y_" + data["T1"].astype(int).astype(str) + "_"
                      + data["T2"].astype(int).astype(str) + "_"
                      + data["T3"].astype(int).astype(str))
    upoc = list(dict.fromkeys(potential_cols))
    df = data[upoc].to_numpy()
    R = np.arange(len(data))
    C = [upoc.index(c) for c in potential_cols]
    data = data.copy()
    data["Y"] = df[R, C]
    return data


reveal_Y = dd.declare_reveal(handler=reveal_Y_handler)
estimand = dd.declare_inquiry(
    Overall_average="mean(0.125 * Y_0_0_0 + 0.125 * Y_0_0_1 + 0.125 * Y_0_1_0 + 0.125 * Y_0_1_1"
                    " + 0.125 * Y_1_0_0 + 0.125 * Y_1_0_1 + 0.125 * Y_1_1_0 + 0.125 * Y_1_1_1)",
    te_T3="mean(-0.25 * Y_0_0_0 + 0.25 * Y_0_0_1 + -0.25 * Y_0_1_0 + 0.25 * Y_0_1_1"
          " + -0.25 * Y_1_0_0 + 0.25 * Y_1_0_1 + -0.25 * Y_1_1_0 + 0.25 * Y_1_1_1)",
    te_T2="mean(-0.25 * Y_0_0_0 + -0.25 * Y_0_0_1 + 0.25 * Y_0_1_0 + 0.25 * Y_0_1_1"
          " + -0.25 * Y_1_0_0 + -0.25 * Y_1_0_1 + 0.25 * Y_1_1_0 + 0.25 * Y_1_1_1)",
    **{"te_T2:T3": "mean(0.5 * Y_0_0_0 + -0.5 * Y_0_0_1 + -0.5 * Y_0_1_0 + 0.5 * Y_0_1_1"
                   " + 0.5 * Y_1_0_0 + -0.5 * Y_1_0_1 + -0.5 * Y_1_1_0 + 0.5 * Y_1_1_1)"},
    te_T1="mean(-0.25 * Y_0_0_0 + -0.25 * Y_0_0_1 + -0.25 * Y_0_1_0 + -0.25 * Y_0_1_1"
          " + 0.25 * Y_1_0_0 + 0.25 * Y_1_0_1 + 0.25 * Y_1_1_0 + 0.25 * Y_1_1_1)",
    **{"te_T1:T3": "mean(0.5 * Y_0_0_0 + -0.5 * Y_0_0_1 + 0.5 * Y_0_1_0 + -0.5 * Y_0_1_1"
                   " + -0.5 * Y_1_0_0 + 0.5 * Y_1_0_1 + -0.5 * Y_1_1_0 + 0.5 * Y_1_1_1)",
       "te_T1:T2": "mean(0.5 * Y_0_0_0 + 0.5 * Y_0_0_1 + -0.5 * Y_0_1_0 + -0.5 * Y_0_1_1"
                   " + -0.5 * Y_1_0_0 + -0.5 * Y_1_0_1 + 0.5 * Y_1_1_0 + 0.5 * Y_1_1_1)",
       "te_T1:T2:T3": "mean(-1 * Y_0_0_0 + 1 * Y_0_0_1 + 1 * Y_0_1_0 + -1 * Y_0_1_1"
                      " + 1 * Y_1_0_0 + -1 * Y_1_0_1 + -1 * Y_1_1_0 + 1 * Y_1_1_1)"},
    label="ATE")
assignment_factors = dd.declare_assignment(
    Z=dd.complete_ra(conditions=list(range(1, 2 ** 3 + 1)), prob_each=dd.rep(0.125, 8)),
    Z_cond_prob=dd.obtain_condition_probabilities(assignment="Z",
                                                  conditions=list(range(1, 2 ** 3 + 1)),
                                                  prob_each=dd.rep(0.125, 8)))
assignment = dd.declare_step(dd.fabricate,
                             T1="as.numeric(Z %in% c(2L, 4L, 6L, 8L))",
                             T2="as.numeric(Z %in% c(3L, 4L, 7L, 8L))",
                             T3="as.numeric(Z %in% 5:8)")


def estimator_handler(data):
    data = data.copy()
    data[["T1", "T2", "T3"]] = data[["T1", "T2", "T3"]] - 0.5
    mod = dd.lm_robust("Y ~ T1 * T2 * T3", data=data, weights=1 / data["Z_cond_prob"])
    estimate_df = mod.tidy()
    estimate_df["inquiry"] = "te_" + estimate_df["term"]
    estimate_df.loc[estimate_df["inquiry"] == "te_(Intercept)", "inquiry"] = "Overall_average"
    return estimate_df


estimator = dd.declare_estimator(handler=estimator_handler)
factorial_design = (population + potential_outcomes + assignment_factors + assignment
                    + reveal_Y + estimand + estimator)
