"""Random-variable helpers with implicit size (R: stats r* and fabricatr draw_*).

Each public function returns a lazy node whose size is the level it is evaluated
on, so ``add_level(N=10, u=normal(sd=2))`` draws 10 values per simulation, all
simulations at once. Arguments may be numbers, column names or string expressions,
arrays or other nodes. Passing ``N=`` or ``seed=`` evaluates eagerly instead
(standalone use); deterministic helpers (``draw_ordered``, ``draw_likert``,
``split_quantile``) given plain arrays evaluate eagerly too.
"""

from __future__ import annotations

import contextvars
import functools
import numbers
from typing import Any

import numpy as np
from scipy.special import expit, ndtr

from .._validation import fail
from ..expressions import Context, Lazy, register_draws
from ..expressions import needs_data as _needs_data
from ..expressions import reducers as _reducers
from ..expressions import short_repr as _short_repr
from ..groups import GroupIndex

__all__ = [
    "bernoulli", "binomial", "draw_binary", "draw_binary_icc", "draw_binomial",
    "draw_categorical", "draw_count", "draw_likert", "draw_normal_icc", "draw_ordered",
    "draw_quantile", "exponential", "gamma", "lognormal", "normal", "poisson",
    "split_quantile", "uniform",
]

_LINKS = {"identity": None, "probit": ndtr, "logit": expit}


class Draw(Lazy):
    """A lazy call of one of the helpers of this module (see its ``kind``)."""

    __slots__ = ("kind", "params")

    def __init__(self, kind: str, params: tuple[tuple[str, Any], ...]):
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "params", params)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self):
        return (Draw, (self.kind, self.params))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_short_repr(v)}" for k, v in self.params if v is not None)
        return f"{self.kind}({args})"

    def live_params(self) -> list[Any]:
        """Parameters evaluated on the data (not labels, breaks or link names)."""
        raw = _RAW_PARAMS.get(self.kind, ())
        return [v for k, v in self.params if k not in raw]

    def _eval(self, ctx: Context) -> np.ndarray:
        raw = _RAW_PARAMS.get(self.kind, ())
        vals = {k: (v if k in raw else ctx.value(v, k)) for k, v in self.params}
        return _SAMPLERS[self.kind](ctx, **vals)


# Parameters passed to samplers unevaluated (labels, breaks, link names...).
_RAW_PARAMS = {
    "draw_binomial": {"link"}, "draw_binary": {"link"},
    "draw_categorical": {"category_labels"},
    "draw_ordered": {"breaks", "break_labels", "strict"},
    "draw_likert": {"min", "max", "bins", "breaks", "labels"},
    "split_quantile": {"type"}, "draw_quantile": {"type"},
    "draw_normal_icc": {"ICC", "sd", "sd_between", "total_sd"},
    "draw_binary_icc": {"ICC"},
}


#: False while the expression language calls a helper: its arguments are already the rows
#: of a batch (of several simulations), so a deterministic draw must stay a lazy node and
#: be evaluated on the batch's context (``split_quantile`` is per simulation).
_EAGER = contextvars.ContextVar("eager_draws", default=True)


def _lazy(helper: Any) -> Any:
    """Wrap ``helper`` to return a lazy node even when its arguments are concrete arrays."""
    @functools.wraps(helper)
    def call(*args: Any, **kwargs: Any) -> Any:
        token = _EAGER.set(False)
        try:
            return helper(*args, **kwargs)
        finally:
            _EAGER.reset(token)
    return call


def _make(kind: str, params: dict[str, Any], *, N: Any = None, seed: Any = None,
          eager_if_concrete: bool = False) -> Any:
    node = Draw(kind, tuple(params.items()))
    raw = _RAW_PARAMS.get(kind, ())
    live = [v for k, v in node.params if k not in raw]
    if N is not None or seed is not None:
        if any(_needs_data(v) for v in live):
            fail(kind, "N" if N is not None else "seed", N if N is not None else seed,
                 "omitted when an argument names a column (the draw needs data)")
        return node.draw(N=N, seed=seed)
    if eager_if_concrete and _EAGER.get() and \
            not any(_needs_data(v) or isinstance(v, Lazy) for v in live):
        return node.draw()
    return node


# ------------------------------------------------------------------------ checks
def _is_num(x: Any) -> bool:
    return isinstance(x, (numbers.Real, np.floating, np.integer)) and not isinstance(x, bool)


def _check_scalar(kind: str, arg: str, x: Any, rule: str, ok) -> None:
    """Declaration-time check of numeric scalar arguments (others checked at run)."""
    if _is_num(x) and not ok(float(x)):
        fail(kind, arg, x, rule)


