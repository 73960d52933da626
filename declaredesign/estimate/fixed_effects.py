"""CR2 variances with one absorbed fixed effect, for every simulation of a batch at once.

estimatr's CR2 with ``fixed_effects=`` takes the leverages from the design with the
fixed-effect dummies appended: the meat design is ``[X~, D]`` (``X~`` demeaned within
levels, ``D`` one dummy per level), whose inverse cross-product is block diagonal,
``diag(M, 1/n_f)`` (``X~`` is orthogonal to every dummy). When each cluster lies within
one level (clusters nested in the fixed effect, the usual blocked cluster design),
cluster ``g`` sees only its level's dummy, a column of ones, so its part of the meat
design is ``Z_g = [X~_g, 1]`` with the per-cluster inverse cross-product
``M_g = diag(M, 1/n_f(g))``. The CR2 adjustment ``(I - Z_g M_g Z_g')^{-1/2}`` then
follows from ``k + 1``-square sufficient statistics exactly as in
:mod:`.sandwich` (see its module notes): ``B_g = L_g' A_g L_g`` with ``M_g = L_g L_g'``
and ``A_g = Z_g'Z_g``.

The Bell-McCaffrey degrees of freedom need ``u_g'M u_h`` between clusters in the full
coefficient-and-dummy space: ``a_g'M a_h`` on the coefficients plus ``b_g b_h / n_f``
when the two clusters share a level ``f`` (``u_g = (a_g, b_g)``).

Clusters that cut across levels leave the design to the per-simulation fits.
"""

from __future__ import annotations

import numpy as np

from ..groups import GroupIndex
from .grouped_sums import column_sums, stack_sums
from .sandwich import cr2_factors

__all__ = ["clusters_nested", "cr2_fixed_effect"]

# padded (sim, cluster, cluster) arrays up to this many entries, else the trace identity
_PADDED_LIMIT = 5e7


def clusters_nested(clusters: GroupIndex, fixed_effect: GroupIndex) -> bool:
    """Whether every cluster lies within one level of the fixed effect."""
    return clusters.is_constant(fixed_effect.codes)


