"""Sharp regression discontinuity, N = 500, cutoff 0.5, local quartic on each side.

As DesignLibrary's ``regression_discontinuity_designer(N=500)`` writes it.
"""

import numpy as np

import declaredesign as dd

N = 500
tau = 0.15
outcome_sd = 0.1
cutoff = 0.5
bandwidth = 0.5
control_coefs = [0.5, 0.5]
treatment_coefs = [-5, 1]
poly_reg_order = 4


def po_function(X, coefs, tau):
    # poly(X, length(coefs), raw = T) %*% coefs + tau
    X = np.asarray(X, dtype=float)
    return np.column_stack([X ** (k + 1) for k in range(len(coefs))]) @ coefs + tau


population = dd.declare_population(N=N,
                                   X=f"runif(N, 0, 1) - {cutoff}",
                                   noise=f"rnorm(N, 0, {outcome_sd})",
                                   Z="1 * (X > 0)")
potential_outcomes = dd.declare_potential_outcomes(
    Y_Z_0=lambda data: po_function(data["X"], tau=0, coefs=control_coefs) + data["noise"],
    Y_Z_1=lambda data: po_function(data["X"], tau=tau, coefs=treatment_coefs) + data["noise"])
reveal_Y = dd.declare_reveal("Y")
estimand = dd.declare_inquiry(
    LATE=(po_function(X=[0], coefs=treatment_coefs, tau=tau)
          - po_function(X=[0], coefs=control_coefs, tau=0))[0])
sampling = dd.declare_sampling(
    handler=lambda data: data[(data["X"] > 0 - abs(bandwidth)) & (data["X"] < 0 + abs(bandwidth))])
estimator = dd.declare_estimator(formula=f"Y ~ poly(X, {poly_reg_order}) * Z", model=dd.lm_robust,
                                 term="Z", inquiry=estimand)
regression_discontinuity_design = (population + potential_outcomes + estimand + reveal_Y
                                   + sampling + estimator)
