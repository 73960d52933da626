"""The shared machinery of assignment and sampling declarations.

A declaration holds its parameters unchanged. When it meets data (a
:class:`~declaredesign.batch.Batch`, a DataFrame, or just ``N``) it is resolved
into a :class:`~._plan.Plan` by :func:`build_plan`, from a small *spec* the
declaration derives from its arguments: which rounding rule applies
(``"m2"``, ``"p2"``, ``"pe"``, ``"me"`` or ``"simple"``, see below) and where its
numbers come from (one value for every group, one per unit, or one per block).

* ``m2``: two arms, exactly ``m`` treated (randomizr's ``complete_ra(m =)``).
* ``p2``: two arms, ``floor(N p)`` or ``ceil(N p)`` treated with the fix-up
  probability, except ``floor(N p)`` when ``ceil(N p) == N > 1``.
* ``pe``: ``floor(N p_k)`` per condition, remaining units to distinct conditions by
  successive sampling on the fractional parts (``complete_ra(prob_each =)``).
* ``me``: exact counts per condition.
* ``simple``: each unit independently.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import Any

import numpy as np
import pandas as pd

from .._validation import fail
from ..batch import Batch
from ..errors import DeclarationError
from ..expressions import evaluate
from ..groups import GroupIndex
from ._plan import Plan, remainder_marginals

SeedLike = int | np.random.SeedSequence | np.random.Generator | None


@dataclasses.dataclass(frozen=True)
class Spec:
    """How group counts are formed (internal)."""

    kind: str            # m2 | p2 | pe | me | simple
    how: str             # const | unit | block | matrix
    value: Any
    arg: str             # argument name, for messages


# ----------------------------------------------------------------- helpers
def shown(value: Any) -> str:
    """Short text for a value in messages and reprs."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, NamedValues) and value.names is not None:
        return value.shown()
    if isinstance(value, np.ndarray | list | tuple | pd.Series):
        arr = np.asarray(value)
        if arr.ndim == 0:
            return repr(arr.item())
        text = np.array2string(arr, threshold=8, edgeitems=3, separator=", ")
        return text.replace("\n", "")
    if isinstance(value, np.generic):
        return repr(value.item())
    return repr(value)


class NamedValues(np.ndarray):
    """Per-block values given with names (a dict or Series keyed by block label).

    randomizr ignores the names of ``strata_n = c(a = 1, b = 2)`` and takes the
    values in sorted block order; here names that are the block labels select each
    block's value, and names that are none of them are ignored as in R.
    """

    names: tuple | None

    def __new__(cls, values: Any, names: Any) -> NamedValues:
        obj = np.asarray(values).view(cls)
        obj.names = tuple(names)
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self.names = getattr(obj, "names", None)

    def __reduce__(self):
        return (NamedValues, (np.asarray(self), self.names))

    @classmethod
    def of(cls, value: Any) -> Any:
        """Wrap a dict or Series; return anything else unchanged."""
        if isinstance(value, pd.Series):
            return cls(value.to_numpy(), value.index.tolist())
        if isinstance(value, pd.DataFrame):
            return cls(value.to_numpy(), value.index.tolist())
        if isinstance(value, dict):
            return cls(list(value.values()), list(value.keys()))
        return value

    def shown(self) -> str:
        """Show the values with their names (messages and reprs)."""
        return repr(dict(zip(self.names, np.asarray(self).tolist(), strict=True)))

    def per_group(self, labels: np.ndarray, func: str, arg: str) -> np.ndarray | None:
        """Return the value of each group's block label (None when no name is a label)."""
        base = np.asarray(self)
        keys = [str(k) for k in self.names]
        labs = [str(v) for v in labels.tolist()]
        if not set(keys) & set(labs):
            return None                              # names ignored, as randomizr does
        missing = sorted(set(labs) - set(keys))
        if missing or len(keys) != len(set(keys)):
            word = "strata" if arg.startswith("strata") else "blocks"
            fail(func, arg, None, f"named by the {word} ({', '.join(sorted(set(labs)))}), "
                 f"one value each (missing: {', '.join(missing) or 'none; names repeat'})",
                 shown=self.shown())
        pos = {k: i for i, k in enumerate(keys)}
        return base[[pos[lab] for lab in labs]]


def is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray | list | tuple | pd.Series | pd.Index)