def _check_rows(kind: str, arg: str, x: Any, rule: str, ok) -> None:
    arr = np.asarray(x, dtype=np.float64)
    bad = ~ok(arr) & ~np.isnan(arr)
    if np.any(bad):
        first = arr.reshape(-1)[np.argmax(bad.reshape(-1))]
        fail(kind, arg, first, rule, shown=repr(float(first)))


def _prob_ok(a):
    return (a >= 0) & (a <= 1)


def _nonneg(a):
    return a >= 0


# --------------------------------------------------------------------- samplers
def _real_scalar(x: Any) -> bool:
    """Whether ``x`` is a plain real number (then arithmetic on a draw can be in place)."""
    return _is_num(x) and not isinstance(x, np.integer)


def _s_normal(ctx, mean, sd):
    _check_rows("normal", "sd", sd, "non-negative", _nonneg)
    # loc + scale * z is faster than rng.normal with array arguments.
    z = ctx.rng.standard_normal(ctx.n_rows)
    if _real_scalar(mean) and _real_scalar(sd):
        # the same products and sums, in the draw's own array (no column-sized temporaries)
        z *= sd
        z += mean
        return z
    return mean + sd * z


def _s_uniform(ctx, min, max):
    u = ctx.rng.random(ctx.n_rows)
    if _real_scalar(min) and _real_scalar(max):
        u *= np.asarray(max) - min      # in place: the same numbers as below
        u += min
        out = u
    else:
        out = min + (np.asarray(max) - min) * u
    bad = np.broadcast_to(np.asarray(max) < min, out.shape)
    if np.any(bad):
        out = np.where(bad, np.nan, out)      # R's runif: NaN where max < min
    return out


def _nan_rows(draw, n_rows: int, *params: Any) -> np.ndarray:
    """Draw with NaN parameters giving NaN rows (R's rpois/rbinom give NA), not a crash."""
    arrays = [np.asarray(p, dtype=float) for p in params]
    missing = np.zeros(n_rows, dtype=bool)
    for a in arrays:
        if a.ndim and np.isnan(a).any():
            missing = missing | np.broadcast_to(np.isnan(a), (n_rows,))
        elif not a.ndim and np.isnan(a):
            missing[:] = True
    if not missing.any():
        return draw(*params)
    filled = [np.where(np.isnan(a), 0.0, a) for a in arrays]
    return np.where(missing, np.nan, draw(*filled))


def _s_poisson(ctx, lam):
    _check_rows("poisson", "lam", lam, "non-negative", _nonneg)
    return _nan_rows(lambda m: ctx.rng.poisson(m, size=ctx.n_rows), ctx.n_rows, lam)


def _s_binomial(ctx, size, prob):
    _check_rows("binomial", "prob", prob, "in [0, 1]", _prob_ok)
    return _nan_rows(lambda n, p: ctx.rng.binomial(np.asarray(n).astype(np.int64), p,
                                                   size=ctx.n_rows), ctx.n_rows, size, prob)


def _s_bernoulli(ctx, prob):
    _check_rows("bernoulli", "prob", prob, "in [0, 1]", _prob_ok)
    return (ctx.rng.random(ctx.n_rows) < prob).astype(np.int64)


def _s_lognormal(ctx, meanlog, sdlog):
    return ctx.rng.lognormal(meanlog, sdlog, size=ctx.n_rows)


def _s_gamma(ctx, shape, rate):
    return ctx.rng.gamma(shape, 1.0 / np.asarray(rate, dtype=float), size=ctx.n_rows)


def _s_exponential(ctx, rate):
    return ctx.rng.exponential(1.0 / np.asarray(rate, dtype=float), size=ctx.n_rows)


def _link_prob(kind, prob, latent, link):
    if latent is not None:
        f = _LINKS[link]
        prob = latent if f is None else f(np.asarray(latent, dtype=float))
    if prob is None:
        fail(kind, "prob", None, "given (or `latent` with a link)")
    _check_rows(kind, "prob", prob, "in [0, 1] (use `latent=` with a link for other "
                "scales)", _prob_ok)
    return prob


def _s_draw_binomial(ctx, prob, trials, latent, link):
    prob = _link_prob("draw_binomial", prob, latent, link)
    trials = np.asarray(trials)
    if np.any(trials <= 0) or np.any(trials % 1 != 0):
        fail("draw_binomial", "trials", trials, "positive integers",
             shown=repr(trials.tolist()))
    return _nan_rows(lambda p: ctx.rng.binomial(trials.astype(np.int64), p, size=ctx.n_rows),
                     ctx.n_rows, prob)


