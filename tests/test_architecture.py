"""The package's import graph: no cycles, layers one way, no imports inside functions.

Read from the source with :mod:`ast` (nothing is imported), so a failure names the
offending edge as ``importer -> imported (file:line)``.

Layers, lowest first (a module may import its own layer and lower ones only)::

    errors, _validation < groups, batch < expressions < formula < fabricate, assign
    < estimate < engine < design < plot, cli, examples < the root package

One upward import is allowed, inside functions only: a design-layer result's
``plot*()`` method importing :mod:`declaredesign.plot` on first use.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "declaredesign"
PACKAGE = "declaredesign"

#: Layer of each top-level name under ``declaredesign`` (higher imports lower).
LAYERS: dict[str, int] = {
    "errors": 0, "_validation": 0, "_version": 0,
    "groups": 1, "batch": 1,
    "expressions": 2,
    "formula": 3,
    "fabricate": 4, "assign": 4,
    "estimate": 5,
    "engine": 6,
    "design": 7,
    "plot": 8, "cli": 8, "examples": 8,
    "__init__": 9, "__main__": 9,
}

#: Optional third-party dependencies: the only imports allowed inside functions.
OPTIONAL = {"matplotlib", "dask", "distributed", "tqdm", "pyarrow", "statsmodels",
            "cloudpickle", "threadpoolctl"}

#: The documented upward hook: (importer, imported package), inside functions only.
PLOT_HOOK = {("declaredesign.design.diagnosis", "declaredesign.plot"),
             ("declaredesign.design.search", "declaredesign.plot")}



@dataclass(frozen=True)
class Edge:
    """One import statement from a project module to a project module (or any module)."""

    importer: str
    imported: str
    path: str
    line: int
    function: str | None      # enclosing function, None at module level
    type_checking: bool       # under ``if TYPE_CHECKING:`` (no run-time import)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(importer: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


class _Collector(ast.NodeVisitor):
    def __init__(self, name: str, path: Path, modules: dict[str, Path]):
        self.name, self.path, self.modules = name, path, modules
        self.is_pkg = _is_package(path)
        self.scopes: list[str] = []    # enclosing classes and functions
        self.depth = 0                 # how many of them are functions
        self.type_checking = 0
        self.edges: list[Edge] = []

    def _add(self, target: str, line: int) -> None:
        self.edges.append(Edge(self.name, target, str(self.path.relative_to(ROOT.parent)),
                               line, ".".join(self.scopes) if self.depth else None,
                               self.type_checking > 0))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.scopes.append(node.name)
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scopes.append(node.name)
        self.generic_visit(node)
        self.scopes.pop()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        guarded = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
            (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
        if guarded:
            self.type_checking += 1
            for n in node.body:
                self.visit(n)
            self.type_checking -= 1
            for n in node.orelse:
                self.visit(n)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve(self.name, self.is_pkg, node)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in self.modules else base, node.lineno)


def _edges() -> list[Edge]:
    modules = _modules()
    out: list[Edge] = []
    for name, path in modules.items():
        c = _Collector(name, path, modules)
        c.visit(ast.parse(path.read_text(), filename=str(path)))
        out.extend(c.edges)
    return out


def _project(target: str) -> bool:
    return target == PACKAGE or target.startswith(PACKAGE + ".")


def _layer(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    if key not in LAYERS:
        raise AssertionError(f"module {module} has no layer: add {key!r} to LAYERS in "
                             f"tests/test_architecture.py")
    return LAYERS[key]


def _cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """One concrete cycle per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return [(c, _one_cycle(graph, set(c))) for c in comps]


def _one_cycle(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    start = min(comp)
    # breadth-first back to start inside the component: a shortest cycle through it
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ()) & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start, start]


def _violations() -> list[tuple[str, str]]:
    """Every violation as (text, detail)."""
    found: dict[str, str] = {}
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for e in _edges():
        if e.type_checking:
            continue
        top = e.imported.split(".")[0]
        hook = e.function is not None and (e.importer, e.imported) in PLOT_HOOK
        if e.function is not None and top not in OPTIONAL and not hook:
            found.setdefault(
                f"import inside function: {e.importer}.{e.function} -> {e.imported}", e.where)
        if not _project(e.imported) or e.imported == e.importer or hook:
            continue
        if _layer(e.imported) > _layer(e.importer):
            found.setdefault(f"layer: {e.importer} -> {e.imported}", e.where)
        # Cycles are searched over every run-time import, module level or not: an
        # import moved into a function hides a cycle from Python, not from this test.
        graph.setdefault(e.importer, set()).add(e.imported)
        where.setdefault((e.importer, e.imported), e.where)
    for comp, cyc in _cycles(graph):
        path = "\n      ".join(f"{a} -> {b}  ({where[a, b]})" for a, b in zip(cyc, cyc[1:]))
        found[f"cycle: {', '.join(comp)}"] = "for example\n      " + path
    return sorted(found.items())


def _report(items: list[tuple[str, str]]) -> str:
    return "\n".join(f"  {text}\n      {detail}" for text, detail in items)


def test_every_module_has_a_layer() -> None:
    for name in _modules():
        _layer(name)


@pytest.mark.parametrize("kind", ["cycle", "layer", "import inside function"])
def test_import_graph(kind: str) -> None:
    bad = [(t, e) for t, e in _violations() if t.startswith(kind + ":")]
    assert not bad, f"{len(bad)} {kind} violation(s):\n{_report(bad)}"


def test_checker_finds_what_it_should(tmp_path: Path) -> None:
    """The collector sees function-level, relative and package imports."""
    src = ("from __future__ import annotations\n"
           "from typing import TYPE_CHECKING\n"
           "from ..batch import Batch\n"
           "from . import steps\n"
           "if TYPE_CHECKING:\n    from ..plot import x\n"
           "def f():\n    import matplotlib\n    from ..engine import runner\n")
    modules = {"declaredesign.design.design": ROOT / "design" / "design.py",
               "declaredesign.design.steps": ROOT / "design" / "steps.py",
               "declaredesign.engine.runner": ROOT / "engine" / "runner.py"}
    c = _Collector("declaredesign.design.design", ROOT / "design" / "design.py", modules)
    c.visit(ast.parse(src))
    got = {(e.imported, e.function, e.type_checking) for e in c.edges}
    assert ("declaredesign.batch", None, False) in got
    assert ("declaredesign.design.steps", None, False) in got
    assert ("declaredesign.plot", None, True) in got
    assert ("matplotlib", "f", False) in got
    assert ("declaredesign.engine.runner", "f", False) in got
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == \
        [(["a", "b", "c"], ["a", "b", "c", "a"])]
