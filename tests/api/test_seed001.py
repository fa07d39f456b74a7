"""Seed 001's protocol, request by request as the document writes it, on both backends."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from coordhub.clock import ManualClock
from tests.conftest import Api


def test_seed001_sequence_end_to_end(api: Api) -> None:
    desktop = api.token("DESKTOP-0O8A1RL/claude-main")
    howard = api.token("HOWARD-HOME/claude-main")

    # Lock lifecycle: check, claim (save the id), conflict, release with ?session_id=.
    r = api.get("/api/coord/locks", params={"project_key": "gururmm", "resource": "server/src/api/credentials.rs"},
                headers=desktop)
    assert r.status_code == 200 and r.json() == []
    r = api.post("/api/coord/locks", json={
        "project_key": "gururmm", "session_id": "DESKTOP-0O8A1RL/claude-main",
        "resource": "server/src/api/credentials.rs", "description": "Adding credential endpoints",
        "ttl_hours": 2}, headers=desktop)
    assert r.status_code == 201, r.text
    lock = r.json()
    assert lock["id"] and lock["fence"] >= 1 and lock["session_id"] == "DESKTOP-0O8A1RL/claude-main"
    r = api.get("/api/coord/locks", params={"project_key": "gururmm", "resource": "server/src/"}, headers=howard)
    assert [x["id"] for x in r.json()] == [lock["id"]]  # the check sees the overlapping lock
    r = api.post("/api/coord/locks", json={"project_key": "gururmm", "resource": "server/src/",
                                           "description": "refactor", "ttl_hours": 2}, headers=howard)
    assert r.status_code == 409
    assert r.json()["error"]["holder"] == "DESKTOP-0O8A1RL/claude-main"
    r = api.delete(f"/api/coord/locks/{lock['id']}", params={"session_id": "HOWARD-HOME/claude-main"},
                   headers=howard)
    assert r.status_code == 403
    r = api.delete(f"/api/coord/locks/{lock['id']}", params={"session_id": "DESKTOP-0O8A1RL/claude-main"},
                   headers=desktop)
    assert r.status_code == 200 and r.json()["state"] == "released"

    # Components: upsert (body form and the softfail queue's path form), read by project.
    r = api.put("/api/coord/components", json={
        "project_key": "gururmm", "component": "server", "state": "deployed", "version": "0.3.0",
        "notes": "Deployed 2026-05-12; credential store live", "updated_by": "DESKTOP-0O8A1RL/claude-main"},
        headers=desktop)
    assert r.status_code == 200 and r.json()["version"] == "0.3.0"
    r = api.put("/api/coord/components/gururmm/server", headers=desktop, json={
        "state": "degraded", "version": "0.3.0", "notes": "...", "updated_by": "DESKTOP-0O8A1RL/claude-main"})
    assert r.status_code == 200
    r = api.get("/api/coord/components", params={"project_key": "gururmm"}, headers=howard)
    assert [(c["component"], c["state"]) for c in r.json()] == [("server", "degraded")]

    # Workflows and work items with the seed's statuses.
    r = api.post("/api/coord/workflows", json={
        "project_key": "gururmm", "name": "Network Discovery Phase 1",
        "description": "TCP probe scanner + DB layer + API + dashboard", "status": "planning",
        "created_by": "DESKTOP-0O8A1RL/claude-main"}, headers=desktop)
    assert r.status_code == 201
    wf = r.json()
    r = api.post("/api/coord/work-items", json={
        "workflow_id": wf["id"], "project_key": "gururmm", "title": "Write migrations 017-019 for discovery tables",
        "status": "pending", "priority": 10}, headers=desktop)
    assert r.status_code == 201
    item = r.json()
    for status in ("in_progress", "blocked", "completed"):
        r = api.patch(f"/api/coord/work-items/{item['id']}", json={"status": status}, headers=howard)
        assert r.status_code == 200 and r.json()["status"] == status
    r = api.patch(f"/api/coord/work-items/{item['id']}", json={"status": "done"}, headers=howard)
    assert r.status_code == 422

    # Messages: direct, broadcast (omitted to_session), unread inbox, mark read.
    r = api.post("/api/coord/messages", json={
        "from_session": "DESKTOP-0O8A1RL/claude-main", "to_session": "HOWARD-HOME/claude-main",
        "project_key": "gururmm", "subject": "macOS build pipeline ready for wiring",
        "body": "build-agents.sh updated. Section marked TODO-MACOS. Wire in from your end."}, headers=desktop)
    assert r.status_code == 201
    direct = r.json()
    r = api.post("/api/coord/messages", json={"from_session": "DESKTOP-0O8A1RL/claude-main",
                                              "project_key": "gururmm", "subject": "fleet note", "body": "hi"},
                 headers=desktop)
    assert r.status_code == 201 and r.json()["broadcast"]
    r = api.get("/api/coord/messages", params={"to_session": "HOWARD-HOME/claude-main", "unread_only": "true"},
                headers=howard)
    assert [m["subject"] for m in r.json()] == ["macOS build pipeline ready for wiring", "fleet note"]
    r = api.put(f"/api/coord/messages/{direct['id']}/read", headers=howard)
    assert r.status_code == 200 and r.json()["read"]
    r = api.get("/api/coord/messages/unread-count", params={"session_id": "HOWARD-HOME/claude-main"},
                headers=howard)
    assert r.json()["unread"] == 1

    # Status overview: active locks, components, active workflows, unread count.
    r = api.get("/api/coord/status", headers=howard)
    s = r.json()
    assert r.status_code == 200 and s["unread_messages"] == 1 and s["halt"] is None
    assert [w["name"] for w in s["active_workflows"]] == ["Network Discovery Phase 1"]
    assert s["components"][0]["component"] == "server"

    # Session clean-up: release every lock of the session.
    for res in ("a.rs", "b.rs"):
        api.post("/api/coord/locks", json={"project_key": "gururmm", "resource": res}, headers=howard)
    r = api.delete("/api/coord/locks", params={"session_id": "HOWARD-HOME/claude-main", "release_all": "true"},
                   headers=howard)
    assert r.status_code == 200 and r.json()["released"] == 2
    assert api.get("/api/coord/locks", params={"project_key": "gururmm"}, headers=howard).json() == []

    # Health.
    assert api.get("/health").json()["status"] == "ok"


def test_todos_seed000_fields(api: Api) -> None:
    me = api.token("HOWARD-HOME/claude-main")
    r = api.post("/api/coord/todos", json={"text": "roll out config", "user": "howard", "project": "gururmm",
                                           "source": "fleet rollout", "auto": True,
                                           "created_by_user": "howard"}, headers=me)
    assert r.status_code == 201, r.text
    parent = r.json()
    assert parent["project_key"] == "gururmm" and parent["created_by_machine"] == "HOWARD-HOME"
    r = api.post("/api/coord/todos", json={"text": "child", "parent": parent["id"]}, headers=me)
    child = r.json()
    assert child["parent_id"] == parent["id"]
    r = api.post(f"/api/coord/todos/{child['id']}/done", headers=me)
    assert r.json()["status"] == "done" and r.json()["completed_by"] == "HOWARD-HOME/claude-main"
    lists = {s: sorted(t["text"] for t in api.get("/api/coord/todos", params={"status": s}, headers=me).json())
             for s in ("pending", "done", "all")}
    assert lists == {"pending": ["roll out config"], "done": ["child"], "all": ["child", "roll out config"]}
    r = api.get("/api/coord/todos", params={"user": "howard", "project_key": "gururmm"}, headers=me)
    assert [t["id"] for t in r.json()] == [parent["id"]]
    r = api.post("/api/coord/todos", json={"text": "x", "parent_id": "nope"}, headers=me)
    assert r.status_code == 404


def test_work_items_name_their_caller_as_seed001_does_on_a_hub_without_tokens(open_api: TestClient) -> None:
    """Seed 001: "pass session_id in the request body or as a query parameter". Its work-item requests carry
    no created_by/updated_by, so a --no-auth hub takes session_id from either place (it refused both), and a
    request naming nobody acts as the workflow's creator (test_seed001_no_auth.py runs the seed's own calls)."""
    me = "DESKTOP-0O8A1RL/claude-main"
    r = open_api.post("/api/coord/workflows", json={"project_key": "gururmm", "name": "Discovery",
                                                    "status": "planning", "created_by": me})
    assert r.status_code == 201, r.text
    wf = r.json()["id"]
    item = {"workflow_id": wf, "project_key": "gururmm", "title": "Write migrations", "status": "pending",
            "priority": 10}
    r = open_api.post("/api/coord/work-items", json=item)
    assert r.status_code == 201 and r.json()["created_by"] == me, r.text  # nobody named: the workflow's creator
    in_body = open_api.post("/api/coord/work-items", json={**item, "session_id": me})
    assert in_body.status_code == 201, in_body.text
    assert in_body.json()["created_by"] == me
    in_query = open_api.post("/api/coord/work-items", params={"session_id": me}, json=item)
    assert in_query.status_code == 201, in_query.text
    for params, body in (({"session_id": me}, {"status": "in_progress"}),
                         ({}, {"status": "completed", "session_id": me})):
        r = open_api.patch(f"/api/coord/work-items/{in_body.json()['id']}", params=params, json=body)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == body["status"]
    r = open_api.patch(f"/api/coord/work-items/{in_query.json()['id']}", json={"status": "completed",
                                                                                "session_id": me,
                                                                                "updated_by": "OTHER/x"})
    assert r.status_code == 422 and "different sessions" in r.json()["error"]["message"]


def test_a_token_decides_who_names_a_work_item(api: Api) -> None:
    """With tokens, a session_id naming another session is refused (403), as every identity field is."""
    me = api.token("DESKTOP-0O8A1RL/claude-main")
    r = api.post("/api/coord/workflows", json={"project_key": "g", "name": "w"}, headers=me)
    assert r.status_code == 201, r.text
    r = api.post("/api/coord/work-items", json={"workflow_id": r.json()["id"], "title": "t",
                                                "session_id": "HOWARD-HOME/claude-main"}, headers=me)
    assert r.status_code == 403, r.text


# Seed 001 names an inbox's owner to_session (GET /messages?to_session=…); the unread count and the wait, asked the
# same way, ignored it and answered for the caller's own inbox (review). It is session_id's other name.
INBOX_READS = (("/api/coord/messages/unread-count", {}), ("/api/coord/messages/wait", {"timeout": "0"}))


def _unread(answer: Any) -> int:
    """The count's ``unread``, or how many messages the wait answered."""
    return int(answer["unread"]) if isinstance(answer, dict) else len(answer)


