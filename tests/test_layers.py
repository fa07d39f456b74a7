"""The code's layers (DESIGN §3): front ends → client or core → store; the core never imports a front end and
the store never imports the core. Read from each module's import statements (top level or inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import coordhub

ROOT = Path(coordhub.__file__).parent
FRONT_ENDS = ("api", "cli", "mcp", "hooks", "guard", "web", "compat", "orchestrator", "client", "bench", "importers")
# what each inner package may not import: the store is below the core
FORBIDDEN = {"core": FRONT_ENDS, "store": (*FRONT_ENDS, "core")}


def imported(path: Path) -> set[str]:
    """Every ``coordhub.*`` module ``path`` imports, anywhere in it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.startswith("coordhub.")}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_inner_layers_never_import_outer_ones(layer: str) -> None:
    wrong = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for name in sorted(imported(path)):
            if name.split(".")[1] in FORBIDDEN[layer]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)
