"""Who may do what (contract §2.2, §2.3, §2.6, §2.10), beyond tests/api/test_auth.py.

test_auth checks that a missing or wrong token gets 401 everywhere and that a
handful of impersonations get 403. Here, walking the OpenAPI document so new
endpoints are covered as they come: a *revoked* token refused everywhere;
every identity field of every write naming another session refused with 403
and nothing written anywhere in the store; every read of another session's
view refused. Then: a direct message invisible and untouchable for everyone
but its two parties, on the live event stream too; an idempotency key that
never replays another session's answer; leases and fences only their holder
can use; session tokens that cannot administer; tokens kept only as hashes,
in the tables and in the files; and the body size limit at its exact edge.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from coordhub.api.auth import RateLimiter
from coordhub.core import tokens
from tests.conftest import Api, LiveHub
from tests.web.test_web_sessions import SIGN_IN

ME, OTHER, THIRD = "HOWARD-HOME/claude-main", "DESKTOP-0O8A1RL/claude-main", "LAPTOP-7/codex"
IDENTITY_FIELDS = ("session_id", "from_session", "created_by", "updated_by", "completed_by")
MUTATING = ("post", "put", "patch", "delete")
LIMIT = 1_048_576  # create_app's default --max-body-bytes


def fingerprint(api: Api) -> dict[str, list[str]]:
    """Every row of every table, so a test can show a refused request wrote nothing at all."""
    sql = ("SELECT name AS t FROM sqlite_master WHERE type = 'table'" if api.hub.store.name == "sqlite"
           else "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'")

    def dump(tx: Any, now: float) -> dict[str, list[str]]:
        return {r["t"]: sorted(repr(sorted(row.items())) for row in tx.ex.all(f"SELECT * FROM {r['t']}"))
                for r in tx.ex.all(sql)}

    return dict(api.hub.query_sync(dump))


def refused(api: Api, status: int, method: str, url: str, **kw: Any) -> dict[str, Any]:
    """Send a request that must be refused with ``status`` and change nothing; return the error body."""
    before = fingerprint(api)
    r = api.request(method, url, **kw)
    assert r.status_code == status, (method, url, r.status_code, r.text)
    assert fingerprint(api) == before, f"{method} {url} was refused with {status} but wrote to the store"
    return dict(r.json())


def concrete(path: str) -> str:
    """An OpenAPI path with every parameter filled by a well-formed value."""
    path = re.sub(r"\{[a-z_]+_id\}", str(uuid.uuid4()), path)
    return path.replace("{project_key}", "p").replace("{component}", "c").replace("{name}", "X/y")


# ---- revoked tokens --------------------------------------------------------------------------------

def test_every_endpoint_refuses_a_revoked_token(api: Api) -> None:
    # this walk sends ~100 revoked tokens from one address; the per-address limit on failed
    # authentications would answer 429 part-way (it is tested in tests/abuse/test_rate_limits.py)
    api.client.app.state.auth.failures = RateLimiter(0, 1)
    revoked = []
    for name, admin in ((ME, False), ("OPS/root", True)):
        token = api.post("/api/coord/tokens", json={"name": name, "admin": admin}, headers=api.admin).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert api.get("/api/coord/whoami", headers=headers).json()["admin"] is admin  # now in the token cache
        assert api.delete(f"/api/coord/tokens/{name}", headers=api.admin).json()["revoked"] == 1
        revoked.append(headers)
    new = api.token(ME)  # the session itself lives on with a new token
    assert api.get("/api/coord/whoami", headers=new).status_code == 200

    spec = api.get("/openapi.json").json()
    checked = 0
    for path, methods in spec["paths"].items():
        if path == "/health":
            continue
        for method in methods:
            if (method, path) in SIGN_IN:  # how a browser gets a credential: no bearer token to check
                continue
            for headers in revoked:
                r = api.request(method.upper(), concrete(path), headers=headers, json={})
                assert r.status_code == 401, (method, path, r.text)
                assert r.json()["error"]["code"] == "unauthorized" and r.headers["WWW-Authenticate"] == "Bearer"
            checked += 1
    assert checked >= 45, "the walk found too few endpoints; did the OpenAPI document change shape?"


# ---- naming another session -------------------------------------------------------------------------

def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` and pick the object member of an optional body (``anyOf: [X, null]``)."""
    while True:
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        elif "anyOf" in schema:
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        else:
            return schema


