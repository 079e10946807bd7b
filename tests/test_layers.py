"""The package's layers, as ARCHITECTURE.md draws them: no module imports from a layer above.

Every ``import cartokit...`` and ``from cartokit... import`` in the package counts, at module level
or inside a function (a lazy import is still a dependency). A deprecation alias names its target
as a string and is not an import.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cartokit"

#: Layer number -> module prefixes; a module belongs to the longest prefix that names it.
LAYERS = {
    1: ("cartokit._validation", "cartokit._files", "cartokit._deprecation", "cartokit.plot._style"),
    2: (
        "cartokit.dynamics",
        "cartokit.store",
        "cartokit.streaming",
        "cartokit.merge",
        "cartokit.metrics",
        "cartokit.regions",
    ),
    3: (
        "cartokit.recorder",
        "cartokit.recorder_store",
        "cartokit.sequence",
        "cartokit.selection",
        "cartokit.s2l",
        "cartokit.noise",
        "cartokit.io",
        "cartokit.data",
        "cartokit.mislabel",
        "cartokit.plot",
        "cartokit.tracking",
    ),
    4: ("cartokit.models", "cartokit.train", "cartokit.compression"),
    5: ("cartokit.distillation", "cartokit.transfer", "cartokit.detection", "cartokit.review"),
    6: (
        "cartokit.study",
        "cartokit.widgets",
        "cartokit.integrations",
        "cartokit.cli",
        "cartokit.demo",
        "cartokit.pipeline",
    ),
}


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for number, prefixes in LAYERS.items():
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (number, len(prefix))
    return None if best is None else best[0]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST) -> list[tuple[str, int]]:
    """The cartokit modules a file imports: a from-import of a submodule counts as that module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("cartokit")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cartokit"):
            found.append((node.module, node.lineno))
            for alias in node.names:
                sub = Path(ROOT, *node.module.split("."), alias.name)
                if sub.with_suffix(".py").is_file() or sub.is_dir():
                    found.append((f"{node.module}.{alias.name}", node.lineno))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if module_name(p) != "cartokit")


def test_every_module_has_a_layer():
    assert [module_name(p) for p in MODULES if layer_of(module_name(p)) is None] == []


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_no_module_imports_from_a_layer_above(path):
    here = module_name(path)
    upward = [
        f"line {line}: {target} (layer {layer_of(target)})"
        for target, line in imported_modules(ast.parse(path.read_text(encoding="utf-8")))
        if (layer_of(target) or 0) > layer_of(here)
    ]
    assert upward == [], f"{here} (layer {layer_of(here)}) imports upward: {upward}"


def test_architecture_md_lists_the_same_layers():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for number, prefixes in LAYERS.items():
        row = re.search(rf"^\| {number} .*$", text, flags=re.M)
        assert row, f"ARCHITECTURE.md has no row for layer {number}"
        for prefix in prefixes:
            name = prefix.removeprefix("cartokit.").replace(".", "/")
            assert re.search(rf"`{re.escape(name)}(/|\.py)?`", row.group(0)), (
                f"ARCHITECTURE.md's layer {number} does not name {name}"
            )
