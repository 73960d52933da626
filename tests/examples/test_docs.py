"""The docs stay true: their Python runs, their R mapping names real objects, their
pictures and pages exist."""

import importlib
import inspect
import re
from dataclasses import fields, is_dataclass
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
# The README's code is what a new user runs first: it must run too.
CODE_PAGES = {p.name: p for p in [*PAGES, ROOT / "README.md"]}


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("page", [n for n, p in CODE_PAGES.items()
                                  if python_blocks(p.read_text())])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page}"}
    for i, block in enumerate(python_blocks(CODE_PAGES[page].read_text())):
        try:
            exec(compile(block, f"{page} block {i + 1}", "exec"), namespace)
        except Exception as e:  # name the block that broke
            raise AssertionError(f"{page}, python block {i + 1} failed: {e!r}") from e
    plt.close("all")


def resolve(dotted):
    """``dd.a.b`` -> the object ``declaredesign.a.b`` (an attribute set in ``__init__``
    or a dataclass field counts for classes)."""
    parts = ["declaredesign", *dotted.split(".")[1:]]
    obj = importlib.import_module("declaredesign")
    for i, name in enumerate(parts[1:], 1):
        if hasattr(obj, name):
            obj = getattr(obj, name)
            continue
        try:
            obj = importlib.import_module(".".join(parts[:i + 1]))
            continue
        except ImportError:
            pass
        if inspect.isclass(obj):
            if is_dataclass(obj) and name in {f.name for f in fields(obj)}:
                return obj
            if name in inspect.signature(obj.__init__).parameters:
                return obj
        raise AttributeError(f"{dotted}: no {name!r} in {obj!r}")
    return obj


def r_rows():
    rows = []
    for line in (DOCS / "r-users.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        # R | Python | notes, or R | Python | status | notes (the four R packages).
        if len(cells) in (3, 4) and cells[0] not in ("R", "---") and not cells[0].startswith("-"):
            rows.append([cells[0], cells[1], " | ".join(cells[2:])])
    return rows


def test_r_users_page_names_exist_or_say_not_yet():
    rows = r_rows()
    assert len(rows) > 100
    issues = {2, 3, 4, 5, 6}
    for r_name, ours, rest in rows:
        if ours.startswith("not yet"):
            m = re.fullmatch(r"not yet \(issue (\d+)\)", ours)
            assert m and int(m.group(1)) in issues, (r_name, ours)
            continue
        if ours == "—":  # no counterpart, and the status says why
            assert rest.startswith("not planned: "), (r_name, rest)
            continue
        names = re.findall(r"`(dd\.[A-Za-z_][\w.]*)`", ours)
        assert names, (r_name, ours)
        for name in names:
            resolve(name)


def test_r_users_page_covers_the_r_packages():
    listed = " ".join(r for r, _, _ in r_rows())
    for r_name in ("declare_model", "diagnose_design", "expand_design", "redesign",
                   "fabricate", "draw_normal_icc", "block_and_cluster_ra", "strata_rs",
                   "lm_robust", "difference_in_means", "iv_robust", "horvitz_thompson",
                   "glmer", "ranova", "compare_designs", "get_simulations"):
        assert f"`{r_name}`" in listed or r_name in listed, r_name


def test_site_config_pages_and_images_exist():
    config = (ROOT / "mkdocs.yml").read_text()
    for page in re.findall(r":\s*([\w-]+\.md)", config):
        assert (DOCS / page).is_file(), page
    for page in PAGES:
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            path = DOCS / image
            assert path.is_file(), image
            assert path.stat().st_size < 120_000, f"{image} is too big for the repository"
