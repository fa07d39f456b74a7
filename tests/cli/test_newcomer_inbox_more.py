"""``coord msg inbox`` when more unread messages wait than it shows.

Seed 000's ``msg inbox`` lists your unread messages. This one shows at most ``--limit`` (100 by default), the oldest
first, and ended with "100 unread." with 105 waiting: a count that was not the count, and nothing said there were
more. The hub says so (``Coord-Next-After-Seq``); now the last line says these are the oldest and more wait (with
``--json``, stderr says it). The fast path leaves such an answer to the Typer CLI, so both print the same.
"""

from __future__ import annotations

from pathlib import Path

import httpx2

from tests.cli.test_fast import B, Cli, S
from tests.conftest import LiveHub
from tests.coordcli import git_init, isolated_env

MORE = ("The oldest 2 unread shown; more are waiting (a higher --limit, at most 500, or this command again once "
        "these are read). Mark each read with `coord msg read <id>`.\n")


def test_the_inbox_says_when_more_unread_messages_wait_than_it_shows(live_hub: LiveHub, tmp_path: Path) -> None:
    cli = Cli(git_init(tmp_path / "work"), isolated_env(tmp_path))
    sender = {"Authorization": f"Bearer {live_hub.token(B)}"}
    for n in range(3):
        r = httpx2.post(live_hub.url + "/api/coord/messages", json={"to_session": S, "subject": f"m{n}"},
                        headers=sender)
        assert r.status_code == 201, r.text
    env = {"COORD_URL": live_hub.url, "COORD_TOKEN": live_hub.token(S)}
    r = cli.same("msg", "inbox", "--limit", "2", **env, fast=False)  # before: "2 unread.", served fast
    assert r.code == 0 and r.out.endswith(MORE) and "MESSAGE FROM" in r.out and "— m2" not in r.out, r
    r = cli.same("msg", "inbox", "--limit", "2", "--json", **env, fast=False)
    assert [m["subject"] for m in r.json()] == ["m0", "m1"]
    assert r.err == ("coord: more unread messages wait behind these 2 (a higher --limit, at most 500, or this "
                     "command again once these are read)\n")
    r = cli.same("msg", "inbox", "--limit", "3", **env)  # all of them: the count as before, served fast
    assert r.code == 0 and r.out.endswith("3 unread. Mark each read with `coord msg read <id>`.\n") and not r.err
