"""Generalized linear mixed models by penalized iteratively reweighted least squares.

lme4's algorithm (Bates et al. 2015, JSS 67(1); lme4's ``glmer``, ``pwrssUpdate``,
``glmerLaplace`` and ``glmerAGQ``):

* for fixed ``theta`` (relative covariance factor) and ``beta``, PIRLS finds the
  conditional modes ``u`` minimising the penalized deviance
  ``sum(dev_resid(y, mu)) + |u|^2`` with ``eta = X beta + offset + Z Lambda u``;
* the Laplace approximation of ``-2 log L`` is ``log|L|^2 + |u|^2 + aic(y, mu)``
  where ``L L' = Lambda'Z'WZ Lambda + I`` at the mode (``W`` the IRLS weights) and
  ``aic`` is the family's ``-2 sum(log density)``;
* adaptive Gauss-Hermite quadrature (one scalar random effect) integrates each
  group's contribution on nodes centred at the mode, scaled by ``1 / L_jj``, and
  (as lme4) uses the deviance residuals, so the saturated model's log-likelihood
  is not part of the criterion;
* the optimisation has two stages: theta alone with beta inside PIRLS
  (``nAGQ = 0``), then ``(theta, beta)`` jointly with PIRLS over ``u`` only.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.optimize as so
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import stats

from ...errors import EstimationError
from .basins import clearly_lower, grid_local_minima
from .families import Family
from .pls import PLS

__all__ = ["GLMM", "gh_rule", "conv_messages", "deriv12_parts", "stage1_scalar", "THETA_GRID",
           "BOUNDARY_THETA"]


def gh_rule(n: int) -> np.ndarray:
    """Gauss-Hermite rule for the standard normal: columns z, w (sum 1), log phi(z)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    # Symmetrise as lme4's GHrule does, so that the rule is exactly even.
    z = (z - z[::-1]) / 2
    w = (w + w[::-1]) / 2
    w = w / w.sum()
    return np.column_stack([z, w, stats.norm.logpdf(z)])


# Above this many random effects the PIRLS systems are factorised sparse (crossed
# and observation-level intercepts give thousands of mostly empty columns).
SPARSE_Q = 100


class SparseFactor:
    """Sparse LU of a symmetric positive definite matrix, with its log-determinant.

    SuperLU with a symmetric fill-reducing ordering and no pivoting away from the
    diagonal: on a positive definite matrix this is a Cholesky factorisation in
    disguise, so ``log|A|`` is the sum of the logs of U's diagonal.
    """

    ndim = 0

    def __init__(self, A):
        self._lu = spla.splu(sp.csc_matrix(A), permc_spec="MMD_AT_PLUS_A",
                             diag_pivot_thresh=0.0, options=dict(SymmetricMode=True))

    def solve(self, b):
        """Solve ``A x = b`` (b a vector or a matrix)."""
        return self._lu.solve(np.asarray(b, dtype=float))

    def logdet(self) -> float:
        """``log|A|``."""
        return float(np.sum(np.log(np.abs(self._lu.U.diagonal()))))


