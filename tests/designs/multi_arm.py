"""Three-arm experiment, N = 90, arm means 0, .25, .5; pairwise differences in means.

As DesignLibrary's ``multi_arm_designer(N=90, m_arms=3, outcome_means=c(0, .25, .5))``
writes it: one handler estimator returning ``estimator`` and ``inquiry`` columns.
"""

import pandas as pd

import declaredesign as dd

N = 90
outcome_means = [0, 0.25, 0.5]
sd_i = 1
outcome_sds = [0, 0, 0]

population = dd.declare_model(N=N,
                              u_1=f"rnorm(N, 0, {outcome_sds[0]})",
                              u_2=f"rnorm(N, 0, {outcome_sds[1]})",
                              u_3=f"rnorm(N, 0, {outcome_sds[2]})",
                              u=f"rnorm(N) * {sd_i}")
po = dd.declare_potential_outcomes(
    formula=f'Y ~ ({outcome_means[0]} + u_1) * (Z == "1") + ({outcome_means[1]} + u_2) * (Z == "2")'
            f' + ({outcome_means[2]} + u_3) * (Z == "3") + u',
    conditions={"Z": ["1", "2", "3"]})
estimand = dd.declare_inquiry(ate_Y_2_1="mean(Y_Z_2 - Y_Z_1)",
                              ate_Y_3_1="mean(Y_Z_3 - Y_Z_1)",
                              ate_Y_3_2="mean(Y_Z_3 - Y_Z_2)")
assignment = dd.declare_assignment(Z=dd.complete_ra(num_arms=3, conditions=["1", "2", "3"]))
reveal_Y = dd.declare_reveal(assignment_variables="Z")


def estimator_handler(data):
    estimates = pd.concat({
        "ate_Y_2_1": dd.difference_in_means("Y ~ Z", data=data, condition1="1",
                                            condition2="2").tidy(),
        "ate_Y_3_1": dd.difference_in_means("Y ~ Z", data=data, condition1="1",
                                            condition2="3").tidy(),
        "ate_Y_3_2": dd.difference_in_means("Y ~ Z", data=data, condition1="2",
                                            condition2="3").tidy(),
    }).droplevel(1)
    estimates = estimates.rename(columns={"N": "N_DIM"})
    estimates["estimator"] = ["DIM (Z_2 - Z_1)", "DIM (Z_3 - Z_1)", "DIM (Z_3 - Z_2)"]
    estimates["inquiry"] = estimates.index
    del estimates["term"]
    return estimates


estimator = dd.declare_estimator(handler=estimator_handler)
multi_arm_design = population + po + assignment + reveal_Y + estimand + estimator