def as_float_array(func: str, arg: str, value: Any, *, ndim: int | tuple[int, ...] = 1
                   ) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        fail(func, arg, value, "numeric", shown=shown(value))
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims or not np.all(np.isfinite(arr)):
        rule = {1: "a numeric vector", 2: "a numeric matrix"}
        fail(func, arg, value, " or ".join(rule[d] for d in ndims) + " of finite numbers",
             shown=shown(value))
    return arr


def check_prob_array(func: str, arg: str, value: Any, ndim: int | tuple = 1) -> np.ndarray:
    arr = as_float_array(func, arg, value, ndim=ndim)
    if np.any((arr < 0) | (arr > 1)):
        fail(func, arg, value, "probabilities in [0, 1]", shown=shown(value))
    return arr


def check_count_array(func: str, arg: str, value: Any, ndim: int = 1) -> np.ndarray:
    arr = as_float_array(func, arg, value, ndim=ndim)
    if np.any(arr < 0) or np.any(arr != np.floor(arr)):
        fail(func, arg, value, "non-negative integers", shown=shown(value))
    return arr.astype(np.int64)


def check_scalar_prob(func: str, arg: str, value: Any) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and \
        np.isfinite(value) and 0 <= value <= 1
    if not ok:
        fail(func, arg, value, "a number in [0, 1]", shown=shown(value))
    return float(value)


def check_scalar_count(func: str, arg: str, value: Any) -> int:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and \
        np.isfinite(value) and value >= 0 and value == np.floor(value)
    if not ok:
        fail(func, arg, value, "a non-negative integer", shown=shown(value))
    return int(value)


def rng_from(seed: SeedLike) -> np.random.Generator:
    return np.random.default_rng(seed)


def label_index(conditions: np.ndarray, assignment: Any, func: str) -> np.ndarray:
    """Index of each assigned label in ``conditions``."""
    a = np.asarray(assignment)
    if a.dtype.kind in "iub" and conditions.dtype.kind in "iu" and \
            np.array_equal(conditions, np.arange(conditions.shape[0])):
        idx = a.astype(np.int64)
        bad = (idx < 0) | (idx >= conditions.shape[0])
    else:
        lookup = {c: i for i, c in enumerate(conditions.tolist())}
        flat = a.tolist()
        idx = np.fromiter((lookup.get(x, -1) for x in flat), dtype=np.int64, count=len(flat))
        bad = idx < 0
    if np.any(bad):
        first = a[np.flatnonzero(bad)[0]]
        fail(func, "assignment", first, "one of the declared conditions "
             f"({', '.join(map(repr, conditions.tolist()))})", shown=shown(first))
    return idx


# ----------------------------------------------------------- the base class
class Drawn(np.ndarray):
    """One draw of ``complete_ra(N, ...)``-style calls: an array a step draws anew.

    R re-evaluates ``declare_assignment(Z = complete_ra(N, prob = 0.5))`` in every
    simulation. Called with ``N`` (and no ``seed``), our function draws at once and
    returns this ``ndarray``; a data step that receives it calls its declaration's
    ``conduct_batch`` instead, so each simulation gets its own draw. Any view or
    arithmetic result is a plain draw.
    """

    _declaration: Any = None

    def __array_finalize__(self, obj: Any) -> None:
        """Make views and results plain draws (no declaration to redraw from)."""
        self._declaration = None

    def __reduce__(self) -> Any:
        """Pickle as the plain array."""
        return np.asarray(self).__reduce__()

    def __repr__(self) -> str:
        """Show as the plain array."""
        return repr(np.asarray(self))

    @property
    def conduct_batch(self) -> Any:
        """The declaration's ``conduct_batch`` (only on the array the call returned)."""
        if self._declaration is None:
            raise AttributeError("conduct_batch")
        return self._declaration.conduct_batch


def conduct_or_declare(decl: Any, seed: Any) -> Any:
    """Return the declaration when it needs the data, else one draw (a step redraws it)."""
    if decl.is_declarative:
        return decl
    out = decl.conduct(seed=seed)
    if seed is not None:
        return out
    drawn = np.asarray(out).view(Drawn)
    drawn._declaration = decl
    return drawn


