"""``GET /todos?order=newest``: the newest todos first, paged on with the same cursor header (the dashboard's Work
view showed the oldest 500, so on a busy fleet every todo added after the 500th was out of sight); both backends."""

from __future__ import annotations

from coordhub.clock import ManualClock
from tests.conftest import Api

A = "A/claude-main"


def test_newest_first_pages_on_to_the_oldest(api: Api, clock: ManualClock) -> None:
    me = api.token(A)
    for i in range(501):
        r = api.post("/api/coord/todos", json={"text": f"t{i:03d}", "project_key": "web"}, headers=me)
        assert r.status_code == 201, r.text
        clock.advance(1)
    first = api.get("/api/coord/todos", params={"order": "newest", "brief": "true"}, headers=me)
    assert first.status_code == 200, first.text
    assert [t["text"] for t in first.json()] == [f"t{i:03d}" for i in range(500, 0, -1)]
    nxt = api.get("/api/coord/todos", params={"order": "newest", "cursor": first.headers["Coord-Next-Cursor"]},
                  headers=me)
    assert [t["text"] for t in nxt.json()] == ["t000"] and "Coord-Next-Cursor" not in nxt.headers
    oldest = api.get("/api/coord/todos", headers=me)  # seed 000's order stays the default
    assert oldest.json()[0]["text"] == "t000" and len(oldest.json()) == 500
    r = api.get("/api/coord/todos", params={"order": "random"}, headers=me)
    assert r.status_code == 422 and r.json()["error"]["field"] == "order", r.text
