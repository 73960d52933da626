"""Random intercept and slope for one grouping factor, for many datasets at once.

For ``y = X beta + Z b + e`` with, per group ``g``, ``Z_g = [1 z]`` (an intercept and
one slope), ``b_g = sigma T u_g``, ``u_g ~ N(0, I)`` and ``T`` lme4's relative
covariance factor (lower triangular ``[[t1, 0], [t2, t3]]`` for ``(1 + z | g)``,
diagonal ``[[t1, 0], [0, t2]]`` for the uncorrelated ``(z || g)``), everything lme4
computes depends on the data only through the per-group blocks ``P_g = Z_g' Z_g``
(2 x 2) and ``R_g = Z_g' [X y]`` (2 x k) and the per-dataset ``C = [X y]' [X y]``.
With ``A_g = T' P_g T + I`` and ``B_g = T' R_g``,

``Q(theta) = C - sum_g B_g' A_g^-1 B_g = [X y]' (I + Z Lambda Lambda' Z')^-1 [X y]``

whose top-left block is ``M = RX' RX`` and whose Schur complement is the penalised
residual sum of squares ``r``; ``log|L|^2 = sum_g log|A_g|``. lme4's profiled REML
and ML criteria (Bates et al. 2015, JSS 67(1), eqs. 34 and 41) are sums of these
small log-determinants, evaluated for all datasets with 2 x 2 closed forms over the
stack of groups.

The criterion depends on ``T`` only through ``T T'``, so it is unchanged when a
column of ``T`` changes sign: the optimiser works on unconstrained ``theta`` (a
damped Newton iteration on central-difference derivatives, all datasets at once)
and the result is folded back to lme4's parametrisation (non-negative diagonal).
Satterthwaite's df take the derivatives of the criterion's parts in ``theta`` by
Richardson extrapolation over the whole batch, as lmerTest takes them per fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ...batch import Batch
from ...groups import GroupIndex, take_owned
from .bars import LmerFormula, split_terms
from .basins import clearly_lower, grid_local_minima, lowest_winners
from .derivatives import deriv12_batched, richardson_batched_k
from .small_matrices import batched_lstsq, chol_inv_small, pinv_sym

__all__ = ["SlopeLayout", "slope_layout", "SlopeStats", "slope_stats", "slope_fit"]

#: multiples of lme4's start (1, 0, 1) scanned for a starting point
_SCALES = (1.0, 0.01, 0.1, 0.3, 3.0, 10.0, 100.0)


@dataclass(frozen=True)
class SlopeLayout:
    """A formula's random part as the slopes path sees it.

    Parameters
    ----------
    group : str
        The grouping factor.
    slope : str
        The numeric column with a random slope.
    correlated : bool
        ``(1 + z | g)`` (three covariance parameters) or ``(z || g)`` (two).
    """

    group: str
    slope: str
    correlated: bool

    @property
    def n_theta(self) -> int:
        """Number of covariance parameters."""
        return 3 if self.correlated else 2


def _slope_term(expr: str) -> tuple[str | None, bool]:
    """Return the one slope column of a bar's expression and whether it keeps the intercept."""
    terms = split_terms(expr)
    if any(s == "-" for s, _ in terms):
        return None, False
    names = [t for _, t in terms if t not in ("0", "1")]
    intercept = not any(t == "0" for _, t in terms)
    return (names[0] if len(names) == 1 else None), intercept


def slope_layout(f: LmerFormula, batch: Batch, needed) -> SlopeLayout | None:
    """Read a random intercept and slope on one factor from the formula (None: not one).

    The fixed part and the slope must be numeric columns; the grouping factor one
    column.
    """
    bars = f.bars
    if not bars or any(len(b.group) != 1 for b in bars) or \
            len({b.group for b in bars}) != 1:
        return None
    group = bars[0].group[0]
    if len(bars) == 1:
        slope, intercept = _slope_term(bars[0].expr)
        correlated = True
    elif len(bars) == 2 and bars[0].expr.strip() == "1":
        slope, intercept = _slope_term(bars[1].expr)
        intercept = not intercept  # the second bar is "0 + z"
        correlated = False
    else:
        return None
    if slope is None or not intercept or slope not in batch.names or slope == group:
        return None
    if not all(batch[c].dtype.kind in "biuf" for c in needed if c != group):
        return None
    return SlopeLayout(group, slope, correlated)


