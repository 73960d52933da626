"""The batch: many simulated datasets stacked in one columnar frame.

A :class:`Batch` is the unit of work of the whole library. It holds ``n_sims``
datasets one after another ("long" layout): every column is a 1-D numpy array of
length ``n_rows`` and ``sim`` says which dataset each row belongs to. Rows of one
simulation are contiguous and simulations appear in order (``sim`` is
non-decreasing); every step keeps that invariant.

A single dataset is a batch with ``n_sims == 1``; real data enters through
:meth:`Batch.from_pandas` and leaves through :meth:`Batch.to_pandas`, so the
standalone path and the simulation path run the same code.

Level identifiers made by ``fabricate`` are stored as integer codes numbered
``1..n`` within each simulation (as fabricatr numbers them within a dataset) and
listed in ``id_columns``; :meth:`Batch.to_pandas` turns them into fabricatr's
zero-padded strings.

A batch of ``n`` copies of one dataset (a fixed population, ``declare_model(data=df)``)
holds its columns as :class:`RepeatedColumns`: each column is kept as the one dataset's
values and tiled only when read. Selecting rows (:meth:`Batch.take`) gathers them from
the one dataset's values, group indexes are tiled from the one dataset's, and
:meth:`Batch.repeated` hands the one dataset to steps that give the same result in
every simulation of it (an inquiry without random draws, an assignment plan).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .groups import GroupIndex, group_codes, offset_copies, sim_starts

__all__ = ["Batch", "GroupIndex", "RepeatedColumns", "group_codes", "sim_starts",
           "stack_frames"]

#: pandas 3 always copies on write (slices are safe to hand to user code).
_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3


class Batch:
    """Several simulated datasets stacked row-wise, with a ``sim`` index.

    Parameters
    ----------
    columns : mapping of str to array_like
        Column name to a 1-D array of length ``n_rows``.
    sim : array_like of int
        Simulation index of each row, non-decreasing, values in ``[0, n_sims)``.
    n_sims : int
        Number of simulations. A simulation may have zero rows.
    id_columns : iterable of str, optional
        Columns that hold level identifiers as integer codes.

    Notes
    -----
    Treat a batch as immutable: methods return new batches that share the
    unchanged column arrays with the old one, so never write into a column array
    in place.

    Examples
    --------
    >>> import numpy as np
    >>> b = Batch({"y": np.array([1.0, 2.0, 3.0])}, sim=np.array([0, 0, 1]), n_sims=2)
    >>> b.n_rows, b.n_sims, b.sim_sizes().tolist()
    (3, 2, [2, 1])
    """

    __slots__ = ("columns", "sim", "n_sims", "id_columns", "_groups", "_frame", "__weakref__")

    def __init__(self, columns: Mapping[str, Any], sim: Any, n_sims: int,
                 id_columns: Iterable[str] = ()):
        sim = np.asarray(sim, dtype=np.int64)
        if isinstance(columns, RepeatedColumns):
            cols: Mapping[str, np.ndarray] = columns   # its arrays were checked when added
        else:
            cols = {name: _column_array(name, values, sim.shape[0])
                    for name, values in columns.items()}
        self.columns: Mapping[str, np.ndarray] = cols
        self.sim: np.ndarray = sim
        self.n_sims: int = int(n_sims)
        self.id_columns: frozenset[str] = frozenset(c for c in id_columns if c in cols)
        self._groups: dict[tuple[str, ...], GroupIndex] = {}
        self._frame: pd.DataFrame | None = None     # split()'s DataFrame, made once

    # ------------------------------------------------------------------ basics
    @property
    def n_rows(self) -> int:
        """Total number of rows over all simulations."""
        return int(self.sim.shape[0])

    @property
    def names(self) -> list[str]:
        """Column names in insertion order."""
        return list(self.columns)

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __repr__(self) -> str:
        cols = ", ".join(self.columns)
        return f"Batch(n_sims={self.n_sims}, n_rows={self.n_rows}, columns=[{cols}])"

    def sim_sizes(self) -> np.ndarray:
        """Count the rows of each simulation, shape ``(n_sims,)``."""
        return np.bincount(self.sim, minlength=self.n_sims)

    def starts(self) -> np.ndarray:
        """Row offset where each simulation starts, shape ``(n_sims + 1,)``."""
        return sim_starts(self.sim, self.n_sims)

    def groups(self, *names: str) -> GroupIndex:
        """Index the (simulation, columns...) groups of the rows, memoised on the batch.

        With no names, one group per simulation that has rows. Batches are immutable, so
        every step and estimator asking for the same columns shares one index.

        Examples
        --------
        >>> import numpy as np
        >>> b = Batch({"g": np.array([1, 1, 2, 1])}, sim=np.array([0, 0, 0, 1]), n_sims=2)
        >>> b.groups("g").codes.tolist(), b.groups("g") is b.groups("g")
        ([0, 0, 1, 2], True)
        """
        # memo values are indexes, or functions deriving one from the batch this batch
        # was made from (take, with_columns, a repeated one-simulation batch)
        idx = self._groups.get(names)
        if idx is None:
            cols = self.columns
            if isinstance(cols, RepeatedColumns) and cols.copies and \
                    all(cols.repeated(n) is not None for n in names):
                idx = _tile_groups(cols.base, names, self.n_sims)   # copies of one dataset
            else:
                idx = GroupIndex.from_keys(self.sim, self.n_sims, *(cols[n] for n in names))
            self._groups[names] = idx
        elif not isinstance(idx, GroupIndex):
            idx = idx()                     # derived from the batch this one was made from
            self._groups[names] = idx
        return idx

    def _inherit_groups(self, parent: Batch, changed: Iterable[str] = ()) -> Batch:
        """Share the parent's group indexes (done or pending) on columns left unchanged."""
        changed = set(changed)
        self._groups.update({k: v for k, v in parent._groups.items() if not changed & set(k)})
        return self

    # --------------------------------------------------------------- new batches
    def with_columns(self, columns: Mapping[str, Any] | None = None, *,
                     id_columns: Iterable[str] = (), **more: Any) -> Batch:
        """Return a batch with columns added or replaced.

        Scalars are broadcast to every row.
        """
        added = {}
        for name, values in {**(columns or {}), **more}.items():
            arr = np.asarray(values)
            if arr.ndim == 0:
                arr = np.full(self.n_rows, arr[()])
            added[name] = arr
        if isinstance(self.columns, RepeatedColumns):
            new: Mapping[str, Any] = self.columns.with_arrays(added, self.n_rows)
        else:
            new = {**self.columns, **added}
        out = Batch(new, self.sim, self.n_sims, self.id_columns | set(id_columns))
        return out._inherit_groups(self, {**(columns or {}), **more})

    def drop(self, names: Iterable[str]) -> Batch:
        """Return a batch without the named columns."""
        names = set(names)
        if isinstance(self.columns, RepeatedColumns):
            kept: Mapping[str, Any] = self.columns.without(names)
        else:
            kept = {k: v for k, v in self.columns.items() if k not in names}
        out = Batch(kept, self.sim, self.n_sims, self.id_columns - names)
        return out._inherit_groups(self, names)

    def take(self, rows: np.ndarray) -> Batch:
        """Return the rows selected by a boolean mask or a sorted integer index.

        The index must keep simulations in order (a mask always does).
        """
        rows = np.asarray(rows)
        if rows.dtype == bool:
            # one pass over the mask, then an index gather per column: a boolean mask
            # would be rescanned for every column
            rows = np.flatnonzero(rows)
        sim = self.sim[rows]
        if isinstance(self.columns, RepeatedColumns):
            # gathered when read, copies from the one dataset's values (small, in cache)
            cols: Mapping[str, Any] = self.columns.take(rows, sim)
        else:
            cols = {k: v[rows] for k, v in self.columns.items()}
        out = Batch(cols, sim, self.n_sims, self.id_columns)
        # the parent's indexes, subset when first asked for (no re-hashing of keys); the
        # simulations' own index is made directly, cheaper than subsetting a chain of them
        out._groups.update({k: functools.partial(_take_groups, v, rows, sim)
                            for k, v in self._groups.items() if k})
        return out

    def select_sims(self, sims: Sequence[int] | np.ndarray) -> Batch:
        """Return the listed simulations, renumbered ``0..len(sims)-1``."""
        sims = np.asarray(sims, dtype=np.int64)
        st = self.starts()
        idx = np.concatenate([np.arange(st[s], st[s + 1]) for s in sims]) if len(sims) else \
            np.zeros(0, dtype=np.int64)
        new_sim = np.repeat(np.arange(len(sims)), st[sims + 1] - st[sims])
        return Batch({k: v[idx] for k, v in self.columns.items()}, new_sim, len(sims),
                     self.id_columns)

    @staticmethod
    def concat(batches: Sequence[Batch]) -> Batch:
        """Stack batches; simulations are renumbered consecutively."""
        if not batches:
            return Batch({}, np.zeros(0, dtype=np.int64), 0)
        if batches[0].n_sims == 1 and all(b is batches[0] for b in batches):
            return batches[0]._repeat(len(batches))
        names = batches[0].names
        offsets = np.cumsum([0] + [b.n_sims for b in batches])
        sim = np.concatenate([b.sim + o for b, o in zip(batches, offsets[:-1])])
        cols = {n: np.concatenate([b.columns[n] for b in batches]) for n in names}
        ids = frozenset().union(*(b.id_columns for b in batches))
        return Batch(cols, sim, int(offsets[-1]), ids)

    def _repeat(self, n: int) -> Batch:
        """``n`` copies of a one-simulation batch; columns and group indexes tiled when read."""
        sim = np.repeat(np.arange(n, dtype=np.int64), self.n_rows)
        out = Batch(RepeatedColumns.of(self, n), sim, n, self.id_columns)
        keys = {(), *((c,) for c in self.columns), *self._groups}
        out._groups.update({k: _TiledGroups(self, k, n) for k in keys})
        return out

    def repeated(self) -> Batch | None:
        """Return the one dataset every simulation repeats, or None.

        Not None for ``n`` copies of one dataset (a population given as ``data=``) whose
        columns are all still the copies: a step that computes each simulation from its
        own rows only, without random draws, gives on this one-simulation batch what it
        gives in every simulation.

        Examples
        --------
        >>> import numpy as np
        >>> one = Batch({"y": np.array([1.0, 2.0])}, sim=np.zeros(2, dtype=int), n_sims=1)
        >>> three = Batch.concat([one] * 3)
        >>> three.repeated().n_rows, three.with_columns(z=np.arange(6)).repeated() is None
        (2, True)
        """
        cols = self.columns
        return cols.source() if isinstance(cols, RepeatedColumns) else None

    # ------------------------------------------------------------ pandas bridge
    @classmethod
    def from_pandas(cls, df: pd.DataFrame) -> Batch:
        """Wrap one dataset (a DataFrame) as a batch of one simulation.

        Columns are taken as numpy arrays; pandas extension and categorical dtypes
        become object or numeric arrays.
        """
        cols = {}
        for name in df.columns:
            s = df[name]
            if isinstance(s.dtype, pd.CategoricalDtype):
                cols[str(name)] = s.astype(object).to_numpy()
            else:
                cols[str(name)] = s.to_numpy()
        return cls(cols, np.zeros(len(df), dtype=np.int64), 1)

    @classmethod
    def from_frames(cls, frames: Sequence[pd.DataFrame]) -> Batch:
        """Stack several datasets, one simulation each (used by per-dataset adapters)."""
        stacked = stack_frames(frames)
        if stacked is not None and all(_plain_dtype(a.dtype) for a in stacked.values()):
            # the frames' arrays stacked column by column: what stacking the frames with
            # pandas and taking each column's array gives, without pandas' per-frame work
            cols = {k: a if isinstance(a, np.ndarray) else a.to_numpy()
                    for k, a in stacked.items()}
            return cls._of_frames(cols, frames)
        if frames and _same_plain_columns(frames):
            # one concatenation instead of a batch per dataset: the same arrays
            stacked_frame = cls.from_pandas(pd.concat(frames, ignore_index=True))
            return cls._of_frames(stacked_frame.columns, frames)
        return cls.concat([cls.from_pandas(f) for f in frames])

    @classmethod
    def _of_frames(cls, columns: Mapping[str, Any], frames: Sequence[pd.DataFrame]) -> Batch:
        sizes = np.array([len(f) for f in frames], dtype=np.int64)
        return cls(columns, np.repeat(np.arange(len(frames)), sizes), len(frames))

    def to_pandas(self, *, sim_column: str | None = None) -> pd.DataFrame:
        """Return the batch as one DataFrame.

        Level ID columns become fabricatr's zero-padded strings, padded to the width
        of the largest ID of that level within each simulation.

        Parameters
        ----------
        sim_column : str, optional
            If given, the simulation index is included under this name (first column).
        """
        out: dict[str, Any] = {}
        if sim_column is not None:
            out[sim_column] = self.sim
        for name in self.columns:
            out[name] = self.column_as_r(name)
        return pd.DataFrame(out)

    def column_as_r(self, name: str) -> np.ndarray:
        """Return a column as user code sees it: level IDs as zero-padded strings."""
        arr = self.columns[name]
        return _format_ids(arr, self.sim, self.n_sims) if name in self.id_columns else arr

    def split(self) -> list[pd.DataFrame]:
        """One DataFrame per simulation (IDs formatted), for per-dataset user code."""
        st = self.starts().tolist()
        if not _COPY_ON_WRITE:
            df = self.to_pandas()
            return [df.iloc[st[s]:st[s + 1]].reset_index(drop=True) for s in range(self.n_sims)]
        # With copy-on-write a slice is a view that user code may change freely (the
        # first write copies it, never the batch's frame): only its row labels need to be
        # 0..n-1. Several estimators of a design split the same batch: one frame serves all.
        if self._frame is None:
            self._frame = self.to_pandas()
        df = self._frame
        frames = []
        for s in range(self.n_sims):
            part = df.iloc[st[s]:st[s + 1]]
            part.index = pd.RangeIndex(st[s + 1] - st[s])
            frames.append(part)
        return frames


