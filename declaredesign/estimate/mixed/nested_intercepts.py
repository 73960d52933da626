"""Nested random intercepts ``(1 | a/b)`` for many datasets at once.

With inner groups ``b`` (sizes ``n_b``, sums ``s_b`` of ``[X e0]``) inside outer
groups ``a``, ``V / sigma^2 = I + theta_b^2 Z_b Z_b' + theta_a^2 Z_a Z_a'`` and,
by Sherman-Morrison within each outer group,

``Q = W + sum_b s_b s_b' / (n_b (1 + n_b theta_b^2))
      - sum_a u_a t_a t_a'``, ``t_a = sum_{b in a} s_b / (1 + n_b theta_b^2)``,
``m_a = sum_{b in a} n_b / (1 + n_b theta_b^2)``, ``u_a = theta_a^2 / (1 + theta_a^2 m_a)``

and ``log|V / sigma^2| = sum_b log(1 + n_b theta_b^2) + sum_a log(1 + theta_a^2 m_a)``.
Both only need sums over (dataset, size) and (outer group, inner size)
classes. The criterion depends on each theta through its square, so it is
minimised without bounds (Newton with finite-difference derivatives, all
datasets at once) and ``|theta|`` is reported. Satterthwaite's Hessian in
``(theta_b, theta_a, sigma)`` is analytic in ``sigma`` and uses
Richardson-extrapolated differences in theta, as lmerTest's numDeriv does.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .basins import clearly_lower
from .derivatives import richardson_batched
from .random_intercept import RIStats
from .small_matrices import chol_inv_small, pinv_sym

__all__ = ["nested_fit"]

_GRID = np.array([0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0])


class NestedStats:
    """Class sums for the nested model, on top of the inner-group :class:`RIStats`."""

    def __init__(self, st: RIStats, b_outer: np.ndarray, outer_sim: np.ndarray):
        self.st = st
        S = st.n_sims
        A = outer_sim.shape[0]
        n_b = st.n_g
        stride = int(n_b.max(initial=0)) + 1
        key = b_outer.astype(np.int64) * stride + n_b
        ukey, cls = np.unique(key, return_inverse=True)
        self.ac_outer = ukey // stride                 # (Kan,) outer group of the class
        self.ac_n = (ukey % stride).astype(float)
        self.ac_count = np.bincount(cls, minlength=ukey.size).astype(float)
        k = st.p + 1
        self.T = np.stack([np.bincount(cls, weights=st.S_g[:, i], minlength=ukey.size)
                           for i in range(k)], axis=1)  # (Kan, k)
        Kan = ukey.size
        self.E_a = sp.csr_matrix((np.ones(Kan), (self.ac_outer, np.arange(Kan))), shape=(A, Kan))
        self.E_s = sp.csr_matrix((np.ones(A), (outer_sim, np.arange(A))), shape=(S, A))
        self.E_c = sp.csr_matrix((np.ones(st.cls_n.size), (st.cls_sim,
                                                          np.arange(st.cls_n.size))),
                                 shape=(S, st.cls_n.size))
        self.ac_sim = outer_sim[self.ac_outer]
        self.outer_sim = outer_sim
        self.nouter = np.bincount(outer_sim, minlength=S)


def _evaluate(ns: NestedStats, tb: np.ndarray, ta: np.ndarray) -> dict:
    """Criterion pieces at (tb, ta), arrays of shape (S, m)."""
    st = ns.st
    S, m = tb.shape
    k, p = st.p + 1, st.p
    # inner groups, by (dataset, size) class
    t = tb[st.cls_sim]
    n = st.cls_n[:, None]
    den = 1.0 + n * t * t
    Cf = st.Cn.reshape(-1, k * k)
    Qin = st.W[:, None] + (ns.E_c @ ((1.0 / (n * den))[:, :, None] * Cf[:, None, :])
                           .reshape(-1, m * k * k)).reshape(S, m, k, k)
    L = np.asarray(ns.E_c @ (st.cls_count[:, None] * np.log(den)))
    # outer groups, by (outer group, inner size) class
    tcl = tb[ns.ac_sim]
    c = 1.0 / (1.0 + ns.ac_n[:, None] * tcl * tcl)                       # (Kan, m)
    tvec = (ns.E_a @ (c[:, :, None] * ns.T[:, None, :]).reshape(-1, m * k)).reshape(-1, m, k)
    ma = np.asarray(ns.E_a @ (c * (ns.ac_n * ns.ac_count)[:, None]))      # (A, m)
    taa = ta[ns.outer_sim]
    u = taa * taa / (1.0 + taa * taa * ma)
    outer = (u[:, :, None, None] * tvec[:, :, :, None] * tvec[:, :, None, :]).reshape(-1,
                                                                                     m * k * k)
    Q = Qin - (ns.E_s @ outer).reshape(S, m, k, k)
    L = L + np.asarray(ns.E_s @ np.log1p(taa * taa * ma))
    Lc, Li = chol_inv_small(Q)
    logd = 2.0 * np.log(np.diagonal(Lc, axis1=-2, axis2=-1))
    lM = logd[..., :p].sum(-1)
    lr = 2.0 * np.log(Lc[..., p, p])
    Lp = Li[..., :p, :p]
    Minv = np.swapaxes(Lp, -1, -2) @ Lp
    return dict(L=L, lM=lM, r=np.exp(lr), Q=Q, Minv=Minv)


def _crit(ns, tb, ta, REML):
    e = _evaluate(ns, tb, ta)
    n = ns.st.nobs.astype(float)[:, None]
    d = n - ns.st.p if REML else n
    c = e["L"] + d * np.log(e["r"]) + (e["lM"] if REML else 0.0)
    return np.where(np.isfinite(c), c, np.inf)


def _grid(ns: NestedStats, REML: bool):
    """Criterion of every dataset on the (theta_b, theta_a) grid: (S, m) and the grid."""
    st = ns.st
    S = st.n_sims
    gb, ga = np.meshgrid(_GRID, _GRID, indexing="ij")
    gb, ga = gb.ravel(), ga.ravel()
    k2 = (st.p + 1) ** 2
    step = max(1, min(gb.size, int(2e6 // max((st.cls_n.size + ns.nouter.sum()) * k2, 1))))
    cg = np.concatenate([
        _crit(ns, np.broadcast_to(gb[c0:c0 + step], (S, gb[c0:c0 + step].size)).copy(),
              np.broadcast_to(ga[c0:c0 + step], (S, ga[c0:c0 + step].size)).copy(), REML)
        for c0 in range(0, gb.size, step)], axis=1)
    return cg, gb, ga


def _newton(f, x: np.ndarray, iters: int, ridge: bool = False):
    """Newton on the unconstrained (even) criterion, backtracking line search.

    Where the Hessian is not positive definite the step follows the gradient, or,
    with ``ridge``, :func:`_ridge_step`'s.
    """
    S = x.shape[0]
    fx = f(x)
    active = np.ones(S, dtype=bool)
    for _ in range(iters):
        if not active.any():
            break
        g, H = _grad_hess(f, x, fx)
        det = H[:, 0, 0] * H[:, 1, 1] - H[:, 0, 1] ** 2
        pd_ = (H[:, 0, 0] > 0) & (det > 0)
        other = _ridge_step(g, H, x) if ridge else \
            -g / np.maximum(np.abs(np.diagonal(H, axis1=1, axis2=2)), 1.0)
        step = np.where(pd_[:, None],
                        -np.linalg.solve(np.where(pd_[:, None, None], H, np.eye(2)),
                                         g[..., None])[..., 0], other)
        step = np.where(active[:, None], step, 0.0)
        lam = np.ones(S)
        for _ in range(30):
            xn = x + lam[:, None] * step
            fn = f(xn)
            ok = fn <= fx + 1e-14 * np.abs(fx)
            if ok.all():
                break
            lam = np.where(ok, lam, lam / 2)
        ok = fn <= fx + 1e-14 * np.abs(fx)
        x = np.where(ok[:, None], xn, x)
        small = np.max(np.abs(lam[:, None] * step) / np.maximum(np.abs(x), 1e-3), axis=1)
        gain = fx - np.where(ok, fn, fx)
        fx = np.where(ok, fn, fx)
        # Finite-difference noise sets the floor: stop on a tiny step or on
        # no measurable decrease.
        active &= ok & (small > 1e-9) & (gain > 1e-13 * np.abs(fx))
    return x, fx


def _ridge_step(g: np.ndarray, H: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Return a step where the Hessian is not positive definite, direction by direction.

    Along an eigenvector of clearly positive curvature, Newton's step; along one of
    no or negative curvature, a step of half ``|x|`` downhill where the slope there
    is material, else none. The gradient step of :func:`_newton` (scaled by the
    curvature, at least 1) crawls where the criterion is flat: along a valley
    when only ``theta_b^2 + theta_a^2`` is identified (every inner group alone in
    its outer group), or in a large theta, for hundreds of iterations.
    """
    lam, V = np.linalg.eigh(np.where(np.isfinite(H), H, 0.0))
    c = np.einsum("sji,sj->si", V, g)       # the gradient along each eigenvector
    pos = lam > 1e-8 * np.max(np.abs(lam), axis=1, keepdims=True)
    r = 0.5 * np.maximum(np.linalg.norm(x, axis=1), 0.1)[:, None]
    down = np.where(np.abs(c) * r > 1e-7, -np.sign(c) * r, 0.0)
    comp = np.where(pos, -c / np.where(pos, lam, 1.0), down)
    return np.einsum("sij,sj->si", V, comp)


