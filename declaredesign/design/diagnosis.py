"""Diagnose simulations of a design (R: ``diagnose_design`` on a simulations data frame).

Groups are R's: ``design``, the design parameters, ``inquiry``, ``estimator``,
``outcome``, ``term`` and any ``make_groups`` columns, whichever exist. Bootstrap
standard errors resample whole simulations as R does: each replicate draws
``max(sim_id)`` simulation ids with replacement and keeps every row (all designs,
estimators and terms) of the drawn simulations, so replicates are joint across groups.
A replicate is drawn as a vector of counts per simulation, and every built-in
diagnosand of every group and replicate then comes out of one matrix product.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_columns, check_positive_int, check_probability, fail
from ..errors import DeclarationError
from .diagnosands import (
    Diagnosands,
    _builtin_stats,
    _group_sums,
    _weighted_sums,
    as_diagnosands,
    compute_builtins,
)

__all__ = [
    "Diagnosis",
    "compare_diagnoses",
    "diagnose_simulations",
    "from_r_simulations",
]

_FUNC = "diagnose_simulations"
_DIMENSIONS = ("inquiry", "estimator", "outcome", "term")

# R's column names (DeclareDesign 1.0 and earlier) -> ours.
_R_NAMES = {
    "sim_ID": "sim_id", "std.error": "std_error", "p.value": "p_value",
    "conf.low": "conf_low", "conf.high": "conf_high", "estimator_label": "estimator",
    "inquiry_label": "inquiry", "estimand_label": "inquiry",
}


def from_r_simulations(df: pd.DataFrame) -> pd.DataFrame:
    """Rename the columns of R's ``simulate_design`` output to this library's names.

    ``sim_ID`` becomes ``sim_id`` and broom's dotted names become snake_case
    (``std.error`` -> ``std_error``, ``p.value``, ``conf.low``, ``conf.high``).

    Parameters
    ----------
    df : pandas.DataFrame
        Simulations as written by R (e.g. read with ``pd.read_csv``).

    Returns
    -------
    pandas.DataFrame
        A renamed copy.

    Examples
    --------
    >>> import pandas as pd
    >>> r = pd.DataFrame({"sim_ID": [1], "std.error": [0.1], "p.value": [0.5]})
    >>> list(from_r_simulations(r).columns)
    ['sim_id', 'std_error', 'p_value']
    """
    if not isinstance(df, pd.DataFrame):
        fail("from_r_simulations", "df", df, "a pandas DataFrame", shown=type(df).__name__)
    names = {c: _R_NAMES.get(c, c.replace(".", "_") if isinstance(c, str) else c)
             for c in df.columns}
    return df.rename(columns=names)


# ----------------------------------------------------------------- grouping

def _codes(values: pd.Series, by_appearance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (NaN is a group of its own, R's ``addNA``) and their values."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(np.int64)
        cats = np.asarray(values.cat.categories, dtype=object)
        if (codes < 0).any():
            codes = np.where(codes < 0, len(cats), codes)
            cats = np.append(cats, np.nan)
        return codes, cats
    codes, uniques = pd.factorize(values, sort=not by_appearance, use_na_sentinel=False)
    uniques = np.asarray(uniques, dtype=object)
    if not by_appearance:
        # factorize(sort=True) may not put a missing value last; R's order() does.
        na = pd.isna(uniques)
        if na.any() and not na[-1]:
            perm = np.r_[np.flatnonzero(~na), np.flatnonzero(na)]
            inv = np.empty_like(perm)
            inv[perm] = np.arange(len(perm))
            codes, uniques = inv[codes], uniques[perm]
    return codes.astype(np.int64), uniques


def _group_index(frame: pd.DataFrame, cols: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Dense group codes in R's sorted order, and the group keys (one row per group)."""
    n = len(frame)
    if not cols:
        return np.zeros(n, dtype=np.int64), pd.DataFrame(index=range(1))
    all_codes, all_uniques = [], []
    for c in cols:
        codes, uniques = _codes(frame[c], by_appearance=(c == "design"))
        all_codes.append(codes)
        all_uniques.append(uniques)
    dims = [max(1, len(u)) for u in all_uniques]
    if math.prod(dims) < 2**62:
        flat = np.ravel_multi_index(all_codes, dims)
        keys, group = np.unique(flat, return_inverse=True)
        key_codes = np.unravel_index(keys, dims)
    else:  # pragma: no cover - astronomically many combinations
        stacked = np.column_stack(all_codes)
        keys, group = np.unique(stacked, axis=0, return_inverse=True)
        key_codes = tuple(keys[:, j] for j in range(len(cols)))
    key_frame = pd.DataFrame({c: pd.Series(all_uniques[j][key_codes[j]], dtype=object)
                              for j, c in enumerate(cols)})
    for c in cols:
        # Keep the input's dtype where it round-trips (numbers stay numbers).
        try:
            key_frame[c] = key_frame[c].astype(frame[c].dtype)
        except (TypeError, ValueError):
            pass
    return group.reshape(-1).astype(np.int64), key_frame