def _column_array(name: str, values: Any, n_rows: int) -> np.ndarray:
    """Return a column as a 1-D array of ``n_rows`` values, or raise ValueError."""
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n_rows:
        raise ValueError(f"Batch: column {name!r} has shape {arr.shape}; expected ({n_rows},).")
    return arr


class _LazyColumn:
    """A column made from a smaller array on first read, then kept."""

    __slots__ = ("values", "_made")

    def __init__(self, values: np.ndarray):
        self.values = values
        self._made: np.ndarray | None = None

    def array(self) -> np.ndarray:
        # shared by every batch derived from the same column (with_columns, drop)
        arr = self._made
        if arr is None:
            arr = self._made = self._make()
        return arr

    def _make(self) -> np.ndarray:
        raise NotImplementedError


class _Repeated(_LazyColumn):
    """A column of ``n`` copies of one dataset: its values once, tiled on first read."""

    __slots__ = ("n",)

    def __init__(self, values: np.ndarray, n: int):
        super().__init__(values)
        self.n = n

    def _make(self) -> np.ndarray:
        return np.tile(self.values, self.n)


class _Gathered(_LazyColumn):
    """A column of selected rows, ``values[index]``, gathered on first read."""

    __slots__ = ("index",)

    def __init__(self, values: np.ndarray, index: np.ndarray):
        super().__init__(values)
        self.index = index

    def _make(self) -> np.ndarray:
        return self.values[self.index]


