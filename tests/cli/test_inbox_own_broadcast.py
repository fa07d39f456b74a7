"""``coord msg inbox --all`` shows a session's own broadcast as read, as its unread count (0) has it.

A real ``coord serve`` and real ``coord`` runs (as ``tests/cli/test_cli_e2e.py``).
A sender never gets its own broadcast as news (docs/api.md, "Messages"), so
its unread count leaves it out; its history listed it ``read: false`` all the
same, in the table and in ``--json`` (``read_at`` null: the sender holds no
receipt for it), a message the listing called unread that no command would
ever show or count as unread.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LiveHub
from tests.coordcli import Coord, isolated_env

A = "DESKTOP-0O8A1RL/claude-main"
B = "HOWARD-HOME/claude-main"


def test_the_senders_own_broadcast_is_read_in_its_history_and_unread_for_the_others(live_hub: LiveHub,
                                                                                    tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    base = Coord(work, isolated_env(tmp_path), url=live_hub.url)
    a, b = base.as_token(live_hub.token(A)), base.as_token(live_hub.token(B))
    sent = a.json("msg", "send", "ALL", "deploying", "staging goes down at noon")
    assert sent["broadcast"]
    direct = b.json("msg", "send", A, "for A", "read me")

    assert a.json("status")["unread_messages"] == 1  # B's direct message; never A's own broadcast
    (mine,) = [m for m in a.json("msg", "inbox", "--all") if m["id"] == sent["id"]]
    assert (mine["read"], mine["read_at"]) == (True, sent["created_at"])
    assert [m["id"] for m in a.json("msg", "inbox")] == [direct["id"]]
    table = [line.split() for line in a.ok("msg", "inbox", "--all").out.splitlines()]
    assert {row[0]: row[-1] for row in table if row and row[0] in (sent["id"], direct["id"])} == {
        sent["id"]: "True", direct["id"]: "False"}
    assert sent["read"] and sent["read_at"] == sent["created_at"]  # as the send's own answer had it

    # for everyone else it is news until they read it
    (theirs,) = b.json("msg", "inbox", "--all")
    assert theirs["id"] == sent["id"] and (theirs["read"], theirs["read_at"]) == (False, None)
    assert b.json("status")["unread_messages"] == 1
    b.ok("msg", "read", sent["id"])
    (theirs,) = b.json("msg", "inbox", "--all")
    assert theirs["read"] and theirs["read_at"] is not None
    assert b.json("status")["unread_messages"] == 0

    # once A has read B's message too, its count and its listing agree that nothing is unread
    a.ok("msg", "read", direct["id"])
    assert a.json("status")["unread_messages"] == 0
    assert all(m["read"] for m in a.json("msg", "inbox", "--all"))
