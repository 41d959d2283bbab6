"""The layers of the package (docs/architecture.md), checked on the source with ``ast``.

Every ``import`` counts, at module level or inside a function. (a) The pure computation,
``invarbench/attacks/`` and ``invarbench/metrics/``, imports nothing of invarbench but itself,
the other one and ``invarbench.errors``. (b) No two top-level parts of ``invarbench/`` (its
subpackages and its top-level modules) import each other.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import invarbench

ROOT = Path(invarbench.__file__).resolve().parent

PURE = ("attacks", "metrics")
PURE_MAY_IMPORT = frozenset({"attacks", "metrics", "errors"})


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
