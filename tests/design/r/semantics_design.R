# R's diagnosis of the design in tests/design/test_r_semantics_diagnosis.py
# Run: R_LIBS=/work/rlib Rscript tests/design/r/semantics_design.R
suppressMessages(library(DeclareDesign))
set.seed(20261201)
ate <- declare_inquiry(ATE = mean(Y_Z_1 - Y_Z_0))
design <-
  declare_model(N = 100, U = rnorm(N), X = rbinom(N, 1, 0.5),
                Y_Z_0 = U, Y_Z_1 = U + 0.2 + 0.6 * X) +
  ate +
  declare_inquiry(CATE_X1 = mean(Y_Z_1 - Y_Z_0), subset = X == 1) +
  declare_assignment(Z = complete_ra(N, prob = 0.5)) +
  declare_measurement(Y = reveal_outcomes(Y ~ Z)) +
  declare_estimator(Y ~ Z, inquiry = ate, label = "ols") +
  declare_estimator(Y ~ Z, term = "Z", inquiry = c("ATE", "CATE_X1"), label = "shared") +
  declare_estimator(Y ~ Z, subset = X == 1, inquiry = "CATE_X1", label = "sub") +
  declare_estimator(Y ~ 1, label = "mean_Y")
dx <- diagnose_design(design, sims = 2000, bootstrap_sims = 0)
out <- dx$diagnosands_df[, c("inquiry", "estimator", "term", "mean_estimand",
                             "mean_estimate", "sd_estimate", "power", "coverage")]
print(out, digits = 10)
