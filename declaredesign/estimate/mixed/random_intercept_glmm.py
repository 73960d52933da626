"""Random-intercept GLMMs for many datasets at once (the batched ``glmer`` path).

One random intercept ``(1 | g)``, numeric fixed part (offsets and a ``cbind``
response allowed), Laplace or adaptive Gauss-Hermite. All datasets are fitted
together, without a loop over simulations:

* rows are summed into cells (one per group when the fixed part and the offset are
  constant within groups, as with a cluster-assigned treatment), every sum over rows
  or groups is a ``reduceat`` over simulation-ordered cells, and the family's
  quantities come from one fused evaluation (:meth:`.Family.evaluate`);
* PIRLS runs with per-simulation parameters and per-simulation stopping (lme4's
  rule, replayed as in :class:`.pirls.GLMM`); a simulation that has converged keeps
  its state, so its numbers do not depend on the rest of the batch;
* stage one (theta, with beta inside PIRLS) is a grid (left once past each
  simulation's minimum), then golden section and Newton steps; stage two a
  vectorised Newton iteration with lme4's ``deriv12`` derivatives, taken summand
  by summand per group (:func:`deriv12_groups`), whose last Hessian gives the
  covariance of the fixed effects as lme4's ``vcov``;
* fits on the boundary (theta = 0) take the GLM's beta and deriv12 there, as the
  general path does, with the same numbers.

The general fit of one random intercept evaluates its criteria with this code on a
one-simulation :class:`Stacked`, so both paths agree to ~1e-8 (to the bit on the
boundary). :func:`ri_glmer_fit` flags, with a reason, the datasets it cannot settle
(non-positive Hessians, Newton failures, lme4's start failures), which the caller
fits one at a time by the general algorithm.
"""

from __future__ import annotations

import numpy as np

from ...groups import GroupIndex, take_owned
from .basins import clearly_lower, grid_local_minima, lowest_winners
from .families import Family
from .pirls import THETA_GRID, conv_messages, gh_rule

__all__ = ["Stacked", "ri_glmer_fit", "deriv12_groups"]


