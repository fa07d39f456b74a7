"""Queued writes keep their original time (issue 7 point 17): ``X-Coord-Queued-At`` → ``queued_at``, both backends."""

from __future__ import annotations

from datetime import UTC, datetime

from coordhub.clock import ManualClock
from coordhub.core.hub import Hub
from tests.conftest import Api

A = "DESKTOP-0O8A1RL/claude-main"
B = "HOWARD-HOME/claude-main"
HEADER = "X-Coord-Queued-At"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def test_a_replayed_message_and_todo_show_when_they_were_queued(api: Api, hub: Hub) -> None:
    assert isinstance(hub.clock, ManualClock)
    now = hub.clock.now()
    a, b = api.token(A), api.token(B)
    queued = iso(now - 3600)
    r = api.post("/api/coord/messages", json={"to_session": B, "subject": "from the train", "body": "x"},
                 headers={**a, HEADER: queued})
    assert r.status_code == 201, r.text
    assert (r.json()["queued_at"], r.json()["created_at"]) == (queued, iso(now))
    [shown] = api.get("/api/coord/messages", headers=b).json()
    assert shown["queued_at"] == queued
    t = api.post("/api/coord/todos", json={"text": "queued todo"}, headers={**a, HEADER: queued}).json()
    assert t["queued_at"] == queued
    assert [x["queued_at"] for x in api.get("/api/coord/todos", headers=a).json()] == [queued]
    # a write that reached the hub at once has none
    assert api.post("/api/coord/todos", json={"text": "live"}, headers=a).json()["queued_at"] is None


def test_a_queue_time_from_a_fast_clock_becomes_the_hub_time(api: Api, hub: Hub) -> None:
    now = hub.clock.now()
    r = api.post("/api/coord/todos", json={"text": "from the future"}, headers={**api.token(A), HEADER: iso(now + 999)})
    assert r.json()["queued_at"] == r.json()["created_at"] == iso(now)


def test_a_bad_queue_time_is_refused_and_changes_nothing(api: Api) -> None:
    a = api.token(A)
    for bad in ("yesterday", "1970-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "x" * 500):
        r = api.post("/api/coord/todos", json={"text": "bad time"}, headers={**a, HEADER: bad})
        assert r.status_code == 422, r.text
        assert HEADER in r.json()["error"]["message"]
    assert api.get("/api/coord/todos", headers=a).json() == []
