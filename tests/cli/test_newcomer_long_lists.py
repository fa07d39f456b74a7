"""``coord todo list`` and ``coord component list`` read every page.

Seed 000's ``todo list`` lists the fleet's todos, durable until marked done. The hub answers them 500 a page (1,000
components) and names the next page (``Coord-Next-Cursor``); the CLI read the first page alone, so the 501st pending
todo was never listed, and nothing said so. Now the lists follow the pages (up to 10,000 rows; past that stderr
says more follow).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2

from coordhub.client import CoordClient, resolve
from coordhub.client.calls import FleetCalls
from coordhub.client.wire import NEXT_CURSOR
from tests.conftest import LiveHub
from tests.coordcli import Coord, git_init, isolated_env

ME = "HOWARD-HOME/claude-main"


def test_todo_and_component_lists_read_every_page(live_hub: LiveHub, tmp_path: Path) -> None:
    token = live_hub.token(ME)
    with httpx2.Client(base_url=live_hub.url, headers={"Authorization": f"Bearer {token}"}) as hub:
        for n in range(501):
            r = hub.post("/api/coord/todos", json={"text": f"rollout {n}", "project_key": "fleet"})
            assert r.status_code == 201, r.text
        for n in range(1001):
            assert hub.put("/api/coord/components", json={"project_key": "fleet", "component": f"c{n}",
                                                          "state": "deployed"}).status_code == 200
    coord = Coord(git_init(tmp_path / "work"), isolated_env(tmp_path), url=live_hub.url, token=token)
    todos = coord.json("todo", "list")
    assert len(todos) == 501 and [t["text"] for t in todos][-2:] == ["rollout 499", "rollout 500"]  # before: 500
    r = coord.ok("todo", "list")
    assert "rollout 500 " in r.out and not r.err, r
    assert len({c["component"] for c in coord.json("component", "list")}) == 1001  # before: 1000
    # past the bound the list stops and says so
    with CoordClient(resolve(live_hub.url, token)) as c:
        first = c.todos(project_key="fleet", most=1)
        assert len(first) == 500 and first.more
        assert not c.todos(project_key="fleet").more


class _PresencePages(FleetCalls):
    """Answers GET /presence as the hub does past 1,000 sessions: pages by id, each naming the next."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages_left, self.asked = pages, []

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
             idempotency_key: str | None = None, queue: bool = True, fields: dict[str, str] | None = None) -> Any:
        assert (method, path) == ("GET", "/api/coord/presence")
        self.asked.append(dict(params or {}))
        n = int((params or {}).get("cursor") or 0)
        if fields is not None and n + 1 < len(self.pages_left):
            fields[NEXT_CURSOR] = str(n + 1)
        return self.pages_left[n]


def test_presence_reads_every_page() -> None:
    """GET /presence answers 1,000 sessions a page (6793056); ``coord presence`` read the first page alone, so the
    sessions after the 1,000th by id were missing and nothing said so."""
    pages = [[{"session_id": f"h{p}/s{i}"} for i in range(3)] for p in range(3)]
    c = _PresencePages(pages)
    rows = c.presence("live")
    assert [r["session_id"] for r in rows] == [s["session_id"] for p in pages for s in p] and not rows.more
    assert [a.get("state") for a in c.asked] == ["live"] * 3
    assert _PresencePages(pages).presence(most=4).more
