"""Two-arm with a prognostic covariate W (effect heterogeneity h = .2), N = 100.

As DesignLibrary's ``two_arm_covariate_designer(N=100, ate=.25, rho_WY=.5, h=.2)``
writes it: no controls, controls, and Lin.
"""

import declaredesign as dd

N = 100
prob = 0.5
control_mean = 0
sd = 1
h = 0.2
treatment_mean = 0.25
rho_WY = 0.5
rho_WZ = 0

population = dd.declare_population(
    N=N, u_W="rnorm(N)",
    u_Y=f"rnorm(n=N, mean={rho_WY} * u_W, sd=sqrt(1 - {rho_WY}^2))",
    u_Z=f"rnorm(n=N, mean={rho_WZ} * u_W, sd=sqrt(1 - {rho_WZ}^2))",
    W="u_W")
potentials = dd.declare_potential_outcomes(
    f"Y ~ (1 - Z) * (u_Y * {sd} + {control_mean})"
    f" + Z * (u_Y * {sd} + {treatment_mean} + {h} * u_W)")
estimand = dd.declare_inquiry(ATE="mean(Y_Z_1 - Y_Z_0)")
assignment = dd.declare_step(dd.fabricate, Z=f"1 * (u_Z < qnorm({prob}))")
reveal_Y = dd.declare_reveal()
estimator_1 = dd.declare_estimator("Y ~ Z", inquiry=estimand, label="No controls")
estimator_2 = dd.declare_estimator("Y ~ Z + W", inquiry=estimand, model=dd.lm_robust,
                                   label="With controls")
estimator_3 = dd.declare_estimator("Y ~ Z", covariates="~W", inquiry=estimand,
                                   model=dd.lm_lin, label="Lin")
two_arm_covariate_design = (population + potentials + estimand + assignment + reveal_Y
                            + estimator_1 + estimator_2 + estimator_3)
