"""Pretest-posttest with 10% attrition at the posttest, N = 100, ATE .25.

As DesignLibrary's ``pretest_posttest_designer(N=100, ate=.25)`` writes it.
"""

import declaredesign as dd

N = 100
ate = 0.25
sd_1 = 1
sd_2 = 1
rho = 0.5
attrition_rate = 0.1

population = dd.declare_population(
    N=N, u_t1=f"rnorm(N) * {sd_1}",
    u_t2=f"rnorm(N, {rho} * scale(u_t1), sqrt(1 - {rho}^2)) * {sd_2}",
    Y_t1="u_t1")
potential_outcomes = dd.declare_potential_outcomes(f"Y_t2 ~ u_t2 + {ate} * Z")
estimand = dd.declare_inquiry(ATE="mean(Y_t2_Z_1 - Y_t2_Z_0)")
assignment = dd.declare_assignment(Z=dd.complete_ra())
report = dd.declare_assignment(R=dd.complete_ra(prob=1 - attrition_rate))
reveal_t2 = dd.declare_reveal("Y_t2")
manipulation = dd.declare_step(dd.fabricate, difference="Y_t2 - Y_t1")
pretest_lhs = dd.declare_estimator("difference ~ Z", model=dd.lm_robust, inquiry=estimand,
                                   subset="R == 1", label="Change score")
pretest_rhs = dd.declare_estimator("Y_t2 ~ Z + Y_t1", model=dd.lm_robust, inquiry=estimand,
                                   subset="R == 1", label="Condition on pretest")
posttest_only = dd.declare_estimator("Y_t2 ~ Z", model=dd.lm_robust, inquiry=estimand,
                                     label="Posttest only")
pretest_posttest_design = (population + potential_outcomes + estimand + assignment
                           + reveal_t2 + report + manipulation + pretest_lhs + pretest_rhs
                           + posttest_only)