class Stacked:
    """Stacked random-intercept GLMM data of S simulations.

    The rows are cells: rows of one group that share the fixed-effect row and the
    offset are summed into one (their prior weights added, the response averaged with
    those weights), which leaves every sum the fit takes unchanged, since the
    likelihood, the IRLS weights and the working response enter only through sums
    linear in the response. The terms of the criteria free of mu (saturated
    log-likelihood, normalising constants) come from the original rows.

    Parameters
    ----------
    X, y, wt, offset : ndarray
        Cells: fixed-effect rows, mean response, total prior weight, offset.
    rsim, gcode : ndarray of int
        Each cell's simulation (0..S-1) and group (0..G-1).
    gsim : ndarray of int
        Each group's simulation.
    S : int
    fam : Family
    sat, norm : ndarray, optional
        Per simulation: saturated log-likelihood and normalising constants (computed
        from the cells when not given, exact when the cells are the original rows).
    sat_g : ndarray, optional
        Per group: saturated log-likelihood (for the quadrature criterion).
    """

    def __init__(self, X, y, wt, offset, rsim, gcode, gsim, S, fam: Family,
                 sat=None, norm=None, sat_g=None):
        self.X, self.y, self.wt, self.offset = X, y, wt, offset
        self.rsim, self.gcode, self.gsim, self.S, self.fam = rsim, gcode, gsim, S, fam
        self.G = gsim.size
        self.n, self.p = X.shape
        self.cells_are_groups = self.n == self.G and bool(np.all(gcode == np.arange(self.G)))
        # cells and groups indexed by simulation: sums per simulation by reduceat when
        # the stack is in simulation order with no empty simulation, else bincount
        sims = np.arange(S)
        self._rows, self._gsims = GroupIndex(rsim, sims, S), GroupIndex(gsim, sims, S)
        self._rstart = self._rows.starts
        # Terms free of mu, summed once: the hot loop needs only loglik(mu).
        if sat_g is None:
            sat_g = self._sum_groups(fam.loglik_saturated(y, wt))
        self.sat_g = sat_g
        self.sat = self._sum_gsims(sat_g) if sat is None else sat
        self.norm = self._sum_rows(fam.log_norm(y, wt)) if norm is None else norm
        self.start = None        # the finer stack lme4's start check runs on, if any
        self.cell_rows = np.arange(self.n)   # a row of each cell (from_rows)
        self.row_cells = np.arange(self.n)   # each row's cell

    @classmethod
    def from_rows(cls, X, y, wt, offset, sim, gcode, gsim, S, fam: Family) -> Stacked:
        """Stack the rows of S simulations, summed into cells where X is constant by group.

        Parameters are as :class:`Stacked`'s, for the original rows (``sim`` their
        simulation). When X and the offset are constant within every group (a
        treatment assigned by cluster, group-level covariates), each group is one
        cell; the start check (:meth:`lme4_start_fails`) then runs on the cells
        of rows that also share the response and the weight.
        """
        sat_rows = fam.loglik_saturated(y, wt)
        G = gsim.size
        sat_g = np.bincount(gcode, weights=sat_rows, minlength=G)
        sat = np.bincount(gsim, weights=sat_g, minlength=S)
        norm = np.bincount(sim, weights=fam.log_norm(y, wt), minlength=S)
        first = np.full(G, -1, dtype=np.int64)
        first[gcode[::-1]] = np.arange(gcode.size - 1, -1, -1)
        cols = np.column_stack([X, offset])
        if not np.array_equal(cols[first][gcode], cols):
            return cls(X, y, wt, offset, sim, gcode, gsim, S, fam, sat, norm, sat_g)
        W = np.bincount(gcode, weights=wt, minlength=G)
        ybar = np.divide(np.bincount(gcode, weights=wt * y, minlength=G), W,
                         out=np.zeros(G), where=W > 0)
        st = cls(X[first], ybar, W, offset[first], gsim, np.arange(G), gsim, S, fam,
                 sat, norm, sat_g)
        st.start = _start_stack(y, wt, offset, gcode, gsim, first, X, S, fam)
        st.cell_rows, st.row_cells = first, gcode
        return st

    def subset(self, keep: np.ndarray) -> Stacked:
        """Take the simulations flagged in ``keep`` (bool, (S,)) as a smaller stack."""
        pos = np.cumsum(keep) - 1
        rm, gm = keep[self.rsim], keep[self.gsim]
        gpos = np.cumsum(gm) - 1
        return Stacked(self.X[rm], self.y[rm], self.wt[rm], self.offset[rm], pos[self.rsim[rm]],
                       gpos[self.gcode[rm]], pos[self.gsim[gm]], int(keep.sum()), self.fam,
                       self.sat[keep], self.norm[keep], self.sat_g[gm])

    def take(self, sims: np.ndarray) -> Stacked:
        """Datasets ``sims`` (in that order, repeats allowed) as a new stack."""
        sims = np.asarray(sims, dtype=np.int64)
        rows, rnew = take_owned(self.rsim, self.S, sims)
        groups, gnew = take_owned(self.gsim, self.S, sims)
        # each group's position in the new stack, per copy of its simulation
        rank = np.empty(self.G, dtype=np.int64)
        gorder = np.argsort(self.gsim, kind="stable")
        gstart = np.cumsum(np.bincount(self.gsim, minlength=self.S)) - \
            np.bincount(self.gsim, minlength=self.S)
        rank[gorder] = np.arange(self.G) - gstart[self.gsim[gorder]]
        goff = np.cumsum(np.bincount(gnew, minlength=sims.size)) - \
            np.bincount(gnew, minlength=sims.size)
        gcode = goff[rnew] + rank[self.gcode[rows]]
        return Stacked(self.X[rows], self.y[rows], self.wt[rows], self.offset[rows], rnew,
                       gcode, gnew, sims.size, self.fam, self.sat[sims], self.norm[sims],
                       self.sat_g[groups])

    def linear(self, beta):
        """``X beta`` of every cell, beta (S, p) one row per simulation."""
        return np.einsum("ij,ij->i", self.X, beta[self.rsim])

    def glm_fit(self):
        """Fit beta at theta = 0 (the GLM) by the joint PIRLS from zero.

        From the same start the iterations are the same numbers in a batch and for
        one simulation alone, so the boundary fits of both paths agree to the bit.
        """
        return self.stage0(np.zeros(self.S), np.zeros((self.S, self.p)), np.zeros(self.G))[1]

    def _sum_rows(self, v):
        """Sum a per-cell array per simulation."""
        return self._rows.sum(v)

    def _sum_gsims(self, v):
        """Sum a per-group array per simulation."""
        return self._gsims.sum(v)

    def _sum_groups(self, v):
        if self.cells_are_groups:
            return v
        return np.bincount(self.gcode, weights=v, minlength=self.G)

    def _eval(self, eta):
        return self.fam.evaluate(eta, self.y, self.wt)

    def _pdev(self, ll, u):
        """Penalized deviance of every simulation from the rows' log-likelihood at mu."""
        return 2 * (self.sat - self._sum_rows(ll)) + self._sum_gsims(u * u)

    def pdev(self, eta, u):
        """Penalized deviance of every simulation."""
        return self._pdev(self._eval(eta)[3], u)

    def pirls(self, theta, beta, lp0, tol=1e-7, maxit=100):
        """lme4's pwrssUpdate replayed for every simulation (see GLMM.pirls_lme4).

        Returns u (G,), eta (n,), L (G,), the rows' log-likelihood at eta and a
        per-simulation failure flag.
        """
        th_g = theta[self.gsim]
        th_r = theta[self.rsim]
        fixed = np.einsum("ij,ij->i", self.X, beta[self.rsim]) + self.offset
        eta = self.offset + lp0
        mu, me, w, _ = self._eval(eta)
        old = np.full(self.S, np.inf)
        u_old = np.zeros(self.G)
        done = np.zeros(self.S, dtype=bool)
        fail = np.zeros(self.S, dtype=bool)
        U, ETA, LL, LLC = np.zeros(self.G), np.zeros(self.n), np.ones(self.G), np.zeros(self.n)
        for _ in range(maxit):
            L = np.sqrt(1.0 + th_g**2 * self._sum_groups(w))
            z = eta - fixed + (self.y - mu) / me
            u = th_g * self._sum_groups(w * z) / L**2
            eta = fixed + th_r * u[self.gcode]
            mu, me, w, ll = self._eval(eta)
            llk = self._sum_rows(ll)
            pd = 2 * (self.sat - llk) + self._sum_gsims(u * u)
            with np.errstate(invalid="ignore"):
                conv = np.abs((old - pd) / pd) < tol
            new = conv & ~done
            if new.any():
                gm, rm = new[self.gsim], new[self.rsim]
                U[gm], LL[gm], ETA[rm], LLC[rm] = u[gm], L[gm], eta[rm], ll[rm]
                done |= new
            if done.all():
                break
            bad = ~np.isfinite(pd) | (pd > old)
            for _k in range(20):
                if not (bad & ~done).any():
                    break
                gm, rm = (bad & ~done)[self.gsim], (bad & ~done)[self.rsim]
                u = np.where(gm, (u_old + u) / 2, u)
                eta = np.where(rm, fixed + th_r * u[self.gcode], eta)
                mu, me, w, ll = self._eval(eta)
                pd = np.where(bad, self._pdev(ll, u), pd)
                bad = ~np.isfinite(pd) | (pd > old)
            fail |= ~done & (~np.isfinite(pd) | (pd - old > tol))
            old, u_old = pd, u
        fail |= ~done
        return U, ETA, LL, LLC, fail

    def laplace(self, u, llk, L):
        """Laplace criterion of every simulation (``llk``: log-likelihood per simulation)."""
        return self._sum_gsims(2 * np.log(L) + u * u) - 2 * (self.norm + llk)

    def laplace_groups(self, u, ll, L):
        """Return the Laplace criterion's summands per group (``ll``: rows' log-likelihood).

        Their sum per simulation, less ``2 norm``, is :meth:`laplace`.
        """
        return 2 * np.log(L) + u * u - 2 * self._sum_groups(ll)

    def agq_groups(self, theta, u, eta, L, rule):
        """Return the adaptive Gauss-Hermite criterion's summands per group (glmerAGQ)."""
        th_r = theta[self.rsim]

        def devc(uu, ee):
            return uu**2 + 2 * (self.sat_g - self._sum_groups(self._eval(ee)[3]))

        devc0 = devc(u, eta)
        sd = 1.0 / L
        mult = np.zeros(self.G)
        for z, w, ld in rule:
            if z == 0:
                mult += w
                continue
            du = z * sd
            d = devc(u + du, eta + th_r * du[self.gcode])
            mult += np.exp(-0.5 * (d - devc0) - ld) * w / np.sqrt(2 * np.pi)
        return devc0 + 2 * np.log(L) - 2 * np.log(mult)

    def criterion_groups(self, par, lp0, rule):
        """Stage-two criterion's summands per group at par (S, 1 + p); inf where it fails.

        The criterion of a simulation is the sum over its groups less ``2 norm`` for
        the Laplace criterion (:meth:`criterion`); deriv12 differences the summands
        (:func:`deriv12_groups`).
        """
        theta, beta = par[:, 0], par[:, 1:]
        u, eta, L, ll, fail = self.pirls(theta, beta, lp0)
        val = self.laplace_groups(u, ll, L) if rule is None else \
            self.agq_groups(theta, u, eta, L, rule)
        return np.where(fail[self.gsim] | ~np.isfinite(val), np.inf, val)

    def total(self, groups, rule):
        """Sum the summands per group into a criterion per simulation."""
        with np.errstate(invalid="ignore"):
            val = self._sum_gsims(groups)
        if rule is None:
            val = val - 2 * self.norm
        return np.where(np.isfinite(val), val, np.inf)

    def criterion(self, par, lp0, rule):
        """Stage-two criterion of every simulation at par (S, 1 + p)."""
        return self.total(self.criterion_groups(par, lp0, rule), rule)

    # ------------------------------------------------------------ stage one
    def lme4_start_fails(self) -> np.ndarray:
        """Flag simulations where lme4's first PIRLS does not converge.

        That PIRLS is joint, at theta = 1, from R's mustart, with relative tolerance
        1e-7 and 100 iterations; lme4 stops there with "pwrssUpdate did not
        converge", e.g. under complete separation.
        """
        if self.start is not None:
            fine, eta0 = self.start
            return fine.start_fails_from(eta0)
        return self.start_fails_from(self.fam.linkfun(self.fam.mustart(self.y, self.wt)))

    def start_fails_from(self, eta0):
        """:meth:`lme4_start_fails` from the rows' starting linear predictor ``eta0``."""
        return ~self.stage0(np.ones(self.S), np.zeros((self.S, self.p)), np.zeros(self.G),
                            eta0=eta0, lme4_rule=True)

    def _beta_system(self, w, z, th_g):
        """Build the normal equations of beta after eliminating u group by group.

        Returns M (S, p, p), r (S, p), the group sums of w X (G, p) and of w z (G,),
        and ``D = 1 + theta^2 sum(w)`` per group.
        """
        S, p = self.S, self.p
        D = 1.0 + th_g**2 * self._sum_groups(w)
        if self.cells_are_groups and self._rstart is not None:
            # u eliminated in closed form: the weights become w / D
            q = w / D
            M = np.empty((S, p, p))
            r = np.empty((S, p))
            cols = [self.X[:, c] * q for c in range(p)]
            for a in range(p):
                r[:, a] = np.add.reduceat(cols[a] * z, self._rstart)
                for b in range(a, p):
                    M[:, a, b] = M[:, b, a] = np.add.reduceat(cols[a] * self.X[:, b],
                                                              self._rstart)
            return M, r, w[:, None] * self.X, w * z, D
        wX = self.X * w[:, None]
        gX = np.stack([self._sum_groups(wX[:, c]) for c in range(p)], axis=1)   # (G, p)
        gz = self._sum_groups(w * z)
        cg = (th_g**2 / D)[:, None] * gX
        M = np.empty((S, p, p))
        r = np.empty((S, p))
        for a in range(p):
            r[:, a] = self._sum_rows(wX[:, a] * z) - np.bincount(
                self.gsim, weights=cg[:, a] * gz, minlength=S)
            for b in range(a, p):
                M[:, a, b] = M[:, b, a] = self._sum_rows(wX[:, a] * self.X[:, b]) - \
                    np.bincount(self.gsim, weights=cg[:, a] * gX[:, b], minlength=S)
        return M, r, gX, gz, D

    def stage0(self, theta, beta, u, tol=1e-12, maxit=200, eta0=None, lme4_rule=False,
               polish=True):
        """Joint PIRLS over (u, beta) at theta for all simulations (lme4's nAGQ = 0).

        Returns u, beta, eta and the Laplace criterion (per simulation). With
        ``polish``, one more step after the stopping rule holds (see below).
        """
        S = self.S
        th_g, th_r = theta[self.gsim], theta[self.rsim]
        eta = np.einsum("ij,ij->i", self.X, beta[self.rsim]) + self.offset + \
            th_r * u[self.gcode] if eta0 is None else eta0
        mu, me, w, ll = self._eval(eta)
        pd0 = self._pdev(ll, u) if eta0 is None else np.full(S, np.inf)
        if lme4_rule:
            tol, maxit = 1e-7, 100
        converged = np.zeros(S, dtype=bool)
        polish_step, polish = polish, np.zeros(S, dtype=bool)
        for _ in range(maxit):
            prev = (mu, me, w, ll)
            z = eta - self.offset + (self.y - mu) / me
            M, r, gX, gz, D = self._beta_system(w, z, th_g)
            bnew = np.linalg.solve(M, r[..., None])[..., 0]
            unew = th_g * (gz - np.einsum("gj,gj->g", gX, bnew[self.gsim])) / D
            etanew = np.einsum("ij,ij->i", self.X, bnew[self.rsim]) + self.offset + \
                th_r * unew[self.gcode]
            mu, me, w, ll = self._eval(etanew)
            pd1 = self._pdev(ll, unew)
            # Step halving where the penalized deviance went up.
            for _k in range(10):
                up = ~(pd1 <= pd0 + 1e-12 * np.abs(pd0))
                if not up.any():
                    break
                unew = np.where(up[self.gsim], (u + unew) / 2, unew)
                bnew = np.where(up[:, None], (beta + bnew) / 2, bnew)
                etanew = np.einsum("ij,ij->i", self.X, bnew[self.rsim]) + self.offset + \
                    th_r * unew[self.gcode]
                mu, me, w, ll = self._eval(etanew)
                pd1 = np.where(up, self._pdev(ll, unew), pd1)
            if lme4_rule:
                with np.errstate(invalid="ignore"):
                    converged |= np.abs((pd0 - pd1) / pd1) < tol
                u, beta, eta, pd0 = unew, bnew, etanew, pd1
                if converged.all():
                    break
                continue
            if converged.any():
                # A converged simulation keeps its state, so that its numbers do not
                # depend on the others in the batch (nor on how many there are).
                kg, kr = converged[self.gsim], converged[self.rsim]
                unew, etanew = np.where(kg, u, unew), np.where(kr, eta, etanew)
                bnew, pd1 = np.where(converged[:, None], beta, bnew), np.where(converged, pd0, pd1)
                mu, me, w, ll = (np.where(kr, a, b) for a, b in zip(prev, (mu, me, w, ll),
                                                                      strict=True))
            # One more step after the stopping rule holds: the iteration converges
            # quadratically, so it lands at the mode to rounding, and the criterion
            # of theta is smooth to ~1e-14 (stage one's optimum to ~1e-7) instead
            # of the rule's 1e-12.
            finished = polish
            stop = ~converged & ~polish & (np.abs(pd0 - pd1) <= tol * (np.abs(pd1) + 1e-3))
            converged |= finished | (stop if not polish_step else False)
            polish = stop if polish_step else polish
            u, beta, eta, pd0 = unew, bnew, etanew, pd1
            if converged.all():
                break
        if lme4_rule:
            return converged
        L = np.sqrt(1.0 + th_g**2 * self._sum_groups(w))
        return u, beta, eta, self.laplace(u, self._sum_rows(ll), L)


