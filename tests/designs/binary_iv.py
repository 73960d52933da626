"""Binary instrumental variable (always-takers, never-takers, compliers), N = 200.

Effect of X on Y 0.5. As DesignLibrary's ``binary_iv_designer(N=200, b_Y=0.5)``
writes it.
"""

import declaredesign as dd

N = 200
type_probs = "c(1/3, 1/3, 1/3, 0)"
assignment_probs = "c(0.5, 0.5, 0.5, 0.5)"
outcome_sd = 1
a = "c(1, 0, 0, 0)"
b = "c(0.5, 0.5, 0.5, 0.5)"
d = "c(0, 0, 0, 0)"

population = dd.declare_population(
    N=N,
    type=f"sample(1:4, N, replace=TRUE, prob={type_probs})",
    type_label='c("Always", "Never", "Complier", "Defier")[type]',
    u_Z="runif(N)",
    u_Y=f"rnorm(N) * {outcome_sd}",
    Z=f"(u_Z < {assignment_probs}[type])",
    X="(type == 1) + (type == 3) * Z + (type == 4) * (1 - Z)")
potential_outcomes = dd.declare_potential_outcomes(
    f"Y ~ {a}[type] + {b}[type] * X + {d}[type] * Z + u_Y", assignment_variables="X")
reveal = dd.declare_reveal(outcome_variables="Y", assignment_variables="X")
estimand = dd.declare_inquiry(
    first_stage="mean((type == 3) - (type == 4))",
    ate="mean(Y_X_1 - Y_X_0)",
    late="mean(Y_X_1[type == 3] - Y_X_0[type == 3])",
    late_het="(mean(type == 3) * mean(Y_X_1[type == 3] - Y_X_0[type == 3]) -"
             " mean(type == 4) * mean(Y_X_1[type == 4] - Y_X_0[type == 4])) /"
             " (mean(type == 3) - mean(type == 4))")
estimator_1 = dd.declare_estimator("X ~ Z", model=dd.difference_in_means,
                                   inquiry="first_stage", label="d-i-m")
estimator_2 = dd.declare_estimator("Y ~ X", inquiry=["ate", "late", "late_het"],
                                   model=dd.lm_robust, label="lm_robust")
estimator_3 = dd.declare_estimator("Y ~ X | Z", inquiry=["ate", "late", "late_het"],
                                   model=dd.iv_robust, label="iv_robust")
binary_iv_design = (population + potential_outcomes + reveal + estimand
                    + estimator_1 + estimator_2 + estimator_3)
