"""The fake ``gh``'s fixture store, for tests: a state directory, a launcher on ``PATH``, and the store helpers.

``tests/fakes/gh`` is an executable script; this loads it as a module so tests set up repositories and issues
with the same code the fake reads them with (its docstring names the format sources).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

FAKE_GH = Path(__file__).resolve().parent / "gh"


def module() -> ModuleType:
    """The fake ``gh`` loaded as a module (once per process)."""
    if "fake_gh" in sys.modules:
        return sys.modules["fake_gh"]
    loader = importlib.machinery.SourceFileLoader("fake_gh", str(FAKE_GH))
    spec = importlib.util.spec_from_loader("fake_gh", loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    sys.modules["fake_gh"] = mod
    return mod


class FakeGitHub:
    """A fixture store in ``root`` and a ``bin`` directory holding a ``gh`` launcher (this interpreter)."""

    def __init__(self, root: Path) -> None:
        self.root = root / "gh-state"
        self.bin = root / "gh-bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        launcher = self.bin / "gh"
        launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(FAKE_GH))} \"$@\"\n")
        launcher.chmod(0o755)
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to find this store (``PATH`` is the caller's to prepend :attr:`bin` to)."""
        return {"FAKE_GH_STATE": str(self.root)}

    def setup_repo(self, name: str, path: Path, **kw: Any) -> None:
        module().setup_repo(self.root, name, path, **kw)

    def add_issue(self, repo: str, title: str, body: str = "", labels: list[str] | None = None,
                  number: int | None = None) -> int:
        return int(module().add_issue(self.root, repo, title, body, labels, number))

    def state(self) -> dict[str, Any]:
        return dict(module().load(self.root))

    def set_auth(self, ok: bool) -> None:
        with module().store(self.root) as s:
            s["auth"] = ok

    def calls(self) -> list[list[str]]:
        path = self.root / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line)["argv"] for line in path.read_text().splitlines()]

    def item(self, repo: str, number: int) -> dict[str, Any]:
        return dict(self.state()["repos"][repo]["items"][str(number)])
