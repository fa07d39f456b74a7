"""Usage errors and help that tell a newcomer what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.coordcli import Coord, git_init, isolated_env


def test_msg_read_without_ids_says_where_the_ids_are_and_offers_all(tmp_path: Path) -> None:
    # it said "give message ids or --all (not both)" when neither was given
    coord = Coord(tmp_path, isolated_env(tmp_path))
    r = coord.fails(2, "msg", "read")
    assert "coord msg inbox" in r.err and "--all for every unread one" in r.err and "not both" not in r.err
    assert "not both" in coord.fails(2, "msg", "read", "01a246b8-7576-7604-ae86-a03baeeeef58", "--all").err


def test_install_git_hook_help_names_every_hook_it_installs(tmp_path: Path) -> None:
    # its summary named pre-commit and pre-push, not pre-merge-commit, which it installs too
    r = Coord(tmp_path, isolated_env(tmp_path)).ok("--help")
    line = next(x for x in r.out.splitlines() if "install-git-hook " in x)
    assert "pre-merge-commit" in line


def test_install_git_hook_outside_a_repository_says_so_in_its_own_words(tmp_path: Path) -> None:
    # it said "not a git repository? git rev-parse --git-path hooks: fatal: not a git repository (or any …"
    (tmp_path / "plain").mkdir()
    r = Coord(tmp_path / "plain", isolated_env(tmp_path)).fails(1, "install-git-hook")
    assert r.err == (f"coord: {(tmp_path / 'plain').resolve()} is not a git repository (no git working tree "
                     "there): run this inside one, or name one with --repo\n")


@pytest.mark.parametrize("args", [("lock", "claim", "gururmm", "server/", "refactor", "--ttl", "nan"),
                                  ("lock", "claim", "gururmm", "server/", "refactor", "--ttl", "inf", "--json"),
                                  ("lock", "renew", "01a246b8-7576-7604-ae86-a03baeeeef58", "--ttl", "1e400"),
                                  ("--timeout", "nan", "status"), ("--timeout", "-inf", "msg", "inbox")])
def test_a_number_option_that_is_not_finite_is_a_usage_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    # seed 000's `lock claim … --ttl HOURS` with nan or inf ended in a traceback (the JSON body cannot hold it), as
    # did `--timeout inf` (the socket's timeout); nothing is asked of a hub
    r = Coord(tmp_path, isolated_env(tmp_path), url="http://127.0.0.1:9").with_(token="coord_x")(*args)
    assert r.code == 2, r
    assert "Input should be a finite number, not '" in r.err, r
    assert r.out == "" if "--json" not in args else r.json()["error"]["code"] == "usage", r


@pytest.mark.parametrize(("env", "args", "said"), [
    ({"COORD_TIMEOUT": "abc"}, ("status",), "COORD_TIMEOUT must be a number of seconds above 0 and at most 86400, "
                                            "not 'abc'"),
    ({"COORD_TIMEOUT": "nan"}, ("msg", "inbox"), "COORD_TIMEOUT must be a number of seconds above 0"),
    ({}, ("--timeout", "0", "todo", "list"), "--timeout must be a number of seconds above 0 and at most 86400, not 0"),
    ({}, ("--timeout", "99999999999", "lock", "list"), "not 1e+11"),
])
def test_a_timeout_that_is_no_number_of_seconds_is_a_usage_error(tmp_path: Path, env: dict[str, str],
                                                                 args: tuple[str, ...], said: str) -> None:
    # COORD_TIMEOUT=abc ended in a traceback (float()), as did a timeout the socket cannot take (-1, 1e11), and
    # --timeout 0 quietly meant the default; the fast path's `msg inbox` and `lock list` say it as the others do
    r = Coord(tmp_path, isolated_env(tmp_path, **env), url="http://127.0.0.1:9", token="coord_x").fails(2, *args)
    assert said in r.err and r.out == "", r


@pytest.mark.parametrize("to", ["", " ", "HOWARD-HOME/", "HOWARD HOME", "a/b/c/d"])
def test_msg_send_to_no_session_is_a_usage_error_and_queues_nothing(tmp_path: Path, to: str) -> None:
    # the hub answered "to_session '/claude-main' is not a session id" to `coord msg send "" …` (exit 1), and with
    # the hub down the send was queued (exit 0) only to be refused at its replay; "" is no broadcast either (an
    # unset "$TARGET" in a script must not message the whole fleet)
    project = git_init(tmp_path / "gururmm")
    coord = Coord(project, isolated_env(tmp_path), url=f"http://127.0.0.1:{free_port()}", token="coord_x")
    r = coord.fails(2, "msg", "send", to, "deploy freeze", "Nobody deploys")
    assert r.err.startswith(f"coord: {to!r} names no recipient: give ALL, fleet or broadcast"), r
    assert "/claude-main'" not in r.err and not (project / ".claude").exists()
