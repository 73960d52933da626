"""Linear algebra on stacks of small matrices (one per dataset), vectorised over the stack.

The batched mixed-model paths hold one ``k x k`` matrix per dataset (``k`` = number
of fixed effects + 1): LAPACK's per-matrix calls cost more than the arithmetic, so
Cholesky factors, inverses and solves run as Python loops over the (tiny) order and
numpy operations over the stack.
"""

from __future__ import annotations

import numpy as np

__all__ = ["batched_lstsq", "chol_inv_small", "logdet_derivs", "pinv_sym"]


def batched_lstsq(A, b):
    """Solve A x = b per dataset; singular systems get a least-squares answer."""
    try:
        return np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(A) @ b[..., None])[..., 0]


def chol_inv_small(A):
    """Cholesky factor L and its inverse for stacks of small SPD matrices.

    Python loops over the (tiny) matrix order and vector operations over the
    stack: for 3 x 3 matrices this is ~10x faster than LAPACK's per-matrix calls.
    Non-positive-definite matrices give NaN.
    """
    k = A.shape[-1]
    if k <= 3:
        return _chol_inv_3(A)
    L = np.zeros_like(A)
    for j in range(k):
        d = A[..., j, j] - np.sum(L[..., j, :j] ** 2, axis=-1)
        L[..., j, j] = np.sqrt(d)
        for i in range(j + 1, k):
            L[..., i, j] = (A[..., i, j] - np.sum(L[..., i, :j] * L[..., j, :j], axis=-1)) \
                / L[..., j, j]
    Li = np.zeros_like(A)
    for i in range(k):
        Li[..., i, i] = 1.0 / L[..., i, i]
        for j in range(i):
            Li[..., i, j] = -np.sum(L[..., i, j:i] * Li[..., j:i, j], axis=-1) / L[..., i, i]
    return L, Li


def _chol_inv_3(A):
    """:func:`chol_inv_small` for order <= 3 without the per-element reductions.

    Every inner product there has at most two terms, whose sum has one order:
    the results are the same bits.
    """
    k = A.shape[-1]
    L = np.zeros_like(A)
    Li = np.zeros_like(A)
    for j in range(k):
        s = 0.0
        if j == 1:
            s = L[..., 1, 0] ** 2
        elif j == 2:
            s = L[..., 2, 0] ** 2 + L[..., 2, 1] ** 2
        L[..., j, j] = ljj = np.sqrt(A[..., j, j] - s)
        for i in range(j + 1, k):
            t = 0.0
            if j == 1:
                t = L[..., i, 0] * L[..., 1, 0]
            L[..., i, j] = (A[..., i, j] - t) / ljj
    for i in range(k):
        Li[..., i, i] = 1.0 / L[..., i, i]
        for j in range(i):
            if i - j == 1:
                t = L[..., i, j] * Li[..., j, j]
            else:  # i = 2, j = 0
                t = L[..., 2, 0] * Li[..., 0, 0] + L[..., 2, 1] * Li[..., 1, 0]
            Li[..., i, j] = -t / L[..., i, i]
    return L, Li


def logdet_derivs(Ai, A1, A2):
    """First and second derivatives of log|A(theta)| from A^-1, A', A''."""
    B = Ai @ A1
    d1 = np.trace(B, axis1=-2, axis2=-1)
    d2 = np.trace(Ai @ A2, axis1=-2, axis2=-1) - np.einsum("...ij,...ji->...", B, B)
    return d1, d2


def pinv_sym(H: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Moore-Penrose inverse keeping eigenvalues above ``tol`` (as lmerTest)."""
    ok = np.all(np.isfinite(H), axis=(-2, -1))
    Hs = np.where(ok[:, None, None], H, 0.0)
    vals, vecs = np.linalg.eigh(Hs)
    inv = np.where(vals > tol, 1.0 / np.where(vals > tol, vals, 1.0), 0.0)
    out = np.einsum("sij,sj,skj->sik", vecs, inv, vecs)
    out[~ok] = np.nan
    return out
