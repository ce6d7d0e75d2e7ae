"""No import cycles among the packages retrieval/, index/ and cli/.

Every import is counted, at module level and inside functions (a lazy import still ties two modules
together), and `from pkg import name` points at the submodule `pkg.name` when there is one.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("retrieval", "index", "cli")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the packages that the module `name` imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a name inside a.b -> a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> dict[tuple[str, ...], tuple[str, ...]]:
    """Each strongly connected group of more than one module (Tarjan), sorted, with its shortest cycle
    through the group's first module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return {tuple(sorted(c)): _shortest_cycle(graph, c) for c in components}


def _shortest_cycle(graph: dict[str, set[str]], component: set[str]) -> tuple[str, ...]:
    """The shortest cycle through the component's smallest module name, found breadth-first."""
    start = min(component)
    paths = {start: (start,)}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    return paths[node]
                if nxt not in paths:
                    paths[nxt] = paths[node] + (nxt,)
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a strongly connected component always has one


def _shown(group: tuple[str, ...], cycle: tuple[str, ...]) -> str:
    others = sorted(set(group) - set(cycle))
    return " -> ".join(cycle + cycle[:1]) + (f"  (with {', '.join(others)})" if others else "")


def test_the_graph_sees_lazy_and_submodule_imports():
    graph = import_graph()
    assert "retrieval.dedupe.run" in graph["cli.dedupe"]  # imported inside the command
    assert {"cli.render", "cli.errors"} <= graph["cli.cluster"]  # `from cli import render`: the submodule
    assert "index.errors" in graph["cli.errors"]


def test_no_import_cycles():
    found = sorted(_shown(group, cycle) for group, cycle in cycles(import_graph()).items())
    assert not found, "import cycles:\n" + "\n".join(found)


def test_cycles_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c", "x"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "x": {"a"}}
    assert cycles(graph) == {("a", "b", "c", "x"): ("a", "b", "c")}