def _sim_codes(frame: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Codes 0..K-1 of the resampling unit and K (R: ``max(sim_ID)`` ids are drawn)."""
    level = "step_1_draw" if "step_1_draw" in frame.columns else "sim_id"
    v = frame[level]
    if pd.api.types.is_numeric_dtype(v) and not v.isna().any():
        a = v.to_numpy()
        if np.all(a == np.round(a)) and a.min() >= 1:
            a = a.astype(np.int64)
            return a - 1, int(a.max())
    codes, uniques = pd.factorize(v, sort=True, use_na_sentinel=False)
    return codes.astype(np.int64), len(uniques)


def _flag(frame: pd.DataFrame, col: str) -> np.ndarray:
    """Rows whose ``error``/``warning`` column holds a message (not NA, "" or False)."""
    if col not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    v = frame[col]
    if pd.api.types.is_bool_dtype(v):
        return v.to_numpy(dtype=bool, na_value=False)
    out = v.notna().to_numpy().copy()
    idx = np.flatnonzero(out)
    if len(idx):
        sub = v.iloc[idx]
        if not pd.api.types.is_string_dtype(sub):
            sub = sub.astype(str)
        text = sub.str.strip()
        out[idx] = ((text != "") & (text != "False")).to_numpy(dtype=bool)
    return out


def _nan_p(frame: pd.DataFrame, failed: np.ndarray) -> np.ndarray:
    """Estimator rows that did not fail but have no p-value (left out of power, coverage)."""
    if "estimator" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    if "p_value" in frame.columns:
        p = pd.to_numeric(frame["p_value"], errors="coerce").to_numpy(dtype=float,
                                                                      na_value=np.nan)
    else:
        p = np.full(len(frame), np.nan)
    return np.isnan(p) & frame["estimator"].notna().to_numpy() & ~failed


def _make_groups(frame: pd.DataFrame, make_groups: Any) -> tuple[pd.DataFrame, list[str]]:
    """R's ``make_groups = vars(...)``: extra grouping columns, existing or computed."""
    if make_groups is None:
        return frame, []
    if isinstance(make_groups, str):
        make_groups = [make_groups]
    if isinstance(make_groups, Mapping):
        frame = frame.copy()
        names = []
        for name, spec in make_groups.items():
            if isinstance(spec, str):
                check_columns(_FUNC, "make_groups", [spec], frame.columns)
                frame[name] = frame[spec]
            elif callable(spec):
                val = spec(frame)
                if np.ndim(val) == 0 or len(val) != len(frame):
                    fail(_FUNC, "make_groups", spec, f"functions returning one value per "
                         f"simulation row ({len(frame)}) for {name!r}",
                         shown=f"{{{name!r}: ...}}")
                frame[name] = np.asarray(val)
            else:
                fail(_FUNC, "make_groups", spec, "a column name or a function of the "
                     "simulations DataFrame", shown=f"{{{name!r}: {spec!r}}}")
            names.append(name)
        return frame, names
    if isinstance(make_groups, Sequence):
        names = list(make_groups)
        if not all(isinstance(n, str) for n in names):
            fail(_FUNC, "make_groups", make_groups,
                 "column names, or a dict of name -> column name or function")
        check_columns(_FUNC, "make_groups", names, frame.columns)
        return frame, names
    fail(_FUNC, "make_groups", make_groups,
         "None, column names, or a dict of name -> column name or function")
    raise AssertionError  # pragma: no cover


# ----------------------------------------------------------------- bootstrap

#: Most (replicate, simulation) weights held at once while bootstrapping.
WEIGHT_CELLS = 4_000_000


def bootstrap_weights(n_sims: int, bootstrap_sims: int, rng: np.random.Generator) -> np.ndarray:
    """Draw counts of each simulation in each replicate: (bootstrap_sims, n_sims) ints.

    Row ``b`` is how often each of ``n_sims`` ids appears among ``n_sims`` draws with
    replacement (R: ``sample.int(nsims, nsims, TRUE)``), i.e. a multinomial draw.
    """
    draws = rng.integers(0, n_sims, size=(bootstrap_sims, n_sims))
    draws += (np.arange(bootstrap_sims) * n_sims)[:, None]
    return np.bincount(draws.ravel(), minlength=bootstrap_sims * n_sims).reshape(
        bootstrap_sims, n_sims)


class _WeightBlocks:
    """The bootstrap weights, in blocks of replicates, the same on every pass.

    Each pass starts from the generator's state at construction, and draws rows
    exactly as one :func:`bootstrap_weights` call of all replicates would (the
    generator's integers are a stream: consecutive calls continue it), so results do
    not depend on the block size; after a pass the generator is where one call would
    leave it.
    """

    def __init__(self, n_sims: int, bootstrap_sims: int, rng: np.random.Generator):
        self.n_sims, self.n_boot, self.rng = n_sims, bootstrap_sims, rng
        self.state = rng.bit_generator.state
        self.block = max(1, min(bootstrap_sims, WEIGHT_CELLS // max(1, n_sims)))

    def __call__(self) -> Iterator[tuple[int, np.ndarray]]:
        self.rng.bit_generator.state = self.state
        for b0 in range(0, self.n_boot, self.block):
            n = min(self.block, self.n_boot - b0)
            yield b0, bootstrap_weights(self.n_sims, n, self.rng)


def _call_custom(label: str, f: Callable, df: pd.DataFrame) -> float:
    try:
        val = f(df)
    except Exception as e:  # the user's function: name it and chain
        raise DeclarationError(
            f"{_FUNC}(diagnosands=...): diagnosand {label!r} raised "
            f"{type(e).__name__}: {e}") from e
    try:
        arr = np.asarray(val, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.size != 1:
        fail(_FUNC, "diagnosands", val, f"functions returning a scalar (diagnosand {label!r})",
             shown=f"{label}=<returned {type(val).__name__}>")
    return float(arr.reshape(()))


def _sd_present(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """R's ``sd`` over the replicates where a group appears (axis 0), NaN-propagating."""
    cnt = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(present, values, 0.0)
        mean = v.sum(axis=0) / cnt
        dev = np.where(present, values - mean, 0.0)
        return np.sqrt((dev * dev).sum(axis=0) / (cnt - 1))


# ----------------------------------------------------------------- diagnosis

def _check_simulations(simulations: Any) -> None:
    """Refuse what is not a non-empty simulations table."""
    if not isinstance(simulations, pd.DataFrame):
        fail(_FUNC, "simulations", simulations, "a pandas DataFrame of simulations",
             shown=type(simulations).__name__)
    if len(simulations) == 0:
        fail(_FUNC, "simulations", simulations, "a DataFrame with at least one row",
             shown="<0 rows>")
    if not ({"estimator", "inquiry"} & set(simulations.columns)):
        fail(_FUNC, "simulations", simulations, "a simulations DataFrame with an "
             "'estimator' or 'inquiry' column", shown="<DataFrame>")


def _check_bootstrap_sims(bootstrap_sims: Any, simulations: pd.DataFrame) -> int:
    """Return a valid number of replicates (True means 100, as in R)."""
    if isinstance(bootstrap_sims, bool):
        bootstrap_sims = 0 if not bootstrap_sims else 100
    bootstrap_sims = check_positive_int(_FUNC, "bootstrap_sims", bootstrap_sims,
                                        allow_zero=True)
    if bootstrap_sims == 1:
        fail(_FUNC, "bootstrap_sims", 1, "0 or at least 2 (an SD needs two replicates)")
    if bootstrap_sims and not ({"sim_id", "step_1_draw"} & set(simulations.columns)):
        fail(_FUNC, "simulations", simulations, "a DataFrame with a 'sim_id' column to "
             "bootstrap (R's sim_ID: use from_r_simulations)", shown="<DataFrame>")
    return bootstrap_sims


def diagnose_simulations(simulations: pd.DataFrame, diagnosands: Any = None, *,
                         bootstrap_sims: int = 100, make_groups: Any = None,
                         seed: Any = None, alpha: float | None = None,
                         parameters: Sequence[str] | None = None) -> Diagnosis:
    """Compute diagnosands, with bootstrap standard errors, from simulations.

    Parameters
    ----------
    simulations : pandas.DataFrame
        One row per simulation x estimator x term (``sim_id``, ``inquiry``,
        ``estimand``, ``estimator``, ``outcome``, ``term``, ``estimate``,
        ``std_error``, ``p_value``, ``conf_low``, ``conf_high``, ...; optionally
        ``design``, parameter columns, ``error`` and ``warning``). Rows with an
        ``error`` message are left out of the diagnosands and counted in ``n_failed``.
    diagnosands : Diagnosands, str, list of str or dict, optional
        From :func:`declare_diagnosands`; names of built-ins or a dict of custom
        functions are accepted too. Default: R's seven default diagnosands.
    bootstrap_sims : int, default 100
        Bootstrap replicates for the standard errors; 0 turns bootstrapping off.
    make_groups : str, list of str or dict, optional
        Extra grouping columns (R's ``make_groups = vars(...)``): names of columns,
        or a dict ``name -> column name | f(simulations) -> array``.
    seed : int, SeedSequence or Generator, optional
        Seed of the bootstrap.
    alpha : float, optional
        Significance level; overrides the diagnosands' own (0.05 by default).
    parameters : list of str, optional
        Design-parameter columns (from ``expand_design``) to group by; default
        ``simulations.attrs.get("parameters", [])``.

    Returns
    -------
    Diagnosis

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> est = rng.normal(0.2, 0.1, 500)
    >>> sims = pd.DataFrame({"sim_id": np.arange(1, 501), "inquiry": "ATE",
    ...     "estimand": 0.2, "estimator": "dim", "term": "Z", "estimate": est,
    ...     "std_error": 0.1, "p_value": 0.01, "conf_low": est - 0.2, "conf_high": est + 0.2})
    >>> d = diagnose_simulations(sims, ["bias", "power"], bootstrap_sims=50, seed=1)
    >>> float(d.diagnosands["power"].iloc[0])
    1.0
    """
    start = time.perf_counter()
    _check_simulations(simulations)
    ds = as_diagnosands(diagnosands, alpha, _FUNC)
    bootstrap_sims = _check_bootstrap_sims(bootstrap_sims, simulations)
    if parameters is None:
        parameters = list(simulations.attrs.get("parameters", []))
    else:
        parameters = [parameters] if isinstance(parameters, str) else list(parameters)
    check_columns(_FUNC, "parameters", parameters, simulations.columns)

    frame, extra = _make_groups(simulations, make_groups)
    group_cols = [c for c in ("design", *parameters, *_DIMENSIONS, *extra)
                  if c in frame.columns]
    group_cols = list(dict.fromkeys(group_cols))
    group, keys = _group_index(frame, group_cols)
    n_groups = len(keys)

    failed = _flag(frame, "error")
    use = ~failed
    if ds.subset is not None:
        mask = np.asarray(ds.subset(frame), dtype=bool)
        if mask.shape != (len(frame),):
            fail(_FUNC, "diagnosands", ds.subset, "a subset function returning one boolean "
                 "per simulation row", shown="subset=<function>")
        use &= mask

    builtins, custom = ds.builtin, ds.custom
    stat_names, x = _builtin_stats(frame, builtins, ds.alpha, use, group, n_groups, ds.na_rm)
    point = compute_builtins(stat_names, _group_sums(x, group, n_groups), builtins, ds.na_rm)

    group_rows: list[np.ndarray] = []
    if custom:
        used = frame.loc[use]
        used_group = group[use]
        order = np.argsort(used_group, kind="stable")
        bounds = np.searchsorted(used_group[order], np.arange(n_groups + 1))
        group_rows = [order[bounds[g]:bounds[g + 1]] for g in range(n_groups)]
    for label, f in custom.items():
        point[label] = np.array([_call_custom(label, f, used.iloc[r]) for r in group_rows])

    values = {label: point[label] for label in ds.names}
    ses: dict[str, np.ndarray] = {}
    replicates = None
    if bootstrap_sims:
        rng = np.random.default_rng(seed)
        sim, n_sims = _sim_codes(frame)
        weights = _WeightBlocks(n_sims, bootstrap_sims, rng)
        boot = _bootstrap(frame, ds, x, stat_names, group, n_groups, sim, weights, use,
                          group_rows)
        present = boot.pop("__present__")
        ses = {label: _sd_present(boot[label], present) for label in ds.names}
        b_idx, g_idx = np.nonzero(present)
        replicates = pd.concat(
            [pd.DataFrame({"bootstrap_id": b_idx + 1}),
             keys.iloc[g_idx].reset_index(drop=True),
             pd.DataFrame({label: boot[label][b_idx, g_idx] for label in ds.names})],
            axis=1)

    out = keys.copy()
    for label in ds.names:
        out[label] = values[label]
        if bootstrap_sims:
            out[label + "_se"] = ses[label]
    out["n_sims"] = np.bincount(group, minlength=n_groups)
    if "error" in frame.columns:
        out["n_failed"] = np.bincount(group, weights=failed, minlength=n_groups).astype(int)
    if "warning" in frame.columns:
        warned = _flag(frame, "warning")
        out["n_warned"] = np.bincount(group, weights=warned, minlength=n_groups).astype(int)
    nan_p = _nan_p(frame, failed)
    if nan_p.any():  # only then: tables of fits that all have p-values stay as they were
        out["n_nan_p"] = np.bincount(group, weights=nan_p, minlength=n_groups).astype(int)
    return Diagnosis(
        diagnosands=out, simulations=frame, diagnosand_names=ds.names,
        group_by=group_cols, parameters=parameters, bootstrap_sims=bootstrap_sims,
        bootstrap_replicates=replicates, diagnosand_set=ds,
        duration=time.perf_counter() - start)


def _bootstrap(frame: pd.DataFrame, ds: Diagnosands, x: np.ndarray, stat_names: list[str],
               group: np.ndarray, n_groups: int, sim: np.ndarray, weights: _WeightBlocks,
               use: np.ndarray, group_rows: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every diagnosand in every replicate: arrays (replicates, groups), plus presence."""
    sums = _weighted_sums(x, group, n_groups, sim, weights.n_sims, weights.n_boot, weights)
    out = compute_builtins(stat_names, sums, ds.builtin, ds.na_rm)
    # R drops a group from a replicate when none of its rows were drawn.
    out["__present__"] = sums[..., stat_names.index("present")] > 0
    del sums
    if ds.custom:
        used = frame.loc[use]
        used_sim = sim[use]
        vals = {label: np.full((weights.n_boot, n_groups), np.nan) for label in ds.custom}
        for b0, w in weights():
            for g, rows in enumerate(group_rows):
                df_g, sim_g = used.iloc[rows], used_sim[rows]
                for b in range(len(w)):
                    df_b = df_g.iloc[np.repeat(np.arange(len(rows)), w[b, sim_g])]
                    for label, f in ds.custom.items():
                        vals[label][b0 + b, g] = _call_custom(label, f, df_b)
        out.update(vals)
    return out


def _loop_bootstrap(simulations: pd.DataFrame, diagnosands: Diagnosands,
                    weights: np.ndarray, group_cols: Sequence[str]) -> list[pd.DataFrame]:
    """Rebuild each replicate's rows and diagnose it: the reference implementation (slow).

    Used by the tests to show the vectorized bootstrap equals R's algorithm.
    """
    sim, _ = _sim_codes(simulations)
    out = []
    for b in range(weights.shape[0]):
        take = np.repeat(np.arange(len(simulations)), weights[b, sim])
        rep = simulations.iloc[take].reset_index(drop=True)
        d = diagnose_simulations(rep, diagnosands, bootstrap_sims=0,
                                 parameters=[c for c in group_cols
                                             if c not in ("design", *_DIMENSIONS)
                                             and c in simulations.columns])
        out.append(d.diagnosands)
    return out


# ----------------------------------------------------------------- formatting

def _nice_name(name: str) -> str:
    """R's column titles: ``sd_estimate`` -> ``SD Estimate``, ``rmse`` -> ``RMSE``."""
    words = name.split("_")
    special = {"sd": "SD", "rmse": "RMSE", "se": "SE", "ci": "CI", "nan": "NaN"}
    return " ".join(special.get(w, w[:1].upper() + w[1:]) for w in words)


def _fmt(x: Any, digits: int) -> str:
    """Format a number as R prints it (``%.2f``), small values with significant digits.

    Values below ``10**(1 - digits)`` keep ``digits`` significant digits instead, so a
    bias of 0.00019 or a power of 0.049 do not print as 0.00/0.05.
    """
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "NA"
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    if v != 0 and abs(v) < 10.0 ** (1 - digits):
        return f"{v:.{digits}g}"
    return f"{v:.{digits}f}"


def _key_str(v: Any) -> str:
    return "NA" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


class Diagnosis:
    """The result of a diagnosis (R: class ``diagnosis``).

    Attributes
    ----------
    diagnosands : pandas.DataFrame
        One row per group: grouping columns, each diagnosand with ``<name>_se``
        beside it (when bootstrapped), ``n_sims``, and ``n_failed``/``n_warned``
        when the simulations have ``error``/``warning`` columns. Diagnosands use
        only rows without an error. ``n_nan_p`` (present when there are any)
        counts estimator rows without an error whose p-value is NaN (a degenerate fit, or an
        estimator that reports none): power and coverage leave them out.
    simulations : pandas.DataFrame
        The simulations diagnosed (with any ``make_groups`` columns added).
    diagnosand_names : list of str
    group_by : list of str
        The grouping columns.
    parameters : list of str
        Design-parameter columns among ``group_by``.
    bootstrap_sims : int
    bootstrap_replicates : pandas.DataFrame or None
        One row per replicate x group: ``bootstrap_id``, grouping columns, one
        column per diagnosand (R's layout).
    duration : float
        Seconds spent diagnosing.
    n_sims_used : int
        Simulations per design that ``diagnose_design`` ran (set by it).
    precision : dict or None
        With ``diagnose_design(precision=...)``: the target SE per diagnosand.
    precision_reached : bool or None
        Whether every target was met before ``max_sims``.
    """

    def __init__(self, *, diagnosands: pd.DataFrame, simulations: pd.DataFrame,
                 diagnosand_names: list[str], group_by: list[str], parameters: list[str],
                 bootstrap_sims: int, bootstrap_replicates: pd.DataFrame | None,
                 diagnosand_set: Diagnosands | None = None, duration: float = 0.0):
        self.diagnosands = diagnosands
        self.simulations = simulations
        self.diagnosand_names = list(diagnosand_names)
        self.group_by = list(group_by)
        self.parameters = list(parameters)
        self.bootstrap_sims = bootstrap_sims
        self.bootstrap_replicates = bootstrap_replicates
        self.diagnosand_set = diagnosand_set
        self.duration = duration

    def to_frame(self) -> pd.DataFrame:
        """Return the diagnosands table (a copy)."""
        return self.diagnosands.copy()

    def tidy(self, conf_int: bool = True, conf_level: float = 0.95) -> pd.DataFrame:
        """Long table: one row per group x diagnosand (R: ``tidy.diagnosis``).

        Columns: grouping columns, ``diagnosand``, ``estimate``, ``std_error`` and,
        with ``conf_int``, ``conf_low``/``conf_high``: percentiles of the bootstrap
        replicates (R's ``quantile`` type 7), NaN when any replicate is NaN.

        Examples
        --------
        >>> import pandas as pd
        >>> sims = pd.DataFrame({"sim_id": [1, 2, 3], "estimator": "e", "estimate": [1., 2, 3],
        ...                      "estimand": 2.0})
        >>> diagnose_simulations(sims, ["bias"], seed=1).tidy().shape
        (1, 6)
        """
        conf_level = check_probability("Diagnosis.tidy", "conf_level", conf_level,
                                       open_interval=True)
        d = self.diagnosands
        names = self.diagnosand_names
        n_g, n_d = len(d), len(names)
        out = d.loc[np.repeat(np.arange(n_g), n_d), self.group_by].reset_index(drop=True)
        out["diagnosand"] = np.tile(names, n_g)
        out["estimate"] = d[names].to_numpy(dtype=float).reshape(-1)
        if self.bootstrap_replicates is not None:
            out["std_error"] = d[[n + "_se" for n in names]].to_numpy(dtype=float).reshape(-1)
            if conf_int:
                lo, hi = self._percentiles((1 - conf_level) / 2, 1 - (1 - conf_level) / 2)
                out["conf_low"] = lo.reshape(-1)
                out["conf_high"] = hi.reshape(-1)
        return out

    def _replicate_rows(self) -> list[np.ndarray]:
        """For each row of ``diagnosands``, its rows in ``bootstrap_replicates``."""
        reps = self.bootstrap_replicates
        n = len(self.diagnosands)
        both = pd.concat([self.diagnosands[self.group_by], reps[self.group_by]],
                         ignore_index=True)
        g, _ = _group_index(both, self.group_by)
        g_main, g_reps = g[:n], g[n:]
        pos = np.full(g.max() + 1, -1, dtype=np.int64)
        pos[g_main] = np.arange(n)
        row = pos[g_reps]
        order = np.argsort(row, kind="stable")
        bounds = np.searchsorted(row[order], np.arange(n + 1))
        return [order[bounds[i]:bounds[i + 1]] for i in range(n)]

    def _percentiles(self, q_low: float, q_high: float) -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap percentiles per (group, diagnosand), aligned with ``diagnosands``."""
        names = self.diagnosand_names
        vals = self.bootstrap_replicates[names].to_numpy(dtype=float)
        lo = np.full((len(self.diagnosands), len(names)), np.nan)
        hi = lo.copy()
        for i, rows in enumerate(self._replicate_rows()):
            v = vals[rows]
            if len(v) == 0:
                continue
            q = np.quantile(v, [q_low, q_high], axis=0)
            bad = np.isnan(v).any(axis=0)  # R's quantile_NAsafe
            lo[i], hi[i] = np.where(bad, np.nan, q[0]), np.where(bad, np.nan, q[1])
        return lo, hi

    def reshape(self, digits: int = 2, select: Sequence[str] | None = None,
                exclude: Sequence[str] | None = None) -> pd.DataFrame:
        """Return the printed table as strings: each group's values, SEs in parentheses below.

        ``select``/``exclude`` take diagnosand names (R: ``reshape_diagnosis``).
        """
        names = list(self.diagnosand_names)
        if select is not None:
            select = [select] if isinstance(select, str) else list(select)
            for s in select:
                if s not in names:
                    fail("Diagnosis.reshape", "select", s, "diagnosand names (" +
                         ", ".join(names) + ")")
            names = select
        if exclude is not None:
            exclude = [exclude] if isinstance(exclude, str) else list(exclude)
            names = [n for n in names if n not in exclude]
        d = self.diagnosands
        boot = self.bootstrap_replicates is not None
        count_cols = ["n_sims"] + [c for c in ("n_failed", "n_warned", "n_nan_p")
                                   if c in d.columns and d[c].any()]
        rows = []
        for i in range(len(d)):
            r = {_nice_name(c) if c not in self.parameters else c: _key_str(d[c].iloc[i])
                 for c in self.group_by}
            r.update({_nice_name(c): str(int(d[c].iloc[i])) for c in count_cols})
            r.update({_nice_name(n): _fmt(d[n].iloc[i], digits) for n in names})
            rows.append(r)
            if boot:
                se = {k: "" for k in r}
                se.update({_nice_name(n): ("NA" if pd.isna(d[n + "_se"].iloc[i]) else
                                           f"({_fmt(d[n + '_se'].iloc[i], digits)})")
                           for n in names})
                rows.append(se)
        return pd.DataFrame(rows)

    def _header(self) -> str:
        n = self.diagnosands["n_sims"].unique()
        msg = "Research design diagnosis"
        if len(n) == 1:
            msg += f" based on {int(n[0])} simulations"
        msg += "."
        if self.bootstrap_replicates is not None:
            msg += (" Diagnosand estimates with bootstrapped standard errors in parentheses "
                    f"({self.bootstrap_sims} replicates).")
        d = self.diagnosands
        if "n_failed" in d.columns and d["n_failed"].any():
            msg += (f"\nDiagnosands use only simulations without errors "
                    f"({int(d['n_failed'].sum())} failed rows; see N Failed).")
        if "n_nan_p" in d.columns and d["n_nan_p"].any():
            msg += (f"\nPower and coverage use only simulations with a p-value "
                    f"({int(d['n_nan_p'].sum())} rows without one; see N NaN P).")
        return msg

    def __str__(self) -> str:
        """Return the printed diagnosis: header and table."""
        return self._header() + "\n\n" + self.reshape().to_string(index=False)

    def __repr__(self) -> str:
        """Return the printed diagnosis."""
        return str(self)

    def _repr_html_(self) -> str:
        table = self.reshape().to_html(index=False, na_rep="", border=0)
        return f"<p>{html.escape(self._header())}</p>{table}"

    def plot(self, **kwargs: Any) -> Any:
        """Plot sampling distributions against the estimand (see ``plot.plot_diagnosis``)."""
        from ..plot import plot_diagnosis

        return plot_diagnosis(self, **kwargs)

    def plot_power_curve(self, x: str | None = None, **kwargs: Any) -> Any:
        """Power along a design grid (see ``plot.plot_power_curve``)."""
        from ..plot import plot_power_curve

        return plot_power_curve(self, x, **kwargs)

    def plot_diagnosands(self, diagnosands: Sequence[str] = ("bias", "rmse", "power"),
                         **kwargs: Any) -> Any:
        """Estimators compared with error bars (see ``plot.plot_diagnosands``)."""
        from ..plot import plot_diagnosands

        return plot_diagnosands(self, diagnosands, **kwargs)


# ----------------------------------------------------------------- comparison

def compare_diagnoses(diagnosis1: Diagnosis, diagnosis2: Diagnosis, *,
                      merge_by_estimator: bool = True, alpha: float = 0.05) -> pd.DataFrame:
    """Compare the diagnosands of two diagnoses (R: ``compare_diagnoses``).

    Groups are matched on ``inquiry``, ``term`` and (with ``merge_by_estimator``)
    ``estimator``, many to many; other grouping columns (``design``, parameters,
    an unmatched ``estimator``) appear as ``<col>_1`` and ``<col>_2``. As in R,
    replicate ``b`` of one diagnosis is paired with replicate ``b`` of the other;
    the difference ``2 - 1`` is summarised by its mean over replicates, its SD and
    its ``alpha`` percentile interval, and ``significant`` marks intervals that
    exclude zero (R prints them with ``*``).

    Parameters
    ----------
    diagnosis1, diagnosis2 : Diagnosis
        Both bootstrapped with the same number of replicates.
    merge_by_estimator : bool, default True
    alpha : float, default 0.05

    Returns
    -------
    pandas.DataFrame
        Matching columns, ``<col>_1``/``<col>_2`` columns, ``diagnosand``,
        ``mean_1``, ``mean_2``, ``mean_difference``, ``se_1``, ``se_2``,
        ``se_difference``, ``conf_low``, ``conf_high``, ``significant``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> def sims(shift):
    ...     e = np.random.default_rng(0).normal(shift, 1, 200)
    ...     return pd.DataFrame({"sim_id": np.arange(1, 201), "inquiry": "ATE",
    ...                          "estimator": "e", "estimate": e, "estimand": 0.0})
    >>> d1 = diagnose_simulations(sims(0.0), ["bias"], seed=1)
    >>> d2 = diagnose_simulations(sims(1.0), ["bias"], seed=2)
    >>> bool(compare_diagnoses(d1, d2)["significant"].iloc[0])
    True
    """
    func = "compare_diagnoses"
    for arg, d in (("diagnosis1", diagnosis1), ("diagnosis2", diagnosis2)):
        if not isinstance(d, Diagnosis):
            fail(func, arg, d, "a Diagnosis", shown=type(d).__name__)
        if d.bootstrap_replicates is None:
            fail(func, arg, d, "a bootstrapped Diagnosis (bootstrap_sims > 0)",
                 shown="<Diagnosis without bootstrap>")
    alpha = check_probability(func, "alpha", alpha, open_interval=True)
    g1, g2 = set(diagnosis1.group_by), set(diagnosis2.group_by)
    if not ({"inquiry", "estimator"} & g1 & g2):
        fail(func, "diagnosis2", diagnosis2, "a diagnosis sharing an 'inquiry' or "
             "'estimator' column with diagnosis1", shown="<Diagnosis>")
    by = [c for c in ("inquiry", "estimator", "term") if c in g1 & g2
          and (c != "estimator" or merge_by_estimator)]
    if not by:
        fail(func, "merge_by_estimator", merge_by_estimator,
             "True when the diagnoses share only the 'estimator' column")
    names = [n for n in diagnosis1.diagnosand_names if n in diagnosis2.diagnosand_names]
    r1, r2 = diagnosis1.bootstrap_replicates, diagnosis2.bootstrap_replicates
    rows = []
    t1, t2 = diagnosis1.diagnosands, diagnosis2.diagnosands
    reps1, reps2 = diagnosis1._replicate_rows(), diagnosis2._replicate_rows()
    other1 = [c for c in diagnosis1.group_by if c not in by]
    other2 = [c for c in diagnosis2.group_by if c not in by]
    match1 = [tuple(_key_str(v) for v in r) for r in t1[by].itertuples(index=False)]
    match2 = [tuple(_key_str(v) for v in r) for r in t2[by].itertuples(index=False)]
    v1 = r1[names].to_numpy(float)
    v2 = r2[names].to_numpy(float)
    for i, m1 in enumerate(match1):
        for j, m2 in enumerate(match2):
            if m1 != m2:
                continue
            rep1, rep2 = v1[reps1[i]], v2[reps2[j]]
            n = min(len(rep1), len(rep2))
            diff = rep2[:n] - rep1[:n]
            for k, name in enumerate(names):
                dk = diff[:, k]
                ok = dk[~np.isnan(dk)]
                lo, hi = (np.quantile(ok, [alpha / 2, 1 - alpha / 2]) if len(ok)
                          else (np.nan, np.nan))
                row = {c: t1[c].iloc[i] for c in by}
                # other grouping columns (design, parameters, an unmerged estimator)
                row.update({f"{c}_1": t1[c].iloc[i] for c in other1})
                row.update({f"{c}_2": t2[c].iloc[j] for c in other2})
                row.update(diagnosand=name, mean_1=float(t1[name].iloc[i]),
                           mean_2=float(t2[name].iloc[j]),
                           mean_difference=float(ok.mean()) if len(ok) else np.nan,
                           se_1=float(t1[name + "_se"].iloc[i]),
                           se_2=float(t2[name + "_se"].iloc[j]),
                           se_difference=float(np.std(dk, ddof=1)) if n > 1 else np.nan,
                           conf_low=lo, conf_high=hi,
                           significant=bool(lo > 0 or hi < 0))
                rows.append(row)
    if not rows:
        raise DeclarationError(f"{func}(diagnosis2=...): the two diagnoses have no "
                               f"{', '.join(by)} labels in common.")
    return pd.DataFrame(rows)


# Public accessors for the plot layer (which may use public names only).
def message_rows(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Rows of a simulations table whose ``error``/``warning`` column holds a message."""
    return _flag(frame, column)


def diagnosand_title(name: str) -> str:
    """R's title of a diagnosand column: ``sd_estimate`` -> ``SD Estimate``."""
    return _nice_name(name)
