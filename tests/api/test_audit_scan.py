"""``/audit`` does bounded work per answer however little its filter matches (review: a filter matching
nothing scanned the whole log), and says where to page on; over HTTP on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from coordhub.api.routes import events as audit_route
from coordhub.core import events, retention
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


def _prune(api: Api, upto: int) -> None:
    """What the retention pruner does: delete every event with id <= ``upto`` and record the bound."""
    def op(tx: Any, now: float) -> None:
        tx.retention.prune_events(upto)
        tx.meta.put(retention.PRUNED_THROUGH, str(upto))
    api.hub.mutate_sync(SYSTEM, op)


def test_a_log_that_starts_past_the_id_window_answers_from_its_first_event(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: on a pruned log starting past ``after + AUDIT_SCAN_IDS``, ``after=0`` answered ``[]`` (even
    unfiltered), and a client paging until an empty answer stopped there."""
    monkeypatch.setattr(audit_route, "AUDIT_SCAN_IDS", 50)
    me, outsider = api.token(A, admin=True), api.token(C)
    _emit(api, 150, "presence.seen", project_key="p")
    kept = _emit(api, 3, "component.set", project_key="p") + _emit(api, 2, "presence.seen", project_key="q")
    _prune(api, kept[0] - 1)  # the log now starts at kept[0] > 150: three windows past 0
    for who in (me, outsider):
        r = api.get(AUDIT, params={"after": 0}, headers=who)
        assert r.status_code == 200, r.text
        assert [e["id"] for e in r.json()] == kept and "Coord-Next-After" not in r.headers
        assert r.headers["Coord-Gap"] == str(kept[0] - 1)
    r = api.get(AUDIT, params={"after": 0, "limit": 2}, headers=me)
    assert [e["id"] for e in r.json()] == kept[:2] and r.headers["Coord-Next-After"] == str(kept[1])
    r = api.get(AUDIT, params={"after": 0, "kinds": "component."}, headers=me)
    assert [e["id"] for e in r.json()] == kept[:3] and "Coord-Next-After" not in r.headers
    r = api.get(AUDIT, params={"after": 0, "kinds": "component.", "limit": 1}, headers=me)
    assert [e["id"] for e in r.json()] == kept[:1] and r.headers["Coord-Next-After"] == str(kept[0])
    r = api.get(AUDIT, params={"after": 0, "project_key": "q"}, headers=me)
    assert [e["id"] for e in r.json()] == kept[3:]
    assert _follow(api, me, kinds="component.") == (kept[:3], 1)
    assert _follow(api, me) == (kept, 1)
    r = api.get(AUDIT, params={"after": kept[-1], "kinds": "component."}, headers=me)
    assert r.json() == [] and "Coord-Next-After" not in r.headers


def test_a_filtered_window_starts_at_the_first_event_after_a_gap(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_route, "AUDIT_SCAN_IDS", 50)
    me = api.token(A, admin=True)
    gone = _emit(api, 150, "component.set", project_key="p")
    high = _emit(api, 60, "presence.seen", project_key="p") + _emit(api, 1, "component.set", project_key="p")
    _prune(api, gone[-1])
    r = api.get(AUDIT, params={"after": 0, "kinds": "component."}, headers=me)
    # one window of 50 ids from high[0], the first event after 0 (not 0 to 50, all pruned)
    assert r.json() == [] and r.headers["Coord-Next-After"] == str(high[0] + 49)
    got, answers = _follow(api, me, kinds="component.")
    assert got == high[-1:] and answers == 2


def test_an_unfiltered_answer_is_empty_only_at_the_end_of_the_log(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a filter no id window applies: events the caller may not see cost only the row budget, so a
    client paging until an empty answer reads on past them."""
    monkeypatch.setattr(audit_route, "AUDIT_SCAN_IDS", 10)
    outsider, a = api.token(C), api.token(A)
    for i in range(15):  # direct messages between A and B: C may not see their events
        r = api.post("/api/coord/messages", json={"to_session": B, "subject": f"s{i}", "body": "b"}, headers=a)
        assert r.status_code in (200, 201), r.text
    seen = _emit(api, 1, "component.set", project_key="p")
    after, pages = 0, 0
    while True:  # a seed-era client: page until an empty answer
        page = [e["id"] for e in api.get(AUDIT, params={"after": after}, headers=outsider).json()]
        pages += 1
        if not page:
            break
        after = page[-1]
    assert after == seen[0] and pages == 2
    end = api.get(AUDIT, params={"after": seen[0]}, headers=outsider)
    assert end.json() == [] and "Coord-Next-After" not in end.headers


def test_a_session_prefix_keeps_what_those_sessions_did_in_a_bounded_window(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # the dashboard's Events view filtered by session only the page it had loaded: the hub could not ask
    monkeypatch.setattr(audit_route, "AUDIT_SCAN_IDS", 50)
    me, a = api.token(B, admin=True), api.token(A)
    mine = [api.post("/api/coord/todos", json={"text": f"t{i}"}, headers=a).json()["id"] for i in range(2)]
    _emit(api, 120, "presence.seen", project_key="p")
    api.post("/api/coord/todos", json={"text": "late"}, headers=a)
    got, answers = _follow(api, me, session_prefix="a/", kinds="todo.")  # a machine's sessions, ignoring case
    r = api.get(AUDIT, params={"session_prefix": A, "kinds": "todo.", "limit": 10}, headers=me)
    assert [e["subject_id"] for e in r.json()] == mine and all(e["session_id"] == A for e in r.json())
    assert len(got) == 3 and answers >= 3  # each answer looked through one window of ids
    assert _follow(api, me, session_prefix=C)[0] == [] and _follow(api, me, session_prefix="a_")[0] == []
