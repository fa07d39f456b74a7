"""``/audit`` does bounded work per answer however little its filter matches (review: a filter matching
nothing scanned the whole log), and says where to page on; over HTTP on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from coordhub.api.routes import events as audit_route
from coordhub.core import events
from coordhub.server import SYSTEM
from tests.conftest import Api

A, B, C = "A/claude-main", "B/claude-main", "C/claude-main"
AUDIT = "/api/coord/audit"


def _emit(api: Api, n: int, kind: str, **where: Any) -> list[int]:
    """``n`` events of ``kind``, written straight to the log (ids in order)."""
    def op(tx: Any, now: float) -> list[int]:
        return [events.emit(tx, kind, now, session_id=None, **where) for _ in range(n)]
    return list(api.hub.mutate_sync(SYSTEM, op).body)


def _follow(api: Api, headers: dict[str, str], **params: Any) -> tuple[list[int], int]:
    """Every event id ``/audit`` answers, following ``Coord-Next-After`` to the end; and how many answers."""
    got: list[int] = []
    after, answers = 0, 0
    while True:
        r = api.get(AUDIT, params={**params, "after": after}, headers=headers)
        assert r.status_code == 200, r.text
        answers += 1
        got += [e["id"] for e in r.json()]
        if "Coord-Next-After" not in r.headers:
            return got, answers
        nxt = int(r.headers["Coord-Next-After"])
        assert nxt > after and (not got or nxt >= got[-1])
        after = nxt
        assert answers < 100


def test_a_filter_that_matches_little_scans_a_window_and_says_where_to_go_on(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_route, "AUDIT_SCAN_IDS", 50)
    me = api.token(A, admin=True)
    first = _emit(api, 1, "component.set", project_key="p")
    _emit(api, 120, "presence.seen", project_key="p")
    last = _emit(api, 1, "component.set", project_key="p")
    r = api.get(AUDIT, params={"kinds": "component.", "after": first[0]}, headers=me)
    assert r.json() == [] and int(r.headers["Coord-Next-After"]) == first[0] + 50
    got, answers = _follow(api, me, kinds="component.")
    assert got == first + last and answers == 3  # windows 0–50, 50–100, 100–150 (the log ends at 124)
    assert _follow(api, me, kinds="component.", project_key="q") == ([], 3)
    everything, _ = _follow(api, me, limit=1000)
    assert len(everything) == len(set(everything)) >= 122


def test_kind_prefixes_are_literal_text_and_bounded_in_number(api: Api) -> None:
    me = api.token(A, admin=True)
    ids = _emit(api, 2, "work_item.created", project_key="p")
    _emit(api, 1, "workXitem.created", project_key="p")  # LIKE 'work_item%' would take it too
    r = api.get(AUDIT, params={"kinds": "work_item.,nothing."}, headers=me)
    assert [e["id"] for e in r.json()] == ids and "Coord-Next-After" not in r.headers
    r = api.get(AUDIT, params={"kinds": ",".join(f"k{i}." for i in range(audit_route.MAX_KINDS + 1))},
                headers=me)
    assert r.status_code == 422 and "kinds" in r.text


def test_events_the_caller_may_not_see_count_against_the_scan(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_route, "AUDIT_SCAN_ROWS", 10)
    outsider = api.token(C)
    a = api.token(A)
    for i in range(25):  # direct messages between A and B: C may not see their events
        r = api.post("/api/coord/messages", json={"to_session": B, "subject": f"s{i}", "body": "b"}, headers=a)
        assert r.status_code in (200, 201), r.text
    seen = _emit(api, 1, "component.set", project_key="p")
    r = api.get(AUDIT, params={"kinds": "message."}, headers=outsider)
    assert r.json() == [] and "Coord-Next-After" in r.headers
    got, answers = _follow(api, outsider)
    assert seen[0] in got and answers >= 3
    assert not any(e["kind"].startswith("message.")
                   for e in api.get(AUDIT, params={"after": 0, "limit": 1000}, headers=outsider).json())