def _start_stack(y, wt, offset, gcode, gsim, first, X, S, fam: Family):
    """Build the cells of rows sharing group, response and weight, and R's start there.

    lme4's first PIRLS starts from R's ``mustart``, which depends on each row's
    response and weight, so the start check needs cells finer than the fit's.
    """
    _, ykey = np.unique(y, return_inverse=True)
    _, wkey = np.unique(wt, return_inverse=True)
    nw = int(wkey.max()) + 1 if wkey.size else 1
    key = (gcode * (int(ykey.max()) + 1 if ykey.size else 1) + ykey.ravel()) * nw + wkey.ravel()
    uniq, cell = np.unique(key, return_inverse=True)
    cell = cell.ravel()
    rep = np.full(uniq.size, -1, dtype=np.int64)
    rep[cell[::-1]] = np.arange(cell.size - 1, -1, -1)
    g = gcode[rep]
    W = np.bincount(cell, weights=wt, minlength=uniq.size)
    fine = Stacked(X[first][g], y[rep], W, offset[rep], gsim[g], g, gsim, S, fam)
    eta0 = fam.linkfun(fam.mustart(y[rep], wt[rep]))
    return fine, eta0


def _grid(st: Stacked, state: dict) -> np.ndarray:
    """Stage-one criterion on THETA_GRID (S, m), warm-started point after point.

    A simulation leaves the grid once its criterion has risen at two grid points
    past its smallest value (the later points, never its minimum, stay inf), so
    the large thetas, whose PIRLS is the slowest, are evaluated only where the
    minimum may lie there.
    """
    S, m = st.S, THETA_GRID.size
    vals = np.full((S, m), np.inf)
    active = np.ones(S, dtype=bool)
    state["left"] = np.full(S, m)     # each simulation's first grid point not evaluated
    for k, t in enumerate(THETA_GRID):
        if active.all():
            uu, bb, _, v = st.stage0(np.full(S, t), state["beta"], state["u"])
            state["u"], state["beta"] = uu, bb
        else:
            sub = st.subset(active)
            gm = active[st.gsim]
            uu, bb, _, v = sub.stage0(np.full(sub.S, t), state["beta"][active], state["u"][gm])
            state["u"][gm], state["beta"][active] = uu, bb
        vals[active, k] = np.where(np.isfinite(v), v, np.inf)
        if k >= 2:
            best = np.argmin(vals[:, :k + 1], axis=1)
            stop = active & (k - best >= 2) & (vals[:, k] >= vals[:, k - 1])
            state["left"][stop] = k + 1
            active &= ~stop
        if not active.any():
            break
    return vals


