"""General linear mixed model by penalized least squares (lme4's algorithm).

Bates, Maechler, Bolker & Walker (2015), "Fitting Linear Mixed-Effects Models
Using lme4", JSS 67(1), section 3: for a relative covariance factor
``Lambda(theta)``, the conditional modes and fixed effects solve one penalized
least-squares problem whose Cholesky factors give the profiled REML criterion or
ML deviance in closed form; only ``theta`` is optimised numerically.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.linalg as sla
import scipy.optimize as so
import scipy.sparse as sp

from ...errors import EstimationError
from .basins import clearly_lower
from .derivatives import richardson_hessian, richardson_jacobian
from .deviance_derivatives import DevianceDerivatives
from .model_matrices import ReTerms

__all__ = ["PLS", "SparsePLS", "DENSE_MAX_Q", "weighted_rows"]

#: Above this many random effects (and with several grouping factors) the PLS system
#: is solved by :class:`SparsePLS`; below, a dense q x q Cholesky is faster.
DENSE_MAX_Q = 150

#: Number of PLS solves kept per fit, by theta.
_CACHE_SIZE = 64

#: Multiples of lme4's start theta scanned for the optimiser's start: 1 (lme4's
#: start) first, so that ties keep it, then 0 and the random-intercept batched
#: path's log grid (``random_intercept._GRID``).
_RAY_SCAN = np.concatenate([[1.0, 0.0], np.logspace(-4, 4, 41)])

#: The coarse scan of the sparse path, one full factorisation per value.
_RAY_SCAN_SPARSE = np.array([1.0, 0.0, 0.01, 0.1, 0.3, 3.0, 10.0, 100.0])

#: Values a zero diagonal theta is scanned over when checking a boundary optimum.
_BOUNDARY_SCAN = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def weighted_rows(X: np.ndarray, y: np.ndarray, re: ReTerms, weights: np.ndarray):
    """Scale the rows of ``X``, ``y`` and each random term's ``Xi`` by ``sqrt(weights)``.

    Precision weights ``w`` give residual variances ``sigma^2 / w``; multiplying every row
    by ``sqrt(w)`` turns the model into an unweighted one with the same parameters, so the
    whole PLS machinery (and Satterthwaite's and Kenward-Roger's algebra on its matrices)
    applies unchanged. Only the log-likelihood keeps a trace of the transformation: the
    Jacobian term ``-sum(log w)`` (lme4's ``ldW``), added in :meth:`PLS._crit`.
    """
    sw = np.sqrt(weights)
    terms = [replace(t, Xi=t.Xi * sw[:, None]) for t in re.terms]
    return X * sw[:, None], y * sw, ReTerms(terms)


class PLS:
    """Profiled criterion of one dataset as a function of theta.

    ``weights`` (precision weights, lme4's ``lmer(weights=)``) enter as row scalings
    (:func:`weighted_rows`); ``X``, ``y`` and ``re`` are then held weighted.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, re: ReTerms, REML: bool,
                 weights: np.ndarray | None = None):
        self.ldW = 0.0
        if weights is not None:
            X, y, re = weighted_rows(X, y, re, weights)
            self.ldW = float(np.sum(np.log(weights)))
        self.X, self.y, self.re, self.REML = X, y, re, REML
        self.n, self.p = X.shape
        n = self.n
        rows, cols, self._slices, off = [], [], [], 0
        for t in re.terms:
            for c in range(t.k):
                rows.append(np.arange(n))
                cols.append(off + t.codes * t.k + c)
            self._slices.append(slice(len(rows) - t.k, len(rows)))
            off += t.k * t.nl
        self._rows = np.concatenate(rows)
        self._cols = np.concatenate(cols)
        # Work with the OLS residual (beta shifts by b0; pwrss is unchanged) so
        # that the penalized residual sum of squares is computed without
        # cancellation against the mean of y.
        self.b0 = np.linalg.lstsq(X, y, rcond=None)[0] if self.p else np.zeros(0)
        self.y0 = y - X @ self.b0
        self.XtX = X.T @ X
        self.Xty = X.T @ self.y0
        self._sparse = None
        self._derivs = None
        self._cache: dict[bytes, dict] = {}

    @property
    def derivatives(self) -> DevianceDerivatives | None:
        """Closed-form derivatives in theta (dense q x q algebra), or None.

        None above ``DENSE_MAX_Q`` random effects, where numerical differences are used.
        """
        return self._dense() if self.re.q <= DENSE_MAX_Q else None

    def _dense(self) -> DevianceDerivatives:
        """Make (once) the dense cross products ``Z'Z``, ``Z'[y0 X]`` and derivatives."""
        if self._derivs is None:
            self._derivs = DevianceDerivatives(self)
        return self._derivs

    def criterion_derivatives(self, theta: np.ndarray, second: bool = True):
        """Closed-form gradient (and Hessian) of :meth:`criterion` at theta."""
        theta = np.asarray(theta, dtype=float)
        return self.derivatives.criterion_derivatives(theta, self.solve(theta), second)

    def ZLambda(self, theta: np.ndarray) -> sp.csr_matrix:
        """Build the sparse product ``Z Lambda(theta)`` (n x q)."""
        vals = []
        for t, T in zip(self.re.terms, self.re.T_list(theta), strict=True):
            XT = t.Xi @ T
            vals.extend(XT[:, c] for c in range(t.k))
        return sp.csr_matrix((np.concatenate(vals), (self._rows, self._cols)),
                             shape=(self.n, self.re.q))

    def _solve_blocks(self, theta: np.ndarray) -> dict:
        """Solve the PLS problem for one grouping factor.

        Lambda'Z'Z Lambda + I is block diagonal (k x k per level), so its Cholesky
        factor is a stack of small ones.
        """
        t = self.re.terms[0]
        T = self.re.T_list(theta)[0]
        k, nl = t.k, t.nl
        XT = t.Xi @ T                                              # rows of Z Lambda
        A = np.zeros((nl, k, k))
        for a in range(k):
            for b in range(a, k):
                v = np.bincount(t.codes, weights=XT[:, a] * XT[:, b], minlength=nl)
                A[:, a, b] = v
                A[:, b, a] = v
        A[:, np.arange(k), np.arange(k)] += 1.0
        L = np.linalg.cholesky(A)
        zy = np.stack([np.bincount(t.codes, weights=XT[:, a] * self.y0, minlength=nl)
                       for a in range(k)], axis=1)                # (nl, k)
        zX = np.stack([np.stack([np.bincount(t.codes, weights=XT[:, a] * self.X[:, c],
                                             minlength=nl) for c in range(self.p)], axis=1)
                       for a in range(k)], axis=1) if self.p else np.zeros((nl, k, 0))
        cu = np.linalg.solve(L, zy[..., None])[..., 0]
        RZX = np.linalg.solve(L, zX)                               # (nl, k, p)
        RZXf = RZX.reshape(nl * k, self.p)
        MX = self.XtX - RZXf.T @ RZXf
        rhs = self.Xty - RZXf.T @ cu.reshape(-1)
        RX, beta, ldRX2 = self._fixed(MX, rhs)
        u = np.linalg.solve(np.transpose(L, (0, 2, 1)),
                            (cu - RZX @ beta)[..., None])[..., 0]  # (nl, k)
        res = self.y0 - self.X @ beta - np.einsum("ij,ij->i", XT, u[t.codes])
        uf = u.reshape(-1)
        pwrss = float(res @ res + uf @ uf)
        ldL2 = 2.0 * float(np.sum(np.log(np.diagonal(L, axis1=1, axis2=2))))
        return dict(MX=MX, beta=beta + self.b0, u=uf, pwrss=pwrss, ldL2=ldL2, ldRX2=ldRX2)

    def _fixed(self, MX, rhs):
        if self.p:
            RX = sla.cholesky(MX, lower=False, check_finite=False)
            beta = sla.cho_solve((RX, False), rhs, check_finite=False)
            return RX, beta, 2.0 * np.sum(np.log(np.diag(RX)))
        return np.zeros((0, 0)), np.zeros(0), 0.0

    def solve(self, theta: np.ndarray) -> dict:
        """All PLS pieces at theta (lme4's L, RZX, RX, beta, u, pwrss).

        One dispatch: one grouping factor -> stacked k x k blocks; several with few
        random effects in all (``q <= DENSE_MAX_Q``) -> a dense Cholesky; otherwise
        the sparse block path (:class:`SparsePLS`), whose memory grows with the
        non-zeros of ``Z'Z``. The last few solves are kept by theta: lmerTest's
        derivatives in ``(theta, sigma)`` and the Newton polish's Richardson steps
        revisit the same theta many times (the pieces depend on theta only).
        Callers must not modify the returned dict.
        """
        theta = np.asarray(theta, dtype=float)
        key = theta.tobytes()
        hit = self._cache.get(key)
        if hit is None:
            hit = self._solve_uncached(theta)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = hit
        return hit

    def _solve_uncached(self, theta: np.ndarray) -> dict:
        """Dispatch one PLS solve (see :meth:`solve`)."""
        if len(self.re.terms) == 1:
            return self._solve_blocks(theta)
        if self.re.q > DENSE_MAX_Q:
            if self._sparse is None:
                self._sparse = SparsePLS(self)
            return self._sparse.solve(theta)
        return self._solve_dense(theta)

    def _solve_dense(self, theta: np.ndarray) -> dict:
        """Solve the PLS problem with a dense Cholesky factor of the q x q system.

        ``Z'Z``, ``Z'X`` and ``Z'y`` are formed once (:class:`DevianceDerivatives`),
        so an evaluation is q x q algebra plus one sparse product for the residual.
        """
        dv = self._dense()
        Lam = dv.Lambda(theta)
        A = Lam.T @ dv.ZtZ @ Lam
        A[np.diag_indices_from(A)] += 1.0
        L = sla.cholesky(A, lower=True, check_finite=False)
        R = Lam.T @ dv.ZtyX                                 # Lambda' Z' [y0 X]
        CR = sla.solve_triangular(L, R, lower=True, check_finite=False)
        cu, RZX = CR[:, 0], CR[:, 1:]
        MX = self.XtX - RZX.T @ RZX
        rhs = self.Xty - RZX.T @ cu
        RX, beta, ldRX2 = self._fixed(MX, rhs)
        u = sla.solve_triangular(L.T, cu - RZX @ beta, lower=False, check_finite=False)
        res = self.y0 - self.X @ beta - dv.Z @ (Lam @ u)
        pwrss = float(res @ res + u @ u)
        ldL2 = 2.0 * np.sum(np.log(np.diag(L)))
        return dict(L=L, cu=cu, RZX=RZX, RX=RX, MX=MX, beta=beta + self.b0, u=u, pwrss=pwrss,
                    ldL2=ldL2, ldRX2=ldRX2)

    def criterion(self, theta: np.ndarray) -> float:
        """REML criterion or ML deviance, profiled over beta and sigma."""
        try:
            s = self.solve(np.asarray(theta, dtype=float))
        except (np.linalg.LinAlgError, ValueError):
            return np.inf
        return self._crit(s)

    def _crit(self, s: dict) -> float:
        n, p = self.n, self.p
        if s["pwrss"] <= 0:
            return np.inf
        if self.REML:
            d = n - p
            return s["ldL2"] + s["ldRX2"] - self.ldW + \
                d * (1.0 + np.log(2 * np.pi * s["pwrss"] / d))
        return s["ldL2"] - self.ldW + n * (1.0 + np.log(2 * np.pi * s["pwrss"] / n))

    def dev_varpar(self, varpar: np.ndarray) -> float:
        """Unprofiled deviance at (theta, sigma), as lmerTest's devfun_vp."""
        theta, sigma2 = varpar[:-1], varpar[-1] ** 2
        s = self.solve(theta)
        dev = s["ldL2"] - self.ldW + s["pwrss"] / sigma2 + self.n * np.log(2 * np.pi * sigma2)
        if self.REML:
            dev += s["ldRX2"] - self.p * np.log(2 * np.pi * sigma2)
        return dev

    def covbeta(self, varpar: np.ndarray) -> np.ndarray:
        """sigma^2 (RX'RX)^-1 at (theta, sigma), as lmerTest's get_covbeta."""
        s = self.solve(varpar[:-1])
        return varpar[-1] ** 2 * np.linalg.inv(s["MX"])

    def optimize(self) -> np.ndarray:
        """Minimise the criterion over theta within lme4's bounds."""
        re = self.re
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in re.lower]
        f = self.criterion

        def grad(th):
            if self.derivatives is not None:
                try:
                    return self.criterion_derivatives(th, second=False)[0]
                except (np.linalg.LinAlgError, ValueError):
                    pass
            g = np.empty_like(th)
            for i in range(th.size):
                h = 1e-6 * max(1.0, abs(th[i]))
                up, dn = th.copy(), th.copy()
                up[i] += h
                dn[i] = max(dn[i] - h, re.lower[i]) if np.isfinite(re.lower[i]) else dn[i] - h
                g[i] = (f(up) - f(dn)) / (up[i] - dn[i])
            return g

        # The profiled criterion can have a local minimum away from a global
        # one on the boundary (small or unbalanced data); a scan along the ray
        # through lme4's start picks the basin. The interior basin can be
        # narrow (a few groups: theta in (1.3, 1.9) beside a boundary minimum
        # at 0 that is only 0.01 higher), so the scan is the batched path's
        # log grid (ratio 10^0.2), not a coarse one. theta = 0 is a stationary
        # point of the criterion (it depends on theta through theta^2), so a
        # local method never leaves it: start there only if it is the best
        # candidate.
        # The sparse path (many levels, where such narrow basins are not seen) keeps
        # a coarse scan: each of its evaluations is a full sparse factorisation.
        if self.derivatives is not None:
            scales = _RAY_SCAN
            vals = self.derivatives.ray_criterion(scales)
        else:
            scales = _RAY_SCAN_SPARSE
            vals = [f(s * re.theta0) for s in scales]
        best = int(np.argmin(vals))
        th = self._escape_boundary(self._local(scales[best] * re.theta0, grad, bounds), grad,
                                   bounds)
        th = self._other_basins(th, _ray_minima(scales, vals, scales[best]), grad, bounds)
        if not np.isfinite(f(th)):
            raise EstimationError("lmer: the optimiser found no finite criterion value.")
        return th

    def _local(self, start: np.ndarray, grad, bounds) -> np.ndarray:
        """Run L-BFGS-B from ``start`` within the bounds, then polish by Newton steps."""
        lower = self.re.lower
        best = so.minimize(self.criterion, start, method="L-BFGS-B", jac=grad, bounds=bounds,
                           options=dict(ftol=1e-13, gtol=1e-8, maxiter=2000))
        th = np.where(np.isfinite(lower), np.maximum(best.x, lower), best.x)
        return self._newton_polish(th)

    def _other_basins(self, th: np.ndarray, scales: np.ndarray, grad, bounds) -> np.ndarray:
        """Run the local search from each other local minimum of the ray scan.

        Keep the lowest optimum if it is clearly lower than ``th``. With a few groups
        the criterion can have a boundary minimum at theta = 0 beside a narrow interior
        basin whose scanned points all lie above the boundary value but whose minimum
        lies below it (6 rows in groups of 4, 1 and 1: 7.80091 at 0, 7.80243 at the
        scan point 2.51, 7.79598 at theta = 2.79); the batched random-intercept path
        refines its grid's local minima the same way.
        """
        f = self.criterion
        fth = f(th)
        for s in scales:
            new = self._local(s * self.re.theta0, grad, bounds)
            fn = f(new)
            if clearly_lower(fn, fth):
                th, fth = new, fn
        return th

    def _escape_boundary(self, th: np.ndarray, grad, bounds, rounds: int = 2) -> np.ndarray:
        """Leave a boundary local minimum for a clearly lower interior one.

        The criterion depends on each diagonal theta through its square, so zero is
        a stationary point in that coordinate and a local search that reaches it
        stays (a small class variance beside a large student one, say). Evaluate
        the restart points of ``_boundary_candidates``; restart from the lowest if it
        is clearly lower than the optimum found.
        """
        f = self.criterion
        fth = f(th)
        for _ in range(rounds):
            tol = 1e-9 * max(abs(fth), 1.0)
            best, start = fth - tol, None
            for t in self._boundary_candidates(th):
                fv = f(t)
                if fv < best:
                    best, start = fv, t
            if start is None:
                return th
            new = self._local(start, grad, bounds)
            fn = f(new)
            if not fn < fth - tol:
                return th
            th, fth = new, fn
        return th

    def _boundary_candidates(self, th: np.ndarray):
        """Yield restart points near a boundary optimum ``th``.

        Two kinds, for a point with a zero diagonal theta: each zero diagonal raised
        over a log grid, the others held, from the point and from the point with that
        factor column negated (the same covariance, but the off-diagonal entries'
        signs, and so the way inwards, flip); and steps along the directions of negative
        curvature of the Hessian (at theta = 0 the gradient vanishes, and the way in
        can need several coordinates at once, e.g. a perfect negative correlation).
        """
        lower = self.re.lower
        zero = np.flatnonzero((lower == 0) & (th < 1e-4))
        if zero.size == 0:
            return
        columns = _factor_columns(self.re)
        for i in zero:
            col = columns[i]
            flipped = th.copy()
            flipped[col] = -flipped[col]
            bases = (th, flipped) if np.any(th[col[1:]] != 0) else (th,)
            for base in bases:
                for v in _BOUNDARY_SCAN:
                    t = base.copy()
                    t[i] = v
                    yield t
        yield from self._curvature_candidates(th, columns)

    def _curvature_candidates(self, th: np.ndarray, columns: dict):
        """Yield steps from ``th`` along the Hessian's negative-curvature directions."""
        if self.derivatives is None:
            return
        try:
            H = self.criterion_derivatives(th)[1]
            w, V = np.linalg.eigh(0.5 * (H + H.T))
        except (np.linalg.LinAlgError, ValueError):
            return
        if not np.all(np.isfinite(w)):
            return
        tol = 1e-8 * max(np.max(np.abs(w)), 1e-12)
        for k in np.flatnonzero(w < -tol):
            for sign in (1.0, -1.0):
                for v in _BOUNDARY_SCAN:
                    t = th + sign * v * V[:, k]
                    for diag, col in columns.items():
                        if t[diag] < 0:
                            t[col] = -t[col]
                    yield t

    def _newton_polish(self, th: np.ndarray, steps: int = 4) -> np.ndarray:
        """Take Newton steps on the free coordinates.

        The criterion is flat near its minimum, so derivative-free stopping rules
        leave theta ~1e-6 off; the stationarity condition pins it down to ~1e-10.
        """
        f, lower = self.criterion, self.re.lower
        fbest = f(th)
        for _ in range(steps):
            free = ~(np.isfinite(lower) & (th <= lower + 1e-9))
            if not free.any():
                break
            idx = np.flatnonzero(free)
            def fsub(z, idx=idx, base=th):
                t = base.copy()
                t[idx] = z
                return f(t)

            z0 = th[idx]
            if self.derivatives is not None:
                try:
                    gf, Hf = self.criterion_derivatives(th)
                except (np.linalg.LinAlgError, ValueError):
                    break
                g, Hm = gf[idx], Hf[np.ix_(idx, idx)]
            else:
                g = richardson_jacobian(fsub, z0, d=1e-3, r=3)[0]
                Hm = richardson_hessian(fsub, z0, d=1e-3, r=2)
            try:
                step = -np.linalg.solve(Hm, g)
            except np.linalg.LinAlgError:
                break
            if not np.all(np.isfinite(step)) or np.any(np.linalg.eigvalsh(Hm) <= 0):
                break
            new = th.copy()
            new[idx] = z0 + step
            new = np.where(np.isfinite(lower), np.maximum(new, lower), new)
            fn = f(new)
            if not fn <= fbest + 1e-12 * abs(fbest):
                break
            done = np.max(np.abs(new - th) / np.maximum(np.abs(th), 1e-2)) < 1e-9
            th, fbest = new, min(fn, fbest)
            if done:
                break
        return th


