"""The API's header names are spelled once, in :mod:`coordhub.headers`, for the hub, its clients and the CLI's fast
path.

A name spelled again elsewhere drifts on its own (the fast path once carried its own ``X-Coord-Heartbeat`` and
``coord-next-after-fence``): these tests walk the package's source for a string that is one of the names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import coordhub
from coordhub import headers

PACKAGE = Path(coordhub.__file__).parent
NAMES = {value.lower(): name for name, value in vars(headers).items() if name.endswith("_HEADER")}


def test_the_module_names_the_documented_headers() -> None:
    assert {"x-coord-session", "x-coord-heartbeat", "x-coord-queued-at", "idempotency-key",
            "coord-next-after-fence"} <= NAMES.keys()


def test_no_module_spells_a_header_name_again() -> None:
    again = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "headers.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            if isinstance(value, str) and value.lower() in NAMES:
                again.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {value!r} (coordhub.headers."
                             f"{NAMES[value.lower()]})")
    assert again == []


def test_the_module_imports_nothing() -> None:
    """The fast path and the hooks import it at start-up, and every layer does: it may depend on nothing."""
    tree = ast.parse((PACKAGE / "headers.py").read_text(encoding="utf-8"))
    assert [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)] == []
