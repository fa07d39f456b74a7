"""Seed 001 names the calling session with ``session_id`` "in the request body or as a query parameter", on every
call. Write bodies other than a lease claim's and a work item's refused the field (422 "unknown field"), although a
--no-auth hub's own refusal told the caller to name itself in ``session_id``; and the inbox (``GET /messages``)
ignored ``?session_id=``: a token read its own inbox under another session's name (200), and a --no-auth hub
answered 422 asking for ``to_session``. Now ``session_id`` names the caller in each of them, under the rules of the
other identity fields: with a token it must be the token's own session (403), and two fields naming different
sessions are refused (422).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Api

DESKTOP, HOWARD = "DESKTOP-0O8A1RL/claude-main", "HOWARD-HOME/claude-main"

# (method, path, body without the caller, the answer's field naming the actor); {todo} and {workflow} filled in
WRITES: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    ("POST", "/api/coord/messages", {"to_session": HOWARD, "subject": "build ready", "body": "b"}, "from_session"),
    ("PUT", "/api/coord/components", {"project_key": "gururmm", "component": "server", "state": "deployed"},
     "updated_by"),
    ("PUT", "/api/coord/components/gururmm/dashboard", {"state": "built"}, "updated_by"),
    ("POST", "/api/coord/workflows", {"project_key": "gururmm", "name": "Discovery"}, "created_by"),
    ("PATCH", "/api/coord/workflows/{workflow}", {"status": "active"}, "status"),
    ("POST", "/api/coord/todos", {"text": "roll out config"}, "created_by"),
    ("POST", "/api/coord/todos/{todo}/done", {}, "completed_by"),
)


def _targets(call: Callable[..., Any]) -> dict[str, str]:
    """A workflow and a todo, made by DESKTOP through ``call`` (the client's ``request`` with its credentials)."""
    wf = call("POST", "/api/coord/workflows", {"project_key": "gururmm", "name": "w", "created_by": DESKTOP})
    todo = call("POST", "/api/coord/todos", {"text": "t", "created_by": DESKTOP})
    assert wf.status_code == 201 and todo.status_code == 201, (wf.text, todo.text)
    return {"workflow": wf.json()["id"], "todo": todo.json()["id"]}


def test_every_write_takes_session_id_in_its_body_on_a_hub_without_tokens(open_api: TestClient) -> None:
    def call(method: str, path: str, body: dict[str, Any]) -> Any:
        return open_api.request(method, path, json=body)

    ids = _targets(call)
    for method, path, body, actor_field in WRITES:
        r = call(method, path.format(**ids), {**body, "session_id": DESKTOP})
        assert r.status_code in (200, 201), (path, r.text)  # before: 422 unknown field 'session_id'
        if actor_field != "status":
            assert r.json()[actor_field] == DESKTOP, (path, r.json())
    # the body's other identity field and session_id naming two sessions: refused, nothing written
    r = call("POST", "/api/coord/messages", {"from_session": HOWARD, "session_id": DESKTOP, "subject": "s"})
    assert r.status_code == 422 and "different sessions" in r.json()["error"]["message"], r.text
    # naming nobody: the refusal names session_id once, though the body and the query both take it
    r = call("POST", "/api/coord/workflows", {"project_key": "gururmm", "name": "nobody"})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == ("this hub runs with --no-auth: name your session in created_by, "
                                            "session_id or the X-Coord-Session header")


def test_a_body_session_id_must_be_the_tokens_own_session(api: Api) -> None:
    desktop = api.token(DESKTOP)

    def call(method: str, path: str, body: dict[str, Any]) -> Any:
        return api.request(method, path, json=body, headers=desktop)

    ids = _targets(call)
    for method, path, body, _ in WRITES:
        other = call(method, path.format(**ids), {**body, "session_id": HOWARD})
        assert other.status_code == 403 and other.json()["error"]["field"] == "session_id", (path, other.text)
        own = call(method, path.format(**ids), {**body, "session_id": DESKTOP.lower()})
        assert own.status_code in (200, 201), (path, own.text)


def test_the_inbox_takes_session_id_as_seed_001_names_the_caller(api: Api, open_api: TestClient) -> None:
    desktop, howard = api.token(DESKTOP), api.token(HOWARD)
    api.post("/api/coord/messages", json={"to_session": HOWARD, "subject": "for howard"}, headers=desktop)
    unread = {"session_id": HOWARD, "unread_only": "true"}
    r = api.get("/api/coord/messages", params=unread, headers=howard)
    assert r.status_code == 200 and [m["subject"] for m in r.json()] == ["for howard"], r.text
    # another session's name beside a token: refused, as for to_session (before: the token's own inbox, 200)
    r = api.get("/api/coord/messages", params=unread, headers=desktop)
    assert r.status_code == 403 and r.json()["error"]["field"] == "session_id", r.text
    assert [m["subject"] for m in api.get("/api/coord/messages", params=unread, headers=api.admin).json()] == [
        "for howard"]
    r = api.get("/api/coord/messages", params={**unread, "to_session": DESKTOP}, headers=api.admin)
    assert r.status_code == 422 and "name different sessions" in r.text

    # the same hub without tokens (the fixtures share it): session_id names the reader
    r = open_api.get("/api/coord/messages", params=unread)
    assert r.status_code == 200 and [m["subject"] for m in r.json()] == ["for howard"], r.text  # before: 422
    r = open_api.get("/api/coord/messages", params={"unread_only": "true"})
    assert r.status_code == 422 and "to_session=MACHINE/name or session_id=MACHINE/name" in r.text
