"""Random-intercept LMM for many datasets at once, from sufficient statistics.

For ``y = X beta + Z u + e`` with one random intercept per group, ``u ~ N(0,
sigma^2 theta^2)`` and ``e ~ N(0, sigma^2)``, every quantity lme4 computes
depends on the data only through

* ``C0 = [X y]'[X y]`` (per dataset; in practice its within-group part), and
* ``C_n = sum over groups of size n of s_g s_g'`` with ``s_g = [X y]' 1_g`` the
  group sums (per dataset and group size ``n``).

With ``w_n(theta) = theta^2 / (1 + n theta^2)``,
``Q(theta) = C0 - sum_n w_n C_n`` is ``[X y]' (I + theta^2 Z Z')^{-1} [X y]``,
whose top-left block is ``M = RX'RX`` and whose Schur complement is the
penalized residual sum of squares ``r``. lme4's profiled criteria are then

* REML: ``sum_g log(1 + n_g theta^2) + log|M| + (n-p) (1 + log(2 pi r / (n-p)))``
* ML:   ``sum_g log(1 + n_g theta^2) + n (1 + log(2 pi r / n))``

(Bates et al. 2015, JSS 67(1), eqs. 34 and 41). Since ``log r = log|Q| -
log|M|``, both are sums of log-determinants of small matrices whose first and
second derivatives in ``theta`` are closed forms, so all datasets are optimised
together by a bracketed Newton iteration. lmerTest's Satterthwaite df need the
Hessian of the unprofiled deviance in ``(theta, sigma)`` and the gradient of
``vcov(beta)``; both are closed forms here too.

Groups of equal size share ``w_n``, so the per-iteration cost is independent of
the number of groups: a few size classes per dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ...groups import take_owned
from .basins import clearly_lower, grid_local_minima, lowest_winners
from .small_matrices import batched_lstsq, chol_inv_small, logdet_derivs, pinv_sym

__all__ = ["RIStats", "ri_stats", "ri_fit"]

#: log-spaced starting grid for theta (0 is handled separately as the boundary)
_GRID = np.concatenate([[0.0], np.logspace(-4, 4, 41)])


@dataclass
class RIStats:
    """Sufficient statistics of a random-intercept model, for S datasets."""

    W: np.ndarray           # (S, k, k) within-group cross products of [X e0], k = p + 1
    Cn: np.ndarray          # (K, k, k) per (dataset, group-size) class
    cls_sim: np.ndarray     # (K,) dataset of each class
    cls_n: np.ndarray       # (K,) group size of each class
    cls_count: np.ndarray   # (K,) number of groups in the class
    nobs: np.ndarray        # (S,)
    ngrps: np.ndarray       # (S,)
    p: int
    b0: np.ndarray          # (S, p) OLS coefficients subtracted from y
    XtX: np.ndarray         # (S, p, p) for rank checks
    S_g: np.ndarray | None = None   # (G, k) group sums of [X e0] (for nested models)
    n_g: np.ndarray | None = None   # (G,) group sizes

    @property
    def n_sims(self) -> int:
        """Number of datasets."""
        return self.W.shape[0]

    def take(self, sims: np.ndarray) -> RIStats:
        """Datasets ``sims`` (in that order, repeats allowed), without ``S_g``, ``n_g``."""
        sims = np.asarray(sims, dtype=np.int64)
        cls, new_sim = take_owned(self.cls_sim, self.n_sims, sims)
        return RIStats(self.W[sims], self.Cn[cls], new_sim, self.cls_n[cls],
                       self.cls_count[cls], self.nobs[sims], self.ngrps[sims], self.p,
                       self.b0[sims], self.XtX[sims])


class _GroupSums:
    """Group sums and group-centred columns, by the fastest route the layout allows.

    Rows of a group are usually contiguous: then sums are reduceat passes over
    blocks, else bincounts. Groups all of one size ``m`` (a balanced design) make the
    rows a (G, m) table: column passes then replace reduceat's and repeat's
    per-group loops. The sums keep reduceat's order, first + (sum of the rest), so
    the numbers are the same bits either way.
    """

    def __init__(self, gcode: np.ndarray, G: int):
        N = gcode.shape[0]
        self.gcode, self.G, self.N = gcode, G, N
        self.contiguous = N > 0 and bool(np.all(gcode[1:] >= gcode[:-1]))
        self.n_g = n_g = np.bincount(gcode, minlength=G)
        self.starts = np.concatenate([[0], np.cumsum(n_g)[:-1]]) if self.contiguous else None
        self.m = int(n_g[0]) if self.contiguous and G and N == G * int(n_g[0]) and \
            n_g.min() == n_g.max() else 0

    def sum(self, v: np.ndarray) -> np.ndarray:
        """Per-group sums of a row vector, (N,) -> (G,)."""
        m, G = self.m, self.G
        if m:
            V = v.reshape(G, m)
            if m == 1:
                return V[:, 0].copy()
            if m <= 8:  # below numpy's pairwise block the sum is sequential
                rest = V[:, 1].copy()
                for c in range(2, m):
                    rest += V[:, c]
            else:
                rest = V[:, 1:].sum(axis=1)
            return V[:, 0] + rest
        if self.contiguous:
            return np.add.reduceat(v, self.starts)
        return np.bincount(self.gcode, weights=v, minlength=G)

    def centre(self, v: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """``v`` minus its group's mean, (N,)."""
        if self.m:
            return (v.reshape(self.G, self.m) - mean[:, None]).reshape(self.N)
        return v - (np.repeat(mean, self.n_g) if self.contiguous else mean[self.gcode])


