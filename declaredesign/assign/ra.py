"""Random assignment: randomizr's ``*_ra`` functions and ``declare_ra``.

Each function works two ways. Given the data (``N``, or ``blocks``/``clusters``
as arrays) it draws and returns an assignment at once. Given nothing but design
parameters, or column names for ``blocks``/``clusters``/``prob_unit``/``m_unit``,
it returns an :class:`RADeclaration` that a design conducts on every simulated
dataset (``decl.conduct_batch(batch, rng)``).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail
from ..batch import Batch
from ..errors import DeclarationError
from ..expressions import Context, Lazy
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
from .permutations import obtain_num_permutations

__all__ = [
    "ConditionProbabilities",
    "RADeclaration",
    "block_and_cluster_ra",
    "block_and_cluster_ra_probabilities",
    "block_ra",
    "block_ra_probabilities",
    "cluster_ra",
    "cluster_ra_probabilities",
    "complete_ra",
    "complete_ra_probabilities",
    "conduct_ra",
    "declare_ra",
    "obtain_condition_probabilities",
    "simple_ra",
    "simple_ra_probabilities",
]

_RA_PARAMS = ("N", "blocks", "clusters", "m", "m_unit", "m_each", "prob", "prob_unit",
              "prob_each", "block_m", "block_m_each", "block_prob", "block_prob_each",
              "num_arms", "conditions", "simple", "permutation_matrix")
_CONFLICT = ("prob", "prob_each", "prob_unit", "m", "m_unit", "m_each", "block_prob",
             "block_prob_each", "block_m", "block_m_each")


class RADeclaration(_Declaration):
    """A random assignment procedure (randomizr's ``declare_ra``), frozen.

    Build it with :func:`declare_ra` or any ``*_ra`` function called without data.
    ``ra_type`` is one of ``"simple"``, ``"complete"``, ``"blocked"``,
    ``"clustered"``, ``"blocked_and_clustered"``.

    Examples
    --------
    >>> from declaredesign.assign import declare_ra
    >>> d = declare_ra(N=6, blocks=[1, 1, 1, 2, 2, 2], block_m=[1, 2])
    >>> d.ra_type
    'blocked'
    >>> d.probabilities()["prob_1"].round(4).tolist()
    [0.3333, 0.3333, 0.3333, 0.6667, 0.6667, 0.6667]
    """

    _params = _RA_PARAMS
    _block_arg = "blocks"
    _unit_args = ("prob_unit", "m_unit")

    @property
    def ra_type(self) -> str:
        """Kind of procedure, inferred as randomizr does."""
        if self.permutation_matrix is not None:
            return "custom"
        if self.blocks is not None and self.clusters is not None:
            return "blocked_and_clustered"
        if self.clusters is not None:
            return "clustered"
        if self.blocks is not None:
            return "blocked"
        return "simple" if self.simple else "complete"

    @property
    def conditions_(self) -> np.ndarray:
        """The condition labels, in order."""
        return self._conditions()

    @property
    def num_arms_(self) -> int:
        """Number of conditions."""
        return int(self._conditions().shape[0])

    def summary(self, data: Any = None) -> str:
        """Describe the declaration as randomizr's ``print`` does.

        Examples
        --------
        >>> from declaredesign.assign import declare_ra
        >>> print(declare_ra(N=4, m=2).summary())
        Random assignment procedure: Complete random assignment
        Number of units: 4
        Number of treatment arms: 2
        The possible treatment categories are 0 and 1.
        The number of possible random assignments is 6.
        The probabilities of assignment are constant across units: prob_0 0.5, prob_1 0.5
        """
        kind = {"simple": "Simple", "complete": "Complete", "blocked": "Block",
                "clustered": "Cluster", "blocked_and_clustered": "Blocked and clustered",
                "custom": "Custom"}
        pm = self.probabilities(data)
        batch = self._to_batch(data)
        lines = [f"Random assignment procedure: {kind[self.ra_type]} random assignment",
                 f"Number of units: {batch.n_rows}"]
        if self.permutation_matrix is None:
            plan = self.plan(batch)
            if self.blocks is not None:
                lines.append(f"Number of blocks: {plan.group_n.shape[0]}")
            if self.clusters is not None:
                lines.append(f"Number of clusters: {plan.n_units}")
        conds = self._conditions().tolist()
        lines += [f"Number of treatment arms: {len(conds)}",
                  f"The possible treatment categories are {' and '.join(map(str, conds))}.",
                  "The number of possible random assignments is "
                  f"{obtain_num_permutations(self, data)}."]
        if (pm.nunique() == 1).all():
            vals = ", ".join(f"{c} {pm[c].iloc[0]:.6g}" for c in pm.columns)
            lines.append(f"The probabilities of assignment are constant across units: {vals}")
        else:
            lines.append("The probabilities of assignment are NOT constant across units; "
                         "use inverse probability weights in the analysis.")
        return "\n".join(lines)

    # ---------------------------------------------------------- validation
    def _validate(self) -> None:
        """Check every argument that needs no data (in this order, first failure wins)."""
        if self.permutation_matrix is not None:
            self._validate_custom((*_CONFLICT, "blocks", "clusters", "num_arms",
                                   "conditions"))
            return
        self._validate_design()
        arg = self._arg
        v = getattr(self, arg) if arg else None
        width = self._validate_argument(arg, v)
        self._validate_conditions()
        f = self._func
        k = len(self._conditions())
        if width is not None and width != k:
            fail(f, arg, v, f"of width equal to the number of conditions ({k})",
                 shown=shown(v))
        if arg in ("prob", "prob_unit", "m", "m_unit", "block_prob", "block_m") and k != 2:
            fail(f, arg, v, f"used with two conditions only (this design has {k}; use "
                 "prob_each, m_each, block_prob_each or block_m_each)", shown=shown(v))

    def _validate_design(self) -> None:
        """N, simple, blocks and clusters, and which one design argument is given."""
        f = self._func
        if self.N is not None:
            ok = isinstance(self.N, numbers.Integral) and not isinstance(self.N, bool) \
                and self.N > 0
            if not ok:
                fail(f, "N", self.N, "a positive integer")
        if not isinstance(self.simple, bool | np.bool_):
            fail(f, "simple", self.simple, "True or False")
        if self.simple and self.blocks is not None:
            fail(f, "simple", True, "False when blocks are given (blocked assignment is "
                 "never simple)")
        for name in ("blocks", "clusters"):
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
        if arg is not None and arg.startswith("block_") and self.blocks is None:
            fail(f, arg, getattr(self, arg), "given only with blocks (blocks is None)",
                 shown=shown(getattr(self, arg)))
        if self.simple and arg is not None and "prob" not in arg:
            fail(f, arg, getattr(self, arg), "left unset when simple=True (use prob, "
                 "prob_unit or prob_each)", shown=shown(getattr(self, arg)))

    def _validate_argument(self, arg: str | None, v: Any) -> int | None:
        """Check the design argument's values; return its number of arms when it says."""
        f = self._func
        if arg == "prob":
            check_scalar_prob(f, arg, v)
        elif arg == "m":
            check_scalar_count(f, arg, v)
            if self.N is not None and self.blocks is None and self.clusters is None \
                    and v > self.N:
                fail(f, "m", v, f"at most N ({self.N})")
        elif arg in ("prob_unit", "m_unit") and not isinstance(v, str):
            (check_prob_array if arg == "prob_unit" else check_count_array)(f, arg, v)
        elif arg == "block_prob":
            check_prob_array(f, arg, v)
        elif arg == "block_m":
            check_count_array(f, arg, v)
        elif arg is not None and arg.endswith("_each"):
            return self._validate_each(arg, v)
        return None

    def _validate_each(self, arg: str, v: Any) -> int:
        """Check a per-arm argument (prob_each, m_each and their block_ forms)."""
        f = self._func
        if arg == "prob_each":
            pe = check_prob_array(f, arg, v, ndim=(1, 2) if self.simple else 1)
            if not np.allclose(pe.sum(axis=-1), 1.0, rtol=0, atol=1.5e-8):
                fail(f, arg, v, "probabilities summing to 1", shown=shown(v))
            return pe.shape[-1]
        if arg == "m_each":
            me = check_count_array(f, arg, v)
            if self.N is not None and self.clusters is None and me.sum() != self.N:
                fail(f, arg, v, f"counts summing to N ({self.N})", shown=shown(v))
            return me.shape[0]
        if arg == "block_prob_each":
            bpe = check_prob_array(f, arg, v, ndim=2)
            if not np.allclose(bpe.sum(axis=1), 1.0, rtol=0, atol=1.5e-8):
                fail(f, arg, v, "a matrix whose rows sum to 1", shown=shown(v))
            return bpe.shape[1]
        return check_count_array(f, arg, v, ndim=2).shape[1]      # block_m_each

    def _validate_conditions(self) -> None:
        """Condition labels and the number of arms agree."""
        f = self._func
        if self.conditions is not None:
            cond = np.asarray(self.conditions)
            if cond.ndim != 1 or cond.size < 1:
                fail(f, "conditions", self.conditions, "a non-empty vector of labels",
                     shown=shown(self.conditions))
            if len(set(cond.tolist())) != cond.size:
                fail(f, "conditions", self.conditions, "unique labels",
                     shown=shown(self.conditions))
        if self.num_arms is not None:
            ok = isinstance(self.num_arms, numbers.Integral) and \
                not isinstance(self.num_arms, bool) and self.num_arms >= 1
            if not ok:
                fail(f, "num_arms", self.num_arms, "a positive integer")
            if self.conditions is not None and len(self.conditions) != self.num_arms:
                fail(f, "num_arms", self.num_arms, "equal to the number of conditions "
                     f"({len(self.conditions)})")

    def _conditions(self) -> np.ndarray:
        if self.permutation_matrix is not None:
            return self._custom_probabilities()[0]
        if self.conditions is not None:
            return np.asarray(self.conditions)
        arg = self._arg
        if self.num_arms is not None:
            # randomizr: num_arms given names the arms T1..Tk, even with two arms.
            k = int(self.num_arms)
            return np.array([f"T{i}" for i in range(1, k + 1)])
        if arg is None or not arg.endswith("_each"):
            k = 2
        else:
            k = np.shape(getattr(self, arg))[-1]
        if k == 2:
            return np.array([0, 1])
        return np.array([f"T{i}" for i in range(1, k + 1)])

    # --------------------------------------------------------------- spec
    def _spec(self) -> Spec:
        arg = self._arg
        v = getattr(self, arg) if arg else None
        k = len(self._conditions())
        blocked = self.blocks is not None
        if self.simple:
            return _simple_spec(arg, v, k)
        if arg in _COUNT_SPECS:
            kind, how, convert = _COUNT_SPECS[arg]
            return Spec(kind, how, convert(v), arg)
        if arg == "prob":
            # block_ra turns prob into prob_each = (1 - prob, prob): no ceil == N rule.
            if blocked:
                return Spec("pe", "const", np.array([1 - v, v]), arg)
            return Spec("p2", "const", v, arg)
        if k == 2 and not blocked:
            return Spec("p2", "const", 0.5, "prob")
        return Spec("pe", "const", np.full(k, 1 / k), "prob_each")


def _simple_spec(arg: str | None, v: Any, k: int) -> Spec:
    if arg == "prob":
        return Spec("simple", "const", [1 - v, v], arg)
    if arg == "prob_unit":
        return Spec("simple", "unit", v, arg)
    if arg == "prob_each":
        pe = np.asarray(v, float)
        return Spec("simple", "matrix" if pe.ndim == 2 else "const", pe, arg)
    return Spec("simple", "const", np.full(k, 1 / k), "prob")


def _as_is(v: Any) -> Any:
    return v


#: Design argument -> (count rule, where its value lives, conversion) for complete designs.
_COUNT_SPECS: dict[str, tuple[str, str, Any]] = {
    "m": ("m2", "const", _as_is),
    "m_unit": ("m2", "unit", _as_is),
    "block_m": ("m2", "block", np.asarray),
    "prob_unit": ("p2", "unit", _as_is),
    "block_prob": ("p2", "block", lambda v: np.asarray(v, float)),
    "prob_each": ("pe", "const", lambda v: np.asarray(v, float)),
    "m_each": ("me", "const", lambda v: np.asarray(v, np.int64)),
    "block_prob_each": ("pe", "block", lambda v: np.asarray(v, float)),
    "block_m_each": ("me", "block", lambda v: np.asarray(v, np.int64)),
}


# ------------------------------------------------------------------ builders
def _declare(func: str, params: dict[str, Any]) -> RADeclaration:
    return RADeclaration(func, **params)


def _eager_or_decl(func: str, params: dict[str, Any], seed: SeedLike):
    return conduct_or_declare(_declare(func, params), seed)


def _probabilities(func: str, params: dict[str, Any]) -> pd.DataFrame:
    decl = _declare(func, params)
    if decl.is_declarative:
        fail(func, "N", None, "given (or blocks/clusters as arrays) to compute probabilities",
             shown="None")
    return decl.probabilities()


def declare_ra(N: int | None = None, blocks: Any = None, clusters: Any = None,
               m: int | None = None, m_unit: Any = None, m_each: Any = None,
               prob: float | None = None, prob_unit: Any = None, prob_each: Any = None,
               block_m: Any = None, block_m_each: Any = None, block_prob: Any = None,
               block_prob_each: Any = None, num_arms: int | None = None,
               conditions: Any = None, simple: bool = False,
               permutation_matrix: Any = None) -> RADeclaration:
    """Declare a random assignment procedure (randomizr's ``declare_ra``).

    The type is inferred from the arguments: blocks and clusters give
    ``"blocked_and_clustered"``, clusters ``"clustered"``, blocks ``"blocked"``,
    otherwise ``"complete"`` (or ``"simple"`` when ``simple=True``).

    Parameters
    ----------
    N : int, optional
        Number of units. Omit it to take the number of rows of the data.
    blocks, clusters : array_like or str, optional
        Block and cluster of each unit, or the names of the columns holding them.
    m, m_unit, m_each, prob, prob_unit, prob_each, block_m, block_m_each, block_prob, \
block_prob_each : optional
        At most one of these, with randomizr's meanings.
    num_arms : int, optional
        Number of conditions.
    conditions : array_like, optional
        Condition labels. Two arms default to ``0, 1``, more to ``"T1".."Tk"``.
    simple : bool, default False
        Independent (Bernoulli/multinomial) draws instead of complete assignment.
    permutation_matrix : 2-D array_like, optional
        A custom procedure (randomizr's ``custom_ra``): one row per unit, one column
        per possible assignment; conducting it picks a column uniformly at random.
        Given alone (with ``N`` at most).

    Returns
    -------
    RADeclaration

    Examples
    --------
    >>> from declaredesign.assign import declare_ra, obtain_num_permutations
    >>> obtain_num_permutations(declare_ra(N=5, prob=0.5))
    20
    >>> d = declare_ra(permutation_matrix=[[1, 0, 1], [0, 1, 1], [0, 0, 0]])
    >>> d.ra_type, d.probabilities()["prob_1"].round(4).tolist()
    ('custom', [0.6667, 0.6667, 0.0])
    """
    return _declare("declare_ra", dict(
        N=N, blocks=blocks, clusters=clusters, m=m, m_unit=m_unit, m_each=m_each, prob=prob,
        prob_unit=prob_unit, prob_each=prob_each, block_m=block_m, block_m_each=block_m_each,
        block_prob=block_prob, block_prob_each=block_prob_each, num_arms=num_arms,
        conditions=conditions, simple=simple, permutation_matrix=permutation_matrix))


def simple_ra(N: int | None = None, prob: float | None = None, prob_unit: Any = None,
              prob_each: Any = None, num_arms: int | None = None, conditions: Any = None,
              *, seed: SeedLike = None):
    """Assign units by simple random assignment: every unit drawn independently.

    Returns an array of conditions when ``N`` (or ``prob_unit`` as an array) is
    given, else a declaration to use in a design.

    Examples
    --------
    >>> from declaredesign.assign import simple_ra
    >>> simple_ra(N=5, prob=0.5, seed=1).shape
    (5,)
    """
    return _eager_or_decl("simple_ra", dict(
        N=N, prob=prob, prob_unit=prob_unit, prob_each=prob_each, num_arms=num_arms,
        conditions=conditions, simple=True), seed)


def simple_ra_probabilities(N: int, prob: float | None = None, prob_unit: Any = None,
                            prob_each: Any = None, num_arms: int | None = None,
                            conditions: Any = None) -> pd.DataFrame:
    """Condition probabilities of :func:`simple_ra` (columns ``prob_<cond>``).

    Examples
    --------
    >>> from declaredesign.assign import simple_ra_probabilities
    >>> simple_ra_probabilities(N=2, prob=0.3)["prob_1"].tolist()
    [0.3, 0.3]
    """
    return _probabilities("simple_ra_probabilities", dict(
        N=N, prob=prob, prob_unit=prob_unit, prob_each=prob_each, num_arms=num_arms,
        conditions=conditions, simple=True))


def complete_ra(N: int | None = None, m: int | None = None, m_unit: Any = None,
                m_each: Any = None, prob: float | None = None, prob_unit: Any = None,
                prob_each: Any = None, num_arms: int | None = None, conditions: Any = None,
                *, seed: SeedLike = None):
    """Complete random assignment: exactly ``m`` (or ``N * prob``, rounded) treated.

    With ``prob``, ``floor(N prob)`` or ``ceil(N prob)`` units are treated with the
    probabilities that make each unit's probability ``prob``, except that when
    ``ceil(N prob) == N`` randomizr always treats ``floor(N prob)``.

    Examples
    --------
    >>> from declaredesign.assign import complete_ra
    >>> int(complete_ra(N=100, m=50, seed=1).sum())
    50
    >>> int(complete_ra(N=3, prob=0.9, seed=1).sum())
    2
    """
    return _eager_or_decl("complete_ra", dict(
        N=N, m=m, m_unit=m_unit, m_each=m_each, prob=prob, prob_unit=prob_unit,
        prob_each=prob_each, num_arms=num_arms, conditions=conditions), seed)


def complete_ra_probabilities(N: int, m: int | None = None, m_unit: Any = None,
                              m_each: Any = None, prob: float | None = None,
                              prob_unit: Any = None, prob_each: Any = None,
                              num_arms: int | None = None,
                              conditions: Any = None) -> pd.DataFrame:
    """Condition probabilities of :func:`complete_ra`.

    Examples
    --------
    >>> from declaredesign.assign import complete_ra_probabilities
    >>> complete_ra_probabilities(N=3, prob=0.9)["prob_1"].iloc[0]
    np.float64(0.6666666666666666)
    """
    return _probabilities("complete_ra_probabilities", dict(
        N=N, m=m, m_unit=m_unit, m_each=m_each, prob=prob, prob_unit=prob_unit,
        prob_each=prob_each, num_arms=num_arms, conditions=conditions))


def block_ra(blocks: Any = None, prob: float | None = None, prob_unit: Any = None,
             prob_each: Any = None, m: int | None = None, m_unit: Any = None,
             block_m: Any = None, block_m_each: Any = None, block_prob: Any = None,
             block_prob_each: Any = None, num_arms: int | None = None,
             conditions: Any = None, *, seed: SeedLike = None):
    """Block random assignment: complete assignment within each block.

    ``blocks`` is an array (assign now) or a column name (return a declaration).
    ``prob`` is applied as ``prob_each = (1 - prob, prob)``, so no block falls
    under the ``ceil(N prob) == N`` rule; ``block_prob`` follows
    :func:`complete_ra` within each block.

    Examples
    --------
    >>> from declaredesign.assign import block_ra
    >>> z = block_ra(blocks=[1, 1, 2, 2, 2, 2], block_m=[1, 2], seed=4)
    >>> int(z[:2].sum()), int(z[2:].sum())
    (1, 2)
    """
    _require("block_ra", "blocks", blocks)
    return _eager_or_decl("block_ra", dict(
        blocks=blocks, prob=prob, prob_unit=prob_unit, prob_each=prob_each, m=m, m_unit=m_unit,
        block_m=block_m, block_m_each=block_m_each, block_prob=block_prob,
        block_prob_each=block_prob_each, num_arms=num_arms, conditions=conditions), seed)


def block_ra_probabilities(blocks: Any, prob: float | None = None, prob_unit: Any = None,
                           prob_each: Any = None, m: int | None = None, m_unit: Any = None,
                           block_m: Any = None, block_m_each: Any = None,
                           block_prob: Any = None, block_prob_each: Any = None,
                           num_arms: int | None = None, conditions: Any = None
                           ) -> pd.DataFrame:
    """Condition probabilities of :func:`block_ra`.

    Examples
    --------
    >>> from declaredesign.assign import block_ra_probabilities
    >>> block_ra_probabilities(blocks=[1, 1, 2, 2, 2], prob=0.9)["prob_1"].round(12).tolist()
    [0.9, 0.9, 0.9, 0.9, 0.9]
    """
    _require("block_ra_probabilities", "blocks", blocks)
    return _probabilities("block_ra_probabilities", dict(
        blocks=blocks, prob=prob, prob_unit=prob_unit, prob_each=prob_each, m=m, m_unit=m_unit,
        block_m=block_m, block_m_each=block_m_each, block_prob=block_prob,
        block_prob_each=block_prob_each, num_arms=num_arms, conditions=conditions))


def cluster_ra(clusters: Any = None, m: int | None = None, m_unit: Any = None,
               m_each: Any = None, prob: float | None = None, prob_unit: Any = None,
               prob_each: Any = None, num_arms: int | None = None, conditions: Any = None,
               simple: bool = False, *, seed: SeedLike = None):
    """Cluster random assignment: :func:`complete_ra` (or simple) over clusters.

    Examples
    --------
    >>> from declaredesign.assign import cluster_ra
    >>> cluster_ra(clusters=["a", "a", "b", "b", "c", "c"], m=1, seed=2).reshape(3, 2).std(1).max()
    np.float64(0.0)
    >>> cluster_ra(clusters="classroom", prob=0.5)
    cluster_ra(clusters='classroom', prob=0.5)
    """
    _require("cluster_ra", "clusters", clusters)
    return _eager_or_decl("cluster_ra", dict(
        clusters=clusters, m=m, m_unit=m_unit, m_each=m_each, prob=prob, prob_unit=prob_unit,
        prob_each=prob_each, num_arms=num_arms, conditions=conditions, simple=simple), seed)


def cluster_ra_probabilities(clusters: Any, m: int | None = None, m_unit: Any = None,
                             m_each: Any = None, prob: float | None = None,
                             prob_unit: Any = None, prob_each: Any = None,
                             num_arms: int | None = None, conditions: Any = None,
                             simple: bool = False) -> pd.DataFrame:
    """Condition probabilities of :func:`cluster_ra`.

    Examples
    --------
    >>> from declaredesign.assign import cluster_ra_probabilities
    >>> cluster_ra_probabilities(clusters=[1, 1, 2, 3], prob=0.9)["prob_1"].tolist()
    [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 0.6666666666666666]
    """
    _require("cluster_ra_probabilities", "clusters", clusters)
    return _probabilities("cluster_ra_probabilities", dict(
        clusters=clusters, m=m, m_unit=m_unit, m_each=m_each, prob=prob, prob_unit=prob_unit,
        prob_each=prob_each, num_arms=num_arms, conditions=conditions, simple=simple))


def block_and_cluster_ra(blocks: Any = None, clusters: Any = None, prob: float | None = None,
                         prob_unit: Any = None, prob_each: Any = None, m: int | None = None,
                         m_unit: Any = None, block_m: Any = None, block_m_each: Any = None,
                         block_prob: Any = None, block_prob_each: Any = None,
                         num_arms: int | None = None, conditions: Any = None,
                         *, seed: SeedLike = None):
    """Blocked and clustered assignment: :func:`block_ra` over clusters.

    Every cluster must lie within one block.

    Examples
    --------
    >>> from declaredesign.assign import block_and_cluster_ra
    >>> z = block_and_cluster_ra(blocks=[1, 1, 1, 1, 2, 2, 2, 2],
    ...                          clusters=[1, 1, 2, 2, 3, 3, 4, 4], m=1, seed=5)
    >>> int(z.sum())
    4
    """
    _require("block_and_cluster_ra", "blocks", blocks)
    _require("block_and_cluster_ra", "clusters", clusters)
    return _eager_or_decl("block_and_cluster_ra", dict(
        blocks=blocks, clusters=clusters, prob=prob, prob_unit=prob_unit, prob_each=prob_each,
        m=m, m_unit=m_unit, block_m=block_m, block_m_each=block_m_each, block_prob=block_prob,
        block_prob_each=block_prob_each, num_arms=num_arms, conditions=conditions), seed)


def block_and_cluster_ra_probabilities(blocks: Any, clusters: Any, prob: float | None = None,
                                       prob_unit: Any = None, prob_each: Any = None,
                                       m: int | None = None, m_unit: Any = None,
                                       block_m: Any = None, block_m_each: Any = None,
                                       block_prob: Any = None, block_prob_each: Any = None,
                                       num_arms: int | None = None, conditions: Any = None
                                       ) -> pd.DataFrame:
    """Condition probabilities of :func:`block_and_cluster_ra`.

    Examples
    --------
    >>> from declaredesign.assign import block_and_cluster_ra_probabilities
    >>> block_and_cluster_ra_probabilities(blocks=[1, 1, 2, 2], clusters=[1, 2, 3, 4],
    ...                                    m=1)["prob_1"].tolist()
    [0.5, 0.5, 0.5, 0.5]
    """
    _require("block_and_cluster_ra_probabilities", "blocks", blocks)
    _require("block_and_cluster_ra_probabilities", "clusters", clusters)
    return _probabilities("block_and_cluster_ra_probabilities", dict(
        blocks=blocks, clusters=clusters, prob=prob, prob_unit=prob_unit, prob_each=prob_each,
        m=m, m_unit=m_unit, block_m=block_m, block_m_each=block_m_each, block_prob=block_prob,
        block_prob_each=block_prob_each, num_arms=num_arms, conditions=conditions))


def conduct_ra(declaration: RADeclaration, data: Any = None, *,
               seed: SeedLike = None) -> np.ndarray:
    """Draw one assignment from a declaration (randomizr's ``conduct_ra``).

    Parameters
    ----------
    declaration : RADeclaration
    data : DataFrame or int, optional
        Needed when the declaration names columns or has no ``N``.
    seed : int, SeedSequence or Generator, optional

    Examples
    --------
    >>> from declaredesign.assign import conduct_ra, declare_ra
    >>> conduct_ra(declare_ra(N=10, m=3), seed=1).sum()
    np.int64(3)
    """
    _check_decl("conduct_ra", declaration)
    return declaration.conduct(data, seed=seed)


def obtain_condition_probabilities(declaration: RADeclaration | None = None,
                                   assignment: Any = None, data: Any = None,
                                   **ra_args: Any) -> Any:
    """Probability of each unit's realised condition under the declaration.

    As in randomizr, the procedure is a declaration or, with ``declaration``
    omitted, :func:`declare_ra`'s arguments (``conditions=``, ``prob_each=``,
    ``blocks=``...). Given ``assignment`` as an array, returns the probabilities now;
    given it as a column name or expression (``assignment="Z"``, as R users write
    ``obtain_condition_probabilities(assignment = Z, ...)`` inside
    ``declare_assignment``), returns a lazy value computed on each simulated dataset.

    Parameters
    ----------
    declaration : RADeclaration, optional
    assignment : array_like, str or lazy value
        The realised conditions.
    data : DataFrame or int, optional
        Needed for an eager call when the declaration names columns.
    **ra_args
        :func:`declare_ra`'s arguments when ``declaration`` is omitted.

    Returns
    -------
    numpy.ndarray or ConditionProbabilities

    Examples
    --------
    >>> from declaredesign.assign import declare_ra, obtain_condition_probabilities
    >>> obtain_condition_probabilities(declare_ra(N=4, m=1), [1, 0, 0, 0]).tolist()
    [0.25, 0.75, 0.75, 0.75]
    >>> obtain_condition_probabilities(assignment=[1, 2, 3], conditions=[1, 2, 3]).tolist()
    [0.3333333333333333, 0.3333333333333333, 0.3333333333333333]
    >>> obtain_condition_probabilities(assignment="Z", prob=0.3)
    obtain_condition_probabilities(declare_ra(prob=0.3), assignment='Z')
    """
    func = "obtain_condition_probabilities"
    if assignment is None:
        fail(func, "assignment", None, "given (an array, or a column name inside a step)")
    lazy = isinstance(assignment, str | Lazy)
    if declaration is None:
        if not lazy and ra_args.get("N") is None and all(
                not is_array(ra_args.get(a)) for a in ("blocks", "clusters")):
            ra_args["N"] = len(assignment)       # randomizr: N <- length(assignment)
        try:
            declaration = declare_ra(**ra_args)
        except TypeError as exc:
            raise DeclarationError(f"{func}(): {exc}") from None
    elif ra_args:
        name = sorted(ra_args)[0]
        fail(func, name, ra_args[name], "omitted when a declaration is given")
    _check_decl(func, declaration)
    if lazy:
        return ConditionProbabilities(declaration, assignment)
    return declaration.condition_probabilities(assignment, data)


class ConditionProbabilities(Lazy):
    """Lazy :func:`obtain_condition_probabilities` of a column, for use in a step.

    Evaluated on a batch, gives each row the probability of the condition it was
    assigned under the declaration (all simulations at once).
    """

    __slots__ = ("declaration", "assignment")

    def __init__(self, declaration: RADeclaration, assignment: Any):
        self.declaration = declaration
        self.assignment = assignment

    def __reduce__(self):
        return (ConditionProbabilities, (self.declaration, self.assignment))

    def __repr__(self) -> str:
        return (f"obtain_condition_probabilities({self.declaration!r}, "
                f"assignment={self.assignment!r})")

    def _eval(self, ctx: Context) -> np.ndarray:
        cols = {k: v for k, v in ctx.columns.items()
                if np.ndim(v) == 1 and np.shape(v)[0] == ctx.n_rows}
        batch = Batch(cols, ctx.sim, ctx.n_sims)
        z = np.broadcast_to(ctx.value(self.assignment, "assignment"), (ctx.n_rows,))
        return self.declaration.probabilities_batch(batch, z)


def _check_decl(func: str, declaration: Any) -> None:
    if not isinstance(declaration, _Declaration):
        fail(func, "declaration", declaration, "a declaration made by declare_ra() or a *_ra "
             "function", shown=type(declaration).__name__)


def _require(func: str, arg: str, value: Any) -> None:
    if value is None:
        fail(func, arg, None, "given (an array or a column name)", shown="None")