def _restart(f, x, fx, where_, start, iters, ridge=False):
    """Run Newton again from ``start`` where flagged; keep a clearly lower optimum."""
    x2, fx2 = _newton(f, np.where(where_[:, None], start, x), iters, ridge)
    better = where_ & clearly_lower(fx2, fx)
    return np.where(better[:, None], x2, x), np.where(better, fx2, fx)


def _escape(ns: NestedStats, f, x, fx, REML: bool, iters: int, rounds: int = 2):
    """Leave a flat or non-convex stretch where Newton stopped short.

    Scan each theta over the grid with the other held at the optimum found; where a
    scanned point is clearly lower (the criterion can be nearly flat in one theta
    over a decade, e.g. a small class variance beside a large student one), restart
    Newton there.
    """
    m = _GRID.size
    for _ in range(rounds):
        tb = np.concatenate([np.broadcast_to(_GRID, (x.shape[0], m)),
                             np.repeat(np.abs(x[:, 0:1]), m, axis=1)], axis=1)
        ta = np.concatenate([np.repeat(np.abs(x[:, 1:2]), m, axis=1),
                             np.broadcast_to(_GRID, (x.shape[0], m))], axis=1)
        fc = _crit(ns, tb, ta, REML)
        k = np.argmin(fc, axis=1)
        rows = np.arange(x.shape[0])
        lower = clearly_lower(fc[rows, k], fx)
        if not lower.any():
            break
        x, fx = _restart(f, x, fx, lower, np.stack([tb[rows, k], ta[rows, k]], axis=1),
                         iters)
    return x, fx


