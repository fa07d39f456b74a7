"""In-band heartbeats (``X-Coord-Heartbeat``): a request that says so keeps its session present (issue 7 point 19)."""

from __future__ import annotations

from typing import Any

from coordhub.api.activity import MIN_INTERVAL
from coordhub.clock import ManualClock
from coordhub.headers import HEARTBEAT_HEADER
from tests.conftest import Api

A = "DESKTOP-0O8A1RL/claude-main"
B = "HOWARD-HOME/claude-main"
BEAT = {HEARTBEAT_HEADER: "1"}


def _presence(api: Api) -> dict[str, Any]:
    r = api.get("/api/coord/presence", headers=api.admin)
    assert r.status_code == 200, r.text
    return {p["session_id"]: p for p in r.json()}


def test_a_read_marked_as_a_heartbeat_registers_its_session(api: Api, clock: ManualClock) -> None:
    a, b = api.token(A), api.token(B)
    assert api.get("/api/coord/messages", headers={**a, **BEAT}).status_code == 200
    assert api.get("/api/coord/messages", headers=b).status_code == 200  # not marked: a read stays a read
    seen = _presence(api)
    assert set(seen) == {A} and seen[A]["state"] == "active" and seen[A]["incarnation"] == 1


def test_heartbeats_are_recorded_at_most_once_per_interval(api: Api, clock: ManualClock) -> None:
    beats = {"now": 0.0}
    api.client.app.state.heartbeats.clock = lambda: beats["now"]
    a = api.token(A)
    api.get("/api/coord/locks", headers={**a, **BEAT})
    first = _presence(api)[A]["last_heartbeat"]
    clock.advance(10)
    beats["now"] += MIN_INTERVAL - 1
    api.get("/api/coord/locks", headers={**a, **BEAT})
    assert _presence(api)[A]["last_heartbeat"] == first  # skipped: no write
    beats["now"] += 2
    api.get("/api/coord/locks", headers={**a, **BEAT})
    again = _presence(api)[A]
    assert again["last_heartbeat"] != first and again["incarnation"] == 1


def test_a_heartbeat_is_recorded_during_a_halt_and_the_refusal_stands(api: Api) -> None:
    a = api.token(A)
    assert api.post("/api/coord/halt", json={"reason": "incident"}, headers=api.admin).status_code == 201
    r = api.post("/api/coord/todos", json={"text": "x"}, headers={**a, **BEAT})
    assert r.status_code == 423
    assert _presence(api)[A]["state"] == "active"


def test_the_bootstrap_admin_is_not_a_present_session(api: Api) -> None:
    assert api.get("/api/coord/status", headers={**api.admin, **BEAT}).status_code == 200
    assert _presence(api) == {}
