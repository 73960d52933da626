"""Sample-size and minimum-detectable-effect search by simulation.

R's DeclareDesign leaves this to the user (DeclareDesign#381): diagnose a grid, eyeball
where power crosses 80%. Here the grid's power estimates are treated as what they are,
binomial counts with Monte Carlo error, and a two-parameter power curve is fitted to
them by maximum likelihood:

    power(x) = Phi(mu - z) + Phi(-mu - z),   mu = a + b * t(x),   z = Phi^-1(1 - alpha / 2)

which is the power of a two-sided z-test whose standardized effect ``mu`` is linear in
``t(x)`` (``t = sqrt`` for sample sizes: the standardized effect grows with sqrt(n);
``t = identity`` for effect sizes). The fitted curve is inverted at the target, a second
round of simulations is spent around that first answer (stochastic root finding), the
curve is refitted on every point, and the answer's uncertainty interval comes from the
fitted coefficients' sampling distribution (their inverse Fisher information).
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.stats import norm

from .._validation import check_positive_int, check_probability, fail
from ..engine.seeding import root_seed_sequence
from ..errors import DeclarationError
from .diagnosands import declare_diagnosands
from .simulate import diagnose_design, expand_design

__all__ = ["SearchResult", "find_mde", "find_sample_size"]


@dataclass(frozen=True)
class SearchResult:
    """The answer of :func:`find_sample_size` / :func:`find_mde` and the curve behind it.

    Attributes
    ----------
    param : str
        The designer parameter searched.
    diagnosand : str
        The targeted diagnosand ("power").
    target : float
    estimate : float
        Where the fitted curve crosses the target (continuous).
    conf_low, conf_high : float
        Uncertainty interval of ``estimate`` from the Monte Carlo error (``level``).
    level : float
    recommended : float
        For integer parameters, ``ceil(estimate)``; else ``estimate``.
    grid : pandas.DataFrame
        One row per simulated parameter value: the value, ``n_sims`` (simulations with an
        estimate), ``successes``, the diagnosand, its binomial ``std_error`` and the
        ``round`` it was simulated in.
    curve : pandas.DataFrame
        The fitted curve on a fine grid: value, ``fitted``, ``conf_low``, ``conf_high``.
    coef : tuple of float
        ``(a, b)`` of ``mu = a + b * t(x)``.
    vcov : numpy.ndarray
        Their 2 x 2 covariance.
    transform : str
        "sqrt" or "identity".
    estimator : str
    """

    param: str
    diagnosand: str
    target: float
    estimate: float
    conf_low: float
    conf_high: float
    level: float
    recommended: float
    grid: pd.DataFrame = field(repr=False)
    curve: pd.DataFrame = field(repr=False)
    coef: tuple[float, float] = field(repr=False)
    vcov: np.ndarray = field(repr=False)
    transform: str = field(repr=False, default="sqrt")
    estimator: str = field(repr=False, default="")

    def summary(self) -> str:
        """One sentence: the answer with its interval."""
        rec = (f"; use {self.param} = {self.recommended:g}"
               if self.recommended != self.estimate else "")
        return (f"{self.diagnosand} reaches {self.target:g} at {self.param} = "
                f"{self.estimate:.4g} ({self.level:.0%} interval {self.conf_low:.4g} to "
                f"{self.conf_high:.4g}){rec} [estimator {self.estimator!r}, "
                f"{int(self.grid['n_sims'].sum()):,} simulations at {len(self.grid)} values]")

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return (f"<p>{html.escape(self.summary())}</p>"
                + self.grid.to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}"))

    def plot(self, **kwargs: Any) -> Any:
        """Plot the simulated points, the fitted curve and the answer (``plot_search``)."""
        from ..plot import plot_search

        return plot_search(self, **kwargs)


# ------------------------------------------------------------------ the curve

def _power(mu: np.ndarray, z: float) -> np.ndarray:
    return norm.cdf(mu - z) + norm.cdf(-mu - z)


def _dpower(mu: np.ndarray, z: float) -> np.ndarray:
    return norm.pdf(mu - z) - norm.pdf(-mu - z)


def _fit(t: np.ndarray, k: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Binomial maximum likelihood of (a, b); returns the estimate and its covariance."""
    p_hat = np.clip((k + 0.5) / (n + 1.0), 1e-4, 1 - 1e-4)
    mu0 = np.maximum(norm.ppf(p_hat) + z, 0.0)  # ignores the far tail: only a start
    X = np.column_stack([np.ones_like(t), t])
    start = np.linalg.lstsq(X, mu0, rcond=None)[0] if len(t) > 1 else np.array([mu0[0], 0.0])
    if start[1] <= 0:
        start = np.array([0.0, max(mu0.max(), 0.1) / max(t.max(), 1e-12)])

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        mu = theta[0] + theta[1] * t
        p = np.clip(_power(mu, z), 1e-12, 1 - 1e-12)
        d = _dpower(mu, z)
        ll = k * np.log(p) + (n - k) * np.log1p(-p)
        score = (k / p - (n - k) / (1 - p)) * d
        return -float(ll.sum()), -np.array([score.sum(), (score * t).sum()])

    res = optimize.minimize(nll, start, jac=True, method="BFGS")
    theta = res.x
    mu = theta[0] + theta[1] * t
    p = np.clip(_power(mu, z), 1e-12, 1 - 1e-12)
    w = n * _dpower(mu, z) ** 2 / (p * (1 - p))
    info = (X * w[:, None]).T @ X
    try:
        vcov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        vcov = np.full((2, 2), np.nan)
    return theta, vcov


