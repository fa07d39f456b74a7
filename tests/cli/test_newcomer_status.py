"""Which session am I, on which hub? The first line of ``coord status`` says.

A newcomer with two shells (two sessions) and a hub on a port of their own
could not tell from the CLI which token a shell acted with or which hub it
asked: ``coord status`` named neither (only the session-start hook told the
agent). ``--json`` stays the hub's answer, whose ``session_id`` names the session.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LiveHub
from tests.coordcli import Coord, isolated_env

A = "HOWARD-HOME/claude-main"


def test_status_starts_with_the_session_the_hub_and_where_each_came_from(live_hub: LiveHub, tmp_path: Path) -> None:
    a = Coord(tmp_path, isolated_env(tmp_path), url=live_hub.url, token=live_hub.token(A))
    assert a.ok("status").out.splitlines()[0] == f"session {A} (token from --token) on {live_hub.url} (from --url)"
    env = {**a.env, "COORD_URL": live_hub.url, "COORD_TOKEN": live_hub.token(A)}
    by_env = Coord(tmp_path, env)
    assert by_env.ok("status").out.splitlines()[0] == \
        f"session {A} (token from COORD_TOKEN) on {live_hub.url} (from COORD_URL)"
    assert by_env.json("status")["session_id"] == A
