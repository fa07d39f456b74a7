"""Commands a newcomer guesses that do not exist say what to run instead.

``coord hooks`` answered only "No such command 'hooks'" (the hooks are
``coord-hook EVENT`` and ``coord install-hooks``), and ``coord message`` guessed
"Did you mean 'merge', 'stages', 'engage'?".
"""

from __future__ import annotations

from pathlib import Path

from coordhub import __version__
from tests.coordcli import Coord, isolated_env


def test_a_guessed_command_name_is_a_usage_error_that_names_the_real_one(tmp_path: Path) -> None:
    coord = Coord(tmp_path, isolated_env(tmp_path))
    for args, said in ((("hooks", "install"), "`coord-hook EVENT`"), (("hook",), "`coord install-hooks`"),
                       (("message", "send"), "Did you mean 'msg'?"), (("leases",), "Did you mean 'lock'?"),
                       (("help",), "Run `coord --help`, or `coord COMMAND --help`")):
        r = coord(*args)
        assert r.code == 2 and f"No such command {args[0]!r}." in r.err, r
        assert said in " ".join(line.strip(" │") for line in r.err.splitlines()), r
    assert "Did you mean 'lock'?" in coord("locks").err  # Typer's own guesses stay for the rest


def test_coord_version_prints_the_version_as_seed_003s_command_did(tmp_path: Path) -> None:
    """Seed 003's command table has ``coord version`` (print the version); its users' scripts call it. It was a
    usage error (exit 2) pointing at ``--version``."""
    coord = Coord(tmp_path, isolated_env(tmp_path))
    r = coord("version")
    assert (r.code, r.out.strip()) == (0, f"coord {__version__}"), r
    assert coord("--version").out == r.out