@dataclass
class SlopeStats:
    """Sufficient statistics of the slopes model for S datasets (y shifted to OLS residuals).

    Parameters
    ----------
    P : ndarray (G, 2, 2)
        ``Z_g' Z_g`` per group.
    R : ndarray (G, 2, k)
        ``Z_g' [X e0]`` per group, ``k = p + 1``.
    C : ndarray (S, k, k)
        ``[X e0]' [X e0]`` per dataset.
    group_sim : ndarray (G,)
    nobs, ngrps : ndarray (S,)
    p : int
    b0 : ndarray (S, p)
        OLS coefficients subtracted from y (beta shifts by them; r and vcov do not).
    XtX : ndarray (S, p, p)
    """

    P: np.ndarray
    R: np.ndarray
    C: np.ndarray
    group_sim: np.ndarray
    nobs: np.ndarray
    ngrps: np.ndarray
    p: int
    b0: np.ndarray
    XtX: np.ndarray

    @property
    def n_sims(self) -> int:
        """Number of datasets."""
        return self.C.shape[0]

    def subset(self, keep: np.ndarray) -> SlopeStats:
        """Keep the statistics of the datasets ``keep`` (renumbered 0..)."""
        pos = np.full(self.n_sims, -1)
        pos[keep] = np.arange(keep.size)
        m = pos[self.group_sim] >= 0
        return SlopeStats(self.P[m], self.R[m], self.C[keep], pos[self.group_sim[m]],
                          self.nobs[keep], self.ngrps[keep], self.p, self.b0[keep],
                          self.XtX[keep])


    def take(self, sims: np.ndarray) -> SlopeStats:
        """Datasets ``sims`` (in that order, repeats allowed) as a new stack."""
        sims = np.asarray(sims, dtype=np.int64)
        groups, new = take_owned(self.group_sim, self.n_sims, sims)
        return SlopeStats(self.P[groups], self.R[groups], self.C[sims], new, self.nobs[sims],
                          self.ngrps[sims], self.p, self.b0[sims], self.XtX[sims])


def slope_stats(X: np.ndarray, y: np.ndarray, z: np.ndarray, g: GroupIndex,
                sim: np.ndarray, n_sims: int) -> SlopeStats:
    """Build the statistics from the stacked rows of every dataset."""
    N, p = X.shape
    k = p + 1
    Xy = np.empty((N, k))
    Xy[:, :p] = X
    Xy[:, p] = y
    E = sp.csr_matrix((np.ones(N), (sim, np.arange(N))), shape=(n_sims, N))
    tot = np.stack([np.asarray(E @ (Xy * Xy[:, [i]])) for i in range(k)], axis=1)
    XtX = tot[:, :p, :p]
    with np.errstate(all="ignore"):
        b0 = batched_lstsq(XtX, tot[:, :p, p])
    b0 = np.where(np.isfinite(b0), b0, 0.0)
    Xy[:, p] = y - np.einsum("ni,ni->n", X, b0[sim])
    C = np.stack([np.asarray(E @ (Xy * Xy[:, [i]])) for i in range(k)], axis=1)
    G = g.n_groups
    P = np.empty((G, 2, 2))
    P[:, 0, 0] = g.sum(np.ones(N))
    P[:, 0, 1] = P[:, 1, 0] = g.sum(z)
    P[:, 1, 1] = g.sum(z * z)
    R = np.stack([g.sum(Xy), g.sum(Xy * z[:, None])], axis=1)
    nobs = np.bincount(sim, minlength=n_sims)
    ngrps = np.bincount(g.group_sim, minlength=n_sims)
    return SlopeStats(P, R, C, g.group_sim, nobs, ngrps, p, b0, XtX)


def _factor(theta: np.ndarray, correlated: bool) -> np.ndarray:
    """Relative covariance factors ``T`` (..., 2, 2) from theta rows (..., m)."""
    T = np.zeros((*theta.shape[:-1], 2, 2))
    T[..., 0, 0] = theta[..., 0]
    if correlated:
        T[..., 1, 0] = theta[..., 1]
        T[..., 1, 1] = theta[..., 2]
    else:
        T[..., 1, 1] = theta[..., 1]
    return T


