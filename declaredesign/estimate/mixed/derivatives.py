"""Numerical derivatives: numDeriv's Richardson extrapolation and lme4's deriv12.

lmerTest takes the Hessian of the deviance in the variance parameters, and the
Jacobian of ``vcov(beta)``, with numDeriv's Richardson-extrapolated central
differences; lme4 takes the gradient and Hessian of a GLMM's criterion after the
optimiser stops with plain central differences (``deriv12``). Both are here for one
parameter vector, and as batched versions that differentiate the criteria of many
datasets at once (one row of parameters per dataset).
"""

from __future__ import annotations

import numpy as np

__all__ = ["richardson_jacobian", "richardson_hessian", "richardson_batched",
           "richardson_batched_k", "deriv12_batched"]


def richardson_jacobian(f, x: np.ndarray, d: float = 1e-4, eps: float = 1e-4,
                        r: int = 4, v: float = 2.0) -> np.ndarray:
    """Jacobian by Richardson extrapolation of central differences (numDeriv's method)."""
    x = np.asarray(x, dtype=float)
    zero_tol = np.sqrt(np.finfo(float).eps / 7e-7)
    f0 = np.atleast_1d(np.asarray(f(x), dtype=float)).ravel()
    J = np.empty((f0.size, x.size))
    for i in range(x.size):
        h = abs(d * x[i]) + eps * (abs(x[i]) < zero_tol)
        a = []
        for _ in range(r):
            up, dn = x.copy(), x.copy()
            up[i] += h
            dn[i] -= h
            a.append((np.ravel(f(up)) - np.ravel(f(dn))) / (2 * h))
            h /= v
        a = np.array(a)
        for m in range(1, r):
            a = (a[1:] * 4.0**m - a[:-1]) / (4.0**m - 1)
        J[:, i] = a[0]
    return J


def richardson_hessian(f, x: np.ndarray, d: float = 0.1, eps: float = 1e-4,
                       r: int = 4, v: float = 2.0) -> np.ndarray:
    """Hessian by Richardson extrapolation, following numDeriv's genD."""
    x = np.asarray(x, dtype=float)
    k = x.size
    zero_tol = np.sqrt(np.finfo(float).eps / 7e-7)
    f0 = f(x)
    h0 = np.abs(d * x) + eps * (np.abs(x) < zero_tol)
    H = np.empty((k, k))
    for i in range(k):
        h = h0.copy()
        a = []
        for _ in range(r):
            up, dn = x.copy(), x.copy()
            up[i] += h[i]
            dn[i] -= h[i]
            a.append((f(up) - 2 * f0 + f(dn)) / h[i] ** 2)
            h /= v
        a = np.array(a)
        for m in range(1, r):
            a = (a[1:] * 4.0**m - a[:-1]) / (4.0**m - 1)
        H[i, i] = a[0]
    for i in range(k):
        for j in range(i):
            h = h0.copy()
            a = []
            for _ in range(r):
                up, dn = x.copy(), x.copy()
                up[i] += h[i]
                up[j] += h[j]
                dn[i] -= h[i]
                dn[j] -= h[j]
                a.append((f(up) - 2 * f0 + f(dn) - H[i, i] * h[i] ** 2 - H[j, j] * h[j] ** 2)
                         / (2 * h[i] * h[j]))
                h /= v
            a = np.array(a)
            for m in range(1, r):
                a = (a[1:] * 4.0**m - a[:-1]) / (4.0**m - 1)
            H[i, j] = H[j, i] = a[0]
    return H


