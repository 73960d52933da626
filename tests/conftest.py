"""Shared test fixtures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings

# CI runs the same examples every time (a red CI must mean a regression, not a new
# random draw); local runs keep exploring and remember what they find.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = FIXTURES / "reference"


@pytest.fixture(scope="session")
def seed_data() -> pd.DataFrame:
    """The forum design's dataset drawn in R (IDs kept as zero-padded strings)."""
    return pd.read_csv(REFERENCE / "seed_design_data.csv",
                       dtype={"school": str, "class": str, "student": str, "test": str})


@pytest.fixture(scope="session")
def seed_fits() -> dict:
    """R's fits on :func:`seed_data` (estimatr, lme4, lmerTest, broom.mixed)."""
    return json.loads((REFERENCE / "seed_design_fits.json").read_text())["fits"]
