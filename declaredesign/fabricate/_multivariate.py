"""Correlated and multivariate draws (fabricatr ``correlate`` and ``draw_multivariate``).

``correlate(draw_count, mean=3, given="x", rho=0.5)`` draws a variable whose rank
correlation with ``x`` is about ``rho``, as fabricatr does: the ranks of ``x``
(average ties, divided by ``n + 1``) are mapped to standard normal scores ``z``;
``y = rho z + sqrt(1 - rho^2) e`` with ``e`` standard normal; the result is the
quantile function of the target distribution at ``pnorm(y)``. Ranks are taken
within each simulated dataset.

``draw_multivariate(["Y1", "Y2"], mvrnorm(mu=[0, 0], Sigma=[[1, .5], [.5, 1]]))``
adds several columns drawn together (R: ``draw_multivariate(c(Y1, Y2) ~
MASS::mvrnorm(N, mu, Sigma))``).
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit, ndtr, ndtri

from .._validation import fail
from ..batch import Batch
from ..expressions import Context, Lazy
from ..expressions import short_repr as _short_repr
from . import _draws

__all__ = ["MultivariateNormal", "draw_multivariate", "correlate", "mvrnorm"]

_LINK = {"identity": None, "probit": ndtr, "logit": expit}


# -------------------------------------------------- quantile functions by draw
def _q_binomial(q, size=1, prob=0.5):
    return stats.binom.ppf(q, np.asarray(size), prob)


def _link_prob(prob, latent, link):
    if latent is not None:
        f = _LINK[link]
        return latent if f is None else f(np.asarray(latent, dtype=float))
    return prob


def _q_draw_binomial(q, prob=None, trials=1, latent=None, link="identity"):
    return stats.binom.ppf(q, np.asarray(trials), _link_prob(prob, latent, link))


def _q_draw_binary(q, prob=None, latent=None, link="identity"):
    return stats.binom.ppf(q, 1, _link_prob(prob, latent, link))


def _q_draw_count(q, mean=None, latent=None, link="identity"):
    return stats.poisson.ppf(q, latent if latent is not None else mean)


# Our draw helpers -> (quantile function of q and their own arguments, integer result).
_OWN = {
    "normal": (lambda q, mean=0.0, sd=1.0: stats.norm.ppf(q, mean, sd), False),
    "uniform": (lambda q, min=0.0, max=1.0: min + q * (np.asarray(max) - min), False),
    "poisson": (lambda q, lam=1.0: stats.poisson.ppf(q, lam), True),
    "binomial": (_q_binomial, True),
    "bernoulli": (lambda q, prob=0.5: stats.binom.ppf(q, 1, prob), True),
    "lognormal": (lambda q, meanlog=0.0, sdlog=1.0:
                  stats.lognorm.ppf(q, sdlog, scale=np.exp(meanlog)), False),
    "gamma": (lambda q, shape=1.0, rate=1.0:
              stats.gamma.ppf(q, shape, scale=1 / np.asarray(rate, float)), False),
    "exponential": (lambda q, rate=1.0:
                    stats.expon.ppf(q, scale=1 / np.asarray(rate, float)), False),
    "draw_binomial": (_q_draw_binomial, True),
    "draw_binary": (_q_draw_binary, True),
    "draw_count": (_q_draw_count, True),
}

# R's r* generators by name -> quantile functions with R's argument names.
_R_QUANTILES: dict[str, tuple[Callable, bool]] = {
    "rnorm": (lambda q, mean=0.0, sd=1.0: stats.norm.ppf(q, mean, sd), False),
    "runif": (lambda q, min=0.0, max=1.0: min + q * (np.asarray(max) - min), False),
    "rpois": (lambda q, **kw: stats.poisson.ppf(q, kw["lambda"]), True),
    "rbinom": (lambda q, size, prob: stats.binom.ppf(q, size, prob), True),
    "rlnorm": (lambda q, meanlog=0.0, sdlog=1.0:
               stats.lognorm.ppf(q, sdlog, scale=np.exp(meanlog)), False),
    "rgamma": (lambda q, shape, rate=1.0:
               stats.gamma.ppf(q, shape, scale=1 / np.asarray(rate, float)), False),
    "rexp": (lambda q, rate=1.0: stats.expon.ppf(q, scale=1 / np.asarray(rate, float)),
             False),
    "rbeta": (lambda q, shape1, shape2: stats.beta.ppf(q, shape1, shape2), False),
    "rt": (lambda q, df: stats.t.ppf(q, df), False),
    "rchisq": (lambda q, df: stats.chi2.ppf(q, df), False),
    "rweibull": (lambda q, shape, scale=1.0: stats.weibull_min.ppf(q, shape, scale=scale),
                 False),
    "rcauchy": (lambda q, location=0.0, scale=1.0: stats.cauchy.ppf(q, location, scale),
                False),
    "rgeom": (lambda q, prob: stats.geom.ppf(q, prob) - 1, True),
    "rnbinom": (lambda q, size, prob: stats.nbinom.ppf(q, size, prob), True),
}

_R_ARGS = {"rpois": ("lambda",), "rbinom": ("size", "prob"), "rgamma": ("shape", "rate"),
           "rbeta": ("shape1", "shape2"), "rt": ("df",), "rchisq": ("df",),
           "rweibull": ("shape", "scale"), "rgeom": ("prob",), "rnbinom": ("size", "prob")}


def _handler_name(handler: Any) -> str:
    return handler if isinstance(handler, str) else getattr(handler, "__name__", repr(handler))


def _quantile_function(handler: Any) -> tuple[Callable, bool]:
    """Return the quantile function standing for ``handler`` and whether it gives integers."""
    if isinstance(handler, str):
        # "qpois" names the same distribution as "rpois" (fabricatr maps r* to q*).
        name = "r" + handler[1:] if handler.startswith("q") else handler
        if name in _R_QUANTILES:
            return _R_QUANTILES[name]
        if name in _OWN:
            return _OWN[name]
    elif callable(handler):
        own = _draws.DRAW_FUNCTIONS.get(getattr(handler, "__name__", ""))
        if own is handler and handler.__name__ in _OWN:
            return _OWN[handler.__name__]
        try:
            params = inspect.signature(handler).parameters
        except (TypeError, ValueError):
            params = {}
        if "quantile_y" in params:
            return (lambda q, **kw: handler(quantile_y=q, **kw)), False
    fail("correlate", "draw_handler", _handler_name(handler),
         "a draw function (normal, poisson, draw_count, draw_binomial, draw_binary, ...), "
         "an R generator name ('rnorm', 'rpois', 'rbinom', 'rlnorm', 'rgamma', 'rexp', "
         "'runif', 'rbeta', 'rt', ...) or a function with a `quantile_y` argument",
         shown=repr(_handler_name(handler)))
    raise AssertionError  # pragma: no cover - fail raises


def group_ranks(x: np.ndarray, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, ...]:
    """R's ``rank(x)`` (ties averaged) within each group, and each row's group size.

    Examples
    --------
    >>> r, n = group_ranks(np.array([3.0, 1.0, 3.0, 5.0]), np.zeros(4, int), 1)
    >>> r.tolist(), n.tolist()
    ([2.5, 1.0, 2.5, 4.0], [4, 4, 4, 4])
    """
    x = np.asarray(x, dtype=float)
    n = np.bincount(group, minlength=n_groups)
    if x.shape[0] == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    order = np.lexsort((x, group))
    xs, gs = x[order], group[order]
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    pos = np.arange(x.shape[0]) - start[gs] + 1.0
    new_run = np.ones(x.shape[0], dtype=bool)
    new_run[1:] = (gs[1:] != gs[:-1]) | (xs[1:] != xs[:-1])
    run = np.cumsum(new_run) - 1
    avg = np.bincount(run, weights=pos) / np.bincount(run)
    ranks = np.empty(x.shape[0])
    ranks[order] = avg[run]
    ranks[np.isnan(x)] = np.nan
    return ranks, n[group]


class Correlated(Lazy):
    """A lazy :func:`correlate` draw."""

    __slots__ = ("handler", "given", "rho", "params")

    def __init__(self, handler: Any, given: Any, rho: float, params: tuple):
        object.__setattr__(self, "handler", handler)
        object.__setattr__(self, "given", given)
        object.__setattr__(self, "rho", rho)
        object.__setattr__(self, "params", params)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self):
        return (Correlated, (self.handler, self.given, self.rho, self.params))

    def __repr__(self) -> str:
        args = "".join(f", {k}={_short_repr(v)}" for k, v in self.params)
        return (f"correlate({_handler_name(self.handler)}{args}, given="
                f"{_short_repr(self.given)}, rho={self.rho!r})")

    def live_params(self) -> list[Any]:
        """Arguments evaluated on the data."""
        return [self.given, *(v for k, v in self.params if k not in ("link",))]

    def _eval(self, ctx: Context) -> np.ndarray:
        given = np.broadcast_to(np.asarray(ctx.value(self.given, "given"), dtype=float),
                                (ctx.n_rows,))
        ranks, n = group_ranks(given, ctx.group, ctx.n_groups)
        base = ndtri(ranks / (n + 1))
        e = ctx.rng.standard_normal(ctx.n_rows)
        y = self.rho * base + np.sqrt(1.0 - self.rho ** 2) * e
        q = ndtr(y)
        quantile, integer = _quantile_function(self.handler)
        kwargs = {k: (v if k == "link" else ctx.value(v, k)) for k, v in self.params}
        out = np.asarray(quantile(q, **kwargs))
        if integer and not np.any(np.isnan(out)) and np.all(np.isfinite(out)):
            return out.astype(np.int64)
        return out


def correlate(draw_handler: Any, *, given: Any, rho: float, **params: Any) -> Correlated:
    """Draw a variable rank-correlated with ``given`` (fabricatr ``correlate``).

    Parameters
    ----------
    draw_handler : draw function, R generator name, or callable
        Which distribution: one of this package's draws (``normal``, ``poisson``,
        ``draw_count``, ``draw_binomial``, ``draw_binary``, ...), an R generator
        name (``"rnorm"``, ``"rpois"``, ``"rbinom"``, ``"rlnorm"``, ``"rgamma"``...,
        with R's argument names), or a function taking ``quantile_y``.
    given : column name, expression, array or lazy value
        The variable to correlate with (ranked within each simulation).
    rho : float in [-1, 1]
        Correlation of the normal scores.
    **params
        The distribution's arguments (``mean=3``, ``prob=0.3, trials=5``,
        ``latent="x", link="probit"``...); unlike fabricatr they may vary by row.

    Returns
    -------
    Correlated
        A lazy draw; use it in a level or a step (``y=correlate(...)``), or call
        ``.draw(seed=...)`` when every argument is concrete.

    Examples
    --------
    >>> from declaredesign.fabricate import draw_binomial
    >>> x = [1.0, 5.0, 3.0, 2.0]
    >>> correlate(draw_binomial, prob=0.5, trials=10, given=x, rho=1).draw(seed=1).tolist()
    [4, 6, 5, 5]
    >>> correlate("rpois", given="x", rho=0.5, **{"lambda": 3})
    correlate(rpois, lambda=3, given='x', rho=0.5)
    """
    if not isinstance(rho, numbers.Real) or isinstance(rho, bool) or not -1 <= rho <= 1:
        fail("correlate", "rho", rho, "a single number in [-1, 1]")
    if given is None:
        fail("correlate", "given", None, "given (the variable to correlate with)")
    if np.ndim(given) > 1:
        fail("correlate", "given", given, "a single vector", shown="<matrix>")
    _quantile_function(draw_handler)
    if "link" in params:
        _draws._check_link("correlate", params["link"])
    if isinstance(draw_handler, str):
        need = _R_ARGS.get(draw_handler, ())
        missing = [a for a in need if a not in params and a not in ("rate", "scale")]
        if missing:
            fail("correlate", missing[0], None, f"given for {draw_handler}")
    return Correlated(draw_handler, given, float(rho), tuple(params.items()))


# ------------------------------------------------------------- multivariate
class MultivariateNormal:
    """``mvrnorm(mu, Sigma)``: one multivariate normal row per data row (MASS ``mvrnorm``).

    Examples
    --------
    >>> mvrnorm(mu=[0, 1], Sigma=[[1, 0.5], [0.5, 1]]).k
    2
    """

    __slots__ = ("mu", "Sigma", "_factor")

    def __init__(self, mu: Any, Sigma: Any):
        mu = np.atleast_1d(np.asarray(mu, dtype=float))
        sigma = np.asarray(Sigma, dtype=float)
        if sigma.ndim == 0:
            sigma = sigma.reshape(1, 1)
        k = mu.shape[0]
        if mu.ndim != 1 or not np.all(np.isfinite(mu)):
            fail("mvrnorm", "mu", mu.tolist(), "a vector of finite numbers")
        if sigma.shape != (k, k) or not np.all(np.isfinite(sigma)):
            fail("mvrnorm", "Sigma", sigma.tolist(), f"a {k} x {k} matrix (as long as mu)")
        if not np.allclose(sigma, sigma.T):
            fail("mvrnorm", "Sigma", sigma.tolist(), "symmetric")
        ev, vec = np.linalg.eigh(sigma)
        # MASS: refuse clearly negative eigenvalues, clip rounding noise to zero.
        if np.any(ev < -1e-6 * abs(ev.max())):
            fail("mvrnorm", "Sigma", sigma.tolist(), "positive (semi-)definite")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "Sigma", sigma)
        object.__setattr__(self, "_factor", vec * np.sqrt(np.maximum(ev, 0.0)))

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self):
        return (MultivariateNormal, (self.mu, self.Sigma))

    def __repr__(self) -> str:
        return f"mvrnorm(mu={self.mu.tolist()!r}, Sigma={self.Sigma.tolist()!r})"

    @property
    def k(self) -> int:
        """Number of columns drawn."""
        return int(self.mu.shape[0])

    def __call__(self, N: int, rng: np.random.Generator) -> np.ndarray:
        """Draw an ``N x k`` matrix."""
        z = rng.standard_normal((int(N), self.k))
        return self.mu + z @ self._factor.T


def mvrnorm(mu: Any, Sigma: Any) -> MultivariateNormal:
    """Multivariate normal rows (R: ``MASS::mvrnorm(N, mu, Sigma)``; ``N`` is the level's).

    Examples
    --------
    >>> mvrnorm([0, 0], [[1, 0.9], [0.9, 1]])(5, np.random.default_rng(1)).shape
    (5, 2)
    """
    return MultivariateNormal(mu, Sigma)


class MultivariateDraw:
    """Several columns drawn together (see :func:`draw_multivariate`)."""

    __slots__ = ("names", "draw")

    def __init__(self, names: tuple[str, ...], draw: Any):
        object.__setattr__(self, "names", list(names))
        object.__setattr__(self, "draw", draw)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self):
        return (MultivariateDraw, (tuple(self.names), self.draw))

    def __repr__(self) -> str:
        return f"draw_multivariate({self.names!r}, {_short_repr(self.draw)})"

    def _matrix(self, batch: Batch, rng: np.random.Generator) -> np.ndarray:
        n = batch.n_rows
        mat = self.draw(n, rng)
        mat = np.asarray(mat.to_numpy() if isinstance(mat, pd.DataFrame) else mat)
        if mat.ndim == 1 and len(self.names) == 1:
            mat = mat[:, None]
        if mat.ndim != 2 or mat.shape != (n, len(self.names)):
            fail("draw_multivariate", "draw", self.draw, f"a function giving an N x "
                 f"{len(self.names)} matrix (one column per name); it gave shape "
                 f"{np.shape(mat)} for N = {n}", shown=_short_repr(self.draw))
        return mat

    def apply(self, batch: Batch, rng: np.random.Generator | None = None) -> Batch:
        """Add the columns to a batch (all simulations at once)."""
        rng = rng if rng is not None else np.random.default_rng()
        mat = self._matrix(batch, rng)
        return batch.with_columns({nm: mat[:, j] for j, nm in enumerate(self.names)})

    def __call__(self, data: pd.DataFrame | int, seed: Any = None) -> pd.DataFrame:
        """Draw for a DataFrame (added columns) or ``N`` rows (a new DataFrame)."""
        if isinstance(data, numbers.Integral):
            batch = Batch({}, np.zeros(int(data), dtype=np.int64), 1)
            out = self.apply(batch, np.random.default_rng(seed))
            return pd.DataFrame({nm: out[nm] for nm in self.names})
        out = self.apply(Batch.from_pandas(data), np.random.default_rng(seed))
        res = data.copy()
        for nm in self.names:
            res[nm] = out[nm]
        return res


def draw_multivariate(names: str | Sequence[str], draw: Any, *, k: int | None = None,
                      sep: str = "_") -> MultivariateDraw:
    """Draw several columns at once (fabricatr ``draw_multivariate``).

    Parameters
    ----------
    names : str or list of str
        The column names, or a prefix: ``"Y"`` names the columns ``Y_1 .. Y_k``
        (R: ``Y ~ mvrnorm(...)`` versus ``c(Y1, Y2) ~ mvrnorm(...)``).
    draw : mvrnorm(...) or callable
        ``mvrnorm(mu, Sigma)``, or a function ``f(N, rng)`` returning an ``N x k``
        matrix (or DataFrame) drawn with the simulation's generator ``rng``.
    k : int, optional
        Number of columns with a prefix and a callable (known from ``mvrnorm``).
    sep : str, default "_"
        Separator between a prefix and the column number.

    Returns
    -------
    MultivariateDraw
        Use it as a variable of a level or a step (its keyword is a placeholder; it
        adds its own columns), or call it on ``N`` / a DataFrame.

    Examples
    --------
    >>> d = draw_multivariate("Y", mvrnorm(mu=[0, 0], Sigma=[[1, 0.5], [0.5, 1]]))
    >>> d.names
    ['Y_1', 'Y_2']
    >>> d(4, seed=1).shape
    (4, 2)
    """
    width = draw.k if isinstance(draw, MultivariateNormal) else k
    if not callable(draw):
        fail("draw_multivariate", "draw", draw, "mvrnorm(mu, Sigma) or a function "
             "f(N, rng) returning an N x k matrix", shown=_short_repr(draw))
    if isinstance(names, str):
        if width is None:
            fail("draw_multivariate", "k", None, "given with a prefix name and a function "
                 "(the number of columns), or names given as a list")
        cols = tuple(f"{names}{sep}{j}" for j in range(1, int(width) + 1))
    else:
        cols = tuple(names)
        if width is not None and len(cols) != width:
            fail("draw_multivariate", "names", list(cols), f"{width} names (one per column "
                 "drawn)")
    if not cols or not all(isinstance(c, str) and c.isidentifier() for c in cols) or \
            len(set(cols)) != len(cols):
        fail("draw_multivariate", "names", names, "distinct column names")
    return MultivariateDraw(cols, draw)
