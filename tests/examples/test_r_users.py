"""The R-users page accounts for every function the four R packages export.

``tests/fixtures/r_exports/exports.csv`` is written by ``make_fixtures.R`` beside it
from the installed DeclareDesign 1.0.10, fabricatr 1.0.2, randomizr 1.0.0 and estimatr
1.0.0; each export must have exactly one row in its package's table of
``docs/r-users.md``, with a status ``same``, ``differs: how`` or ``not planned: why``,
and a Python name that imports wherever one is given.
"""

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.examples.test_docs import resolve

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "r-users.md"
EXPORTS = ROOT / "tests" / "fixtures" / "r_exports" / "exports.csv"
PACKAGES = ("DeclareDesign", "fabricatr", "randomizr", "estimatr")
STATUS = re.compile(r"same|differs: \S.*|not planned: \S.*")


def exports():
    with EXPORTS.open() as f:
        return [(r["package"], r["function"]) for r in csv.DictReader(f)]


def page_rows():
    """(package, R name, Python cell, status cell) for each row of the four package tables."""
    rows, package = [], None
    for line in PAGE.read_text().splitlines():
        if line.startswith("## "):
            package = line[3:].strip()
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if package not in PACKAGES or not line.startswith("|") or len(cells) != 4:
            continue
        if cells[0] == "R" or set(cells[0]) <= set("-"):
            continue
        # An R cell is one backticked name, maybe with a qualifier: `tidy` (diagnosis).
        match = re.match(r"`([^`]+)`", cells[0])
        rows.append((package, match.group(1) if match else cells[0], cells[1], cells[2]))
    return rows


def test_fixture_has_the_122_exports():
    counts = Counter(package for package, _ in exports())
    assert counts == {"DeclareDesign": 53, "fabricatr": 24, "randomizr": 29, "estimatr": 16}


def test_every_export_is_listed_once_with_a_status():
    listed = Counter((package, name) for package, name, _, _ in page_rows())
    missing = [e for e in exports() if listed[e] == 0]
    twice = [e for e in exports() if listed[e] > 1]
    assert not missing, f"exports with no row on the R-users page: {missing}"
    assert not twice, f"exports listed more than once: {twice}"
    wanted = set(exports())
    for package, name, _, status in page_rows():
        if (package, name) in wanted:
            assert STATUS.fullmatch(status), (package, name, status)


@pytest.mark.parametrize("package, name, python, status",
                         [pytest.param(*r, id=f"{r[0]}::{r[1]}") for r in page_rows()
                          if (r[0], r[1]) in set(exports())])
def test_python_names_import(package, name, python, status):
    names = re.findall(r"`(dd\.[A-Za-z_][\w.]*)`", python)
    if status.startswith("not planned: "):
        assert python == "—", (name, python)
        return
    assert names, f"{package}::{name} is {status!r} but names no Python counterpart"
    for dotted in names:
        resolve(dotted)


def test_status_counts_match_the_page():
    """Each status is used; the counts are reported by the page's own rows."""
    statuses = Counter(s.split(":")[0] for p, n, _, s in page_rows() if (p, n) in set(exports()))
    assert sum(statuses.values()) == 122
    assert set(statuses) <= {"same", "differs", "not planned"}
