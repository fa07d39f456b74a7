"""Seed 001's lock record carries ``created_at`` and ``updated_at``, as every record of its schema does (the
research notes read them in its response schemas), its message record too. Components, workflows, work items and
todos had them here; a lease had neither and a message no ``updated_at``, so a script reading ``lock["created_at"]``
failed on a KeyError. A lease's ``created_at`` is the grant, ``updated_at`` the last change: grant, renewal, end."""

from __future__ import annotations

from fastapi.testclient import TestClient

from coordhub.clock import ManualClock
from tests.conftest import Api

ME = "DESKTOP-0O8A1RL/claude-main"


def test_a_lock_says_when_it_was_created_and_last_changed(api: Api, clock: ManualClock) -> None:
    me = api.token(ME)
    claim = {"project_key": "gururmm", "session_id": ME, "resource": "server/src/api/credentials.rs",
             "description": "Adding credential endpoints", "ttl_hours": 2}
    lock = api.post("/api/coord/locks", json=claim, headers=me).json()
    assert lock["created_at"] == lock["updated_at"] == lock["acquired_at"], lock
    clock.advance(60)
    renewed = api.post(f"/api/coord/locks/{lock['id']}/renew", json={"ttl_hours": 1}, headers=me).json()
    assert (renewed["created_at"], renewed["updated_at"]) == (lock["acquired_at"], renewed["renewed_at"]), renewed
    listed = api.get("/api/coord/locks", params={"project_key": "gururmm"}, headers=me).json()
    assert [(x["created_at"], x["updated_at"]) for x in listed] == [(lock["acquired_at"], renewed["renewed_at"])]
    status = api.get("/api/coord/status", headers=me).json()
    assert status["active_locks"][0]["updated_at"] == renewed["renewed_at"]
    clock.advance(60)
    released = api.delete(f"/api/coord/locks/{lock['id']}", params={"session_id": ME}, headers=me).json()
    assert (released["created_at"], released["updated_at"]) == (lock["acquired_at"], released["released_at"])
    assert api.get(f"/api/coord/locks/{lock['id']}", headers=me).json()["updated_at"] == released["released_at"]


def test_the_fields_are_in_the_openapi_document(open_api: TestClient) -> None:
    lease = open_api.get("/openapi.json").json()["components"]["schemas"]["LeaseOut"]
    assert {"created_at", "updated_at"} <= set(lease["required"]), lease


def test_a_message_says_when_it_last_changed_for_its_reader(api: Api, clock: ManualClock) -> None:
    """Seed 001's message record had ``updated_at`` too (set when it was read); here per reader, as read state is."""
    desktop, howard = api.token(ME), api.token("HOWARD-HOME/claude-main")
    sent = api.post("/api/coord/messages", json={"to_session": "HOWARD-HOME/claude-main", "subject": "ready"},
                    headers=desktop).json()
    assert sent["updated_at"] == sent["created_at"], sent
    clock.advance(30)
    read = api.put(f"/api/coord/messages/{sent['id']}/read", headers=howard).json()
    assert read["updated_at"] == read["read_at"] != read["created_at"], read
    listed = api.get("/api/coord/messages", params={"to_session": "HOWARD-HOME/claude-main"}, headers=howard).json()
    assert [m["updated_at"] for m in listed] == [read["read_at"]]
    # the sender's view: it read nothing, so it changed for it when it was sent
    assert api.get(f"/api/coord/messages/{sent['id']}", headers=desktop).json()["updated_at"] == sent["created_at"]