def _mu_at(target: float, z: float) -> float:
    """Solve for the standardized effect at which the two-sided power is ``target``."""
    return float(optimize.brentq(lambda m: _power(np.array(m), z) - target, 0.0, 60.0))


_TRANSFORMS: dict[str, tuple[Callable[[np.ndarray], np.ndarray],
                             Callable[[np.ndarray], np.ndarray]]] = {
    "sqrt": (np.sqrt, np.square),
    "identity": (lambda x: x, lambda x: x),
}


# ------------------------------------------------------------------ simulation

def _simulate(designer: Callable, param: str, values: list[Any], fixed: Mapping[str, Any],
              estimator: str | None, sims: int, seed: np.random.SeedSequence,
              alpha: float, func: str) -> tuple[pd.DataFrame, str]:
    bound = functools.partial(designer, **fixed) if fixed else designer
    try:
        designs = expand_design(bound, **{param: values})
    except TypeError as e:
        fail(func, "param", param, f"a parameter of the designer ({e})")
    labels = designs[0].estimator_labels
    if estimator is None:
        if len(labels) != 1:
            fail(func, "estimator", estimator, "one of the design's estimator labels ("
                 + ", ".join(labels) + ") when it has several")
        estimator = labels[0]
    elif estimator not in labels:
        fail(func, "estimator", estimator, "one of the design's estimator labels ("
             + ", ".join(labels) + ")")
    dx = diagnose_design(designs, diagnosands=declare_diagnosands("power", alpha=alpha),
                         sims=sims, bootstrap_sims=0, seed=seed)
    d = dx.diagnosands
    d = d[d["estimator"] == estimator]
    if d[param].duplicated().any():
        fail(func, "estimator", estimator, "an estimator with one term and inquiry (this "
             "one reports several; declare it with term=...)")
    n = d["n_sims"].to_numpy(dtype=float)
    if "n_failed" in d.columns:
        n = n - d["n_failed"].to_numpy(dtype=float)
    p = d["power"].to_numpy(dtype=float)
    out = pd.DataFrame({param: d[param].to_numpy(), "n_sims": n.astype(int),
                        "successes": np.round(p * n).astype(int), "power": p})
    return out, estimator


