"""The DeclareDesign README design (binary outcome, 100 units, 50 treated, ATE 0.05)."""

import declaredesign as dd

readme_two_arm_design = (
    dd.declare_model(N=100, Y=dd.potential_outcomes("Y ~ rbinom(N, size=1, prob=0.5 + 0.05 * Z)"))
    + dd.declare_inquiry(ATE=0.05)
    + dd.declare_assignment(Z=dd.complete_ra(m=50))
    + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
    + dd.declare_estimator("Y ~ Z", model=dd.lm_robust, inquiry="ATE")
)
readme_two_arm_diagnosands = dd.declare_diagnosands(
    bias=lambda df: (df["estimate"] - df["estimand"]).mean(),
    power=lambda df: (df["p_value"] <= 0.05).mean(),
)
