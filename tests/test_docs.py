"""Docs that cannot drift: every setting, CLI command and endpoint is documented."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from coordhub.api.app import create_app
from coordhub.cli.main import app as cli_app
from coordhub.config import settings_table
from coordhub.core.hub import Hub
from coordhub.hooks.settings import settings_table as hook_settings_table
from coordhub.store.sqlite import SQLiteStore

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_settings_table_is_current() -> None:
    assert settings_table() in (DOCS / "configuration.md").read_text(), \
        "regenerate the table in docs/configuration.md from coordhub.config.settings_table()"


def test_hook_settings_table_is_current() -> None:
    assert hook_settings_table() in (DOCS / "hooks.md").read_text()


def _commands(group: object, prefix: str = "coord") -> list[str]:
    out = []
    for name, cmd in getattr(group, "commands", {}).items():
        full = f"{prefix} {name}"
        out.extend(_commands(cmd, full) if hasattr(cmd, "commands") else [full])
    return out


def test_every_cli_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    commands = _commands(typer.main.get_command(cli_app))
    assert len(commands) > 20
    missing = [c for c in commands if f"`{c}" not in text]
    assert not missing, f"undocumented commands in docs/cli.md: {missing}"


def test_every_endpoint_is_documented(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    spec = create_app(Hub(store)).openapi()
    text = (DOCS / "api.md").read_text()
    documented = set(re.findall(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)`", text, flags=re.M))
    routes = {(m.upper(), p.replace("{name:path}", "{name}")) for p, ops in spec["paths"].items() for m in ops}
    assert routes - documented == set(), f"undocumented endpoints: {sorted(routes - documented)}"
    assert documented - routes == set(), f"documented but not served: {sorted(documented - routes)}"


def test_readme_quick_start_has_the_two_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    assert "## Quick start" in readme
    assert "pip install . && coord serve" in readme
    assert "pip install -e '.[test]' && pytest" in readme
    ci = (DOCS.parent / ".ci" / "run").read_text()
    assert "pip install -e '.[test]' && pytest" in ci