#: Columns of a RepeatedColumns made when first read.
_DEFERRED = (_Repeated, _Gathered)


class RepeatedColumns(Mapping):
    """The columns of a batch of ``n`` simulations that start as copies of one dataset.

    A mapping of column name to array like a dict: a column still a copy of the one
    dataset (``base``) is held as the dataset's values and tiled when first read;
    columns added later are plain arrays; after rows are selected (:meth:`take`) every
    column is held as the rows to gather and gathered when first read (a sample of a
    fixed population reads a few of its columns). Made by :meth:`Batch.concat` of one
    one-simulation batch repeated; never built by hand.

    Parameters
    ----------
    entries : dict
        Name to array, or to a column made when first read.
    base : Batch
        The one-simulation batch repeated.
    n : int
        Number of copies (simulations).
    copies : bool, default True
        Whether the rows are the ``n`` copies (False once rows are selected).
    """

    __slots__ = ("_entries", "base", "n", "copies")

    def __init__(self, entries: dict[str, Any], base: Batch, n: int, copies: bool = True):
        self._entries = entries
        self.base = base
        self.n = int(n)
        self.copies = copies

    @classmethod
    def of(cls, base: Batch, n: int) -> RepeatedColumns:
        """Return the columns of ``n`` copies of the one-simulation batch ``base``."""
        return cls({k: _Repeated(v, n) for k, v in base.columns.items()}, base, n)

    def __getitem__(self, name: str) -> np.ndarray:
        value = self._entries[name]
        return value.array() if type(value) in _DEFERRED else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def repeated(self, name: str) -> np.ndarray | None:
        """Return the one dataset's values of a column still a copy of them, else None."""
        value = self._entries.get(name)
        return value.values if type(value) is _Repeated else None

    def with_arrays(self, arrays: Mapping[str, Any], n_rows: int) -> RepeatedColumns:
        """Return these columns with plain arrays added or replacing some."""
        entries = dict(self._entries)
        entries.update({k: _column_array(k, v, n_rows) for k, v in arrays.items()})
        return RepeatedColumns(entries, self.base, self.n, self.copies)

    def without(self, names: Iterable[str]) -> RepeatedColumns:
        """Return these columns without the named ones."""
        names = set(names)
        return RepeatedColumns({k: v for k, v in self._entries.items() if k not in names},
                               self.base, self.n, self.copies)

    def take(self, rows: np.ndarray, sim: np.ndarray) -> RepeatedColumns:
        """Return the columns of the rows ``rows`` (of simulations ``sim``), made when read.

        A copy of the one dataset is gathered from its values at each row's position
        within its simulation; a column of selected rows composes the two selections.
        """
        local = rows - sim * self.base.n_rows if self.copies else None
        composed: dict[int, np.ndarray] = {}    # one composed index per shared index
        entries: dict[str, Any] = {}
        for k, v in self._entries.items():
            if type(v) is _Repeated:            # only while the rows are the copies
                entries[k] = _Gathered(v.values, local)
            elif type(v) is _Gathered:
                index = composed.get(id(v.index))
                if index is None:
                    index = composed[id(v.index)] = v.index[rows]
                entries[k] = _Gathered(v.values, index)
            else:
                entries[k] = _Gathered(v, rows)
        return RepeatedColumns(entries, self.base, self.n, copies=False)

    def source(self) -> Batch | None:
        """Return the one-simulation batch of these columns if all are copies, else None."""
        entries = self._entries
        if not self.copies or not all(type(v) is _Repeated for v in entries.values()):
            return None
        base = self.base
        if list(entries) == list(base.columns):
            return base
        return Batch({k: base.columns[k] for k in entries}, base.sim, 1, base.id_columns)


