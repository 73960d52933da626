"""Mediation: Z -> M -> Y, N = 200, a = b = d = .5.

As DesignLibrary's ``mediation_analysis_designer(N=200, a=.5, b=.5, d=.5)`` writes it.
"""

import declaredesign as dd

N = 200
a = 0.5
b = 0.5
c = 0
d = 0.5
rho = 0

population = dd.declare_population(
    N=N, e1="rnorm(N)", e2=f"rnorm(n=N, mean={rho} * e1, sd=sqrt(1 - {rho}^2))")
POs_M = dd.declare_potential_outcomes(f"M ~ 1 * ({a} * Z + e1 > 0)")
POs_Y = dd.declare_potential_outcomes(f"Y ~ {d} * Z + {b} * M + {c} * M * Z + e2",
                                      conditions={"M": [0, 1], "Z": [0, 1]})
POs_Y_nat_0 = dd.declare_potential_outcomes(
    Y_nat0_Z_0=f"{b} * M_Z_0 + e2", Y_nat0_Z_1=f"{d} + {b} * M_Z_0 + {c} * M_Z_0 + e2")
POs_Y_nat_1 = dd.declare_potential_outcomes(
    Y_nat1_Z_0=f"{b} * M_Z_1 + e2", Y_nat1_Z_1=f"{d} + {b} * M_Z_1 + {c} * M_Z_1 + e2")
estimands = dd.declare_inquiry(
    FirstStage="mean(M_Z_1 - M_Z_0)",
    Indirect_0="mean(Y_M_1_Z_0 - Y_M_0_Z_0)",
    Indirect_1="mean(Y_M_1_Z_1 - Y_M_0_Z_1)",
    Controlled_Direct_0="mean(Y_M_0_Z_1 - Y_M_0_Z_0)",
    Controlled_Direct_1="mean(Y_M_1_Z_1 - Y_M_1_Z_0)",
    Natural_Direct_0="mean(Y_nat0_Z_1 - Y_nat0_Z_0)",
    Natural_Direct_1="mean(Y_nat1_Z_1 - Y_nat1_Z_0)")
assignment = dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
reveal_M = dd.declare_reveal("M", "Z")
reveal_Y = dd.declare_reveal("Y", assignment_variables=["M", "Z"])
reveal_nat0 = dd.declare_reveal("Y_nat0")
reveal_nat1 = dd.declare_reveal("Y_nat1")
manipulation = dd.declare_step(dd.fabricate, Not_M="1 - M")
mediator_regression = dd.declare_estimator("M ~ Z", model=dd.lm_robust, inquiry="FirstStage",
                                           label="Stage 1")
stage2_1 = dd.declare_estimator("Y ~ Z * M", model=dd.lm_robust, term=["M"],
                                inquiry=["Indirect_0"], label="Stage 2")
stage2_2 = dd.declare_estimator("Y ~ Z * M", model=dd.lm_robust, term=["Z"],
                                inquiry=["Controlled_Direct_0", "Natural_Direct_0"],
                                label="Direct_0")
stage2_3 = dd.declare_estimator("Y ~ Z * Not_M", model=dd.lm_robust, term=["Z"],
                                inquiry=["Controlled_Direct_1", "Natural_Direct_1"],
                                label="Direct_1")
mediation_analysis_design = (population + POs_M + POs_Y + POs_Y_nat_0 + POs_Y_nat_1
                             + estimands + assignment + reveal_M + reveal_Y + reveal_nat0
                             + reveal_nat1 + manipulation + mediator_regression + stage2_1
                             + stage2_2 + stage2_3)