def _search(func: str, designer: Any, param: str, target: Any, estimator: str | None,
            sims: int, seed: Any, lower: Any, upper: Any, points: int, rounds: int,
            level: float, alpha: float, fixed: Mapping[str, Any] | None,
            transform: str, integer: bool | None) -> SearchResult:
    diagnosand, goal, alpha, sims, points, rounds, level = _check_search(
        func, designer, param, target, sims, lower, upper, points, rounds, level, alpha,
        transform)
    if integer is None:
        integer = all(isinstance(v, (int, np.integer)) for v in (lower, upper))
    fixed = dict(fixed or {})
    if param in fixed:
        fail(func, "fixed", fixed, f"parameters other than the searched {param!r}")
    fwd, inv = _TRANSFORMS[transform]
    z = float(norm.ppf(1 - alpha / 2))
    mu_star = _mu_at(goal, z)
    root = root_seed_sequence(seed, func)

    def values_for(xs: np.ndarray, seen: set) -> list[Any]:
        xs = np.clip(xs, lower, upper)
        vals = [int(round(v)) for v in xs] if integer else [float(v) for v in xs]
        return [v for v in dict.fromkeys(vals) if v not in seen]

    def crossing(theta: np.ndarray) -> float:
        a, b = theta
        return float(inv(np.array((mu_star - a) / b))) if b > 0 else math.nan

    grid_parts = []
    seen: set = set()
    t_lo, t_hi = fwd(np.array(float(lower))), fwd(np.array(float(upper)))
    vals = values_for(inv(np.linspace(t_lo, t_hi, points)), seen)
    if len(vals) < 3:
        fail(func, "upper", upper, f"far enough above lower ({lower!r}) for 3 distinct "
             "values to simulate")
    theta = vcov = None
    for r in range(rounds):
        if not vals:
            break
        rseed = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, r))
        part, estimator = _simulate(designer, param, vals, fixed, estimator, sims, rseed,
                                    alpha, func)
        part["round"] = r + 1
        grid_parts.append(part)
        seen.update(vals)
        grid = pd.concat(grid_parts, ignore_index=True).sort_values(param, kind="stable")
        t = fwd(grid[param].to_numpy(dtype=float))
        theta, vcov = _fit(t, grid["successes"].to_numpy(float),
                           grid["n_sims"].to_numpy(float), z)
        x_hat = crossing(theta)
        if not math.isfinite(x_hat) or x_hat > upper or x_hat < lower:
            _not_reached(func, lower, upper, diagnosand, goal, grid["power"].to_numpy(), x_hat)
        # Spend the next round where the answer is: at it and around it.
        sd_t = _root_sd(theta, vcov, mu_star)
        t_hat = float(fwd(np.array(x_hat)))
        spread = max(sd_t * 2.0, (t_hi - t_lo) / (4 * points))
        vals = values_for(inv(np.maximum(t_hat + spread * np.linspace(-1, 1, 3), 0.0)), seen)

    grid = pd.concat(grid_parts, ignore_index=True).sort_values(param, kind="stable")
    grid = grid.reset_index(drop=True)
    p, n = grid["power"].to_numpy(), grid["n_sims"].to_numpy(float)
    grid["std_error"] = np.sqrt(p * (1 - p) / n)
    estimate = crossing(theta)
    # The interval: the crossing under draws of (a, b) from their sampling distribution
    # (a percentile interval, so it can be asymmetric as the inverse transform is).
    conf_low, conf_high = _interval(theta, vcov, root, mu_star, inv, level)
    curve = _curve(theta, vcov, z, fwd, inv, float(grid[param].min()),
                   float(grid[param].max()), level, param)
    recommended = float(math.ceil(estimate - 1e-9)) if integer else estimate
    return SearchResult(param=param, diagnosand=diagnosand, target=goal, estimate=estimate,
                        conf_low=float(conf_low), conf_high=float(conf_high), level=level,
                        recommended=recommended, grid=grid, curve=curve,
                        coef=(float(theta[0]), float(theta[1])), vcov=vcov,
                        transform=transform, estimator=estimator)


