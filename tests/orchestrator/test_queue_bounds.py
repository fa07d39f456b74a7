"""The queue's costs stay bounded whatever one session queues: its place is counted, the status shows its head,
a session's live assignments are bounded, and dispatch finds runnable work behind any number of unrunnable ones."""

from __future__ import annotations

from typing import Any

import pytest

from coordhub.clock import ManualClock
from coordhub.core import assignments, dispatch, fleet, leasequeries, leases
from coordhub.core.identity import Actor
from coordhub.server import SYSTEM
from coordhub.store.tables.orchestrator import issue_lease_name
from coordhub.store.tx import Tx
from tests.conftest import Api
from tests.orchestrator.conftest import BASE_CONFIG, ORCH, Host, apply_config, assign, config, get


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


def test_work_a_host_can_never_run_does_not_starve_work_behind_it(orch: Api, user: dict[str, str]) -> None:
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


def _flood(orch: Api, first_issue: int, count: int, *, held_by: str | None = None,
           avoid: str | None = None) -> None:
    """Queue ``count`` assignments of issues from ``first_issue`` in one transaction: their issue leases held by
    ``held_by``, or retried away from ``avoid`` (as a retry leaves them: any machine, avoiding the last)."""
    def run(tx: Tx, now: float) -> None:
        for n in range(first_issue, first_issue + count):
            row = assignments.create(tx, Actor("flood/claude-main"), now, machine=None, repo="api", issue=n)
            if held_by is not None:
                leases.claim(tx, Actor(held_by), project_key="api", resource=issue_lease_name("api", n),
                             description=None, ttl_hours=2.0, now=now)
            if avoid is not None:
                tx.assignments.set(row["id"], {"avoid_machine": avoid})
    orch.hub.mutate_sync(SYSTEM, run)


@pytest.mark.parametrize("blocked", [3, 1001])
def test_no_number_of_held_or_avoiding_assignments_starves_a_runnable_one(
        orch: Api, laptop: Host, server: Host, user: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        blocked: int) -> None:
    """1,000 queued assignments whose issues a person held (each call checked the same oldest 1,000 leases
    and gave up), or that avoided this host while another could run them, starved every later one for good."""
    apply_config(orch, config(concurrency={**BASE_CONFIG["concurrency"], "max_workers": 3}))
    # the old per-call bound on rows checked in Python (2 of them, a page of 1), lowered so the small case
    # shows that starvation quickly too
    monkeypatch.setattr(dispatch, "SCAN_LIMIT", 2, raising=False)
    monkeypatch.setattr(dispatch, "SCAN_PAGE", 1, raising=False)
    monkeypatch.setattr(assignments, "MAX_LIVE_PER_SESSION", 3 * blocked, raising=False)
    monkeypatch.setattr(leases, "MAX_LIVE_PER_SESSION", 2 * blocked, raising=False)
    _flood(orch, 1000, blocked, held_by="desk/claude-2")
    _flood(orch, 5000, blocked, avoid="laptop")
    mine = assign(orch, user, issue=1)
    job = laptop.next()  # the first call: no scan to give up on
    assert job is not None and job["id"] == mine["id"]
    # the person lets go of one: it is the oldest laptop may run again; the avoiding ones are for server
    human = orch.token("desk/claude-2")
    held = orch.get("/api/coord/locks", headers=human, params={"project_key": "api", "resource": "issue:api#1001"})
    lease = next(x for x in held.json() if x["resource"] == "issue:api#1001")
    assert orch.delete(f"/api/coord/locks/{lease['id']}", headers=human).status_code == 200
    job = laptop.next()
    assert job is not None and job["issue"] == 1001
    job = server.next()
    assert job is not None and job["issue"] == 5000


def test_the_issue_lease_rule_is_the_lease_model_s(orch: Api, user: dict[str, str], clock: ManualClock) -> None:
    """The store decides the issue lease in SQL; it must agree with ``leasequeries.conflicts`` (a NAME overlaps only
    the same NAME, of the same project, live, held by someone other than the attempt's worker), and the queue
    stays oldest first among what is runnable."""
    apply_config(orch, config(concurrency={**BASE_CONFIG["concurrency"], "max_workers": 10}))
    laptop = Host(orch, "laptop", orch.token("laptop/agent"), slots=10)
    laptop.register()
    human = orch.token("desk/claude-2")

    def lock(resource: str, project: str = "api", **extra: Any) -> dict[str, Any]:
        r = orch.post("/api/coord/locks", headers=human, json={"project_key": project, "resource": resource,
                                                              **extra})
        assert r.status_code == 201, r.text
        return dict(r.json())

    lock("issue:api#1")                        # held: the NAME itself
    lock(" issue:api#2 ")                      # held: the same NAME, written with spaces
    lock("issue:api#3", project="lib")         # another project's NAME: free
    lock("issue:api#*")                        # a NAME, not a glob: overlaps only itself
    lock("issue:api#40")                       # another issue's NAME (a prefix of none)
    lock("./issue:api#5/x")                    # a path filed beneath "issue:api#5": never overlaps a NAME
    lock("issue:api#6", ttl_hours=0.001)       # expires before the dispatch: free
    released = lock("issue:api#7")
    assert orch.delete(f"/api/coord/locks/{released['id']}", headers=human).status_code == 200
    ids = {n: assign(orch, user, issue=n)["id"] for n in range(1, 9)}
    clock.advance(60)
    laptop.beat()

    def held(n: int) -> bool:
        def look(tx: Tx, now: float) -> bool:
            mine = assignments.worker_session("laptop", ids[n])
            (others, _), _ = leasequeries.conflicts(tx, now, "api", issue_lease_name("api", n), mine)
            return bool(others)
        return bool(orch.hub.query_sync(look))

    expected = [n for n in range(1, 9) if not held(n)]
    assert expected == [3, 4, 5, 6, 7, 8]
    got = []
    while (job := laptop.next()) is not None:
        got.append(job["issue"])
    assert got == expected  # oldest first
    assert [get(orch, ids[n])["state"] for n in (1, 2)] == ["queued", "queued"]