def test_to_session_names_the_inbox_of_the_count_and_the_wait(api: Api) -> None:
    desktop, howard = api.token("DESKTOP-0O8A1RL/claude-main"), api.token("HOWARD-HOME/claude-main")
    api.post("/api/coord/messages", json={"to_session": "HOWARD-HOME/claude-main", "subject": "hi"}, headers=desktop)
    for path, extra in INBOX_READS:
        mine = api.get(path, params={**extra, "to_session": "howard-home/claude-main"}, headers=howard)
        assert mine.status_code == 200 and _unread(mine.json()) == 1, path
        # a token reads only its own inbox however the parameter is spelled; an admin reads any
        other = api.get(path, params={**extra, "to_session": "HOWARD-HOME/claude-main"}, headers=desktop)
        assert other.status_code == 403, (path, other.text)
        assert _unread(api.get(path, params={**extra, "to_session": "HOWARD-HOME/claude-main"},
                               headers=api.admin).json()) == 1, path
        both = api.get(path, params={**extra, "session_id": "HOWARD-HOME/claude-main",
                                     "to_session": "DESKTOP-0O8A1RL/claude-main"}, headers=api.admin)
        assert both.status_code == 422 and "name different sessions" in both.text, path
        same = api.get(path, params={**extra, "session_id": "HOWARD-HOME/claude-main",
                                     "to_session": "howard-home/claude-main"}, headers=howard)
        assert same.status_code == 200 and _unread(same.json()) == 1, path
        # an admin names a session, not the fleet nor a 300-character string (review: 200 with unread 0)
        for name in ("ALL_SESSIONS", "X/" + "y" * 298):
            r = api.get(path, params={**extra, "to_session": name}, headers=api.admin)
            assert r.status_code == 422 and r.json()["error"]["field"] == "to_session", (path, name, r.text)


