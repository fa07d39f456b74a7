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


def test_the_first_verbs_show_an_example_and_where_each_id_comes_from() -> None:
    # "Lease id." and "Todo id." left a newcomer to guess which command prints one
    runner = CliRunner()

    def shown(*path: str) -> str:
        return " ".join(runner.invoke(app, [*path, "--help"], env={"COLUMNS": "300"}).output.split())

    assert 'Example: coord msg send HOWARD-HOME "review please"' in shown("msg", "send")
    assert 'Example: coord lock claim shop src/api/ "refactoring the API"' in shown("lock", "claim")
    for path, source in ((("lock", "release"), "as `coord lock claim` printed it"),
                         (("lock", "renew"), "as `coord lock claim` printed it"),
                         (("msg", "read"), "as `coord msg inbox` shows them"),
                         (("msg", "ack"), "as `coord msg inbox` shows it"),
                         (("todo", "done"), "as `coord todo list` shows it")):
        assert source in shown(*path), path
