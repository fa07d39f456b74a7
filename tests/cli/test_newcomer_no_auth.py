"""On a ``--no-auth`` hub, a CLI that names no session is told how to name one.

The hub's refusal names the request's field and header ("name your session in
from_session or the X-Coord-Session header"), which a CLI user cannot set
as such: the CLI's own way is ``--session`` or ``COORD_SESSION``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveHub
from tests.coordcli import Coord, isolated_env


@pytest.fixture
def open_hub(tmp_path: Path) -> Iterator[LiveHub]:
    hub = LiveHub(tmp_path / "hub", args=("--no-auth",)).start()
    try:
        yield hub
    finally:
        hub.stop()


def test_a_write_without_a_session_names_the_cli_options(open_hub: LiveHub, tmp_path: Path) -> None:
    anonymous = Coord(tmp_path, isolated_env(tmp_path), url=open_hub.url)
    for args in (("msg", "send", "ALL", "hello", "from nobody"), ("msg", "inbox")):  # the Typer CLI, the fast path
        r = anonymous.fails(1, *args)
        assert r.err.rstrip().endswith("(no session is named here: name yours with --session or COORD_SESSION)")
    named = anonymous.with_(globals_=("--session", "HOST-A/claude-main"))
    assert named.ok("msg", "send", "ALL", "hello", "from HOST-A").err == ""
