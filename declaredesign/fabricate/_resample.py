"""Hierarchical bootstrap (fabricatr ``resample_data``), batched."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_columns, fail
from ..batch import Batch
from ..groups import GroupIndex

__all__ = ["ALL", "resample_batch", "resample_data"]

#: Keep every unit of a level (fabricatr's ``ALL`` constant).
ALL = -20171101


def _normalize(func: str, N: Any, ID_labels: Any) -> tuple[list[int | None], list[str | None]]:
    if isinstance(N, Mapping):
        if ID_labels is not None:
            fail(func, "ID_labels", ID_labels, "omitted when N names the levels")
        ID_labels = list(N.keys())
        N = list(N.values())
    if isinstance(ID_labels, str):
        ID_labels = [ID_labels]
    if N is None:
        if ID_labels:
            fail(func, "N", N, "given when ID_labels are")
        return [None], [None]
    Ns = [N] if isinstance(N, numbers.Number) else list(N)
    for n in Ns:
        ok = isinstance(n, numbers.Integral) and not isinstance(n, bool) and (n >= 1 or n == ALL)
        if not ok:
            fail(func, "N", N, "positive integers or ALL")
    if ID_labels is None:
        if len(Ns) != 1:
            fail(func, "ID_labels", None, "given for multi-level resampling")
        return Ns, [None]
    labels = list(ID_labels)
    if len(labels) != len(Ns):
        fail(func, "N", N, f"one number per ID label ({len(labels)})")
    if len(Ns) > 10:
        fail(func, "N", N, "at most 10 levels")
    return Ns, labels


def resample_batch(batch: Batch, N: Any = None, ID_labels: Sequence[str] | str | None = None,
                   *, rng: np.random.Generator) -> Batch:
    """Resample every simulation of a batch at once (see :func:`resample_data`).

    Examples
    --------
    >>> import numpy as np
    >>> b = Batch({"g": np.array([1, 1, 2, 1])}, sim=np.array([0, 0, 0, 1]), n_sims=2)
    >>> resample_batch(b, N=3, ID_labels="g", rng=np.random.default_rng(0)).n_sims
    2
    """
    Ns, labels = _normalize("resample_data", N, ID_labels)
    check_columns("resample_data", "ID_labels", [lab for lab in labels if lab], batch.names)
    idx = np.arange(batch.n_rows, dtype=np.int64)
    seg = batch.sim.copy()
    n_seg = batch.n_sims
    seg_sim = np.arange(batch.n_sims, dtype=np.int64)
    for n, label in zip(Ns, labels, strict=True):
        key = batch[label][idx] if label is not None else np.arange(idx.shape[0])
        # units of this level within each segment (a simulation, or a unit drawn above)
        units = GroupIndex.from_keys(seg, n_seg, key)
        codes, gseg, n_groups = units.codes, units.group_sim, units.n_groups
        gstart = units.sim_group_starts[:-1].astype(np.int64)
        gcount = np.diff(units.sim_group_starts)
        if n == ALL:
            chosen = np.arange(n_groups, dtype=np.int64)
            chosen_seg = gseg
        else:
            draws = gcount if n is None else np.where(gcount > 0, n, 0)
            chosen_seg = np.repeat(np.arange(n_seg, dtype=np.int64), draws)
            u = rng.random(chosen_seg.shape[0])
            chosen = gstart[chosen_seg] + (u * gcount[chosen_seg]).astype(np.int64)
        order = np.argsort(codes, kind="stable")
        gsize = units.count()
        grow = np.concatenate([[0], np.cumsum(gsize)[:-1]]).astype(np.int64)
        lengths = gsize[chosen]
        total = int(lengths.sum())
        offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths,
                                                            lengths)
        idx = idx[order[np.repeat(grow[chosen], lengths) + offs]]
        seg = np.repeat(np.arange(chosen.shape[0], dtype=np.int64), lengths)
        seg_sim = seg_sim[chosen_seg]
        n_seg = chosen.shape[0]
    sim = seg_sim[seg]
    return Batch({k: v[idx] for k, v in batch.columns.items()}, sim, batch.n_sims,
                 batch.id_columns)


def resample_data(data: pd.DataFrame, N: Any = None,
                  ID_labels: Sequence[str] | str | None = None, *,
                  seed: Any = None) -> pd.DataFrame:
    """Bootstrap a dataset, optionally hierarchically (fabricatr ``resample_data``).

    Parameters
    ----------
    data : pandas.DataFrame
    N : int, list of int or dict, optional
        Units to draw (with replacement) at each level; ``ALL`` keeps every unit of
        a level. A dict ``{ID_label: N}`` names the levels. Without ``N`` and
        ``ID_labels`` the rows are bootstrapped (same number of rows).
    ID_labels : str or list of str, optional
        The columns identifying the units of each level, outermost first. All rows
        of a drawn unit are kept at the innermost level.
    seed : int, SeedSequence or Generator, optional

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> df = pd.DataFrame({"city": [1, 1, 2, 2, 3], "y": [1, 2, 3, 4, 5]})
    >>> len(resample_data(df, N=[3, 1], ID_labels=["city", "y"], seed=1))
    3
    """
    if not isinstance(data, pd.DataFrame):
        fail("resample_data", "data", data, "a pandas DataFrame",
             shown=f"<{type(data).__name__}>")
    out = resample_batch(Batch.from_pandas(data), N, ID_labels,
                         rng=np.random.default_rng(seed))
    res = pd.DataFrame({c: out[c] for c in data.columns.astype(str)})
    res.columns = data.columns
    return res.astype(data.dtypes.to_dict())
