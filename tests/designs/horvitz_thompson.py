"""Horvitz-Thompson on a fabricatr multilevel population.

3 districts, 10 villages each of 4-12 households; villages assigned within districts
with probabilities .3, .5, .7; estimated by Horvitz-Thompson and by inverse-probability-
weighted lm_robust. Written for the battery as an R user would.
"""

import declaredesign as dd

district_probs = [0.3, 0.5, 0.7]
hh_per_village = "c(4, 6, 8, 10, 12)"

horvitz_thompson_design = (
    dd.declare_model(
        districts=dd.add_level(N=3, district_shock="rnorm(N, sd=0.5)"),
        villages=dd.add_level(N=10, village_shock="rnorm(N, sd=0.5)",
                              n_hh=f"sample({hh_per_village}, N, replace=TRUE)"),
        households=dd.add_level(N="n_hh", income="rlnorm(N, meanlog=0, sdlog=0.5)",
                                U="rnorm(N)"))
    + dd.declare_potential_outcomes("Y ~ district_shock + village_shock + 0.5 * income + U"
                                    " + Z * (0.2 + 0.3 * (income > 1))")
    + dd.declare_inquiry(ATE="mean(Y_Z_1 - Y_Z_0)")
    + dd.declare_assignment(
        Z=dd.block_and_cluster_ra(blocks="districts", clusters="villages",
                                  block_prob=district_probs),
        Z_cond_prob=dd.obtain_condition_probabilities(
            assignment="Z", blocks="districts", clusters="villages",
            block_prob=district_probs),
        Z_treat_prob="c(0.3, 0.5, 0.7)[as.numeric(districts)]")
    + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
    + dd.declare_estimator("Y ~ Z", model=dd.horvitz_thompson, blocks="districts",
                           clusters="villages", condition_prs="Z_treat_prob", inquiry="ATE",
                           label="Horvitz-Thompson")
    + dd.declare_estimator("Y ~ Z", model=dd.lm_robust, weights="1 / Z_cond_prob",
                           clusters="villages", inquiry="ATE", label="IPW lm_robust")
)
