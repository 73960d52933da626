"""GLM families and links as R's ``binomial()`` and ``poisson()`` compute them.

The link functions carry R's numerical safeguards (``mu`` kept inside
``[eps, 1 - eps]``, the probit linear predictor clipped) so that PIRLS follows R's
iterates; the log-likelihood is split into the part that depends on ``mu`` and the
part that does not (binomial coefficients, ``log y!``), which the hot loops sum once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from ..._validation import fail

__all__ = ["Family", "make_family"]

_EPS = np.finfo(float).eps
_PROBIT_THRESH = -stats.norm.ppf(_EPS)
_LOG_EPS = float(np.log(_EPS))
_INV_SQRT_2PI = 1.0 / np.sqrt(2 * np.pi)
_LINKS = {"binomial": ("logit", "probit"), "poisson": ("log",)}


@dataclass(frozen=True)
class Family:
    """A GLM family and link, with R's numerical safeguards."""

    family: str
    link: str

    def linkfun(self, mu):
        """Apply the link function, ``eta = g(mu)``."""
        if self.link == "logit":
            return special.logit(mu)
        if self.link == "probit":
            return special.ndtri(mu)
        return np.log(mu)

    def mustart(self, y, wt):
        """R's family$initialize starting values."""
        if self.family == "binomial":
            return (wt * y + 0.5) / (wt + 1)
        return y + 0.1

    def linkinv(self, eta):
        """Apply the inverse link, ``mu = g^-1(eta)``, kept inside R's bounds."""
        if self.link == "logit":
            return np.clip(special.expit(eta), _EPS, 1 - _EPS)
        if self.link == "probit":
            return special.ndtr(np.clip(eta, -_PROBIT_THRESH, _PROBIT_THRESH))
        return np.maximum(np.exp(eta), _EPS)

    def mu_eta(self, eta):
        """``d mu / d eta``, bounded below by machine epsilon as R does."""
        if self.link == "logit":
            e = np.exp(-np.abs(eta))
            return np.maximum(e / (1 + e) ** 2, _EPS)
        if self.link == "probit":
            return np.maximum(stats.norm.pdf(eta), _EPS)
        return np.maximum(np.exp(eta), _EPS)

    def variance(self, mu):
        """Evaluate the variance function ``V(mu)``."""
        return mu * (1 - mu) if self.family == "binomial" else mu

    def loglik(self, y, mu, wt):
        """Per-row log-likelihood without the terms free of mu."""
        if self.family == "binomial":
            return wt * (special.xlogy(y, mu) + special.xlog1py(1 - y, -mu))
        return wt * (special.xlogy(y, mu) - mu)

    def evaluate(self, eta, y, wt):
        """``mu``, ``d mu / d eta``, the IRLS weights and :meth:`loglik` at ``eta`` at once.

        The same quantities as :meth:`linkinv`, :meth:`mu_eta`, ``wt mu_eta^2 /
        variance`` and :meth:`loglik` (to rounding), from one exponential per row for
        the logit and log links: the hot loops of the batched fit call this.
        """
        if self.link == "logit":
            with np.errstate(over="ignore"):
                e = np.exp(-np.abs(eta))
            r = 1.0 / (1.0 + e)
            mu = np.where(eta >= 0, r, e * r)
            me = e * r * r
            lp = np.log1p(e)
            if eta.size and np.max(np.abs(eta)) < 30:
                # No clipping anywhere: log mu = -lp - max(-eta, 0) and the weights
                # are mu_eta (mu_eta = variance for the canonical link).
                return mu, me, wt * me, wt * (y * eta - np.maximum(eta, 0.0) - lp)
            np.clip(mu, _EPS, 1 - _EPS, out=mu)
            np.maximum(me, _EPS, out=me)
            # log mu and log(1 - mu) from one log1p, floored where mu is clipped
            log_mu = np.maximum(-lp - np.maximum(-eta, 0.0), _LOG_EPS)
            log_1mu = np.maximum(-lp - np.maximum(eta, 0.0), _LOG_EPS)
            ll = wt * (y * log_mu + (1 - y) * log_1mu)
            return mu, me, wt * me * me / (mu * (1 - mu)), ll
        if self.link == "log":
            with np.errstate(over="ignore"):
                mu = np.maximum(np.exp(eta), _EPS)
            ll = wt * (y * np.maximum(eta, _LOG_EPS) - mu)
            return mu, mu, wt * mu, ll
        mu = self.linkinv(eta)
        me = np.maximum(np.exp(-0.5 * eta * eta) * _INV_SQRT_2PI, _EPS)
        # mu is kept inside [eps, 1 - eps], so the plain logs are xlogy's
        ll = wt * (y * np.log(mu) + (1 - y) * np.log1p(-mu))
        return mu, me, wt * me * me / self.variance(mu), ll

    def loglik_saturated(self, y, wt):
        """``loglik`` at ``mu = y``."""
        if self.family == "binomial":
            return wt * (special.xlogy(y, y) + special.xlogy(1 - y, 1 - y))
        return wt * (special.xlogy(y, y) - y)

    def log_norm(self, y, wt):
        """Per-row terms of the log density free of mu.

        Log binomial coefficients, or ``-log y!``.
        """
        if self.family == "binomial":
            m = np.round(wt)
            k = np.round(m * y)
            return special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)
        return -wt * special.gammaln(y + 1)

    def dev_resid(self, y, mu, wt):
        """Squared deviance residuals, ``2 (loglik(y) - loglik(mu))``."""
        return 2 * (self.loglik_saturated(y, wt) - self.loglik(y, mu, wt))

    def aic_terms(self, y, mu, wt):
        """Per-row ``-2 log density`` (R's ``family$aic`` summands)."""
        return -2 * (self.log_norm(y, wt) + self.loglik(y, mu, wt))


def make_family(func: str, family, link):
    """Validate ``family``/``link`` and return a :class:`Family`."""
    if not isinstance(family, str) or family not in _LINKS:
        fail(func, "family", family, "one of 'binomial', 'poisson'")
    if link is None:
        link = _LINKS[family][0]
    if not isinstance(link, str) or link not in _LINKS[family]:
        allowed = ", ".join(repr(v) for v in _LINKS[family])
        fail(func, "link", link, f"one of {allowed} for family={family!r}")
    return Family(family, link)
