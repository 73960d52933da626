"""Levels and ``fabricate``: hierarchical data for many simulations at once.

A level spec (``add_level``, ``nest_level``, ``modify_level``, ``cross_levels``,
``link_levels``) only stores its arguments. :func:`fabricate_batch` runs a dict of
specs over ``n_sims`` simulations in one pass: each nested level repeats its
parent rows with ``np.repeat`` (the number of children may differ per parent and
per simulation) and numbers its IDs ``1..n`` within each simulation, across all
parents, as fabricatr does within one dataset. :func:`fabricate` is the
standalone, one-dataset entry point returning a pandas DataFrame.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from .._validation import fail
from ..batch import Batch
from ..errors import DeclarationError
from ..expressions import Lazy, check, evaluate
from ..expressions import short_repr as _short_repr
from ..groups import sim_starts

__all__ = [
    "LevelSpec", "add_level", "cross_levels", "fabricate", "fabricate_batch",
    "join_using", "link_levels", "modify_level", "nest_level",
]


# ------------------------------------------------------------------ declaration
def _check_N(func: str, N: Any, *, required: bool) -> None:
    if N is None:
        if required:
            fail(func, "N", N, "given")
        return
    if isinstance(N, bool):
        fail(func, "N", N, "a non-negative integer, a column name, an array or a draw")
    if isinstance(N, numbers.Real):
        if not np.isfinite(N) or N < 0 or float(N) % 1 != 0:
            fail(func, "N", N, "a non-negative integer")
        return
    if isinstance(N, (list, tuple, np.ndarray)):
        arr = np.asarray(N)
        if arr.ndim != 1 or arr.dtype.kind not in "iuf" or np.any(arr < 0) \
                or np.any(arr % 1 != 0):
            fail(func, "N", N, "non-negative integers (one per parent row)",
                 shown=_short_repr(arr))
        return
    if isinstance(N, (str, Lazy)) or callable(N):
        return
    fail(func, "N", N, "a non-negative integer, a column name, an array or a draw",
         shown=f"<{type(N).__name__}>")


def _check_variables(func: str, variables: Mapping[str, Any]) -> None:
    for name, v in variables.items():
        ok = (v is None or isinstance(v, (numbers.Number, np.generic, str, Lazy, list,
                                          tuple, np.ndarray))
              or callable(v) or hasattr(v, "to_numpy") or hasattr(v, "apply"))
        if not ok:
            fail(func, name, v, "a number, an array, a string expression, a draw such as "
                 "normal() or a callable", shown=f"<{type(v).__name__}>")
        check(v, f"{func}({name}=...)")


def _freeze(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(v)
    if isinstance(v, np.ndarray):
        v = v.copy()
        v.setflags(write=False)
    return v


@dataclass(frozen=True, repr=False, eq=False)
class JoinUsing:
    """Which variables ``cross_levels``/``link_levels`` join on (see :func:`join_using`)."""

    variable_names: tuple[str, ...]
    rho: float = 0.0
    sigma: Any = None

    def __repr__(self) -> str:
        args = [repr(v) for v in self.variable_names]
        if self.rho:
            args.append(f"rho={self.rho!r}")
        if self.sigma is not None:
            args.append(f"sigma={_short_repr(np.asarray(self.sigma))}")
        return f"join_using({', '.join(args)})"


def join_using(*variables: str, rho: float = 0.0, sigma: Any = None) -> JoinUsing:
    """Name the variables on which level hierarchies are joined (fabricatr ``join_using``).

    Parameters
    ----------
    *variables : str
        One variable from each hierarchy to join.
    rho : float, default 0
        Correlation of the joined variables in ``link_levels`` (Gaussian copula).
    sigma : array_like, optional
        Full correlation matrix instead of ``rho``.

    Examples
    --------
    >>> join_using("ps_quality", "ss_quality", rho=0.5)
    join_using('ps_quality', 'ss_quality', rho=0.5)
    """
    if not variables or not all(isinstance(v, str) and v for v in variables):
        fail("join_using", "variables", variables, "one or more column names")
    if len(set(variables)) != len(variables):
        fail("join_using", "variables", variables, "distinct names")
    if not isinstance(rho, numbers.Real) or not -1 <= rho <= 1:
        fail("join_using", "rho", rho, "a number in [-1, 1]")
    if sigma is not None:
        s = np.asarray(sigma, dtype=float)
        k = len(variables)
        if s.shape != (k, k) or not np.allclose(s, s.T) or np.any(np.diag(s) != 1) \
                or np.any(np.abs(s) > 1) or np.any(np.linalg.eigvalsh(s) < -1e-12):
            fail("join_using", "sigma", sigma, f"a {k}x{k} correlation matrix",
                 shown="<matrix>")
        sigma = _freeze(s)
    return JoinUsing(tuple(variables), float(rho), sigma)


@dataclass(frozen=True, repr=False, eq=False)
class LevelSpec:
    """One level call of ``fabricate``: what kind, its ``N`` and its variables.

    Build with :func:`add_level`, :func:`nest_level`, :func:`modify_level`,
    :func:`cross_levels` or :func:`link_levels`. Variables are evaluated in order,
    each seeing the level's earlier variables, the parent columns and ``N``.
    """

    kind: str
    N: Any = None
    variables: tuple[tuple[str, Any], ...] = ()
    nest: bool = True
    by: Any = None

    def __repr__(self) -> str:
        args = []
        if self.kind == "cross_levels" or self.kind == "link_levels":
            if self.kind == "link_levels":
                args.append(f"N={_short_repr(self.N)}")
            args.append(f"by={self.by!r}")
        elif self.kind == "modify_level":
            if self.by is not None:
                args.append(f"by={self.by!r}")
        elif self.N is not None:
            args.append(f"N={_short_repr(self.N)}")
        args += [f"{k}={_short_repr(v)}" for k, v in self.variables]
        if self.kind == "add_level" and not self.nest:
            args.append("nest=False")
        return f"{self.kind}({', '.join(args)})"

    def replace(self, **changes: Any) -> LevelSpec:
        """Return a copy with some fields changed (``variables`` as a dict)."""
        if "variables" in changes and isinstance(changes["variables"], Mapping):
            changes["variables"] = tuple(changes["variables"].items())
        return replace(self, **changes)

    @property
    def variable_dict(self) -> dict[str, Any]:
        """The variables as an ordered dict."""
        return dict(self.variables)


def _spec(kind: str, N: Any, variables: dict, **kw: Any) -> LevelSpec:
    _check_variables(kind, variables)
    return LevelSpec(kind=kind, N=_freeze(N),
                     variables=tuple((k, _freeze(v)) for k, v in variables.items()), **kw)


def add_level(N: Any = None, nest: bool = True, **variables: Any) -> LevelSpec:
    """Declare a level (fabricatr ``add_level``).

    The first level of a hierarchy makes ``N`` rows per simulation; a later level
    nests under the current one (unless ``nest=False``, which starts a new
    hierarchy for ``cross_levels``).

    Parameters
    ----------
    N : int, str, array_like, lazy draw or callable
        Rows of a top level (an integer), or children per parent row for a nested
        level: one number for all parents, one per parent (an array, a parent
        column name, or a draw such as ``poisson(20) + 5``).
    nest : bool, default True
        Nest under the previous level if there is one.
    **variables
        Variables of the level, in order (expressions, draws, arrays, callables).
        A value with an ``apply(batch, rng)`` method, such as
        ``potential_outcomes(...)``, adds its own columns (its keyword is only a
        placeholder), like an unnamed ``potential_outcomes()`` inside R's
        ``add_level``.

    Examples
    --------
    >>> from declaredesign.fabricate import normal
    >>> add_level(N=10, class_effect=normal(mean=0, sd=0.001))
    add_level(N=10, class_effect=normal(mean=0, sd=0.001))
    """
    _check_N("add_level", N, required=False)
    if not isinstance(nest, bool):
        fail("add_level", "nest", nest, "True or False")
    return _spec("add_level", N, variables, nest=nest)


def nest_level(N: Any = None, **variables: Any) -> LevelSpec:
    """Declare a level nested in the current one (fabricatr ``nest_level``).

    Examples
    --------
    >>> nest_level(N=[2, 3], y="x + 1")
    nest_level(N=(2, 3), y='x + 1')
    """
    _check_N("nest_level", N, required=True)
    return _spec("nest_level", N, variables)


def modify_level(by: str | list[str] | None = None, **variables: Any) -> LevelSpec:
    """Add or change variables of an existing level (fabricatr ``modify_level``).

    The level modified is the one with the same name in ``fabricate`` if there is
    one, else the current level. With ``by``, ``N`` and the reductions (``mean``,
    ``sum``...) refer to the groups of ``by`` within each simulation.

    Examples
    --------
    >>> modify_level(by="country", centred="x - mean(x)")
    modify_level(by='country', centred='x - mean(x)')
    """
    if by is not None and not (isinstance(by, str) or (
            isinstance(by, (list, tuple)) and all(isinstance(b, str) for b in by))):
        fail("modify_level", "by", by, "a column name or a list of column names")
    return _spec("modify_level", None, variables, by=tuple(by) if isinstance(by, list) else by)


def cross_levels(by: JoinUsing, **variables: Any) -> LevelSpec:
    """Cross-classify two or more hierarchies (fabricatr ``cross_levels``).

    Every combination of the rows of the hierarchies holding the ``by`` variables,
    within each simulation (the first hierarchy varies fastest, as R's ``merge``).

    Examples
    --------
    >>> cross_levels(by=join_using("a", "b"), z="a + b")
    cross_levels(by=join_using('a', 'b'), z='a + b')
    """
    if not isinstance(by, JoinUsing):
        fail("cross_levels", "by", by, "made by join_using(...)")
    if by.rho or by.sigma is not None:
        fail("cross_levels", "by", by, "without rho or sigma (use link_levels)")
    if len(by.variable_names) < 2:
        fail("cross_levels", "by", by, "joining at least two variables")
    return _spec("cross_levels", None, variables, by=by)


def link_levels(N: Any, by: JoinUsing, **variables: Any) -> LevelSpec:
    """Draw ``N`` linked rows from two or more hierarchies (fabricatr ``link_levels``).

    Each new row picks one row of every hierarchy at random; with ``rho``/``sigma``
    the picks are correlated through a Gaussian copula on the ranks of the ``by``
    variables.

    Examples
    --------
    >>> link_levels(N=100, by=join_using("a", "b", rho=0.3))
    link_levels(N=100, by=join_using('a', 'b', rho=0.3))
    """
    _check_N("link_levels", N, required=True)
    if not isinstance(N, numbers.Integral) or N <= 0:
        fail("link_levels", "N", N, "a positive integer")
    if not isinstance(by, JoinUsing):
        fail("link_levels", "by", by, "made by join_using(...)")
    if len(by.variable_names) < 2:
        fail("link_levels", "by", by, "joining at least two variables")
    return _spec("link_levels", N, variables, by=by)


# --------------------------------------------------------------------- running
class _Workspace:
    """The hierarchies being built, as fabricatr's workspace (one frame per level)."""

    def __init__(self, n_sims: int, rng: np.random.Generator):
        self.n_sims = n_sims
        self.rng = rng
        self.frames: dict[str, Batch] = {}
        self.hierarchy: dict[str, int] = {}
        self.active: str | None = None
        self._n_hier = 0

    def put(self, label: str, frame: Batch, hierarchy: int | None = None) -> None:
        if hierarchy is None:
            hierarchy = self._n_hier
            self._n_hier += 1
        self.frames[label] = frame
        self.hierarchy[label] = hierarchy
        self.active = label


def _within_sim_ids(sim: np.ndarray, n_sims: int) -> np.ndarray:
    # 1..n within each simulation: row number minus the simulation's first row (rows come
    # simulation by simulation, so each start repeats over its rows; no gather by sim)
    starts = sim_starts(sim, n_sims)
    ids = np.arange(1, sim.shape[0] + 1, dtype=np.int64)
    ids -= np.repeat(starts[:-1], np.diff(starts))
    return ids


def _counts(func: str, label: str, N: Any, parent: Batch | None, n_sims: int,
            rng: np.random.Generator) -> np.ndarray:
    """N evaluated per parent row (or per simulation at the top), as int64."""
    if parent is None:
        ctx_batch = Batch({}, np.arange(n_sims, dtype=np.int64), n_sims)
    else:
        ctx_batch = parent
    if isinstance(N, numbers.Real) and not isinstance(N, bool):
        out = np.full(ctx_batch.n_rows, N)
    else:
        out = evaluate(N, ctx_batch, rng, label=f"{label}={func}(N=...)")
    out = np.asarray(out)
    if out.dtype.kind not in "iuf" or (out.size and (np.any(out < 0) or np.any(out % 1 != 0)
                                                     or np.any(~np.isfinite(out)))):
        bad = out[0] if out.dtype.kind not in "iuf" else \
            out[(out < 0) | (out % 1 != 0) | ~np.isfinite(out)][0]
        raise DeclarationError(
            f"{func}(N={_short_repr(N)}) for level {label!r}: N must be non-negative "
            f"integers; got {_short_repr(bad)}."
        )
    return out.astype(np.int64)


def _eval_variables(spec: LevelSpec, label: str, frame: Batch, rng: np.random.Generator,
                    *, inner_N: int | None = None, group: np.ndarray | None = None,
                    n_groups: int | None = None) -> Batch:
    if not spec.variables:
        return frame
    if group is None:
        group, n_groups = frame.sim, frame.n_sims
    sizes = frame.sim_sizes()
    cols = dict(frame.columns)
    for name, value in spec.variables:
        if value is None:
            cols.pop(name, None)
            continue
        work = Batch(cols, frame.sim, frame.n_sims)
        if hasattr(value, "apply") and not isinstance(value, Lazy):
            # A multi-column generator such as potential_outcomes(...).
            out = value.apply(work, rng)
            cols = dict(out.columns)
            continue
        if isinstance(value, (list, tuple, np.ndarray)):
            value = _recycle(np.asarray(value), spec, label, name, frame, sizes, inner_N)
        # N is the rows of each row's group, which evaluate counts from `group` when an
        # expression reads it (a column named N shadows it either way)
        cols[name] = evaluate(value, work, rng, label=f"{label}: {name}", group=group,
                              n_groups=n_groups)
    return Batch(cols, frame.sim, frame.n_sims, frame.id_columns)


def _recycle(arr: np.ndarray, spec: LevelSpec, label: str, name: str, frame: Batch,
             sizes: np.ndarray, inner_N: int | None) -> np.ndarray:
    """Fixed-length data: one value per row, per row of a simulation, or per child."""
    n = frame.n_rows
    if arr.ndim != 1:
        fail(spec.kind, name, arr, "one-dimensional", shown=_short_repr(arr))
    if arr.shape[0] in (1, n):
        return arr if arr.shape[0] == n else np.full(n, arr[0])
    if sizes.size and np.all(sizes == sizes[0]) and arr.shape[0] == sizes[0]:
        return np.tile(arr, frame.n_sims)
    if inner_N is not None and inner_N > 0 and arr.shape[0] == inner_N:
        # fabricatr: a vector of the nested N repeats for every parent.
        return np.tile(arr, n // inner_N)
    raise DeclarationError(
        f"{spec.kind}({name}=...) for level {label!r}: {name} has {arr.shape[0]} values; "
        f"expected 1, one per row of the level ({int(sizes[0]) if sizes.size else 0} per "
        f"simulation) or one per child."
    )


def _top_level(spec: LevelSpec, label: str, ws: _Workspace) -> None:
    if spec.N is None:
        fail("add_level", "N", None, f"given for the top level {label!r}")
    counts = _counts("add_level", label, spec.N, None, ws.n_sims, ws.rng)
    if np.any(counts == 0) and isinstance(spec.N, numbers.Real):
        fail("add_level", "N", spec.N, "positive for a top level")
    sim = np.repeat(np.arange(ws.n_sims, dtype=np.int64), counts)
    frame = Batch({label: _within_sim_ids(sim, ws.n_sims)}, sim, ws.n_sims, (label,))
    frame = _eval_variables(spec, label, frame, ws.rng)
    ws.put(label, frame)


def _spreader(counts: np.ndarray, n_parent: int) -> Callable[[np.ndarray], np.ndarray]:
    """Return how to repeat each parent row's value for its ``counts`` children.

    The same arrays whichever way: ``np.repeat`` by one count (every parent has as many
    children) or by large counts writes the children's rows without reading an index;
    for a few children each a gather by parent row is faster.
    """
    if counts.size and counts.min() == counts.max():
        each = int(counts[0])
        return lambda v: np.repeat(v, each)
    if counts.size and int(counts.sum()) >= 16 * counts.size:
        return lambda v: np.repeat(v, counts)
    idx = np.repeat(np.arange(n_parent, dtype=np.int64), counts)
    return lambda v: v[idx]


def _nested_level(spec: LevelSpec, label: str, ws: _Workspace) -> None:
    parent_label = ws.active
    parent = ws.frames[parent_label]
    func = spec.kind
    N = spec.N
    if N is None:
        fail(func, "N", None, f"given for the nested level {label!r}")
    if isinstance(N, (list, tuple, np.ndarray)) and np.asarray(N).shape[0] != parent.n_rows:
        sizes = parent.sim_sizes()
        arr = np.asarray(N)
        if sizes.size and np.all(sizes == sizes[0]) and arr.shape[0] == sizes[0]:
            N = np.tile(arr, parent.n_sims)
        else:
            fail(func, "N", spec.N, f"one number or one per row of the parent level "
                 f"{parent_label!r} ({int(sizes[0]) if sizes.size else 0})",
                 shown=_short_repr(arr))
    counts = _counts(func, label, N, parent, ws.n_sims, ws.rng)
    spread = _spreader(counts, parent.n_rows)
    cols = {k: spread(v) for k, v in parent.columns.items()}
    sim = spread(parent.sim)
    ids = set(parent.id_columns)
    if label not in cols:
        cols[label] = _within_sim_ids(sim, ws.n_sims)
        ids.add(label)
    frame = Batch(cols, sim, ws.n_sims, ids)
    inner = int(spec.N) if isinstance(spec.N, numbers.Real) else None
    frame = _eval_variables(spec, label, frame, ws.rng, inner_N=inner)
    ws.put(label, frame, ws.hierarchy[parent_label])


def _modify_level(spec: LevelSpec, label: str, ws: _Workspace) -> None:
    target = label if label in ws.frames else ws.active
    if target is None:
        raise DeclarationError(f"modify_level for {label!r}: there is no level to modify; "
                               f"declare one with add_level first.")
    frame = ws.frames[target]
    group = n_groups = None
    if spec.by is not None:
        keys = [spec.by] if isinstance(spec.by, str) else list(spec.by)
        missing = [k for k in keys if k not in frame]
        if missing:
            raise DeclarationError(
                f"modify_level(by={spec.by!r}) for level {label!r}: column(s) "
                f"{', '.join(map(repr, missing))} not found; available columns are: "
                f"{', '.join(frame.names)}.")
        cells = frame.groups(*keys)
        group, n_groups = cells.codes, cells.n_groups
    frame = _eval_variables(spec, label, frame, ws.rng, group=group, n_groups=n_groups)
    ws.put(target, frame, ws.hierarchy[target])


def _find_frames(spec: LevelSpec, label: str, ws: _Workspace) -> list[str]:
    chosen = []
    for var in spec.by.variable_names:
        holders = [k for k, f in ws.frames.items() if var in f]
        if not holders:
            raise DeclarationError(
                f"{spec.kind} for level {label!r}: join variable {var!r} is not in any "
                f"level; levels are: {', '.join(ws.frames)}.")
        hier = {ws.hierarchy[h] for h in holders}
        if len(hier) > 1:
            raise DeclarationError(
                f"{spec.kind} for level {label!r}: join variable {var!r} is ambiguous, it "
                f"appears in several hierarchies ({', '.join(holders)}).")
        # Within one hierarchy use its latest (deepest) frame holding the variable.
        chosen.append(holders[-1])
    if len({ws.hierarchy[c] for c in chosen}) != len(chosen):
        raise DeclarationError(f"{spec.kind} for level {label!r}: a hierarchy cannot be "
                               f"joined to itself.")
    return chosen


def _combine(frames: list[Batch], index: list[np.ndarray], sim: np.ndarray, n_sims: int,
             spec: LevelSpec, label: str) -> Batch:
    cols: dict[str, np.ndarray] = {}
    ids: set[str] = set()
    for f, ix in zip(frames, index, strict=False):
        for k, v in f.columns.items():
            if k in cols:
                raise DeclarationError(
                    f"{spec.kind} for level {label!r}: column {k!r} exists in more than one "
                    f"joined hierarchy; rename one of them.")
            cols[k] = v[ix]
        ids |= f.id_columns
    if label not in cols:
        cols[label] = _within_sim_ids(sim, n_sims)
        ids.add(label)
    return Batch(cols, sim, n_sims, ids)


def _cross_levels(spec: LevelSpec, label: str, ws: _Workspace) -> None:
    names = _find_frames(spec, label, ws)
    frames = [ws.frames[n] for n in names]
    n_sims = ws.n_sims
    # Cartesian product per simulation; earlier frames vary fastest (R's merge).
    size = np.ones(n_sims, dtype=np.int64)
    index_parts: list[tuple[np.ndarray, np.ndarray]] = []
    for f in frames:
        s = f.sim_sizes()
        index_parts.append((f.starts()[:-1], s))
        size = size * s
    sim = np.repeat(np.arange(n_sims, dtype=np.int64), size)
    pos = _within_sim_ids(sim, n_sims) - 1
    index = []
    stride = np.ones(n_sims, dtype=np.int64)
    for start, s in index_parts:
        ss, st = s[sim], stride[sim]
        index.append(start[sim] + (pos // st) % np.maximum(ss, 1))
        stride = stride * s
    frame = _combine(frames, index, sim, n_sims, spec, label)
    frame = _eval_variables(spec, label, frame, ws.rng)
    ws.put(label, frame)


def _link_levels(spec: LevelSpec, label: str, ws: _Workspace) -> None:
    names = _find_frames(spec, label, ws)
    frames = [ws.frames[n] for n in names]
    n_sims, N = ws.n_sims, int(spec.N)
    k = len(frames)
    sim = np.repeat(np.arange(n_sims, dtype=np.int64), N)
    by = spec.by
    if by.sigma is None and by.rho == 0:
        u = ws.rng.random((sim.shape[0], k))
    else:
        sigma = np.asarray(by.sigma) if by.sigma is not None else \
            np.full((k, k), by.rho) + np.eye(k) * (1 - by.rho)
        z = ws.rng.multivariate_normal(np.zeros(k), sigma, size=sim.shape[0],
                                       method="eigh")
        u = ndtr(z)
    index = []
    for j, (f, var) in enumerate(zip(frames, by.variable_names, strict=False)):
        s = f.sim_sizes()
        if np.any(s[sim] == 0):
            raise DeclarationError(f"link_levels for level {label!r}: level {names[j]!r} "
                                   f"has no rows in some simulation.")
        # Rows of the frame sorted by the join variable within each simulation, so
        # that correlated uniforms pick correlated quantiles.
        order = np.lexsort((np.asarray(f[var], dtype=float), f.sim))
        pick = np.minimum((u[:, j] * s[sim]).astype(np.int64), s[sim] - 1)
        index.append(order[f.starts()[:-1][sim] + pick])
    frame = _combine(frames, index, sim, n_sims, spec, label)
    frame = _eval_variables(spec, label, frame, ws.rng)
    ws.put(label, frame)


def _run_level(spec: LevelSpec, label: str, ws: _Workspace) -> None:
    kind = spec.kind
    if kind == "add_level":
        if ws.active is None or not spec.nest:
            _top_level(spec, label, ws)
        else:
            _nested_level(spec, label, ws)
    elif kind == "nest_level":
        if ws.active is None:
            raise DeclarationError(f"nest_level for {label!r} cannot be the top of a "
                                   f"hierarchy; use add_level.")
        _nested_level(spec, label, ws)
    elif kind == "modify_level":
        _modify_level(spec, label, ws)
    elif kind == "cross_levels":
        _cross_levels(spec, label, ws)
    elif kind == "link_levels":
        _link_levels(spec, label, ws)
    else:  # pragma: no cover - LevelSpec is built by our functions only
        raise DeclarationError(f"unknown level kind {kind!r}")


def _is_levels(levels: Mapping[str, Any]) -> bool:
    flags = [isinstance(v, LevelSpec) for v in levels.values()]
    if any(flags) and not all(flags):
        raise DeclarationError(
            "fabricate: arguments must either all be level calls (add_level, nest_level, "
            "modify_level, cross_levels, link_levels) or none of them; got a mix of "
            + ", ".join(f"{k}={'level' if f else 'variable'}"
                        for k, f in zip(levels, flags, strict=False)) + ".")
    return bool(flags) and all(flags)


def fabricate_batch(levels: Mapping[str, Any], *, n_sims: int,
                    rng: np.random.Generator, batch: Batch | None = None,
                    N: Any = None, ID_label: str | None = None) -> Batch:
    """Generate the data of ``n_sims`` simulations at once (the design layer's entry).

    Parameters
    ----------
    levels : dict of str to LevelSpec, or dict of str to variable
        Levels in order (names become ID columns), or plain variables of a single
        level (then ``N`` or ``batch`` is needed).
    n_sims : int
        Number of simulations (ignored when ``batch`` is given: its ``n_sims``).
    rng : numpy.random.Generator
        Source of all draws.
    batch : Batch, optional
        Existing data: levels nest under it, variables are added to it.
    N : int, optional
        Rows per simulation of a single level given as plain variables.
    ID_label : str, optional
        Name of the ID column of a single level (default ``"ID"``).

    Returns
    -------
    Batch
        The current (last) level's rows of every simulation; IDs are int codes.

    Examples
    --------
    >>> import numpy as np
    >>> from declaredesign.fabricate import normal, poisson
    >>> b = fabricate_batch({"cls": add_level(N=2, n=poisson(3) + 1),
    ...                      "pupil": add_level(N="n", y=normal())},
    ...                     n_sims=3, rng=np.random.default_rng(1))
    >>> b.n_sims, b.names
    (3, ['cls', 'n', 'pupil', 'y'])
    """
    if batch is not None:
        n_sims = batch.n_sims
    if isinstance(n_sims, bool) or not isinstance(n_sims, numbers.Integral) or n_sims < 0:
        fail("fabricate_batch", "n_sims", n_sims, "a non-negative integer")
    ws = _Workspace(int(n_sims), rng)
    if batch is not None:
        ws.put("__data__", batch)
    if _is_levels(levels):
        for label, spec in levels.items():
            _run_level(spec, label, ws)
        return ws.frames[ws.active]
    # A single level of plain variables.
    variables = dict(levels)
    if batch is None:
        if N is None:
            raise DeclarationError("fabricate: give N (rows per dataset), data or level "
                                   "calls.")
        label = ID_label or "ID"
        spec = _spec("add_level", N, variables)
        _check_N("fabricate", N, required=True)
        _top_level(spec, label, ws)
        return ws.frames[ws.active]
    frame = batch
    if ID_label is not None and ID_label not in frame:
        frame = frame.with_columns({ID_label: _within_sim_ids(frame.sim, frame.n_sims)},
                                   id_columns=(ID_label,))
    spec = _spec("modify_level", None, variables)
    return _eval_variables(spec, ID_label or "data", frame, rng)


def fabricate(*args: Any, data: pd.DataFrame | None = None, N: int | None = None,
              ID_label: str | None = None, seed: Any = None, **levels: Any) -> pd.DataFrame:
    """Make one simulated dataset (fabricatr ``fabricate``).

    Parameters
    ----------
    *args
        Optionally a DataFrame (``data``) or an integer (``N``), as fabricatr
        accepts them unnamed.
    data : pandas.DataFrame, optional
        Existing data to add variables or nested levels to.
    N : int, optional
        Rows of a single level given as plain variables.
    ID_label : str, optional
        ID column of a single level (default ``"ID"``).
    seed : int, SeedSequence or Generator, optional
        Seed of the random draws.
    **levels
        Either all level calls (``school=add_level(N=5, ...)``) or plain variables
        (``x=normal()``), evaluated in order.

    Returns
    -------
    pandas.DataFrame
        Level IDs are zero-padded strings as in fabricatr (``"01"``..``"15"``).

    Examples
    --------
    >>> from declaredesign.fabricate import normal
    >>> df = fabricate(N=3, x=normal(), seed=1)
    >>> df.columns.tolist(), df["ID"].tolist()
    (['ID', 'x'], ['1', '2', '3'])
    >>> fabricate(a=add_level(N=2), b=add_level(N=[2, 12]), seed=1)["b"].iloc[[0, -1]].tolist()
    ['01', '14']
    """
    for a in args:
        if isinstance(a, pd.DataFrame) and data is None:
            data = a
        elif isinstance(a, numbers.Integral) and not isinstance(a, bool) and N is None:
            N = int(a)
        else:
            fail("fabricate", "args", a, "a DataFrame (data) or an integer (N)",
                 shown=f"<{type(a).__name__}>")
    rng = np.random.default_rng(seed)
    all_levels = _is_levels(levels)
    if N is not None and (all_levels or data is not None):
        raise DeclarationError("fabricate: do exactly one of (1) level calls, with or "
                               "without data, (2) data plus new variables, (3) N plus "
                               "new variables.")
    if ID_label is not None and not isinstance(ID_label, str):
        fail("fabricate", "ID_label", ID_label, "a string")
    if data is not None and not isinstance(data, pd.DataFrame):
        fail("fabricate", "data", data, "a pandas DataFrame", shown=f"<{type(data).__name__}>")
    batch = Batch.from_pandas(data) if data is not None else None
    if batch is not None and not all_levels:
        label = ID_label
        if label is None and levels:
            label = _fabricatr_data_id(data)
        out = fabricate_batch(levels, n_sims=1, rng=rng, batch=batch, ID_label=label)
        return out.to_pandas()
    if not all_levels and N is None:
        raise DeclarationError("fabricate: give N (rows), data, or level calls such as "
                               "add_level(N=...).")
    out = fabricate_batch(levels, n_sims=1, rng=rng, batch=batch, N=N, ID_label=ID_label)
    return out.to_pandas()


def _fabricatr_data_id(df: pd.DataFrame) -> str | None:
    """Fabricatr adds an ID column to imported data unless one already numbers rows."""
    n = len(df)
    width = len(str(n))
    ids = [str(i).zfill(width) for i in range(1, n + 1)]
    for name in df.columns:
        if df[name].astype(str).tolist() == ids:
            return None
    for cand in ("ID", *(f"fab_ID_{i}" for i in range(1, 6))):
        if cand not in df.columns:
            return cand
    raise DeclarationError("fabricate: columns ID and fab_ID_1..fab_ID_5 all exist; give "
                           "ID_label.")
