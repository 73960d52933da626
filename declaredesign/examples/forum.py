"""The forum's multilevel design: tests nested in students nested in classes.

Treatment is assigned by class. The question from the forum: does a random-intercept
model on test scores (``lmer``) do better than averaging each student's scores and
running ``lm_robust`` clustered by class?
"""

from __future__ import annotations

from .._validation import check_positive_int, fail
from ..assign import cluster_ra
from ..design import (
    Design,
    declare_assignment,
    declare_estimator,
    declare_inquiry,
    declare_measurement,
    declare_model,
    declare_potential_outcomes,
    declare_step,
    summarize,
)
from ..estimate import difference_in_means, lm_robust, lmer
from ..fabricate import add_level, normal, poisson, reveal_outcomes, uniform

__all__ = ["multilevel", "multilevel_varying"]


def multilevel(n_classes: int = 10, n_students: float = 20, n_tests: int = 3, *,
               varying_tests: bool = False, effect: float = 0.0, prob: float = 0.5,
               estimators: tuple[str, ...] = ("lmer", "test_level", "dim", "student_means"),
               ) -> Design:
    """Build the forum's multilevel design (defaults as in the forum post).

    One school; ``n_classes`` classes with Poisson(``n_students``) + 5 students each;
    each student takes ``n_tests`` tests (or, with ``varying_tests``, 1 + Poisson(
    ``n_tests`` - 1) tests). A test score is the student's baseline plus school, class
    and test effects, and treatment scales those effects; ``effect`` adds a constant
    treatment effect. Half the classes are treated (``cluster_ra``).

    Parameters
    ----------
    n_classes : int, default 10
    n_students : float, default 20
        Mean of the Poisson part of the class size (5 is added).
    n_tests : int, default 3
    varying_tests : bool, default False
    effect : float, default 0.0
        Constant treatment effect added to every test score.
    prob : float, default 0.5
        Probability that a class is treated.
    estimators : tuple of str
        Which estimators to include: "lmer" (random intercept for student, Satterthwaite
        df), "test_level" (lm_robust CR2 on test scores), "dim" (clustered difference in
        means), "student_means" (the forum's "Average Score": lm_robust CR2 on student means).

    Returns
    -------
    Design

    Examples
    --------
    >>> import declaredesign as dd
    >>> design = dd.examples.multilevel(n_classes=6)
    >>> design.estimator_labels
    ['Random Intercept', 'Test-level CR2', 'Difference in means', 'Average Score']
    """
    n_classes = check_positive_int("multilevel", "n_classes", n_classes)
    n_tests = check_positive_int("multilevel", "n_tests", n_tests)
    known = ("lmer", "test_level", "dim", "student_means")
    for e in estimators:
        if e not in known:
            fail("multilevel", "estimators", e, "a tuple drawn from " + ", ".join(known))
    if varying_tests:
        student_vars = {"n_tests": poisson(n_tests - 1) + 1} if n_tests > 1 else \
            {"n_tests": 1}
        tests_n: object = "n_tests"
    else:
        student_vars = {}
        tests_n = n_tests
    design = (
        declare_model(
            school=add_level(N=1, school_effect=normal(0, 0.001)),
            classroom=add_level(N=n_classes, class_effect=normal(0, 0.001),
                                n_students=poisson(n_students) + 5),
            student=add_level(N="n_students", test_ability=uniform(-0.01, 0.01),
                              student_baseline=uniform(0.4, 0.8), **student_vars),
            test=add_level(N=tests_n, test_effect=normal("test_ability", 0.001)),
        )
        + declare_potential_outcomes(
            "score ~ student_baseline + (1 + treatment) * (school_effect + class_effect"
            f" + test_effect) + {float(effect)!r} * treatment",
            conditions={"treatment": [0, 1]})
        + declare_inquiry(ate="mean(score_treatment_1 - score_treatment_0)")
        + declare_assignment(treatment=cluster_ra(clusters="classroom", prob=prob))
        + declare_measurement(score=reveal_outcomes("score ~ treatment"))
    )
    if "lmer" in estimators:
        design = design + declare_estimator("score ~ treatment + (1 | student)", model=lmer,
                                            inquiry="ate", term="treatment",
                                            label="Random Intercept")
    if "test_level" in estimators:
        design = design + declare_estimator("score ~ treatment", model=lm_robust,
                                            clusters="classroom", inquiry="ate",
                                            term="treatment", label="Test-level CR2")
    if "dim" in estimators:
        design = design + declare_estimator("score ~ treatment", model=difference_in_means,
                                            clusters="classroom", inquiry="ate",
                                            term="treatment", label="Difference in means")
    if "student_means" in estimators:
        design = (design
                  + declare_step(summarize(by=["school", "classroom", "student", "treatment"],
                                           av_score="mean(score)"),
                                 label="aggregate to student means")
                  + declare_estimator("av_score ~ treatment", model=lm_robust,
                                      clusters="classroom", inquiry="ate", term="treatment",
                                      label="Average Score"))
    return design


def multilevel_varying(n_classes: int = 10, n_students: float = 20, n_tests: int = 3, *,
                       effect: float = 0.02, **kwargs) -> Design:
    """Build the forum's design with varying numbers of tests per student and a real effect.

    Students take 1 + Poisson(n_tests - 1) tests and the treatment has an effect, so the
    random-intercept and student-mean estimators differ.

    Examples
    --------
    >>> import declaredesign as dd
    >>> len(dd.examples.multilevel_varying())
    10
    """
    return multilevel(n_classes, n_students, n_tests, varying_tests=True, effect=effect,
                      **kwargs)