def nested_fit(ns: NestedStats, REML: bool = True, iters: int = 40) -> dict:
    """Fit every dataset.

    Returns the same keys as :func:`.random_intercept.ri_fit` (theta is (S, 2)).
    """
    with np.errstate(all="ignore"):
        cg, gb, ga = _grid(ns, REML)
        j = np.argmin(cg, axis=1)
        f = lambda xx: _crit(ns, xx[:, 0:1], xx[:, 1:2], REML)[:, 0]  # noqa: E731
        x, fx = _newton(f, np.stack([gb[j], ga[j]], axis=1), iters)
        # The criterion is even in each theta, so a start with a zero theta keeps it
        # (near) zero: where the best grid point has one, also start from the best
        # point inside and keep that optimum when it is lower (a boundary local
        # minimum next to an interior global one).
        edge = (gb[j] == 0) | (ga[j] == 0)
        if edge.any():
            j2 = np.argmin(np.where((gb > 0) & (ga > 0), cg, np.inf), axis=1)
            x, fx = _restart(f, x, fx, edge, np.stack([gb[j2], ga[j2]], axis=1), iters)
        x, fx = _escape(ns, f, x, fx, REML, iters)
        # Newton stops short in a flat valley (a non-identified pair of variances,
        # a criterion flat in a large theta): go on across it, keep a clearly lower point.
        x, fx = _restart(f, x, fx, np.ones(x.shape[0], dtype=bool), x, iters, ridge=True)
        x = np.abs(x)
        # A boundary (zero) variance: lme4 reports exactly 0 there.
        for i in range(2):
            z = x.copy()
            z[:, i] = 0.0
            fz = f(z)
            x = np.where((fz <= fx)[:, None] & (x[:, i:i + 1] < 1e-4), z, x)
        return _finish(ns, x, REML)


