"""``coord msg ack`` of an id that names no message names the id as typed.

A reference that is no UUID is looked up as an imported message's seed id,
by a name-based UUID: ``coord msg ack bogus`` answered "no message
'47915133-46a2-5c17-…' for …", an id the user never typed.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import LiveHub
from tests.coordcli import Coord, isolated_env

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")


def test_ack_of_an_unknown_seed_id_names_it_as_typed(live_hub: LiveHub, tmp_path: Path) -> None:
    a = Coord(tmp_path, isolated_env(tmp_path), url=live_hub.url, token=live_hub.token("HOWARD-HOME/claude-main"))
    for ref in ("bogus", "msg-1a2b3c4d"):
        r = a.fails(1, "msg", "ack", ref)
        assert f"no message {ref!r}: neither a hub id" in r.err and not UUID.search(r.err), r
        error = a("msg", "ack", ref, "--json").json()["error"]
        assert error["code"] == "not_found" and error["message"].startswith(f"no message {ref!r}")
    unknown = "3fa85f64-5717-4562-b3fc-2c963f66afa6"  # a hub id: the hub's own words, which name it
    assert f"no message '{unknown}'" in a.fails(1, "msg", "ack", unknown.upper()).err


def test_the_inbox_footer_says_to_ack_what_asks_for_it(live_hub: LiveHub, tmp_path: Path) -> None:
    """Review: the footer said only to mark messages read, which leaves an ACK REQUIRED one to be redelivered."""
    me, other = "HOWARD-HOME/claude-main", "DESKTOP-0O8A1RL/claude-main"
    a = Coord(tmp_path, isolated_env(tmp_path), url=live_hub.url, token=live_hub.token(me))
    b = Coord(tmp_path, isolated_env(tmp_path / "b"), url=live_hub.url, token=live_hub.token(other))
    b.ok("msg", "send", me, "fyi", "no ack needed")
    assert a.ok("msg", "inbox").out.rstrip().endswith("Mark each read with `coord msg read <id>`.")
    b.ok("msg", "send", me, "deploy?", "please confirm", "--requires-ack")
    footer = a.ok("msg", "inbox").out.rstrip().splitlines()[-1]
    assert footer.endswith("acknowledge the ACK REQUIRED ones with `coord msg ack <id>`."), footer
