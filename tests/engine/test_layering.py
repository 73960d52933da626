"""The engine is below ``design``: it runs a protocol and never imports the layers above."""

from __future__ import annotations

import ast
from pathlib import Path

import declaredesign as dd
from declaredesign.engine.protocol import SimulationTarget

ENGINE = Path(dd.__file__).parent / "engine"
ABOVE = ("declaredesign.design", "declaredesign.plot", "declaredesign.cli",
         "declaredesign.examples")
OPTIONAL = {"cloudpickle", "distributed", "pyarrow", "pyarrow.parquet", "threadpoolctl",
            "tqdm.auto"}


def _imports(tree: ast.Module, module: str):
    """(imported module, at top level?) for every import statement in a module."""
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[:-node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield name, id(node) in top


def test_engine_never_imports_design_or_above_and_imports_at_top():
    for path in sorted(ENGINE.glob("*.py")):
        module = f"declaredesign.engine.{path.stem}"
        tree = ast.parse(path.read_text())
        for name, at_top in _imports(tree, module):
            assert not name.startswith(ABOVE), f"{path.name} imports {name}"
            if not at_top:
                assert name in OPTIONAL, f"{path.name} imports {name} inside a function"


def test_a_design_is_a_simulation_target():
    assert isinstance(dd.examples.two_arm(), SimulationTarget)