class GramPattern:
    """``Lambda'Z'WZ Lambda + I`` from a fixed sparsity pattern, without sparse algebra.

    ``Z Lambda`` has the same non-zero layout at every theta (``K`` entries a row),
    so every product of two entries of a row lands in a fixed slot of the Gram
    matrix: the slots are found once, then each evaluation is one weighted
    ``bincount``. Small systems are then factorised dense, large ones sparse.

    Parameters
    ----------
    ZL : scipy.sparse.csr_matrix
        ``Z Lambda`` at any theta (only its layout is used).
    """

    def __init__(self, ZL):
        n, q = ZL.shape
        self.n, self.q = n, q
        self.K = ZL.nnz // n if n else 0
        self.indices = ZL.indices.copy()
        self.indptr = ZL.indptr.copy()
        cols = self.indices.reshape(n, self.K)
        a, b = np.meshgrid(np.arange(self.K), np.arange(self.K), indexing="ij")
        a, b = a.ravel(), b.ravel()
        # column-major keys, so that the sorted unique keys are in CSC order
        keys = np.concatenate([(cols[:, b] * q + cols[:, a]).ravel(),
                               np.arange(q) * (q + 1)])
        uniq, pos = np.unique(keys, return_inverse=True)
        self._pos = pos
        self._pairs = (a, b)
        self._rows_csc = uniq % q
        self._indptr_csc = np.r_[0, np.cumsum(np.bincount(uniq // q, minlength=q))]
        self._nnz = uniq.size
        self.dense = q <= 300 or self._nnz > 0.1 * q * q

    def usable(self, ZL) -> bool:
        """Is ``ZL`` laid out as the pattern was built for."""
        return (self.K > 0 and ZL.nnz == self.n * self.K
                and np.array_equal(ZL.indptr, self.indptr)
                and np.array_equal(ZL.indices, self.indices))

    def factor(self, ZL, w):
        """Cholesky factor (dense, lower) or :class:`SparseFactor` of the Gram matrix."""
        V = ZL.data.reshape(self.n, self.K)
        a, b = self._pairs
        prod = (w[:, None] * V[:, a] * V[:, b]).ravel()    # rows, then pairs
        data = np.bincount(self._pos, weights=np.r_[prod, np.ones(self.q)],
                           minlength=self._nnz)
        if self.dense:
            A = np.zeros((self.q, self.q))
            cols = np.repeat(np.arange(self.q), np.diff(self._indptr_csc))
            A[self._rows_csc, cols] = data
            return sla.cholesky(A, lower=True, check_finite=False)
        return SparseFactor(sp.csc_matrix((data, self._rows_csc, self._indptr_csc),
                                          shape=(self.q, self.q)))


def _solve_normal(A, w, pen, rhs):
    """Solve ``(A' W A + diag(pen)) x = rhs`` for a dense or sparse ``A``."""
    if sp.issparse(A):
        M = (A.T @ A.multiply(w[:, None])).tocsc() + sp.diags(pen, format="csc")
        return SparseFactor(M).solve(rhs)
    M = A.T @ (A * w[:, None])
    M[np.diag_indices_from(M)] += pen
    return sla.solve(M, rhs, assume_a="pos", check_finite=False)


THETA_GRID = np.array([0.0, 0.05, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0])

#: A scalar random effect whose optimiser stops below this theta is fitted on the
#: boundary (theta = 0), where the criterion's minimum is in theta.
BOUNDARY_THETA = 1e-3


def stage1_scalar(f) -> float:
    """Minimise a criterion of one theta >= 0: best grid point, then bounded Brent.

    Every other local minimum of the grid is refined too, and kept when its
    criterion is clearly lower: on small data a boundary minimum at theta = 0 can
    hide a lower interior basin (as in the batched path's ``_other_basins``).
    """
    vals = np.array([f(t) for t in THETA_GRID])
    i = int(np.argmin(vals))
    t, ft = _refine_grid_point(f, vals, i)
    for j in np.flatnonzero(grid_local_minima(vals[None, :], vals.shape)[0]):
        if j != i:
            tj, fj = _refine_grid_point(f, vals, int(j))
            if clearly_lower(fj, ft):
                t, ft = tj, fj
    f(t)   # leave the warm-started state at the optimum
    return t


def _refine_grid_point(f, vals: np.ndarray, i: int) -> tuple[float, float]:
    """Bounded Brent between grid point ``i``'s neighbours; the point and its criterion."""
    lo, hi = THETA_GRID[max(i - 1, 0)], THETA_GRID[min(i + 1, THETA_GRID.size - 1)]
    if i == 0:
        hi = THETA_GRID[1]
    r = so.minimize_scalar(f, bounds=(lo, hi), method="bounded",
                           options=dict(xatol=1e-10, maxiter=200))
    if r.fun <= vals[i]:
        return float(r.x), float(r.fun)
    return float(THETA_GRID[i]), float(vals[i])


def deriv12_parts(fparts, x: np.ndarray, delta: float = 1e-4):
    """lme4's deriv12 (central differences, step ``delta``) of a criterion given by summands.

    ``fparts(x)`` returns the criterion's summands (same layout at every x); the
    differences are taken summand by summand and then summed, which is the same
    number as differencing the sums but without their rounding (criteria of ~1e3
    whose differences, ~1e-8, carry the Hessian).
    """
    nx = x.size
    f0 = fparts(x)

    def comb(*pairs):
        arrs = [a for _, a in pairs]
        if any(a.shape != f0.shape for a in arrs) or not np.isfinite(f0).all():
            return np.nan
        return float(np.sum(sum(c * a for c, a in pairs)))

    def at(di, dj, i, j):
        t = x.copy()
        t[i] += di
        t[j] += dj
        return fparts(t)

    H = np.empty((nx, nx))
    g = np.empty(nx)
    for j in range(nx):
        fa, fs = at(delta, 0.0, j, j), at(-delta, 0.0, j, j)
        H[j, j] = comb((1, fa), (-2, f0), (1, fs)) / delta**2
        g[j] = comb((1, fa), (-1, fs)) / (2 * delta)
        for i in range(j):
            H[i, j] = H[j, i] = comb((1, at(delta, delta, i, j)), (-1, at(delta, -delta, i, j)),
                                     (-1, at(-delta, delta, i, j)),
                                     (1, at(-delta, -delta, i, j))) / (4 * delta**2)
    return g, H


def conv_messages(g, H, ntheta: int, tol_grad: float = 2e-3, tol_hess: float = 1e-6):
    """lme4's checkConv warnings from the deriv12 gradient and Hessian at the optimum."""
    msgs = []
    try:
        R = np.linalg.cholesky(H).T
        scgrad = sla.solve_triangular(R, g, trans="T", lower=False)
    except np.linalg.LinAlgError:
        scgrad = None
    if scgrad is None or not np.all(np.isfinite(scgrad)):
        msgs.append("unable to evaluate scaled gradient")
    else:
        mingrad = np.minimum(np.abs(scgrad), np.abs(g))
        if mingrad.max() > tol_grad:
            msgs.append(f"Model failed to converge with max|grad| = {mingrad.max():g} "
                        f"(tol = {tol_grad:g}, component {int(np.argmax(mingrad)) + 1})")
    for M, label in ((H[ntheta:, ntheta:], "fixed-effect "), (H, "")):
        if M.size == 0:
            continue
        try:
            ev = np.linalg.eigvalsh(M)
        except np.linalg.LinAlgError:
            msgs.append("Problem with Hessian check (infinite or missing values?)")
            continue
        neg = int(np.sum(ev < -tol_hess))
        if neg:
            msgs.append(f"Model failed to converge: degenerate {label}Hessian with {neg} "
                        "negative eigenvalues")
        elif np.any(np.abs(ev) < tol_hess) or ev.min() <= 0:
            msgs.append(f"{label}Hessian is numerically singular: parameters are not "
                        "uniquely determined".strip())
        else:
            if ev.max() * tol_hess > 1:
                msgs.append("Model is nearly unidentifiable: very large eigenvalue"
                            "\n - Rescale variables?")
            if ev.min() / ev.max() < tol_hess:
                msgs.append("Model is nearly unidentifiable: large eigenvalue ratio"
                            "\n - Rescale variables?")
    return msgs


class GLMM:
    """One dataset's GLMM: the PIRLS pieces and the deviance functions of lme4.

    Parameters
    ----------
    X, y, wt, offset : ndarray
        Fixed-effects matrix, response (a proportion for binomial), prior
        weights (binomial trials) and offset.
    re : ReTerms
        Random-effect terms (from :func:`.model_matrices.build_reterms`).
    fam : Family
    """

    def __init__(self, X, y, wt, offset, re, fam: Family, stack=None):
        self.X, self.y, self.wt, self.offset, self.re, self.fam = X, y, wt, offset, re, fam
        # One random intercept: the stage-two criterion is evaluated by the batched
        # path's code on this one-simulation stack (a random_intercept_glmm.Stacked),
        # so that both paths take deriv12's differences of the same numbers.
        self.stack = stack
        self.n, self.p = X.shape
        self.q = re.q
        self._pls = PLS(X, y, re, False)   # only for its sparse Z Lambda layout
        self._scalar1 = len(re.terms) == 1 and re.terms[0].k == 1
        self._zl_template = self._zl_layout()
        self._gram = None if self._scalar1 else GramPattern(self._ZL(re.theta0))
        # Terms of the penalized deviance and of the Laplace criterion free of mu,
        # summed once: evaluations then need only the log-likelihood at mu.
        self._sat = float(np.sum(fam.loglik_saturated(y, wt)))
        self._norm = float(np.sum(fam.log_norm(y, wt)))
        self.u = np.zeros(self.q)
        self.beta = np.zeros(self.p)
        self.lp0 = np.zeros(self.n)
        self.w_rx = None      # nAGQ = 0: the weights lme4's RX belongs to

    # ------------------------------------------------------------------ PIRLS
    def _zl_values(self, theta):
        """Non-zeros of ``Z Lambda`` in the row-and-column order of the layout."""
        vals = []
        for t, T in zip(self.re.terms, self.re.T_list(theta), strict=True):
            XT = t.Xi @ T
            vals.extend(XT[:, c] for c in range(t.k))
        return np.concatenate(vals)

    def _zl_layout(self):
        """``Z Lambda``'s CSR layout and where each non-zero goes (None if unusable).

        Building the sparse matrix from coordinates at every evaluation costs more
        than the PIRLS step, and its layout does not change with theta. The layout
        is checked against :meth:`.PLS.ZLambda` at a test point.
        """
        rows, cols, off = [], [], 0
        for t in self.re.terms:
            for c in range(t.k):
                rows.append(np.arange(self.n))
                cols.append(off + t.codes * t.k + c)
            off += t.k * t.nl
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        order = sp.csr_matrix((np.arange(1.0, rows.size + 1), (rows, cols)),
                              shape=(self.n, self.q))
        if order.nnz != rows.size:
            return None
        layout = (order.indices, order.indptr, order.data.astype(np.intp) - 1)
        theta = 0.5 + np.arange(self.re.theta0.size, dtype=float)
        diff = self._zl_fast(theta, layout) - self._pls.ZLambda(theta)
        return layout if diff.nnz == 0 or np.max(np.abs(diff.data)) == 0 else None

    def _zl_fast(self, theta, layout):
        indices, indptr, perm = layout
        return sp.csr_matrix((self._zl_values(theta)[perm], indices, indptr),
                             shape=(self.n, self.q))

    def _ZL(self, theta):
        if self._zl_template is None:
            return self._pls.ZLambda(theta)
        return self._zl_fast(np.asarray(theta, dtype=float), self._zl_template)

    def _weights(self, eta):
        mu = self.fam.linkinv(eta)
        me = self.fam.mu_eta(eta)
        w = self.wt * me**2 / self.fam.variance(mu)
        return mu, me, w

    def _chol(self, ZL, w):
        """Cholesky factor of Lambda'Z'WZ Lambda + I (diagonal when one scalar term)."""
        if self._scalar1:
            t = self.re.terms[0]
            zl = np.asarray(ZL.sum(axis=1)).ravel()    # one entry per row
            d = 1.0 + np.bincount(t.codes, weights=w * zl**2, minlength=t.nl)
            return np.sqrt(d)
        if self._gram is not None and self._gram.usable(ZL):
            return self._gram.factor(ZL, w)
        if self.q > SPARSE_Q:
            return SparseFactor((ZL.T @ ZL.multiply(w[:, None])).tocsc()
                                + sp.identity(self.q, format="csc"))
        A = (ZL.T @ ZL.multiply(w[:, None])).toarray()
        A[np.diag_indices_from(A)] += 1.0
        return sla.cholesky(A, lower=True, check_finite=False)

    def _solveL(self, L, b):
        if isinstance(L, SparseFactor):
            return L.solve(b)
        if L.ndim == 1:
            return b / (L**2 if b.ndim == 1 else L[:, None] ** 2)
        return sla.cho_solve((L, True), b, check_finite=False)

    def _ldL2(self, L):
        if isinstance(L, SparseFactor):
            return L.logdet()
        return 2.0 * float(np.sum(np.log(L if L.ndim == 1 else np.diag(L))))

    def pdev(self, eta, u):
        """Penalized deviance: deviance residuals plus ``|u|^2``."""
        ll = float(np.sum(self.fam.loglik(self.y, self.fam.linkinv(eta), self.wt)))
        return 2.0 * (self._sat - ll) + float(u @ u)

    def pirls_u(self, theta, beta, u0=None, tol=1e-12, maxit=200):
        """Conditional modes for fixed (theta, beta). Returns (u, eta, L)."""
        ZL = self._ZL(theta)
        fixed = self.X @ beta + self.offset
        u = self.u.copy() if u0 is None else u0.copy()
        eta = fixed + ZL @ u
        pd0 = self.pdev(eta, u)
        for _ in range(maxit):
            mu, me, w = self._weights(eta)
            L = self._chol(ZL, w)
            z = eta - fixed + (self.y - mu) / me
            unew = self._solveL(L, ZL.T @ (w * z))
            step = unew - u
            fac = 1.0
            while True:
                uc = u + fac * step
                etac = fixed + ZL @ uc
                pd1 = self.pdev(etac, uc)
                if pd1 <= pd0 + 1e-12 * abs(pd0) or fac < 1e-3:
                    break
                fac /= 2
            done = abs(pd0 - pd1) <= tol * (abs(pd1) + 1e-3) and \
                np.max(np.abs(uc - u), initial=0) < 1e-9
            u, eta, pd0 = uc, etac, pd1
            if done:
                break
        else:
            raise EstimationError("glmer: PIRLS did not converge.")
        _, _, w = self._weights(eta)
        L = self._chol(ZL, w)
        return u, eta, L, ZL, w

    def pirls_lme4(self, theta, beta, lp0, tol=1e-7, maxit=100):
        """lme4's pwrssUpdate over u, replayed step by step.

        Every evaluation starts from the weights at ``lp0`` (the linear predictor
        after the first stage) and stops when the relative change of the
        penalized deviance is below ``tol``; the Cholesky factor then belongs to
        the weights of the iterate before the last. The Laplace criterion lme4
        optimises is evaluated at that state, which differs from the exact
        Laplace approximation by up to ~1e-4, so it is replayed here.
        """
        ZL = self._ZL(theta)
        fixed = self.X @ beta + self.offset
        eta = self.offset + lp0
        mu = self.fam.linkinv(eta)
        oldpdev = np.inf
        u_old = np.zeros(self.q)
        for _ in range(maxit):
            me = self.fam.mu_eta(eta)
            w = self.wt * me**2 / self.fam.variance(mu)
            L = self._chol(ZL, w)
            z = eta - fixed + (self.y - mu) / me
            u = self._solveL(L, ZL.T @ (w * z))
            eta = fixed + ZL @ u
            mu = self.fam.linkinv(eta)
            pdev = self.pdev(eta, u)
            if abs((oldpdev - pdev) / pdev) < tol:
                return u, eta, L, ZL
            k = 0
            while (not np.isfinite(pdev) or pdev > oldpdev) and k < 20:
                u = (u_old + u) / 2
                eta = fixed + ZL @ u
                mu = self.fam.linkinv(eta)
                pdev = self.pdev(eta, u)
                k += 1
            if not np.isfinite(pdev) or pdev - oldpdev > tol:
                raise EstimationError("glmer: PIRLS step-halvings failed to reduce the "
                                      "deviance.")
            oldpdev, u_old = pdev, u
        raise EstimationError("glmer: PIRLS did not converge.")

    def _joint(self, ZL):
        """``[Z Lambda, X]``, sparse when there are many random effects."""
        if self.q > SPARSE_Q:
            return sp.hstack([ZL, sp.csr_matrix(self.X)], format="csr")
        return np.hstack([ZL.toarray(), self.X])

    def pirls_ub_lme4(self, theta, lp0, tol=1e-7, maxit=100):
        """lme4's joint (u, beta) pwrssUpdate replayed (the nAGQ = 0 criterion).

        Returns u, beta, eta, the Cholesky factor and the weights it was built
        from (those of the iterate before the last, as in lme4).
        """
        ZL = self._ZL(theta)
        q = self.q
        A = self._joint(ZL)
        pen = np.r_[np.ones(q), np.zeros(self.p)]
        eta = self.offset + lp0
        mu = self.fam.linkinv(eta)
        oldpdev, par_old = np.inf, np.zeros(q + self.p)
        for _ in range(maxit):
            me = self.fam.mu_eta(eta)
            w = self.wt * me**2 / self.fam.variance(mu)
            z = eta - self.offset + (self.y - mu) / me
            par = _solve_normal(A, w, pen, A.T @ (w * z))
            eta = A @ par + self.offset
            mu = self.fam.linkinv(eta)
            pdev = self.pdev(eta, par[:q])
            if abs((oldpdev - pdev) / pdev) < tol:
                return par[:q], par[q:], eta, self._chol(ZL, w), w
            k = 0
            while (not np.isfinite(pdev) or pdev > oldpdev) and k < 20:
                par = (par_old + par) / 2
                eta = A @ par + self.offset
                mu = self.fam.linkinv(eta)
                pdev = self.pdev(eta, par[:q])
                k += 1
            if not np.isfinite(pdev) or pdev - oldpdev > tol:
                raise EstimationError("glmer: PIRLS step-halvings failed to reduce the "
                                      "deviance.")
            oldpdev, par_old = pdev, par
        raise EstimationError("glmer: pwrssUpdate did not converge in (maxit) iterations.")

    def pirls_ub(self, theta, tol=1e-12, maxit=200):
        """Conditional modes and beta together (lme4's nAGQ = 0 step)."""
        ZL = self._ZL(theta)
        A = self._joint(ZL)
        q = self.q
        pen = np.r_[np.ones(q), np.zeros(self.p)]
        par = np.r_[self.u, self.beta]
        eta = A @ par + self.offset
        pd0 = self.pdev(eta, par[:q])
        for _ in range(maxit):
            mu, me, w = self._weights(eta)
            z = eta - self.offset + (self.y - mu) / me
            new = _solve_normal(A, w, pen, A.T @ (w * z))
            step, fac = new - par, 1.0
            while True:
                pc = par + fac * step
                etac = A @ pc + self.offset
                pd1 = self.pdev(etac, pc[:q])
                if pd1 <= pd0 + 1e-12 * abs(pd0) or fac < 1e-3:
                    break
                fac /= 2
            done = abs(pd0 - pd1) <= tol * (abs(pd1) + 1e-3)
            par, eta, pd0 = pc, etac, pd1
            if done:
                break
        else:
            raise EstimationError("glmer: PIRLS did not converge.")
        return par[:q], par[q:], eta

    # ------------------------------------------------------------- criteria
    def laplace(self, u, eta, L):
        """Evaluate the Laplace approximation of ``-2 log L`` at the conditional modes."""
        ll = float(np.sum(self.fam.loglik(self.y, self.fam.linkinv(eta), self.wt)))
        return self._ldL2(L) + float(u @ u) - 2.0 * (self._norm + ll)

    def laplace_parts(self, u, eta, L):
        """Return the Laplace criterion's summands, less the constant ``-2 norm``.

        Per random effect (``2 log L_jj + u_j^2`` for one scalar term) and per row
        (``-2 loglik``): their second differences, summed, give deriv12's Hessian
        without the rounding of two criteria of ~1e3 that differ by ~1e-8.
        """
        ll = self.fam.loglik(self.y, self.fam.linkinv(eta), self.wt)
        head = 2 * np.log(L) + u * u if (not isinstance(L, SparseFactor) and L.ndim == 1) \
            else np.r_[self._ldL2(L), u * u]
        return np.r_[head, -2.0 * ll]

    def agq(self, u, eta, L, ZL, rule):
        """lme4's glmerAGQ for one scalar term."""
        return float(np.sum(self.agq_parts(u, eta, L, ZL, rule)))

    def agq_parts(self, u, eta, L, ZL, rule):
        """lme4's glmerAGQ criterion per group (its summands)."""
        codes = self.re.terms[0].codes
        nl = self.re.terms[0].nl
        zl = np.asarray(ZL.sum(axis=1)).ravel()     # Z Lambda has one entry per row

        def devc(uu, ee):
            dr = self.fam.dev_resid(self.y, self.fam.linkinv(ee), self.wt)
            return uu**2 + np.bincount(codes, weights=dr, minlength=nl)

        devc0 = devc(u, eta)
        sd = 1.0 / L
        mult = np.zeros(nl)
        for z, w, ld in rule:
            if z == 0:
                mult += w
                continue
            du = z * sd
            d = devc(u + du, eta + zl * du[codes])
            mult += np.exp(-0.5 * (d - devc0) - ld) * w / np.sqrt(2 * np.pi)
        return devc0 + 2 * np.log(L) - 2 * np.log(mult)

    def dev0(self, theta):
        """Stage-one criterion of theta (beta inside PIRLS)."""
        if self.stack is not None:
            theta = np.asarray(theta, dtype=float).reshape(1)
            u, beta, _, val = self.stack.stage0(theta, self.beta[None, :], self.u)
            if not (np.isfinite(val[0]) and np.all(np.isfinite(beta))):
                return np.inf
            self.u, self.beta = u, beta[0]
            return float(val[0])
        try:
            u, beta, eta = self.pirls_ub(np.asarray(theta, dtype=float))
        except (EstimationError, np.linalg.LinAlgError, ValueError):
            return np.inf
        self.u, self.beta = u, beta
        _, _, w = self._weights(eta)
        L = self._chol(self._ZL(theta), w)
        return self.laplace(u, eta, L)

    def dev(self, par, rule=None):
        """Stage-two criterion of (theta, beta): Laplace, or AGQ with ``rule``."""
        if self.stack is not None:
            val = self.stack.criterion(par[None, :], self.lp0[self.stack.cell_rows], rule)[0]
            return float(val) if np.isfinite(val) else np.inf
        nt = self.re.theta0.size
        theta, beta = par[:nt], par[nt:]
        try:
            u, eta, L, ZL = self.pirls_lme4(theta, beta, self.lp0)
        except (EstimationError, np.linalg.LinAlgError, ValueError, FloatingPointError):
            return np.inf
        self.u = u
        val = self.laplace(u, eta, L) if rule is None else self.agq(u, eta, L, ZL, rule)
        return val if np.isfinite(val) else np.inf

    def dev_parts(self, par, rule=None):
        """:meth:`dev`'s summands (see :meth:`laplace_parts`); all inf where it fails."""
        if self.stack is not None:
            return self.stack.criterion_groups(par[None, :], self.lp0[self.stack.cell_rows],
                                               rule)
        nt = self.re.theta0.size
        theta, beta = par[:nt], par[nt:]
        try:
            u, eta, L, ZL = self.pirls_lme4(theta, beta, self.lp0)
        except (EstimationError, np.linalg.LinAlgError, ValueError, FloatingPointError):
            return np.array([np.inf])
        self.u = u
        val = self.laplace_parts(u, eta, L) if rule is None else \
            self.agq_parts(u, eta, L, ZL, rule)
        return val if np.all(np.isfinite(val)) else np.array([np.inf])

    # ----------------------------------------------------------- optimiser
    def fit(self, nAGQ: int = 1):
        """Two-stage optimisation.

        Returns ``(par, criterion, H, g)`` with ``par = (theta, beta)`` and ``H``, ``g``
        the deriv12 Hessian and gradient of the criterion at ``par`` (None for nAGQ = 0, where lme4
        computes none).
        """
        re = self.re
        lower = re.lower
        # lme4 starts with a joint PIRLS at theta0 from R's mustart and stops if it
        # does not converge (complete separation, for one).
        eta0 = self.fam.linkfun(self.fam.mustart(self.y, self.wt))
        self.pirls_ub_lme4(re.theta0, eta0 - self.offset)
        self.u[:] = 0
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
        f0 = self.dev0
        if re.theta0.size == 1:
            # One theta: bracket on a grid, then Brent to 1e-10 (the stage-two
            # criterion depends on where stage one stops, through lp0).
            theta = np.array([stage1_scalar(lambda t: f0(np.array([t])))])
        else:
            starts = [s * re.theta0 for s in (1.0, 0.3, 3.0)]
            vals = [f0(t) for t in starts]
            th0 = starts[int(np.argmin(vals))]
            f0(th0)
            r = so.minimize(f0, th0, method="L-BFGS-B", bounds=bounds,
                            options=dict(ftol=1e-12, gtol=1e-8, maxiter=500))
            theta = np.where(np.isfinite(lower), np.maximum(r.x, lower), r.x)
        f0(theta)
        # Each stage-two PIRLS starts from this linear predictor, as lme4's lp0.
        self.lp0 = self.X @ self.beta + self._ZL(theta) @ self.u
        if nAGQ == 0:
            return self._fit_nagq0(theta)
        rule = None if nAGQ == 1 else gh_rule(nAGQ)
        fn = lambda x: self.dev(x, rule)  # noqa: E731
        fp = lambda x: self.dev_parts(x, rule)  # noqa: E731
        lo2 = np.r_[lower, np.full(self.p, -np.inf)]
        bounds2 = bounds + [(None, None)] * self.p
        start = np.r_[theta, self.beta]
        # Newton with deriv12 derivatives from the stage-one point first, as the
        # batched kernel does: lme4's criterion is jagged at the 1e-3 level on
        # weakly identified data (PIRLS stops at a relative change of 1e-7), and
        # the same steps from the same start reach the same local minimum of it.
        # Where Newton does not settle (boundary, indefinite Hessian), L-BFGS-B.
        newton = self._newton_from_start(fn, fp, start, lo2)
        if newton is not None:
            return newton
        r = so.minimize(fn, start, method="L-BFGS-B", bounds=bounds2,
                        options=dict(ftol=1e-12, gtol=1e-7, maxiter=2000, eps=1e-7))
        par = np.where(np.isfinite(lo2), np.maximum(r.x, lo2), r.x)
        if self._scalar1 and par[0] < BOUNDARY_THETA:
            boundary = self._boundary_fit(fn, fp, float(r.fun))
            if boundary is not None:
                return boundary
        par, val, H, g = self._newton(fn, fp, par, lo2)
        if not np.isfinite(val):
            raise EstimationError("glmer: the optimiser found no finite deviance.")
        return par, val, H, g

    def _boundary_fit(self, fn, fp, val):
        """Fit on the boundary, theta = 0, for one scalar random effect.

        The optimiser stops near theta = 0 only to its tolerance, and its beta with
        it; at theta = 0 the criterion is the GLM's deviance, so beta is the GLM fit
        (the joint PIRLS at theta = 0, to 1e-12). Kept when its criterion is not above
        the optimiser's; the derivatives are deriv12's there, as lme4 takes them on a
        boundary (one step outside the bound, where the criterion is even in theta).
        Returns ``(par, f, H, g)`` or None.
        """
        self.u = np.zeros(self.q)
        if self.stack is not None:
            # the batched path's GLM fit and linear predictor, the same numbers
            st = self.stack
            beta = st.glm_fit()[0]
            if not np.all(np.isfinite(beta)):
                return None
            lp0 = st.linear(beta[None, :])[st.row_cells]
        else:
            try:
                _, beta, _ = self.pirls_ub(np.zeros(1))
            except (EstimationError, np.linalg.LinAlgError, ValueError):
                return None
            lp0 = self.X @ beta
        par = np.r_[0.0, beta]
        # Stage one ends on the boundary too (as lme4's does, at theta = 0 exactly):
        # the stage-two PIRLS starts from the GLM's linear predictor.
        lp0, self.lp0 = self.lp0, lp0
        f = fn(par)
        if not f <= val + 1e-9 * abs(val):
            self.lp0 = lp0
            return None
        g, H = deriv12_parts(fp, par)
        return par, f, H, g

    def _fit_nagq0(self, theta_exact):
        """lme4's nAGQ = 0 fit: its criterion replayed from lme4's starting state.

        lme4 first runs the joint PIRLS at theta0 from R's ``mustart``; every
        evaluation then starts from that linear predictor.
        """
        re = self.re
        th0 = re.theta0
        eta0 = self.fam.linkfun(self.fam.mustart(self.y, self.wt))
        u, beta, eta, _, _ = self.pirls_ub_lme4(th0, eta0 - self.offset)
        lp0 = eta - self.offset

        def f(theta):
            try:
                u, b, eta, L, _ = self.pirls_ub_lme4(np.atleast_1d(theta), lp0)
            except (EstimationError, np.linalg.LinAlgError, ValueError):
                return np.inf
            return self.laplace(u, eta, L)

        if th0.size == 1:
            theta = np.array([stage1_scalar(lambda t: f(np.array([t])))])
        else:
            bounds = [(lo if np.isfinite(lo) else None, None) for lo in re.lower]
            r = so.minimize(f, theta_exact, method="L-BFGS-B", bounds=bounds,
                            options=dict(ftol=1e-12, gtol=1e-8, maxiter=500))
            theta = np.where(np.isfinite(re.lower), np.maximum(r.x, re.lower), r.x)
        u, beta, eta, L, w = self.pirls_ub_lme4(theta, lp0)
        self.u, self.beta, self.w_rx = u, beta, w
        return np.r_[theta, beta], self.laplace(u, eta, L), None, None

    @staticmethod
    def _newton_from_start(fn, fp, par, lower, steps=30, halvings=8):
        """Damped Newton steps from the stage-one point (the batched kernel's stage two).

        Returns ``(par, f, H, g)`` once a step is below 1e-6 (relative) or no
        step-halving lowers the criterion, or None where Newton does not apply
        (near a bound, a Hessian that is not positive definite, no convergence).
        """
        fx = fn(par)
        if not np.isfinite(fx):
            return None
        for _ in range(steps):
            if np.any(np.isfinite(lower) & (par - lower < 1e-4)):
                return None
            g, H = deriv12_parts(fp, par)
            if not np.all(np.isfinite(H)) or np.any(np.linalg.eigvalsh(H) <= 0):
                return None
            step = -np.linalg.solve(H, g)
            fac = 1.0
            for _k in range(halvings + 1):
                new = par + fac * step
                fnew = fn(new)
                if fnew <= fx + 1e-10 * abs(fx):
                    break
                fac /= 2
            else:
                return par, fx, H, g      # no decrease possible: converged
            if np.max(np.abs(new - par) / np.maximum(np.abs(par), 1e-2)) < 1e-6:
                return new, fnew, H, g + H @ (new - par)
            par, fx = new, fnew
        return None

    @staticmethod
    def _newton(fn, fp, par, lower, steps=5):
        """Newton steps with lme4's deriv12 derivatives, for ~1e-8 accuracy.

        Returns ``(par, f, H, g)``; the last Hessian is the one lme4 inverts for vcov.
        """
        fx = fn(par)
        for _ in range(steps):
            if np.any(np.isfinite(lower) & (par - lower < 1e-4)):
                # On the boundary Newton steps do not apply; lme4 (1.1-31) still
                # takes deriv12's Hessian there (evaluating just outside the bound).
                return (par, fx, *deriv12_parts(fp, par)[::-1])
            g, H = deriv12_parts(fp, par)
            try:
                if np.any(np.linalg.eigvalsh(H) <= 0):
                    return par, fx, H, g
                step = -np.linalg.solve(H, g)
            except np.linalg.LinAlgError:
                return par, fx, H, g
            new = par + step
            new = np.where(np.isfinite(lower), np.maximum(new, lower), new)
            fnew = fn(new)
            if not fnew <= fx + 1e-10 * abs(fx):
                return par, fx, H, g
            small = np.max(np.abs(new - par) / np.maximum(np.abs(par), 1e-2)) < 1e-6
            if small:
                # A Newton step below 1e-6 lands within ~1e-10 of the optimum, and
                # the Hessian just taken is the one there to deriv12's precision
                # (its steps are 1e-4): it is not taken again (lme4 takes one
                # Hessian after its optimiser); the gradient is moved by H step.
                return new, fnew, H, g + H @ (new - par)
            par, fx = new, fnew
        g, H = deriv12_parts(fp, par)
        return par, fx, H, g
