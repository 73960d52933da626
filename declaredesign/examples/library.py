"""A library of common designs (R: DesignLibrary's designers).

Every function here is a *designer*: keyword parameters with defaults in, an ordinary
:class:`~declaredesign.design.Design` out, so it works with ``expand_design``,
``redesign``, ``find_sample_size`` and the CLI's ``--param``. Outcomes are normal with
the treatment effect ``ate`` added for treated units, so the inquiry's true value is
known and every estimator listed should be unbiased for it.
"""

from __future__ import annotations

import math

from .._validation import check_positive_int, check_probability, fail
from ..assign import block_and_cluster_ra, block_ra, cluster_ra, complete_ra
from ..design import (
    Design,
    declare_assignment,
    declare_estimator,
    declare_inquiry,
    declare_measurement,
    declare_model,
    declare_potential_outcomes,
)
from ..estimate import difference_in_means, lm_robust
from ..fabricate import add_level, normal, reveal_outcomes

__all__ = [
    "block_cluster",
    "block_randomized",
    "cluster_randomized",
    "factorial",
    "multi_arm",
    "pre_post",
    "two_arm",
    "two_arm_covariate",
]


def _real(func: str, arg: str, value: object, *, positive: bool = False,
          unit: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(float(value))
    if ok and positive and float(value) <= 0:
        ok = False
    if ok and unit and not 0 <= float(value) <= 1:
        ok = False
    if not ok:
        rule = ("a number in [0, 1]" if unit else "a positive number" if positive
                else "a finite number")
        fail(func, arg, value, rule)
    return float(value)


def two_arm(N: int = 100, *, ate: float = 0.5, control_mean: float = 0.0,
            control_sd: float = 1.0, assignment_prob: float = 0.5) -> Design:
    """Two-arm trial: ``N`` units, complete random assignment, difference in means.

    ``Y = control_mean + ate * Z + control_sd * U`` with ``U ~ N(0, 1)``; the inquiry is
    the average treatment effect; the estimator is estimatr's difference in means
    (Welch SE). R: ``DesignLibrary::two_arm_designer``.

    Parameters
    ----------
    N : int, default 100
        Number of units.
    ate : float, default 0.5
        Average treatment effect (in outcome units; 0.5 = half a control SD by default).
    control_mean : float, default 0.0
    control_sd : float, default 1.0
        SD of the outcome in either arm.
    assignment_prob : float, default 0.5
        Share of units treated (``complete_ra(prob=...)``).

    Returns
    -------
    Design
        Inquiry ``ate``; estimator ``"DIM"`` (term ``Z``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.examples.two_arm(N=40).estimator_labels
    ['DIM']
    """
    f = "two_arm"
    N = check_positive_int(f, "N", N)
    ate = _real(f, "ate", ate)
    control_mean = _real(f, "control_mean", control_mean)
    control_sd = _real(f, "control_sd", control_sd, positive=True)
    assignment_prob = check_probability(f, "assignment_prob", assignment_prob,
                                        open_interval=True)
    return (
        declare_model(N=N, U=normal(0, control_sd))
        + declare_potential_outcomes(f"Y ~ {control_mean!r} + {ate!r} * Z + U")
        + declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
        + declare_assignment(Z=complete_ra(prob=assignment_prob))
        + declare_measurement(Y=reveal_outcomes("Y ~ Z"))
        + declare_estimator("Y ~ Z", model=difference_in_means, inquiry="ate", term="Z",
                            label="DIM")
    )


def two_arm_covariate(N: int = 100, *, ate: float = 0.5, sd: float = 1.0,
                      rho: float = 0.5, prob: float = 0.5) -> Design:
    """Two-arm trial with a pre-treatment covariate ``X`` correlated ``rho`` with the outcome.

    ``Y = ate * Z + sd * (rho * X + sqrt(1 - rho^2) * e)``. Two estimators of the ATE:
    the difference in means ignoring ``X`` and OLS adjusting for it (HC2), which is more
    precise the larger ``rho``. R: ``DesignLibrary::two_arm_covariate_designer``.

    Parameters
    ----------
    N : int, default 100
    ate : float, default 0.5
    sd : float, default 1.0
        SD of the untreated outcome.
    rho : float, default 0.5
        Correlation between ``X`` and the untreated outcome, in [0, 1].
    prob : float, default 0.5
        Share treated.

    Returns
    -------
    Design
        Estimators ``"No controls"`` and ``"With controls"`` (term ``Z``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.examples.two_arm_covariate().estimator_labels
    ['No controls', 'With controls']
    """
    f = "two_arm_covariate"
    N = check_positive_int(f, "N", N)
    ate = _real(f, "ate", ate)
    sd = _real(f, "sd", sd, positive=True)
    rho = _real(f, "rho", rho, unit=True)
    prob = check_probability(f, "prob", prob, open_interval=True)
    noise = math.sqrt(1.0 - rho * rho)
    return (
        declare_model(N=N, X=normal(), e=normal())
        + declare_potential_outcomes(f"Y ~ {ate!r} * Z + {sd!r} * ({rho!r} * X + {noise!r} * e)")
        + declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
        + declare_assignment(Z=complete_ra(prob=prob))
        + declare_measurement(Y=reveal_outcomes("Y ~ Z"))
        + declare_estimator("Y ~ Z", model=difference_in_means, inquiry="ate", term="Z",
                            label="No controls")
        + declare_estimator("Y ~ Z + X", model=lm_robust, inquiry="ate", term="Z",
                            label="With controls")
    )


def block_randomized(N_blocks: int = 10, N_per_block: int = 10, *, ate: float = 0.5,
                     block_sd: float = 1.0, sd: float = 1.0, prob: float = 0.5) -> Design:
    """Block-randomized trial: a share ``prob`` of each block treated.

    Blocks shift the outcome by ``N(0, block_sd)``. Estimators: the blocked difference
    in means (estimatr's block-weighted estimator) and, for contrast, the unblocked one,
    whose standard error ignores the blocking and is conservative. R:
    ``DesignLibrary::block_cluster_two_arm_designer`` with one unit per cluster.

    Parameters
    ----------
    N_blocks : int, default 10
    N_per_block : int, default 10
        Units per block (at least 2).
    ate : float, default 0.5
    block_sd : float, default 1.0
        SD of the block effects.
    sd : float, default 1.0
        SD of the unit-level noise.
    prob : float, default 0.5
        Share treated within each block.

    Returns
    -------
    Design
        Estimators ``"Blocked DIM"`` and ``"Unblocked DIM"``.

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.draw_data(dd.examples.block_randomized(N_blocks=4), seed=1).shape[0]
    40
    """
    f = "block_randomized"
    N_blocks = check_positive_int(f, "N_blocks", N_blocks)
    N_per_block = check_positive_int(f, "N_per_block", N_per_block)
    if N_per_block < 2:
        fail(f, "N_per_block", N_per_block, "at least 2 (a treated and a control unit)")
    ate = _real(f, "ate", ate)
    block_sd = _real(f, "block_sd", block_sd, unit=False)
    sd = _real(f, "sd", sd, positive=True)
    prob = check_probability(f, "prob", prob, open_interval=True)
    return (
        declare_model(block=add_level(N=N_blocks, u_block=normal(0, abs(block_sd))),
                      unit=add_level(N=N_per_block, e=normal(0, sd)))
        + declare_potential_outcomes(f"Y ~ {ate!r} * Z + u_block + e")
        + declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
        + declare_assignment(Z=block_ra(blocks="block", prob=prob))
        + declare_measurement(Y=reveal_outcomes("Y ~ Z"))
        + declare_estimator("Y ~ Z", model=difference_in_means, blocks="block",
                            inquiry="ate", term="Z", label="Blocked DIM")
        + declare_estimator("Y ~ Z", model=difference_in_means, inquiry="ate", term="Z",
                            label="Unblocked DIM")
    )


def _icc_sds(func: str, ICC: float) -> tuple[float, float]:
    ICC = _real(func, "ICC", ICC, unit=True)
    return math.sqrt(ICC), math.sqrt(1.0 - ICC)


def cluster_randomized(N_clusters: int = 20, cluster_size: int = 10, *, ate: float = 0.5,
                       ICC: float = 0.2, prob: float = 0.5) -> Design:
    """Cluster-randomized trial: whole clusters treated, outcomes correlated within clusters.

    Unit outcomes share a cluster effect so their intra-cluster correlation is ``ICC``
    (total outcome SD 1).

    Estimator: difference in means with cluster-robust (CR2) standard errors and
    Bell-McCaffrey degrees of freedom. R: ``DesignLibrary::cluster_sampling_designer``'s
    data strategy with cluster assignment.

    Parameters
    ----------
    N_clusters : int, default 20
    cluster_size : int, default 10
        Units per cluster.
    ate : float, default 0.5
        In outcome SDs.
    ICC : float, default 0.2
        Share of the outcome variance between clusters.
    prob : float, default 0.5
        Share of clusters treated.

    Returns
    -------
    Design
        Estimator ``"Clustered DIM"``.

    Examples
    --------
    >>> import declaredesign as dd
    >>> df = dd.draw_data(dd.examples.cluster_randomized(N_clusters=6), seed=1)
    >>> int(df.groupby("cluster")["Z"].nunique().max())
    1
    """
    f = "cluster_randomized"
    N_clusters = check_positive_int(f, "N_clusters", N_clusters)
    cluster_size = check_positive_int(f, "cluster_size", cluster_size)
    ate = _real(f, "ate", ate)
    sd_between, sd_within = _icc_sds(f, ICC)
    prob = check_probability(f, "prob", prob, open_interval=True)
    return (
        declare_model(cluster=add_level(N=N_clusters, u_cluster=normal(0, sd_between)),
                      unit=add_level(N=cluster_size, e=normal(0, sd_within)))
        + declare_potential_outcomes(f"Y ~ {ate!r} * Z + u_cluster + e")
        + declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
        + declare_assignment(Z=cluster_ra(clusters="cluster", prob=prob))
        + declare_measurement(Y=reveal_outcomes("Y ~ Z"))
        + declare_estimator("Y ~ Z", model=difference_in_means, clusters="cluster",
                            inquiry="ate", term="Z", label="Clustered DIM")
    )


def block_cluster(N_blocks: int = 5, clusters_per_block: int = 4, cluster_size: int = 10, *,
                  ate: float = 0.5, ICC: float = 0.2, block_sd: float = 0.5,
                  prob: float = 0.5) -> Design:
    """Blocked and clustered trial: in each block a share ``prob`` of clusters is treated.

    Assignment by ``block_and_cluster_ra``.

    Estimator: the blocked, clustered difference in means (estimatr). R:
    ``DesignLibrary::block_cluster_two_arm_designer``.

    Parameters
    ----------
    N_blocks : int, default 5
    clusters_per_block : int, default 4
        At least 2.
    cluster_size : int, default 10
    ate : float, default 0.5
    ICC : float, default 0.2
        Share of the within-block outcome variance between clusters.
    block_sd : float, default 0.5
        SD of the block effects.
    prob : float, default 0.5

    Returns
    -------
    Design
        Estimator ``"Block-cluster DIM"``.

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.draw_data(dd.examples.block_cluster(), seed=1).shape[0]
    200
    """
    f = "block_cluster"
    N_blocks = check_positive_int(f, "N_blocks", N_blocks)
    clusters_per_block = check_positive_int(f, "clusters_per_block", clusters_per_block)
    if clusters_per_block < 2:
        fail(f, "clusters_per_block", clusters_per_block, "at least 2")
    cluster_size = check_positive_int(f, "cluster_size", cluster_size)
    ate = _real(f, "ate", ate)
    sd_between, sd_within = _icc_sds(f, ICC)
    block_sd = _real(f, "block_sd", block_sd)
    prob = check_probability(f, "prob", prob, open_interval=True)
    return (
        declare_model(block=add_level(N=N_blocks, u_block=normal(0, abs(block_sd))),
                      cluster=add_level(N=clusters_per_block,
                                        u_cluster=normal(0, sd_between)),
                      unit=add_level(N=cluster_size, e=normal(0, sd_within)))
        + declare_potential_outcomes(f"Y ~ {ate!r} * Z + u_block + u_cluster + e")
        + declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
        + declare_assignment(Z=block_and_cluster_ra(blocks="block", clusters="cluster",
                                                    prob=prob))
        + declare_measurement(Y=reveal_outcomes("Y ~ Z"))
        + declare_estimator("Y ~ Z", model=difference_in_means, blocks="block",
                            clusters="cluster", inquiry="ate", term="Z",
                            label="Block-cluster DIM")
    )


def multi_arm(N: int = 150, *, means: tuple[float, ...] = (0.0, 0.25, 0.5),
              sd: float = 1.0) -> Design:
    """Multi-arm trial: ``len(means)`` arms of (as near as possible) equal size.

    Arms are ``Z = 1, ..., k`` (``complete_ra(num_arms=k)``, conditions ``T1..Tk``
    recoded to integers); arm ``j`` has mean ``means[j - 1]``. Inquiries ``ate_Tj_T1``
    compare each arm with the first; estimators are differences in means of each arm
    against arm 1. R: ``DesignLibrary::multi_arm_designer``.

    Parameters
    ----------
    N : int, default 150
    means : tuple of float, default (0.0, 0.25, 0.5)
        Mean outcome of each arm; at least two.
    sd : float, default 1.0

    Returns
    -------
    Design
        Estimators ``"DIM (T2 - T1)"``, ``"DIM (T3 - T1)"``, ...

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.examples.multi_arm().estimator_labels
    ['DIM (T2 - T1)', 'DIM (T3 - T1)']
    """
    f = "multi_arm"
    N = check_positive_int(f, "N", N)
    if isinstance(means, (str, bytes)) or not hasattr(means, "__len__") or len(means) < 2:
        fail(f, "means", means, "a sequence of at least two arm means")
    means = tuple(_real(f, "means", m) for m in means)
    sd = _real(f, "sd", sd, positive=True)
    k = len(means)
    if N < 2 * k:
        fail(f, "N", N, f"at least {2 * k} (two units per arm)")
    # Arm j's mean as a sum of indicators of the integer-coded arm variable.
    shift = " + ".join(f"{m - means[0]!r} * (Z == {j + 1})" for j, m in enumerate(means)
                       if j > 0)
    design = (
        declare_model(N=N, U=normal(0, sd))
        + declare_potential_outcomes(f"Y ~ {means[0]!r} + {shift} + U",
                                     conditions={"Z": list(range(1, k + 1))})
        + declare_inquiry(**{f"ate_T{j}_T1": f"mean(Y_Z_{j} - Y_Z_1)"
                             for j in range(2, k + 1)})
        + declare_assignment(Z=complete_ra(num_arms=k, conditions=list(range(1, k + 1))))
        + declare_measurement(Y=reveal_outcomes("Y ~ Z"))
    )
    for j in range(2, k + 1):
        design = design + declare_estimator(
            "Y ~ Z", model=difference_in_means, condition1=1, condition2=j,
            inquiry=f"ate_T{j}_T1", label=f"DIM (T{j} - T1)")
    return design


def factorial(N: int = 200, *, effect_A: float = 0.5, effect_B: float = 0.5,
              interaction: float = 0.0, sd: float = 1.0) -> Design:
    """2 x 2 factorial trial: treatments ``A`` and ``B``, each on half the units, crossed.

    ``Y = effect_A * A + effect_B * B + interaction * A * B + sd * U``. Inquiries: the
    average effect of ``A`` (averaged over ``B``), of ``B``, and the interaction.
    Estimators: OLS (HC2) of ``Y`` on centred treatments and their product, whose
    coefficients estimate exactly those quantities. R:
    ``DesignLibrary::factorial_designer`` with k = 2.

    Parameters
    ----------
    N : int, default 200
        Divisible by 4 gives equal cells.
    effect_A, effect_B : float, default 0.5
        Effects of each treatment when the other is off.
    interaction : float, default 0.0
    sd : float, default 1.0

    Returns
    -------
    Design
        Estimator ``"OLS"`` with terms ``A_c``, ``B_c`` and ``A_c:B_c``.

    Examples
    --------
    >>> import declaredesign as dd
    >>> df = dd.draw_data(dd.examples.factorial(N=40), seed=1)
    >>> df.groupby(["A", "B"]).size().tolist()
    [10, 10, 10, 10]
    """
    f = "factorial"
    N = check_positive_int(f, "N", N)
    if N < 8:
        fail(f, "N", N, "at least 8 (two units per cell)")
    a = _real(f, "effect_A", effect_A)
    b = _real(f, "effect_B", effect_B)
    ab = _real(f, "interaction", interaction)
    sd = _real(f, "sd", sd, positive=True)
    return (
        declare_model(N=N, U=normal(0, sd))
        + declare_potential_outcomes(f"Y ~ {a!r} * A + {b!r} * B + {ab!r} * A * B + U",
                                     conditions={"A": [0, 1], "B": [0, 1]})
        + declare_inquiry(
            ate_A="mean((Y_A_1_B_0 + Y_A_1_B_1 - Y_A_0_B_0 - Y_A_0_B_1) / 2)",
            ate_B="mean((Y_A_0_B_1 + Y_A_1_B_1 - Y_A_0_B_0 - Y_A_1_B_0) / 2)",
            interaction="mean(Y_A_1_B_1 - Y_A_1_B_0 - Y_A_0_B_1 + Y_A_0_B_0)")
        + declare_assignment(A=complete_ra(prob=0.5))
        + declare_assignment(B=block_ra(blocks="A", prob=0.5))
        + declare_measurement(Y=reveal_outcomes("Y ~ A + B"), A_c="A - 0.5", B_c="B - 0.5")
        + declare_estimator("Y ~ A_c * B_c", model=lm_robust,
                            term=["A_c", "B_c", "A_c:B_c"],
                            inquiry=["ate_A", "ate_B", "interaction"], label="OLS")
    )


def pre_post(N: int = 100, *, ate: float = 0.25, sd_pre: float = 1.0, sd_post: float = 1.0,
             rho: float = 0.5, prob: float = 0.5) -> Design:
    """Pre-post trial: the outcome is measured before (``Y_pre``) and after treatment.

    The pre- and post-treatment outcomes correlate ``rho``. Three estimators: the
    post-treatment difference in means, the change score (``Y - Y_pre`` on ``Z``) and
    the ANCOVA (``Y`` on ``Z`` and ``Y_pre``), all with HC2 SEs. R:
    ``DesignLibrary::pretest_posttest_designer`` without attrition.

    Parameters
    ----------
    N : int, default 100
    ate : float, default 0.25
    sd_pre, sd_post : float, default 1.0
        SDs of the pre-treatment and untreated post-treatment outcomes.
    rho : float, default 0.5
        Their correlation, in [0, 1].
    prob : float, default 0.5

    Returns
    -------
    Design
        Estimators ``"Post only"``, ``"Change score"`` and ``"ANCOVA"``.

    Examples
    --------
    >>> import declaredesign as dd
    >>> dd.examples.pre_post().estimator_labels
    ['Post only', 'Change score', 'ANCOVA']
    """
    f = "pre_post"
    N = check_positive_int(f, "N", N)
    ate = _real(f, "ate", ate)
    sd_pre = _real(f, "sd_pre", sd_pre, positive=True)
    sd_post = _real(f, "sd_post", sd_post, positive=True)
    rho = _real(f, "rho", rho, unit=True)
    prob = check_probability(f, "prob", prob, open_interval=True)
    noise = math.sqrt(1.0 - rho * rho)
    return (
        declare_model(N=N, u_pre=normal(), u_post=normal(),
                      Y_pre=f"{sd_pre!r} * u_pre")
        + declare_potential_outcomes(
            f"Y ~ {ate!r} * Z + {sd_post!r} * ({rho!r} * u_pre + {noise!r} * u_post)")
        + declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
        + declare_assignment(Z=complete_ra(prob=prob))
        + declare_measurement(Y=reveal_outcomes("Y ~ Z"), change="Y - Y_pre")
        + declare_estimator("Y ~ Z", model=lm_robust, inquiry="ate", term="Z",
                            label="Post only")
        + declare_estimator("change ~ Z", model=lm_robust, inquiry="ate", term="Z",
                            label="Change score")
        + declare_estimator("Y ~ Z + Y_pre", model=lm_robust, inquiry="ate", term="Z",
                            label="ANCOVA")
    )