def test_to_session_names_the_reader_on_a_hub_without_tokens(open_api: TestClient) -> None:
    open_api.post("/api/coord/messages", json={"from_session": "DESKTOP-0O8A1RL/claude-main",
                                               "to_session": "HOWARD-HOME/claude-main", "subject": "hi"})
    for path, extra in INBOX_READS:
        r = open_api.get(path, params={**extra, "to_session": "HOWARD-HOME/claude-main"})
        assert r.status_code == 200 and _unread(r.json()) == 1, (path, r.text)
        assert _unread(open_api.get(path, params={**extra, "to_session": "DESKTOP-0O8A1RL/claude-main"}).json()) == 0
        nobody = open_api.get(path, params=extra)
        assert nobody.status_code == 422 and "session_id=MACHINE/name or to_session=MACHINE/name" in nobody.text


def test_a_lock_that_ended_is_no_ones_to_release(open_api: TestClient, clock: ManualClock) -> None:
    """Seed 001's stale-lock rule: a lock acquired more than 2 hours ago is released by whoever finds it, who then
    proceeds. With the seed's TTL of 2 hours that lock has expired by then, and the release answered 403 (only the
    holder may release), which a seed client reads as a failure to free what was already free. A lease that ended is
    no one's: anyone's release answers it unchanged with ``already: true``; a live one stays the holder's."""
    desktop, howard = {"session_id": "DESKTOP-0O8A1RL/claude-main"}, {"session_id": "HOWARD-HOME/claude-main"}
    lock = open_api.post("/api/coord/locks", json={"project_key": "gururmm", "resource": "server/src/",
                                                   "ttl_hours": 2, **desktop}).json()
    assert open_api.delete(f"/api/coord/locks/{lock['id']}", params=howard).status_code == 403  # live: not Howard's
    clock.advance(2 * 3600 + 1)
    r = open_api.delete(f"/api/coord/locks/{lock['id']}", params=howard)
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["already"], r.json()["released_by"]) == ("expired", True, None)
    assert open_api.get(f"/api/coord/locks/{lock['id']}").json()["released_at"] is None  # nothing changed
    mine = open_api.post("/api/coord/locks", json={"project_key": "gururmm", "resource": "server/src/",
                                                   "ttl_hours": 2, **howard})
    assert mine.status_code == 201, mine.text  # and Howard proceeds
    # one its holder released is no one's either
    done = open_api.post("/api/coord/locks", json={"project_key": "gururmm", "resource": "docs/", **desktop}).json()
    open_api.delete(f"/api/coord/locks/{done['id']}", params=desktop)
    r = open_api.delete(f"/api/coord/locks/{done['id']}", params=howard)
    assert (r.status_code, r.json()["state"], r.json()["already"]) == (200, "released", True)
    assert r.json()["released_by"] == "DESKTOP-0O8A1RL/claude-main"


