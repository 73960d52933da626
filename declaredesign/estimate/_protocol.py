"""The contract between estimators and designs.

Every estimator is a plain function ``model(formula, data, **kwargs)`` on a pandas
DataFrame that returns a fit object with ``.tidy()`` (a DataFrame with
:data:`TIDY_COLUMNS`). An estimator may also carry a *batched kernel*, attached
with :func:`batched`, that fits every simulation of a :class:`~declaredesign.batch.Batch`
at once and returns one tidy frame with a leading ``sim`` column. Designs use the
kernel when it exists and fall back to splitting the batch otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TIDY_COLUMNS", "batched", "get_batched", "empty_tidy", "tidy_frame"]

#: Columns of every tidy estimate table, in order (broom's names in snake_case).
TIDY_COLUMNS = ["term", "estimate", "std_error", "statistic", "p_value", "conf_low",
                "conf_high", "df", "outcome"]


def batched(kernel: Callable[..., pd.DataFrame]) -> Callable[[Callable], Callable]:
    """Attach a batched kernel to a public estimator function.

    The kernel is called as ``kernel(batch, formula, **kwargs)`` with the same
    keyword arguments as the estimator and returns a DataFrame with columns
    ``["sim", *TIDY_COLUMNS]`` (optionally ``error`` and ``warning``).
    """
    def deco(func: Callable) -> Callable:
        func._dd_batched = kernel  # type: ignore[attr-defined]
        return func
    return deco


def get_batched(model: Callable) -> Callable[..., pd.DataFrame] | None:
    """Return the batched kernel of ``model``, or None if it has none."""
    return getattr(model, "_dd_batched", None)


def empty_tidy(with_sim: bool = True, with_messages: bool = False) -> pd.DataFrame:
    """Return an empty tidy frame with the standard columns (and ``error``/``warning``)."""
    cols = (["sim"] if with_sim else []) + TIDY_COLUMNS + \
        (["error", "warning"] if with_messages else [])
    text = ("term", "outcome", "error", "warning")
    return pd.DataFrame({c: pd.Series(dtype=object if c in text else float) for c in cols})


def tidy_frame(**cols: Any) -> pd.DataFrame:
    """Build a tidy frame from equal-length arrays (or scalars), standard column order."""
    n = max((np.size(v) for v in cols.values() if np.ndim(v) > 0), default=1)
    data = {k: (np.repeat(v, n) if np.ndim(v) == 0 else np.asarray(v)) for k, v in cols.items()}
    order = [c for c in ["sim", *TIDY_COLUMNS] if c in data] + \
        [c for c in data if c not in ["sim", *TIDY_COLUMNS]]
    return pd.DataFrame({c: data[c] for c in order})
