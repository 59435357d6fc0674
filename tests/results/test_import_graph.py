"""The modules of lastexp.results import each other without a cycle (lazy imports included):
each can be read, and tested, after the ones it builds on."""

from __future__ import annotations

import ast
from pathlib import Path

import lastexp.results

PACKAGE = "lastexp.results"
FOLDER = Path(lastexp.results.__file__).resolve().parent


def module_names() -> set[str]:
    return {p.stem for p in FOLDER.glob("*.py")}


def imported_modules(source: str, modules: set[str]) -> set[str]:
    """The modules of the package that ``source`` imports, anywhere in it (a function's lazy
    import too); ``from lastexp.results import name`` of a non-module counts as ``__init__``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == PACKAGE:
                found |= {a.name if a.name in modules else "__init__" for a in node.names}
                continue
            names = [node.module]
        else:
            continue
        for name in names:
            if name.startswith(PACKAGE + "."):
                found.add(name[len(PACKAGE) + 1:].split(".")[0])
    return found & modules


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {m: imported_modules((FOLDER / f"{m}.py").read_text(encoding="utf-8"), modules)
            for m in sorted(modules)}  # fmt: skip


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None when it is a DAG."""
    state: dict[str, str] = {}  # node -> "open" while on the DFS path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_sees_a_lazy_import_cycle():
    # The shape this package had: tables imported plots inside a function, plots imported tables.
    tables = "def build():\n    from lastexp.results import plots\n"
    plots = "from lastexp.results.tables import Runs\n"
    modules = {"tables", "plots"}
    graph = {"tables": imported_modules(tables, modules), "plots": imported_modules(plots, modules)}
    assert graph == {"tables": {"plots"}, "plots": {"tables"}}
    assert find_cycle(graph) == ["plots", "tables", "plots"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_results_modules_form_a_dag():
    graph = import_graph()
    assert {"aggregate", "render", "report", "plots"} <= set(graph)
    assert graph["report"] >= {"plots", "aggregate"}  # the parser sees the package's imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in lastexp.results: " + " -> ".join(cycle)