def _ray_minima(scales: np.ndarray, vals, skip: float) -> np.ndarray:
    """Scales at the interior local minima of a ray scan, except ``skip``.

    Parameters
    ----------
    scales : ndarray
        Scanned multiples of the start theta (in any order; repeats allowed).
    vals : array_like
        Criterion at each scale.
    skip : float
        The scale already refined.

    Returns
    -------
    ndarray
        Scales ``s_j`` with ``f_j < f_{j-1}`` and ``f_j <= f_{j+1}`` along the sorted
        scan, as the batched random-intercept path picks its grid's minima.
    """
    s, first = np.unique(scales, return_index=True)
    v = np.asarray(vals, dtype=float)[first]
    v = np.where(np.isfinite(v), v, np.inf)
    inner = (v[1:-1] < v[:-2]) & (v[1:-1] <= v[2:]) & (s[1:-1] != skip)
    return s[1:-1][inner]


def _factor_columns(re: ReTerms) -> dict:
    """Map each diagonal theta's index to its factor column's theta indices (diagonal first).

    Negating a column of a term's factor leaves the covariance unchanged, so a
    point with a zero diagonal has an equivalent one with that column negated.
    """
    columns, pos = {}, 0
    for t in re.terms:
        for j in range(t.k):
            columns[pos] = np.arange(pos, pos + t.k - j)
            pos += t.k - j
    return columns