def _grid_rest(st: Stacked, vals: np.ndarray, state: dict) -> np.ndarray:
    """Fill in the grid points each simulation left unevaluated (a copy of ``vals``).

    The simulations that left the grid early continue on a copy of their warm-started
    state, so the state the fit goes on from is unchanged.
    """
    left = state["left"]
    out = vals.copy()
    todo = left < THETA_GRID.size
    if not todo.any():
        return out
    sub = st.subset(todo) if not todo.all() else st
    u, beta = state["u"][todo[st.gsim]], state["beta"][todo]
    part = out[todo]
    for k in range(int(left[todo].min()), THETA_GRID.size):
        u, beta, _, v = sub.stage0(np.full(sub.S, THETA_GRID[k]), beta, u)
        late = left[todo] <= k
        part[late, k] = np.where(np.isfinite(v), v, np.inf)[late]
    out[todo] = part
    return out


def _other_basins(st: Stacked, state: dict, vals: np.ndarray, theta: np.ndarray,
                  fval: np.ndarray) -> np.ndarray:
    """Refine every other local minimum of the whole grid; keep a clearly lower one.

    The grid is left once past a simulation's minimum, and only its best point is
    refined, so on small data a boundary minimum at theta = 0 hid a lower interior
    basin further up (5 groups of 1-4 binary rows: 5.097 at 0, 4.603 at theta 7.7).
    The rest of the grid is evaluated (:func:`_grid_rest`), each other local
    minimum is refined as a simulation of its own (a copy, :meth:`Stacked.take`),
    and replaces the first optimum (``theta``, of stage-one criterion ``fval``) only
    when clearly lower, so a simulation with one basin keeps its numbers bit for bit.
    The state (u, beta) of a simulation that moves is the copy's.
    """
    full = _grid_rest(st, vals, state)
    m = THETA_GRID.size
    loc = grid_local_minima(full, (m,))
    loc[np.arange(st.S), np.argmin(vals, axis=1)] = False    # refined already
    sims, j = np.nonzero(loc)
    if sims.size == 0:
        return theta
    cand = st.take(sims)
    groups, gnew = take_owned(st.gsim, st.S, sims)
    cs = {"u": state["u"][groups], "beta": state["beta"][sims]}

    def fc(t):
        uu, bb, _, val = cand.stage0(t, cs["beta"], cs["u"])
        cs["u"], cs["beta"] = uu, bb
        return np.where(np.isfinite(val), val, np.inf)

    lo = THETA_GRID[np.maximum(j - 1, 0)]
    hi = np.where(j == 0, THETA_GRID[1], THETA_GRID[np.minimum(j + 1, m - 1)])
    tc = _minimise1(fc, lo, hi)
    vc = fc(tc)
    tc, vc = np.where(vc <= full[sims, j], tc, THETA_GRID[j]), np.minimum(vc, full[sims, j])
    win = lowest_winners(sims, vc, clearly_lower(vc, fval[sims]))
    out = theta.copy()
    out[sims[win]] = tc[win]
    state["beta"][sims[win]] = cs["beta"][win]
    moved = np.isin(gnew, win)
    state["u"][groups[moved]] = cs["u"][moved]
    return out