def _minimal(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    """The smallest value the schema accepts (the identity check runs after validation, so it must pass)."""
    schema = _resolve(spec, schema)
    kind = schema.get("type")
    if kind == "object":
        return {k: _minimal(spec, schema["properties"][k]) for k in schema.get("required", [])}
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if kind == "array":
        return [_minimal(spec, schema.get("items", {}))] * max(1, schema.get("minItems", 1))
    return "x"


# The route refuses before it looks at identity unless the request says it means it.
EXTRA_QUERY = {("delete", "/api/coord/locks"): {"release_all": "true"}}


def impersonations(spec: dict[str, Any]) -> Iterator[tuple[str, str, str, str, Any]]:
    """Every (method, path, where, field, body) of a mutating operation that can name a session."""
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method not in MUTATING:
                continue
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            body = _minimal(spec, schema) if schema else None
            for p in op.get("parameters", []):
                if p["in"] == "query" and p["name"] in IDENTITY_FIELDS:
                    yield method, path, "query", p["name"], body
            props = _resolve(spec, schema).get("properties", {}) if schema else {}
            for name in IDENTITY_FIELDS:
                if name in props:
                    yield method, path, "body", name, body


def test_every_identity_field_of_every_write_refuses_another_session(api: Api) -> None:
    me = api.token(ME)
    spec = api.get("/openapi.json").json()
    found = set()
    for method, path, where, name, body in impersonations(spec):
        found.add((method, path, name))
        params = dict(EXTRA_QUERY.get((method, path), {}))
        if where == "query":
            params[name] = OTHER
        else:
            body = {**body, name: OTHER}
        err = refused(api, 403, method.upper(), concrete(path), headers=me, params=params, json=body)["error"]
        assert err["code"] == "forbidden" and OTHER in err["message"] and err["acting_as"] == ME, (method, path)
    # The walk must keep seeing at least what the routes had when this test was written.
    assert found >= {
        ("post", "/api/coord/locks", "session_id"), ("delete", "/api/coord/locks", "session_id"),
        ("delete", "/api/coord/locks/{lease_id}", "session_id"),
        ("post", "/api/coord/locks/{lease_id}/renew", "session_id"),
        ("post", "/api/coord/messages", "from_session"), ("put", "/api/coord/messages/{message_id}/read", "session_id"),
        ("post", "/api/coord/messages/{message_id}/ack", "session_id"), ("post", "/api/coord/todos", "created_by"),
        ("post", "/api/coord/todos/{todo_id}/done", "completed_by"), ("post", "/api/coord/workflows", "created_by"),
        ("patch", "/api/coord/workflows/{workflow_id}", "updated_by"), ("post", "/api/coord/work-items", "created_by"),
        ("patch", "/api/coord/work-items/{item_id}", "updated_by"), ("put", "/api/coord/components", "updated_by"),
        ("put", "/api/coord/components/{project_key}/{component}", "updated_by"),
        ("post", "/api/coord/presence/register", "session_id"), ("post", "/api/coord/presence/heartbeat", "session_id"),
        ("post", "/api/coord/presence/deregister", "session_id"),
    }, sorted(found)
    # with auth on, the no-auth identity header may only name the token's own session (tests/security/
    # test_session_header.py): naming another is refused, not ignored
    r = api.post("/api/coord/todos", json={"text": "t"}, headers={**me, "X-Coord-Session": OTHER})
    assert r.status_code == 403 and r.json()["error"]["code"] == "session_mismatch"
    r = api.post("/api/coord/todos", json={"text": "t"}, headers={**me, "X-Coord-Session": ME})
    assert r.status_code == 201 and r.json()["created_by"] == ME


def test_an_idempotency_key_never_replays_another_sessions_response(api: Api) -> None:
    me, third = api.token(ME), api.token(THIRD)
    body = {"to_session": OTHER, "subject": "secret-2b8"}
    first = api.post("/api/coord/messages", json=body, headers={**me, "Idempotency-Key": "k-1"})
    again = api.post("/api/coord/messages", json=body, headers={**third, "Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"] and again.json()["from_session"] == THIRD


# Query parameters of reads that filter what anyone may see rather than choose whose view it is.
FILTERS = {("/api/coord/locks", "session_id"), ("/api/coord/events", "session_id"),
           ("/api/coord/events", "to_session")}


def test_every_read_of_another_sessions_view_is_refused(api: Api) -> None:
    me = api.token(ME)
    api.post("/api/coord/messages", json={"to_session": OTHER, "subject": "s"}, headers=api.token(THIRD))
    spec = api.get("/openapi.json").json()
    found = set()
    for path, ops in spec["paths"].items():
        op = ops.get("get", {})
        names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        required = {p["name"]: _minimal(spec, p["schema"]) for p in op.get("parameters", [])
                    if p["in"] == "query" and p.get("required")}
        for name in sorted(names & {"session_id", "to_session"}):
            if (path, name) in FILTERS:
                continue
            found.add((path, name))
            params = {**required, name: OTHER, **({"timeout": 0} if "timeout" in names else {})}
            r = api.get(concrete(path), params=params, headers=me)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (path, name, r.text)
            r = api.get(concrete(path), params={**params, name: ME}, headers=me)
            assert r.status_code in (200, 404), (path, name, r.text)  # naming yourself is fine
    assert found >= {("/api/coord/status", "session_id"), ("/api/coord/messages", "to_session"),
                     ("/api/coord/messages/unread-count", "session_id"), ("/api/coord/messages/wait", "session_id"),
                     ("/api/coord/messages/{message_id}", "session_id"), ("/api/coord/notifications", "session_id"),
                     ("/api/coord/locks/conflicts", "session_id")}, sorted(found)
    # an admin may look at anyone's view
    assert api.get("/api/coord/messages/unread-count", params={"session_id": OTHER},
                   headers=api.admin).json() == {"session_id": OTHER, "unread": 1}


# ---- direct messages ----------------------------------------------------------------------------------

def test_a_direct_message_is_hidden_from_and_untouchable_by_everyone_else(api: Api) -> None:
    me, other, third = api.token(ME), api.token(OTHER), api.token(THIRD)
    dm = api.post("/api/coord/messages", json={"to_session": OTHER, "subject": "secret-7f3", "body": "pw",
                                               "requires_ack": True}, headers=me).json()
    url = f"/api/coord/messages/{dm['id']}"

    # a third session: the message does not exist for it, whatever it names
    for method, target in (("GET", url), ("PUT", url + "/read"), ("POST", url + "/ack")):
        refused(api, 404, method, target, headers=third)
        refused(api, 403, method, target, headers=third, params={"session_id": OTHER})
    refused(api, 404, "POST", "/api/coord/messages", headers=third,
            json={"to_session": ME, "subject": "re", "reply_to": dm["id"]})  # cannot join its thread
    seen = [api.get("/api/coord/messages", params={"unread_only": u}, headers=third).text for u in ("true", "false")]
    seen += [api.get("/api/coord/audit", headers=third).text, api.get("/api/coord/notifications", headers=third).text,
             api.get("/api/coord/messages/wait", params={"timeout": "0"}, headers=third).text]
    assert not any(dm["id"] in text or "secret-7f3" in text for text in seen), seen

    # the sender sees it but may not read or ack it for its recipient
    assert api.get(url, headers=me).json()["subject"] == "secret-7f3"
    refused(api, 403, "PUT", url + "/read", headers=me)
    refused(api, 403, "POST", url + "/ack", headers=me)
    got = api.get(url, headers=other).json()
    assert not got["read"] and got["acked_at"] is None
    assert api.get("/api/coord/messages/unread-count", headers=other).json()["unread"] == 1


def _frames(hub: LiveHub, token: str, params: dict[str, str], stop: Callable[[], str | None],
            on_connect: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """The events one SSE stream shows, up to the one whose ``subject_id`` is ``stop()``.

    ``on_connect`` runs once the stream is connected, for events made while it is open.
    """
    out: list[dict[str, Any]] = []
    with httpx2.Client(headers={"Authorization": f"Bearer {token}"},
                       timeout=httpx2.Timeout(5.0, read=10.0)) as client, \
            client.stream("GET", hub.url + "/api/coord/events", params=params) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith(": connected") and on_connect is not None:
                on_connect()
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
                if out[-1]["subject_id"] == stop():
                    return out
    raise AssertionError(f"the stream ended before event {stop()}")


def test_the_event_stream_never_shows_another_sessions_direct_messages(live_hub: LiveHub) -> None:
    me, other, third = (live_hub.token(s) for s in (ME, OTHER, THIRD))
    sent: dict[str, str] = {}

    def call(token: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = httpx2.request(method, live_hub.url + path, json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code < 300, r.text
        return dict(r.json())

    def converse() -> None:  # a direct message, read and acked by its recipient; then a broadcast as a marker
        dm = call(me, "POST", "/api/coord/messages", {"to_session": OTHER, "subject": "secret-9c1",
                                                      "requires_ack": True})
        call(other, "PUT", f"/api/coord/messages/{dm['id']}/read")
        call(other, "POST", f"/api/coord/messages/{dm['id']}/ack")
        sent.update(dm=dm["id"], marker=call(me, "POST", "/api/coord/messages", {"subject": "marker"})["id"])

    def marker() -> str | None:
        return sent.get("marker")

    seen = {"live": _frames(live_hub, third, {}, marker, on_connect=converse)}
    for name, params in {"replay": {"after": "0"}, "to_session": {"after": "0", "to_session": OTHER},
                         "session_id": {"after": "0", "session_id": ME},
                         "kinds": {"after": "0", "kinds": "message."}}.items():
        seen[name] = _frames(live_hub, third, params, marker)
    for name, frames in seen.items():
        assert frames[-1]["subject_id"] == sent["marker"]
        leaked = [f for f in frames if f["subject_id"] == sent["dm"] or "secret-9c1" in json.dumps(f)]
        assert not leaked, (name, leaked)
    # the recipient does see it, so the streams above would have shown it had it leaked
    theirs = _frames(live_hub, other, {"after": "0"}, marker)
    assert {f["kind"] for f in theirs if f["subject_id"] == sent["dm"]} >= {"message.sent", "message.read",
                                                                            "message.acked"}


# ---- leases and fences ---------------------------------------------------------------------------------

def test_only_the_holder_ends_renews_or_writes_with_a_lease(api: Api) -> None:
    me, other = api.token(ME), api.token(OTHER)
    flow = api.post("/api/coord/workflows", json={"project_key": "p", "name": "w"}, headers=other).json()
    item = api.post("/api/coord/work-items", json={"workflow_id": flow["id"], "title": "t"}, headers=other).json()
    lease = api.post("/api/coord/locks", json={"project_key": "p", "resource": f"work-item:{item['id']}"},
                     headers=other).json()
    url = f"/api/coord/locks/{lease['id']}"

    refused(api, 403, "DELETE", url, headers=me)
    refused(api, 403, "DELETE", url, headers=me, params={"force": "true"})  # force-release is for admins
    refused(api, 403, "POST", url + "/renew", headers=me, json={"ttl_hours": 9})
    refused(api, 403, "DELETE", "/api/coord/locks", headers=me, params={"session_id": OTHER, "release_all": "true"})
    # its fence does not make anyone else its holder
    err = refused(api, 409, "PATCH", f"/api/coord/work-items/{item['id']}", headers=me,
                  json={"status": "completed", "fence": lease["fence"]})
    assert err["error"]["code"] == "stale_fence"
    err = refused(api, 409, "PUT", "/api/coord/components", headers=me,
                  json={"project_key": "p", "component": "api", "state": "deployed", "fence": lease["fence"]})
    assert err["error"]["code"] == "stale_fence"
    refused(api, 409, "POST", "/api/coord/locks", headers=me, json={"project_key": "p", "resource": lease["resource"]})

    check = api.get("/api/coord/locks/check", params={"fence": lease["fence"]}, headers=me).json()
    assert check["current"] and check["lease"]["session_id"] == OTHER
    r = api.patch(f"/api/coord/work-items/{item['id']}", json={"status": "completed", "fence": lease["fence"]},
                  headers=other)
    assert r.status_code == 200  # while the holder may


# ---- administration ------------------------------------------------------------------------------------

def test_a_session_token_cannot_administer(api: Api) -> None:
    me, other = api.token(ME), api.token(OTHER)
    refused(api, 403, "POST", "/api/coord/tokens", headers=me, json={"name": ME, "admin": True})
    refused(api, 403, "POST", "/api/coord/tokens", headers=me, json={"name": OTHER})
    refused(api, 403, "DELETE", f"/api/coord/tokens/{OTHER}", headers=me)
    refused(api, 403, "DELETE", "/api/coord/tokens/admin", headers=me)
    refused(api, 403, "POST", "/api/coord/halt", headers=me, json={"reason": "mine now"})
    assert api.get("/api/coord/whoami", headers=other).status_code == 200  # its token still works
    assert not api.get("/api/coord/whoami", headers=me).json()["admin"]

    assert api.post("/api/coord/halt", json={"reason": "deploy freeze"}, headers=api.admin).status_code == 201
    refused(api, 403, "POST", "/api/coord/resume", headers=me)
    assert api.get("/api/coord/halt", headers=me).json()["reason"] == "deploy freeze"


# ---- tokens at rest --------------------------------------------------------------------------------------

def _pieces(token: str, size: int = 16) -> set[str]:
    return {token[i:i + size] for i in range(len(token) - size + 1)}


def test_tokens_are_stored_only_as_hashes(api: Api) -> None:
    minted = [api.admin_token]
    for name, admin in ((ME, False), (OTHER, False), ("OPS/root", True), (THIRD, False)):
        minted.append(api.post("/api/coord/tokens", json={"name": name, "admin": admin},
                               headers=api.admin).json()["token"])
    for token in minted:  # use each, so whatever the hub keeps about a caller exists
        assert api.post("/api/coord/todos", json={"text": "t"},
                        headers={"Authorization": f"Bearer {token}"}).status_code == 201
    api.delete(f"/api/coord/tokens/{THIRD}", headers=api.admin)

    tables = fingerprint(api)
    stored = "\n".join(row for rows in tables.values() for row in rows)
    hashes = "\n".join(tables["tokens"])
    for token in minted:
        assert not [p for p in _pieces(token) if p in stored], "a piece of a token is stored in clear"
        assert tokens.hash_token(token) in hashes
    if api.hub.store.name == "sqlite":  # and in the files, pages not yet checkpointed or freed included
        db = api.hub.store.path  # type: ignore[attr-defined]
        raw = b"".join(f.read_bytes() for f in db.parent.iterdir() if f.name.startswith(db.name))
        for token in minted:
            assert not [p for p in _pieces(token) if p.encode() in raw], "a piece of a token is in the database file"


def test_a_live_hub_writes_session_tokens_nowhere(live_hub: LiveHub) -> None:
    minted = [live_hub.token(s) for s in (ME, OTHER)]
    for token in minted:
        r = httpx2.post(live_hub.url + "/api/coord/messages", json={"subject": "hi"},
                        headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201
    files = [f for f in live_hub.data_dir.rglob("*") if f.is_file() and f.name != "admin.token"]
    assert any(f.name.startswith("coord.db") for f in files), files
    raw = b"".join(f.read_bytes() for f in files)  # the database, its WAL, and the hub's log
    for token in minted + [live_hub.admin_token]:
        assert not [p for p in _pieces(token) if p.encode() in raw]


# ---- body size limit --------------------------------------------------------------------------------------

def _message_of(size: int) -> bytes:
    """A valid ``POST /messages`` body of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    body = json.dumps({"subject": "big", "body": "x" * (size // 2)}).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


def _chunks(data: bytes, size: int = 65_536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_the_body_limit_holds_at_its_edge(api: Api) -> None:
    me = {**api.token(ME), "content-type": "application/json"}
    at, over = _message_of(LIMIT), _message_of(LIMIT + 1)
    assert api.post("/api/coord/messages", content=at, headers=me).status_code == 201
    err = refused(api, 413, "POST", "/api/coord/messages", content=over, headers=me)
    assert err["error"]["code"] == "payload_too_large" and err["error"]["limit"] == LIMIT
    # without a Content-Length (chunked), the limit is counted as the body arrives
    assert api.post("/api/coord/messages", content=_chunks(at), headers=me).status_code == 201
    refused(api, 413, "POST", "/api/coord/messages", content=_chunks(over), headers=me)
    refused(api, 413, "PUT", "/api/coord/components/p/c", content=_chunks(over), headers=me)


def test_a_real_server_enforces_the_limit(live_hub: LiveHub) -> None:
    me = {"Authorization": f"Bearer {live_hub.token(ME)}", "content-type": "application/json"}
    url = live_hub.url + "/api/coord/messages"
    assert httpx2.post(url, content=_message_of(LIMIT), headers=me).status_code == 201
    for content in (_message_of(LIMIT + 1), _chunks(_message_of(4 * LIMIT))):
        r = httpx2.post(url, content=content, headers=me, timeout=10)
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("method", ["GET", "OPTIONS"])
def test_the_body_limit_holds_for_every_method(api: Api, method: str) -> None:
    me = {**api.token(ME), "content-type": "application/json"}
    r = api.request(method, "/api/coord/locks/check", params={"fence": "not-a-number"}, headers=me,
                    content=_message_of(2 * LIMIT))
    assert r.status_code == 413