def _diagonal(v: np.ndarray) -> sp.csr_matrix:
    """Build a diagonal CSR matrix (as ``sp.diags(v, format="csr")``, at less cost)."""
    idx = np.arange(v.size + 1, dtype=np.int32)
    return sp.csr_matrix((v, idx[:-1], idx), shape=(v.size, v.size))


class SparsePLS:
    """PLS solves on the sparse system ``Lambda' Z'Z Lambda + I``, ordered by blocks.

    lme4 factors this system with CHOLMOD after a fill-reducing ordering. Its
    structure makes a simpler factorisation just as good: the first term (the
    grouping factor with most levels, as lme4 orders them) gives a block-diagonal
    leading part ``A11`` of ``k1 x k1`` blocks, one per level, so eliminating it first
    creates no fill inside it and leaves a Schur complement
    ``S = A22 - A21 A11^-1 A12`` of the size of the remaining terms only, which is
    factored densely. That ordering (largest factor first, then the rest) is
    itself the fill-reducing choice here, computed once. Everything that does not
    depend on theta (``Z``, ``Z'Z``, ``Z'y``, ``Z'X``, the index arrays that cut
    ``Z'Z`` into its blocks) is built once per fit; an evaluation touches only
    ``nnz(Z'Z)`` values plus one sparse product with ``Z`` for the residual.
    Memory is ``O(nnz(Z) + nnz(Z'Z) + q2^2)`` with ``q2`` the random effects outside
    the first term -- never rows x random effects.
    """

    def __init__(self, pls: PLS):
        self.pls = pls
        re = pls.re
        n = pls.n
        vals = np.concatenate([t.Xi[:, c] for t in re.terms for c in range(t.k)])
        self.Z = sp.csr_matrix((vals, (pls._rows, pls._cols)), shape=(n, re.q))
        ZtZ = (self.Z.T @ self.Z).tocsr()
        ZtZ.sum_duplicates()
        ZtZ.sort_indices()
        self.ZtZ = ZtZ
        t1 = re.terms[0]
        self.k1, self.nl1 = t1.k, t1.nl
        self.q1 = t1.k * t1.nl
        self.Zty = np.asarray(self.Z.T @ pls.y0).reshape(-1)
        self.ZtX = np.asarray(self.Z.T @ pls.X) if pls.p else np.zeros((re.q, 0))
        # Column layout of Lambda: term blocks of k x k per level.
        rows, cols, self._lam_pos = [], [], []
        off, pos = 0, 0
        for t in re.terms:
            k = t.k
            ii, jj = np.tril_indices(k)
            order = np.lexsort((ii, jj))             # column-major, as theta
            ii, jj = ii[order], jj[order]
            base = off + np.arange(t.nl) * k
            rows.append((base[:, None] + ii[None, :]).reshape(-1))
            cols.append((base[:, None] + jj[None, :]).reshape(-1))
            self._lam_pos.append((pos, ii.size, t.nl))
            pos += ii.size
            off += k * t.nl
        self._lam_rows = np.concatenate(rows)
        self._lam_cols = np.concatenate(cols)
        self._diagonal = None
        if all(t.k == 1 for t in re.terms):
            self._diagonal = self._diagonal_layout()

    def _diagonal_layout(self) -> dict:
        """Blocks of ``Z'Z`` cut once for a diagonal Lambda (scalar random effects only).

        Then ``A = Lambda Z'Z Lambda + I`` is ``Z'Z`` with entry (i, j) scaled by
        ``lambda_i lambda_j``: an evaluation rescales these fixed blocks instead of
        forming and slicing sparse products.
        """
        q1 = self.q1
        col_theta = np.concatenate([np.full(t.nl, i) for i, t in enumerate(self.pls.re.terms)])
        Z21 = self.ZtZ[q1:, :q1].tocsr()
        Z21.sort_indices()
        rows21 = np.repeat(np.arange(Z21.shape[0]), np.diff(Z21.indptr))
        return dict(col_theta=col_theta, d11=self.ZtZ.diagonal()[:q1].copy(), Z21=Z21,
                    rows21=rows21, Z22=self.ZtZ[q1:, q1:].toarray())

    def _factor_diagonal(self, theta: np.ndarray):
        """:meth:`_factor` for a diagonal Lambda, by rescaling the fixed blocks."""
        lay, q1 = self._diagonal, self.q1
        lam = np.asarray(theta, dtype=float)[lay["col_theta"]]
        l1, l2 = lam[:q1], lam[q1:]
        d = l1 * l1 * lay["d11"] + 1.0
        inv11 = 1.0 / d
        Z21 = lay["Z21"]
        vals = Z21.data * l2[lay["rows21"]] * l1[Z21.indices]
        A21 = sp.csr_matrix((vals, Z21.indices, Z21.indptr), shape=Z21.shape)
        M = sp.csr_matrix((vals * inv11[Z21.indices], Z21.indices, Z21.indptr),
                          shape=Z21.shape)                            # A21 A11^-1
        S = l2[:, None] * lay["Z22"] * l2[None, :] - (M @ A21.T).toarray()
        S[np.diag_indices_from(S)] += 1.0
        LS = sla.cholesky(S, lower=True, check_finite=False)
        ldL2 = np.sum(np.log(d)) + 2.0 * np.sum(np.log(np.diag(LS)))
        return _diagonal(lam), A21, _diagonal(inv11), M, LS, ldL2

    def Lambda(self, theta: np.ndarray) -> sp.csr_matrix:
        """Build the sparse relative covariance factor ``Lambda(theta)`` (q x q)."""
        vals = np.concatenate([np.tile(theta[p:p + m], nl) for p, m, nl in self._lam_pos])
        q = self.pls.re.q
        return sp.csr_matrix((vals, (self._lam_rows, self._lam_cols)), shape=(q, q))

    def _factor(self, theta: np.ndarray):
        """Block factorisation of ``A = Lambda' Z'Z Lambda + I``."""
        if self._diagonal is not None:
            return self._factor_diagonal(theta)
        q1, k1, nl1 = self.q1, self.k1, self.nl1
        Lam = self.Lambda(theta)
        A = (Lam.T @ self.ZtZ @ Lam).tocsr()
        A11 = A[:q1, :q1]
        A21 = A[q1:, :q1].tocsr()
        A22 = A[q1:, q1:].toarray()
        A22[np.diag_indices_from(A22)] += 1.0
        if k1 == 1:
            d = A11.diagonal() + 1.0
            blocks = d.reshape(nl1, 1, 1)
        else:
            blocks = A11.tobsr(blocksize=(k1, k1)).toarray().reshape(
                nl1, k1, nl1, k1)[np.arange(nl1), :, np.arange(nl1), :]
            blocks = blocks + np.eye(k1)
        L11 = np.linalg.cholesky(blocks)
        inv11 = np.linalg.inv(blocks)
        B = sp.bsr_matrix((inv11, np.arange(nl1), np.arange(nl1 + 1)), shape=(q1, q1))
        M = (A21 @ B).tocsr()                       # A21 A11^-1
        S = A22 - np.asarray((M @ A21.T).todense())
        LS = sla.cholesky(S, lower=True, check_finite=False)
        ldL2 = 2.0 * (np.sum(np.log(np.diagonal(L11, axis1=1, axis2=2)))
                      + np.sum(np.log(np.diag(LS))))
        return Lam, A21, B, M, LS, ldL2

    @staticmethod
    def _apply_inverse(parts, R: np.ndarray) -> np.ndarray:
        """Solve ``A W = R`` with the block factorisation."""
        _, A21, B, M, LS, _ = parts
        q1 = B.shape[0]
        R1, R2 = R[:q1], R[q1:]
        W2 = sla.cho_solve((LS, True), R2 - M @ R1, check_finite=False)
        W1 = B @ (R1 - A21.T @ W2)
        return np.concatenate([W1, W2], axis=0)

    def solve(self, theta: np.ndarray) -> dict:
        """PLS solution at ``theta``: beta, u, pwrss and the two log-determinants."""
        pls = self.pls
        parts = self._factor(theta)
        Lam, ldL2 = parts[0], parts[5]
        R = Lam.T @ np.column_stack([self.Zty, self.ZtX])     # Lambda' Z' [y0, X]
        W = self._apply_inverse(parts, R)
        wy, WX, RX_ = W[:, 0], W[:, 1:], R[:, 1:]
        MX = pls.XtX - RX_.T @ WX
        MX = (MX + MX.T) / 2
        rhs = pls.Xty - RX_.T @ wy
        _, beta, ldRX2 = pls._fixed(MX, rhs)
        u = wy - WX @ beta
        res = pls.y0 - pls.X @ beta - self.Z @ (Lam @ u)
        pwrss = float(res @ res + u @ u)
        return dict(MX=MX, beta=beta + pls.b0, u=u, pwrss=pwrss, ldL2=float(ldL2),
                    ldRX2=ldRX2)
