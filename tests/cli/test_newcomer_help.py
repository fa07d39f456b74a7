"""``--help`` shows what the help strings say, brackets included.

Typer renders help as Rich markup, where ``[init]`` or ``coordhub[redis]``
reads as a style tag and is dropped: ``coord log --help`` said "The worker's
filtered log (, , ,  …)" and ``coord serve --help`` "needs coordhub.".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer.main
from typer.testing import CliRunner

from coordhub.cli.main import app


def _commands(group: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    for name in list(group.commands):
        command = group.commands[name]
        if hasattr(command, "commands"):
            yield from _commands(command, [*path, name])
        else:
            yield [*path, name], command


def test_every_bracket_in_a_help_string_is_shown_by_help() -> None:
    runner = CliRunner()
    lost = {}
    for path, command in _commands(typer.main.get_command(app), []):
        texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
        brackets = {m for text in texts for m in re.findall(r"\[[^\]\n]*\]", text)}
        if not brackets:
            continue
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "300"}).output
        flat = re.sub(r"[\s│]+", "", shown)  # help wraps and frames its lines
        missing = sorted(b for b in brackets if re.sub(r"\s+", "", b) not in flat)
        if missing:
            lost[" ".join(path)] = missing
    assert lost == {}