class _Criterion:
    """The profiled criterion and its parts, for all datasets at one theta each."""

    def __init__(self, st: SlopeStats, correlated: bool, REML: bool):
        self.st, self.correlated, self.REML = st, correlated, REML
        S, G = st.n_sims, st.group_sim.size
        self.E = sp.csr_matrix((np.ones(G), (st.group_sim, np.arange(G))), shape=(S, G))
        n = st.nobs.astype(float)
        self.dfres = n - st.p if REML else n

    def parts(self, theta: np.ndarray) -> dict:
        """``ldA`` (log|L|^2), ``L`` (Cholesky factor of Q) and its inverse, per dataset."""
        st = self.st
        k = st.p + 1
        T = _factor(theta, self.correlated)[st.group_sim]      # (G, 2, 2)
        TT = np.transpose(T, (0, 2, 1))
        A = TT @ st.P @ T
        a, b, c = A[:, 0, 0] + 1.0, A[:, 0, 1], A[:, 1, 1] + 1.0
        det = a * c - b * b
        B = TT @ st.R                                            # (G, 2, k)
        B0, B1 = B[:, 0, :], B[:, 1, :]
        cross = B0[:, :, None] * B1[:, None, :]
        D = (c[:, None, None] * (B0[:, :, None] * B0[:, None, :])
             - b[:, None, None] * (cross + np.transpose(cross, (0, 2, 1)))
             + a[:, None, None] * (B1[:, :, None] * B1[:, None, :])) / det[:, None, None]
        Q = st.C - np.asarray(self.E @ D.reshape(-1, k * k)).reshape(-1, k, k)
        ldA = np.asarray(self.E @ np.log(det))
        L, Li = chol_inv_small(Q)
        return dict(ldA=ldA, L=L, Li=Li)

    def values(self, theta: np.ndarray) -> np.ndarray:
        """``(log|L|^2 [+ log|M|], r, diag(M^-1))`` per dataset, (S, 2 + p)."""
        e = self.parts(theta)
        p = self.st.p
        L, Li = e["L"], e["Li"]
        d = np.diagonal(L, axis1=1, axis2=2)
        ld = e["ldA"] + (2.0 * np.log(d[:, :p]).sum(axis=1) if self.REML else 0.0)
        Li11 = Li[:, :p, :p]
        dMinv = np.einsum("sji,sji->si", Li11, Li11)
        return np.concatenate([ld[:, None], (d[:, p] ** 2)[:, None], dMinv], axis=1)

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        """Evaluate the profiled criterion (-2 log-likelihood) per dataset."""
        v = self.values(theta)
        with np.errstate(all="ignore"):
            return v[:, 0] + self.dfres * (1.0 + np.log(2 * np.pi * v[:, 1] / self.dfres))


def _start(f: _Criterion, m: int, S: int) -> np.ndarray:
    base = np.array([1.0, 0.0, 1.0]) if m == 3 else np.ones(2)
    cands = np.stack([np.tile(s * base, (S, 1)) for s in _SCALES])
    vals = np.stack([f(c) for c in cands])
    vals = np.where(np.isfinite(vals), vals, np.inf)
    return cands[np.argmin(vals, axis=0), np.arange(S)]


def _newton_step(g: np.ndarray, H: np.ndarray) -> np.ndarray:
    """``-H^+ g`` with |eigenvalues| (a descent direction where H is indefinite).

    Directions whose curvature is at the differences' noise level are left alone:
    they are flat (a slope constant within groups makes the criterion constant
    along a ridge in theta), and a step along them would follow the noise.
    """
    vals, vecs = np.linalg.eigh(H)
    big = np.abs(vals).max(axis=1, keepdims=True)
    av = np.abs(vals)
    inv = np.where(av > 1e-6 * big, 1.0 / np.where(av > 0, av, 1.0), 0.0)
    return -np.einsum("sij,sj,skj,sk->si", vecs, inv, vecs, g)


def _optimise(f: _Criterion, x: np.ndarray, iters: int = 80):
    """Damped Newton on every dataset; returns theta, criterion and convergence flags.

    Each iteration tries fractions of the Newton step and, where the Hessian misleads
    (far from the optimum), steps down the gradient; a dataset is done when the
    Newton decrement or the decrease is at rounding level.
    """
    fx = f(x)
    done = np.zeros(x.shape[0], dtype=bool)
    converged = np.zeros(x.shape[0], dtype=bool)
    alphas = np.array([1.0, 0.5, 0.25, 0.1, 0.03, 0.01])
    for _ in range(iters):
        act = np.flatnonzero(~done)
        if not act.size:
            break
        sub = _Criterion(f.st.subset(act), f.correlated, f.REML)
        xa, fa = x[act], fx[act]
        g, H = deriv12_batched(sub, xa, fa, delta=1e-4 * max(1.0, float(np.abs(xa).max())))
        newton = _newton_step(g, H)
        descent = -g / np.maximum(np.abs(np.linalg.eigvalsh(H)).max(axis=1), 1e-8)[:, None]
        steps = [al * newton for al in alphas] + [c * descent for c in (1.0, 10.0, 100.0)]
        trials = np.stack([sub(xa + st) for st in steps])
        trials = np.where(np.isfinite(trials), trials, np.inf)
        j = np.argmin(trials, axis=0)
        fb = trials[j, np.arange(act.size)]
        better = fb < fa
        chosen = np.stack(steps)[j, np.arange(act.size)]
        x[act] = np.where(better[:, None], xa + chosen, xa)
        fx[act] = np.where(better, fb, fa)
        # near rounding of the criterion (~1e-13 absolute at |f| ~ 2000): a decrement of
        # 1e-12 relative still leaves theta 1e-6 short along a shallow direction (a
        # slope constant within groups makes a ridge), and the SEs as far off
        tol = 1e-15 * np.maximum(1.0, np.abs(fa))
        dec = np.einsum("si,si->s", g, -newton)
        ok = (dec < tol) | (better & (fa - fb < tol))
        # no step improves: the optimum up to the differences' noise, or a failure
        stuck = ~better & (dec < 1e-8 * np.maximum(1.0, np.abs(fa)))
        converged[act[ok | stuck]] = True
        done[act[ok | ~better]] = True
    return x, fx, converged