def _check_search(func: str, designer: Any, param: Any, target: Any, sims: Any, lower: Any,
                  upper: Any, points: Any, rounds: Any, level: Any, alpha: Any,
                  transform: str) -> tuple[str, float, float, int, int, int, float]:
    """Validate a search's arguments (in order, first failure wins)."""
    if not callable(designer):
        fail(func, "designer", designer, "a designer function returning a Design")
    if not isinstance(param, str) or not param.isidentifier():
        fail(func, "param", param, "the name of one of the designer's parameters")
    if not isinstance(target, Mapping) or len(target) != 1:
        fail(func, "target", target, 'a one-item dict such as {"power": 0.8}')
    (diagnosand, goal), = target.items()
    if diagnosand != "power":
        fail(func, "target", target, 'a power target such as {"power": 0.8} (other '
             "diagnosands are not searchable yet)")
    alpha = check_probability(func, "alpha", alpha, open_interval=True)
    goal = check_probability(func, "target", goal, open_interval=True)
    if goal <= alpha:
        fail(func, "target", target, f"a power above alpha ({alpha:g})")
    sims = check_positive_int(func, "sims", sims)
    points = check_positive_int(func, "points", points)
    if points < 3:
        fail(func, "points", points, "at least 3")
    rounds = check_positive_int(func, "rounds", rounds)
    level = check_probability(func, "level", level, open_interval=True)
    for arg, v in (("lower", lower), ("upper", upper)):
        if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool) \
                or not math.isfinite(v):
            fail(func, arg, v, "a number (the search range)")
    if not lower < upper:
        fail(func, "upper", upper, f"greater than lower ({lower!r})")
    if transform == "sqrt" and lower < 0:
        fail(func, "lower", lower, "non-negative for a sample size")
    return diagnosand, goal, alpha, sims, points, rounds, level


def _not_reached(func: str, lower: Any, upper: Any, diagnosand: str, goal: float,
                 p: np.ndarray, x_hat: float) -> None:
    """Fail: the fitted curve does not reach the target within the range."""
    where = "above" if p.max() < goal else "below"
    guess = ("" if not math.isfinite(x_hat)
             else f"; the fitted curve crosses near {x_hat:.4g}")
    raise DeclarationError(
        f"{func}(lower={lower!r}, upper={upper!r}): {diagnosand} {goal:g} is not "
        f"reached within the range (simulated {diagnosand} {p.min():.2f} to "
        f"{p.max():.2f}){guess}; search {where} it.")


def _interval(theta: np.ndarray, vcov: np.ndarray, root: np.random.SeedSequence,
              mu_star: float, inv: Callable, level: float) -> tuple[float, float]:
    """Percentile interval of the crossing under draws of (a, b) (NaN when unstable)."""
    conf_low = conf_high = math.nan
    if np.all(np.isfinite(vcov)):
        rng = np.random.default_rng(np.random.SeedSequence(
            root.entropy, spawn_key=(*root.spawn_key, 2**31)))
        draws = rng.multivariate_normal(theta, vcov, size=4000, method="svd")
        good = draws[:, 1] > 0
        if good.mean() > 0.5:
            roots = inv((mu_star - draws[good, 0]) / draws[good, 1])
            q = (1 - level) / 2
            conf_low, conf_high = np.quantile(roots, [q, 1 - q])
    return conf_low, conf_high


def _root_sd(theta: np.ndarray, vcov: np.ndarray, mu_star: float) -> float:
    """Delta-method SD of the crossing on the transformed scale."""
    a, b = theta
    grad = np.array([-1.0 / b, -(mu_star - a) / b**2])
    v = float(grad @ vcov @ grad)
    return math.sqrt(v) if math.isfinite(v) and v > 0 else 0.0


def _curve(theta, vcov, z, fwd, inv, lo, hi, level, param) -> pd.DataFrame:
    x = np.linspace(lo, hi, 200)
    t = fwd(x)
    X = np.column_stack([np.ones_like(t), t])
    mu = X @ theta
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, vcov, X))
    zq = float(norm.ppf(0.5 + level / 2))
    a, b = _power(mu - zq * se, z), _power(mu + zq * se, z)
    return pd.DataFrame({param: x, "fitted": _power(mu, z),
                         "conf_low": np.minimum(a, b), "conf_high": np.maximum(a, b)})


# ------------------------------------------------------------------ public

