"""A flag whose values are a closed list (a status, a state, an importance, a turn type …) is checked by the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LiveHub
from tests.coordcli import Coord, isolated_env


@pytest.mark.parametrize(("args", "listed"), [
    (("todo", "list", "--status", "bogus"), "'pending', 'done', 'all'"),
    (("msg", "send", "HOWARD-HOME", "deploy freeze", "Nobody deploys", "--importance", "huge"),
     "'low', 'normal', 'high', 'urgent'"),
    (("presence", "--state", "asleep"), "'active', 'idle', 'stale', 'offline'"),
    (("conv", "list", "--state", "closed"), "'open', 'released'"),
    (("conv", "release", "prep-fixup", "--status", "done"), "'complete', 'cancelled', 'withdrawn-after-pushback'"),
    (("conv", "send", "laptop.shop", "--conversation", "c", "--type", "note", "--body", "b"), "'request', 'progress'"),
    (("merge", "--method", "fast-forward"), "'rebase', 'squash', 'merge'"),
])
def test_a_value_outside_a_flags_list_is_a_usage_error_before_any_request(
        live_hub: LiveHub, tmp_path: Path, args: tuple[str, ...], listed: str) -> None:
    # `coord todo list --status bogus` was sent, and the hub's 422 came back as exit 1; the same for every flag
    # whose values the hub checks against a list. Now exit 2 naming the values (the hub's own list), nothing sent
    coord = Coord(tmp_path, isolated_env(tmp_path), url=live_hub.url, token=live_hub.token("LAPTOP/claude-main"))
    r = coord(*args)
    assert r.code == 2 and r.out == "", r
    assert f"is not one of {listed}" in r.err and "[422" not in r.err, r


def test_the_listed_values_still_reach_the_hub(live_hub: LiveHub, tmp_path: Path) -> None:
    coord = Coord(tmp_path, isolated_env(tmp_path), url=live_hub.url, token=live_hub.token("LAPTOP/claude-main"))
    todo = coord.json("todo", "add", "ship it")
    assert [t["id"] for t in coord.json("todo", "list", "--status", "all")] == [todo["id"]]
    assert coord.json("todo", "list", "--status", "done") == []
    sent = coord.json("msg", "send", "HOWARD-HOME", "deploy freeze", "Nobody deploys", "--importance", "urgent")
    assert sent["importance"] == "urgent"
    assert coord.ok("presence", "--state", "active").code == 0


@pytest.mark.parametrize("args", [
    ("lock", "claim", "gururmm", "server/", "refactor", "--ttl", "abc", "--json"),
    ("lock", "claim", "gururmm", "server/", "refactor", "--json", "--ttl", "nan"),
    ("todo", "list", "--status", "bogus", "--json"),
    ("msg", "inbox", "--limit", "0", "--json"),
    ("--timeout", "abc", "status", "--json"),
    ("todo", "lst", "--json"),
])
def test_a_usage_error_under_json_prints_the_json_error_envelope(tmp_path: Path, args: tuple[str, ...]) -> None:
    # docs/cli.md: with --json a command prints JSON whatever happens; a bad flag value printed only Typer's error
    # box on stderr and nothing on stdout, wherever --json stood on the command line
    coord = Coord(tmp_path, isolated_env(tmp_path), url="http://127.0.0.1:9", token="coord_x")
    r = coord(*args)
    assert r.code == 2, r
    error = r.json()["error"]
    assert set(error) == {"code", "message"} and error["code"] == "usage", r
    assert error["message"].split(":")[0].split(".")[0] in r.err, r  # the same error as on stderr


def test_a_usage_error_without_json_prints_nothing_on_stdout(tmp_path: Path) -> None:
    coord = Coord(tmp_path, isolated_env(tmp_path), url="http://127.0.0.1:9", token="coord_x")
    for args in (("lock", "claim", "gururmm", "server/", "refactor", "--ttl", "abc"),
                 ("lock", "claim", "gururmm", "server/", "refactor", "--ttl", "abc", "--", "--json")):
        r = coord(*args)
        assert r.code == 2 and r.out == "", r


@pytest.mark.parametrize("args", [
    ("msg", "send", "ALL", "subject", "body", "--type", "--json", "--importance", "huge"),  # --json: --type's value
    ("todo", "add", "ship it", "--source=--json", "--parent"),  # a value given as --opt=value
    ("install-hooks", "--scope", "bogus", "--json"),  # a command without --json
    ("serve", "--port", "abc", "--json"),
    ("--json", "todo", "list", "--status", "bogus"),  # before the command: no option of todo list
    ("--session", "--json", "todo", "list", "--status", "bogus"),  # the value of a global option
    ("msg", "send", "ALL", "subject", "--importance", "huge", "--", "--json"),  # a body after --
])
def test_json_is_asked_for_only_by_the_commands_own_json_option(tmp_path: Path, args: tuple[str, ...]) -> None:
    # the raw word --json anywhere on the line (before a --) printed the JSON envelope, also as an option's value
    # or for a command that has no --json: a script reading stdout got JSON it had not asked for
    coord = Coord(tmp_path, isolated_env(tmp_path), url="http://127.0.0.1:9", token="coord_x")
    r = coord(*args)
    assert r.code == 2 and r.out == "", r


@pytest.mark.parametrize("args", [
    ("msg", "send", "ALL", "subject", "body", "--type", "X", "--json", "--importance", "huge"),
    ("todo", "add", "ship it", "--json", "--source=x", "--parent"),
    ("--session", "a/b", "todo", "list", "--json", "--status", "bogus"),
    ("conv", "tools", "show", "--json", "--bogus"),  # a group's subcommand
    ("lock", "claim", "gururmm", "server/", "--json", "refactor", "--ttl", "abc"),  # between arguments
])
def test_the_commands_own_json_option_still_asks_for_it(tmp_path: Path, args: tuple[str, ...]) -> None:
    coord = Coord(tmp_path, isolated_env(tmp_path), url="http://127.0.0.1:9", token="coord_x")
    r = coord(*args)
    assert r.code == 2 and r.json()["error"]["code"] == "usage", r
