"""A worker's token ends with its attempt under whatever spelling its session was first seen.

A token is stored under its session's first spelling (``enroll``), and a message to a session the hub has
not seen keeps the sender's spelling. So anyone who knows an assignment's id could plant
``LAPTOP/WORKER-<ID>`` before dispatch; the attempt's end then revoked ``WHERE name = ?`` with the
orchestrator's own spelling, matched no token, and the worker's token went on writing. Found by a review.
"""

from __future__ import annotations

from tests.conftest import Api
from tests.orchestrator.conftest import Host, assign


def test_a_worker_token_ends_with_its_attempt_whatever_spelling_its_session_was_first_seen_in(
        orch: Api, laptop: Host, user: dict[str, str]) -> None:
    a = assign(orch, user, issue=1, machine="laptop")
    planted = f"LAPTOP/WORKER-{a['id']}".upper()
    r = orch.post("/api/coord/messages", headers=user, json={"to_session": planted, "subject": "hi", "body": "x"})
    assert r.status_code == 201, r.text
    job = laptop.next()
    assert job is not None
    worker = {"Authorization": f"Bearer {job['worker_token']}"}
    assert orch.get("/api/coord/messages", headers=worker).status_code == 200  # live, and cached
    laptop.report(job, "failed", reason="tests failed")  # the attempt ends: its token is retired
    live = [t["name"] for t in orch.get("/api/coord/tokens", headers=orch.admin).json()]
    assert planted not in live and planted.lower() not in [n.lower() for n in live], live
    row = orch.hub.query_sync(lambda tx, now: tx.ex.one(
        "SELECT token_epoch FROM sessions WHERE session_key = lower(?)", (planted,)))
    assert row is not None and row["token_epoch"] == 1
    r = orch.post("/api/coord/messages", headers=worker, json={"to_session": "desk/claude-main", "subject": "s",
                                                               "body": "written by a retired worker token"})
    assert r.status_code == 401, r.text
