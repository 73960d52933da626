"""Provenance of a diagnosis: the design as code, the seed, the sizes, versions and date.

A diagnosis that stands in a pre-analysis plan must say exactly what produced it:
:func:`provenance` records the seed that reproduces the run (for ``seed=None`` the
entropy that was drawn), the number of simulations, each design as the code that
rebuilds it (:func:`design_code`), the versions of declaredesign, numpy, scipy and
pandas, and the date.
"""

from __future__ import annotations

import datetime
import platform
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy

from .._validation import fail
from .._version import __version__
from .design import Design

__all__ = ["CODE_HEADER", "design_code", "package_versions", "provenance"]

#: Imports that put every name a step's repr uses in scope.
CODE_HEADER = "from declaredesign import *\nfrom declaredesign.fabricate import *\n"


def design_code(design: Design, *, name: str = "design") -> str:
    """Return the Python code that rebuilds ``design`` (see :func:`print_code`).

    Examples
    --------
    >>> import declaredesign as dd
    >>> d = dd.declare_model(N=10, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    >>> print(dd.design_code(d))
    from declaredesign import *
    from declaredesign.fabricate import *
    <BLANKLINE>
    design = (
        declare_model(N=10, Y=normal(mean=0.0, sd=1.0))
        + declare_inquiry(m='mean(Y)')
    )
    """
    if not isinstance(design, Design):
        fail("design_code", "design", type(design).__name__, "a Design",
             shown=type(design).__name__)
    if not name.isidentifier():
        fail("design_code", "name", name, "a Python identifier")
    lines = [CODE_HEADER]
    if design.designer is not None:
        args = {**design.designer_args, **design.parameters}
        call = ", ".join(f"{k}={v!r}" for k, v in args.items())
        lines.append(f"# made by {getattr(design.designer, '__qualname__', 'a designer')}"
                     f"({call})")
    if len(design.steps) == 1:
        # One step in parentheses would be a step, not a design.
        lines += [f"{name} = Design((", f"    {design.steps[0]!r},", "))"]
        return "\n".join(lines)
    lines.append(f"{name} = (")
    for i, step in enumerate(design.steps):
        lines.append(f"    {'+ ' if i else ''}{step!r}")
    lines.append(")")
    return "\n".join(lines)


def package_versions() -> dict[str, str]:
    """Return the versions of declaredesign, numpy, scipy, pandas and Python."""
    return {"declaredesign": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "pandas": pd.__version__, "python": platform.python_version()}


def seed_record(root: np.random.SeedSequence) -> Any:
    """Return the seed that reproduces a run from its root SeedSequence (int if possible)."""
    if not root.spawn_key and isinstance(root.entropy, int):
        return root.entropy
    return {"entropy": root.entropy, "spawn_key": list(root.spawn_key)}


def provenance(*, seed: Any, sims: Any, designs: Sequence[tuple[str, Design]] = (),
               bootstrap_sims: int | None = None) -> dict[str, Any]:
    """Return the record of what produced a run.

    Parameters
    ----------
    seed : int, SeedSequence or dict
        The seed that reproduces the run (a SeedSequence is recorded by its entropy).
    sims : int or None
        Simulations of each design.
    designs : sequence of (name, Design)
        The designs run; each is recorded as the code that rebuilds it.
    bootstrap_sims : int, optional

    Returns
    -------
    dict
        ``seed``, ``sims``, ``bootstrap_sims``, ``designs`` (name -> code),
        ``versions`` (package -> version) and ``date`` (UTC, ISO 8601).
    """
    if isinstance(seed, np.random.SeedSequence):
        seed = seed_record(seed)
    return {"seed": seed, "sims": sims, "bootstrap_sims": bootstrap_sims,
            "designs": {name: design_code(d) for name, d in designs},
            "versions": package_versions(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
