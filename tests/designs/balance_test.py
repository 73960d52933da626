"""``?declare_test`` example 1: balance F test of Z on three covariates.

lm_robust with a glance summary, N = 100, 20 treated.
"""

import declaredesign as dd

balance_test_design = (
    dd.declare_model(N=100, cov1="rnorm(N)", cov2="rnorm(N)", cov3="rnorm(N)")
    + dd.declare_assignment(Z=dd.complete_ra(prob=0.2))
    + dd.declare_test("Z ~ cov1 + cov2 + cov3", model=dd.lm_robust, summary="glance")
)
balance_test_diagnosands = dd.declare_diagnosands(
    false_positive_rate=lambda df: (df["p_value"] <= 0.05).mean())
