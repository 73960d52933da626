"""Public verbs on designs: draw, run, simulate, diagnose, redesign, edit steps."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_positive_int, fail
from ..batch import Batch
from ..engine.chunks import assemble
from ..engine.runner import Simulation, checkpoint_root
from ..engine.seeding import block_rng, root_seed_sequence
from ..errors import DeclarationError, DesignError
from .design import Design
from .designers import set_step_parameters
from .diagnosis import diagnose_simulations
from .provenance import provenance
from .steps import InquiryStep, Step

__all__ = [
    "draw_data",
    "draw_estimands",
    "draw_estimates",
    "get_estimates",
    "run_design",
    "simulate_design",
    "diagnose_design",
    "expand_design",
    "redesign",
    "insert_step",
    "replace_step",
    "delete_step",
]


def _check_design(func: str, design: Any) -> Design:
    if isinstance(design, Step):
        return Design((design,))
    if not isinstance(design, Design):
        fail(func, "design", type(design).__name__, "a Design (steps composed with +)",
             shown=type(design).__name__)
    return design


def _one_sim_rng(seed: Any, func: str) -> np.random.Generator:
    return block_rng(root_seed_sequence(seed, func), 0)


# ------------------------------------------------------------------ one run
def draw_data(design: Design, data: pd.DataFrame | None = None, *, start: int = 1,
              end: int | None = None, seed: Any = None) -> pd.DataFrame:
    """Draw one simulated dataset (R: ``draw_data``).

    Runs the data steps of ``design`` (from ``start`` to ``end``, 1-based); the same
    ``seed`` gives the same dataset.

    Examples
    --------
    >>> import declaredesign as dd
    >>> design = dd.declare_model(N=4, u=dd.normal())
    >>> dd.draw_data(design, seed=1).shape
    (4, 2)
    """
    design = _check_design("draw_data", design)
    if data is not None and not isinstance(data, pd.DataFrame):
        fail("draw_data", "data", type(data).__name__, "a pandas DataFrame or None",
             shown=type(data).__name__)
    rng = _one_sim_rng(seed, "draw_data")
    batch = Batch.from_pandas(data) if data is not None else None
    stop = len(design) if end is None else design.step_index(end) + 1
    first = design.step_index(start) if start != 1 else 0
    batch = design.run_data_steps(1, rng, data=batch, start=first, stop=stop)
    if batch is None:
        raise DesignError("draw_data: the design has no data step.")
    return batch.to_pandas()


def run_design(design: Design, *, seed: Any = None) -> pd.DataFrame:
    """Run the whole design once; one row per estimator term and inquiry (R: ``run_design``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> d = (dd.declare_model(N=50, U=dd.normal())
    ...      + dd.declare_potential_outcomes("Y ~ 0.2 * Z + U")
    ...      + dd.declare_inquiry(ate="mean(Y_Z_1 - Y_Z_0)")
    ...      + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
    ...      + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
    ...      + dd.declare_estimator("Y ~ Z", inquiry="ate"))
    >>> list(dd.run_design(d, seed=1)[["inquiry", "estimator", "term"]].iloc[0])
    ['ate', 'estimator', 'Z']
    """
    design = _check_design("run_design", design)
    res = design.run_batch(1, _one_sim_rng(seed, "run_design"))
    return assemble(res.estimands, res.estimates).drop(columns="sim_id")


def draw_estimands(design: Design, *, seed: Any = None) -> pd.DataFrame:
    """Draw the inquiries' values in one simulated dataset (R: ``draw_estimands``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> d = dd.declare_model(N=10, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    >>> list(dd.draw_estimands(d, seed=3).columns)
    ['inquiry', 'estimand']
    """
    design = _check_design("draw_estimands", design)
    res = design.run_batch(1, _one_sim_rng(seed, "draw_estimands"))
    return res.estimands.drop(columns="sim").reset_index(drop=True)


def draw_estimates(design: Design, *, seed: Any = None) -> pd.DataFrame:
    """Draw the estimators' tidy rows in one simulated dataset (R: ``draw_estimates``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> d = (dd.declare_model(N=20, Z=dd.bernoulli(0.5), Y=dd.normal())
    ...      + dd.declare_estimator("Y ~ Z", label="ols"))
    >>> dd.draw_estimates(d, seed=1)["estimator"].tolist()
    ['ols']
    """
    design = _check_design("draw_estimates", design)
    res = design.run_batch(1, _one_sim_rng(seed, "draw_estimates"))
    return res.estimates.drop(columns="sim", errors="ignore").reset_index(drop=True)


def get_estimates(design: Design, data: pd.DataFrame, *, seed: Any = None) -> pd.DataFrame:
    """Apply the design's answer strategy to real data (R: ``get_estimates``).

    Steps after the last data-generating step (model, potential outcomes, sampling,
    assignment, measurement) run on ``data``: custom steps such as aggregation, then
    estimators and tests. Inquiries are skipped: real data hold no truth.

    Examples
    --------
    >>> import pandas as pd
    >>> import declaredesign as dd
    >>> d = (dd.declare_model(N=20, Z=dd.bernoulli(0.5), Y=dd.normal())
    ...      + dd.declare_estimator("Y ~ Z", label="ols"))
    >>> df = pd.DataFrame({"Y": [1.0, 2.0, 3.0, 5.0], "Z": [0, 0, 1, 1]})
    >>> float(dd.get_estimates(d, df)["estimate"].iloc[0])
    2.5
    """
    design = _check_design("get_estimates", design)
    if not isinstance(data, pd.DataFrame):
        fail("get_estimates", "data", type(data).__name__, "a pandas DataFrame",
             shown=type(data).__name__)
    start = design.last_data_generating_step()
    kept = tuple(s for s in design.steps[start:] if not isinstance(s, InquiryStep))
    # The answer strategy alone: its inquiries and columns live in the skipped steps.
    sub = Design(kept, _check=False)
    res = sub.run_batch(1, _one_sim_rng(seed, "get_estimates"), data=Batch.from_pandas(data))
    return res.estimates.drop(columns="sim", errors="ignore").reset_index(drop=True)


# ---------------------------------------------------------------- many runs
def _named_designs(func: str, designs: Sequence[Any]) -> list[tuple[str, Design]]:
    if len(designs) == 1 and isinstance(designs[0], Mapping):
        items = list(designs[0].items())
    elif len(designs) == 1 and isinstance(designs[0], (list, tuple)):
        items = [(None, d) for d in designs[0]]
    else:
        items = [(None, d) for d in designs]
    if not items:
        raise DeclarationError(f"{func}(): give at least one design.")
    out = []
    for i, (name, d) in enumerate(items, 1):
        d = _check_design(func, d)
        out.append((name or ("design" if len(items) == 1 else f"design_{i}"), d))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise DeclarationError(f"{func}(): design names must be unique; got {names}.")
    return out


def simulate_design(*designs: Any, sims: int = 500, seed: Any = None,
                    chunk_size: int | None = None, progress: bool | None = None,
                    backend: Any = None, workers: int | None = None,
                    checkpoint: Any = None) -> pd.DataFrame:
    """Simulate designs many times (R: ``simulate_design``).

    Parameters
    ----------
    *designs : Design, list of Design or dict of name to Design
        Several designs are simulated one after another, with a ``design`` column.
    sims : int, default 500
        Number of simulations of each design.
    seed : int or numpy.random.SeedSequence, optional
        Makes the run reproducible; the same seed gives the same simulations however
        the run is executed (any backend, workers, chunk size or resume). Simulations
        are drawn in fixed blocks (at most 1,000, sized from the data); only the seed,
        the design and ``sims`` (when not a multiple of the block) change them.
    chunk_size : int, optional
        Simulations per chunk of work (what a worker runs and a checkpoint stores),
        rounded up to whole blocks; by default one block. Never changes the results.
    progress : bool, optional
        Show a progress bar (default: for runs of 5,000+ simulations in a terminal or
        notebook).
    backend : str, Executor or dask.distributed.Client, optional
        Where chunks run: ``"serial"``, ``"processes"`` (a pool of ``workers``
        processes), ``"dask"`` (the current Dask client, or a LocalCluster started for
        the run), a Dask scheduler address such as ``"tcp://10.0.0.5:8786"``, any
        ``concurrent.futures.Executor`` or a ``dask.distributed.Client``. Default:
        processes for 5,000+ simulations on a machine with more than one core,
        serial otherwise.
    workers : int, optional
        Processes for ``"processes"``, workers of the LocalCluster for ``"dask"``
        (default: the usable cores).
    checkpoint : str or path, optional
        A folder where each finished chunk is written (Parquet, plus a JSON manifest
        with each chunk's checksum). Re-running the same call resumes from it and
        returns the same table as an uninterrupted run; damaged chunks are computed
        again, and a folder, manifest or chunk of another design or seed is refused.
        With ``seed=None`` a resumed run reuses the checkpoint's seed.

    Returns
    -------
    pandas.DataFrame
        One row per simulation x inquiry x estimator term: design, sim_id, inquiry,
        estimand, estimator, term, estimate, std_error, statistic, p_value, conf_low,
        conf_high, df, outcome, error and warning (None unless the fit failed or
        warned in that simulation), and the design's parameters.

    Examples
    --------
    >>> import declaredesign as dd
    >>> d = dd.declare_model(N=10, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    >>> dd.simulate_design(d, sims=3, seed=1).shape[0]
    3
    """
    func = "simulate_design"
    sims = check_positive_int(func, "sims", sims)
    if chunk_size is not None:
        chunk_size = check_positive_int(func, "chunk_size", chunk_size)
    named = _named_designs(func, designs)
    root = checkpoint_root(checkpoint, seed, root_seed_sequence(seed, func), func)
    with Simulation(named, root, func=func, chunk_size=chunk_size, backend=backend,
                    workers=workers, progress=progress, checkpoint=checkpoint,
                    sims_hint=sims) as run:
        return run.run(sims)


def diagnose_design(*designs: Any, diagnosands: Any = None, sims: int = 500,
                    bootstrap_sims: int = 100, seed: Any = None, make_groups: Any = None,
                    chunk_size: int | None = None, progress: bool | None = None,
                    backend: Any = None, workers: int | None = None, checkpoint: Any = None,
                    precision: float | Mapping[str, float] | None = None,
                    max_sims: int | None = None):
    """Simulate designs and summarise the simulations with diagnosands (R: ``diagnose_design``).

    Parameters
    ----------
    *designs : Design(s), dict of name to Design, or a simulations DataFrame
        What to diagnose; a DataFrame from :func:`simulate_design` is diagnosed as is.
    diagnosands : declare_diagnosands(...), optional
        Defaults to the designs' own (:func:`set_diagnosands`), else DeclareDesign
        1.0's: mean_estimand, mean_estimate, bias, sd_estimate, rmse, power, coverage.
    sims : int, default 500
        Simulations of each design (with ``precision``: the first round).
    bootstrap_sims : int, default 100
        Bootstrap replicates for the diagnosands' Monte Carlo standard errors (0: none).
    seed : int, optional
        Seeds both the simulations and the bootstrap.
    make_groups : optional
        Extra grouping of simulations, as R's ``make_groups``.
    chunk_size, progress, backend, workers, checkpoint : optional
        As in :func:`simulate_design`.
    precision : float or dict of diagnosand name to float, optional
        Target Monte Carlo standard errors: simulate in rounds of whole chunks until
        the bootstrap SE of each named diagnosand (a number: of every diagnosand) is
        below its target in every group, or ``max_sims`` is reached.
    max_sims : int, optional
        Most simulations of each design with ``precision`` (default 100,000).

    Returns
    -------
    Diagnosis
        Also carries ``n_sims_used`` (simulations of each design), ``provenance``
        (the seed that reproduces the run, sims, each design as code, package
        versions and date; see :func:`~declaredesign.design.provenance.provenance`)
        and, with ``precision``, ``precision`` (the targets) and ``precision_reached``.

    Examples
    --------
    >>> import declaredesign as dd
    >>> d = dd.declare_model(N=10, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    >>> dx = dd.diagnose_design(d, sims=20, bootstrap_sims=0, seed=1)
    >>> int(dx.diagnosands["n_sims"].iloc[0])
    20
    """
    func = "diagnose_design"
    bootstrap_sims = check_positive_int(func, "bootstrap_sims", bootstrap_sims,
                                        allow_zero=True)
    root = root_seed_sequence(seed, func)
    given_sims = len(designs) == 1 and isinstance(designs[0], pd.DataFrame)
    targets = None if precision is None else _check_precision(func, precision, bootstrap_sims,
                                                              given_sims)
    if max_sims is not None:
        max_sims = check_positive_int(func, "max_sims", max_sims)
        if precision is None:
            fail(func, "max_sims", max_sims, "None unless precision is given")
    if given_sims:
        sims_df = designs[0]
        n_used = None
    else:
        sims = check_positive_int(func, "sims", sims)
        if chunk_size is not None:
            chunk_size = check_positive_int(func, "chunk_size", chunk_size)
        named = _named_designs(func, designs)
        if diagnosands is None:
            diagnosands = _own_diagnosands(named)
        root = checkpoint_root(checkpoint, seed, root, func)
        cap = (100_000 if max_sims is None else max_sims) if targets is not None else sims
        if targets is not None and cap < sims:
            fail(func, "max_sims", max_sims, f"at least sims ({sims})")
        with Simulation(named, root, func=func, chunk_size=chunk_size, backend=backend,
                        workers=workers, progress=progress, checkpoint=checkpoint,
                        sims_hint=cap) as run:
            if targets is None:
                sims_df = run.run(sims)
                n_used = sims
            else:
                boot_seed = _boot_seed(root)
                dx = _diagnose_to_precision(run, targets, sims, cap, diagnosands,
                                            bootstrap_sims, make_groups, boot_seed)
                dx.provenance = provenance(seed=root, sims=dx.n_sims_used, designs=named,
                                           bootstrap_sims=bootstrap_sims)
                return dx
    dx = diagnose_simulations(sims_df, diagnosands, bootstrap_sims=bootstrap_sims,
                              make_groups=make_groups, seed=_boot_seed(root))
    if n_used is None and "sim_id" in sims_df.columns and len(sims_df):
        n_used = int(pd.to_numeric(sims_df["sim_id"], errors="coerce").max())
    dx.n_sims_used = n_used
    dx.provenance = provenance(seed=root, sims=n_used, designs=[] if given_sims else named,
                               bootstrap_sims=bootstrap_sims)
    return dx


def _own_diagnosands(named: list[tuple[str, Design]]) -> Any:
    """Return the designs' own diagnosands (set_diagnosands), when they agree."""
    own = [d.diagnosands for _, d in named]
    if all(o is None for o in own):
        return None
    if any(o is not own[0] for o in own[1:]):
        raise DesignError("diagnose_design: the designs have different diagnosands "
                          "(set_diagnosands); diagnose them separately or give diagnosands=.")
    return own[0]


def _boot_seed(root: np.random.SeedSequence) -> np.random.SeedSequence:
    return np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, 2**32 - 3))


def _check_precision(func: str, precision: Any, bootstrap_sims: int,
                     given_sims: bool) -> dict[str, float] | float:
    """Check ``precision``: a positive number, or a dict of diagnosand name -> number."""
    def positive(v: Any) -> bool:
        return isinstance(v, (int, float, np.floating, np.integer)) and \
            not isinstance(v, bool) and np.isfinite(v) and v > 0
    if given_sims:
        fail(func, "precision", precision, "None when diagnosing a simulations DataFrame "
             "(precision mode runs simulations)")
    if bootstrap_sims < 2:
        fail(func, "bootstrap_sims", bootstrap_sims, "at least 2 with precision (the targets "
             "are bootstrap standard errors)")
    if isinstance(precision, Mapping):
        if not precision or not all(isinstance(k, str) and positive(v)
                                    for k, v in precision.items()):
            fail(func, "precision", precision, "a positive number or a non-empty dict of "
                 "diagnosand name -> positive number")
        return {k: float(v) for k, v in precision.items()}
    if not positive(precision):
        fail(func, "precision", precision, "a positive number or a dict of diagnosand name "
             "-> positive number")
    return float(precision)


def _diagnose_to_precision(run: Any, targets: dict[str, float] | float, sims: int, cap: int,
                           diagnosands: Any, bootstrap_sims: int, make_groups: Any,
                           boot_seed: np.random.SeedSequence):
    """Simulate rounds of whole chunks until every target SE is met (or ``cap`` simulations).

    The rounds depend only on the simulations (never on workers), so the result is
    the diagnosis of ``diagnose_design(..., sims=dx.n_sims_used)`` with the same seed.
    """
    step = run.chunk_step
    n = min(cap, -(-sims // step) * step)
    while True:
        dx = diagnose_simulations(run.run(n), diagnosands, bootstrap_sims=bootstrap_sims,
                                  make_groups=make_groups, seed=boot_seed)
        if isinstance(targets, float):
            targets = {name: targets for name in dx.diagnosand_names}
        unknown = [k for k in targets if k not in dx.diagnosand_names]
        if unknown:
            fail("diagnose_design", "precision", dict(targets), "a dict keyed by diagnosand "
                 "names (" + ", ".join(dx.diagnosand_names) + f"); {unknown[0]!r} is not one")
        ratio = 0.0
        for name, target in targets.items():
            se = dx.diagnosands[name + "_se"].to_numpy(dtype=float)
            se = se[np.isfinite(se)]
            # No finite SE (e.g. coverage without confidence intervals) cannot be met.
            ratio = max(ratio, float(se.max()) / target if se.size else np.inf)
        reached = ratio < 1.0
        if reached or n >= cap:
            break
        # SEs shrink as 1/sqrt(n): aim 10% past the projected need, in whole chunks,
        # and at least one more chunk.
        want = n * ratio**2 * 1.1 if np.isfinite(ratio) else 2 * n
        n = min(cap, max(n + step, -(-int(math.ceil(want)) // step) * step))
    dx.n_sims_used = n
    dx.precision = dict(targets)
    dx.precision_reached = bool(reached)
    return dx


# ------------------------------------------------------------ design grids
def expand_design(designer: Callable[..., Design], *, expand: bool = True,
                  **parameters: Any) -> list[Design]:
    """Make one design per combination of parameters (R: ``expand_design``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> def designer(n=10):
    ...     return dd.declare_model(N=n, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    >>> [d.parameters for d in dd.expand_design(designer, n=[10, 20])]
    [{'n': 10}, {'n': 20}]
    """
    if not callable(designer):
        fail("expand_design", "designer", designer, "a function returning a Design")
    out = []
    for params in _grid("expand_design", parameters, expand):
        d = _check_design("expand_design", designer(**params))
        out.append(d.with_steps(d.steps, _check=False, parameters=params, designer=designer))
    return out


def _grid(func: str, parameters: Mapping[str, Any], expand: bool) -> list[dict[str, Any]]:
    """Every combination of parameter values (a list is values; anything else one value)."""
    names = list(parameters)
    values = [v if isinstance(v, (list, tuple, np.ndarray, range)) else [v]
              for v in parameters.values()]
    for name, v in zip(names, values):
        if len(v) == 0:
            fail(func, name, parameters[name], "a value or a non-empty list of "
                 "values (an empty grid has no designs)")
    if expand:
        combos = list(itertools.product(*values))
    else:
        lengths = {len(v) for v in values}
        if len(lengths) > 1:
            fail(func, "expand", False, "True unless every parameter has the same "
                 "number of values")
        combos = list(zip(*values))
    return [dict(zip(names, combo)) for combo in combos or [()]]


def redesign(design: Design, *, expand: bool = True, **parameters: Any) -> Design | list[Design]:
    """Rebuild a design with some parameters changed (R: ``redesign``).

    A design made by a designer (a function decorated with :func:`designer`, as every
    bundled example is, or a design from :func:`expand_design`) is made again by its
    designer with the arguments changed. A design built directly from steps has its
    steps' parameters changed by name (:func:`parameter_names` lists them: ``N`` of
    ``declare_model``, a model's or assignment's variables, an estimator's model
    arguments...). A list of values gives a list of designs (every combination, or
    paired with ``expand=False``); the new values are recorded in ``parameters``.

    Examples
    --------
    >>> import declaredesign as dd
    >>> def designer(n=10):
    ...     return dd.declare_model(N=n, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    >>> d = dd.expand_design(designer, n=10)[0]
    >>> dd.redesign(d, n=30).parameters
    {'n': 30}
    >>> [x.parameters for x in dd.redesign(dd.examples.two_arm(), N=[20, 40])]
    [{'N': 20}, {'N': 40}]
    >>> plain = dd.declare_model(N=10, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    >>> len(dd.draw_data(dd.redesign(plain, N=5), seed=1))
    5
    """
    design = _check_design("redesign", design)
    out = []
    for params in _grid("redesign", parameters, expand):
        if design.designer is None:
            out.append(set_step_parameters(design, params))
            continue
        args = {**design.designer_args, **design.parameters, **params}
        d = _check_design("redesign", design.designer(**args))
        out.append(d.with_steps(
            d.steps, _check=False, parameters={**design.parameters, **params},
            designer=design.designer, designer_args=args,
            citation=d.citation or design.citation,
            diagnosands=d.diagnosands if d.diagnosands is not None else design.diagnosands))
    return out[0] if len(out) == 1 else out


# ------------------------------------------------------------- editing steps
def insert_step(design: Design, new_step: Step, *, before: int | str | None = None,
                after: int | str | None = None) -> Design:
    """Return a new design with ``new_step`` inserted (R: ``insert_step``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> d = dd.declare_model(N=10, Y=dd.normal())
    >>> len(dd.insert_step(d, dd.declare_inquiry(m="mean(Y)"), after=1))
    2
    """
    design = _check_design("insert_step", design)
    if (before is None) == (after is None):
        fail("insert_step", "before", before, "given, or after given, but not both")
    pos = design.step_index(before) if before is not None else design.step_index(after) + 1
    steps = design.steps[:pos] + (new_step,) + design.steps[pos:]
    return design.with_steps(steps)


def replace_step(design: Design, step: int | str, new_step: Step) -> Design:
    """Return a new design with one step replaced (R: ``replace_step``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> d = dd.declare_model(N=10, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    >>> dd.replace_step(d, 2, dd.declare_inquiry(m="median(Y)"))[1]
    declare_inquiry(m='median(Y)')
    """
    design = _check_design("replace_step", design)
    i = design.step_index(step)
    steps = design.steps[:i] + (new_step,) + design.steps[i + 1:]
    return design.with_steps(steps)


def delete_step(design: Design, step: int | str) -> Design:
    """Return a new design without one step (R: ``delete_step``).

    Examples
    --------
    >>> import declaredesign as dd
    >>> d = dd.declare_model(N=10, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    >>> len(dd.delete_step(d, 2))
    1
    """
    design = _check_design("delete_step", design)
    i = design.step_index(step)
    steps = design.steps[:i] + design.steps[i + 1:]
    return design.with_steps(steps)
