"""A replaced host incarnation reports nothing: no test verdict, no merge pin, no attempt outcome (review fault r2).

Incarnation 1 of laptop takes an assignment and its smoke test; a second
agent registers laptop (incarnation 2), so incarnation 1's heartbeat answers
409 ``stale_incarnation``. Its reports on the run (``done``, exit 0, any
commit: a pass and the merge pin) and on the assignment (``done``: on to the
next stage) were taken all the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2

from coordhub.client import CoordClient
from coordhub.client.settings import ClientSettings
from coordhub.orchestrator.link import HubLink
from tests.conftest import Api
from tests.orchestrator.conftest import ORCH, Host, apply_config, assign, get
from tests.orchestrator.test_pipeline import PIPE, next_run, report_run, stages_of, work_done


def _stale(r: httpx2.Response) -> None:
    assert r.status_code == 409 and r.json()["error"]["code"] == "stale_incarnation", r.text


def _replaced(laptop: Host) -> Host:
    """``laptop`` as it was (its incarnation), after another agent registered the machine."""
    old = Host(laptop.api, "laptop", laptop.headers, incarnation=laptop.incarnation)
    laptop.register()
    assert laptop.incarnation == old.incarnation + 1
    old.beat(expect=409)
    return old


def test_a_replaced_incarnation_passes_no_run(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    apply_config(orch, PIPE)
    a = work_done(laptop, orch, user, issue=1)
    run = next_run(laptop)
    assert run is not None and run["stage"] == "test" and run["assignment_id"] == a["id"]
    old = _replaced(laptop)
    _stale(orch.post(f"{ORCH}/stage-runs/{run['id']}/report", headers=old.headers, json={
        "attempt": run["attempt"], "host_incarnation": old.incarnation, "state": "done", "exit_code": 0,
        "commit": "deadbeef00"}))
    got = orch.get(f"{ORCH}/stage-runs/{run['id']}", headers=user).json()
    assert (got["state"], got["commit"], got["verdict"]) == ("dispatched", None, None)
    assert stages_of(orch, a["id"])["stage"] == "test"
    # the new incarnation never ran the run: runs are not adopted (the reaper queues them again)
    _stale(orch.post(f"{ORCH}/stage-runs/{run['id']}/report", headers=laptop.headers, json={
        "attempt": run["attempt"], "host_incarnation": laptop.incarnation, "state": "done", "exit_code": 0}))
    # naming none (an agent from before today): the machine's current incarnation, which never ran the run
    _stale(orch.post(f"{ORCH}/stage-runs/{run['id']}/report", headers=laptop.headers,
                     json={"attempt": run["attempt"], "state": "done", "exit_code": 0}))


def test_a_replaced_incarnation_ends_no_attempt(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    a = assign(orch, user, issue=2, machine="laptop")
    b = laptop.next()
    assert b is not None
    old = _replaced(laptop)
    assert old.report(b, "done", expect=409, pushed=True, branch="issue-x")["error"]["code"] == "stale_incarnation"
    got = get(orch, a["id"])
    assert (got["state"], got["pushed"], got["stage"]) == ("dispatched", False, "work")


def test_the_current_incarnation_adopts_what_it_reports_on(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    """A host that registers again (a config change) reports on its running workers before its next heartbeat:
    the report is its incarnation's, and adopts the attempt as that heartbeat would."""
    a = assign(orch, user, issue=3, machine="laptop")
    job = laptop.next()
    assert job is not None
    laptop.report(job, "running")
    first = laptop.incarnation
    laptop.register()
    got = laptop.report(job, "running", telemetry={"turns": 3})
    assert got["state"] == "running" and got["turns"] == 3
    adopted = [e for e in orch.get("/api/coord/audit", headers=orch.admin, params={"limit": 500}).json()
               if e["kind"] == "assignment.adopted"]
    assert [(e["payload"]["assignment_id"], e["payload"]["incarnation"]) for e in adopted] == [(a["id"], first + 1)]
    assert laptop.beat()["cancel"] == []  # the first heartbeat keeps it (no host_restarted loss)
    assert laptop.report(job, "done", pushed=True)["state"] == "done"


