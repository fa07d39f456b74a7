"""``coord status`` on a ``--no-auth`` hub (seed 001's trusted network) asked by no session.

Such a hub counts the unread messages of the session a request names; asked by nobody it answers 0. ``coord status``
printed "unread messages: 0" while messages waited, which reads as "nothing for you" to a newcomer who has not
named a session yet. It now says none were counted and how to name one; a named session's count is as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import LiveHub
from tests.coordcli import Coord, git_init, isolated_env

ME = "HOWARD-HOME/claude-main"


@pytest.fixture
def open_hub(tmp_path: Path) -> Iterator[LiveHub]:
    hub = LiveHub(tmp_path / "hub", args=("--no-auth",)).start()
    try:
        yield hub
    finally:
        hub.stop()


def test_status_without_a_session_says_it_counted_no_inbox(open_hub: LiveHub, tmp_path: Path) -> None:
    r = httpx2.post(open_hub.url + "/api/coord/messages", json={"from_session": "DESKTOP-0O8A1RL/claude-main",
                                                                "to_session": ME, "subject": "deploy freeze"})
    assert r.status_code == 201, r.text
    coord = Coord(git_init(tmp_path / "work"), isolated_env(tmp_path), url=open_hub.url)
    out = coord.ok("status").out.splitlines()
    assert out[1] == "unread messages: not counted (no session is named: --session or COORD_SESSION)", out
    named = Coord(coord.cwd, isolated_env(tmp_path, COORD_SESSION=ME), url=open_hub.url)
    assert named.ok("status").out.splitlines()[1] == "unread messages: 1"
