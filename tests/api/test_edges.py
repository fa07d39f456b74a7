"""Small API edges (issue 7 point 20), on both backends through the real app.

Empty ids in seed 001's literal paths get the JSON envelope (never a bare 307);
an empty query value is no filter on every endpoint; a body not sent as JSON
is told to be; every time in an event is ISO 8601; a component update without
version or notes keeps them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from coordhub.core import events
from tests.conftest import Api

A = "DESKTOP-0O8A1RL/claude-main"


def _envelope(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.headers, r.text)
    assert r.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code
    return error


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", "/api/coord/locks/?session_id="), ("PATCH", "/api/coord/work-items/"),
    ("PUT", "/api/coord/messages//read"), ("GET", "/api/coord/locks/"), ("POST", "/api/coord/messages/")])
def test_empty_ids_in_literal_paths_get_the_envelope(api: Api, method: str, path: str) -> None:
    a = api.token(A)
    r = api.request(method, path, headers=a, json={"status": "completed"} if method in ("PATCH", "POST") else None,
                    follow_redirects=False)
    error = _envelope(r, 404, "not_found")
    assert "empty" in error["message"] and method in error["message"]


def test_an_unknown_path_names_itself(api: Api) -> None:
    error = _envelope(api.get("/api/coord/nothing", headers=api.admin), 404, "not_found")
    assert error["message"] == "no endpoint for GET /api/coord/nothing"


def test_empty_query_values_mean_no_filter_on_every_endpoint(api: Api) -> None:
    """Every GET route without path parameters, with each of its query parameters given empty."""
    a = api.token(A)
    api.post("/api/coord/locks", json={"project_key": "p", "resource": "src/", "description": "d"}, headers=a)
    api.post("/api/coord/todos", json={"text": "t", "project_key": "p"}, headers=a)
    spec = api.get("/openapi.json").json()
    checked = 0
    for path, ops in spec["paths"].items():
        op = ops.get("get")
        if op is None or "{" in path or path.endswith(("/events", "/wait")):  # streams and long-polls wait
            continue
        params = [p for p in op.get("parameters", []) if p["in"] == "query"]
        if not params:
            continue
        query = "&".join(f"{p['name']}=" for p in params)
        plain, empty = api.get(path, headers=api.admin), api.get(f"{path}?{query}", headers=api.admin)
        required = any(p.get("required") for p in params)  # empty is absent: a required one is then missing
        assert empty.status_code == plain.status_code == (422 if required else 200), (path, query, empty.text)
        checked += 1
    assert checked >= 5
    leases = api.get("/api/coord/locks?project_key=&resource=", headers=a).json()
    assert [x["resource"] for x in leases] == ["src/"]
    assert len(api.get("/api/coord/todos?project_key=&user=", headers=a).json()) == 1


@pytest.mark.parametrize("query", ["limit=1&limit=500", "after_seq=0&limit=2&%6Cimit=3", "limit=1&li%6dit=2",
                                   "project_key=p&project_key=q"])
@pytest.mark.parametrize("path", ["/api/coord/messages", "/api/coord/locks"])  # a hot route, a FastAPI route
def test_a_query_parameter_given_twice_is_refused(api: Api, path: str, query: str) -> None:
    """FastAPI keeps the last of two values where a proxy or log in front may have read the first: refused, named."""
    a = api.token(A)
    name = "project_key" if query.startswith("project_key") else "limit"
    error = _envelope(api.get(f"{path}?{query}", headers=a), 422, "invalid")
    assert error["field"] == name and "more than once" in error["message"]


def test_a_write_with_a_query_parameter_given_twice_writes_nothing(api: Api) -> None:
    a = api.token(A)
    lease = {"project_key": "p", "resource": "src/x.py"}
    _envelope(api.post("/api/coord/locks?session_id=A&session_id=B", json=lease, headers=a), 422, "invalid")
    assert api.get("/api/coord/locks", headers=a).json() == []
    ok = api.get("/api/coord/messages?limit=1&after_seq=0&thread_id=", headers=a)  # distinct names, one empty
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_not_sent_as_json_is_told_to_be(api: Api, content_type: str) -> None:
    a = api.token(A)
    r = api.post("/api/coord/todos", content=b'{"text": "x"}', headers={**a, "Content-Type": content_type})
    error = _envelope(r, 415, "unsupported_media_type")
    assert "Content-Type: application/json" in error["message"] and content_type in error["message"]
    assert api.get("/api/coord/todos", headers=a).json() == []  # nothing written


def test_json_content_types_and_a_bare_body_still_work(api: Api) -> None:
    a = api.token(A)
    for content_type in ("application/json", "application/json; charset=utf-8", "application/merge-patch+json"):
        r = api.post("/api/coord/todos", content=b'{"text": "x"}', headers={**a, "Content-Type": content_type})
        assert r.status_code == 201, (content_type, r.text)
    r = api.post("/api/coord/todos", content=b'{"text": "y"}', headers={**a, "Content-Type": "application/json"})
    assert r.status_code == 201


def test_every_time_in_an_event_is_iso_8601(api: Api) -> None:
    a = api.token(A)
    lease = api.post("/api/coord/locks", json={"project_key": "p", "resource": "src/", "description": "d",
                                                "ttl_hours": 1}, headers=a).json()
    api.post(f"/api/coord/locks/{lease['id']}/renew", json={"ttl_hours": 2}, headers=a)
    api.delete(f"/api/coord/locks/{lease['id']}", headers=a)
    api.post("/api/coord/messages", json={"to_session": A, "subject": "s", "body": "b"}, headers=a)
    api.put("/api/coord/components", json={"project_key": "p", "component": "c", "state": "deployed"}, headers=a)
    api.post("/api/coord/presence/register", json={}, headers=a)
    api.post("/api/coord/halt", json={"reason": "r"}, headers=api.admin)
    api.post("/api/coord/resume", headers=api.admin)
    rows = api.hub.query_sync(lambda tx, now: tx.events.after(0, 1000))
    rendered = [events.render(r) for r in rows]
    granted = next(e for e in rendered if e["kind"] == "lease.granted")
    assert granted["payload"]["expires_at"] == lease["expires_at"]
    times = [(e["kind"], k, v) for e in rendered for k, v in e["payload"].items() if k.endswith("_at")]
    assert times
    for kind, key, value in times:
        assert value is None or (isinstance(value, str) and datetime.fromisoformat(value)), (kind, key, value)


def test_a_component_update_without_version_or_notes_keeps_them(api: Api) -> None:
    a = api.token(A)
    first = {"project_key": "p", "component": "web", "state": "deployed", "version": "1.2.3", "notes": "green"}
    api.put("/api/coord/components", json=first, headers=a)
    r = api.put("/api/coord/components", json={"project_key": "p", "component": "web", "state": "degraded"},
                headers=a)
    assert (r.json()["state"], r.json()["version"], r.json()["notes"]) == ("degraded", "1.2.3", "green")
    r = api.put("/api/coord/components/p/web", json={"state": "deployed", "version": None}, headers=a)
    assert (r.json()["version"], r.json()["notes"]) == (None, "green")  # an explicit null clears
    r = api.put("/api/coord/components", json={"project_key": "p", "component": "new", "state": "built"}, headers=a)
    assert (r.json()["version"], r.json()["notes"]) == (None, None)


@pytest.mark.parametrize("field", ["title", "priority", "status"])
def test_a_partial_update_refuses_null_for_a_field_with_no_empty_value(api: Api, field: str) -> None:
    """Review: ``PATCH /work-items/{id}`` with ``{"title": null}`` or ``{"priority": null}`` answered 500 (the
    database's NOT NULL); such a field may be left out (kept) but not nulled. Nullable fields still clear."""
    a = api.token(A)
    wf = api.post("/api/coord/workflows", json={"project_key": "p", "name": "wf"}, headers=a).json()["id"]
    item = api.post("/api/coord/work-items", json={"workflow_id": wf, "title": "t", "priority": 2,
                                                   "description": "d", "assigned_to": A}, headers=a).json()
    path = f"/api/coord/work-items/{item['id']}"
    error = _envelope(api.patch(path, json={field: None}, headers=a), 422, "invalid")
    assert [p["field"] for p in error["problems"]] == [field] and "not null" in error["problems"][0]["problem"]
    r = api.patch(path, json={"description": None, "assigned_to": None}, headers=a)
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("title", "priority", "status", "description", "assigned_to")} == {
        "title": "t", "priority": 2, "status": "pending", "description": None, "assigned_to": None}
    # the other partial updates: a workflow's status and a component's state are required, so null is a 422 too
    _envelope(api.patch(f"/api/coord/workflows/{wf}", json={"status": None}, headers=a), 422, "invalid")
    _envelope(api.put("/api/coord/components/p/web", json={"state": None}, headers=a), 422, "invalid")


