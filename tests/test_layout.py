"""The package layout: no import cycles, no cross-module private imports, layers respected.

Imports are read with ``ast`` from every module of ``evo``, ``graphs`` and ``envs``,
including imports inside functions (a cycle hidden behind a function-local import is
still a cycle); only ``if TYPE_CHECKING:`` blocks are skipped, as they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("evo", "graphs", "envs")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node outside ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _scan() -> tuple[nx.DiGraph, list[str]]:
    modules = _modules()
    graph, private = nx.DiGraph(), []
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [(base, a.name) for a in node.names]
            for module, attr in targets:
                if attr is not None and f"{module}.{attr}" in modules:
                    module, attr = f"{module}.{attr}", None  # a submodule
                if module not in modules:
                    continue
                if module != name:
                    graph.add_edge(name, module)
                if attr and attr.startswith("_") and not attr.startswith("__"):
                    private.append(f"{name} imports {module}.{attr}")
    return graph, private


GRAPH, PRIVATE = _scan()


def test_there_are_no_import_cycles() -> None:
    cycles = list(nx.simple_cycles(GRAPH))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c + c[:1]) for c in cycles)


def test_no_module_imports_another_modules_private_names() -> None:
    assert not PRIVATE, "\n".join(PRIVATE)


def test_tests_import_no_private_names() -> None:
    modules = _modules()
    bad = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                bad += [f"{path.relative_to(ROOT)} imports {node.module}.{a.name}"
                        for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "\n".join(bad)


def _edges_from(prefix: str) -> list[tuple[str, str]]:
    return [(a, b) for a, b in GRAPH.edges if a == prefix or a.startswith(prefix + ".")]


def test_graphs_core_imports_no_language() -> None:
    bad = [(a, b) for a, b in _edges_from("graphs.core")
           if b.startswith(("graphs.rl_loss", "graphs.arch")) or b == "graphs"]
    assert not bad, bad


def test_lower_layers_do_not_import_evo() -> None:
    bad = [(a, b) for pkg in ("graphs", "envs") for a, b in _edges_from(pkg)
           if b.split(".")[0] == "evo"]
    assert not bad, bad


def test_the_search_engine_does_not_import_a_problem_or_the_app() -> None:
    engine = _edges_from("evo.search") + _edges_from("evo.algorithms") + _edges_from("evo.workers")
    bad = [(a, b) for a, b in engine if b.startswith(("evo.rl", "evo.nas", "evo.app"))]
    assert not bad, bad


def test_the_scan_sees_the_packages() -> None:
    """A guard for the checks above: they would pass vacuously on an empty graph."""
    assert {"evo.search.loop", "graphs.core.program", "envs.registry"} <= set(GRAPH)
    assert GRAPH.has_edge("evo.search.loop", "evo.search.store")