def test_a_run_report_of_the_dispatched_incarnation_is_taken(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    apply_config(orch, PIPE)
    a = work_done(laptop, orch, user, issue=4)
    run = next_run(laptop)
    assert run is not None
    got = report_run(laptop, run, state="done", exit_code=0, commit="abc1234")
    assert (got["state"], got["commit"]) == ("passed", "abc1234")
    assert stages_of(orch, a["id"])["stage"] != "test"


def _settings(tmp_path: Path) -> ClientSettings:
    return ClientSettings(url="http://hub.test:8001", token="host-token", session=None, user=None, machine=None,
                          queue_file=tmp_path / "q.jsonl", timeout=5.0)


def _recorded(tmp_path: Path, seen: list[httpx2.Request], registered: dict[str, Any] | None = None) -> CoordClient:
    """A client whose requests are recorded in ``seen`` and answered 200 ``{}`` (``registered`` for a
    registration)."""
    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        register = registered is not None and request.url.path.endswith("/register")
        return httpx2.Response(200, json=registered if register else {})

    return CoordClient(_settings(tmp_path), transport=httpx2.MockTransport(handler))


def test_the_host_link_names_its_incarnation_in_every_report(tmp_path: Path) -> None:
    seen: list[httpx2.Request] = []
    link = HubLink(_settings(tmp_path), "m1")
    for role in ("main", "report", "run-report"):
        link._clients[role] = _recorded(tmp_path, seen, {"machine": "m1", "host_incarnation": 7})
    link.register([], {}, 1, "t", [], [])
    link.report("a1b2c3d4", {"attempt": 1, "state": "done"})
    link.report_run("0badcafe", {"attempt": 2, "state": "done", "exit_code": 0})
    bodies = [json.loads(r.content) for r in seen[1:]]
    assert [b["host_incarnation"] for b in bodies] == [7, 7]
    assert bodies[0] == {"attempt": 1, "state": "done", "host_incarnation": 7}


# ---- agents from before reports named their incarnation (a rolling upgrade, review r5) ----------------------


def test_an_old_agents_assignment_report_is_taken_and_adopts_nothing(orch: Api, laptop: Host,
                                                                     user: dict[str, str]) -> None:
    """A ``coord agent`` from before today sends no ``host_incarnation``: its report stands for the machine's current
    incarnation (it was answered 422, so every report was lost and the attempt sat until marked lost)."""
    assign(orch, user, issue=5, machine="laptop")
    job = laptop.next()
    assert job is not None
    first = laptop.incarnation
    laptop.register()  # another registration: the attempt is still incarnation `first`'s
    r = orch.post(f"{ORCH}/assignments/{job['id']}/report", headers=laptop.headers,
                  json={"attempt": job["attempt"], "state": "running", "telemetry": {"turns": 3}})
    assert r.status_code == 200, r.text
    assert r.json()["turns"] == 3
    adopted = [e for e in orch.get("/api/coord/audit", headers=orch.admin, params={"limit": 500}).json()
               if e["kind"] == "assignment.adopted"]
    assert adopted == []  # the deprecated path adopts nothing (the next heartbeat does)
    r = orch.post(f"{ORCH}/assignments/{job['id']}/report", headers=laptop.headers,
                  json={"attempt": job["attempt"], "state": "done", "pushed": True, "branch": "issue-5"})
    assert r.status_code == 200 and r.json()["state"] == "done", r.text
    assert first < laptop.incarnation


def test_an_old_agents_run_report_is_taken(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    apply_config(orch, PIPE)
    a = work_done(laptop, orch, user, issue=6)
    run = next_run(laptop)
    assert run is not None
    r = orch.post(f"{ORCH}/stage-runs/{run['id']}/report", headers=laptop.headers,
                  json={"attempt": run["attempt"], "state": "done", "exit_code": 0, "commit": "abc1234"})
    assert r.status_code == 200 and (r.json()["state"], r.json()["commit"]) == ("passed", "abc1234"), r.text
    assert stages_of(orch, a["id"])["stage"] != "test"


def test_the_client_report_may_name_no_incarnation(tmp_path: Path) -> None:
    """``OrchestratorClient.report`` as callers before ``host_incarnation`` called it: no incarnation is sent."""
    from coordhub.client.orchestrator import OrchestratorClient

    seen: list[httpx2.Request] = []
    orc = OrchestratorClient(_recorded(tmp_path, seen))
    orc.report("a1b2c3d4", 1, state="running")
    orc.report("a1b2c3d4", 1, 4, state="done")
    assert [json.loads(r.content) for r in seen] == [{"attempt": 1, "state": "running"},
                                                     {"attempt": 1, "host_incarnation": 4, "state": "done"}]