def _within_products(gs: _GroupSums, cen: dict, p: int, group_sim: np.ndarray,
                     n_sims: int, k: int) -> np.ndarray:
    """Within-group cross products of the group-centred columns, per dataset."""
    # A regressor constant within groups (a cluster-level treatment) centres to
    # exact zeros: its within-group products are exact zeros too, so skip their
    # row passes (a partner column with an overflowing product still takes the
    # full pass, which gives the NaN it would).
    zero = {i: i < p and not cen[i].any() for i in cen}
    Wy = np.zeros((n_sims, k, k))
    var = sorted(cen)
    for i in var:
        if not zero[i]:
            Wy[:, i, i] = np.bincount(group_sim, weights=gs.sum(cen[i] * cen[i]),
                                      minlength=n_sims)
    for a, i in enumerate(var):
        for j in var[a + 1:]:
            if (zero[i] or zero[j]) and np.isfinite(Wy[:, i, i] + Wy[:, j, j]).all():
                continue
            v = np.bincount(group_sim, weights=gs.sum(cen[i] * cen[j]), minlength=n_sims)
            Wy[:, i, j] = v
            Wy[:, j, i] = v
    return Wy


def _pair_sums(index: np.ndarray, A: np.ndarray, size: int, k: int,
               scale: np.ndarray | None = None) -> np.ndarray:
    """``sum over rows r of class c of A[r, i] A[r, j] (scale[r])`` as (size, k, k)."""
    out = np.empty((size, k, k))
    for i in range(k):
        for j in range(i, k):
            w = A[:, i] * A[:, j] if scale is None else A[:, i] * A[:, j] * scale
            v = np.bincount(index, weights=w, minlength=size)
            out[:, i, j] = v
            out[:, j, i] = v
    return out


def _shift_to_ols(S_g: np.ndarray, Wy: np.ndarray, tot: np.ndarray, group_sim: np.ndarray,
                  p: int, n_sims: int, k: int):
    """Replace y by the per-dataset OLS residual ``e0 = y - X b0`` in W and the sums.

    beta shifts by b0; r and vcov are unchanged. Keeping the within-group part W and
    the group sums apart, ``Q = W + sum_n v_n C_n`` with ``v_n = 1/(n (1 + n
    theta^2)) > 0`` has no cancellation, whereas ``[X y]'[X y] - sum_n w_n C_n`` loses
    ~4 digits when theta is large.
    """
    XtX = tot[:, :p, :p]
    with np.errstate(all="ignore"):
        b0 = batched_lstsq(XtX, tot[:, :p, p])
    b0 = np.where(np.isfinite(b0), b0, 0.0)
    T = np.zeros((n_sims, k, k))
    T[:, np.arange(k), np.arange(k)] = 1.0
    T[:, p, :p] = -b0
    W = T @ Wy @ np.transpose(T, (0, 2, 1))
    if p <= 2:  # einsum's order for two terms; a gather per column beats its setup
        fit = S_g[:, 0] * b0[group_sim, 0] if p else 0.0
        if p == 2:
            fit = fit + S_g[:, 1] * b0[group_sim, 1]
        S_g[:, p] = S_g[:, p] - fit
    else:
        # (einsum's order depends on the layout: keep the row-major one)
        S_g[:, p] = S_g[:, p] - np.einsum("gi,gi->g", np.ascontiguousarray(S_g[:, :p]),
                                          b0[group_sim])
    return W, b0, XtX


