"""``GET /presence`` bounded: ``limit`` (default and most 1,000), ``Coord-Next-Cursor`` paging by session id, and
``state`` filters the database applies (``live``: all but offline). It answered every session that ever registered,
and an orchestrator worker is a session of its own; the dashboard's Fleet view read them all on every presence
event. Both backends, the hub's clock."""

from __future__ import annotations

from typing import Any

from coordhub.clock import ManualClock
from tests.conftest import Api

PRESENCE = "/api/coord/presence"


def _register(api: Api, name: str) -> dict[str, str]:
    me = api.token(name)
    r = api.post(f"{PRESENCE}/register", json={"client": "claude-code"}, headers=me)
    assert r.status_code == 200, r.text
    return me


def _ids(api: Api, me: dict[str, str], **params: Any) -> list[str]:
    r = api.get(PRESENCE, params=params, headers=me)
    assert r.status_code == 200, r.text
    return [s["session_id"] for s in r.json()]


def test_presence_pages_by_id_and_filters_by_state_in_the_store(api: Api, clock: ManualClock) -> None:
    gone = _register(api, "h/gone")
    r = api.post(f"{PRESENCE}/deregister", json={}, headers=gone)
    assert r.status_code == 200, r.text
    _register(api, "h/old")
    clock.advance(1000)              # h/old: offline (past 15 min)
    _register(api, "h/stale")
    clock.advance(400)               # h/stale: stale (400 s)
    _register(api, "h/idle")
    clock.advance(200)               # h/idle: idle (200 s)
    me = _register(api, "h/active")  # active
    everyone = ["h/active", "h/gone", "h/idle", "h/old", "h/stale"]
    assert _ids(api, me) == everyone  # as before: all of them, by id
    assert _ids(api, me, state="live") == ["h/active", "h/idle", "h/stale"]
    assert _ids(api, me, state="offline") == ["h/gone", "h/old"]
    for state in ("active", "idle", "stale"):
        assert _ids(api, me, state=state) == [f"h/{state}"], state

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        r = api.get(PRESENCE, params=params, headers=me)
        assert r.status_code == 200 and len(r.json()) <= 2, r.text
        seen += [s["session_id"] for s in r.json()]
        if "Coord-Next-Cursor" not in r.headers:
            break
        params = {"limit": 2, "cursor": r.headers["Coord-Next-Cursor"]}
    assert seen == everyone
    first = api.get(PRESENCE, params={"state": "live", "limit": 1}, headers=me)
    assert [s["session_id"] for s in first.json()] == ["h/active"]
    assert _ids(api, me, state="live", cursor=first.headers["Coord-Next-Cursor"]) == ["h/idle", "h/stale"]

    for bad in ({"limit": 1001}, {"limit": 0}, {"state": "asleep"}, {"cursor": "x"}):
        r = api.get(PRESENCE, params=bad, headers=me)
        assert r.status_code == 422, (bad, r.text)