def _minimise1(f, lo, hi, golden_iters=16, newton_iters=4, h=1e-5):
    """Vectorised minimisation of f (S,) -> (S,) over [lo, hi] (theta >= 0).

    Golden-section search narrows each interval to ~5e-4 of its width, then
    Newton steps on central differences locate the minimum to the precision of the
    criterion's differences, as the general path's Brent search does.
    """
    g = (np.sqrt(5) - 1) / 2
    a, b = lo.astype(float).copy(), hi.astype(float).copy()
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(golden_iters):
        left = fc < fd
        # left: minimum in [a, d]; the old c becomes the new d. Else in [c, b].
        a, b = np.where(left, a, c), np.where(left, d, b)
        new = np.where(left, b - g * (b - a), a + g * (b - a))
        fnew = f(new)
        c, d, fc, fd = (np.where(left, new, d), np.where(left, c, new),
                        np.where(left, fnew, fd), np.where(left, fc, fnew))
    x = np.where(fc < fd, c, d)
    fx = np.minimum(fc, fd)
    for _ in range(newton_iters):
        hh = np.minimum(h, np.maximum(x, 1e-12) / 2)
        fp, fm = f(x + hh), f(x - hh)
        d1 = (fp - fm) / (2 * hh)
        d2 = (fp - 2 * fx + fm) / hh**2
        step = np.where(d2 > 0, -d1 / np.where(d2 > 0, d2, 1.0), 0.0)
        step = np.clip(step, -(b - a), b - a)
        xn = np.clip(x + step, lo, hi)
        fn = f(xn)
        better = fn <= fx
        x, fx = np.where(better, xn, x), np.where(better, fn, fx)
    return x


