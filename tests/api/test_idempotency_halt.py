"""Idempotency keys (contract §2.5) and the halt switch (contract §2.8), over HTTP on both backends."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from coordhub.api.app import create_app
from coordhub.clock import ManualClock
from coordhub.core.hub import Hub
from coordhub.store import Store
from tests.conftest import Api

ME = "HOWARD-HOME/claude-main"


def _count(api: Api, sql: str) -> int:
    row = api.hub.query_sync(lambda tx, now: tx.ex.one(sql))
    return int(next(iter(row.values())))


def test_replay_returns_first_response_without_second_effect(api: Api) -> None:
    me = {**api.token(ME), "Idempotency-Key": "send-1"}
    body = {"to_session": "X/claude-main", "subject": "once", "body": "b"}
    first = api.post("/api/coord/messages", json=body, headers=me)
    second = api.post("/api/coord/messages", json=body, headers=me)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json() and second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _count(api, "SELECT COUNT(*) FROM messages") == 1


def test_every_mutating_kind_replays(api: Api) -> None:
    me = api.token(ME)
    lease = api.post("/api/coord/locks", json={"project_key": "p", "resource": "r"}, headers=me).json()
    calls = [
        ("POST", "/api/coord/locks", {"project_key": "p", "resource": "s"}),
        ("POST", "/api/coord/todos", {"text": "t"}),
        ("PUT", "/api/coord/components", {"project_key": "p", "component": "c", "state": "deployed"}),
        ("POST", "/api/coord/workflows", {"project_key": "p", "name": "w"}),
        ("POST", f"/api/coord/locks/{lease['id']}/renew", {"ttl_hours": 3}),
        ("DELETE", f"/api/coord/locks/{lease['id']}", None),
    ]
    for i, (method, path, body) in enumerate(calls):
        headers = {**me, "Idempotency-Key": f"k{i}"}
        before = api.hub.query_sync(lambda tx, now: tx.events.last_id())
        a = api.request(method, path, json=body, headers=headers)
        mid = api.hub.query_sync(lambda tx, now: tx.events.last_id())
        b = api.request(method, path, json=body, headers=headers)
        after = api.hub.query_sync(lambda tx, now: tx.events.last_id())
        assert a.status_code < 300 and a.json() == b.json(), (path, a.text, b.text)
        assert mid > before and after == mid, path  # the replay emitted no event: no effect


def test_same_key_different_body_is_refused(api: Api) -> None:
    me = {**api.token(ME), "Idempotency-Key": "k"}
    api.post("/api/coord/todos", json={"text": "a"}, headers=me)
    r = api.post("/api/coord/todos", json={"text": "b"}, headers=me)
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_reused"
    r = api.post("/api/coord/messages", json={"subject": "a"}, headers=me)  # other path, same key
    assert r.status_code == 422
    assert _count(api, "SELECT COUNT(*) FROM todos") == 1


def test_keys_are_scoped_per_session(api: Api) -> None:
    a = {**api.token("A/x"), "Idempotency-Key": "same"}
    b = {**api.token("B/x"), "Idempotency-Key": "same"}
    assert api.post("/api/coord/todos", json={"text": "a"}, headers=a).status_code == 201
    assert api.post("/api/coord/todos", json={"text": "a"}, headers=b).status_code == 201
    assert _count(api, "SELECT COUNT(*) FROM todos") == 2


def test_failed_request_is_not_stored_so_a_retry_tries_again(api: Api) -> None:
    a, b = api.token("A/x"), {**api.token("B/x"), "Idempotency-Key": "claim"}
    held = api.post("/api/coord/locks", json={"project_key": "p", "resource": "r"}, headers=a).json()
    assert api.post("/api/coord/locks", json={"project_key": "p", "resource": "r"}, headers=b).status_code == 409
    api.delete(f"/api/coord/locks/{held['id']}", headers=a)
    assert api.post("/api/coord/locks", json={"project_key": "p", "resource": "r"}, headers=b).status_code == 201


def test_bad_key_is_refused(api: Api) -> None:
    me = {**api.token(ME), "Idempotency-Key": "x" * 500}
    assert api.post("/api/coord/todos", json={"text": "a"}, headers=me).status_code == 422


def test_halt_refuses_mutations_shows_on_reads_and_resume_lifts(api: Api) -> None:
    me = api.token(ME)
    r = api.post("/api/coord/halt", json={"reason": "bad deploy, everyone stop"}, headers=api.admin)
    assert r.status_code == 201 and r.json()["halted_by"] == "admin"
    for method, path, body in [("POST", "/api/coord/messages", {"subject": "x"}),
                               ("POST", "/api/coord/locks", {"project_key": "p", "resource": "r"}),
                               ("POST", "/api/coord/todos", {"text": "t"}),
                               ("POST", "/api/coord/tokens", {"name": "Z/z"})]:
        headers = api.admin if path.endswith("tokens") else me
        r = api.request(method, path, json=body, headers=headers)
        assert r.status_code == 423, (path, r.text)
        err = r.json()["error"]
        assert err["halt"]["reason"] == "bad deploy, everyone stop" and err["halt"]["halted_at"]
    status = api.get("/api/coord/status", headers=me).json()
    assert status["halt"]["reason"] == "bad deploy, everyone stop"
    assert api.get("/api/coord/halt", headers=me).json()["halted"] is True
    assert api.post("/api/coord/halt", json={"reason": "again"}, headers=api.admin).status_code in (409, 423)
    assert api.post("/api/coord/resume", headers=api.admin).json()["was"]["reason"] == "bad deploy, everyone stop"
    assert api.post("/api/coord/messages", json={"subject": "x"}, headers=me).status_code == 201
    assert api.get("/api/coord/halt", headers=me).json() == {"halted": False, "halts": [], "paused": None}


def test_halt_survives_restart(api: Api, store_factory: Callable[[], Store], clock: ManualClock) -> None:
    api.post("/api/coord/halt", json={"reason": "maintenance"}, headers=api.admin)
    api.hub.store.close()
    reopened = Hub(store_factory(), clock)
    with TestClient(create_app(reopened, sweep_seconds=0)) as client:
        r = client.post("/api/coord/todos", json={"text": "t"}, headers=api.admin)
        assert r.status_code == 423 and r.json()["error"]["halt"]["reason"] == "maintenance"


def test_rate_limit_answers_429_with_retry_after(hub: Hub) -> None:
    from coordhub.core import tokens
    from coordhub.server import SYSTEM

    admin = hub.mutate_sync(SYSTEM, lambda tx, now: tokens.ensure_admin(tx, None, now)).body
    with TestClient(create_app(hub, sweep_seconds=0, rate_limit=1.0, rate_burst=3)) as client:
        headers = {"Authorization": f"Bearer {admin}"}
        codes = [client.get("/api/coord/status", headers=headers).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = client.get("/api/coord/status", headers=headers)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert r.json()["error"]["code"] == "rate_limited"
        other = client.post("/api/coord/tokens", json={"name": "B/x"}, headers=headers)
        assert other.status_code == 429  # writes count too, and nothing was written
        assert client.get("/health").status_code == 200  # health needs no token and is not limited


def test_bookkeeping_still_works_while_halted(api: Api) -> None:
    me = api.token(ME)
    other = api.token("B/x")
    msg = api.post("/api/coord/messages", json={"to_session": ME, "subject": "s", "requires_ack": True},
                   headers=other).json()
    api.post("/api/coord/halt", json={"reason": "freeze"}, headers=api.admin)
    assert api.post("/api/coord/presence/register", json={}, headers=me).status_code == 200
    assert api.post("/api/coord/presence/heartbeat", json={}, headers=me).status_code == 200
    assert api.post("/api/coord/messages/unshown", json={}, headers=me).json()["messages"][0]["id"] == msg["id"]
    assert api.put(f"/api/coord/messages/{msg['id']}/read", headers=me).status_code == 200
    assert api.post(f"/api/coord/messages/{msg['id']}/ack", headers=me).status_code == 200
    assert api.post("/api/coord/events", json={"kind": "guard.bypassed"}, headers=me).status_code == 201
    conflicts = api.get("/api/coord/locks/conflicts", params={"project_key": "p", "resource": "a"}, headers=me)
    assert conflicts.json()["halt"]["reason"] == "freeze"
    assert api.post("/api/coord/messages", json={"subject": "work"}, headers=me).status_code == 423