def test_emit_renders_any_epoch_time_it_is_given(api: Api) -> None:
    """The one place: an emitter passing epoch seconds under a ``*_at`` key still stores ISO 8601."""
    def unit(tx: Any, now: float) -> int:
        return events.emit(tx, "test.kind", now, session_id=A, started_at=now, count=3, done_at=None,
                           flag_at=True)

    api.hub.mutate_sync(events_actor(), unit)
    row = api.hub.query_sync(lambda tx, now: tx.events.after(0, 1000))[-1]
    payload = events.render(row)["payload"]
    assert isinstance(payload["started_at"], str) and datetime.fromisoformat(payload["started_at"])
    assert (payload["count"], payload["done_at"], payload["flag_at"]) == (3, None, True)


def events_actor() -> Any:
    from coordhub.core.identity import Actor

    return Actor(A)


def test_the_access_log_is_off_by_default_and_on_with_the_flag(tmp_path: Path) -> None:
    import httpx2

    from tests.conftest import LiveHub

    for args, env, logged in (((), {}, False), (("--access-log",), {}, True), ((), {"COORD_ACCESS_LOG": "1"}, True)):
        hub = LiveHub(tmp_path / f"hub-{len(args)}-{len(env)}", args=args, env=env).start()
        try:
            assert httpx2.get(hub.url + "/api/coord/nowhere", headers={"Authorization": "Bearer x"}).status_code
        finally:
            hub.stop()
        assert ("/api/coord/nowhere" in hub.log.read_text()) is logged, (args, env, hub.log.read_text()[-800:])