def ri_glmer_fit(st: Stacked, nAGQ: int):
    """Fit every simulation; returns beta, vcov, theta, criterion and an ``ok`` mask.

    ``ok`` is False for simulations the general path must refit.
    """
    S, p = st.S, st.p
    start_fails = st.lme4_start_fails()
    # ---- stage one: theta with beta inside PIRLS, vectorised grid + golden section
    u = np.zeros(st.G)
    beta = np.zeros((S, p))
    state = {"u": u, "beta": beta}

    def f0(theta):
        uu, bb, _, val = st.stage0(theta, state["beta"], state["u"])
        state["u"], state["beta"] = uu, bb
        return np.where(np.isfinite(val), val, np.inf)

    grid_vals = _grid(st, state)
    i = np.argmin(grid_vals, axis=1)
    lo = THETA_GRID[np.maximum(i - 1, 0)]
    hi = THETA_GRID[np.minimum(i + 1, THETA_GRID.size - 1)]
    hi = np.where(i == 0, THETA_GRID[1], hi)
    theta = _minimise1(f0, lo, hi)
    best = np.min(grid_vals, axis=1)
    v = f0(theta)
    theta = np.where(v <= best, theta, THETA_GRID[i])
    theta = _other_basins(st, state, grid_vals, theta, np.minimum(v, best))
    uu, bb, eta0, _ = st.stage0(theta, state["beta"], state["u"])
    lp0 = eta0 - st.offset
    # ---- stage two: Newton on (theta, beta) with deriv12 derivatives
    rule = None if nAGQ == 1 else gh_rule(nAGQ)
    ok = (theta >= 1e-4) & ~start_fails    # boundary fits and lme4 failures: general path
    par = np.column_stack([theta, bb])

    def fn(x):
        return st.criterion(x, lp0, rule)

    fx = fn(par)
    ok &= np.isfinite(fx)
    active = ok.copy()
    Hf = np.full((S, p + 1, p + 1), np.nan)
    Gf = np.full((S, p + 1), np.nan)
    for _ in range(30):
        if not active.any():
            break
        # Only the simulations still moving are evaluated.
        idx = np.flatnonzero(active)
        sub = st.subset(active) if idx.size < S else st
        lp_sub = lp0[active[st.rsim]] if idx.size < S else lp0

        def fs(x, sub=sub, lp_sub=lp_sub):
            return sub.criterion(x, lp_sub, rule)

        def fg(x, sub=sub, lp_sub=lp_sub):
            return sub.criterion_groups(x, lp_sub, rule)

        pa, fa = par[idx], fx[idx]
        g, Hn = deriv12_groups(fg, pa, sub.gsim)
        Hf[idx], Gf[idx] = Hn, g
        with np.errstate(invalid="ignore"):
            try:
                ev = np.linalg.eigvalsh(np.where(np.isfinite(Hn), Hn, 0.0))
            except np.linalg.LinAlgError:
                ev = np.full((idx.size, p + 1), np.nan)
        pos = np.all(ev > 0, axis=1) & np.all(np.isfinite(Hn), axis=(1, 2))
        Hs = np.where(pos[:, None, None], Hn, np.eye(p + 1))
        step = -np.linalg.solve(Hs, np.where(pos[:, None], g, 0.0)[..., None])[..., 0]
        step = np.where(pos[:, None], step, 0.0)
        small = np.max(np.abs(step) / np.maximum(np.abs(pa), 1e-2), axis=1) < 1e-6
        # step halving until the criterion does not go up
        fac = np.ones(idx.size)
        new = pa + step
        fnew = fs(new)
        for _k in range(8):
            worse = pos & ~(fnew <= fa + 1e-10 * np.abs(fa))
            if not worse.any():
                break
            fac = np.where(worse, fac / 2, fac)
            new = np.where(worse[:, None], pa + fac[:, None] * step, new)
            fnew = np.where(worse, fs(new), fnew)
        worse = pos & ~(fnew <= fa + 1e-10 * np.abs(fa))
        accept = pos & ~worse
        par[idx] = np.where(accept[:, None], new, pa)
        fx[idx] = np.where(accept, fnew, fa)
        ok[idx] &= pos & (par[idx, 0] >= 1e-4)
        # Converged: a full step below 1e-6 (relative) lands within ~1e-12 of the
        # optimum, and the Hessian just taken is kept, the gradient moved by H step,
        # as the general path's Newton does (GLMM._newton_from_start); or no further
        # decrease possible.
        moved = small & accept
        Gf[idx[moved]] += np.einsum("sij,sj->si", Hn[moved], (new - pa)[moved])
        fin = small | worse
        active[idx] = ~fin & ok[idx]
    ok &= ~active          # no convergence in 30 Newton steps
    # Theta reached 0 (in stage one, or on the way in stage two): the fit on the
    # boundary, as the general path's (GLMM._boundary_fit), where that is a minimum.
    low = ~ok & ~start_fails & ~active & np.isfinite(fx) & (par[:, 0] < 1e-4)
    if low.any():
        _boundary(st, low, rule, par, fx, Hf, Gf, ok)
    V = np.full((S, p, p), np.nan)
    with np.errstate(invalid="ignore"):
        good = ok & np.all(np.isfinite(Hf), axis=(1, 2))
        if good.any():
            h = np.linalg.inv(np.where(good[:, None, None], Hf, np.eye(p + 1)))
            hb = h[:, 1:, 1:]
            Vg = hb + np.transpose(hb, (0, 2, 1))
            evv = np.linalg.eigvalsh(Vg)
            good &= evv[:, 0] > 0
            V = np.where(good[:, None, None], Vg, np.nan)
    ok &= good
    return dict(beta=par[:, 1:], theta=par[:, 0], vcov=V, crit=fx, ok=ok,
                messages=_conv_messages(Gf, Hf, ok),
                reasons=_reasons(ok, start_fails, par[:, 0], fx, active))


