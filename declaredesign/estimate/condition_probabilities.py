"""Condition probability matrices and the Horvitz-Thompson variance sums.

The variance of a Horvitz-Thompson estimate needs the joint probabilities of every pair
of units being in every pair of conditions: a ``2N x 2N`` *condition probability
matrix* whose first ``N`` rows/columns are the control condition and last ``N`` the
treatment condition (``P[i, N + j]`` = Pr(i in control, j treated)). estimatr builds it
from the design; :func:`declaration_to_condition_pr_mat` does the same from our
:func:`~declaredesign.assign.declare_ra` declarations.

Variance (Aronow & Middleton 2013, with Young's inequality bounding the unidentified
term): with ``Y2 = y / p`` over treated units and ``Y1 = y / (1 - p)`` over controls,

    N^2 V = sum Y2^2 + sum Y1^2 + v(Y2, P11) + v(Y1, P00) - 2 c(Y2, Y1, P10)

where ``v(y, P) = sum_{i != j} y_i y_j (P_ij - P_ii P_jj) / P_ij`` (pairs that are
never jointly observed, ``P_ij = 0``, add ``y_i^2 P_ii / 2 + y_j^2 P_jj / 2`` instead of
dividing) and ``c`` the cross term (:func:`var_partial`, :func:`covar_partial`; for
constant joint probabilities within a block the sums reduce to :func:`var_partial_sums`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail
from ..assign import RADeclaration
from ..errors import DeclarationError

__all__ = ["cluster_level", "codes_of", "covar_partial", "declaration_to_condition_pr_mat",
           "first_per_code", "joint_complete", "permutations_to_condition_pr_mat",
           "pr_mat_design", "resolve_column", "var_partial", "var_partial_sums"]


def joint_complete(p: float, n: int) -> dict[str, float]:
    """Joint probabilities of two distinct units under complete assignment (estimatr).

    ``p * n`` treated when it is whole; otherwise ``floor`` or ``floor + 1`` with the
    fractional part as probability of the larger count.
    """
    nt = p * n
    rem = nt % 1
    fl = np.floor(nt)
    nc = n - fl
    with np.errstate(divide="ignore", invalid="ignore"):
        p11 = rem * ((fl + 1) / n) * (fl / (n - 1)) + \
            (1 - rem) * (fl / n) * ((fl - 1) / (n - 1))
        p10 = rem * ((nc - 1) / n) * ((fl + 1) / (n - 1)) + \
            (1 - rem) * (nc / n) * (fl / (n - 1))
        p00 = rem * ((nc - 1) / n) * ((nc - 2) / (n - 1)) + \
            (1 - rem) * (nc / n) * ((nc - 1) / (n - 1))
    return {"11": p11, "10": p10, "00": p00}


def _expand(Pc: np.ndarray, unit_cluster: np.ndarray) -> np.ndarray:
    """Unit-level ``2n x 2n`` matrix from a cluster-level ``2k x 2k`` one."""
    k = Pc.shape[0] // 2
    idx = np.concatenate([unit_cluster, k + unit_cluster])
    return Pc[np.ix_(idx, idx)]


def cluster_level(p2: np.ndarray, simple: bool) -> np.ndarray:
    """``2k x 2k`` matrix for k clusters (or units) with treatment probabilities ``p2``."""
    k = len(p2)
    if simple:
        v = np.concatenate([1 - p2, p2])
        P = np.outer(v, v)
    else:
        if len(np.unique(p2)) > 1:
            raise DeclarationError(
                "horvitz_thompson: treatment probabilities cannot vary within blocks for "
                "block-clustered designs and cannot vary within the whole sample for "
                "complete (cluster) randomized designs.")
        j = joint_complete(float(p2[0]), k)
        P = np.block([[np.full((k, k), j["00"]), np.full((k, k), j["10"])],
                      [np.full((k, k), j["10"]), np.full((k, k), j["11"])]])
    i = np.arange(k)
    P[i, i] = 1 - p2
    P[k + i, k + i] = p2
    P[i, k + i] = 0.0
    P[k + i, i] = 0.0
    return P


def codes_of(values: np.ndarray) -> np.ndarray:
    """Return dense integer codes of ``values`` in sorted order (objects compared as text)."""
    v = np.asarray(values)
    if v.dtype.kind == "O":
        v = v.astype(str)
    return np.unique(v, return_inverse=True)[1].reshape(-1)


def first_per_code(codes: np.ndarray) -> np.ndarray:
    """Return the row of the first occurrence of each code."""
    first = np.full(int(codes.max()) + 1, -1)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    return first


def pr_mat_design(p2: np.ndarray, *, clusters: np.ndarray | None, blocks: np.ndarray | None,
                   simple: bool, p1: np.ndarray | None = None) -> np.ndarray:
    """Condition probability matrix of a (blocked and/or clustered) design, as estimatr."""
    p2 = np.asarray(p2, dtype=float)
    n = len(p2)
    if blocks is None:
        if clusters is None:
            return cluster_level(p2, simple)
        cl = codes_of(clusters)
        return _expand(cluster_level(p2[first_per_code(cl)], simple), cl)
    p1 = 1 - p2 if p1 is None else np.asarray(p1, dtype=float)
    v = np.concatenate([p1, p2])
    P = np.outer(v, v)      # across blocks: independent
    bl = codes_of(blocks)
    for b in range(int(bl.max()) + 1):
        ids = np.flatnonzero(bl == b)
        sub = np.concatenate([ids, n + ids])
        if clusters is None:
            if len(np.unique(p2[ids])) > 1:
                raise DeclarationError("horvitz_thompson: treatment probabilities must be "
                                       "fixed within blocks for block randomized designs.")
            Pb = cluster_level(np.repeat(p2[ids[0]], len(ids)), False)
        else:
            cl = codes_of(np.asarray(clusters)[ids])
            Pb = _expand(cluster_level(p2[ids][first_per_code(cl)], False), cl)
        P[np.ix_(sub, sub)] = Pb
    return P


def _names(c1: Any, c2: Any, n: int) -> list[str]:
    return [f"{c1}_{i}" for i in range(1, n + 1)] + [f"{c2}_{i}" for i in range(1, n + 1)]


def declaration_to_condition_pr_mat(ra_declaration: Any, condition1: Any = None,
                                    condition2: Any = None, prob_matrix: Any = None,
                                    data: Any = None) -> pd.DataFrame:
    """Joint condition probabilities of a random assignment declaration (estimatr).

    Parameters
    ----------
    ra_declaration : RADeclaration
        A two-arm declaration from :func:`~declaredesign.assign.declare_ra`.
    condition1, condition2 : optional
        Control and treatment labels (default: the declaration's two conditions); give
        both or neither.
    prob_matrix : array_like, optional
        ``(N, 2)`` marginal probabilities to use instead of the declaration's.
    data : pandas.DataFrame, optional
        Data for declarations that name columns (``blocks="school"``).

    Returns
    -------
    pandas.DataFrame
        ``2N x 2N``; rows and columns ``"<condition1>_1" ... "<condition2>_N"``.

    Examples
    --------
    >>> from declaredesign.assign import declare_ra
    >>> pm = declaration_to_condition_pr_mat(declare_ra(N=4, m=2))
    >>> pm.shape, round(float(pm.iloc[4, 5]), 4)
    ((8, 8), 0.1667)
    """
    func = "declaration_to_condition_pr_mat"
    if not isinstance(ra_declaration, RADeclaration):
        fail(func, "ra_declaration", ra_declaration, "a declaration from declare_ra()",
             shown=type(ra_declaration).__name__)
    probs = ra_declaration.probabilities(data)
    conds = list(ra_declaration.conditions_)
    if prob_matrix is None and probs.shape[1] > 2:
        fail(func, "ra_declaration", ra_declaration, "a two-arm declaration (this one has "
             f"{probs.shape[1]} conditions)", shown="<RADeclaration>")
    if (condition1 is None) != (condition2 is None):
        raise DeclarationError(f"{func}(condition1={condition1!r}, condition2={condition2!r}): "
                               "give both condition1 and condition2, or neither.")
    if condition1 is None:
        condition1, condition2 = conds[0], conds[1]
    for arg, c in (("condition1", condition1), ("condition2", condition2)):
        if c not in conds:
            fail(func, arg, c, f"one of the declaration's conditions {conds}")
    if prob_matrix is not None:
        pm = np.asarray(prob_matrix, dtype=float)
        if pm.ndim != 2 or pm.shape[1] != 2:
            fail(func, "prob_matrix", prob_matrix, "an (N, 2) matrix", shown="<array>")
        p1, p2 = pm[:, 0], pm[:, 1]
    else:
        # labels match by value (treatment 1.0 is the declaration's condition 1)
        p1 = probs[f"prob_{next(c for c in conds if c == condition1)}"].to_numpy()
        p2 = probs[f"prob_{next(c for c in conds if c == condition2)}"].to_numpy()
    if ra_declaration.ra_type == "custom" and prob_matrix is None:
        # randomizr's custom procedure: a uniformly random column of the permutation
        # matrix, so the joint probabilities are the matrix's own (estimatr does the same)
        perms = (np.asarray(ra_declaration.permutation_matrix) == condition2).astype(int)
        mat = permutations_to_condition_pr_mat(perms).to_numpy()
    else:
        mat = _declaration_matrix(func, ra_declaration, p1, p2, data)
    names = _names(condition1, condition2, len(p2))
    return pd.DataFrame(mat, index=names, columns=names)


def resolve_column(decl_value: Any, data: Any) -> np.ndarray | None:
    """Return a declaration's blocks or clusters as values (a column name looked up)."""
    if decl_value is None:
        return None
    if isinstance(decl_value, str):
        return np.asarray(data[decl_value])
    return np.asarray(decl_value)


def _declaration_matrix(func: str, decl: Any, p1: np.ndarray, p2: np.ndarray, data: Any
                        ) -> np.ndarray:
    kind = decl.ra_type
    blocks = resolve_column(decl.blocks, data)
    clusters = resolve_column(decl.clusters, data)
    if kind == "simple":
        v = np.concatenate([p1, p2])
        P = np.outer(v, v)
        n = len(p2)
        i = np.arange(n)
        P[i, i] = p1
        P[n + i, n + i] = p2
        P[i, n + i] = 0.0
        P[n + i, i] = 0.0
        return P
    if kind == "complete":
        if len(np.unique(p2)) > 1:
            raise DeclarationError(f"{func}: treatment probabilities must be fixed for "
                                   "complete randomized designs.")
        return cluster_level(p2, False)
    if kind == "clustered":
        return pr_mat_design(p2, clusters=clusters, blocks=None, simple=bool(decl.simple))
    return pr_mat_design(p2, clusters=clusters, blocks=blocks, simple=False, p1=p1)


def permutations_to_condition_pr_mat(permutations: Any) -> pd.DataFrame:
    """Condition probability matrix from a ``N x R`` matrix of possible 0/1 assignments.

    Each column is one equally likely assignment (as from
    :func:`~declaredesign.assign.obtain_permutation_matrix`).

    Examples
    --------
    >>> import numpy as np
    >>> pm = permutations_to_condition_pr_mat(np.array([[1, 0], [0, 1]]))
    >>> pm.to_numpy()[2, 3]
    np.float64(0.0)
    """
    perms = np.asarray(permutations)
    if perms.ndim != 2 or not np.isin(perms, [0, 1]).all():
        fail("permutations_to_condition_pr_mat", "permutations", permutations,
             "a matrix of 0s and 1s", shown="<array>")
    stacked = np.vstack([1 - perms, perms]).astype(float)
    mat = stacked @ stacked.T / perms.shape[1]
    names = _names(0, 1, perms.shape[0])
    return pd.DataFrame(mat, index=names, columns=names)



def var_partial(y: np.ndarray, P: np.ndarray) -> float:
    """Return ``v(y, P) = sum_{i != j} y_i y_j (P_ij - P_ii P_jj) / P_ij`` (module docstring)."""
    d = np.diag(P)
    cov = P - np.outer(d, d)
    zero = P == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(zero, np.outer(y, y) * cov + (y ** 2 * d)[:, None] / 2
                        + (y ** 2 * d)[None, :] / 2, np.outer(y, y) * cov / P)
    np.fill_diagonal(term, 0.0)
    return float(term.sum())


def covar_partial(y1: np.ndarray, y0: np.ndarray, P10: np.ndarray, p1: np.ndarray,
                   p0: np.ndarray) -> float:
    """Return the cross term ``c(y1, y0, P10)`` of the variance (module docstring)."""
    num = np.outer(y1, y0) * (P10 - np.outer(p1, p0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.where(P10 == 0, num, num / P10).sum())



def var_partial_sums(p_ij, pi, pj, s1, s2, m):
    """``sum_{i != j} y_i y_j (p_ij - pi pj) / p_ij`` for constant probabilities.

    ``s1 = sum y``, ``s2 = sum y^2`` over ``m`` values; pairs with ``p_ij = 0`` use
    estimatr's ``y_i^2 pi / 2 + y_j^2 pj / 2`` addition instead of dividing.
    """
    cross = s1 ** 2 - s2
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(p_ij == 0, -pi * pj * cross + pi * (m - 1) * s2,
                     cross * (p_ij - pi * pj) / p_ij)
    return np.where(m > 1, v, 0.0)