def _plain_dtype(dtype: Any) -> bool:
    return isinstance(dtype, (np.dtype, pd.StringDtype))


def _same_plain_columns(frames: Sequence[pd.DataFrame]) -> bool:
    """Whether all frames have the same columns with the same numpy or string dtypes.

    Then stacking the frames with pandas and taking the arrays equals taking each frame's
    arrays and stacking them (nullable and categorical dtypes may differ between the two).
    """
    dtypes = frames[0].dtypes.tolist()
    if not all(_plain_dtype(d) for d in dtypes):
        return False
    names = frames[0].columns.tolist()
    if len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
        return False
    return all(f.columns.tolist() == names and f.dtypes.tolist() == dtypes
               for f in frames[1:])


def stack_frames(frames: Sequence[pd.DataFrame],
                 names: Sequence[tuple[Any, ...]] | None = None) -> dict[str, Any] | None:
    """Stack DataFrames of the same columns and dtypes, column by column; else None.

    Each column of the result equals the array of that column of
    ``pd.concat(frames, ignore_index=True)`` (a numpy array, or a pandas extension
    array of the frames' common dtype), joined as pandas joins arrays of one dtype,
    without pandas' per-frame work (thousands of small frames stack several times
    faster). None, for the caller to use pandas, when the frames differ in columns or
    dtypes, a name is repeated or not a string, a frame carries ``attrs`` or flags, or
    pandas does not expose a frame's column arrays.

    Parameters
    ----------
    frames : sequence of DataFrame
        The frames, at least one.
    names : sequence of tuple, optional
        Each frame's column names, when the caller has them already.

    Returns
    -------
    dict of str to array, or None
        Column name to the stacked column, in the frames' column order.
    """
    if not frames or not hasattr(frames[0], "_iter_column_arrays"):
        return None
    first = tuple(frames[0].columns) if names is None else names[0]
    if len(set(first)) != len(first) or not all(isinstance(n, str) for n in first):
        return None
    columns: list[list[Any]] = [[] for _ in first]
    for k, frame in enumerate(frames):
        if (tuple(frame.columns) if names is None else names[k]) != first or \
                frame.attrs or not frame.flags.allows_duplicate_labels:
            return None
        for column, values in zip(columns, frame._iter_column_arrays()):
            column.append(values)
    out = {}
    for name, parts in zip(first, columns):
        joined = _join_same_dtype(parts)
        if joined is None:
            return None
        out[name] = joined
    return out