def _size_classes(group_sim: np.ndarray, n_g: np.ndarray, n_sims: int):
    """Find the (dataset, group size) classes.

    By a lookup table over the (small) key range rather than a sort. Returns each
    group's class and the classes' datasets and sizes.
    """
    G = group_sim.shape[0]
    stride = int(n_g.max(initial=0)) + 1
    key = group_sim.astype(np.int64) * stride + n_g
    if n_sims * stride <= max(4 * G, 1 << 16):
        present = np.zeros(n_sims * stride, dtype=bool)
        present[key] = True
        ukey = np.flatnonzero(present)
        cls = (np.cumsum(present) - 1)[key]
    else:
        ukey, cls = np.unique(key, return_inverse=True)
    return cls, ukey // stride, ukey % stride


def ri_stats(X: np.ndarray, y: np.ndarray, gcode: np.ndarray, group_sim: np.ndarray,
             n_sims: int) -> RIStats:
    """Build the sufficient statistics.

    Parameters
    ----------
    X : ndarray, shape (N, p)
        Fixed-effects matrix.
    y : ndarray, shape (N,)
        Response.
    gcode : ndarray, shape (N,)
        Dense group codes, numbered across datasets.
    group_sim : ndarray, shape (G,)
        Dataset of each group.
    n_sims : int
        Number of datasets.

    Returns
    -------
    RIStats
    """
    p = X.shape[1]
    k = p + 1
    G = group_sim.shape[0]
    gs = _GroupSums(gcode, G)
    n_g = gs.n_g
    # A column of ones (the intercept) has group sums n_g and no within-group
    # variation: skip its row-level passes. Columns are handled as contiguous
    # 1-D arrays (a strided column of a C-ordered X is much slower).
    cols = [np.ascontiguousarray(X[:, j], dtype=float) for j in range(p)] + \
        [np.ascontiguousarray(y, dtype=float)]
    const = [j < p and bool(np.all(cols[j] == 1.0)) for j in range(k)]
    S_g = np.empty((G, k), order="F")  # used column by column
    inv_n = 1.0 / np.maximum(n_g, 1)
    cen = {}
    for i in range(k):
        if const[i]:
            S_g[:, i] = n_g
        else:
            S_g[:, i] = gs.sum(cols[i])
            # Within-group cross products come from group-centred columns.
            cen[i] = gs.centre(cols[i], S_g[:, i] * inv_n)
    Wy = _within_products(gs, cen, p, group_sim, n_sims, k)
    # Between-group part, at the group level.
    tot = Wy + _pair_sums(group_sim, S_g, n_sims, k, inv_n)
    W, b0, XtX = _shift_to_ols(S_g, Wy, tot, group_sim, p, n_sims, k)
    cls, cls_sim, cls_n = _size_classes(group_sim, n_g, n_sims)
    K = cls_sim.shape[0]
    cls_count = np.bincount(cls, minlength=K)
    Cn = _pair_sums(cls, S_g, K, k)
    # Counts from the (few) size classes: integer sums, so exact in floats.
    nobs = np.bincount(cls_sim, weights=cls_n * cls_count, minlength=n_sims).astype(np.int64)
    ngrps = np.bincount(cls_sim, weights=cls_count, minlength=n_sims).astype(np.int64)
    return RIStats(W, Cn, cls_sim, cls_n.astype(float), cls_count.astype(float), nobs,
                   ngrps, p, b0, XtX, S_g, n_g)