def test_a_renewal_without_a_body_renews_by_the_leases_own_ttl(open_api: TestClient, clock: ManualClock) -> None:
    """A seed 001 client calls ``POST /locks/{id}/renew`` as it calls ``DELETE /locks/{id}``: no body, the session in
    the query. That answered 422 (a body was required); no body now means the lease's own TTL, as ``{}`` does."""
    desktop = {"session_id": "DESKTOP-0O8A1RL/claude-main"}
    lock = open_api.post("/api/coord/locks", json={"project_key": "gururmm", "resource": "server/src/",
                                                   "ttl_hours": 2, **desktop}).json()
    clock.advance(3600)
    r = open_api.post(f"/api/coord/locks/{lock['id']}/renew", params=desktop)
    assert r.status_code == 200, r.text
    assert (r.json()["id"], r.json()["fence"], r.json()["expires_in_seconds"]) == (lock["id"], lock["fence"], 7200)
    # naming nobody is still refused; a body's ttl_hours with the session in the query is that session's renewal
    assert open_api.post(f"/api/coord/locks/{lock['id']}/renew").status_code == 422
    r = open_api.post(f"/api/coord/locks/{lock['id']}/renew", params={"session_id": "HOWARD-HOME/claude-main"},
                      json={"ttl_hours": 1})
    assert r.status_code == 403, r.text  # not Howard's to renew
    r = open_api.post(f"/api/coord/locks/{lock['id']}/renew", params=desktop, json={"ttl_hours": 1})
    assert (r.status_code, r.json()["expires_in_seconds"]) == (200, 3600)


def test_the_status_counts_the_named_sessions_unread_and_none_for_nobody(open_api: TestClient) -> None:
    """``GET /status`` on a hub without tokens, asked by no session, answered ``unread_messages: 0`` while a message
    waited: it counted no inbox. It now answers null beside ``session_id: null``; naming a session counts its."""
    open_api.post("/api/coord/messages", json={"from_session": "DESKTOP-0O8A1RL/claude-main",
                                               "to_session": "HOWARD-HOME/claude-main", "subject": "deploy freeze"})
    nobody = open_api.get("/api/coord/status").json()
    assert (nobody["session_id"], nobody["unread_messages"]) == (None, None)
    for named in ({"params": {"session_id": "howard-home/claude-main"}},
                  {"headers": {"X-Coord-Session": "HOWARD-HOME/claude-main"}}):
        s = open_api.get("/api/coord/status", **named).json()
        assert (s["session_id"], s["unread_messages"]) == ("HOWARD-HOME/claude-main", 1), named
    assert open_api.get("/api/coord/status", params={"session_id": "DESKTOP-0O8A1RL/claude-main"}).json()[
        "unread_messages"] == 0