def _s_draw_binary(ctx, prob, latent, link):
    prob = _link_prob("draw_binary", prob, latent, link)
    return (ctx.rng.random(ctx.n_rows) < prob).astype(np.int64)


def _s_draw_count(ctx, mean=None, latent=None):
    if latent is not None:
        mean = latent          # fabricatr: mean = link(latent), identity link only
    _check_rows("draw_count", "mean", mean, "non-negative", _nonneg)
    return _nan_rows(lambda m: ctx.rng.poisson(m, size=ctx.n_rows), ctx.n_rows, mean)


def _s_draw_categorical(ctx, prob, category_labels, latent=None):
    if latent is not None:
        prob = latent          # fabricatr: prob = link(latent), identity link only
    p = np.asarray(prob, dtype=float)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[0] not in (1, ctx.n_rows):
        fail("draw_categorical", "prob", prob, "a vector of category probabilities or a "
             "matrix with one row per observation", shown=f"<shape {p.shape}>")
    if np.any(p < 0):
        fail("draw_categorical", "prob", prob, "non-negative", shown="<negative entries>")
    if np.any(~(p.sum(axis=1) > 0)):
        # R's sample() stops: "too few positive probabilities".
        fail("draw_categorical", "prob", prob, "positive in at least one category on every "
             "row", shown="<a row with no positive probability>")
    # R's sample(prob=) normalises each row.
    cum = np.cumsum(p, axis=1)
    cum = cum / cum[:, -1:]
    u = ctx.rng.random(ctx.n_rows)
    if cum.shape[0] == 1:
        codes = np.searchsorted(cum[0], u, side="right") + 1
    else:
        codes = (u[:, None] >= cum).sum(axis=1) + 1
    codes = np.minimum(codes, p.shape[1])
    if category_labels is not None:
        return np.asarray(list(category_labels), dtype=object)[codes - 1]
    return codes.astype(np.int64)


def _codes_to_labels(codes: np.ndarray, labels) -> np.ndarray:
    labels = list(labels)
    out = np.full(codes.shape[0], None, dtype=object)
    ok = ~np.isnan(codes) & (codes >= 1) & (codes <= len(labels))
    out[ok] = np.asarray(labels, dtype=object)[codes[ok].astype(np.int64) - 1]
    return out


def _maybe_int(codes: np.ndarray) -> np.ndarray:
    return codes.astype(np.int64) if not np.any(np.isnan(codes)) else codes


def _s_draw_ordered(ctx, x, breaks, break_labels, strict, latent):
    if latent is not None:
        x = latent
    x = np.asarray(x, dtype=float)
    b = np.asarray(breaks, dtype=float)
    add = 0 if (strict or np.any(np.isinf(b) & (b != 0))) else 1
    # findInterval: number of breaks <= x, so a value equal to a break goes up.
    codes = (np.searchsorted(b, x, side="right") + add).astype(float)
    codes[np.isnan(x)] = np.nan
    if strict:
        codes[(x > b[-1]) | (x < b[0])] = np.nan
    codes = np.broadcast_to(codes, (ctx.n_rows,)) if codes.ndim == 0 else codes
    if break_labels is not None:
        return _codes_to_labels(codes, break_labels)
    return _maybe_int(codes)


def _s_draw_likert(ctx, x, min, max, bins, breaks, labels):
    if breaks is None:
        breaks = np.linspace(min, max, int(bins) + 1)
    b = np.asarray(breaks, dtype=float)
    x = np.asarray(x, dtype=float)
    # cut(): right-closed (b[i-1], b[i]]; x <= b[0] or x > b[-1] is NA.
    codes = np.searchsorted(b, x, side="left").astype(float)
    codes[(codes == 0) | (codes == len(b)) | np.isnan(x)] = np.nan
    if labels is not None:
        return _codes_to_labels(codes, labels)
    return codes


def _group_quantile_codes(x: np.ndarray, group: np.ndarray, n_groups: int,
                          k: int) -> np.ndarray:
    """cut(x, quantile(x, 0:k/k), include.lowest=TRUE) within each group."""
    x = np.asarray(x, dtype=float)
    order = np.lexsort((x, group))
    xs, gs = x[order], group[order]
    n = np.bincount(gs, minlength=n_groups)
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    probs = np.arange(1, k) / k
    # R's quantile type 7: h = (n - 1) p, interpolate between floor and ceil.
    h = (np.maximum(n, 1)[:, None] - 1) * probs[None, :]
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n, 1)[:, None] - 1)
    base = start[:, None]
    top = max(len(xs) - 1, 0)
    if len(xs) == 0:
        return np.zeros(0, dtype=np.int64)
    qlo = xs[np.minimum(base + lo, top)]
    qhi = xs[np.minimum(base + hi, top)]
    inner = qlo + (h - lo) * (qhi - qlo)
    return (inner[group] < x[:, None]).sum(axis=1) + 1


