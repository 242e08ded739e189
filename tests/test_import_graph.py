"""The layout rules of docs/development.md ("Layout"), read from the source: no import cycle, wings apart, nothing imports the front door.

Imports are parsed with :mod:`ast` (nothing is executed). Module-level imports and imports inside
functions are both edges: a function-level import defers the cost, it does not undo the dependency.
``if TYPE_CHECKING:`` imports are not edges (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import storylab

ROOT = Path(storylab.__file__).resolve().parent
WINGS = ("images", "camera", "humor", "videoqa")
FOUNDATION = ("diffusion", "guidance", "metrics", "training")
FRONT_DOOR = ("storylab.cli", "storylab.demo", "storylab.app")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """storylab modules that ``path`` imports (``from a import b`` counts ``a.b`` when that is a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    # keep storylab modules only; an import of a.b.c also runs a and a.b (package __init__s)
    edges = set()
    for target in found:
        if target in modules:
            edges.add(target)
    return {t for t in edges if t != name}


def import_graph() -> dict[str, set[str]]:
    files = [p for p in ROOT.rglob("*.py") if "assets" not in p.parts]
    modules = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, modules) for p in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None (iterative depth-first search)."""
    state: dict[str, int] = {}
    for start in sorted(graph):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            for child in children:
                if state.get(child) == 1:
                    return path[path.index(child):] + [child]
                if not state.get(child) and child in graph:
                    state[child] = 1
                    path.append(child)
                    stack.append((child, iter(sorted(graph[child]))))
                    break
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return None


def area(module: str) -> str:
    parts = module.split(".")
    if any(module == f or module.startswith(f + ".") for f in FRONT_DOOR):
        return "front door"
    if len(parts) > 2 or (len(parts) == 2 and (ROOT / parts[1]).is_dir()):
        return parts[1]
    return "shared"


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_storylab_has_no_import_cycle():
    graph = import_graph()
    assert "storylab.images.zoo.common" in graph and "storylab.demo" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_wing_imports_another_wing_or_the_front_door():
    bad = []
    for module, targets in import_graph().items():
        here = area(module)
        for target in targets:
            there = area(target)
            if there == "front door" and here != "front door":
                bad.append(f"{module} -> {target} (nothing imports the front door)")
            elif here in WINGS and there in WINGS and there != here:
                bad.append(f"{module} -> {target} (wings never import each other)")
            elif here in FOUNDATION and there in WINGS:
                bad.append(f"{module} -> {target} (the foundation imports no wing)")
    assert not bad, "\n".join(sorted(bad))
