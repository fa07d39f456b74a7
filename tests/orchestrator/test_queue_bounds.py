"""The queue's costs stay bounded whatever one session queues: its place is counted, the status shows its head,
a session's live assignments are bounded, and dispatch finds runnable work behind any number of unrunnable ones."""

from __future__ import annotations

import pytest

from coordhub.core import assignments, dispatch, fleet
from tests.conftest import Api
from tests.orchestrator.conftest import ORCH, Host, apply_config, assign, config, get


def test_a_session_s_live_assignments_are_bounded(orch: Api, laptop: Host, user: dict[str, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assignments, "MAX_LIVE_PER_SESSION", 2, raising=False)
    first = assign(orch, user, issue=1, machine="laptop")
    assign(orch, user, issue=2, machine="laptop")
    r = orch.post(f"{ORCH}/assignments", headers=user, json={"repo": "api", "issue": 3, "any": True})
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert (err["code"], err["limit"], err["session_id"]) == ("assignment_limit", 2, "desk/claude-main")
    assert orch.get(f"{ORCH}/status", headers=user).json()["totals"]["queued"] == 2  # nothing written
    # dispatched and running count too; another session, and an admin, are not held back by this one
    job = laptop.next()
    assert job is not None and job["id"] == first["id"]
    assert orch.post(f"{ORCH}/assignments", headers=user, json={"repo": "api", "issue": 3,
                                                                 "any": True}).status_code == 409
    assign(orch, orch.token("other/claude-main"), issue=3)
    assign(orch, orch.admin, issue=4)
    # an ended one frees its place; a retry takes one again, counted for the assignment's creator
    laptop.report(job, "failed", reason="tests failed")
    late = assign(orch, user, issue=5)
    r = orch.post(f"{ORCH}/assignments/{first['id']}/retry", headers=user)
    assert r.status_code == 409 and r.json()["error"]["code"] == "assignment_limit", r.text
    orch.post(f"{ORCH}/assignments/{late['id']}/stop", headers=user)
    assert orch.post(f"{ORCH}/assignments/{first['id']}/retry", headers=user).status_code == 200


def test_assign_numbers_its_place_in_the_queue(orch: Api, user: dict[str, str]) -> None:
    """By a count (the store's ``Assignments.queued``, which read every queued row, briefings and all, to number
    it, is gone)."""
    assign(orch, user, issue=1, briefing="x" * 1000)
    assign(orch, user, issue=2)
    assert assign(orch, user, issue=3)["position"] == 3
    dry = orch.post(f"{ORCH}/assignments", headers=user, json={"repo": "api", "issue": 4, "any": True,
                                                               "dry_run": True})
    assert dry.status_code == 200 and dry.json()["position"] == 4
    assert orch.get(f"{ORCH}/status", headers=user).status_code == 200  # nor does the status


def test_the_status_shows_the_head_of_the_queue_and_counts_it_all(orch: Api, user: dict[str, str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet, "QUEUE_SHOWN", 2, raising=False)
    ids = [assign(orch, user, issue=n, briefing="b" * 100, **({"machine": m} if m else {"any": True}))["id"]
           for n, m in ((1, "server"), (2, "server"), (3, "laptop"), (4, None), (5, "laptop"))]
    view = orch.get(f"{ORCH}/status", headers=user).json()
    assert [(q["id"], q["position"]) for q in view["queue"]] == [(ids[0], 1), (ids[1], 2)]
    assert view["totals"]["queued"] == 5 and "briefing" not in view["queue"][0]
    assert view["queue"][0]["briefing_bytes"] == 100
    mine = orch.get(f"{ORCH}/status", headers=user, params={"machine": "laptop"}).json()
    assert [(q["id"], q["position"]) for q in mine["queue"]] == [(ids[2], 3), (ids[3], 4)]  # places in the queue
    assert mine["totals"]["queued"] == 3
    assert get(orch, ids[4])["state"] == "queued"


def test_work_a_host_can_never_run_does_not_starve_work_behind_it(orch: Api, user: dict[str, str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "SCAN_LIMIT", 2)
    cfg = config()
    cfg["machines"][0]["capabilities"] = ["python", "gpu"]
    apply_config(orch, cfg)
    laptop = Host(orch, "laptop", orch.token("laptop/agent"))
    laptop.register(repos={"api": "/src/api"}, capabilities=["python", "gpu"])
    flood = orch.token("flood/claude-main")
    for n in range(3):  # pinned to a machine whose host is down
        assign(orch, flood, issue=100 + n, machine="server")
    assign(orch, flood, issue=110, requires=["docker"])          # a capability laptop lacks
    assign(orch, flood, issue=111, requires=["python", "docker"])
    assign(orch, flood, repo="lib", issue=112)                    # a repo laptop did not register
    mine = assign(orch, user, issue=1, requires=["gpu", "python"])
    later = assign(orch, user, issue=2, machine="laptop")
    job = laptop.next()
    assert job is not None and job["id"] == mine["id"] and job["briefing"] == ""  # the oldest runnable first
    job = laptop.next()
    assert job is not None and job["id"] == later["id"]
    assert get(orch, later["id"])["state"] == "dispatched"


def test_dispatch_pages_past_held_issues_and_bounds_its_work(orch: Api, laptop: Host, user: dict[str, str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "SCAN_PAGE", 1, raising=False)
    human = orch.token("desk/claude-2")
    for n in (1, 2):  # a person holds these issues: runnable by their rows, not by their lease
        held = orch.post("/api/coord/locks", headers=human, json={"project_key": "api", "resource": f"issue:api#{n}"})
        assert held.status_code == 201
        assign(orch, user, issue=n)
    third = assign(orch, user, issue=3)
    monkeypatch.setattr(dispatch, "SCAN_LIMIT", 2)
    assert laptop.next() is None  # at most SCAN_LIMIT lease checks in one call
    monkeypatch.setattr(dispatch, "SCAN_LIMIT", 3)
    job = laptop.next()
    assert job is not None and job["id"] == third["id"]