def _s_split_quantile(ctx, x, type):
    codes = _group_quantile_codes(np.broadcast_to(np.asarray(x, float), (ctx.n_rows,)),
                                  ctx.group, ctx.n_groups, int(type))
    return codes.astype(np.int64)


def _s_draw_quantile(ctx, type):
    return _s_split_quantile(ctx, ctx.rng.random(ctx.n_rows), type)


def _clusters(ctx, clusters) -> GroupIndex:
    """Group the rows by (simulation, cluster), clusters in sorted order."""
    cl = np.broadcast_to(np.asarray(clusters), (ctx.n_rows,))
    return GroupIndex.from_keys(ctx.sim, ctx.n_sims, cl)


def _per_cluster(x, codes, k, n_rows):
    """Spread a value per cluster (length k, sorted cluster order) to the rows."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1 and arr.shape[0] == k and k != n_rows:
        return arr[codes]
    return arr


def _s_draw_normal_icc(ctx, mean, clusters, ICC, sd, sd_between, total_sd):
    groups = _clusters(ctx, clusters)
    codes, k = groups.codes, groups.n_groups
    if ICC is None:
        if sd is None or sd_between is None:
            fail("draw_normal_icc", "ICC", None, "given unless both `sd` and `sd_between` "
                 "are")
    elif sd is None and sd_between is None:
        sd = 1.0
    if sd is None:
        sd = np.sqrt((1 - ICC) * np.asarray(sd_between, float) ** 2 / ICC)
    if sd_between is None:
        sd_between = np.sqrt(ICC * np.asarray(sd, float) ** 2 / (1 - ICC))
    sd_b = np.asarray(sd_between, float)
    sd_w = np.asarray(sd, float)
    alpha = ctx.rng.normal(0.0, 1.0, size=k) * (sd_b if sd_b.ndim == 0 else 1.0)
    if sd_b.ndim:
        # One sd_between per cluster, in order of the cluster codes.
        alpha = alpha * sd_b
    eps = ctx.rng.normal(0.0, 1.0, size=ctx.n_rows)
    if sd_w.ndim:
        sd_w = sd_w[codes]
    out = _per_cluster(mean, codes, k, ctx.n_rows) + alpha[codes] + sd_w * eps
    if total_sd is not None:
        # fabricatr rescales to the requested total sd within the dataset.
        red = _reducers(ctx)
        m, s = red["mean"](out), red["sd"](out)
        out = (out - m) * total_sd / s + m
    return out


def _s_draw_binary_icc(ctx, prob, clusters, ICC):
    groups = _clusters(ctx, clusters)
    codes, k = groups.codes, groups.n_groups
    p = np.broadcast_to(_per_cluster(prob, codes, k, ctx.n_rows), (ctx.n_rows,))
    _check_rows("draw_binary_icc", "prob", p, "in [0, 1]", _prob_ok)
    # The cluster's probability is that of its first row (prob is constant per cluster).
    z = (ctx.rng.random(k) < p[groups.first]).astype(np.int64)[codes]
    y = (ctx.rng.random(ctx.n_rows) < p).astype(np.int64)
    # sqrt(ICC): the correlation of two members is ICC when each copies the
    # cluster draw with probability sqrt(ICC).
    u = ctx.rng.random(ctx.n_rows) < np.sqrt(ICC)
    return np.where(u, z, y)


_SAMPLERS = {
    "normal": _s_normal, "uniform": _s_uniform, "poisson": _s_poisson,
    "binomial": _s_binomial, "bernoulli": _s_bernoulli, "lognormal": _s_lognormal,
    "gamma": _s_gamma, "exponential": _s_exponential, "draw_binomial": _s_draw_binomial,
    "draw_binary": _s_draw_binary, "draw_count": _s_draw_count,
    "draw_categorical": _s_draw_categorical, "draw_ordered": _s_draw_ordered,
    "draw_likert": _s_draw_likert, "split_quantile": _s_split_quantile,
    "draw_quantile": _s_draw_quantile, "draw_normal_icc": _s_draw_normal_icc,
    "draw_binary_icc": _s_draw_binary_icc,
}


# ----------------------------------------------------------------- public helpers
def normal(mean: Any = 0.0, sd: Any = 1.0, *, N: int | None = None, seed: Any = None):
    """Draw from a normal distribution (R: ``rnorm(N, mean, sd)``).

    Parameters
    ----------
    mean, sd : number, column name, array or lazy node
        Mean and standard deviation (``sd >= 0``).
    N : int, optional
        Draw ``N`` values now instead of returning a lazy node.
    seed : int, SeedSequence or Generator, optional
        Seed for an eager draw.

    Returns
    -------
    Lazy or numpy.ndarray
        A lazy node, or the values when ``N`` or ``seed`` is given.

    Examples
    --------
    >>> normal(mean=0, sd=0.001)
    normal(mean=0, sd=0.001)
    >>> normal(N=3, seed=1).shape
    (3,)
    """
    _check_scalar("normal", "sd", sd, "non-negative", lambda v: v >= 0)
    return _make("normal", {"mean": mean, "sd": sd}, N=N, seed=seed)


def uniform(min: Any = 0.0, max: Any = 1.0, *, N: int | None = None, seed: Any = None):
    """Uniform draws on ``[min, max)`` (R: ``runif``).

    Examples
    --------
    >>> x = uniform(0.4, 0.8, N=1000, seed=2)
    >>> bool((x >= 0.4).all() and (x < 0.8).all())
    True
    """
    if _is_num(min) and _is_num(max) and max < min:
        fail("uniform", "max", max, f"at least min ({min})")
    return _make("uniform", {"min": min, "max": max}, N=N, seed=seed)


def poisson(lam: Any = 1.0, *, N: int | None = None, seed: Any = None):
    """Poisson draws (R: ``rpois(N, lambda)``).

    Examples
    --------
    >>> poisson(20) + 5
    poisson(lam=20) + 5
    """
    _check_scalar("poisson", "lam", lam, "non-negative", lambda v: v >= 0)
    return _make("poisson", {"lam": lam}, N=N, seed=seed)


def binomial(size: Any = 1, prob: Any = 0.5, *, N: int | None = None, seed: Any = None):
    """Binomial draws (R: ``rbinom(N, size, prob)``).

    Examples
    --------
    >>> int(binomial(10, 0.0, N=4, seed=1).sum())
    0
    """
    _check_scalar("binomial", "prob", prob, "a number in [0, 1]", lambda v: 0 <= v <= 1)
    _check_scalar("binomial", "size", size, "a non-negative integer",
                  lambda v: v >= 0 and v % 1 == 0)
    return _make("binomial", {"size": size, "prob": prob}, N=N, seed=seed)


def bernoulli(prob: Any = 0.5, *, N: int | None = None, seed: Any = None):
    """0/1 draws with success probability ``prob``.

    Examples
    --------
    >>> bernoulli(1.0, N=3, seed=0).tolist()
    [1, 1, 1]
    """
    _check_scalar("bernoulli", "prob", prob, "a number in [0, 1]", lambda v: 0 <= v <= 1)
    return _make("bernoulli", {"prob": prob}, N=N, seed=seed)


def lognormal(meanlog: Any = 0.0, sdlog: Any = 1.0, *, N: int | None = None,
              seed: Any = None):
    """Log-normal draws (R: ``rlnorm``).

    Examples
    --------
    >>> bool((lognormal(N=5, seed=1) > 0).all())
    True
    """
    _check_scalar("lognormal", "sdlog", sdlog, "non-negative", lambda v: v >= 0)
    return _make("lognormal", {"meanlog": meanlog, "sdlog": sdlog}, N=N, seed=seed)


def gamma(shape: Any = 1.0, rate: Any = 1.0, *, N: int | None = None, seed: Any = None):
    """Gamma draws with R's parameters (``rgamma(N, shape, rate)``; mean shape/rate).

    Examples
    --------
    >>> gamma(shape=2, rate=4, N=2, seed=1).shape
    (2,)
    """
    _check_scalar("gamma", "shape", shape, "non-negative", lambda v: v >= 0)
    _check_scalar("gamma", "rate", rate, "positive", lambda v: v > 0)
    return _make("gamma", {"shape": shape, "rate": rate}, N=N, seed=seed)


def exponential(rate: Any = 1.0, *, N: int | None = None, seed: Any = None):
    """Exponential draws (R: ``rexp(N, rate)``; mean 1/rate).

    Examples
    --------
    >>> exponential(rate=2, N=2, seed=1).shape
    (2,)
    """
    _check_scalar("exponential", "rate", rate, "positive", lambda v: v > 0)
    return _make("exponential", {"rate": rate}, N=N, seed=seed)


def _check_link(kind: str, link: str) -> None:
    if link not in _LINKS:
        fail(kind, "link", link, "one of 'identity', 'probit', 'logit'")


def draw_binomial(prob: Any = None, trials: Any = 1, *, latent: Any = None,
                  link: str = "identity", N: int | None = None, seed: Any = None):
    """Binomial counts out of ``trials`` (fabricatr ``draw_binomial``).

    ``prob`` must lie in [0, 1]; with ``latent=`` the probability is
    ``link(latent)`` (``"probit"`` or ``"logit"``), as in fabricatr.

    Examples
    --------
    >>> draw_binomial(prob=0.5, trials=10, N=3, seed=1).shape
    (3,)
    """
    _check_link("draw_binomial", link)
    _check_scalar("draw_binomial", "prob", prob, "a number in [0, 1]", lambda v: 0 <= v <= 1)
    _check_scalar("draw_binomial", "trials", trials, "a positive integer",
                  lambda v: v > 0 and v % 1 == 0)
    return _make("draw_binomial", {"prob": prob, "trials": trials, "latent": latent,
                                   "link": link}, N=N, seed=seed)


def draw_binary(prob: Any = None, *, latent: Any = None, link: str = "identity",
                N: int | None = None, seed: Any = None):
    """0/1 draws (fabricatr ``draw_binary``): ``prob`` or ``link(latent)``.

    Examples
    --------
    >>> draw_binary(latent="x", link="probit")
    draw_binary(latent='x', link='probit')
    >>> draw_binary(prob=[0.0, 1.0], seed=1).tolist()
    [0, 1]
    """
    _check_link("draw_binary", link)
    _check_scalar("draw_binary", "prob", prob, "a number in [0, 1]", lambda v: 0 <= v <= 1)
    return _make("draw_binary", {"prob": prob, "latent": latent, "link": link}, N=N,
                 seed=seed)


def _identity_only(kind: str, link: str, what: str) -> None:
    """Refuse any link but the identity (fabricatr 1.0 takes ``link`` here, identity only)."""
    _check_link(kind, link)
    if link != "identity":
        fail(kind, "link", link, f"'identity' ({what} take no link function, as in "
             "fabricatr)")


def _latent_or(kind: str, arg: str, value: Any, latent: Any, default: Any) -> Any:
    if latent is not None and value is not None:
        fail(kind, arg, value, "omitted when latent is given (fabricatr: "
             f"{arg} = link(latent))")
    return default if value is None and latent is None else value


def draw_count(mean: Any = None, *, latent: Any = None, link: str = "identity",
               N: int | None = None, seed: Any = None):
    """Poisson counts with the given mean (fabricatr ``draw_count``).

    As in fabricatr 1.0, ``mean`` may be given as ``latent`` with the identity link
    (any other link is refused: count data take no link function). The mean
    defaults to 1.

    Examples
    --------
    >>> draw_count(mean=0, N=2, seed=1).tolist()
    [0, 0]
    >>> draw_count(latent="x")
    draw_count(latent='x')
    """
    _identity_only("draw_count", link, "count data")
    mean = _latent_or("draw_count", "mean", mean, latent, 1.0)
    _check_scalar("draw_count", "mean", mean, "non-negative", lambda v: v >= 0)
    _check_scalar("draw_count", "latent", latent, "non-negative", lambda v: v >= 0)
    params = {"mean": mean} if latent is None else {"latent": latent}
    return _make("draw_count", params, N=N, seed=seed)


def draw_categorical(prob: Any = None, *, category_labels: Any = None, latent: Any = None,
                     link: str = "identity", N: int | None = None, seed: Any = None):
    """Categorical draws, codes ``1..k`` or ``category_labels`` (fabricatr).

    Parameters
    ----------
    prob : sequence of k numbers or matrix (rows x k)
        Category probabilities (normalised per row, as R's ``sample`` does).
    category_labels : sequence of k labels, optional
    latent : optional
        The probabilities under fabricatr 1.0's other name (``prob = link(latent)``);
        only the identity ``link`` is accepted, as in fabricatr.
    link : {"identity"}

    Examples
    --------
    >>> draw_categorical([0, 1, 0], N=2, seed=1).tolist()
    [2, 2]
    >>> draw_categorical(latent=[0, 0, 1], N=1, seed=1).tolist()
    [3]
    """
    _identity_only("draw_categorical", link, "categorical data")
    prob = _latent_or("draw_categorical", "prob", prob, latent, None)
    if prob is None and latent is None:
        fail("draw_categorical", "prob", None, "given (or latent)")
    if latent is not None:
        return _make("draw_categorical", _categorical_params(latent, category_labels, "latent"),
                     N=N, seed=seed)
    return _make("draw_categorical", _categorical_params(prob, category_labels, "prob"),
                 N=N, seed=seed)


def _categorical_params(prob: Any, category_labels: Any, arg: str) -> dict[str, Any]:
    p = np.asarray(prob, dtype=float) if not isinstance(prob, (str, Lazy)) else None
    if p is not None:
        if p.ndim not in (1, 2) or np.any(p < 0):
            fail("draw_categorical", arg, prob, "non-negative category probabilities")
        k = p.shape[-1]
        if category_labels is not None and len(category_labels) != k:
            fail("draw_categorical", "category_labels", category_labels,
                 f"of length {k} (one per category)")
        prob = p
    if arg == "latent":
        return {"prob": None, "category_labels": category_labels, "latent": prob}
    return {"prob": prob, "category_labels": category_labels}


def draw_ordered(x: Any = None, breaks: Any = (-1, 0, 1), break_labels: Any = None, *,
                 strict: bool = False, latent: Any = None):
    """Ordered categories from cutting ``x`` at ``breaks`` (fabricatr ``draw_ordered``).

    A value equal to a break goes to the upper category (R's ``findInterval``);
    codes run from 1 (below the first break) to ``len(breaks) + 1``.

    Examples
    --------
    >>> draw_ordered([-2.0, -1.0, 0.5, 1.0], breaks=[-1, 0, 1]).tolist()
    [1, 2, 3, 4]
    """
    if x is None and latent is None:
        fail("draw_ordered", "x", None, "given")
    b = np.asarray(breaks, dtype=float)
    if b.ndim != 1 or b.size == 0 or np.any(np.isnan(b)):
        fail("draw_ordered", "breaks", breaks, "a non-empty vector of numbers")
    if np.any(np.diff(b) < 0):
        fail("draw_ordered", "breaks", breaks, "in ascending order")
    add = 0 if (strict or np.any(np.isinf(b) & (b != 0))) else 1
    if break_labels is not None and len(break_labels) != len(b) + (1 if add else -1):
        fail("draw_ordered", "break_labels", break_labels,
             f"of length {len(b) + (1 if add else -1)} (one per category)")
    return _make("draw_ordered", {"x": x, "breaks": tuple(b.tolist()),
                                  "break_labels": break_labels, "strict": strict,
                                  "latent": latent}, eager_if_concrete=True)


def draw_likert(x: Any, min: float | None = None, max: float | None = None,
                bins: int | None = None, breaks: Any = None, labels: Any = None):
    """Likert codes from cutting ``x`` into bins (fabricatr ``draw_likert``).

    Bins are right-closed over ``(min, max]`` (R's ``cut``), so ``x == min`` and
    values outside the range give NaN. Without ``labels`` the result is the
    numeric code (float, NaN for missing); with ``labels`` code ``k`` becomes
    ``labels[k - 1]`` (None for missing).

    Examples
    --------
    >>> draw_likert([-5.0, -4.9, 0.0, 5.0], min=-5, max=5, bins=7).tolist()
    [nan, 1.0, 4.0, 7.0]
    """
    if breaks is None:
        if min is None or max is None or bins is None:
            fail("draw_likert", "breaks", None, "given, or else min, max and bins all given")
        if not _is_num(bins) or bins < 1 or bins % 1:
            fail("draw_likert", "bins", bins, "a positive integer")
        if max <= min:
            fail("draw_likert", "max", max, f"greater than min ({min})")
        breaks = np.linspace(min, max, int(bins) + 1)
    b = np.asarray(breaks, dtype=float)
    if b.ndim != 1 or b.size < 2 or np.any(np.diff(b) <= 0):
        fail("draw_likert", "breaks", breaks, "at least two increasing numbers")
    if labels is not None and len(labels) != len(b) - 1:
        fail("draw_likert", "labels", labels, f"of length {len(b) - 1} (one per bin)")
    return _make("draw_likert", {"x": x, "min": None, "max": None, "bins": None,
                                 "breaks": tuple(b.tolist()), "labels": labels},
                 eager_if_concrete=True)


def split_quantile(x: Any, type: int):
    """Quantile group (1..type) of each value (fabricatr ``split_quantile``).

    Groups are R's ``cut(x, quantile(x, seq(0, 1, length.out = type + 1)),
    include.lowest = TRUE)``, computed within each simulation.

    Examples
    --------
    >>> split_quantile([1.0, 2.0, 3.0, 4.0], type=2).tolist()
    [1, 1, 2, 2]
    """
    if not _is_num(type) or type < 2 or type % 1:
        fail("split_quantile", "type", type, "an integer of at least 2")
    return _make("split_quantile", {"x": x, "type": int(type)}, eager_if_concrete=True)


def draw_quantile(type: int, *, N: int | None = None, seed: Any = None):
    """Quantile groups 1..type of uniform draws (fabricatr ``draw_quantile``).

    Examples
    --------
    >>> sorted(set(draw_quantile(4, N=100, seed=1).tolist()))
    [1, 2, 3, 4]
    """
    if not _is_num(type) or type < 2 or type % 1:
        fail("draw_quantile", "type", type, "an integer of at least 2")
    return _make("draw_quantile", {"type": int(type)}, N=N, seed=seed)


def draw_normal_icc(mean: Any = 0.0, *, clusters: Any, ICC: float | None = None,
                    sd: Any = None, sd_between: Any = None, total_sd: float | None = None,
                    N: int | None = None, seed: Any = None):
    """Draw normal values with intra-cluster correlation (fabricatr ``draw_normal_icc``).

    ``mean + a_cluster + e`` with ``a ~ N(0, sd_between)`` and ``e ~ N(0, sd)``;
    given ``ICC`` only, ``sd = 1`` and ``sd_between = sqrt(ICC / (1 - ICC))``.
    With ``total_sd`` the result is rescaled to that standard deviation within each
    dataset. Clusters are grouped by (simulation, cluster).

    Examples
    --------
    >>> x = draw_normal_icc(clusters=[1, 1, 2, 2], ICC=0.5, seed=1)
    >>> x.shape
    (4,)
    """
    if ICC is not None:
        if not _is_num(ICC) or not 0 <= ICC <= 1:
            fail("draw_normal_icc", "ICC", ICC, "a number in [0, 1]")
        if (ICC >= 0.999 or ICC <= 0.001) and (sd is not None or sd_between is None):
            fail("draw_normal_icc", "ICC", ICC, "strictly between 0.001 and 0.999 when a "
                 "within-cluster sd is used")
        if ICC <= 0.001 and sd_between is not None:
            fail("draw_normal_icc", "ICC", ICC, "above 0.001 when sd_between is given")
        if total_sd is not None and (sd is not None or sd_between is not None):
            fail("draw_normal_icc", "total_sd", total_sd, "omitted when sd or sd_between "
                 "is given")
    else:
        if total_sd is not None:
            fail("draw_normal_icc", "total_sd", total_sd, "omitted when ICC is not given")
        if sd is None or sd_between is None:
            fail("draw_normal_icc", "ICC", None, "given unless both sd and sd_between are")
    if total_sd is not None and (not _is_num(total_sd) or total_sd <= 0):
        fail("draw_normal_icc", "total_sd", total_sd, "a positive number")
    for name, v in (("sd", sd), ("sd_between", sd_between)):
        _check_scalar("draw_normal_icc", name, v, "non-negative", lambda z: z >= 0)
    return _make("draw_normal_icc", {"mean": mean, "clusters": clusters, "ICC": ICC,
                                     "sd": sd, "sd_between": sd_between,
                                     "total_sd": total_sd}, N=N, seed=seed)


def draw_binary_icc(prob: Any = 0.5, *, clusters: Any, ICC: float = 0.0,
                    N: int | None = None, seed: Any = None):
    """0/1 draws with intra-cluster correlation ``ICC`` (fabricatr ``draw_binary_icc``).

    Each row copies its cluster's draw with probability ``sqrt(ICC)`` and takes
    its own draw otherwise; both draws have probability ``prob`` (constant within
    a cluster).

    Examples
    --------
    >>> draw_binary_icc(0.5, clusters=[1, 1, 2, 2], ICC=1, seed=3).reshape(2, 2)[:, 0].size
    2
    """
    if not _is_num(ICC) or not 0 <= ICC <= 1:
        fail("draw_binary_icc", "ICC", ICC, "a number in [0, 1]")
    _check_scalar("draw_binary_icc", "prob", prob, "a number in [0, 1]",
                  lambda v: 0 <= v <= 1)
    return _make("draw_binary_icc", {"prob": prob, "clusters": clusters, "ICC": float(ICC)},
                 N=N, seed=seed)


DRAW_FUNCTIONS = {
    "normal": normal, "uniform": uniform, "poisson": poisson, "binomial": binomial,
    "bernoulli": bernoulli, "lognormal": lognormal, "gamma": gamma,
    "exponential": exponential, "draw_binomial": draw_binomial, "draw_binary": draw_binary,
    "draw_count": draw_count, "draw_categorical": draw_categorical,
    "draw_ordered": draw_ordered, "draw_likert": draw_likert,
    "split_quantile": split_quantile, "draw_quantile": draw_quantile,
    "draw_normal_icc": draw_normal_icc, "draw_binary_icc": draw_binary_icc,
}

# The expression language calls these by name; it never imports fabricate.
register_draws({name: _lazy(helper) for name, helper in DRAW_FUNCTIONS.items()})
