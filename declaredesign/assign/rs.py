"""Random sampling: randomizr's ``*_rs`` functions and ``declare_rs``.

Sampling is two-arm assignment (1 = sampled) with its own defaults: ``prob``
defaults to 0.5, and stratified sampling with ``prob`` rounds within each stratum
as :func:`~declaredesign.assign.complete_ra` does (``floor(N p)`` when
``ceil(N p) == N > 1``).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._validation import fail
from ..errors import DeclarationError
from ._declaration import (
    SeedLike,
    Spec,
    _Declaration,
    check_count_array,
    check_prob_array,
    check_scalar_count,
    check_scalar_prob,
    conduct_or_declare,
    is_array,
    shown,
)

__all__ = [
    "RSDeclaration",
    "cluster_rs",
    "cluster_rs_probabilities",
    "complete_rs",
    "complete_rs_probabilities",
    "declare_rs",
    "draw_rs",
    "obtain_inclusion_probabilities",
    "simple_rs",
    "simple_rs_probabilities",
    "strata_and_cluster_rs",
    "strata_and_cluster_rs_probabilities",
    "strata_rs",
    "strata_rs_probabilities",
]

_RS_PARAMS = ("N", "strata", "clusters", "n", "n_unit", "prob", "prob_unit", "strata_n",
              "strata_prob", "simple", "permutation_matrix")
_CONFLICT = ("prob", "prob_unit", "n", "n_unit", "strata_prob", "strata_n")


class RSDeclaration(_Declaration):
    """A random sampling procedure (randomizr's ``declare_rs``), frozen.

    ``rs_type`` is one of ``"simple"``, ``"complete"``, ``"stratified"``,
    ``"clustered"``, ``"stratified_and_clustered"``. Conducting it gives a 0/1
    inclusion indicator; ``probabilities`` gives ``prob_0``/``prob_1`` and
    :meth:`inclusion_probabilities` the probability of being sampled.

    Examples
    --------
    >>> from declaredesign.assign import declare_rs
    >>> d = declare_rs(N=10, n=3)
    >>> d.rs_type, int(d.conduct(seed=1).sum())
    ('complete', 3)
    """

    _params = _RS_PARAMS
    _block_arg = "strata"
    _unit_args = ("prob_unit", "n_unit")

    @property
    def rs_type(self) -> str:
        """Kind of procedure, inferred as randomizr does."""
        if self.permutation_matrix is not None:
            return "custom"
        if self.strata is not None and self.clusters is not None:
            return "stratified_and_clustered"
        if self.clusters is not None:
            return "clustered"
        if self.strata is not None:
            return "stratified"
        return "simple" if self.simple else "complete"

    def _conditions(self) -> np.ndarray:
        return np.array([0, 1])

    def _validate(self) -> None:
        if self.permutation_matrix is not None:
            self._validate_custom((*_CONFLICT, "strata", "clusters"))
            if not np.isin(np.asarray(self.permutation_matrix), [0, 1]).all():
                fail(self._func, "permutation_matrix", self.permutation_matrix,
                     "a matrix of 0s and 1s (1 = sampled)", shown="<matrix>")
            return
        self._validate_design()

    def _validate_design(self) -> None:
        f = self._func
        if self.N is not None:
            ok = isinstance(self.N, numbers.Integral) and not isinstance(self.N, bool) \
                and self.N > 0
            if not ok:
                fail(f, "N", self.N, "a positive integer")
        if self.simple and self.strata is not None:
            fail(f, "simple", True, "False when strata are given")
        for name in ("strata", "clusters"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str) and not is_array(v):
                fail(f, name, v, "a column name or an array", shown=shown(v))
        given = [a for a in _CONFLICT if getattr(self, a) is not None]
        if len(given) > 1:
            raise DeclarationError(
                f"{f}({', '.join(f'{a}={shown(getattr(self, a))}' for a in given)}): specify "
                f"only one of {', '.join(given)}; got {len(given)}.")
        arg = given[0] if given else None
        object.__setattr__(self, "_arg", arg)
        v = getattr(self, arg) if arg else None
        if arg is not None and arg.startswith("strata_") and self.strata is None:
            fail(f, arg, v, "given only with strata (strata is None)", shown=shown(v))
        if self.simple and arg is not None and "prob" not in arg:
            fail(f, arg, v, "left unset when simple=True (use prob or prob_unit)",
                 shown=shown(v))
        if arg == "prob":
            check_scalar_prob(f, arg, v)
        elif arg == "n":
            check_scalar_count(f, arg, v)
            if self.N is not None and self.strata is None and self.clusters is None \
                    and v > self.N:
                fail(f, "n", v, f"at most N ({self.N})")
        elif arg in ("prob_unit", "n_unit") and not isinstance(v, str):
            (check_prob_array if arg == "prob_unit" else check_count_array)(f, arg, v)
        elif arg == "strata_prob":
            check_prob_array(f, arg, v)
        elif arg == "strata_n":
            check_count_array(f, arg, v)

    def _spec(self) -> Spec:
        arg = self._arg
        v = getattr(self, arg) if arg else None
        if self.simple:
            if arg == "prob_unit":
                return Spec("simple", "unit", v, arg)
            p = 0.5 if v is None else v
            return Spec("simple", "const", [1 - p, p], "prob")
        if arg == "n":
            return Spec("m2", "const", v, arg)
        if arg == "n_unit":
            return Spec("m2", "unit", v, arg)
        if arg == "strata_n":
            return Spec("m2", "block", np.asarray(v), arg)
        if arg == "prob_unit":
            return Spec("p2", "unit", v, arg)
        if arg == "strata_prob":
            return Spec("p2", "block", np.asarray(v, float), arg)
        return Spec("p2", "const", 0.5 if v is None else v, "prob")

    def inclusion_probabilities(self, data: Any = None) -> np.ndarray:
        """Probability that each unit is sampled."""
        return self.probabilities(data)["prob_1"].to_numpy()

    def inclusion_probabilities_batch(self, batch) -> np.ndarray:
        """Inclusion probability of every row of a batch."""
        if self.permutation_matrix is not None:
            return self.probabilities_batch(batch, np.ones(batch.n_rows, dtype=np.int64))
        return self.plan(batch).row_prob_matrix()[:, 1]


def _eager_or_decl(func: str, params: dict[str, Any], seed: SeedLike):
    return conduct_or_declare(RSDeclaration(func, **params), seed)


def _probabilities(func: str, params: dict[str, Any]) -> np.ndarray:
    decl = RSDeclaration(func, **params)
    if decl.is_declarative:
        fail(func, "N", None, "given (or strata/clusters as arrays) to compute probabilities",
             shown="None")
    return decl.inclusion_probabilities()


def declare_rs(N: int | None = None, strata: Any = None, clusters: Any = None,
               n: int | None = None, n_unit: Any = None, prob: float | None = None,
               prob_unit: Any = None, strata_n: Any = None, strata_prob: Any = None,
               simple: bool = False, permutation_matrix: Any = None) -> RSDeclaration:
    """Declare a random sampling procedure (randomizr's ``declare_rs``).

    ``permutation_matrix`` (0/1, one row per unit, one column per possible sample)
    gives randomizr's custom sampling: a uniformly random column, given alone.

    Examples
    --------
    >>> from declaredesign.assign import declare_rs
    >>> d = declare_rs(strata=[1, 1, 2, 2, 2], strata_n=[1, 2])
    >>> d.inclusion_probabilities().round(3).tolist()
    [0.5, 0.5, 0.667, 0.667, 0.667]
    >>> declare_rs(permutation_matrix=[[1, 0], [1, 1], [0, 1]]).inclusion_probabilities().tolist()
    [0.5, 1.0, 0.5]
    """
    return RSDeclaration("declare_rs", N=N, strata=strata, clusters=clusters, n=n,
                         n_unit=n_unit, prob=prob, prob_unit=prob_unit, strata_n=strata_n,
                         strata_prob=strata_prob, simple=simple,
                         permutation_matrix=permutation_matrix)


def draw_rs(declaration: RSDeclaration, data: Any = None, *,
            seed: SeedLike = None) -> np.ndarray:
    """Draw one sample (0/1 indicator) from a declaration (randomizr's ``draw_rs``).

    Examples
    --------
    >>> from declaredesign.assign import declare_rs, draw_rs
    >>> int(draw_rs(declare_rs(N=10, n=4), seed=2).sum())
    4
    """
    if not isinstance(declaration, RSDeclaration):
        fail("draw_rs", "declaration", declaration, "a declaration made by declare_rs()",
             shown=type(declaration).__name__)
    return declaration.conduct(data, seed=seed)


def obtain_inclusion_probabilities(declaration: RSDeclaration, data: Any = None) -> np.ndarray:
    """Inclusion probability of every unit under a sampling declaration.

    Examples
    --------
    >>> from declaredesign.assign import declare_rs, obtain_inclusion_probabilities
    >>> obtain_inclusion_probabilities(declare_rs(N=4, n=1)).tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    if not isinstance(declaration, RSDeclaration):
        fail("obtain_inclusion_probabilities", "declaration", declaration,
             "a declaration made by declare_rs()", shown=type(declaration).__name__)
    return declaration.inclusion_probabilities(data)


def simple_rs(N: int | None = None, prob: float | None = None, prob_unit: Any = None,
              *, seed: SeedLike = None):
    """Sample each unit independently (simple random sampling; default prob 0.5).

    Examples
    --------
    >>> from declaredesign.assign import simple_rs
    >>> simple_rs(N=4, prob=1.0, seed=1).tolist()
    [1, 1, 1, 1]
    """
    return _eager_or_decl("simple_rs", dict(N=N, prob=prob, prob_unit=prob_unit, simple=True),
                          seed)


def simple_rs_probabilities(N: int, prob: float | None = None,
                            prob_unit: Any = None) -> np.ndarray:
    """Inclusion probabilities of :func:`simple_rs`.

    Examples
    --------
    >>> from declaredesign.assign import simple_rs_probabilities
    >>> simple_rs_probabilities(N=2).tolist()
    [0.5, 0.5]
    """
    return _probabilities("simple_rs_probabilities",
                          dict(N=N, prob=prob, prob_unit=prob_unit, simple=True))


def complete_rs(N: int | None = None, n: int | None = None, n_unit: Any = None,
                prob: float | None = None, prob_unit: Any = None, *, seed: SeedLike = None):
    """Complete random sampling: exactly ``n`` (or ``N * prob``, rounded) sampled.

    Examples
    --------
    >>> from declaredesign.assign import complete_rs
    >>> int(complete_rs(N=10, n=3, seed=1).sum())
    3
    """
    return _eager_or_decl("complete_rs", dict(N=N, n=n, n_unit=n_unit, prob=prob,
                                              prob_unit=prob_unit), seed)


def complete_rs_probabilities(N: int, n: int | None = None, n_unit: Any = None,
                              prob: float | None = None, prob_unit: Any = None) -> np.ndarray:
    """Inclusion probabilities of :func:`complete_rs`.

    Examples
    --------
    >>> from declaredesign.assign import complete_rs_probabilities
    >>> complete_rs_probabilities(N=3, prob=0.9).round(4).tolist()
    [0.6667, 0.6667, 0.6667]
    """
    return _probabilities("complete_rs_probabilities", dict(N=N, n=n, n_unit=n_unit, prob=prob,
                                                            prob_unit=prob_unit))


def strata_rs(strata: Any = None, prob: float | None = None, prob_unit: Any = None,
              n: int | None = None, n_unit: Any = None, strata_n: Any = None,
              strata_prob: Any = None, *, seed: SeedLike = None):
    """Stratified random sampling: complete sampling within each stratum.

    Examples
    --------
    >>> from declaredesign.assign import strata_rs
    >>> s = strata_rs(strata=[1, 1, 2, 2, 2], strata_n=[1, 2], seed=1)
    >>> int(s[:2].sum()), int(s[2:].sum())
    (1, 2)
    """
    _require("strata_rs", "strata", strata)
    return _eager_or_decl("strata_rs", dict(strata=strata, prob=prob, prob_unit=prob_unit, n=n,
                                            n_unit=n_unit, strata_n=strata_n,
                                            strata_prob=strata_prob), seed)


def strata_rs_probabilities(strata: Any, prob: float | None = None, prob_unit: Any = None,
                            n: int | None = None, n_unit: Any = None, strata_n: Any = None,
                            strata_prob: Any = None) -> np.ndarray:
    """Inclusion probabilities of :func:`strata_rs`.

    Examples
    --------
    >>> from declaredesign.assign import strata_rs_probabilities
    >>> strata_rs_probabilities(strata=[1, 1, 2, 2, 2], n=1).round(3).tolist()
    [0.5, 0.5, 0.333, 0.333, 0.333]
    """
    _require("strata_rs_probabilities", "strata", strata)
    return _probabilities("strata_rs_probabilities", dict(
        strata=strata, prob=prob, prob_unit=prob_unit, n=n, n_unit=n_unit, strata_n=strata_n,
        strata_prob=strata_prob))


def cluster_rs(clusters: Any = None, n: int | None = None, n_unit: Any = None,
               prob: float | None = None, prob_unit: Any = None, simple: bool = False,
               *, seed: SeedLike = None):
    """Cluster random sampling: whole clusters sampled.

    Examples
    --------
    >>> from declaredesign.assign import cluster_rs
    >>> s = cluster_rs(clusters=[1, 1, 2, 2], n=1, seed=3)
    >>> s.reshape(2, 2).sum(1).tolist() in ([2, 0], [0, 2])
    True
    """
    _require("cluster_rs", "clusters", clusters)
    return _eager_or_decl("cluster_rs", dict(clusters=clusters, n=n, n_unit=n_unit, prob=prob,
                                             prob_unit=prob_unit, simple=simple), seed)


def cluster_rs_probabilities(clusters: Any, n: int | None = None, n_unit: Any = None,
                             prob: float | None = None, prob_unit: Any = None,
                             simple: bool = False) -> np.ndarray:
    """Inclusion probabilities of :func:`cluster_rs`.

    Examples
    --------
    >>> from declaredesign.assign import cluster_rs_probabilities
    >>> cluster_rs_probabilities(clusters=[1, 1, 2, 3], n=1).round(3).tolist()
    [0.333, 0.333, 0.333, 0.333]
    """
    _require("cluster_rs_probabilities", "clusters", clusters)
    return _probabilities("cluster_rs_probabilities", dict(
        clusters=clusters, n=n, n_unit=n_unit, prob=prob, prob_unit=prob_unit, simple=simple))


def strata_and_cluster_rs(strata: Any = None, clusters: Any = None, prob: float | None = None,
                          prob_unit: Any = None, n: int | None = None, n_unit: Any = None,
                          strata_n: Any = None, strata_prob: Any = None,
                          *, seed: SeedLike = None):
    """Stratified cluster sampling: :func:`strata_rs` over clusters.

    Examples
    --------
    >>> from declaredesign.assign import strata_and_cluster_rs
    >>> int(strata_and_cluster_rs(strata=[1, 1, 2, 2], clusters=[1, 2, 3, 4], n=1,
    ...                           seed=1).sum())
    2
    """
    _require("strata_and_cluster_rs", "strata", strata)
    _require("strata_and_cluster_rs", "clusters", clusters)
    return _eager_or_decl("strata_and_cluster_rs", dict(
        strata=strata, clusters=clusters, prob=prob, prob_unit=prob_unit, n=n, n_unit=n_unit,
        strata_n=strata_n, strata_prob=strata_prob), seed)


def strata_and_cluster_rs_probabilities(strata: Any, clusters: Any, prob: float | None = None,
                                        prob_unit: Any = None, n: int | None = None,
                                        n_unit: Any = None, strata_n: Any = None,
                                        strata_prob: Any = None) -> np.ndarray:
    """Inclusion probabilities of :func:`strata_and_cluster_rs`.

    Examples
    --------
    >>> from declaredesign.assign import strata_and_cluster_rs_probabilities
    >>> strata_and_cluster_rs_probabilities(strata=[1, 1, 2, 2], clusters=[1, 2, 3, 4],
    ...                                     n=1).tolist()
    [0.5, 0.5, 0.5, 0.5]
    """
    _require("strata_and_cluster_rs_probabilities", "strata", strata)
    _require("strata_and_cluster_rs_probabilities", "clusters", clusters)
    return _probabilities("strata_and_cluster_rs_probabilities", dict(
        strata=strata, clusters=clusters, prob=prob, prob_unit=prob_unit, n=n, n_unit=n_unit,
        strata_n=strata_n, strata_prob=strata_prob))


def _require(func: str, arg: str, value: Any) -> None:
    if value is None:
        fail(func, arg, None, "given (an array or a column name)", shown="None")