class _Declaration:
    """Parameters of a design plus the generic conduct/probabilities methods."""

    _params: tuple[str, ...] = ()
    _block_arg = "blocks"
    _unit_args: tuple[str, ...] = ()   # args that may hold per-row values or a column name

    def __init__(self, func: str, **params: Any):
        object.__setattr__(self, "_func", func)
        for name in self._params:
            value = params.get(name, self._defaults().get(name))
            if name in _NAMED_ARGS:
                value = NamedValues.of(value)
            if name == "N" and isinstance(value, str) and value == "N":
                # R's complete_ra(N, ...) inside a step: N is the data's number of rows,
                # which is what an omitted N means here
                value = None
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_state", {})
        self._validate()

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        return {"simple": False}

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use .replace(...)")

    def __reduce__(self):
        return (_rebuild, (type(self), self._func, self.get_params()))

    def get_params(self) -> dict[str, Any]:
        """Return the parameters as given, by name."""
        return {n: getattr(self, n) for n in self._params}

    def replace(self, **changes: Any):
        """Return a new declaration with some parameters changed."""
        params = self.get_params()
        unknown = set(changes) - set(params)
        if unknown:
            name = sorted(unknown)[0]
            fail(f"{self._func}.replace", name, changes[name],
                 "one of " + ", ".join(self._params))
        params.update(changes)
        return type(self)(self._func, **params)

    def __repr__(self) -> str:
        defaults = self._defaults()
        params = self.get_params()
        if self._func.startswith("simple_"):
            params.pop("simple", None)      # implied by the function's name
        parts = [f"{n}={shown(v)}" for n, v in params.items()
                 if v is not None and not (n in defaults and _same(v, defaults[n]))]
        return f"{self._func}({', '.join(parts)})"

    # ------------------------------------------------- custom procedures
    # randomizr's custom_ra / custom_rs: the procedure is a uniformly random column of a
    # given permutation matrix (one row per unit, one column per possible assignment).
    @property
    def _custom(self) -> Any:
        return getattr(self, "permutation_matrix", None)

    def _custom_probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """(conditions, n_units x K probabilities) of a permutation matrix."""
        mat = np.asarray(self._custom)
        conds, codes = np.unique(mat, return_inverse=True)
        codes = codes.reshape(mat.shape)
        counts = np.stack([(codes == k).sum(axis=1) for k in range(conds.shape[0])], axis=1)
        return conds, counts / mat.shape[1]

    def _custom_rows(self, batch: Batch) -> int:
        n, k = np.shape(self._custom)
        sizes = batch.sim_sizes()
        if sizes.size and not np.all(sizes == n):
            bad = int(sizes[sizes != n][0])
            fail(self._func, "permutation_matrix", self._custom,
                 f"a matrix with one row per unit of the data ({bad})",
                 shown=f"<{n} x {k} matrix>")
        return int(n)

    def _custom_row_probabilities(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """(conditions, n_rows x K probabilities) over every simulation of a batch."""
        n = self._custom_rows(batch)
        conds, probs = self._custom_probabilities()
        unit = np.arange(batch.n_rows) % n if n else np.zeros(0, dtype=np.int64)
        return conds, probs[unit]

    def _validate_custom(self, others: tuple[str, ...]) -> None:
        f = self._func
        mat = np.asarray(self._custom)
        if mat.ndim != 2 or mat.shape[0] < 1 or mat.shape[1] < 1:
            fail(f, "permutation_matrix", self._custom, "a matrix with one row per unit "
                 "and one column per possible assignment", shown=shown(mat))
        if np.any(pd.isna(mat)):
            fail(f, "permutation_matrix", self._custom, "free of missing values",
                 shown=shown(mat))
        given = [a for a in others if getattr(self, a) is not None]
        if self.simple:
            given.append("simple")
        if given:
            fail(f, given[0], getattr(self, given[0]), "omitted with permutation_matrix "
                 "(the matrix is the whole procedure)", shown=shown(getattr(self, given[0])))
        if self.N is not None and self.N != mat.shape[0]:
            fail(f, "N", self.N, f"the number of rows of permutation_matrix ({mat.shape[0]})")
        object.__setattr__(self, "_arg", None)

    # -------------------------------------------------------------- data
    @property
    def is_declarative(self) -> bool:
        """True when the declaration needs data (column names, or no ``N``)."""
        if self.N is not None or self._custom is not None:
            return False
        cols = [getattr(self, n) for n in (self._block_arg, "clusters", *self._unit_args)]
        return not any(is_array(c) for c in cols)

    def _fixed_n(self) -> int | None:
        if self._custom is not None:
            return int(np.shape(self._custom)[0])
        if self.N is not None:
            return int(self.N)
        for n in (self._block_arg, "clusters", *self._unit_args):
            v = getattr(self, n)
            if is_array(v):
                return len(v)
        return None

    def _to_batch(self, data: Any) -> Batch:
        if isinstance(data, Batch):
            return data
        if isinstance(data, pd.DataFrame):
            return Batch.from_pandas(data)
        if data is None:
            n = self._fixed_n()
            if n is None:
                fail(self._func, "data", None, "a DataFrame or N when the declaration names "
                     "columns or has no N", shown="None")
            return Batch({}, np.zeros(n, dtype=np.int64), 1)
        if isinstance(data, numbers.Integral) and not isinstance(data, bool) and data > 0:
            return Batch({}, np.zeros(int(data), dtype=np.int64), 1)
        fail(self._func, "data", data, "a DataFrame, a Batch or a positive integer N",
             shown=shown(data))

    def plan(self, batch: Batch) -> Plan:
        """Resolve the declaration against a batch (cached for the last batch)."""
        # One (batch, plan) tuple, replaced atomically, so threads sharing a
        # declaration never pair one batch with another batch's plan. conduct_batch
        # followed by probabilities_batch on the same batch resolves it once.
        # The key is the arrays the plan reads, not the batch object: a batch made
        # by with_columns (e.g. after the assignment is added) shares them.
        if self._custom is not None:
            raise DeclarationError(
                f"{self._func}(permutation_matrix=...): a custom procedure has no "
                "randomizr plan; use conduct_batch, probabilities or "
                "obtain_permutation_matrix.")
        # n copies of one dataset (a fixed population): resolved on the one dataset,
        # the same in each copy, then repeated (no pass over the copies' rows)
        one = batch.repeated()
        source = batch if one is None else one
        key = (source.sim, batch.n_sims, *(
            source.columns.get(v, source.columns) if isinstance(v, str) else None
            for v in (getattr(self, n) for n in (self._block_arg, "clusters",
                                                 *self._unit_args))))
        cached = self._state.get("cache")
        if cached is not None and len(cached[0]) == len(key) and all(
                a is b for a, b in zip(cached[0], key, strict=True)):
            return cached[1]
        p = build_plan(self, source)
        if one is not None:
            p = p.repeat(batch.n_sims)
        self._state["cache"] = (key, p)
        return p

    # ----------------------------------------------------------- public
    def conduct_batch(self, batch: Batch, rng: np.random.Generator) -> np.ndarray:
        """Draw one assignment per simulation of ``batch``, all at once.

        Parameters
        ----------
        batch : Batch
            The stacked datasets; columns named by the declaration are read from it.
        rng : numpy.random.Generator
            Source of randomness.

        Returns
        -------
        ndarray
            One condition per row of the batch.
        """
        if self._custom is not None:
            self._custom_rows(batch)
            mat = np.asarray(self._custom)
            cols = rng.integers(0, mat.shape[1], size=batch.n_sims)
            return mat[:, cols].T.reshape(-1)
        p = self.plan(batch)
        return p.draw(rng)

    def probabilities_batch(self, batch: Batch, assignment: Any) -> np.ndarray:
        """Probability of each row's realised condition (DeclareDesign's ``Z_cond_prob``)."""
        if self._custom is not None:
            conds, probs = self._custom_row_probabilities(batch)
            idx = label_index(conds, assignment, self._func)
            return probs[np.arange(batch.n_rows), idx]
        p = self.plan(batch)
        return p.row_prob_of(label_index(p.conditions, assignment, self._func))

    def conduct(self, data: Any = None, *, seed: SeedLike = None) -> np.ndarray:
        """Draw one assignment for one dataset (DataFrame, N, or the declared N).

        Examples
        --------
        >>> from declaredesign.assign import declare_ra
        >>> declare_ra(N=4, m=2).conduct(seed=3).sum()
        np.int64(2)
        """
        return self.conduct_batch(self._to_batch(data), rng_from(seed))

    def probabilities(self, data: Any = None) -> pd.DataFrame:
        """Matrix of condition probabilities, one row per unit, columns ``prob_<cond>``."""
        if self._custom is not None:
            self._custom_rows(self._to_batch(data))
            conds, probs = self._custom_probabilities()
            return pd.DataFrame(probs, columns=[f"prob_{c}" for c in conds.tolist()])
        p = self.plan(self._to_batch(data))
        mat = p.row_prob_matrix()
        return pd.DataFrame(mat, columns=[f"prob_{c}" for c in p.conditions.tolist()])

    def condition_probabilities(self, assignment: Any, data: Any = None) -> np.ndarray:
        """Probability of each unit's realised condition."""
        return self.probabilities_batch(self._to_batch(data), assignment)


def _rebuild(cls, func, params):
    return cls(func, **params)


def _same(a: Any, b: Any) -> bool:
    if is_array(a) or is_array(b):
        return False
    return a == b


# ------------------------------------------------------------- plan building
def _resolve_rows(decl: _Declaration, arg: str, value: Any, batch: Batch,
                  sizes: np.ndarray, grouped: bool = False) -> np.ndarray | None:
    """Per-row values of a column-or-array argument over the whole batch.

    ``grouped``: the rows will be grouped by the column anyway, so a missing value is
    looked for on the first row of each group (groups never mix missing and present).
    """
    func = decl._func
    if value is None:
        return None
    if isinstance(value, str):
        rows = _column_or_expression(func, arg, value, batch)
    else:
        arr = np.asarray(value)
        if arr.ndim == 0:
            return np.broadcast_to(arr, (batch.n_rows,))
        n = arr.shape[0]
        if sizes.size and not np.all(sizes == n):
            bad = int(sizes[sizes != n][0])
            fail(func, arg, value, f"of length N (the number of rows, {bad})",
                 shown=shown(value) + f" (length {n})")
        rows = np.tile(arr, batch.n_sims) if arr.ndim == 1 else np.tile(arr, (batch.n_sims, 1))
    if grouped and isinstance(value, str) and value in batch and rows.dtype.kind == "O" \
            and not pd.isna(rows[batch.groups(value).first]).any():
        return rows
    _check_not_missing(func, arg, value, rows)
    return rows


def _column_or_expression(func: str, arg: str, value: str, batch: Batch) -> np.ndarray:
    """Return a column of the batch, or evaluate an expression over its columns.

    R evaluates ``strata = paste(X, Y)`` in the data; so do we, for a string that is
    not a column name.
    """
    if value in batch:
        return np.asarray(batch[value])
    if value.isidentifier():
        cols = ", ".join(sorted(batch.names)) or "(none)"
        raise DeclarationError(
            f"{func}({arg}={value!r}): {arg} must name a column of the data; got "
            f"{value!r}, and the columns are: {cols}.")
    try:
        return np.asarray(evaluate(value, batch, label=f"{func}({arg}={value!r})"))
    except DeclarationError:
        raise
    except Exception as exc:
        raise DeclarationError(
            f"{func}({arg}={value!r}): {arg} must be a column name or an expression over "
            f"the columns; evaluating it failed: {exc}") from exc


def _check_not_missing(func: str, arg: str, value: Any, rows: np.ndarray) -> None:
    """Refuse NaN/None in grouping and per-unit arguments.

    randomizr silently drops the units whose block or cluster is NA (its result is
    shorter than the data); a missing value is never a block of its own here.
    """
    if rows.dtype.kind in "iub" or rows.size == 0:
        return
    if rows.dtype.kind in "fc":
        missing = np.isnan(rows)
    else:
        missing = pd.isna(rows)
    if np.any(missing):
        where = np.argwhere(missing)[0]
        fail(func, arg, value, f"free of missing values (NaN/None); row {int(where[0])} "
             "of the data is missing", shown=shown(value))


def build_plan(decl: _Declaration, batch: Batch) -> Plan:
    """Resolve ``decl`` against ``batch`` (validating everything data-dependent)."""
    sizes = batch.sim_sizes()
    if decl.N is not None and sizes.size and not np.all(sizes == decl.N):
        bad = int(sizes[sizes != decl.N][0])
        fail(decl._func, "N", decl.N, f"equal to the number of rows of the data ({bad})")
    r = _Resolution.of(decl, batch, sizes)
    spec = decl._spec()
    conditions = decl._conditions()
    if spec.kind == "simple":
        unit_prob = _simple_probabilities(r, spec, conditions.shape[0])
        return Plan(batch.n_sims, conditions, r.unit_of_row, r.units.codes, r.units.group_sim,
                    r.group_n, True, unit_prob=np.ascontiguousarray(unit_prob),
                    rows_are_units=r.by_cluster is None)
    if spec.how == "const":
        vals = np.broadcast_to(np.asarray(spec.value),
                               (r.units.n_groups, *np.shape(spec.value)))
    elif spec.how == "unit":
        vals = r.per_group(spec.arg).astype(float)
    else:
        vals = _per_block_values(r, spec.arg, spec.value)
    floor, weight, rem, reported = _COUNTS[spec.kind](r, spec, vals)
    return Plan(batch.n_sims, conditions, r.unit_of_row, r.units.codes, r.units.group_sim,
                r.group_n, False,
                floor=np.ascontiguousarray(floor, dtype=np.int64),
                weight=np.ascontiguousarray(weight, dtype=float), rem=rem,
                reported=np.ascontiguousarray(reported, dtype=float),
                rows_are_units=r.by_cluster is None)


#: Per-block arguments that may be given by name (dict or Series keyed by block label).
_NAMED_ARGS = ("block_m", "block_prob", "block_m_each", "block_prob_each", "strata_n",
               "strata_prob")


def _per_block_values(r: _Resolution, arg: str, value: Any) -> np.ndarray:
    """One value per group of a per-block argument, by block name when named."""
    given = getattr(r.decl, arg)
    if isinstance(given, NamedValues) and given.names is not None and r.units.n_groups:
        labels = r.block_rows[r.unit_first[r.units.first]]
        vals = given.per_group(labels, r.decl._func, arg)
        if vals is not None:
            return vals
    return r.per_block(np.asarray(value), arg)


@dataclasses.dataclass
class _Resolution:
    """A declaration's units and groups on one batch, and per-unit/per-group values.

    Units are rows, or clusters within each simulation; ``units`` groups them by
    (simulation, block), one group per simulation without blocks. Both indexes are
    :class:`~declaredesign.groups.GroupIndex`es, memoised on the batch when the
    declaration names columns.
    """

    decl: _Declaration
    batch: Batch
    sizes: np.ndarray
    clusters: np.ndarray | None
    has_blocks: bool
    unit_of_row: np.ndarray          # (n_rows,) unit of each row
    unit_first: np.ndarray           # (n_units,) first row of each unit
    units: GroupIndex                # units grouped by (simulation, block)
    by_cluster: GroupIndex | None    # rows grouped into clusters (None: units are rows)
    block_rows: np.ndarray | None = None   # block of each row

    @classmethod
    def of(cls, decl: _Declaration, batch: Batch, sizes: np.ndarray) -> _Resolution:
        """Group the batch's rows into units and the units into groups."""
        block_arg = decl._block_arg
        blocks = _resolve_rows(decl, block_arg, getattr(decl, block_arg), batch, sizes, True)
        clusters = _resolve_rows(decl, "clusters", decl.clusters, batch, sizes, True)
        for arg, rows in ((block_arg, blocks), ("clusters", clusters)):
            if rows is not None and rows.ndim != 1:
                fail(decl._func, arg, getattr(decl, arg), "a vector (one value per unit)",
                     shown=f"<array of shape {np.shape(getattr(decl, arg))}>")
        by_cluster = None
        if clusters is not None:
            by_cluster = _row_groups(batch, decl.clusters, clusters)
            unit_of_row, unit_sim, unit_first = \
                by_cluster.codes, by_cluster.group_sim, by_cluster.first
        else:
            unit_of_row = unit_first = np.arange(batch.n_rows, dtype=np.int64)
            unit_sim = batch.sim
        if blocks is None:
            units = GroupIndex.from_keys(unit_sim, batch.n_sims)
        else:
            by_block = _row_groups(batch, getattr(decl, block_arg), blocks)
            unit_group = by_block.codes[unit_first]
            # with one block per simulation every cluster is nested in it: no row pass
            if clusters is not None and not _one_group_per_sim(by_block):
                _check_nested(decl, clusters, unit_group[unit_of_row], by_block.codes)
            units = GroupIndex(unit_group, by_block.group_sim, batch.n_sims)
        return cls(decl, batch, sizes, clusters, blocks is not None, unit_of_row, unit_first,
                   units, by_cluster, blocks)

    @property
    def n_units(self) -> int:
        """Number of units over all simulations."""
        return int(self.unit_first.shape[0])

    @functools.cached_property
    def group_n(self) -> np.ndarray:
        """Units per group."""
        return self.units.count().astype(np.int64)

    def per_unit(self, values: np.ndarray, arg: str) -> np.ndarray:
        """One value per unit of a per-row argument (constant within each cluster)."""
        decl = self.decl
        if self.by_cluster is not None:
            if not self.by_cluster.is_constant(values):
                fail(decl._func, arg, getattr(decl, arg), "constant within each cluster",
                     shown=shown(getattr(decl, arg)))
        return values[self.unit_first]

    def per_group(self, arg: str) -> np.ndarray:
        """One value per group of a per-row argument (constant within each group)."""
        decl = self.decl
        rows = _resolve_rows(decl, arg, getattr(decl, arg), self.batch, self.sizes)
        u = self.per_unit(rows, arg)
        if not self.units.is_constant(u):
            where = f"within each {_block_word(decl)}" if self.has_blocks else "for all units"
            fail(decl._func, arg, getattr(decl, arg), f"the same {where}",
                 shown=shown(getattr(decl, arg)))
        return u[self.units.first]

    def per_block(self, value: np.ndarray, arg: str) -> np.ndarray:
        """One value per group of a per-block argument (one entry per block)."""
        group_sim = self.units.group_sim
        first_group_of_sim = np.searchsorted(group_sim, group_sim, side="left")
        rank = np.arange(self.units.n_groups) - first_group_of_sim
        n_blocks = np.bincount(group_sim, minlength=self.batch.n_sims)[np.unique(group_sim)]
        if n_blocks.size and not np.all(n_blocks == value.shape[0]):
            bad = int(n_blocks[n_blocks != value.shape[0]][0])
            what = "rows" if value.ndim == 2 else "length"
            fail(self.decl._func, arg, value,
                 f"of {what} equal to the number of {self.decl._block_arg} ({bad})",
                 shown=shown(value))
        return value[rank]


def _row_groups(batch: Batch, declared: Any, rows: np.ndarray) -> GroupIndex:
    """Group rows by (simulation, key), with the batch's own index for a column."""
    if isinstance(declared, str) and declared in batch:
        return batch.groups(declared)
    return GroupIndex.from_keys(batch.sim, batch.n_sims, rows)


def _block_word(decl: _Declaration) -> str:
    return "block" if decl._block_arg == "blocks" else "stratum"


def _one_group_per_sim(index: GroupIndex) -> bool:
    """Whether every simulation has exactly one group (e.g. a single block)."""
    return bool(np.array_equal(index.group_sim, np.arange(index.n_sims)))


def _check_nested(decl: _Declaration, clusters: np.ndarray, block_of_unit_row: np.ndarray,
                  block_of_row: np.ndarray) -> None:
    """Clusters must lie within one block each."""
    if np.array_equal(block_of_unit_row, block_of_row):
        return
    bad = int(np.flatnonzero(block_of_unit_row != block_of_row)[0])
    fail(decl._func, "clusters", decl.clusters,
         f"nested within {decl._block_arg} (cluster {shown(clusters[bad])} has units in more "
         f"than one {_block_word(decl)})", shown=shown(decl.clusters))


# ------------------------------------------------------- probabilities and counts
def _simple_probabilities(r: _Resolution, spec: Any, k: int) -> np.ndarray:
    """(n_units, K) probabilities of a simple (independent draws) design."""
    decl = r.decl
    if spec.how == "const":
        return np.broadcast_to(np.asarray(spec.value, float), (r.n_units, k))
    if spec.how == "unit":
        rows = _resolve_rows(decl, spec.arg, spec.value, r.batch, r.sizes).astype(float)
        if np.any((rows < 0) | (rows > 1)):
            fail(decl._func, spec.arg, spec.value, "probabilities in [0, 1]",
                 shown=shown(spec.value))
        p = r.per_unit(rows, spec.arg)
        return np.column_stack([1 - p, p])
    # matrix: one probability row per row of the data
    mat = np.asarray(spec.value, float)
    if mat.shape[0] == 1:
        return np.broadcast_to(mat[0], (r.n_units, k))
    rows = _resolve_rows(decl, spec.arg, mat, r.batch, r.sizes)
    return rows[r.unit_first]


def _fail_arg(r: _Resolution, spec: Any, expected: str) -> None:
    value = getattr(r.decl, spec.arg)
    fail(r.decl._func, spec.arg, value, expected, shown=shown(value))


def _counts_m2(r: _Resolution, spec: Any, vals: np.ndarray) -> tuple[np.ndarray, ...]:
    """Two arms, a fixed number ``m`` treated per group."""
    n = r.group_n
    m = np.asarray(vals, dtype=float)
    if np.any((m < 0) | (m != np.floor(m))):
        _fail_arg(r, spec, "non-negative integers")
    if np.any(m > n):
        bad = int(np.flatnonzero(m > n)[0])
        where = f" (a {_block_word(r.decl)} has {n[bad]} units)" if r.has_blocks \
            else f" (N = {n[bad]})"
        _fail_arg(r, spec, f"at most the number of units{where}")
    m = m.astype(np.int64)
    floor = np.column_stack([n - m, m])
    weight = np.zeros((r.units.n_groups, 2))
    rem = np.zeros(r.units.n_groups, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        reported = np.column_stack([1 - m / n, m / n])
    return floor, weight, rem, reported


def _counts_p2(r: _Resolution, spec: Any, vals: np.ndarray) -> tuple[np.ndarray, ...]:
    """Two arms, a probability per group rounded as randomizr rounds ``N * prob``."""
    n = r.group_n
    p = np.asarray(vals, dtype=float)
    if np.any((p < 0) | (p > 1)):
        _fail_arg(r, spec, "probabilities in [0, 1]")
    npr = n * p
    fl = np.floor(npr)
    ce = np.ceil(npr)
    # randomizr: if ceil(N p) == N, use floor(N p) (not for N = 1, see README).
    rule = (ce == n) & (n > 1)
    mix = (ce > fl) & ~rule
    fix = np.where(mix, (npr - fl) / np.where(mix, ce - fl, 1.0), 0.0)
    base = fl.astype(np.int64)
    floor = np.column_stack([n - base - mix, base])
    weight = np.column_stack([np.where(mix, 1 - fix, 0.0), fix])
    rem = mix.astype(np.int64)
    reported = np.column_stack([1 - p, p])
    r_p = fl / np.maximum(n, 1)
    reported[rule] = np.column_stack([1 - r_p, r_p])[rule]
    return floor, weight, rem, reported


def _counts_pe(r: _Resolution, spec: Any, vals: np.ndarray) -> tuple[np.ndarray, ...]:
    """Several arms, a probability of each per group (``prob_each``)."""
    n = r.group_n
    pe = np.asarray(vals, dtype=float)
    npe = n[:, None] * pe
    fl = np.floor(npe)
    rem = (n - fl.sum(axis=1)).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(rem[:, None] > 0, (npe - fl) / np.maximum(rem, 1)[:, None], 0.0)
    floor = fl.astype(np.int64)
    reported = np.array(pe, dtype=float, copy=True)
    hard = np.flatnonzero(rem >= 2)
    # R reports prob_each; with >= 2 remainder units and unequal weights the successive
    # sampling it does gives other marginals, which we report.
    cache: dict = {}
    for g in hard:
        key = (int(n[g]), tuple(pe[g]))
        if key not in cache:
            w = weight[g]
            wp = w[w > 0]
            if np.allclose(wp, wp[0], rtol=0, atol=1e-12):
                cache[key] = pe[g]
            else:
                cache[key] = (floor[g] + remainder_marginals(w, rem[g])) / n[g]
        reported[g] = cache[key]
    return floor, weight, rem, reported


def _counts_me(r: _Resolution, spec: Any, vals: np.ndarray) -> tuple[np.ndarray, ...]:
    """Several arms, a fixed count of each per group (``m_each``)."""
    n = r.group_n
    me = np.asarray(vals, dtype=np.int64)
    if np.any(me.sum(axis=1) != n):
        bad = int(np.flatnonzero(me.sum(axis=1) != n)[0])
        _fail_arg(r, spec, f"counts summing to the number of units ({n[bad]})")
    floor = me.copy()
    weight = np.zeros(me.shape)
    rem = np.zeros(r.units.n_groups, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        reported = me / n[:, None]
    return floor, weight, rem, reported


_COUNTS = {"m2": _counts_m2, "p2": _counts_p2, "pe": _counts_pe, "me": _counts_me}