#: Levels of the start grid scanned for other basins: T's diagonal, its off-diagonal.
_DIAGONAL_LEVELS = np.array([0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0])
_OFF_DIAGONAL_LEVELS = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
#: Datasets with at most this many groups are scanned for other basins.
_FEW_GROUPS = 10


def _start_grid(correlated: bool) -> tuple[np.ndarray, tuple[int, ...]]:
    """Points of the start grid (n, m), in lme4's parametrisation, and its shape."""
    axes = [_DIAGONAL_LEVELS, _OFF_DIAGONAL_LEVELS, _DIAGONAL_LEVELS] if correlated else \
        [_DIAGONAL_LEVELS, _DIAGONAL_LEVELS]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([a.ravel() for a in mesh], axis=1), mesh[0].shape


def _nearest_point(x: np.ndarray, correlated: bool, shape: tuple[int, ...]) -> np.ndarray:
    """Index of the start-grid point nearest each folded theta (on an asinh scale)."""
    axes = [_DIAGONAL_LEVELS, _OFF_DIAGONAL_LEVELS, _DIAGONAL_LEVELS] if correlated else \
        [_DIAGONAL_LEVELS, _DIAGONAL_LEVELS]
    idx = [np.argmin(np.abs(np.arcsinh(x[:, i:i + 1] / 0.05) - np.arcsinh(a / 0.05)), axis=1)
           for i, a in enumerate(axes)]
    return np.ravel_multi_index(idx, shape)


def _other_basins(f: _Criterion, x: np.ndarray, fx: np.ndarray, done: np.ndarray):
    """Optimise from every other local minimum of a start grid; keep a clearly lower one.

    The start is the best point of a ray through theta, and with a few groups the
    criterion can have minima apart from the one it leads to: on the boundary
    (a zero variance) beside an interior one, or on the other axis (5 groups of
    2-5 rows, ``(z || g)``: 32.83 at (1.33, 0), 31.63 at (0, 3.7)). Each local
    minimum of a grid over T's entries, other than the grid point nearest the
    optimum found, is a start of its own (a copy of its dataset); an optimum
    replaces the first only when clearly lower, so a dataset with one basin keeps
    its numbers bit for bit. ``x`` is folded; returns x, its criterion and ``done``.

    The scan costs about as much as the fit, so it runs on datasets with at most
    ``_FEW_GROUPS`` groups, where such basins were found (9 of 997 small datasets
    of 3-6 groups for ``(z || g)``, 2 of 498 for ``(1 + z | g)``).
    """
    few = np.flatnonzero(f.st.ngrps <= _FEW_GROUPS)
    if few.size == 0:
        return x, fx, done
    pts, shape = _start_grid(f.correlated)
    fs = _Criterion(f.st.take(few), f.correlated, f.REML) if few.size < x.shape[0] else f
    vals = np.stack([fs(np.broadcast_to(pt, (few.size, pt.size)).copy()) for pt in pts],
                    axis=1)
    loc = grid_local_minima(np.where(np.isfinite(vals), vals, np.inf), shape)
    loc[np.arange(few.size), _nearest_point(x[few], f.correlated, shape)] = False
    sims, j = np.nonzero(loc)
    sims = few[sims]
    if sims.size == 0:
        return x, fx, done
    fc = _Criterion(f.st.take(sims), f.correlated, f.REML)
    xc, _, dc = _optimise(fc, pts[j].copy())
    xc = _fold(xc, f.correlated)
    vc = fc(xc)
    win = lowest_winners(sims, vc, dc & clearly_lower(vc, fx[sims]))
    x, fx, done = x.copy(), fx.copy(), done.copy()
    x[sims[win]], fx[sims[win]], done[sims[win]] = xc[win], vc[win], True
    return x, fx, done


