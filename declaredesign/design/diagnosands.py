"""Diagnosands: summaries of many simulations of a design (R: ``declare_diagnosands``).

Built-in diagnosands follow DeclareDesign 1.0.10 exactly, including its treatment of
missing values: there is no ``na.rm``, so a NaN in a column a diagnosand reads makes
that diagnosand NaN for the group (R's ``mean(c(1, NA))``), and R's three-valued logic
decides when a NaN matters (``FALSE & NA`` is ``FALSE``, so a row whose estimand lies
above ``conf_high`` does not cover whatever ``conf_low`` is). ``na_rm=True`` gives
``mean(x, na.rm = TRUE)`` instead. Rows whose estimator failed (an ``error`` message)
are always left out before any of this. One deliberate departure from R: ``power`` and
``coverage`` use only the rows that have a p-value. A fit whose p-value is NaN (a
standard error that is zero up to rounding, one cluster per arm, no residual degrees
of freedom) has no significance test and no interval; such rows are counted per group
in ``n_nan_p`` and the printed diagnosis says so, instead of turning the whole
group's power into NaN (or, worse, into a confident number).

Every built-in is a function of a few weighted sums of per-row statistics, so all
groups and all bootstrap replicates are computed together with ``np.bincount`` and one
matrix product (see :func:`_weighted_sums`). User functions get the group's rows as a
DataFrame and are called once per group (and per replicate when bootstrapping).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_probability, fail

__all__ = [
    "BUILTIN_DIAGNOSANDS",
    "DEFAULT_DIAGNOSANDS",
    "EXTENDED_DIAGNOSANDS",
    "Diagnosands",
    "declare_diagnosands",
]

#: DeclareDesign 1.0.10's ``default_diagnosands``, in its order.
DEFAULT_DIAGNOSANDS = ("mean_estimand", "mean_estimate", "bias", "sd_estimate", "rmse",
                       "power", "coverage")

#: The "extended" set of DeclareDesign's documentation (defaults first).
EXTENDED_DIAGNOSANDS = DEFAULT_DIAGNOSANDS + (
    "mean_se", "type_s_rate", "exaggeration_ratio", "var_estimate", "mean_var_hat",
    "prop_pos_sig", "mean_ci_length")

#: R's definition of every built-in (``alpha`` is the diagnosands' significance level).
BUILTIN_DIAGNOSANDS: dict[str, str] = {
    "mean_estimand": "mean(estimand)",
    "mean_estimate": "mean(estimate)",
    "bias": "mean(estimate - estimand)",
    "sd_estimate": "sd(estimate)  # divides by n - 1",
    "rmse": "sqrt(mean((estimate - estimand)^2))",
    "power": "mean(p_value <= alpha)",
    "coverage": "mean(estimand <= conf_high & estimand >= conf_low)",
    "mean_se": "mean(std_error)",
    "type_s_rate": "mean((sign(estimate) != sign(estimand))[p_value <= alpha])",
    "exaggeration_ratio": "mean((estimate / estimand)[p_value <= alpha])",
    "var_estimate": "pop.var(estimate)  # divides by n",
    "mean_var_hat": "mean(std_error^2)",
    "prop_pos_sig": "mean(estimate > 0 & p_value <= alpha)",
    "mean_ci_length": "mean(conf_high - conf_low)",
}

# Per-row statistics each built-in needs (beyond "n", the number of rows used).
_NEEDS: dict[str, tuple[str, ...]] = {
    "mean_estimand": ("d",),
    "mean_estimate": ("e",),
    "bias": ("err",),
    "sd_estimate": ("ec", "ec2"),
    "rmse": ("err2",),
    "power": ("sig", "n_p"),
    "coverage": ("cov", "n_p"),
    "mean_se": ("se",),
    "type_s_rate": ("ts_num", "ts_den"),
    "exaggeration_ratio": ("ex_num", "ex_den"),
    "var_estimate": ("ec", "ec2"),
    "mean_var_hat": ("se2",),
    "prop_pos_sig": ("pps",),
    "mean_ci_length": ("cil",),
}


# Each mean's numerator statistic; with na_rm its denominator counts that statistic's
# non-NA rows (R's mean(x, na.rm = TRUE)), otherwise all rows used.
_MEANS = {"mean_estimand": "d", "mean_estimate": "e", "bias": "err", "power": "sig",
          "coverage": "cov", "mean_se": "se", "mean_var_hat": "se2", "prop_pos_sig": "pps",
          "mean_ci_length": "cil"}


#: Means over the rows that have a p-value (counted apart as ``n_nan_p``).
_WITH_P = ("power", "coverage")


def _finish(name: str, s: Mapping[str, np.ndarray], na_rm: bool = False) -> np.ndarray:
    """Turn weighted sums ``s`` (any shape) into the value of built-in ``name``."""
    def n(k: str) -> np.ndarray:
        if na_rm:
            return s[k + "#cnt"]
        return s["n_p"] if name in _WITH_P else s["n"]

    with np.errstate(divide="ignore", invalid="ignore"):
        if name in _MEANS:
            k = _MEANS[name]
            return s[k] / n(k)
        if name == "rmse":
            return np.sqrt(s["err2"] / n("err2"))
        if name == "type_s_rate":
            return s["ts_num"] / s["ts_den"]
        if name == "exaggeration_ratio":
            return s["ex_num"] / s["ex_den"]
        if name in ("sd_estimate", "var_estimate"):
            # Estimates are centred on their group's full-sample mean before summing,
            # so this one-pass formula loses no precision.
            nn = n("ec")
            m = s["ec"] / nn
            ss = s["ec2"] - nn * m * m
            if name == "var_estimate":
                return ss / nn
            return np.sqrt(np.maximum(ss, 0.0) / (nn - 1))
    raise KeyError(name)  # pragma: no cover - names are validated at declaration


def _fn_name(f: Callable) -> str:
    return getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or repr(f)


@dataclass(frozen=True, repr=False)
class Diagnosands:
    """A frozen set of diagnosands; build it with :func:`declare_diagnosands`.

    Attributes
    ----------
    items : tuple of (label, definition)
        ``definition`` is a built-in's name or a function of a group's DataFrame.
    alpha : float
        Significance level used by ``power``, ``type_s_rate``, ``exaggeration_ratio``
        and ``prop_pos_sig``.
    subset : callable or None
        Function of the simulations DataFrame returning a boolean mask of the rows
        to use (R's ``subset``).
    na_rm : bool
        Drop NA values inside each built-in (``mean(x, na.rm = TRUE)``) instead
        of R 1.0.10's propagation.
    """

    items: tuple[tuple[str, str | Callable[[pd.DataFrame], Any]], ...]
    alpha: float = 0.05
    subset: Callable[[pd.DataFrame], Any] | None = None
    na_rm: bool = False

    @property
    def names(self) -> list[str]:
        """The diagnosand labels, in order."""
        return [label for label, _ in self.items]

    @property
    def builtin(self) -> dict[str, str]:
        """Labels of built-in diagnosands mapped to the built-in they compute."""
        return {label: d for label, d in self.items if isinstance(d, str)}

    @property
    def custom(self) -> dict[str, Callable[[pd.DataFrame], Any]]:
        """Labels of user-function diagnosands mapped to their functions."""
        return {label: d for label, d in self.items if not isinstance(d, str)}

    def __repr__(self) -> str:
        """Show the call that declares these diagnosands."""
        parts = []
        for label, d in self.items:
            if isinstance(d, str):
                parts.append(repr(d) if label == d else f"{label}={d!r}")
            else:
                parts.append(f"{label}=<function {_fn_name(d)}>")
        if self.alpha != 0.05:
            parts.append(f"alpha={self.alpha!r}")
        if self.subset is not None:
            parts.append(f"subset=<function {_fn_name(self.subset)}>")
        if self.na_rm:
            parts.append("na_rm=True")
        return f"declare_diagnosands({', '.join(parts)})"

    def replace(self, **changes: Any) -> Diagnosands:
        """Return a copy with some fields changed (``alpha=0.1``, ...)."""
        kw = {"items": self.items, "alpha": self.alpha, "subset": self.subset,
              "na_rm": self.na_rm}
        kw.update(changes)
        return Diagnosands(**kw)


def declare_diagnosands(*builtins: str, select: Sequence[str] | None = None,
                        alpha: float = 0.05,
                        subset: Callable[[pd.DataFrame], Any] | None = None,
                        na_rm: bool = False,
                        **funcs: Callable[[pd.DataFrame], Any] | str) -> Diagnosands:
    """Declare the diagnosands of a design (R: ``declare_diagnosands``).

    Parameters
    ----------
    *builtins : str
        Names of built-in diagnosands (see :data:`BUILTIN_DIAGNOSANDS`).
    select : sequence of str, optional
        More names of built-ins, the same as passing them positionally.
    alpha : float, default 0.05
        Significance level of ``power``, ``type_s_rate``, ``exaggeration_ratio``
        and ``prop_pos_sig``.
    subset : callable, optional
        ``subset(df)`` returns a boolean mask of the simulation rows to use (R's
        ``subset = p.value < .05``); other rows are left out of every diagnosand
        but still counted in ``n_sims``.
    na_rm : bool, default False
        DeclareDesign 1.0.10's built-ins have no ``na.rm``: a NaN among the values a
        diagnosand reads makes it NaN for the group. ``na_rm=True`` drops those
        values instead, diagnosand by diagnosand (``mean(x, na.rm = TRUE)``; the
        type-S rate and exaggeration ratio drop NA selections too). Rows with an
        ``error`` are always left out, whatever ``na_rm`` says.
    **funcs : callable or str
        Custom diagnosands: ``label=f`` where ``f(df)`` takes one group's
        simulations (a DataFrame) and returns a scalar, or ``label="bias"`` to
        compute a built-in under another label.

    Returns
    -------
    Diagnosands
        Nothing declared gives R's seven defaults (:data:`DEFAULT_DIAGNOSANDS`);
        as in R, declaring custom diagnosands replaces the defaults.

    Examples
    --------
    >>> import numpy as np
    >>> declare_diagnosands("bias", "power",
    ...                     median_bias=lambda df: np.median(df.estimate - df.estimand))
    declare_diagnosands('bias', 'power', median_bias=<function <lambda>>)
    >>> declare_diagnosands().names[:3]
    ['mean_estimand', 'mean_estimate', 'bias']
    """
    func = "declare_diagnosands"
    alpha = check_probability(func, "alpha", alpha)
    if not isinstance(na_rm, bool):
        fail(func, "na_rm", na_rm, "True or False")
    if subset is not None and not callable(subset):
        fail(func, "subset", subset, "a function of the simulations DataFrame or None")
    names: list[str] = list(builtins)
    if select is not None:
        if isinstance(select, str):
            select = [select]
        names.extend(select)
    items: list[tuple[str, Any]] = []
    for name in names:
        if not isinstance(name, str) or name not in BUILTIN_DIAGNOSANDS:
            fail(func, "select", name,
                 "names of built-in diagnosands (" + ", ".join(BUILTIN_DIAGNOSANDS) + ")")
        items.append((name, name))
    for label, f in funcs.items():
        if isinstance(f, str):
            if f not in BUILTIN_DIAGNOSANDS:
                fail(func, label, f, "a function or the name of a built-in diagnosand")
        elif not callable(f):
            fail(func, label, f, "a function of a group's DataFrame returning a scalar")
        items.append((label, f))
    if not items:
        items = [(n, n) for n in DEFAULT_DIAGNOSANDS]
    labels = [label for label, _ in items]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        fail(func, "...", dup, "uniquely labelled diagnosands", shown=", ".join(dup))
    clash = [lbl for lbl in labels if lbl in ("n_sims", "n_failed", "n_warned", "n_nan_p")
             or (lbl.endswith("_se") and lbl[:-3] in labels)]
    if clash:
        fail(func, clash[0], clash[0], "a label that does not clash with the columns "
             "n_sims, n_failed, n_warned, n_nan_p or <label>_se")
    return Diagnosands(items=tuple(items), alpha=alpha, subset=subset, na_rm=na_rm)


def as_diagnosands(diagnosands: Any, alpha: float | None, func: str) -> Diagnosands:
    """Coerce ``None``, a name, a list of names or a dict to :class:`Diagnosands`."""
    if diagnosands is None:
        d = declare_diagnosands()
    elif isinstance(diagnosands, Diagnosands):
        d = diagnosands
    elif isinstance(diagnosands, str):
        d = declare_diagnosands(diagnosands)
    elif isinstance(diagnosands, Mapping):
        d = declare_diagnosands(**diagnosands)
    elif isinstance(diagnosands, Sequence):
        d = declare_diagnosands(*diagnosands)
    else:
        fail(func, "diagnosands", diagnosands,
             "a Diagnosands from declare_diagnosands, a built-in's name, a list of names "
             "or a dict of label -> function")
    if alpha is not None:
        if not isinstance(alpha, numbers.Real):
            fail(func, "alpha", alpha, "a number in [0, 1]")
        d = d.replace(alpha=check_probability(func, "alpha", alpha))
    return d


# --------------------------------------------------------------------- kernels

def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Return a numeric column as float64, all-NaN when absent (R's ``data$x %||% NA``)."""
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _and3(a: np.ndarray, a_na: np.ndarray, b: np.ndarray, b_na: np.ndarray) -> np.ndarray:
    """R's ``a & b`` on logicals with NA, as 1.0 / 0.0 / NaN."""
    false = (~a & ~a_na) | (~b & ~b_na)
    out = np.where(a & b, 1.0, 0.0)
    return np.where(false, 0.0, np.where(a_na | b_na, np.nan, out))


class _Rows:
    """Per-row statistics of a simulations table, each R's expression row by row.

    Intermediate columns (significance, the type-S mismatch, the exaggeration ratio,
    group centres) are computed once and shared; :meth:`stat` gives statistic ``k``
    with NaN where R's expression is NA.
    """

    def __init__(self, frame: pd.DataFrame, alpha: float, use: np.ndarray, group: np.ndarray,
                 n_groups: int):
        self.frame, self.alpha, self.use = frame, alpha, use
        self.group, self.n_groups = group, n_groups
        self.est, self.d = _col(frame, "estimate"), _col(frame, "estimand")
        self.p = _col(frame, "p_value")
        self.p_na = np.isnan(self.p)

    def stat(self, k: str) -> np.ndarray:
        """Return statistic ``k`` per row (see ``_NEEDS``)."""
        return getattr(self, "_" + k)()

    @cached_property
    def sig(self) -> np.ndarray:
        return np.where(self.p_na, np.nan, (self.p <= self.alpha).astype(float))

    @cached_property
    def wrong(self) -> np.ndarray:
        est, d = self.est, self.d
        mismatch = np.where(np.isnan(est) | np.isnan(d), np.nan,
                            (np.sign(est) != np.sign(d)).astype(float))
        # x[p <= alpha]: an NA index yields NA; unselected rows drop out.
        return np.where(self.p_na, np.nan, np.where(self.sig == 1.0, mismatch, 0.0))

    @cached_property
    def ratio(self) -> np.ndarray:
        return np.where(self.p_na, np.nan, np.where(self.sig == 1.0, self.est / self.d, 0.0))

    @cached_property
    def centred(self) -> np.ndarray:
        # Centring on the group's full-sample mean keeps the one-pass variance exact.
        est, group, n_groups = self.est, self.group, self.n_groups
        ok = self.use & np.isfinite(est)
        cnt = np.bincount(group[ok], minlength=n_groups)
        tot = np.bincount(group[ok], weights=est[ok], minlength=n_groups)
        centre = np.divide(tot, cnt, out=np.zeros(n_groups), where=cnt > 0)
        return est - centre[group]

    def _d(self) -> np.ndarray:
        return self.d

    def _e(self) -> np.ndarray:
        return self.est

    def _err(self) -> np.ndarray:
        return self.est - self.d

    def _err2(self) -> np.ndarray:
        v = self.est - self.d
        return v * v

    def _ec(self) -> np.ndarray:
        return self.centred

    def _ec2(self) -> np.ndarray:
        return self.centred * self.centred

    def _sig(self) -> np.ndarray:
        return self.sig

    def _cov(self) -> np.ndarray:
        d = self.d
        hi, lo = _col(self.frame, "conf_high"), _col(self.frame, "conf_low")
        return _and3(d <= hi, np.isnan(d) | np.isnan(hi), d >= lo, np.isnan(d) | np.isnan(lo))

    def _se(self) -> np.ndarray:
        return _col(self.frame, "std_error")

    def _se2(self) -> np.ndarray:
        se = _col(self.frame, "std_error")
        return se * se

    def _ts_num(self) -> np.ndarray:
        return self.wrong

    def _ts_den(self) -> np.ndarray:
        return np.where(np.isnan(self.wrong), np.nan, self.sig)

    def _ex_num(self) -> np.ndarray:
        return self.ratio

    def _ex_den(self) -> np.ndarray:
        return np.where(np.isnan(self.ratio), np.nan, self.sig)

    def _pps(self) -> np.ndarray:
        return _and3(self.est > 0, np.isnan(self.est), self.p <= self.alpha, self.p_na)

    def _cil(self) -> np.ndarray:
        return _col(self.frame, "conf_high") - _col(self.frame, "conf_low")


def _row_stats(frame: pd.DataFrame, needed: set[str], alpha: float, use: np.ndarray,
               group: np.ndarray, n_groups: int, na_rm: bool = False) -> dict[str, np.ndarray]:
    """Per-row statistics (NaN where R's expression is NA); unused rows are 0.

    With ``na_rm`` the NaNs become 0 and ``<stat>#cnt`` counts each statistic's
    non-NA rows, the denominators of ``mean(x, na.rm = TRUE)``. Power and coverage
    use only rows with a p-value: a fit without one (a degenerate SE) says nothing
    about significance or its interval, so those rows are 0 in ``sig``/``cov`` and
    left out of their denominator ``n_p``.
    """
    rows = _Rows(frame, alpha, use, group, n_groups)
    out: dict[str, np.ndarray] = {"n": use.astype(float)}
    if "n_p" in needed:
        out["n_p"] = (use & ~rows.p_na).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Sorted: the column order of the sums must not depend on string hashing.
        for k in sorted(needed - {"n_p"}):
            v = rows.stat(k)
            left_out = rows.p_na if k in ("sig", "cov") else False
            v = np.where(left_out, 0.0, v)
            if na_rm:
                ok = use & ~np.isnan(v) & ~left_out
                out[k] = np.where(ok, v, 0.0)
                out[k + "#cnt"] = ok.astype(float)
            else:
                out[k] = np.where(use, v, 0.0)
    return out


def _split_nonfinite(stats: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Stack statistics as columns, adding NaN/+Inf/-Inf indicator columns where needed.

    A zero weight times NaN is NaN, so non-finite values are zeroed and counted
    separately; a sum is then NaN/Inf exactly when R's would be.
    """
    names: list[str] = []
    cols: list[np.ndarray] = []
    for k, v in stats.items():
        fin = np.isfinite(v)
        if fin.all():
            names.append(k)
            cols.append(v)
            continue
        names += [k, k + "#nan", k + "#pinf", k + "#ninf"]
        cols += [np.where(fin, v, 0.0), np.isnan(v).astype(float),
                 (v == np.inf).astype(float), (v == -np.inf).astype(float)]
    return names, np.column_stack(cols) if cols else np.zeros((0, 0))


def _merge_nonfinite(names: list[str], sums: np.ndarray) -> dict[str, np.ndarray]:
    """Undo :func:`_split_nonfinite` on sums whose last axis runs over ``names``."""
    idx = {k: i for i, k in enumerate(names)}
    out = {}
    for k, i in idx.items():
        if k.endswith(("#nan", "#pinf", "#ninf")):
            continue
        s = sums[..., i]
        if k + "#nan" in idx:
            nan = sums[..., idx[k + "#nan"]] > 0
            pinf = sums[..., idx[k + "#pinf"]] > 0
            ninf = sums[..., idx[k + "#ninf"]] > 0
            s = np.where(pinf, np.inf, s)
            s = np.where(ninf, -np.inf, s)
            s = np.where(nan | (pinf & ninf), np.nan, s)
        out[k] = s
    return out


def _builtin_stats(frame: pd.DataFrame, builtins: Mapping[str, str], alpha: float,
                   use: np.ndarray, group: np.ndarray, n_groups: int,
                   na_rm: bool = False) -> tuple[list[str], np.ndarray]:
    needed: set[str] = set()
    for b in builtins.values():
        needed.update(_NEEDS[b])
    stats = _row_stats(frame, needed, alpha, use, group, n_groups, na_rm)
    stats["present"] = np.ones(len(frame))
    return _split_nonfinite(stats)


def _group_sums(x: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Column sums of ``x`` (rows x stats) within groups: (n_groups, stats)."""
    return np.column_stack([np.bincount(group, weights=x[:, j], minlength=n_groups)
                            for j in range(x.shape[1])])


def _weighted_sums(x: np.ndarray, group: np.ndarray, n_groups: int, sim: np.ndarray,
                   n_sims: int, n_boot: int, weight_blocks: Callable[[], Any],
                   max_cells: int = 4_000_000) -> np.ndarray:
    """Bootstrap sums ``S[b, g, j] = sum_r weights[b, sim[r]] * [group[r] == g] * x[r, j]``.

    Rows are first summed into (sim, group) cells, then a matrix product with the
    replicate weights (B x n_sims) gives every replicate and group. Groups are
    processed in blocks so the cell matrix stays under ``max_cells`` doubles, and
    the weights arrive in blocks of replicates from ``weight_blocks()`` (called once
    per block of groups; each call yields ``(first_replicate, weights)`` pairs and
    must yield the same weights), so memory is O(n_sims), never O(n_sims x B).
    """
    m = x.shape[1]
    out = np.empty((n_boot, n_groups, m))
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
    block = max(1, max_cells // max(1, n_sims * m))
    for g0 in range(0, n_groups, block):
        g1 = min(n_groups, g0 + block)
        rows = order[bounds[g0]:bounds[g1]]
        cell = sim[rows] * (g1 - g0) + (group[rows] - g0)
        ncell = n_sims * (g1 - g0)
        cells = np.column_stack([np.bincount(cell, weights=x[rows, j], minlength=ncell)
                                 for j in range(m)]).reshape(n_sims, (g1 - g0) * m)
        for b0, w in weight_blocks():
            out[b0:b0 + len(w), g0:g1, :] = (w.astype(float) @ cells).reshape(
                len(w), g1 - g0, m)
    return out


def compute_builtins(names: list[str], sums: np.ndarray, builtins: Mapping[str, str],
                     na_rm: bool = False) -> dict[str, np.ndarray]:
    """Diagnosand values from stacked sums (last axis over ``names``)."""
    s = _merge_nonfinite(names, sums)
    return {label: _finish(b, s, na_rm) for label, b in builtins.items()}
