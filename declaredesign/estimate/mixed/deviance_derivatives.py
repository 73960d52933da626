"""Closed-form first and second derivatives of lme4's deviance in theta.

With ``V(theta) = I + Z Lambda Lambda' Z'`` the scaled marginal covariance of ``y``,
``W = V^-1``, ``M = X' W X`` and ``P = W - W X M^-1 X' W``, the pieces of the REML
criterion and ML deviance are ``log|V|`` (lme4's ``log|L|^2``), the penalised
residual sum of squares ``y' P y`` and ``log|M|`` (lme4's ``log|RX|^2``). Lambda is
linear in theta, so with ``Lambda_i = dLambda / dtheta_i`` the derivatives of ``V``
are ``Z D_i Z'`` with ``D_i = Lambda_i Lambda' + Lambda Lambda_i'`` and ``Z E_ij Z'``
with ``E_ij = Lambda_i Lambda_j' + Lambda_j Lambda_i'``, and the standard results

* ``d log|V| = tr(W dV)``, ``d2 log|V| = tr(W d2V) - tr(W dV_i W dV_j)``,
* ``d y'Py = -y'P dV P y``, ``d2 y'Py = 2 y'P dV_i P dV_j P y - y'P d2V P y``,
* ``dM = -X'W dV W X`` and ``d2 log|M| = tr(M^-1 d2M) - tr(M^-1 dM_i M^-1 dM_j)``

need only the q x q (and q x p) matrices ``Z'WZ``, ``Z'WX``, ``Z'PZ`` and ``Z'Py``
(the PLS residual seen through ``Z'``), which follow from the Cholesky factor of
``A = Lambda' Z'Z Lambda + I`` by Woodbury's identity. These give the gradient and
Hessian of the profiled criterion (for the optimiser and its Newton polish) and
lmerTest's Hessian of the deviance in ``(theta, sigma)`` and Jacobian of
``vcov(beta)`` (for Satterthwaite's df) exactly, where numerical differences need
tens of PLS solves each. Dense q x q algebra: used for ``q <= DENSE_MAX_Q``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

__all__ = ["DevianceDerivatives"]


class DevianceDerivatives:
    """Derivatives in theta of one dataset's deviance pieces, from dense q x q algebra.

    Parameters
    ----------
    pls : PLS
        The fit's penalised least-squares problem (its ``X``, ``y0``, ``re`` and
        the row/column layout of ``Z``).
    """

    def __init__(self, pls):
        self.pls = pls
        re = pls.re
        q = re.q
        vals = np.concatenate([t.Xi[:, c] for t in re.terms for c in range(t.k)])
        self.Z = Z = sp.csr_matrix((vals, (pls._rows, pls._cols)), shape=(pls.n, q))
        self.ZtZ = (Z.T @ Z).toarray()
        self.ZtX = np.asarray(Z.T @ pls.X).reshape(q, pls.p)
        self.Zty = np.asarray(Z.T @ pls.y0).reshape(q)
        self.ZtyX = np.column_stack([self.Zty, self.ZtX])
        # dLambda / dtheta_i: Lambda is block diagonal with one lower-triangular
        # k x k factor T per level, T's entries being theta column by column.
        rows, cols, which = [], [], []
        pos, off = 0, 0
        for t in re.terms:
            base = off + np.arange(t.nl) * t.k
            for j in range(t.k):
                for i in range(j, t.k):
                    rows.append(base + i)
                    cols.append(base + j)
                    which.append(np.full(t.nl, pos))
                    pos += 1
            off += t.k * t.nl
        self._lam = (np.concatenate(rows), np.concatenate(cols), np.concatenate(which))
        self._dLam = None

    @property
    def dLam(self) -> np.ndarray:
        """``dLambda / dtheta_i`` for every i, dense (m, q, q)."""
        if self._dLam is None:
            rows, cols, which = self._lam
            q = self.pls.re.q
            self._dLam = np.zeros((self.pls.re.theta0.size, q, q))
            self._dLam[which, rows, cols] = 1.0
        return self._dLam

    def Lambda(self, theta: np.ndarray) -> np.ndarray:
        """Build the relative covariance factor ``Lambda(theta)``, dense (q x q)."""
        rows, cols, which = self._lam
        q = self.pls.re.q
        Lam = np.zeros((q, q))
        Lam[rows, cols] = np.asarray(theta, dtype=float)[which]
        return Lam

    def ray_criterion(self, scales: np.ndarray) -> np.ndarray:
        """Evaluate the profiled criterion at ``scale * theta0`` for many scales at once.

        Along the ray ``Lambda = s Lambda0``, so ``A(s) = s^2 B + I`` with ``B =
        Lambda0' Z'Z Lambda0 = Q diag(d) Q'``: one eigendecomposition gives
        ``log|A(s)| = sum log(1 + s^2 d)`` and ``[y0 X]' W [y0 X] = C0 - T' diag(s^2 / (1
        + s^2 d)) T`` (``T = Q' Lambda0' Z'[y0 X]``) for every scale. Used to pick the
        optimiser's start; the fit itself uses :meth:`PLS.solve`.
        """
        pls = self.pls
        Lam0 = self.Lambda(pls.re.theta0)
        d, Q = np.linalg.eigh(Lam0.T @ self.ZtZ @ Lam0)
        d = np.maximum(d, 0.0)
        T = Q.T @ (Lam0.T @ self.ZtyX)                      # (q, 1 + p)
        yX = np.column_stack([pls.y0, pls.X])
        C0 = yX.T @ yX
        s2 = np.asarray(scales, dtype=float)[:, None] ** 2
        w = s2 / (1.0 + s2 * d)                             # (G, q)
        C = C0 - np.einsum("gq,qa,qb->gab", w, T, T)
        ld = np.sum(np.log1p(s2 * d), axis=1)
        p = pls.p
        with np.errstate(all="ignore"):
            if p:
                M = C[:, 1:, 1:]
                c = C[:, 1:, 0]
                sol = np.linalg.solve(M, c[..., None])[..., 0]
                pw = C[:, 0, 0] - np.einsum("ga,ga->g", c, sol)
                lm = np.linalg.slogdet(M)[1]
            else:
                pw, lm = C[:, 0, 0], 0.0
            n = pls.n
            if pls.REML:
                r = n - p
                crit = ld + lm + r * (1.0 + np.log(2 * np.pi * pw / r))
            else:
                crit = ld + n * (1.0 + np.log(2 * np.pi * pw / n))
        return np.where(np.isfinite(crit) & (pw > 0), crit, np.inf)

    def _pieces(self, theta: np.ndarray, s: dict):
        """Z'WZ, Z'WX, Z'PZ, Z'Py and M^-1 at theta (``s``: the PLS solve there)."""
        pls = self.pls
        Lam = self.Lambda(theta)
        ZtZL = self.ZtZ @ Lam
        A = Lam.T @ ZtZL
        A[np.diag_indices_from(A)] += 1.0
        C = sla.cho_factor(A, lower=True, check_finite=False)
        G = sla.cho_solve(C, ZtZL.T, check_finite=False).T        # Z'Z Lam A^-1
        K = self.ZtZ - G @ ZtZL.T                                 # Z'WZ
        KX = self.ZtX - G @ (Lam.T @ self.ZtX)                    # Z'WX
        KY = self.Zty - G @ (Lam.T @ self.Zty)                    # Z'W y0
        Minv = np.linalg.inv(s["MX"]) if pls.p else np.zeros((0, 0))
        r = KY - KX @ (s["beta"] - pls.b0)                        # Z'P y
        KP = K - KX @ Minv @ KX.T                                 # Z'PZ
        return Lam, K, KX, KP, r, Minv

    def derivatives(self, theta: np.ndarray, s: dict, second: bool = True) -> dict:
        """First (and second) derivatives of ``log|V|``, ``y'Py`` and ``log|M|``.

        Parameters
        ----------
        theta : ndarray, shape (m,)
        s : dict
            The PLS solve at ``theta`` (:meth:`PLS.solve`).
        second : bool
            Also the second derivatives.

        Returns
        -------
        dict
            ``ld1, pw1, lm1`` (m,), ``ld2, pw2, lm2`` (m, m) with ``second``, and
            ``dM`` (m, p, p), the derivatives of ``M = X'WX``.
        """
        Lam, K, KX, KP, r, Minv = self._pieces(theta, s)
        dL = self.dLam
        LiT = np.transpose(dL, (0, 2, 1))
        D = dL @ Lam.T                               # Lambda_i Lambda' (m, q, q)
        D = D + np.transpose(D, (0, 2, 1))
        KD = K @ D                                   # (m, q, q)
        Dr = D @ r                                   # (m, q)
        DKX = D @ KX                                 # (m, q, p)
        dM = -np.einsum("qa,mqb->mab", KX, DKX)      # (m, p, p)
        out = dict(ld1=np.trace(KD, axis1=1, axis2=2), pw1=-(Dr @ r),
                   lm1=np.einsum("ab,mba->m", Minv, dM), dM=dM)
        if not second:
            return out
        KLi = K @ dL                                 # K Lambda_i
        Lir = LiT @ r                                # Lambda_i' r (m, q)
        LiKX = LiT @ KX                              # Lambda_i' Z'WX (m, q, p)
        tKE = 2.0 * np.einsum("iab,jab->ij", KLi, dL)                 # tr(K E_ij)
        ld2 = tKE - np.einsum("iab,jba->ij", KD, KD)
        pw2 = 2.0 * np.einsum("ia,ab,jb->ij", Dr, KP, Dr) - 2.0 * (Lir @ Lir.T)
        KDKX = K @ DKX                               # (m, q, p)
        F = np.einsum("iqa,jqb->ijab", DKX, KDKX)    # (D_i KX)' K (D_j KX)
        XEX = np.einsum("iqa,jqb->ijab", LiKX, LiKX)
        d2M = F + np.transpose(F, (1, 0, 2, 3)) - XEX - np.transpose(XEX, (1, 0, 2, 3))
        MdM = Minv @ dM                              # (m, p, p)
        lm2 = (np.einsum("ab,ijba->ij", Minv, d2M)
               - np.einsum("iab,jba->ij", MdM, MdM))
        out.update(ld2=ld2, pw2=pw2, lm2=lm2)
        return out

    def criterion_derivatives(self, theta: np.ndarray, s: dict, second: bool = True):
        """Gradient (and Hessian) of the profiled REML criterion or ML deviance."""
        pls = self.pls
        d = self.derivatives(theta, s, second)
        pw = s["pwrss"]
        mult = pls.n - pls.p if pls.REML else pls.n
        with np.errstate(divide="ignore", invalid="ignore"):   # a perfect fit: pw = 0
            g = d["ld1"] + mult * d["pw1"] / pw
            H = (d["ld2"] + mult * (d["pw2"] / pw - np.outer(d["pw1"], d["pw1"]) / pw**2)
                 if second else None)
        if pls.REML:
            g = g + d["lm1"]
        if not second:
            return g, None
        if pls.REML:
            H = H + d["lm2"]
        return g, (H + H.T) / 2

    def varpar_derivatives(self, theta: np.ndarray, sigma: float):
        """Hessian of the deviance in ``(theta, sigma)`` and Jacobian of vcov, as lmerTest's.

        Returns
        -------
        H : ndarray, shape (m + 1, m + 1)
            Hessian of :meth:`PLS.dev_varpar` at ``(theta, sigma)``.
        J : ndarray, shape (p * p, m + 1)
            Jacobian of ``vec(sigma^2 M^-1)`` (:meth:`PLS.covbeta`).
        """
        pls = self.pls
        s = pls.solve(theta)
        d = self.derivatives(theta, s)
        pw, s2 = s["pwrss"], sigma**2
        m = theta.size
        nr = pls.n - (pls.p if pls.REML else 0)
        H = np.empty((m + 1, m + 1))
        Htt = d["ld2"] + d["pw2"] / s2
        if pls.REML:
            Htt = Htt + d["lm2"]
        H[:m, :m] = (Htt + Htt.T) / 2
        H[:m, m] = H[m, :m] = -2.0 * d["pw1"] / sigma**3
        H[m, m] = 6.0 * pw / sigma**4 - 2.0 * nr / s2
        p = pls.p
        Minv = np.linalg.inv(s["MX"]) if p else np.zeros((0, 0))
        J = np.empty((p * p, m + 1))
        for i in range(m):
            J[:, i] = (-s2 * Minv @ d["dM"][i] @ Minv).ravel()
        J[:, m] = (2.0 * sigma * Minv).ravel()
        return H, J
