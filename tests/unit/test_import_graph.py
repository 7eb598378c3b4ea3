"""Dependencies inside ``mesh_server`` point one way: its module graph has no cycle.

Every module is parsed with :mod:`ast`; every import counts, wherever it stands: module level,
under ``if TYPE_CHECKING:`` and inside functions (a lazy import is still a dependency). An edge
goes to the deepest ``mesh_server`` module an import names; a package's ``__init__`` is not implied
by importing one of its submodules (``mesh_server/__init__.py`` only re-exports, lazily).
"""

from __future__ import annotations

import ast
from pathlib import Path

import mesh_server

ROOT = Path(mesh_server.__file__).parent


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ["mesh_server", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imported(name: str, path: Path) -> list[str]:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            targets.append(module)
            targets.extend(f"{module}.{alias.name}" for alias in node.names)
    return targets


def import_graph() -> dict[str, set[str]]:
    """Return module → the ``mesh_server`` modules it imports."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for target in _imported(name, path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_type_checking_and_lazy_imports() -> None:
    graph = import_graph()
    # Under TYPE_CHECKING only (mesh_server/context.py).
    assert "mesh_server.api" in graph["mesh_server.context"]
    # Inside a function (picows is an optional dependency).
    assert "mesh_server.transport.picows" in graph["mesh_server._core.lifecycle"]


def test_cycle_finder_reports_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_mesh_server_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_facade_is_above_the_core() -> None:
    graph = import_graph()
    private = {name for name in graph if name.startswith("mesh_server._core")}
    # Only the façade (and the core itself) reach into the private core.
    users = {name for name, edges in graph.items() if edges & private} - private
    assert users == {"mesh_server.server"}