def _boundary(st: Stacked, low, rule, par, fx, Hf, Gf, ok) -> None:
    """Fit the simulations flagged ``low`` at theta = 0 (in place).

    beta is the GLM fit (:meth:`Stacked.glm_fit`) and stage two's PIRLS starts from
    its linear predictor, as stage one ended there; the derivatives are deriv12's.
    A simulation is settled when that Hessian is positive definite (theta = 0 is a
    minimum). The general path (GLMM._boundary_fit) takes the same steps with the
    same numbers: deriv12's differences of the criterion at points even 1e-16 apart
    would differ by the rounding of the log-likelihood (~1e-15) over delta^2 = 1e-8.
    """
    sub = st.subset(low)
    beta = sub.glm_fit()
    pb = np.column_stack([np.zeros(sub.S), beta])
    lp_sub = sub.linear(beta)

    def fg(x):
        return sub.criterion_groups(x, lp_sub, rule)

    fgb = fg(pb)
    fb = sub.total(fgb, rule)
    g, H = deriv12_groups(fg, pb, sub.gsim, f0=fgb)
    with np.errstate(invalid="ignore"):
        fin = np.isfinite(fb) & np.all(np.isfinite(H), axis=(1, 2))
        ev = np.linalg.eigvalsh(np.where(fin[:, None, None], H, np.eye(H.shape[1])))
    par[low], fx[low], Hf[low], Gf[low] = pb, fb, H, g
    ok[low] = fin & (ev[:, 0] > 0)