def _fold(theta: np.ndarray, correlated: bool) -> np.ndarray:
    """lme4's parametrisation: each column of T with a non-negative diagonal."""
    th = theta.copy()
    if correlated:
        neg = th[:, 0] < 0
        th[neg, :2] = -th[neg, :2]
        th[:, 2] = np.abs(th[:, 2])
    else:
        th = np.abs(th)
    return th


def _diagonal(m: int) -> list[int]:
    return [0, 2] if m == 3 else [0, 1]


def _zero_boundary(f: _Criterion, x: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """Set near-zero diagonal entries to exactly 0 where that is no worse (as lme4 ends)."""
    for i in _diagonal(x.shape[1]):
        z = x.copy()
        z[:, i] = 0.0
        if i == 0 and x.shape[1] == 3:
            # T's first column (0, t2): same T T' with t2 moved into t3
            z[:, 2] = np.hypot(x[:, 1], x[:, 2])
            z[:, 1] = 0.0
        fz = f(z)
        take = (fz <= fx + 1e-10 * np.abs(fx)) & (x[:, i] < 1e-4)
        x = np.where(take[:, None], z, x)
        fx = np.where(take, fz, fx)
    return x


def _satterthwaite(f: _Criterion, x: np.ndarray, r: np.ndarray, Minv: np.ndarray,
                   vcov: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Compute lmerTest's df from the Hessian of the deviance in (theta, sigma), all datasets."""
    S, m = x.shape
    sigma2 = sigma**2
    # lmerTest's steps: numDeriv's hessian (d = 0.1) for the deviance, its jacobian
    # (d = 1e-4) for vcov(beta)
    J1, Hs = richardson_batched_k(lambda t: f.values(t)[:, :2], x, d=0.1)
    J, _ = richardson_batched_k(f.values, x, second=False)
    H = np.empty((S, m + 1, m + 1))
    H[:, :m, :m] = Hs[:, 0] + Hs[:, 1] / sigma2[:, None, None]
    H[:, :m, m] = H[:, m, :m] = -2.0 * J1[:, 1, :] / sigma[:, None] ** 3
    H[:, m, m] = -2.0 * f.dfres / sigma2 + 6.0 * r / sigma2**2
    A = 2.0 * pinv_sym(H)
    var = np.diagonal(vcov, axis1=1, axis2=2)
    g_t = sigma2[:, None, None] * J[:, 2:, :]                          # (S, p, m)
    g_s = 2.0 * sigma[:, None] * np.diagonal(Minv, axis1=1, axis2=2)    # (S, p)
    g = np.concatenate([g_t, g_s[..., None]], axis=2)
    return 2.0 * var**2 / np.einsum("spi,sij,spj->sp", g, A, g)


def slope_fit(st: SlopeStats, correlated: bool, REML: bool = True) -> dict:
    """Fit every dataset of ``st``.

    Returns
    -------
    dict
        ``beta`` (S, p), ``vcov`` (S, p, p), ``df`` (S, p), ``theta`` (S, m) in
        lme4's parametrisation, ``diag`` (S, 2) the diagonal of T (for the singular
        check), ``sigma``, ``crit``, ``nobs`` and ``converged`` (S,).
    """
    m = 3 if correlated else 2
    f = _Criterion(st, correlated, REML)
    p = st.p
    with np.errstate(all="ignore"):
        x = _start(f, m, st.n_sims)
        x, fx, done = _optimise(f, x)
        x = _fold(x, correlated)
        fx = f(x)
        x, fx, done = _other_basins(f, x, fx, done)
        x = _zero_boundary(f, x, fx)
        e = f.parts(x)
        L, Li = e["L"], e["Li"]
        Li11 = Li[:, :p, :p]
        Minv = np.transpose(Li11, (0, 2, 1)) @ Li11
        beta = np.einsum("sji,sj->si", Li11, L[:, p, :p]) + st.b0
        r = L[:, p, p] ** 2
        sigma2 = r / f.dfres
        sigma = np.sqrt(sigma2)
        vcov = sigma2[:, None, None] * Minv
        df = _satterthwaite(f, x, r, Minv, vcov, sigma)
    ok = done & np.isfinite(beta).all(axis=1) & np.isfinite(vcov).all(axis=(1, 2)) & \
        np.isfinite(f(x))
    return dict(beta=beta, vcov=vcov, df=df, theta=x, diag=x[:, _diagonal(m)], sigma=sigma,
                crit=f(x), nobs=st.nobs, converged=ok)
