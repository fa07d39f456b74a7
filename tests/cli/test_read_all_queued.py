"""``coord msg read --all`` when its marks are queued while the inbox still answers (review: a busy hub's 503s on
writes behind a gateway that passes reads; the loop read the same unread page again and again, then printed a
queued write as a message and died on it)."""

from __future__ import annotations

from pathlib import Path

from tests.client.conftest import serving
from tests.client.test_queue_order import FlakyProxy
from tests.conftest import LiveHub
from tests.coordcli import Coord, isolated_env

A, B = "DESKTOP-0O8A1RL/claude-main", "LAPTOP-7/claude-review"


def test_read_all_with_writes_queued_says_queued_once_and_stops(live_hub: LiveHub, tmp_path: Path) -> None:
    sender = Coord(tmp_path, isolated_env(tmp_path / "a"), url=live_hub.url, token=live_hub.token(A))
    for n in range(3):
        sender.ok("msg", "send", B, f"note {n}", "body")
    with serving(FlakyProxy(live_hub.url)) as proxy:
        proxy.busy = 10_000  # every write answered 503 busy; reads reach the hub
        reader = Coord(tmp_path, isolated_env(tmp_path / "b"), url=proxy.url, token=live_hub.token(B))
        r = reader.ok("msg", "read", "--all")
        assert "queued" in r.out + r.err, r
        marks = [path for _, method, path in proxy.seen if method != "GET"]
        assert marks == [marks[0]] * 2, marks  # the first mark, sent again once after its Retry-After, then queued
        assert reader.json("msg", "read", "--all")["queued"] is True  # the drain meets the same 503 first
    inbox = Coord(tmp_path, isolated_env(tmp_path / "b"), url=live_hub.url, token=live_hub.token(B))
    assert len(inbox.json("msg", "inbox")) == 3  # nothing was marked: the marks wait in the queue
