"""Closed forms for comparing two arms in every simulation at once.

Sums per (simulation, arm), per (simulation, block) and per (simulation, cluster) give
the difference in means with its Welch variance, its blocked and matched-pair versions,
and ``lm_robust(y ~ z)``'s CR2 variance with Bell-McCaffrey df when whole clusters are
treated (:func:`clustered_dim`), used by the ``difference_in_means`` and ``lm_robust``
kernels.
"""

from __future__ import annotations

import numpy as np

from ..groups import GroupIndex

__all__ = ["binary_cluster_treatment", "blocked_dim", "clustered_dim", "welch_dim",
           "welch_parts"]


def welch_parts(codes: np.ndarray, G: int, y: np.ndarray, t2: np.ndarray):
    """Per-group counts, difference in means and Welch variance pieces."""
    n2 = np.bincount(codes, weights=t2, minlength=G)
    n1 = np.bincount(codes, minlength=G) - n2
    m2 = np.bincount(codes, weights=y * t2, minlength=G) / np.maximum(n2, 1)
    m1 = np.bincount(codes, weights=y * ~t2, minlength=G) / np.maximum(n1, 1)
    dev = y - np.where(t2, m2[codes], m1[codes])
    ss2 = np.bincount(codes, weights=dev ** 2 * t2, minlength=G)
    ss1 = np.bincount(codes, weights=dev ** 2 * ~t2, minlength=G)
    with np.errstate(divide="ignore", invalid="ignore"):
        v2 = ss2 / (n2 - 1) / n2
        v1 = ss1 / (n1 - 1) / n1
    return n1, n2, m2 - m1, v1, v2


def welch_dim(codes: np.ndarray, G: int, y: np.ndarray, t2: np.ndarray):
    """Per-group counts, difference in means, Welch SE and Welch-Satterthwaite df.

    The one computation of the simple difference in means: the standalone fit calls it
    with one group, the kernel with one group per simulation, so both give the same
    numbers to the last bit (sums in row order, the same elementwise operations).
    """
    n1, n2, est, v1, v2 = welch_parts(codes, G, y, t2)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(v2 + v1)
        df = se ** 4 / (v2 ** 2 / (n2 - 1) + v1 ** 2 / (n1 - 1))
    return n1, n2, est, se, df