class _Eval:
    """Criterion pieces at given theta (one theta per dataset, or an (S, m) grid)."""

    def __init__(self, st: RIStats, theta: np.ndarray, derivs: bool, E=None):
        S, k, p = st.n_sims, st.p + 1, st.p
        th = np.asarray(theta, dtype=float)
        two_d = th.ndim == 2
        th2 = th if two_d else th[:, None]                 # (S, m)
        m = th2.shape[1]
        tc = th2[st.cls_sim]                               # (K, m)
        n = st.cls_n[:, None]
        den = 1.0 + n * tc * tc
        v = 1.0 / (n * den)
        if E is None:
            E = _class_sums(st)
        Cf = st.Cn.reshape(-1, k * k)

        def agg(weights):  # sum_n weights_n C_n per dataset -> (S, m, k, k)
            return (E @ (weights[:, :, None] * Cf[:, None, :]).reshape(-1, m * k * k)
                    ).reshape(S, m, k, k)

        cnt = st.cls_count[:, None]
        self.L = np.asarray(E @ (cnt * np.log(den)))       # (S, m)
        self.Q = st.W[:, None] + agg(v)
        # One Cholesky factor of Q serves both determinants: its leading p x p
        # block is the factor of M.
        Lc, Li = chol_inv_small(self.Q)
        logd = 2.0 * np.log(np.diagonal(Lc, axis1=-2, axis2=-1))
        self.lM = logd[..., :p].sum(-1)
        self.lQ = self.lM + logd[..., p]
        self._Li = Li
        if derivs:
            w1 = 2.0 * tc / den**2
            w2 = 2.0 * (1.0 - 3.0 * n * tc * tc) / den**3
            self.L1 = np.asarray(E @ (cnt * 2.0 * n * tc / den))
            self.L2 = np.asarray(E @ (cnt * 2.0 * n * (1.0 - n * tc * tc) / den**2))
            Q1, Q2 = -agg(w1), -agg(w2)
            self.Q1 = Q1
            Qi = np.swapaxes(Li, -1, -2) @ Li
            self.lQ1, self.lQ2 = logdet_derivs(Qi, Q1, Q2)
            if p:
                Lp = Li[..., :p, :p]
                self.Minv = np.swapaxes(Lp, -1, -2) @ Lp
                self.lM1, self.lM2 = logdet_derivs(self.Minv, Q1[..., :p, :p],
                                                    Q2[..., :p, :p])
            else:
                self.lM1 = self.lM2 = np.zeros((S, m))
        if not two_d:
            for name in list(vars(self)):
                v = getattr(self, name)
                if isinstance(v, np.ndarray):
                    setattr(self, name, v[:, 0])


def _class_sums(st: RIStats):
    """(S, K) sparse 0/1 matrix summing size classes into their dataset."""
    return sp.csr_matrix((np.ones_like(st.cls_n), (st.cls_sim, np.arange(st.cls_n.size))),
                         shape=(st.n_sims, st.cls_n.size))


def _coefs(st: RIStats, REML: bool):
    n = st.nobs.astype(float)
    p = st.p
    a = n - p if REML else n          # multiplies log|Q|
    b = (n - p - 1) if REML else n    # multiplies log|M|
    return a, b


def _crit(st, ev, REML):
    a, b = _coefs(st, REML)
    if ev.lQ.ndim == 2:
        a, b = a[:, None], b[:, None]
    return ev.L + a * ev.lQ - b * ev.lM


def ri_fit(st: RIStats, REML: bool = True, *, max_iter: int = 100,
           tol: float = 1e-13) -> dict:
    """Fit all datasets; return arrays of estimates, vcov, sigma, theta, df pieces.

    The criterion is scanned over a log grid of theta; Newton's method, kept inside
    a bracket, refines the best grid point, then every other local minimum of the
    scan, and the lowest optimum is kept (see :func:`_other_basins`).
    """
    E = _class_sums(st)
    with np.errstate(all="ignore"):
        crit = _grid_criterion(st, REML, E)
        theta, lo, hi, active = _start(st, crit, REML, E)
        theta = _newton(st, theta, lo, hi, active, REML, E, max_iter, tol)
        theta = _other_basins(st, crit, theta, REML, max_iter, tol)
        ev = _Eval(st, theta, derivs=True, E=E)
    return _finish(st, ev, theta, REML)