def richardson_batched(fun, x, d=1e-4, eps=1e-4, r=4):
    """Richardson first derivatives and Hessian of a vector function of two parameters.

    For every dataset at once: ``x`` is (S, 2), one row per dataset.

    ``fun(x) -> (S, q)``; returns (S, q, 2) derivatives and (S, q, 2, 2) Hessians.
    """
    S = x.shape[0]
    zero_tol = np.sqrt(np.finfo(float).eps / 7e-7)
    h0 = np.abs(d * x) + eps * (np.abs(x) < zero_tol)
    f0 = fun(x)
    q = f0.shape[1]
    J = np.empty((S, q, 2))
    Hs = np.empty((S, q, 2, 2))

    def extrap(a):
        a = np.stack(a)
        for mm in range(1, r):
            a = (a[1:] * 4.0**mm - a[:-1]) / (4.0**mm - 1)
        return a[0]

    for i in range(2):
        a1, a2 = [], []
        h = h0[:, i].copy()
        for _ in range(r):
            e = np.zeros((S, 2))
            e[:, i] = h
            fp, fm = fun(x + e), fun(x - e)
            a1.append((fp - fm) / (2 * h[:, None]))
            a2.append((fp - 2 * f0 + fm) / h[:, None] ** 2)
            h = h / 2
        J[:, :, i] = extrap(a1)
        Hs[:, :, i, i] = extrap(a2)
    a = []
    h = h0.copy()
    for _ in range(r):
        fp, fm = fun(x + h), fun(x - h)
        a.append((fp - 2 * f0 + fm - Hs[:, :, 0, 0] * h[:, 0:1] ** 2
                  - Hs[:, :, 1, 1] * h[:, 1:2] ** 2) / (2 * h[:, 0:1] * h[:, 1:2]))
        h = h / 2
    Hs[:, :, 0, 1] = Hs[:, :, 1, 0] = extrap(a)
    return J, Hs


def _extrapolate(a: list, r: int) -> np.ndarray:
    """Richardson's extrapolation of estimates at steps h, h/2, h/4, ..."""
    a = np.stack(a)
    for mm in range(1, r):
        a = (a[1:] * 4.0**mm - a[:-1]) / (4.0**mm - 1)
    return a[0]


def richardson_batched_k(fun, x, d=1e-4, eps=1e-4, r=4, second=True):
    """:func:`richardson_batched` for any number of parameters.

    ``x`` is (S, m), one row per dataset; ``fun(x) -> (S, q)``. Returns the (S, q, m)
    first derivatives and the (S, q, m, m) Hessians (None without ``second``).
    """
    S, m = x.shape
    zero_tol = np.sqrt(np.finfo(float).eps / 7e-7)
    h0 = np.abs(d * x) + eps * (np.abs(x) < zero_tol)
    f0 = fun(x)
    q = f0.shape[1]
    J = np.empty((S, q, m))
    Hs = np.empty((S, q, m, m))
    for i in range(m):
        a1, a2 = [], []
        h = h0[:, i].copy()
        for _ in range(r):
            e = np.zeros((S, m))
            e[:, i] = h
            fp, fm = fun(x + e), fun(x - e)
            a1.append((fp - fm) / (2 * h[:, None]))
            a2.append((fp - 2 * f0 + fm) / h[:, None] ** 2)
            h = h / 2
        J[:, :, i] = _extrapolate(a1, r)
        Hs[:, :, i, i] = _extrapolate(a2, r)
    if not second:
        return J, None
    for i in range(m):
        for j in range(i):
            a = []
            h = h0.copy()
            for _ in range(r):
                e = np.zeros((S, m))
                e[:, i], e[:, j] = h[:, i], h[:, j]
                fp, fm = fun(x + e), fun(x - e)
                a.append((fp - 2 * f0 + fm - Hs[:, :, i, i] * h[:, i:i + 1] ** 2
                          - Hs[:, :, j, j] * h[:, j:j + 1] ** 2)
                         / (2 * h[:, i:i + 1] * h[:, j:j + 1]))
                h = h / 2
            Hs[:, :, i, j] = Hs[:, :, j, i] = _extrapolate(a, r)
    return J, Hs


def deriv12_batched(fun, x, fx, delta=1e-4):
    """lme4's deriv12 for every row of x (S, k) at once."""
    S, k = x.shape
    H = np.empty((S, k, k))
    g = np.empty((S, k))
    for j in range(k):
        xa, xs = x.copy(), x.copy()
        xa[:, j] += delta
        xs[:, j] -= delta
        fa, fs = fun(xa), fun(xs)
        H[:, j, j] = (fa - 2 * fx + fs) / delta**2
        g[:, j] = (fa - fs) / (2 * delta)
        for i in range(j):
            vals = []
            for di, dj in ((delta, delta), (delta, -delta), (-delta, delta), (-delta, -delta)):
                t = x.copy()
                t[:, i] += di
                t[:, j] += dj
                vals.append(fun(t))
            H[:, i, j] = H[:, j, i] = (vals[0] - vals[1] - vals[2] + vals[3]) / (4 * delta**2)
    return g, H
