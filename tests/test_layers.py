"""The layers of the package (docs/architecture.md), checked on the source with ``ast``.

Every ``import`` counts, at module level, inside a function or under ``TYPE_CHECKING``. (a) The pure
computation, ``invarbench/attacks/`` and ``invarbench/metrics/``, imports nothing of invarbench but itself,
the other one and ``invarbench.errors``. (b) No two top-level parts of ``invarbench/`` (its
subpackages and its top-level modules) import each other. (c) No module imports itself through
others: the imports between modules form no cycle (an import inside a function only hides one).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import invarbench

ROOT = Path(invarbench.__file__).resolve().parent

PURE = ("attacks", "metrics")
PURE_MAY_IMPORT = frozenset({"attacks", "metrics", "errors"})

# Imports that still close a cycle, each with its reason; take one out once its import is gone, and add
# none. The package's ``__getattr__`` loads the API on first use (PEP 562), not when a module imports the
# package for ``__version__``. The site's board, model and compare pages still reach back into
# ``site/build.py`` for its page paths and data types: what they share belongs in a module below all three.
CYCLE_EXCEPTIONS = frozenset(
    {
        ("invarbench", "invarbench.api"),
        ("invarbench.site.boards", "invarbench.site.build"),
        ("invarbench.site.compare", "invarbench.site.build"),
    }
)


def _module_name(path: Path) -> str:
    parts = ("invarbench", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement reaches (``from a import b`` reaches ``a.b``: b may be a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        origin = ".".join([*base, node.module] if node.module else base)
    else:
        origin = node.module or ""
    return [f"{origin}.{alias.name}" if alias.name != "*" else origin for alias in node.names]


def _part(name: str) -> str | None:
    """The top-level part of invarbench that ``name`` lies in (``invarbench.models.hub`` -> ``models``);
    None outside invarbench and for the package itself (``from invarbench import __version__``)."""
    parts = name.split(".")
    if parts[0] != "invarbench" or len(parts) < 2:
        return None
    top = ROOT / parts[1]
    return parts[1] if (top / "__init__.py").is_file() or top.with_suffix(".py").is_file() else None


def _names_in(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every import in ``tree``, at any depth (functions included)."""
    return [
        (node.lineno, name)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in _imported(node, module, is_package)
    ]


def _imports() -> list[tuple[str, str, str]]:
    """``(importing part, imported part, "file:line imports name")`` for every import between two parts."""
    edges = []
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        source = _part(module)
        if source is None:  # invarbench/__init__.py
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _names_in(tree, module, path.name == "__init__.py"):
            target = _part(name)
            if target is not None and target != source:
                edges.append((source, target, f"{path.relative_to(ROOT.parent)}:{line} imports {name}"))
    return edges


def _module_of(name: str, modules: set[str]) -> str | None:
    """The module of invarbench that the dotted ``name`` lies in: its longest prefix that is a module
    (``invarbench.store.Store`` -> ``invarbench.store``, the package's ``__init__.py``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def _module_graph() -> dict[str, dict[str, str]]:
    """``{module: {imported module: "file:line imports name"}}`` over every import between two modules."""
    paths = {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}
    graph: dict[str, dict[str, str]] = {module: {} for module in paths}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _names_in(tree, module, path.name == "__init__.py"):
            target = _module_of(name, set(paths))
            if target is not None and target != module:
                graph[module].setdefault(target, f"{path.relative_to(ROOT.parent)}:{line} imports {name}")
    return graph


def _cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` through each group of modules that reach each other (Tarjan's strongly
    connected components, then the shortest way back to the group's first module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for group in groups:
        start, members = group[0], set(group)
        way = {start: [start]}
        queue = [start]
        while queue:
            v = queue.pop(0)
            for w in sorted(graph[v]):
                if w == start:
                    cycles.append([*way[v], start])
                    queue = []
                    break
                if w in members and w not in way:
                    way[w] = [*way[v], w]
                    queue.append(w)
    return cycles


def test_the_walk_sees_every_import():
    parts = {_part(_module_name(path)) for path in ROOT.rglob("*.py")}
    assert {"attacks", "metrics", "models", "cards", "evaluation", "cli"} <= parts
    tree = ast.parse(
        "import invarbench.store\n"
        "def f():\n"
        "    from invarbench.models import hub\n"
        "    if True:\n"
        "        from . import pgd\n"
        "        from ..metrics.stats import median\n"
    )
    assert sorted(_names_in(tree, "invarbench.attacks.checks", False)) == [
        (1, "invarbench.store"),
        (3, "invarbench.models.hub"),
        (5, "invarbench.attacks.pgd"),
        (6, "invarbench.metrics.stats.median"),
    ]
    assert _names_in(ast.parse("from . import pgd"), "invarbench.attacks", True) == [(1, "invarbench.attacks.pgd")]


def test_pure_computation_imports_only_itself_and_errors():
    offenders = [where for source, target, where in _imports() if source in PURE and target not in PURE_MAY_IMPORT]
    assert not offenders, (
        "attacks/ and metrics/ are pure computation: they may import only each other and invarbench.errors. "
        "Move what they need down into them instead:\n  " + "\n  ".join(offenders)
    )


def test_no_two_parts_import_each_other():
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, target, where in _imports():
        seen[(source, target)].append(where)
    offenders = []
    for (a, b), places in sorted(seen.items()):
        if a < b and (b, a) in seen:
            offenders.append(f"{a} <-> {b}:\n    " + "\n    ".join([*places, *seen[(b, a)]]))
    assert not offenders, (
        "these parts of invarbench import each other; keep one direction and move the rest into a module "
        "above both (see docs/architecture.md):\n  " + "\n  ".join(offenders)
    )


def test_the_cycle_finder_finds_a_cycle_through_a_function_import():
    graph = {"a": {"b": ""}, "b": {"c": ""}, "c": {"a": ""}, "d": {"a": ""}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b": ""}, "b": {}}) == []
    modules = {"invarbench", "invarbench.store", "invarbench.store.db"}
    assert _module_of("invarbench.store.db.Store", modules) == "invarbench.store.db"
    assert _module_of("invarbench.store.Store", modules) == "invarbench.store"
    assert _module_of("torch.nn", modules) is None


def test_no_module_imports_itself_through_others():
    graph = _module_graph()
    gone = sorted(edge for edge in CYCLE_EXCEPTIONS if edge[1] not in graph.get(edge[0], {}))
    assert not gone, f"these imports are gone: take them out of CYCLE_EXCEPTIONS in tests/test_layers.py: {gone}"
    for source, target in CYCLE_EXCEPTIONS:
        del graph[source][target]
    cycles = _cycles(graph)
    assert not cycles, (
        "these modules import each other, if only inside a function: move what both need into a module "
        "below them (or pass it as an argument):\n  "
        + "\n  ".join(
            " -> ".join(cycle) + "\n    " + "\n    ".join(graph[a][b] for a, b in zip(cycle, cycle[1:]))
            for cycle in cycles
        )
    )
