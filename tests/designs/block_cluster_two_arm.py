"""Two-arm blocked and clustered experiment: 10 blocks x 4 clusters x 5 units.

As DesignLibrary's ``block_cluster_two_arm_designer(N_blocks=10, N_clusters_in_block=4,
N_i_in_cluster=5, ate=0.25)`` writes it.
"""

import declaredesign as dd

N_blocks = 10
N_clusters_in_block = 4
N_i_in_cluster = 5
sd_block = 0.5773
sd_cluster = 0.577375402143181
sd_i_0 = 0.577375402143181
sd_i_1 = 0.577375402143181
rho = 1
assignment_probs = dd.rep(0.5, N_blocks)
control_mean = 0
treatment_mean = 0.25

population = dd.declare_population(
    blocks=dd.add_level(N=N_blocks, u_b=f"rnorm(N) * {sd_block}"),
    clusters=dd.add_level(N=N_clusters_in_block, u_c=f"rnorm(N) * {sd_cluster}",
                          cluster_size=N_i_in_cluster),
    i=dd.add_level(N=N_i_in_cluster, u_0=f"rnorm(N) * {sd_i_0}",
                   u_1=f"rnorm(n=N, mean={rho} * scale(u_0), sd=sqrt(1 - {rho}^2)) * {sd_i_1}"))
potential_outcomes = dd.declare_potential_outcomes(
    f"Y ~ (1 - Z) * ({control_mean} + u_0 + u_b + u_c) + Z * ({treatment_mean} + u_1 + u_b + u_c)")
estimand = dd.declare_inquiry(ATE="mean(Y_Z_1 - Y_Z_0)")
assignment = dd.declare_assignment(Z=dd.block_and_cluster_ra(block_prob=assignment_probs,
                                                             blocks="blocks",
                                                             clusters="clusters"))
reveal = dd.declare_reveal("Y", "Z")
estimator = dd.declare_estimator("Y ~ Z", inquiry=estimand, model=dd.lm_robust,
                                 fixed_effects="~blocks", clusters="clusters")
block_cluster_two_arm_design = (population + potential_outcomes + estimand + assignment
                                + reveal + estimator)
