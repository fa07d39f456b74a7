"""Identity comes from the token (contract §2.2): 401 without one, 403 for impersonation."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from coordhub.api.auth import RateLimiter
from coordhub.errors import Unauthorized
from tests.conftest import Api
from tests.web.test_web_sessions import SIGN_IN, sign_in

ME = "HOWARD-HOME/claude-main"
OTHER = "DESKTOP-0O8A1RL/claude-main"


def test_every_coord_route_needs_a_token(api: Api) -> None:
    # the walk sends ~60 unknown tokens from one address: lift the per-address limit on failed
    # authentications, which would answer 429 part-way (tested in tests/abuse/test_rate_limits.py)
    api.client.app.state.auth.failures = RateLimiter(0, 1)
    spec = api.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        if path == "/health":
            continue
        concrete = path.replace("{lease_id}", "00000000-0000-0000-0000-000000000000")
        for name in ("project_key", "component", "message_id", "todo_id", "workflow_id", "item_id", "name"):
            concrete = concrete.replace("{" + name + "}", "00000000-0000-0000-0000-000000000000")
        concrete = concrete.replace("{name:path}", "x")
        for method in methods:
            if (method, path) in SIGN_IN:  # how a browser gets a credential (tests/web/test_web_sessions.py)
                continue
            for headers in ({}, {"Authorization": "Bearer coord_wrong"}, {"Authorization": "Basic abc"}):
                r = api.request(method.upper(), concrete, headers=headers, json={})
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path", "body", "params"), [
    ("POST", "/api/coord/locks", {"project_key": "p", "resource": "x", "session_id": OTHER}, None),
    ("POST", "/api/coord/messages", {"subject": "s", "from_session": OTHER}, None),
    ("PUT", "/api/coord/components", {"project_key": "p", "component": "c", "state": "x", "updated_by": OTHER}, None),
    ("POST", "/api/coord/workflows", {"project_key": "p", "name": "n", "created_by": OTHER}, None),
    ("POST", "/api/coord/todos", {"text": "t", "created_by": OTHER}, None),
    ("DELETE", "/api/coord/locks", None, {"session_id": OTHER, "release_all": "true"}),
    # seed 001 names the caller "in the request body or as a query parameter" (review: the query was ignored)
    ("POST", "/api/coord/locks", {"project_key": "p", "resource": "x"}, {"session_id": OTHER}),
    ("POST", "/api/coord/messages", {"subject": "s"}, {"session_id": OTHER}),
    ("PUT", "/api/coord/components", {"project_key": "p", "component": "c", "state": "x"}, {"session_id": OTHER}),
    ("PUT", "/api/coord/components/p/c", {"state": "x"}, {"session_id": OTHER}),
    ("POST", "/api/coord/workflows", {"project_key": "p", "name": "n"}, {"session_id": OTHER}),
    ("POST", "/api/coord/todos", {"text": "t"}, {"session_id": OTHER}),
])
def test_naming_another_session_is_403_and_changes_nothing(api: Api, method: str, path: str, body: dict | None,
                                                           params: dict | None) -> None:
    me = api.token(ME)
    before = api.hub.query_sync(lambda tx, now: tx.events.last_id())
    r = api.request(method, path, json=body, params=params, headers=me)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden" and OTHER in r.json()["error"]["message"]
    assert api.hub.query_sync(lambda tx, now: tx.events.last_id()) == before


def test_naming_yourself_is_fine(api: Api) -> None:
    me = api.token(ME)
    r = api.post("/api/coord/locks", json={"project_key": "p", "resource": "x", "session_id": ME}, headers=me)
    assert r.status_code == 201 and r.json()["session_id"] == ME


def test_cannot_read_another_sessions_inbox_or_release_its_lease(api: Api) -> None:
    me, other = api.token(ME), api.token(OTHER)
    lease = api.post("/api/coord/locks", json={"project_key": "p", "resource": "x"}, headers=other).json()
    assert api.delete(f"/api/coord/locks/{lease['id']}", headers=me).status_code == 403
    assert api.post(f"/api/coord/locks/{lease['id']}/renew", json={}, headers=me).status_code == 403
    assert api.get("/api/coord/messages", params={"to_session": OTHER}, headers=me).status_code == 403
    msg = api.post("/api/coord/messages", json={"to_session": OTHER, "subject": "secret"}, headers=other).json()
    assert api.get(f"/api/coord/messages/{msg['id']}", headers=me).status_code == 404
    assert api.post(f"/api/coord/messages/{msg['id']}/ack", headers=me).status_code == 404
    # an admin may look, and force-release
    assert api.get("/api/coord/messages", params={"to_session": OTHER}, headers=api.admin).status_code == 200
    r = api.delete(f"/api/coord/locks/{lease['id']}", params={"force": "true"}, headers=api.admin)
    assert r.json()["state"] == "revoked"


def test_admin_only_operations(api: Api) -> None:
    me = api.token(ME)
    assert api.post("/api/coord/halt", json={"reason": "x"}, headers=me).status_code == 403
    assert api.post("/api/coord/resume", headers=me).status_code == 403
    assert api.post("/api/coord/tokens", json={"name": "X/y"}, headers=me).status_code == 403
    assert api.get("/api/coord/tokens", headers=me).status_code == 403


def test_revoked_token_is_refused_and_only_hashes_are_stored(api: Api) -> None:
    r = api.post("/api/coord/tokens", json={"name": ME}, headers=api.admin)
    token = r.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/coord/status", headers=headers).status_code == 200
    rows = api.hub.query_sync(lambda tx, now: tx.ex.all("SELECT * FROM tokens"))
    assert all(token not in str(row.values()) for row in rows)
    assert api.delete(f"/api/coord/tokens/{ME}", headers=api.admin).json()["revoked"] == 1
    assert api.get("/api/coord/status", headers=headers).status_code == 401
    listed = api.get("/api/coord/tokens", params={"include_revoked": "true"}, headers=api.admin).json()
    assert any(t["name"] == ME and t["revoked_at"] for t in listed)
    assert all("token" not in t or t["token"] is None for t in listed)


def _last_event(api: Api) -> int:
    return int(api.hub.query_sync(lambda tx, now: tx.events.last_id()))


def test_a_write_checks_its_token_in_its_own_transaction_whatever_the_token_cache_holds(api: Api) -> None:
    """Another process's revocation reaches this one's token cache only when its event does (milliseconds;
    longer while its announcements are crowded out). No write waits for that: each compares its token's epoch
    with its session's row in its own transaction. Here the revocation is written without its event, so the
    cache still holds the token: every kind of write (hot route or not, a web session's too) is refused 401
    and leaves nothing; a token created afterwards for the same session writes."""
    me = api.token(ME)
    page = sign_in(api.client, me["Authorization"].split()[1])
    assert api.get("/api/coord/messages", headers=me).status_code == 200  # the token is cached now
    assert api.hub.store.write_sync(lambda tx: tx.tokens.revoke(ME, 1e12)) == 1
    before = _last_event(api)
    writes = [("POST", "/api/coord/messages", {"to_session": OTHER, "subject": "s", "body": "b"}),
              ("POST", "/api/coord/locks", {"project_key": "p", "resource": "a.py"}),
              ("POST", "/api/coord/todos", {"project_key": "p", "text": "t"}),
              ("POST", "/api/coord/presence/heartbeat", {"session_id": ME})]
    for method, path, body in writes:
        r = api.request(method, path, json=body, headers=me)
        assert r.status_code == 401, (path, r.status_code, r.text)
    r = api.post("/api/coord/messages", json={"to_session": OTHER, "subject": "s", "body": "b"},
                 headers=page)  # the web session signed in with that token, still cached by the hub
    assert r.status_code == 401, r.text
    assert _last_event(api) == before
    assert api.hub.query_sync(lambda tx, now: tx.ex.one("SELECT COUNT(*) AS n FROM messages"))["n"] == 0
    again = api.token(ME)
    r = api.post("/api/coord/messages", json={"to_session": OTHER, "subject": "s", "body": "b"}, headers=again)
    assert r.status_code == 201, r.text


def test_a_replay_is_refused_to_a_token_revoked_since(api: Api) -> None:
    """An idempotent replay writes nothing, but its stored answer is the session's: a token revoked since the
    first request (its cache entry still alive, as in another process) gets 401, not the stored answer."""
    me = api.token(ME)
    send = {"to_session": OTHER, "subject": "s", "body": "b"}
    keyed = {**me, "Idempotency-Key": "replay-after-revoke"}
    first = api.post("/api/coord/messages", json=send, headers=keyed)
    assert first.status_code == 201, first.text
    again = api.post("/api/coord/messages", json=send, headers=keyed)
    assert again.status_code == 201 and again.json() == first.json()  # a replay while the token is good
    assert api.hub.store.write_sync(lambda tx: tx.tokens.revoke(ME, 1e12)) == 1  # no event: the cache holds it
    late = api.post("/api/coord/messages", json=send, headers=keyed)
    assert late.status_code == 401, late.text
    assert "revoked" in late.json()["error"]["message"]


def test_a_revocation_earlier_in_a_batch_refuses_the_writes_after_it_in_that_batch(api: Api) -> None:
    """The session's row read with the batch's ``BEGIN`` (PostgreSQL) is dropped by a revocation in the same
    batch: a write before it commits, one after it is refused; a revocation that fails moves no epoch."""
    from coordhub.core import tokens
    from coordhub.core.identity import Actor

    hub = api.hub
    minted = hub.store.write_sync(lambda tx: tokens.mint(tx, ME, 1.0, purpose="test"))
    acting = hub.store.read_sync(lambda tx: tokens.authenticate(tx, minted))
    assert acting is not None and acting.token_epoch == 0

    def note(tx: Any, now: float) -> Any:
        return tx.events.append({"kind": "test.noted", "session_id": ME, "project_key": None, "subject_id": None,
                                 "payload": "{}", "created_at": now})

    def revoke(tx: Any, now: float) -> Any:
        return tokens.retire(tx, ME, now, reason="test")

    def revoke_and_fail(tx: Any, now: float) -> Any:
        tokens.retire(tx, ME, now, reason="test")
        raise Unauthorized("rolled back")

    gate = threading.Event()
    hub.store.submit_write(lambda tx: gate.wait(10))  # hold the writer so the next units batch together
    system = Actor("coordhub/system", is_admin=True)
    futures = [hub.store.submit_write(hub.unit_of_work(actor, op, 200, None, None, None))
               for actor, op in ((acting, note), (system, revoke_and_fail), (acting, note), (system, revoke),
                                 (acting, note))]
    gate.set()
    assert futures[0].result(10).status == 200 and futures[2].result(10).status == 200
    assert futures[3].result(10).body["revoked"] == 1
    for refused in (futures[1], futures[4]):
        with pytest.raises(Unauthorized):
            refused.result(10)
    kinds = hub.query_sync(lambda tx, now: [e["kind"] for e in tx.events.after(0)])
    assert kinds.count("test.noted") == 2


def test_last_admin_token_cannot_be_revoked(api: Api) -> None:
    r = api.delete("/api/coord/tokens/admin", headers=api.admin)
    assert r.status_code == 409


def test_no_auth_mode_takes_identity_from_the_body(open_api: TestClient) -> None:
    r = open_api.post("/api/coord/locks", json={"project_key": "p", "resource": "x", "session_id": OTHER})
    assert r.status_code == 201 and r.json()["session_id"] == OTHER
    r = open_api.post("/api/coord/locks", json={"project_key": "p", "resource": "x", "session_id": ME})
    assert r.status_code == 409
    r = open_api.post("/api/coord/messages", json={"from_session": ME, "to_session": OTHER, "subject": "s"})
    assert r.status_code == 201
    r = open_api.get("/api/coord/messages", params={"to_session": OTHER, "unread_only": "true"})
    assert [m["subject"] for m in r.json()] == ["s"]
    r = open_api.post("/api/coord/locks", json={"project_key": "p", "resource": "y"})
    assert r.status_code == 422 and "no-auth" in r.json()["error"]["message"]
    r = open_api.post("/api/coord/todos", json={"text": "t"}, headers={"X-Coord-Session": ME})
    assert r.status_code == 201 and r.json()["created_by"] == ME


def test_no_auth_mode_takes_identity_from_the_query_as_seed_001_says(open_api: TestClient) -> None:
    """Seed 001: "Pass `session_id` in the request body or as a query parameter" (review: a 422 on these)."""
    who = {"session_id": ME}
    r = open_api.post("/api/coord/locks", params=who, json={"project_key": "p", "resource": "server/src/"})
    assert r.status_code == 201 and r.json()["session_id"] == ME, r.text
    r = open_api.put("/api/coord/components", params=who, json={"project_key": "p", "component": "c", "state": "x"})
    assert r.status_code == 200 and r.json()["updated_by"] == ME, r.text
    r = open_api.put("/api/coord/components/p/d", params=who, json={"state": "x"})
    assert r.status_code == 200 and r.json()["updated_by"] == ME, r.text
    r = open_api.post("/api/coord/messages", params=who, json={"to_session": OTHER, "subject": "s"})
    assert r.status_code == 201 and r.json()["from_session"] == ME, r.text
    r = open_api.post("/api/coord/workflows", params=who, json={"project_key": "p", "name": "n"})
    assert r.status_code == 201 and r.json()["created_by"] == ME, r.text
    r = open_api.post("/api/coord/todos", params=who, json={"text": "t"})
    assert r.status_code == 201 and r.json()["created_by"] == ME, r.text
    # the body and the query naming two sessions: which one acts is not guessed
    r = open_api.post("/api/coord/locks", params={"session_id": OTHER},
                      json={"project_key": "p", "resource": "elsewhere", "session_id": ME})
    assert r.status_code == 422 and "name different sessions" in r.json()["error"]["message"], r.text