def _join_same_dtype(parts: list[Any]) -> Any:
    """Join the arrays of one column as pandas does when they share a dtype; else None."""
    dtype = parts[0].dtype
    if any(p.dtype is not dtype and p.dtype != dtype for p in parts):
        return None
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return type(parts[0])._concat_same_type(parts)


def _format_ids(codes: np.ndarray, sim: np.ndarray, n_sims: int) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu" or codes.size == 0:
        return codes
    # fabricatr pads to the number of digits of the largest ID in the dataset.
    maxes = np.zeros(n_sims, dtype=np.int64)
    np.maximum.at(maxes, sim, codes)
    widths = np.char.str_len(maxes.astype(str))[sim]
    top = int(codes.max())
    one_width = bool(np.all(widths == widths[0]))
    if codes.min() >= 0 and top <= max(len(codes), 1024):
        # few distinct IDs (the usual case): format each once per width, then look
        # them up (simulations of different sizes pad to a few widths)
        if one_width:
            return _padded_ids(top, int(widths[0]))[codes]
        out = np.empty(codes.size, dtype=object)
        for w in np.unique(widths).tolist():
            at = widths == w
            out[at] = _padded_ids(top, w)[codes[at]]
        return out
    text = codes.astype(str)
    if one_width:
        return np.char.zfill(text, int(widths[0])).astype(object)
    return np.array([t.zfill(w) for t, w in zip(text, widths, strict=True)], dtype=object)


