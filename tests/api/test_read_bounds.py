"""What one read of messages holds in memory, not only what it answers (review: an unread read with
``limit=500`` loaded up to 501 bodies of 512 KiB before cutting its answer to 4 MiB, and the hooks' unshown read
loaded ``limit + 1000``); over HTTP on both backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from coordhub.core import paging
from coordhub.store.tables.messages import Messages
from tests.conftest import Api, where_run

A, B = "A/claude-main", "B/claude-main"
BIG = 500 * 1024


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Rows the store hands out from the message reads under test, counted."""
    counts: dict[str, int] = {}

    def counting(name: str) -> None:
        real: Callable[..., list[Any]] = getattr(Messages, name)

        def wrapper(self: Messages, *args: Any, **kwargs: Any) -> list[Any]:
            rows = real(self, *args, **kwargs)
            counts[name] = counts.get(name, 0) + len(rows)
            return rows
        monkeypatch.setattr(Messages, name, wrapper)

    for name in ("unread_direct", "unread_broadcasts", "history", "unshown_direct", "unshown_broadcasts"):
        counting(name)
    return counts


def _send(api: Api, n: int, frm: dict[str, str], to: str | None, body: int) -> list[int]:
    seqs = []
    for i in range(n):
        r = api.post("/api/coord/messages", json={"to_session": to, "subject": f"m{i}", "body": "x" * body},
                     headers=frm)
        assert r.status_code == 201, r.text
        seqs.append(r.json()["seq"])
    return seqs


def test_reads_of_long_messages_hold_about_one_answer(api: Api, fetched: dict[str, int]) -> None:
    a, b = api.token(A), api.token(B)
    _send(api, 30, b, A, BIG)
    most = paging.PAGE_BYTES // BIG + 2  # the rows that fit, and the one that says more follow
    r = api.get("/api/coord/messages", params={"unread_only": "true", "limit": 500}, headers=a)
    assert len(r.json()) == paging.PAGE_BYTES // (BIG + paging.ROW_BYTES) and "Coord-Next-After-Seq" in r.headers
    assert fetched["unread_direct"] <= most, fetched
    fetched.clear()
    r = api.get("/api/coord/messages", params={"unread_only": "false", "limit": 500}, headers=a)
    assert "Coord-Next-Before-Seq" in r.headers and fetched["history"] <= 2 * most, fetched
    fetched.clear()
    r = api.post("/api/coord/messages/unshown", json={"limit": 500}, headers=a)
    out = r.json()
    assert len(out["messages"]) < 30 and out["more"] == 30 - len(out["messages"]), out["more"]
    assert fetched["unshown_direct"] <= most, fetched


def test_unread_reads_of_long_messages_run_off_the_event_loop(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unread page holds up to 4 MiB of bodies (eight of 512 KiB), and any session may send them to itself:
    read on the event loop, each such read held it ~8 ms, so one token within its rate limit (90 reads a second)
    kept /health waiting 65-80 ms at the median (review DoS, real hub). The inbox's unread read and the long-poll
    (``/messages/wait``) read on a reader thread, as history and threads do."""
    from coordhub.core import messages

    where = where_run(monkeypatch, messages, "inbox_page")
    a = api.token(A)
    _send(api, 2, a, A, BIG)
    r = api.get("/api/coord/messages", params={"unread_only": "true", "limit": 500}, headers=a)
    assert r.status_code == 200 and len(r.json()) == 2, r.text
    r = api.get("/api/coord/messages/wait", params={"timeout": 0}, headers=a)
    assert r.status_code == 200 and len(r.json()) == 2, r.text
    assert where == [False, False], where


def test_reads_of_short_messages_still_take_whole_pages(api: Api, fetched: dict[str, int]) -> None:
    a, b = api.token(A), api.token(B)
    direct = _send(api, 70, b, A, 10)
    broadcast = _send(api, 30, b, None, 10)
    got, after = [], 0
    while True:
        r = api.get("/api/coord/messages", params={"unread_only": "true", "limit": 40, "after_seq": after},
                    headers=a)
        got += [m["seq"] for m in r.json()]
        if "Coord-Next-After-Seq" not in r.headers:
            break
        after = int(r.headers["Coord-Next-After-Seq"])
    assert got == sorted(direct + broadcast)
    r = api.post("/api/coord/messages/unshown", json={"limit": 60}, headers=a)
    assert [m["seq"] for m in r.json()["messages"]] == sorted(direct + broadcast)[:60] and r.json()["more"] == 40
    r = api.post("/api/coord/messages/unshown", json={"limit": 60}, headers=a)
    assert [m["seq"] for m in r.json()["messages"]] == sorted(direct + broadcast)[60:] and r.json()["more"] == 0


def test_reads_of_long_records_hold_about_one_answer(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for workflows, work items, components and todos, and for /status (it read 1,001 workflows)."""
    from coordhub.store.tables import records

    counts: dict[str, int] = {}

    def counting(cls: type, name: str) -> None:
        real: Callable[..., list[Any]] = getattr(cls, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> list[Any]:
            rows = real(self, *args, **kwargs)
            key = f"{cls.__name__}.{name}"
            counts[key] = counts.get(key, 0) + len(rows)
            return rows
        monkeypatch.setattr(cls, name, wrapper)

    for cls, name in ((records.Workflows, "find"), (records.Workflows, "in_states"), (records.Todos, "find"),
                      (records.Components, "find"), (records.WorkItems, "find")):
        counting(cls, name)
    a = api.token(A)
    wf = ""
    for i in range(20):
        r = api.post("/api/coord/workflows", json={"project_key": "p", "name": f"w{i}", "description": "d" * BIG},
                     headers=a)
        wf = wf or r.json()["id"]
        api.post("/api/coord/work-items", json={"workflow_id": wf, "title": f"t{i}", "description": "d" * BIG},
                 headers=a)
        api.put("/api/coord/components", json={"project_key": "p", "component": f"c{i}", "state": "built",
                                               "notes": "n" * BIG}, headers=a)
        api.post("/api/coord/todos", json={"text": f"t{i}", "source": "s" * BIG}, headers=a)
    most = paging.PAGE_BYTES // BIG + 2  # rows that fit, and the one that says more follow
    for path in ("/api/coord/workflows", f"/api/coord/workflows/{wf}", "/api/coord/components", "/api/coord/todos",
                 "/api/coord/status"):
        counts.clear()
        r = api.get(path, headers=a)
        assert r.status_code == 200, r.text
        assert counts and all(n <= most for n in counts.values()), (path, counts)