def _grid_criterion(st: RIStats, REML: bool, E) -> np.ndarray:
    """Profiled criterion (up to a constant) on ``_GRID``, (S, grid); inf where not finite."""
    S = st.n_sims
    # The grid is evaluated a few points at a time so that memory stays
    # bounded by ~(size classes x chunk x k^2) whatever the batch.
    step = max(1, min(_GRID.size, int(2e6 // max(st.cls_n.size * (st.p + 1) ** 2, 1))))
    parts = []
    for c0 in range(0, _GRID.size, step):
        g = np.broadcast_to(_GRID[c0:c0 + step], (S, min(step, _GRID.size - c0)))
        parts.append(_crit(st, _Eval(st, g, derivs=False, E=E), REML))
    crit = np.concatenate(parts, axis=1)
    return np.where(np.isfinite(crit), crit, np.inf)


def _start(st: RIStats, crit: np.ndarray, REML: bool, E):
    """Start and bracket of Newton's method from the best grid point.

    Returns theta, the bracket's ends and the datasets still to refine.
    """
    S = st.n_sims
    a, b = _coefs(st, REML)
    i = np.argmin(crit, axis=1)
    lo = _GRID[np.maximum(i - 1, 0)]
    hi = _GRID[np.minimum(i + 1, _GRID.size - 1)]
    # At the boundary: theta = 0 is a local minimum when the criterion's
    # curvature there is non-negative (its slope in theta^2).
    ev0 = _Eval(st, np.zeros(S), derivs=True, E=E)
    d2_0 = ev0.L2 + a * ev0.lQ2 - b * ev0.lM2
    at_zero = (i == 0) & (d2_0 >= 0)
    lo = np.where(i == 0, 0.0, lo)
    theta = np.where(at_zero, 0.0, 0.5 * (lo + hi))
    theta = np.where(i == _GRID.size - 1, _GRID[-1], theta)
    active = ~at_zero & (i < _GRID.size - 1)
    return theta, lo, hi, active


def _newton(st: RIStats, theta: np.ndarray, lo: np.ndarray, hi: np.ndarray,
            active: np.ndarray, REML: bool, E, max_iter: int, tol: float) -> np.ndarray:
    """Newton's method on theta per dataset, bisecting the bracket when a step leaves it."""
    a, b = _coefs(st, REML)
    for _ in range(max_iter):
        if not active.any():
            break
        e = _Eval(st, theta, derivs=True, E=E)
        g = e.L1 + a * e.lQ1 - b * e.lM1
        h = e.L2 + a * e.lQ2 - b * e.lM2
        lo = np.where(active & (g < 0), theta, lo)
        hi = np.where(active & (g > 0), theta, hi)
        step = np.where(h > 0, -g / h, np.nan)
        new = theta + step
        bad = ~np.isfinite(new) | (new <= lo) | (new >= hi)
        new = np.where(bad, 0.5 * (lo + hi), new)
        conv = (np.abs(new - theta) <= tol * np.maximum(theta, 1e-8)) | (g == 0)
        theta = np.where(active, new, theta)
        active &= ~conv
    return theta


def _other_basins(st: RIStats, crit: np.ndarray, theta: np.ndarray, REML: bool,
                  max_iter: int, tol: float) -> np.ndarray:
    """Refine every other interior local minimum of the grid scan; keep a clearly lower one.

    With a few groups the criterion can have a boundary minimum at theta = 0 beside
    a narrow interior basin whose grid points all lie above the boundary value but
    whose minimum lies below it (6 rows in groups of 4, 1 and 1: 7.80091 at 0, 7.80243
    at the grid point 2.51, 7.79598 at theta = 2.79). The best grid point alone
    misses it. Each candidate is refined as a dataset of its own (a copy of its
    dataset's statistics) and replaces the first optimum only when clearly lower, so
    a dataset with one basin keeps its numbers bit for bit.
    """
    inner = grid_local_minima(crit, (crit.shape[1],))
    inner[:, [0, -1]] = False                                  # interior minima only
    inner[np.arange(crit.shape[0]), np.argmin(crit, axis=1)] = False    # refined already
    sims, j = np.nonzero(inner)
    if sims.size == 0:
        return theta
    cand = st.take(sims)
    E = _class_sums(cand)
    lo, hi = _GRID[j - 1], _GRID[j + 1]
    t = _newton(cand, 0.5 * (lo + hi), lo, hi, np.ones(sims.size, dtype=bool), REML, E,
                max_iter, tol)
    fc = _crit(cand, _Eval(cand, t, derivs=False, E=E), REML)
    f0 = _crit(cand, _Eval(cand, theta[sims], derivs=False, E=E), REML)
    win = lowest_winners(sims, fc, clearly_lower(fc, f0))
    out = theta.copy()
    out[sims[win]] = t[win]
    return out


def _finish(st: RIStats, ev: _Eval, theta: np.ndarray, REML: bool) -> dict:
    p = st.p
    n = st.nobs.astype(float)
    with np.errstate(all="ignore"):
        Q = ev.Q
        bvec = Q[:, :p, p]
        Minv = ev.Minv
        beta = np.einsum("sij,sj->si", Minv, bvec)
        r = Q[:, p, p] - np.einsum("si,si->s", bvec, beta)
        beta = beta + st.b0
        dfres = n - p if REML else n
        sigma2 = r / dfres
        sigma = np.sqrt(sigma2)
        vcov = sigma2[:, None, None] * Minv
        a, b = _coefs(st, REML)
        crit = ev.L + a * ev.lQ - b * ev.lM + dfres * (1.0 + np.log(2 * np.pi / dfres))
        # Hessian of the unprofiled deviance in (theta, sigma), as lmerTest's devfun_vp.
        lr1 = ev.lQ1 - ev.lM1
        r1 = r * lr1
        r2 = r * (lr1**2 + ev.lQ2 - ev.lM2)
        Htt = ev.L2 + r2 / sigma2 + (ev.lM2 if REML else 0.0)
        Hts = -2.0 * r1 / sigma**3
        Hss = -2.0 * dfres / sigma2 + 6.0 * r / sigma2**2
        H = np.stack([np.stack([Htt, Hts], -1), np.stack([Hts, Hss], -1)], -2)
        A = pinv_sym(H) * 2.0
        # Gradient of vcov(beta)_jj in (theta, sigma).
        M1 = ev.Q1[:, :p, :p]
        dV_t = -sigma2[:, None] * np.einsum("sij,sjk,ski->si", Minv, M1, Minv)
        dV_s = 2.0 * sigma[:, None] * np.diagonal(Minv, axis1=1, axis2=2)
        var = np.diagonal(vcov, axis1=1, axis2=2)
        gAg = (A[:, None, 0, 0] * dV_t**2 + 2 * A[:, None, 0, 1] * dV_t * dV_s
               + A[:, None, 1, 1] * dV_s**2)
        df = 2.0 * var**2 / gAg
    return dict(beta=beta, vcov=vcov, sigma=sigma, theta=theta, crit=crit, df=df,
                hess=H, nobs=st.nobs, ngrps=st.ngrps)


def ri_kenward_roger(st: RIStats, res: dict) -> tuple[np.ndarray, np.ndarray]:
    """Kenward-Roger adjusted vcov and df for the random-intercept model, all sims.

    pbkrtest's algorithm (see :mod:`._kr`) with ``V = gamma_1 Z Z' + gamma_2 I``:
    per group every operator it needs lies in span{I, J} (J the matrix of
    ones), so each ``X' (alpha I + beta J) X`` is ``alpha X'X + sum_n beta_n
    C_n`` with ``alpha`` the same for all groups, and traces are sums over
    size classes. ``Vi = a (I - c J)``, ``a = 1/gamma_2``, ``d = 1 - c n =
    gamma_2 / (gamma_2 + n gamma_1)``; ``(I - c J)^k = I + (d^k - 1)/n J``.
    """
    p = st.p
    S = st.n_sims
    sig2 = res["sigma"] ** 2
    th = res["theta"]
    g1, g2 = sig2 * th**2, sig2
    a = 1.0 / g2
    n = st.cls_n
    cnt = st.cls_count
    cs = st.cls_sim
    d = g2[cs] / (g2[cs] + n * g1[cs])
    ac = a[cs]
    Cx = st.Cn[:, :p, :p]
    XtX = st.XtX

    def xbx(alpha, beta):  # alpha X'X + sum over classes beta C_n -> (S, p, p)
        out = alpha[:, None, None] * XtX
        flat = (beta[:, None] * Cx.reshape(-1, p * p))
        for j in range(p * p):
            out.reshape(S, p * p)[:, j] += np.bincount(cs, weights=flat[:, j], minlength=S)
        return out

    def tsum(v):
        return np.bincount(cs, weights=v * cnt, minlength=S)

    zero = np.zeros(S)
    P1 = -xbx(zero, ac**2 * d**2)
    P2 = -xbx(a**2, ac**2 * (d**2 - 1) / n)
    Q11 = xbx(zero, ac**3 * d**3 * n)
    Q12 = xbx(zero, ac**3 * d**3)
    Q22 = xbx(a**3, ac**3 * (d**3 - 1) / n)
    K = np.empty((S, 2, 2))
    K[:, 0, 0] = tsum(ac**2 * d**2 * n**2)
    K[:, 0, 1] = K[:, 1, 0] = tsum(ac**2 * d**2 * n)
    K[:, 1, 1] = tsum(ac**2 * (n + d**2 - 1))
    Phi = res["vcov"]
    P = [P1, P2]
    Q = {(0, 0): Q11, (0, 1): Q12, (1, 1): Q22}

    def tr(A, B):
        return np.einsum("sij,sji->s", A, B)

    IE = np.empty((S, 2, 2))
    for r in range(2):
        for s in range(r, 2):
            IE[:, r, s] = IE[:, s, r] = K[:, r, s] - 2 * np.einsum("sij,sij->s", Phi, Q[r, s]) \
                + tr(Phi @ P[r], Phi @ P[s])
    with np.errstate(all="ignore"):
        W = 2.0 * np.linalg.pinv(IE, hermitian=True)
        U = W[:, 0, 1, None, None] * (Q[0, 1] - P[0] @ Phi @ P[1])
        U = U + np.swapaxes(U, 1, 2)
        for r in range(2):
            U = U + W[:, r, r, None, None] * (Q[r, r] - P[r] @ Phi @ P[r])
        PhiA = Phi + 2 * Phi @ U @ Phi
        # df of each coefficient (q = 1): with Theta = e_j e_j' / Phi_jj,
        # u_i = Theta Phi P_i Phi has one non-zero row, so pbkrtest's A1 and A2
        # both reduce to sum_rs e_rs W_rs t_r t_s with t_i = (Phi P_i Phi)_jj / Phi_jj.
        PPP = [Phi @ Pi @ Phi for Pi in P]
        diagPhi = np.diagonal(Phi, axis1=1, axis2=2)
        t = [np.diagonal(M, axis1=1, axis2=2) / diagPhi for M in PPP]      # (S, p)
        A = (W[:, 0, 0, None] * t[0] ** 2 + 2 * W[:, 0, 1, None] * t[0] * t[1]
             + W[:, 1, 1, None] * t[1] ** 2)
        A1 = A2 = A
        B = (A1 + 6 * A2) / 2
        g = (2 * A1 - 5 * A2) / (3 * A2)
        den = 3 + 2 * (1 - g)
        c1, c2, c3 = g / den, (1 - g) / den, (3 - g) / den
        V0 = 1 + c1 * B
        V0 = np.where(np.abs(V0) < 1e-10, 0.0, V0)
        rho = ((1 - A2) / (1 - c2 * B)) ** 2 * V0 / (1 - c3 * B)
        df = 4 + 3 / (rho - 1)
    return PhiA, df
