"""The seven seed-004 console scripts exist, under the seed's names, with the seed's arguments."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from coordhub.compat.crossagent.__main__ import COMMANDS

SCRIPTS = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["scripts"]
SEED_ARGS = {
    "send": ("destination", "message_file", "--no-sign", "--retries", "--key"),
    "recv": ("message_file", "--no-verify", "--no-dedup", "--protocol-version", "--json", "--compact-json"),
    "status": ("--json", "--projects-glob"),
    "halt": ("reason", "--tailnet", "--no-stop-watcher"),
    "resume": ("--tailnet",),
    "discover": ("--enumerate-remote", "--no-cache", "--peer", "--json"),
    "watch": ("--projects-glob", "--log", "--quiet", "--no-notify"),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_seed_command_is_a_console_script_with_the_seeds_arguments(name: str) -> None:
    target = SCRIPTS[f"cross-agent-{name}"]
    assert target == COMMANDS[name]
    module, _, attr = target.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    p = subprocess.run([sys.executable, "-m", "coordhub.compat.crossagent", name, "--help"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith(f"usage: cross-agent-{name} "), p
    for arg in SEED_ARGS[name]:
        assert arg in p.stdout, (name, arg)


def test_the_dispatcher_refuses_an_unknown_name() -> None:
    p = subprocess.run([sys.executable, "-m", "coordhub.compat.crossagent", "teleport"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "usage: python -m coordhub.compat.crossagent" in p.stderr
