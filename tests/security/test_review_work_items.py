"""A review of shared work items (seed 001's workflows and work items) by an ordinary session, over HTTP on both
backends: what one update puts in the event log every session's stream carries, and what a refusal echoes back, is
bounded whatever the request held."""

from __future__ import annotations

from tests.conftest import Api


def _item(api: Api, headers: dict[str, str]) -> str:
    wf = api.post("/api/coord/workflows", json={"project_key": "p", "name": "ship"}, headers=headers)
    assert wf.status_code == 201, wf.text
    item = api.post("/api/coord/work-items", json={"workflow_id": wf.json()["id"], "title": "t"}, headers=headers)
    assert item.status_code == 201, item.text
    return str(item.json()["id"])


def test_a_work_item_update_event_carries_a_bounded_description(api: Api) -> None:
    """``work_item.updated`` carried the update's ``changes`` whole: a 512 KiB description went to every session's
    event stream on each update (todo.added cuts its text to 200 characters; found by a review)."""
    mallory = api.token("ostra/mallory")
    watcher = api.token("velox/watcher")
    item_id = _item(api, mallory)
    long = "d" * 500_000
    r = api.patch(f"/api/coord/work-items/{item_id}", json={"description": long, "status": "in_progress"},
                  headers=mallory)
    assert r.status_code == 200, r.text
    assert api.get(f"/api/coord/work-items/{item_id}", headers=watcher).json()["description"] == long
    events = api.get("/api/coord/audit", params={"kinds": "work_item.updated"}, headers=watcher)
    assert events.status_code == 200, events.text
    [event] = events.json()
    changes = event["payload"]["changes"]
    assert changes["status"] == "in_progress" and long.startswith(changes["description"]), changes.keys()
    assert len(changes["description"]) == 200  # workflows.EVENT_TEXT
    assert len(events.content) < 4096


def test_a_refused_status_is_not_echoed_whole(api: Api) -> None:
    mallory = api.token("ostra/mallory")
    item_id = _item(api, mallory)
    wf_id = api.get(f"/api/coord/work-items/{item_id}", headers=mallory).json()["workflow_id"]
    bad = "x" * 900_000
    for method, path, body in (("post", "/api/coord/workflows", {"project_key": "p", "name": "n", "status": bad}),
                               ("patch", f"/api/coord/workflows/{wf_id}", {"status": bad}),
                               ("post", "/api/coord/work-items", {"workflow_id": wf_id, "title": "t", "status": bad}),
                               ("patch", f"/api/coord/work-items/{item_id}", {"status": bad})):
        r = getattr(api, method)(path, json=body, headers=mallory)
        assert r.status_code == 422 and r.json()["error"]["field"] == "status", (path, r.text[:300])
        assert len(r.content) < 2048, (path, len(r.content))
