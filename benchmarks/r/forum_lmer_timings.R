## R's time per simulation for the issue 11 benchmark design: the forum's multilevel
## design with a real effect, 20 classes of 5 + Poisson(20) students, 1 + Poisson(2) tests
## per student (declaredesign.examples.multilevel_varying(n_classes=20, effect=0.02)),
## and mixed-model estimators fitted with lmerTest (Satterthwaite df) / lme4::glmer.
## Usage (from the repo root):  Rscript benchmarks/r/forum_lmer_timings.R [sims] [outdir]
## Needs DeclareDesign (+ fabricatr, randomizr, estimatr), lme4, lmerTest, broom.mixed,
## dplyr, jsonlite. Writes r_timings.csv, forum20_data.csv and forum20_fits.json.
suppressPackageStartupMessages({
  library(DeclareDesign); library(lme4); library(lmerTest); library(broom.mixed)
  library(dplyr); library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
sims <- if (length(args) >= 1) as.integer(args[1]) else 200L
outdir <- if (length(args) >= 2) args[2] else "benchmarks/r"

## ------------------------------------------------------------------ design
N_classes <- 20
effect <- 0.02

base_design <-
  declare_model(
    school  = add_level(N = 1, school_effect = rnorm(N, 0, .001)),
    class   = add_level(N = N_classes, class_effect = rnorm(N, 0, .001),
                        N_students = rpois(N, 20) + 5),
    student = add_level(N = N_students, test_ability = runif(N, -.01, .01),
                        student_baseline = runif(N, .4, .8),
                        n_tests = rpois(N, 2) + 1),
    test    = add_level(N = n_tests, test_effect = rnorm(N, test_ability, .001))) +
  declare_potential_outcomes(
    score ~ student_baseline + (1 + treatment) * (school_effect + class_effect + test_effect) +
      effect * treatment,
    conditions = list(treatment = c(0, 1))) +
  declare_inquiry(ate = mean(score_treatment_1 - score_treatment_0)) +
  declare_assignment(treatment = cluster_ra(clusters = class, prob = .5)) +
  # passed: one Bernoulli(score) draw per test (score lies in (0.4, 0.8)), the binary
  # outcome of the logit GLMM
  declare_measurement(score = reveal_outcomes(score ~ treatment),
                      passed = rbinom(N, 1, score))

tidy_fixed <- function(fit) broom.mixed::tidy(fit, effects = "fixed", conf.int = TRUE)

models <- list(
  lmer_student = list(formula = score ~ treatment + (1 | student), fun = "lmer"),
  lmer_class_slash_student = list(formula = score ~ treatment + (1 | class/student), fun = "lmer"),
  lmer_class_plus_student = list(formula = score ~ treatment + (1 | class) + (1 | student),
                                 fun = "lmer"),
  lmer_slope_class = list(formula = score ~ treatment + (1 + treatment | class), fun = "lmer"),
  glmer_logit_student = list(formula = passed ~ treatment + (1 | student), fun = "glmer")
)
make_estimator <- function(name) {
  m <- models[[name]]
  if (m$fun == "lmer")
    declare_estimator(m$formula, .method = lmerTest::lmer, .summary = tidy_fixed,
                      term = "treatment", inquiry = "ate", label = name)
  else
    declare_estimator(m$formula, .method = lme4::glmer, family = binomial,
                      .summary = tidy_fixed, term = "treatment", inquiry = "ate", label = name)
}
other_estimators <-
  declare_estimator(score ~ treatment, clusters = class, .method = lm_robust,
                    term = "treatment", inquiry = "ate", label = "lm_robust_CR2_testlevel") +
  declare_estimator(score ~ treatment, clusters = class, .method = difference_in_means,
                    term = "treatment", inquiry = "ate", label = "difference_in_means_cluster")

quietly <- function(expr) suppressMessages(suppressWarnings(expr))
timed <- function(expr) {
  st <- system.time(value <- quietly(expr))
  list(value = value, elapsed = st[["elapsed"]], cpu = st[["user.self"]] + st[["sys.self"]])
}
rows <- list()
add_row <- function(what, model, formula, n, t, extra = "") {
  rows[[length(rows) + 1]] <<- data.frame(
    what = what, model = model, formula = formula, sims = n,
    ms_per_sim = 1000 * t$elapsed / n, cpu_ms_per_sim = 1000 * t$cpu / n, note = extra)
  cat(sprintf("%-22s %-26s %8.1f ms/sim (cpu %.1f)\n", what, model, 1000 * t$elapsed / n,
              1000 * t$cpu / n))
}
fstr <- function(f) paste(deparse(f), collapse = "")

## 1. data only (model, potential outcomes, inquiry, assignment, measurement)
set.seed(1)
t <- timed(simulate_design(base_design, sims = sims))
add_row("design_data_only", "none", "", sims, t)
data_ms <- 1000 * t$elapsed / sims

## 2. each estimator in the design (design time; the estimator's share = minus data only)
for (nm in names(models)) {
  set.seed(2)
  t <- timed(simulate_design(base_design + make_estimator(nm), sims = sims))
  add_row("design_with_estimator", nm, fstr(models[[nm]]$formula), sims, t,
          sprintf("estimator share %.1f ms/sim", 1000 * t$elapsed / sims - data_ms))
}

## 3. standalone fits on the same pre-drawn datasets (fit + tidy; lmerTest fits include
##    the Satterthwaite df that tidy computes)
set.seed(3)
datasets <- lapply(seq_len(sims), function(i) draw_data(base_design))
nrows <- vapply(datasets, nrow, 1L)
for (nm in names(models)) {
  m <- models[[nm]]
  fit_one <- if (m$fun == "lmer") function(d) tidy_fixed(lmerTest::lmer(m$formula, data = d))
             else function(d) tidy_fixed(lme4::glmer(m$formula, data = d, family = binomial))
  t <- timed(for (d in datasets) fit_one(d))
  add_row("standalone_fit_tidy", nm, fstr(m$formula), sims, t,
          if (m$fun == "lmer") "lmerTest::lmer + broom.mixed tidy (Satterthwaite)"
          else "lme4::glmer binomial logit, Laplace + broom.mixed tidy")
  if (m$fun == "lmer") {
    t <- timed(for (d in datasets) lme4::lmer(m$formula, data = d))
    add_row("standalone_lme4_only", nm, fstr(m$formula), sims, t, "lme4::lmer fit only")
  }
}

## 4. the whole design: all five mixed models plus test-level lm_robust CR2 and
##    clustered difference in means
full_design <- base_design + make_estimator("lmer_student") +
  make_estimator("lmer_class_slash_student") + make_estimator("lmer_class_plus_student") +
  make_estimator("lmer_slope_class") + make_estimator("glmer_logit_student") + other_estimators
n_full <- max(10L, sims %/% 2L)
set.seed(4)
t <- timed(simulate_design(full_design, sims = n_full))
add_row("design_all_estimators", "all", "5 mixed + lm_robust CR2 + DIM", n_full, t)

res <- do.call(rbind, rows)
res$r_version <- paste(R.version$major, R.version$minor, sep = ".")
for (p in c("DeclareDesign", "fabricatr", "randomizr", "estimatr", "lme4", "lmerTest",
            "broom.mixed")) res[[p]] <- as.character(packageVersion(p))
res$mean_rows_per_dataset <- mean(nrows)
write.csv(res, file.path(outdir, "r_timings.csv"), row.names = FALSE)

## 5. one dataset and its fits (so that a port can check it fits the same numbers)
set.seed(20251205)
dat <- draw_data(base_design)
out <- dat
for (nm in names(out)) if (is.double(out[[nm]])) out[[nm]] <- sprintf("%.17g", out[[nm]])
write.csv(out, file.path(outdir, "forum20_data.csv"), row.names = FALSE)
fits <- list()
for (nm in names(models)) {
  m <- models[[nm]]
  msgs <- character(0)
  fit <- withCallingHandlers(
    if (m$fun == "lmer") lmerTest::lmer(m$formula, data = dat)
    else lme4::glmer(m$formula, data = dat, family = binomial),
    warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(w) { msgs <<- c(msgs, trimws(conditionMessage(w))); invokeRestart("muffleMessage") })
  cs <- if (m$fun == "lmer") coef(summary(fit, ddf = "Satterthwaite")) else coef(summary(fit))
  vc <- as.data.frame(VarCorr(fit))
  fits[[nm]] <- list(
    formula = fstr(m$formula), kind = m$fun, terms = names(fixef(fit)),
    fixef = unname(fixef(fit)), se = unname(cs[, "Std. Error"]),
    df = if (m$fun == "lmer") unname(cs[, "df"]) else NULL,
    p = unname(cs[, ncol(cs)]), theta = unname(getME(fit, "theta")), sigma = sigma(fit),
    logLik = as.numeric(logLik(fit)), is_singular = isSingular(fit), messages = msgs,
    varcorr = list(grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor))
}
writeLines(toJSON(list(
  meta = list(r_version = R.version.string, seed = 20251205,
              note = "one draw_data(base_design) after set.seed(20251205); lmer fits are lmerTest REML, glmer Laplace"),
  fits = fits), digits = I(17), auto_unbox = TRUE, null = "null", na = "null", pretty = TRUE),
  file.path(outdir, "forum20_fits.json"))
cat("done\n")