def _augmented(clusters: GroupIndex, fixed_effect: GroupIndex, M: np.ndarray,
               A: np.ndarray, XtE: np.ndarray, cols: np.ndarray, y: np.ndarray,
               beta: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-cluster ``A_g``, ``Z_g'e_g``, ``M_g`` in the space (coefficients, own level)."""
    G, k = XtE.shape
    level = fixed_effect.codes[clusters.first]              # each cluster's level
    inv_nf = 1.0 / fixed_effect.count()[level].astype(float)
    sx = column_sums(clusters, cols)
    e_sum = clusters.sum(y) - np.einsum("ga,ga->g", sx, beta[clusters.group_sim])
    Aa = np.empty((G, k + 1, k + 1))
    Aa[:, :k, :k] = A
    Aa[:, :k, k] = Aa[:, k, :k] = sx
    Aa[:, k, k] = clusters.count()
    Za = np.concatenate([XtE, e_sum[:, None]], axis=1)
    Ma = np.zeros((G, k + 1, k + 1))
    Ma[:, :k, :k] = M[clusters.group_sim]
    Ma[:, k, k] = inv_nf
    return Aa, Za, Ma, level, inv_nf


def cr2_fixed_effect(M: np.ndarray, A: np.ndarray, XtE: np.ndarray, cols: np.ndarray,
                     y: np.ndarray, beta: np.ndarray, clusters: GroupIndex,
                     fixed_effect: GroupIndex) -> tuple[np.ndarray, np.ndarray]:
    """CR2 vcov and Bell-McCaffrey df with one fixed effect that nests the clusters.

    Parameters
    ----------
    M : array (n_sims, k, k)
        ``(X~'X~)^{-1}`` of the demeaned design, per simulation.
    A, XtE : arrays (n_clusters, k, k), (n_clusters, k)
        Per-cluster ``X~_g'X~_g`` and ``X~_g'e_g``.
    cols : ndarray (k, n)
        The demeaned design's columns.
    y, beta : arrays (n,), (n_sims, k)
        The demeaned outcome and the coefficients (for the clusters' residual sums).
    clusters, fixed_effect : GroupIndex
        The (simulation, cluster) and (simulation, level) groups of the rows; every
        cluster within one level (:func:`clusters_nested`).

    Returns
    -------
    (vcov, df)
        ``(n_sims, k, k)`` and ``(n_sims, k)``, equal to :func:`~.sandwich.sandwich` on
        the design with the dummies appended.
    """
    S, k = M.shape[0], M.shape[1]
    cl_sim = clusters.group_sim
    Aa, Za, Ma, level, inv_nf = _augmented(clusters, fixed_effect, M, A, XtE, cols, y, beta)
    AK1, Q3 = cr2_factors(np.linalg.cholesky(Ma), Aa)
    hm = (Za + np.einsum("gab,gb->ga", AK1, Za))[:, :k]      # X~_g'(I - H_gg)^{-1/2} e_g
    V = M @ stack_sums(cl_sim, S, hm[:, :, None] * hm[:, None, :]) @ M
    Mk = Ma[:, :, :k]                                         # columns of the coefficients
    U = (Aa + AK1 @ Aa) @ Mk                                  # (G, k+1, k): u_g per coef
    Gdiag = np.einsum("gaj,gab,gbj->gj", Mk, Q3, Mk)
    return V, _bm_df(Gdiag, U, M, inv_nf, level, clusters, S)


def _bm_df(Gdiag: np.ndarray, U: np.ndarray, M: np.ndarray, inv_nf: np.ndarray,
           level: np.ndarray, clusters: GroupIndex, S: int) -> np.ndarray:
    """``(tr G)^2 / tr G^2`` with ``G_gh = -u_g'M u_h`` off the diagonal (module notes)."""
    cl_sim = clusters.group_sim
    G, k1, kj = U.shape
    trG = stack_sums(cl_sim, S, Gdiag)
    sq = stack_sums(cl_sim, S, Gdiag ** 2)
    Jmax = int(np.bincount(cl_sim, minlength=S).max()) if G else 0
    if S * Jmax * Jmax * kj * k1 <= _PADDED_LIMIT:
        off = _off_padded(U, M, inv_nf, level, cl_sim, S, Jmax)
    else:
        off = _off_trace(U, M, inv_nf, level, cl_sim, S)
    with np.errstate(divide="ignore", invalid="ignore"):
        return trG ** 2 / (sq + off)


def _off_padded(U: np.ndarray, M: np.ndarray, inv_nf: np.ndarray, level: np.ndarray,
                cl_sim: np.ndarray, S: int, Jmax: int) -> np.ndarray:
    """``sum_{g != h} (u_g'M u_h)^2`` on a (sim, cluster, cluster) array: positive terms."""
    G, k1, kj = U.shape
    k = k1 - 1
    pos = np.arange(G) - np.searchsorted(cl_sim, np.arange(S))[cl_sim]
    Up = np.zeros((S, Jmax, k, kj))
    Up[cl_sim, pos] = U[:, :k, :]
    bp = np.zeros((S, Jmax, kj))
    bp[cl_sim, pos] = U[:, k, :] * np.sqrt(inv_nf)[:, None]
    lv = np.full((S, Jmax), -1, dtype=np.int64)
    lv[cl_sim, pos] = level
    same = (lv[:, :, None] == lv[:, None, :]) & (lv[:, :, None] >= 0)
    MU = np.einsum("sab,sgbj->sgaj", M, Up)
    Qp = np.einsum("sgaj,shaj->sjgh", Up, MU)
    Qp += np.einsum("sgj,shj->sjgh", bp, bp) * same[:, None, :, :]
    idx = np.arange(Jmax)
    Qp[:, :, idx, idx] = 0.0
    return np.einsum("sjgh,sjgh->sj", Qp, Qp)


def _off_trace(U: np.ndarray, M: np.ndarray, inv_nf: np.ndarray, level: np.ndarray,
               cl_sim: np.ndarray, S: int) -> np.ndarray:
    """``tr((M~ C)^2) - sum_g (u_g'M~u_g)^2`` over the coefficients and the levels.

    ``M~ = diag(M, 1/n_f)``; the level block of ``C = sum_g u_g u_g'`` is diagonal (one
    level per cluster), so the trace splits into coefficient, cross and level parts.
    """
    G, k1, kj = U.shape
    k = k1 - 1
    a, b = U[:, :k, :], U[:, k, :]
    Caa = stack_sums(cl_sim, S, np.einsum("gaj,gbj->gjab", a, a))     # (S, j, k, k)
    MC = np.einsum("sab,sjbc->sjac", M, Caa)
    total = np.einsum("sjab,sjba->sj", MC, MC)
    # group clusters by level: levels are numbered in simulation order
    n_lv = int(level.max()) + 1 if G else 0
    lv_sim = np.zeros(n_lv, dtype=np.int64)
    lv_sim[level] = cl_sim
    c_lv = np.zeros(n_lv)
    c_lv[level] = inv_nf
    Caf = np.zeros((n_lv, k, kj))
    np.add.at(Caf, level, a * b[:, None, :])
    Cff = np.zeros((n_lv, kj))
    np.add.at(Cff, level, b * b)
    cross = np.einsum("faj,fab,fbj->fj", Caf, M[lv_sim], Caf)
    total += stack_sums(lv_sim, S, 2.0 * c_lv[:, None] * cross + (c_lv ** 2)[:, None] * Cff ** 2)
    uMu = np.einsum("gaj,gab,gbj->gj", a, M[cl_sim], a) + inv_nf[:, None] * b * b
    return total - stack_sums(cl_sim, S, uMu ** 2)