def clustered_dim(S: int, y: np.ndarray, clusters: GroupIndex, size: np.ndarray,
                  treated: np.ndarray, intercept: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clustered difference in means: ``lm_robust(y ~ z)`` CR2 in closed form.

    With whole clusters treated, ``X_g = 1 x_g'`` and ``H_gg = (n_g / N_a) 1 1'`` (``N_a``
    the units in the cluster's arm), so the one non-trivial eigenvalue is
    ``l_g = n_g / N_a`` on ``1``. For the treatment coefficient ``x_g'Mc = +-1/N_a``, hence

    * ``V = sum_g (sum e_g)^2 / (N_a^2 (1 - l_g))``;
    * Bell-McCaffrey: ``G`` is block diagonal by arm, ``G_a = D - q q'`` with
      ``G_gg = n_g / N_a^2`` and ``q_g^2 = n_g^2 / (N_a^2 (N_a - n_g))``.

    A cluster alone in its arm (``l_g = 1``) contributes nothing, as estimatr's
    pseudo-inverse square root makes it. Only per-cluster and per-arm sums are needed.
    The intercept (the control mean, ``x_g'Mc = 1/N_0`` on control clusters only) uses the
    control arm's pieces alone; with ``intercept=True`` coef, se and df have two columns,
    (intercept, difference), as ``lm_robust(y ~ z, clusters=...)`` reports them.
    """
    cl_sim = clusters.group_sim
    arm = 2 * cl_sim + treated                       # (simulation, arm) of each cluster
    N = np.bincount(arm, weights=size, minlength=2 * S)
    sy = clusters.sum(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.bincount(arm, weights=sy, minlength=2 * S) / N
        # residual sums from centred rows keep their digits; one refinement of the means
        eg = clusters.sum(y - clusters.broadcast(m[arm]))
        dm = np.bincount(arm, weights=eg, minlength=2 * S) / N
        m = m + dm
        eg = eg - size * dm[arm]
        Na = N[arm]
        single = size >= Na
        rest = np.where(single, 1.0, Na - size)
        v = np.where(single, 0.0, eg ** 2 / (Na * rest))       # (sum e)^2 / (N^2 (1 - l))
        gd = np.where(single, 0.0, size / Na ** 2)
        q2 = np.where(single, 0.0, size ** 2 / (Na ** 2 * rest))
        # per-arm pieces: the difference uses both arms, the intercept (control mean) one
        var = np.bincount(arm, weights=v, minlength=2 * S).reshape(S, 2)
        trG = np.bincount(arm, weights=gd, minlength=2 * S).reshape(S, 2)
        sq2 = np.bincount(arm, weights=q2, minlength=2 * S).reshape(S, 2)
        trG2 = np.bincount(arm, weights=gd ** 2 - q2 ** 2, minlength=2 * S).reshape(S, 2) \
            + sq2 ** 2
        df = trG.sum(axis=1) ** 2 / trG2.sum(axis=1)
        est = m[1::2] - m[0::2]
        ok = (N[0::2] > 0) & (N[1::2] > 0)
        if not intercept:
            return est, np.sqrt(var.sum(axis=1)), df, ok
        coef = np.column_stack([m[0::2], est])
        se = np.sqrt(np.column_stack([var[:, 0], var.sum(axis=1)]))
        dfs = np.column_stack([trG[:, 0] ** 2 / trG2[:, 0], df])
    return coef, se, dfs, ok


def binary_cluster_treatment(sims: GroupIndex, y: np.ndarray, z: np.ndarray,
                             clusters: GroupIndex) -> dict[str, np.ndarray] | None:
    """``lm_robust(y ~ z)`` CR2 through :func:`clustered_dim`, or None when not applicable.

    Applies when ``z`` is 0/1 and constant within clusters (cluster-assigned treatment).
    """
    treated = z == 1.0
    if not bool((treated | (z == 0.0)).all()):
        return None
    S = sims.n_sims
    n_t = clusters.count_where(treated)
    size = clusters.count()
    if not bool(((n_t == 0) | (n_t == size)).all()):
        return None
    coef, se, df, ok = clustered_dim(S, y, clusters, size, n_t > 0, intercept=True)
    # lm_core's conditions for the normal equations: more rows than coefficients
    n_s = sims.count()
    ok = ok & (n_s > 2)
    # the pieces of the identification screen: diag (X'X)^{-1} = (1/N0, 1/N0 + 1/N1)
    arm = np.bincount(2 * clusters.group_sim + (n_t > 0), weights=size,
                      minlength=2 * S).reshape(S, 2)
    with np.errstate(divide="ignore"):
        inv = 1.0 / arm
    return {"coef": coef, "se": se, "df": df, "ok": ok,
            "m_diag": np.column_stack([inv[:, 0], inv[:, 0] + inv[:, 1]]),
            "df_res": n_s - 2.0, "n_clusters": np.bincount(clusters.group_sim, minlength=S)}


def blocked_dim(S: int, y: np.ndarray, t2: np.ndarray, blocks: GroupIndex
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Blocked and matched-pair difference in means for every simulation (estimatr)."""
    bl_codes, bl_sim = blocks.codes, blocks.group_sim
    G = len(bl_sim)
    n1, n2, diff, v1, v2 = welch_parts(bl_codes, G, y, t2)
    nb = n1 + n2
    pair_b = nb == 2
    pair = np.bincount(bl_sim, weights=pair_b, minlength=S) > 0
    # estimatr's errors (left to the exact path): single-unit blocks, blocks without both
    # conditions, and blocks with one treated or control unit outside matched pairs.
    bad_b = (nb == 1) | (n1 == 0) | (n2 == 0) | (~pair[bl_sim] & ((n1 == 1) | (n2 == 1)))
    ok = np.bincount(bl_sim, weights=bad_b, minlength=S) == 0
    ok &= np.bincount(bl_sim, minlength=S) > 0
    N = np.bincount(bl_sim, weights=nb, minlength=S)
    nblocks = np.bincount(bl_sim, minlength=S).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.bincount(bl_sim, weights=diff * nb, minlength=S) / N
        se_pair = np.sqrt(np.bincount(bl_sim, weights=(diff - est[bl_sim]) ** 2, minlength=S)
                          / (nblocks * (nblocks - 1)))
        se_blk = np.sqrt(np.bincount(bl_sim, weights=np.where(
            pair[bl_sim], 0.0, (v1 + v2) * (nb / N[bl_sim]) ** 2), minlength=S))
    se = np.where(pair, se_pair, se_blk)
    df = np.where(pair, nblocks - 1, N - 2 * nblocks)
    return est, se, df, ok