def find_sample_size(designer: Callable[..., Any], param: str = "N", *,
                     target: Mapping[str, float] | None = None, estimator: str | None = None,
                     lower: float = 20, upper: float = 1000, sims: int = 500, points: int = 6,
                     rounds: int = 2, level: float = 0.95, alpha: float = 0.05,
                     fixed: Mapping[str, Any] | None = None, seed: Any = None
                     ) -> SearchResult:
    """Find the smallest sample size at which an estimator reaches a target power.

    Simulates the design at ``points`` values of ``param`` between ``lower`` and
    ``upper`` (``sims`` simulations each), fits the power curve
    ``Phi(mu - z) + Phi(-mu - z)`` with ``mu = a + b sqrt(x)`` to the simulated rejection
    counts by maximum likelihood, inverts it at the target, then spends ``rounds - 1``
    more rounds of simulations around the answer and refits on all points. The interval
    reflects the Monte Carlo error of the simulations (not a model-free guarantee; check
    the fit with ``result.plot()``).

    Parameters
    ----------
    designer : callable
        A designer function (e.g. ``dd.examples.two_arm``) taking ``param``.
    param : str, default "N"
        The sample-size parameter (e.g. "n_classes").
    target : dict, default {"power": 0.8}
    estimator : str, optional
        Estimator label; required when the design has several.
    lower, upper : number, default 20 and 1000
        The search range. Integers make the parameter integer.
    sims : int, default 500
        Simulations per parameter value.
    points : int, default 6
        Values simulated in the first round (spread evenly on the sqrt scale).
    rounds : int, default 2
        Rounds of simulation (each after the first adds 3 values around the answer).
    level : float, default 0.95
        Level of the uncertainty interval.
    alpha : float, default 0.05
        Significance level of the tests.
    fixed : dict, optional
        Other designer parameters held fixed (e.g. ``{"ate": 0.3}``).
    seed : int, optional

    Returns
    -------
    SearchResult
        ``estimate``, ``conf_low``/``conf_high``, ``recommended`` (rounded up), the
        simulated ``grid`` and the fitted ``curve``; ``.plot()`` draws them.

    Examples
    --------
    >>> import declaredesign as dd
    >>> from declaredesign.design.search import find_sample_size
    >>> res = find_sample_size(dd.examples.two_arm, "N", fixed={"ate": 0.5},
    ...                        lower=40, upper=300, sims=200, seed=1)
    >>> 90 < res.estimate < 170
    True
    """
    return _search("find_sample_size", designer, param, target or {"power": 0.8}, estimator,
                   sims, seed, lower, upper, points, rounds, level, alpha, fixed, "sqrt",
                   None)


def find_mde(designer: Callable[..., Any], param: str = "ate", *,
             target: Mapping[str, float] | None = None, estimator: str | None = None,
             lower: float = 0.0, upper: float = 1.0, sims: int = 500, points: int = 6,
             rounds: int = 2, level: float = 0.95, alpha: float = 0.05,
             fixed: Mapping[str, Any] | None = None, seed: Any = None) -> SearchResult:
    """Find the minimum detectable effect: the smallest effect detected with the target power.

    As :func:`find_sample_size`, with ``mu = a + b * effect`` (the standardized effect is
    linear in the effect size).

    Parameters
    ----------
    designer : callable
    param : str, default "ate"
        The effect-size parameter of the designer.
    target : dict, default {"power": 0.8}
    estimator : str, optional
    lower, upper : float, default 0 and 1
        The search range of effects (positive).
    sims, points, rounds, level, alpha, fixed, seed
        As in :func:`find_sample_size`.

    Returns
    -------
    SearchResult

    Examples
    --------
    >>> import declaredesign as dd
    >>> from declaredesign.design.search import find_mde
    >>> res = find_mde(dd.examples.two_arm, fixed={"N": 100}, upper=1.2, sims=200, seed=1)
    >>> 0.4 < res.estimate < 0.75
    True
    """
    return _search("find_mde", designer, param, target or {"power": 0.8}, estimator, sims,
                   seed, lower, upper, points, rounds, level, alpha, fixed, "identity", False)