def _reasons(ok, start_fails, theta, fx, active) -> np.ndarray:
    """Why each simulation the batched fit declines goes to the general path."""
    out = np.full(ok.size, None, dtype=object)
    out[~ok] = "the Hessian at the optimum is not positive definite"
    out[~ok & active] = "no convergence in 30 Newton steps"
    out[~ok & (theta < 1e-4)] = "theta on the boundary (a singular fit)"
    out[~ok & ~np.isfinite(fx)] = "no finite criterion"
    out[start_fails] = "lme4's first PIRLS does not converge"
    return out


def deriv12_groups(fg, x, gsim, delta=1e-4, f0=None):
    """lme4's deriv12 for every row of x (S, k) from the criteria's summands per group.

    ``fg(x)`` returns (G,) summands, ``gsim`` each one's simulation. The central
    differences are taken summand by summand and summed per simulation: the same
    numbers as differencing the criteria, without their rounding (criteria of
    ~1e3 whose differences, ~1e-8, carry the Hessian).
    """
    S, k = x.shape
    f0 = fg(x) if f0 is None else f0

    def at(di, i, dj=0.0, j=0):
        t = x.copy()
        t[:, i] += di
        t[:, j] += dj
        return fg(t)

    def sums(v):
        with np.errstate(invalid="ignore"):
            return np.bincount(gsim, weights=v, minlength=S)

    H = np.empty((S, k, k))
    g = np.empty((S, k))
    with np.errstate(invalid="ignore"):
        for j in range(k):
            fa, fs = at(delta, j), at(-delta, j)
            H[:, j, j] = sums(fa - 2 * f0 + fs) / delta**2
            g[:, j] = sums(fa - fs) / (2 * delta)
            for i in range(j):
                v = (at(delta, i, delta, j) - at(delta, i, -delta, j)
                     - at(-delta, i, delta, j) + at(-delta, i, -delta, j))
                H[:, i, j] = H[:, j, i] = sums(v) / (4 * delta**2)
    return g, H


def _conv_messages(G, H, ok):
    """lme4's checkConv messages per simulation (None when clean).

    The conditions are screened for all simulations at once; the messages are
    written only for the few that trip one.
    """
    S = G.shape[0]
    out = np.full(S, None, dtype=object)
    if not ok.any():
        return out
    Hs = np.where(ok[:, None, None], H, np.eye(H.shape[1]))
    Gs = np.where(ok[:, None], G, 0.0)
    flag = np.zeros(S, dtype=bool)
    for M in (Hs[:, 1:, 1:], Hs):
        ev = np.linalg.eigvalsh(M)
        flag |= (ev[:, 0] < 1e-6) | (ev[:, -1] * 1e-6 > 1) | (ev[:, 0] / ev[:, -1] < 1e-6)
    L = np.linalg.cholesky(np.where(flag[:, None, None], np.eye(H.shape[1]), Hs))
    scgrad = np.linalg.solve(L, Gs[..., None])[..., 0]
    flag |= np.max(np.minimum(np.abs(scgrad), np.abs(Gs)), axis=1) > 2e-3
    for s in np.flatnonzero(flag & ok):
        msgs = conv_messages(G[s], H[s], 1)
        out[s] = "; ".join(msgs) or None
    return out