def _grad_hess(f, x, fx):
    S = x.shape[0]
    h = 1e-3 * np.maximum(np.abs(x), 1e-2)
    g = np.empty((S, 2))
    H = np.empty((S, 2, 2))
    for i in range(2):
        e = np.zeros((S, 2))
        e[:, i] = h[:, i]
        fp, fm = f(x + e), f(x - e)
        fp2, fm2 = f(x + e / 2), f(x - e / 2)
        g1 = (fp - fm) / (2 * h[:, i])
        g2 = (fp2 - fm2) / h[:, i]
        g[:, i] = (4 * g2 - g1) / 3
        H[:, i, i] = (fp - 2 * fx + fm) / h[:, i] ** 2
    e = np.zeros((S, 2))
    e[:, 0], e[:, 1] = h[:, 0], h[:, 1]
    fpp, fmm = f(x + e), f(x - e)
    H[:, 0, 1] = H[:, 1, 0] = (fpp - 2 * fx + fmm - H[:, 0, 0] * h[:, 0] ** 2
                               - H[:, 1, 1] * h[:, 1] ** 2) / (2 * h[:, 0] * h[:, 1])
    return g, H


def _finish(ns: NestedStats, x: np.ndarray, REML: bool) -> dict:
    st = ns.st
    p = st.p
    n = st.nobs.astype(float)
    dfres = n - p if REML else n
    with np.errstate(all="ignore"):
        e = _evaluate(ns, x[:, 0:1], x[:, 1:2])
        Q, Minv = e["Q"][:, 0], e["Minv"][:, 0]
        r = e["r"][:, 0]
        bvec = Q[:, :p, p]
        beta = np.einsum("sij,sj->si", Minv, bvec) + st.b0
        sigma2 = r / dfres
        sigma = np.sqrt(sigma2)
        vcov = sigma2[:, None, None] * Minv
        crit = e["L"][:, 0] + (e["lM"][:, 0] if REML else 0.0) + \
            dfres * (1.0 + np.log(2 * np.pi * r / dfres))

        # Pieces of the unprofiled deviance in theta at fixed sigma: phi =
        # L + [log|M|] + r / sigma^2, plus r itself and diag(M^-1).
        def fun(xx):
            ev = _evaluate(ns, xx[:, 0:1], xx[:, 1:2])
            phi = ev["L"][:, 0] + (ev["lM"][:, 0] if REML else 0.0) + ev["r"][:, 0] / sigma2
            return np.column_stack([phi, ev["r"][:, 0],
                                    np.diagonal(ev["Minv"][:, 0], axis1=1, axis2=2)])

        J, Hs = richardson_batched(fun, x)
        H = np.empty((x.shape[0], 3, 3))
        H[:, :2, :2] = Hs[:, 0]
        H[:, :2, 2] = H[:, 2, :2] = -2.0 * J[:, 1, :] / sigma[:, None] ** 3
        H[:, 2, 2] = -2.0 * dfres / sigma2 + 6.0 * r / sigma2**2
        A = 2.0 * pinv_sym(H)
        var = np.diagonal(vcov, axis1=1, axis2=2)
        g_t = sigma2[:, None, None] * J[:, 2:, :]                        # (S, p, 2)
        g_s = 2.0 * sigma[:, None] * np.diagonal(Minv, axis1=1, axis2=2)  # (S, p)
        g = np.concatenate([g_t, g_s[..., None]], axis=2)                # (S, p, 3)
        gAg = np.einsum("spi,sij,spj->sp", g, A, g)
        df = 2.0 * var**2 / gAg
    return dict(beta=beta, vcov=vcov, sigma=sigma, theta=x, crit=crit, df=df, hess=H,
                nobs=st.nobs, ngrps=st.ngrps)