def _padded_ids(top: int, width: int) -> np.ndarray:
    """Format the IDs ``0..top`` as strings zero-padded to ``width`` (an object array)."""
    return np.array([str(i).zfill(width) for i in range(top + 1)], dtype=object)


def _take_groups(entry: Any, rows: np.ndarray, sim: np.ndarray) -> GroupIndex:
    """Subset a parent's group index (or its pending derivation) to the rows kept.

    ``sim`` is the kept rows' simulations.
    """
    if isinstance(entry, _TiledGroups):
        return entry.take(rows, sim)
    idx = entry if isinstance(entry, GroupIndex) else entry()
    return _kept_groups(idx.codes[rows], idx.group_sim, idx.n_sims)


def _kept_groups(codes: np.ndarray, group_sim: np.ndarray, n_sims: int) -> GroupIndex:
    """Renumber the groups that kept rows (``codes``: the kept rows' old groups)."""
    present = np.zeros(group_sim.shape[0], dtype=bool)
    present[codes] = True
    rank = np.cumsum(present, dtype=np.int64)
    rank -= 1
    return GroupIndex(rank[codes], group_sim[present], n_sims)


class _TiledGroups:
    """A pending group index of ``n`` copies of a one-simulation batch, tiled when read."""

    __slots__ = ("base", "names", "n")

    def __init__(self, base: Batch, names: tuple[str, ...], n: int):
        self.base = base
        self.names = names
        self.n = n

    def __call__(self) -> GroupIndex:
        return _tile_groups(self.base, self.names, self.n)

    def take(self, rows: np.ndarray, sim: np.ndarray) -> GroupIndex:
        """Return the index of the rows kept, without tiling the one dataset's first.

        Row ``r`` of simulation ``s`` has the one dataset's code at its position in ``s``
        plus ``s`` times the one dataset's number of groups, as in the tiled index.
        """
        idx = self.base.groups(*self.names)
        g = idx.n_groups
        codes = idx.codes[rows - sim * self.base.n_rows]
        codes += sim * g
        return _kept_groups(codes, np.repeat(np.arange(self.n, dtype=np.int64), g), self.n)


def _tile_groups(base: Batch, names: tuple[str, ...], n: int) -> GroupIndex:
    """Index ``names`` on ``n`` copies of the one-simulation batch ``base``."""
    idx = base.groups(*names)
    g = idx.n_groups
    codes = offset_copies(idx.codes, n, g)
    starts = None if idx.starts is None else offset_copies(idx.starts, n, base.n_rows)
    return GroupIndex(codes, np.repeat(np.arange(n, dtype=np.int64), g), n, starts)
