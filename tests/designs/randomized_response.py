"""Forced randomized response against direct questioning, N = 500.

As DesignLibrary's ``randomized_response_designer(N=500)`` writes it, with the
designer's diagnosand (bias) and rmse, mean and sd of the estimate, mean estimand.
"""

import pandas as pd

import declaredesign as dd

N = 500
prob_forced_yes = 0.6
prevalence_rate = 0.1
withholding_rate = 0.5

population = dd.declare_population(
    N=N,
    sensitive_trait=f"draw_binary(prob={prevalence_rate}, N=N)",
    withholder=f"draw_binary(prob=sensitive_trait * {withholding_rate}, N=N)",
    direct_answer="sensitive_trait - withholder")
potential_outcomes = dd.declare_potential_outcomes(Y_Z_Yes=1, Y_Z_Truth="sensitive_trait")
estimand = dd.declare_inquiry(true_rate="mean(sensitive_trait)")
assignment = dd.declare_assignment(Z=dd.complete_ra(prob=prob_forced_yes,
                                                    conditions=["Truth", "Yes"]))
estimator_randomized_response = dd.declare_estimator(
    handler=lambda data: pd.DataFrame(
        {"estimate": [(data["Y"].mean() - prob_forced_yes) / (1 - prob_forced_yes)]}),
    inquiry=estimand, label="Forced Randomized Response")
estimator_direct_question = dd.declare_estimator(
    handler=lambda data: pd.DataFrame({"estimate": [data["direct_answer"].mean()]}),
    inquiry=estimand, label="Direct Question")
randomized_response_design = (population + assignment + potential_outcomes + estimand
                              + dd.declare_reveal("Y", "Z") + estimator_randomized_response
                              + estimator_direct_question)
randomized_response_diagnosands = dd.declare_diagnosands(
    bias=lambda df: (df["estimate"] - df["estimand"]).mean(),
    rmse=lambda df: ((df["estimate"] - df["estimand"]) ** 2).mean() ** 0.5,
    mean_estimate=lambda df: df["estimate"].mean(),
    sd_estimate=lambda df: df["estimate"].std(),
    mean_estimand=lambda df: df["estimand"].mean())
