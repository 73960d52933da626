"""Read the datasets that the R fixture scripts write next to their fits.

``make_fixtures.R`` (tests/fixtures/lme4_datasets, tests/fixtures/lmer_weights_anova)
records, per dataset, its CSV file, each column's R class and each factor's level
order; shared by the lmer/glmer R-reference tests and the benchmarks that refit them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: R column classes that pandas reads as numbers; every other class is read as text.
NUMERIC_CLASSES = ("numeric", "integer")


def read_dataset(directory: Path, meta: dict, name: str) -> pd.DataFrame:
    """Dataset ``name`` of a fixture's JSON ``meta``, factors in R's level order.

    Parameters
    ----------
    directory : Path
        The fixture folder holding the CSV files.
    meta : dict
        The fixture JSON; ``meta["datasets"][name]`` gives ``file``, ``columns``
        (column -> R class) and ``levels`` (factor column -> level order).
    name : str
        The dataset.

    Returns
    -------
    pandas.DataFrame
        Numeric columns as numbers, the others as text, and the columns with
        recorded levels as ``Categorical`` with R's level order.
    """
    info = meta["datasets"][name]
    text = {c: str for c, k in info["columns"].items() if k not in NUMERIC_CLASSES}
    d = pd.read_csv(directory / info["file"], dtype=text)
    for c, levels in info.get("levels", {}).items():
        d[c] = pd.Categorical(d[c], categories=levels)
    return d
