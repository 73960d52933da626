"""Satterthwaite's denominator degrees of freedom, as lmerTest computes them.

For a contrast ``l' beta`` the Wald statistic's variance ``l' V(tau) l`` is a function
of the variance parameters ``tau = (theta, sigma)``; with ``A = 2 H^-1`` the
asymptotic covariance of ``tau`` (``H`` the Hessian of the deviance in ``tau``) and
``g`` the gradient of ``l' V l``, the degrees of freedom are
``2 (l' V l)^2 / (g' A g)`` (lmerTest's ``contest1D``). Multi-df F tests combine the
eigen-decomposed contrasts as lmerTest's ``contestMD``. The general path has ``H``
and the Jacobian of ``vcov(beta)`` in closed form (:mod:`.deviance_derivatives`)
up to ``DENSE_MAX_Q`` random effects and by Richardson extrapolation (numDeriv's
method, as lmerTest) above; the batched paths have them in closed form.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .derivatives import richardson_hessian, richardson_jacobian
from .pls import PLS

__all__ = ["satterthwaite", "contest_satterthwaite"]


def satterthwaite(pls: PLS, theta: np.ndarray, sigma: float, V: np.ndarray):
    """Satterthwaite df of each fixed effect of a general fit.

    Returns
    -------
    df : ndarray, shape (p,)
    H : ndarray
        Hessian of the deviance in ``(theta, sigma)``.
    A : ndarray
        Asymptotic covariance of ``(theta, sigma)``, ``2 H^+``.
    J : ndarray, shape (p * p, k)
        Jacobian of ``vec(vcov(beta))`` in ``(theta, sigma)``.
    """
    varpar = np.append(theta, sigma)
    if pls.derivatives is not None:
        H, J = pls.derivatives.varpar_derivatives(np.asarray(theta, dtype=float), sigma)
    else:
        H = richardson_hessian(pls.dev_varpar, varpar)
        J = richardson_jacobian(lambda vp: pls.covbeta(vp).ravel(), varpar)  # (p*p, k)
    vals, vecs = np.linalg.eigh(H)
    pos = vals > 1e-8
    A = 2.0 * (vecs[:, pos] / vals[pos]) @ vecs[:, pos].T
    p = V.shape[0]
    df = np.empty(p)
    for j in range(p):
        g = J[j * p + j, :]
        df[j] = 2.0 * V[j, j] ** 2 / (g @ A @ g)
    return df, H, A, J


def _combined_df(nu: np.ndarray, q: int) -> float:
    """LmerTest's denominator df of a q-df F test from the df of its q 1-df parts."""
    if q == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < 1e-8):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = np.sum(nu / (nu - 2))
    return float(2 * E / (E - q))


def contest_satterthwaite(L: np.ndarray, beta: np.ndarray, V: np.ndarray, J: np.ndarray,
                          A: np.ndarray) -> dict:
    """F test of ``L beta = 0`` with Satterthwaite's df (lmerTest's ``contest``).

    Parameters
    ----------
    L : ndarray, shape (q, p)
    beta, V : ndarray
        Fixed effects and their covariance.
    J, A : ndarray
        From :func:`satterthwaite`.

    Returns
    -------
    dict with ``F``, ``NumDF``, ``DenDF``, ``p_value``.
    """
    p = beta.size
    VL = L @ V @ L.T
    d, P = np.linalg.eigh(VL)
    d, P = d[::-1], P[:, ::-1]
    q = int(np.sum(d > max(np.sqrt(np.finfo(float).eps) * d[0], 0)))
    PtL = (P.T @ L)[:q]
    Jr = J.reshape(p, p, -1)
    t2 = (PtL @ beta) ** 2 / d[:q]
    F = float(t2.sum() / q)
    nu = np.empty(q)
    for m in range(q):
        g = np.einsum("i,ijk,j->k", PtL[m], Jr, PtL[m])
        nu[m] = 2 * d[m] ** 2 / (g @ A @ g)
    den = _combined_df(nu, q)
    return dict(F=F, NumDF=q, DenDF=float(den), p_value=float(stats.f.sf(F, q, den)))
