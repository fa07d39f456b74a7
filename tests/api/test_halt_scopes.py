"""Halts of a machine or a project, who may set them, and the pause after a resume (issue 9 point 8), both backends.

Sessions declare their machine and project with ``PUT /conversations/profile``
(:func:`declare`), which is what a scope matches besides the session id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from coordhub.api.app import create_app
from coordhub.clock import ManualClock
from coordhub.core.hub import Hub
from coordhub.core.presence import ACTIVE_SECONDS
from coordhub.store import Store
from tests.conftest import Api

A = "HOST-A/claude-main"
A2 = "host-a/worker"
B = "HOST-B/claude-main"
HALTS = "/api/coord/halt"


def declare(api: Api, headers: dict[str, str], machine: str | None = None, project: str | None = None) -> None:
    """Declare the session's machine and/or project, as a seed-004 session does."""
    body = {k: v for k, v in (("machine", machine), ("project", project)) if v is not None}
    r = api.put("/api/coord/conversations/profile", json=body, headers=headers)
    assert r.status_code == 200, r.text


def todo(api: Api, headers: dict[str, str]) -> Any:
    """A plain write (adding a todo): 201 unless halted or paused."""
    return api.post("/api/coord/todos", json={"text": "work"}, headers=headers)


def register(api: Api, headers: dict[str, str]) -> None:
    assert api.post("/api/coord/presence/register", json={}, headers=headers).status_code == 200


def events(api: Api, kind: str) -> list[dict[str, Any]]:
    rows = api.hub.query_sync(lambda tx, now: tx.events.after(0, 10_000))
    return [{**r, "payload": json.loads(r["payload"])} for r in rows if r["kind"] == kind]


def halt_rows(api: Api) -> list[str]:
    return [r["scope"] for r in api.hub.query_sync(lambda tx, now: tx.halts.all())]


# ---- scope matching -------------------------------------------------------------------------

def test_a_machine_halt_refuses_exactly_the_sessions_of_that_machine(api: Api) -> None:
    a, b, bare = api.token(A), api.token(B), api.token("bare-agent")
    declared, roamer = api.token("host-a/declared"), api.token("OPS/roamer", admin=True)
    declare(api, declared, machine="host-a", project="career")
    declare(api, roamer, machine="host-a")  # an admin may declare any machine: the declared one counts
    r = api.post(HALTS, json={"reason": "runaway poll loop", "scope": "machine:HOST-A"}, headers=api.admin)
    assert r.status_code == 201, r.text
    assert r.json()["scope"] == "machine:host-a" and r.json()["halted_by"] == "admin"
    for headers in (a, declared, roamer):
        r = todo(api, headers)
        assert r.status_code == 423, r.text
        err = r.json()["error"]
        assert err["code"] == "halted" and err["halt"]["scope"] == "machine:host-a"
        assert err["halt"]["reason"] == "runaway poll loop" and err["halt"]["halted_by"] == "admin"
        assert "coord resume --machine host-a" in err["message"]
    for headers in (b, bare):
        assert todo(api, headers).status_code == 201
    assert api.hub.query_sync(lambda tx, now: tx.ex.one("SELECT COUNT(*) AS n FROM todos"))["n"] == 2


def test_a_project_halt_refuses_the_sessions_that_declared_that_project(api: Api) -> None:
    career, homelab, none = api.token("M1/career-agent"), api.token("M1/homelab-agent"), api.token("M1/plain")
    declare(api, career, "m1", "career")
    declare(api, homelab, project="homelab")
    assert api.post(HALTS, json={"reason": "schema rewrite", "scope": "project:Career"},
                    headers=api.admin).json()["scope"] == "project:career"
    r = todo(api, career)
    assert r.status_code == 423 and r.json()["error"]["halt"]["scope"] == "project:career"
    assert todo(api, homelab).status_code == 201 and todo(api, none).status_code == 201


def test_a_project_halt_stops_work_in_that_project_whoever_does_it(api: Api) -> None:
    # Most sessions never declare a project (only `coord conv` does): the edit hook and the git guard name the
    # project by the repository, and a claim by its key. Before, `coord halt --project career` let any such
    # session claim and renew leases in career and edit there (the conflicts answer carried no halt).
    plain, elsewhere = api.token("M1/plain"), api.token("M2/elsewhere")
    declare(api, elsewhere, project="homelab")
    held = api.post("/api/coord/locks", json={"project_key": "career", "resource": "src/held.py"}, headers=plain)
    assert held.status_code == 201, held.text
    other = api.post("/api/coord/locks", json={"project_key": "homelab", "resource": "x.py"}, headers=plain).json()
    assert api.post(HALTS, json={"reason": "schema rewrite", "scope": "project:career"},
                    headers=api.admin).status_code == 201
    for headers in (plain, elsewhere):
        for key in ("career", "Career"):
            r = api.post("/api/coord/locks", json={"project_key": key, "resource": "src/a.py"}, headers=headers)
            assert r.status_code == 423, r.text
            assert r.json()["error"]["code"] == "halted" and r.json()["error"]["halt"]["scope"] == "project:career"
        seen = api.get("/api/coord/locks/conflicts", params={"project_key": "Career", "resource": "src/a.py"},
                       headers=headers).json()
        assert seen["halt"]["scope"] == "project:career" and seen["halt"]["reason"] == "schema rewrite"
        seen = api.post("/api/coord/locks/conflicts", json={"project_key": "career", "resources": ["src/a.py"]},
                        headers=headers).json()
        assert seen["halt"]["scope"] == "project:career"
        # other projects go on, and the halt is no reason to refuse anything else
        assert api.get("/api/coord/locks/conflicts", params={"project_key": "homelab", "resource": "src/a.py"},
                       headers=headers).json()["halt"] is None
        r = api.post("/api/coord/locks", json={"project_key": "homelab", "resource": "src/a.py"}, headers=headers)
        assert r.status_code in (201, 409), r.text
        assert todo(api, headers).status_code == 201
    r = api.post(f"/api/coord/locks/{held.json()['id']}/renew", json={"ttl_hours": 5}, headers=plain)
    assert r.status_code == 423 and r.json()["error"]["halt"]["scope"] == "project:career", r.text
    assert api.post(f"/api/coord/locks/{other['id']}/renew", json={}, headers=plain).status_code == 200
    # ending a lease is let through
    assert api.delete(f"/api/coord/locks/{held.json()['id']}", headers=plain).status_code == 200
    assert api.post("/api/coord/resume", json={"scope": "project:career"}, headers=api.admin).status_code == 200
    r = api.post("/api/coord/locks", json={"project_key": "career", "resource": "src/a.py"}, headers=plain)
    assert r.status_code == 201, r.text


def test_a_project_scope_is_a_project_a_session_can_declare(api: Api, clock: ManualClock) -> None:
    agent = api.token("M1/agent")
    declare(api, agent, "m1", "coord-hub")  # what the client makes of a repository named coord.hub
    for bad in ("project:coord.hub", "project:Coord.Hub", "project:a@b", "project:-x", "project:" + "x" * 65):
        r = api.post(HALTS, json={"reason": "stop coord.hub", "scope": bad}, headers=api.admin)
        assert r.status_code == 422 and "no session can declare" in r.json()["error"]["message"], (bad, r.text)
    assert "halt project:coord-hub" in api.post(HALTS, json={"reason": "r", "scope": "project:coord.hub"},
                                                headers=api.admin).json()["error"]["message"]
    assert halt_rows(api) == [] and todo(api, agent).status_code == 201
    r = api.post(HALTS, json={"reason": "stop coord-hub", "scope": "project:Coord-Hub"}, headers=api.admin)
    assert r.status_code == 201 and r.json()["scope"] == "project:coord-hub"
    assert todo(api, agent).status_code == 423
    assert api.post("/api/coord/resume", json={"scope": "project:coord-hub"}, headers=api.admin).status_code == 200


def test_a_project_halt_stored_before_the_rule_still_covers_and_lifts(api: Api, clock: ManualClock) -> None:
    from coordhub.core import hosts

    agent = api.token("M1/agent")
    declare(api, agent, "m1", "coord-hub")
    api.hub.store.write_sync(lambda tx: tx.ex.execute(
        "INSERT INTO halts (scope, halted_by, reason, halted_at, by_admin) VALUES (?, ?, ?, ?, ?)",
        ("project:coord.hub", "admin", "stored by an older hub", clock.now(), 1)))
    got = api.get(HALTS, headers=agent).json()["halts"]
    assert [(h["scope"], h["applies"]) for h in got] == [("project:coord.hub", True)]
    assert todo(api, agent).json()["error"]["halt"]["scope"] == "project:coord.hub"
    # the orchestrator's repo coord.hub is the same project
    assert api.hub.query_sync(lambda tx, now: hosts.halted_projects(tx)) == {"coord-hub"}
    r = api.post("/api/coord/resume", json={"scope": "project:coord.hub", "engage_all": True}, headers=api.admin)
    assert r.status_code == 200 and r.json()["was"]["reason"] == "stored by an older hub"
    assert halt_rows(api) == [] and todo(api, agent).status_code == 201


def test_a_project_with_an_end_dash_or_underscore_is_the_name_a_client_makes(api: Api) -> None:
    """A directory ``api_``: every client declares project ``api`` (review r7: today's client declared ``api_``).
    A session that declared ``api_`` all the same (the hub still takes it) is in project ``api`` too, and so is the
    orchestrator's repository ``api_``: a halt of either spelling covers both."""
    from coordhub.core import hosts
    from coordhub.core.identity import address_part
    from coordhub.core.scope import project_of

    assert address_part("api_") == "api" and project_of("api_") == "api" and project_of("a" * 63 + "-b") == "a" * 63
    made, kept = api.token("M1/made"), api.token("M2/kept")
    declare(api, made, project=address_part("api_"))
    declare(api, kept, project="api_")
    for scope in ("project:api", "project:api_"):
        r = api.post(HALTS, json={"reason": "r", "scope": scope}, headers=api.admin)
        assert r.status_code == 201 and r.json()["scope"] == scope, r.text
        assert todo(api, made).status_code == 423 and todo(api, kept).status_code == 423, scope
        assert api.hub.query_sync(lambda tx, now: hosts.halted_projects(tx)) == {"api"}
        assert api.post("/api/coord/resume", json={"scope": scope, "engage_all": True},
                        headers=api.admin).status_code == 200


def test_the_fleet_is_the_default_scope_and_get_halt_keeps_its_old_fields(api: Api) -> None:
    a = api.token(A)
    assert api.post(HALTS, json={"reason": "everyone stop"}, headers=api.admin).json()["scope"] == "fleet"
    r = todo(api, a)
    assert r.status_code == 423 and r.json()["error"]["halt"]["scope"] == "fleet"
    assert api.post(HALTS, json={"reason": "b", "scope": "project:x"}, headers=api.admin).status_code == 423
    got = api.get(HALTS, headers=a).json()
    assert got["halted"] is True and got["reason"] == "everyone stop" and got["scope"] == "fleet"
    assert [(h["scope"], h["applies"]) for h in got["halts"]] == [("fleet", True)]


def test_a_halted_session_cannot_declare_its_way_out_of_the_scope(api: Api) -> None:
    alpha, roamer = api.token("M1/alpha-agent"), api.token("OPS/roamer", admin=True)
    declare(api, alpha, "m1", "alpha")
    declare(api, roamer, machine="host-a")
    api.post(HALTS, json={"reason": "incident in alpha", "scope": "project:alpha"}, headers=api.admin)
    api.post(HALTS, json={"reason": "box on fire", "scope": "machine:host-a"}, headers=api.admin)
    for headers, body, scope in ((alpha, {"project": "beta"}, "project:alpha"),
                                 (roamer, {"machine": "host-b"}, "machine:host-a")):
        r = api.put("/api/coord/conversations/profile", json=body, headers=headers)
        assert r.status_code == 423 and r.json()["error"]["halt"]["scope"] == scope, r.text
        assert todo(api, headers).status_code == 423
        assert [h["applies"] for h in api.get(HALTS, headers=headers).json()["halts"]].count(True) == 1
    # what keeps it inside goes through: tools, the same project, a project declared under a machine halt
    assert api.put("/api/coord/conversations/profile", json={"project": "alpha", "tools": ["Read"]},
                   headers=alpha).status_code == 200
    declare(api, roamer, project="beta")
    # after the resume the pause holds it the same way, and the session it paused stays paused
    register(api, alpha)
    assert api.post("/api/coord/resume", json={"scope": "project:alpha"},
                    headers=api.admin).json()["paused"] == ["M1/alpha-agent"]
    r = api.put("/api/coord/conversations/profile", json={"project": "beta"}, headers=alpha)
    assert r.status_code == 423 and r.json()["error"]["code"] == "paused", r.text
    assert api.post("/api/coord/engage", headers=alpha).status_code == 200
    declare(api, alpha, project="beta")  # once engaged, it is free to move
    assert todo(api, alpha).status_code == 201


def test_every_standing_halt_is_listed_with_whether_it_covers_the_caller(api: Api, clock: ManualClock) -> None:
    a, b = api.token(A), api.token(B)
    declare(api, b, project="career")
    api.post(HALTS, json={"reason": "box on fire", "scope": "machine:host-a"}, headers=api.admin)
    clock.advance(1)
    api.post(HALTS, json={"reason": "rewrite", "scope": "project:career"}, headers=api.admin)
    for headers, applies in ((a, [True, False]), (b, [False, True]), (api.admin, [False, False])):
        got = api.get(HALTS, headers=headers).json()
        assert got["halted"] is False and got["paused"] is None  # the fleet itself is not halted
        assert [h["scope"] for h in got["halts"]] == ["machine:host-a", "project:career"]
        assert [h["applies"] for h in got["halts"]] == applies
        status = api.get("/api/coord/status", headers=headers).json()
        assert status["halt"] is None and [h["applies"] for h in status["halts"]] == applies
    conflicts = api.get("/api/coord/locks/conflicts", params={"project_key": "p", "resource": "x"}, headers=a).json()
    assert conflicts["halt"]["scope"] == "machine:host-a" and conflicts["paused"] is None
    free = api.get("/api/coord/locks/conflicts", params={"project_key": "p", "resource": "x"},
                   headers=api.admin).json()
    assert free["halt"] is None


def test_one_halt_per_scope_and_bad_scopes_are_refused(api: Api) -> None:
    api.post(HALTS, json={"reason": "one", "scope": "machine:host-a"}, headers=api.admin)
    r = api.post(HALTS, json={"reason": "two", "scope": "MACHINE:Host-A"}, headers=api.admin)
    assert r.status_code == 409 and r.json()["error"]["halt"]["reason"] == "one"
    for bad in ("galaxy:x", "machine:", "machine:a b", "project:" + "x" * 101, "machine", "*"):
        r = api.post(HALTS, json={"reason": "r", "scope": bad}, headers=api.admin)
        assert r.status_code == 422, (bad, r.text)
        assert api.post("/api/coord/resume", json={"scope": bad}, headers=api.admin).status_code == 422
    assert halt_rows(api) == ["machine:host-a"]


# ---- who may halt and resume ------------------------------------------------------------------

def test_a_session_may_halt_and_resume_only_its_own_machine(api: Api) -> None:
    a, a2, b, bare = api.token(A), api.token(A2), api.token(B), api.token("loner")
    for headers, scope in ((a, "machine:host-b"), (a, "fleet"), (a, "project:career"), (b, "machine:host-a"),
                           (bare, "machine:loner"), (bare, "machine:host-a")):
        r = api.post(HALTS, json={"reason": "no", "scope": scope}, headers=headers)
        assert r.status_code == 403, (scope, r.text)
    assert api.post(HALTS, json={"reason": "no"}, headers=a).status_code == 403
    # the right comes from the id alone: a declared machine other than it (which the profile refuses to record
    # today) would grant nothing
    api.hub.store.write_sync(lambda tx: tx.ex.execute("UPDATE sessions SET machine = 'host-b' WHERE session_id = ?",
                                                      (A,)))
    assert api.post(HALTS, json={"reason": "no", "scope": "machine:host-b"}, headers=a).status_code == 403
    assert halt_rows(api) == []

    r = api.post(HALTS, json={"reason": "my loop runs away", "scope": "machine:Host-A"}, headers=a2)
    assert r.status_code == 201 and r.json()["halted_by"] == A2
    assert todo(api, a2).status_code == 423  # it halted itself
    assert api.post("/api/coord/resume", json={"scope": "machine:host-a"}, headers=b).status_code == 403
    assert api.post("/api/coord/resume", json={"scope": "fleet"}, headers=a2).status_code == 403
    assert halt_rows(api) == ["machine:host-a"]
    r = api.post("/api/coord/resume", json={"scope": "machine:host-a"}, headers=a)  # a peer on that machine
    assert r.status_code == 200 and r.json()["was"]["halted_by"] == A2
    assert halt_rows(api) == []


def test_a_session_cannot_lift_a_halt_an_admin_set_on_its_machine(api: Api) -> None:
    a = api.token(A)
    api.post(HALTS, json={"reason": "stopped by ops", "scope": "machine:host-a"}, headers=api.admin)
    r = api.post("/api/coord/resume", json={"scope": "machine:host-a"}, headers=a)
    assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
    assert halt_rows(api) == ["machine:host-a"] and todo(api, a).status_code == 423
    assert api.post("/api/coord/resume", json={"scope": "machine:host-a"}, headers=api.admin).status_code == 200


def test_an_admin_takes_over_a_halt_a_session_set_on_its_machine(api: Api, clock: ManualClock) -> None:
    a = api.token(A)
    r = api.post(HALTS, json={"reason": "squat", "scope": "machine:host-a"}, headers=a)
    assert r.status_code == 201
    fell = r.json()["halted_at"]
    clock.advance(30)
    r = api.post(HALTS, json={"reason": "operator: stop host-a now", "scope": "machine:host-a"}, headers=api.admin)
    assert r.status_code == 201, r.text
    assert (r.json()["halted_by"], r.json()["reason"], r.json()["halted_at"]) == \
        ("admin", "operator: stop host-a now", fell)
    assert [(e["session_id"], e["payload"].get("took_over_from")) for e in events(api, "halt.set")] == \
        [(A, None), ("admin", A)]
    r = api.post("/api/coord/resume", json={"scope": "machine:host-a", "engage_all": True}, headers=a)
    assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
    assert todo(api, a).status_code == 423 and halt_rows(api) == ["machine:host-a"]
    # an admin's halt is not taken over, not even by another admin
    other_admin = api.token("OPS/other", admin=True)
    r = api.post(HALTS, json={"reason": "again", "scope": "machine:host-a"}, headers=other_admin)
    assert r.status_code == 409 and r.json()["error"]["halt"]["reason"] == "operator: stop host-a now"
    assert len(events(api, "halt.set")) == 2
    assert api.post("/api/coord/resume", json={"scope": "machine:host-a"}, headers=api.admin).status_code == 200


def test_halting_again_with_refresh_gives_the_standing_halt_the_new_reason(api: Api, clock: ManualClock) -> None:
    # Seed 004: running its halt again while halted rewrote the HALT file with the new reason. Here the halt that
    # covers the session refused the second one (423), so the reason stayed the first whatever the user said.
    a, a2, b = api.token(A), api.token(A2), api.token(B)
    r = api.post(HALTS, json={"reason": "runaway poll loop", "scope": "machine:host-a"}, headers=a)
    fell = r.json()["halted_at"]
    clock.advance(60)
    assert api.post(HALTS, json={"reason": "plain", "scope": "machine:host-a"}, headers=a).status_code == 423
    r = api.post(HALTS, json={"reason": "it was the watcher", "scope": "machine:host-a", "refresh": True},
                 headers=a2)  # a peer on that machine may lift it, so it may say why anew
    assert r.status_code == 200, r.text
    # ... and stays A's halt: who halted the machine is still A, who said why anew is refreshed_by
    assert (r.json()["reason"], r.json()["halted_by"], r.json()["halted_at"], r.json()["refreshed"],
            r.json()["refreshed_by"]) == ("it was the watcher", A, fell, True, A2)
    assert api.get(HALTS, headers=a).json()["halts"][0]["halted_by"] == A
    assert api.get(HALTS, headers=a).json()["halts"][0]["reason"] == "it was the watcher"
    refused = todo(api, a)
    assert refused.status_code == 423 and refused.json()["error"]["halt"]["reason"] == "it was the watcher"
    assert [(e["payload"]["reason"], e["payload"].get("previous_reason")) for e in events(api, "halt.set")] == \
        [("runaway poll loop", None), ("it was the watcher", "runaway poll loop")]
    # who may not lift it may not rewrite it: another machine, and a session under an admin's halt
    assert api.post(HALTS, json={"reason": "x", "scope": "machine:host-a", "refresh": True},
                    headers=b).status_code == 403
    r = api.post(HALTS, json={"reason": "ops: stop", "scope": "machine:host-a", "refresh": True}, headers=api.admin)
    assert r.status_code == 200 and r.json()["halted_by"] == "admin"  # an admin's refresh takes it over
    r = api.post(HALTS, json={"reason": "mine again", "scope": "machine:host-a", "refresh": True}, headers=a)
    assert r.status_code == 423 and r.json()["error"]["halt"]["reason"] == "ops: stop"
    assert api.post("/api/coord/resume", json={"scope": "machine:host-a"}, headers=api.admin).status_code == 200
    # with nothing standing, refresh sets a new halt (201), and is refused as any write of a halted session
    r = api.post(HALTS, json={"reason": "new", "scope": "machine:host-a", "refresh": True},
                 headers=api.token("host-a/fresh"))
    assert r.status_code == 201 and "refreshed" not in r.json(), r.text
    api.post(HALTS, json={"reason": "everyone", "scope": "fleet"}, headers=api.admin)
    r = api.post(HALTS, json={"reason": "mine", "scope": "machine:host-b", "refresh": True}, headers=b)
    assert r.status_code == 423 and r.json()["error"]["halt"]["scope"] == "fleet"
    r = api.post(HALTS, json={"reason": "everyone, still", "refresh": True}, headers=api.admin)
    assert r.status_code == 200 and r.json()["reason"] == "everyone, still", r.text
    assert sorted(halt_rows(api)) == ["*", "machine:host-a"]


def test_an_orchestrator_worker_refreshing_its_machines_halt_is_refused_as_before(api: Api) -> None:
    # cross-agent-halt sends refresh. A worker may pull the brake but not lift it, so it may not say anew why the
    # halt stands either; without refresh its second halt was refused as any write of a halted session (423,
    # which cross-agent-halt reports as "already halted", exit 0): with refresh it was a 403 (exit 1).
    a, worker = api.token(A), api.token("host-a/worker-0123abcd")
    register(api, worker)
    assert api.post(HALTS, json={"reason": "runaway", "scope": "machine:host-a"}, headers=a).status_code == 201
    for refresh in (False, True):
        r = api.post(HALTS, json={"reason": "mine", "scope": "machine:host-a", "refresh": refresh}, headers=worker)
        assert r.status_code == 423 and r.json()["error"]["halt"]["reason"] == "runaway", (refresh, r.text)
    assert [e["payload"]["reason"] for e in events(api, "halt.set")] == ["runaway"]


# ---- the pause after a resume -----------------------------------------------------------------

def test_resume_pauses_the_sessions_active_under_the_halt_until_each_engages(api: Api, clock: ManualClock) -> None:
    active, late, quiet, old = api.token(A), api.token(A2), api.token("HOST-C/script"), api.token(B)
    register(api, old)
    clock.advance(ACTIVE_SECONDS + 1)          # B's last heartbeat is now older than "active"
    register(api, active)                       # active when the halt falls
    api.post(HALTS, json={"reason": "incident"}, headers=api.admin)
    clock.advance(600)
    register(api, late)                         # starts while the halt stands (presence is exempt)
    assert todo(api, quiet).status_code == 423  # never heartbeats: refused, and leaves no sign of life
    clock.advance(60)
    r = api.post("/api/coord/resume", headers=api.admin)
    assert r.status_code == 200, r.text
    assert sorted(r.json()["paused"]) == sorted([A, A2]) and r.json()["engaged"] == []

    refused = todo(api, active)
    assert refused.status_code == 423
    err = refused.json()["error"]
    assert err["code"] == "paused" and err["paused"]["scope"] == "fleet" and "coord engage" in err["message"]
    assert todo(api, quiet).status_code == 201 and todo(api, old).status_code == 201
    presence = {p["session_id"]: p["paused"] for p in api.get("/api/coord/presence", headers=old).json()}
    assert presence == {A: True, A2: True, B: False}
    mine = api.get(HALTS, headers=active).json()
    assert mine["halted"] is False and mine["halts"] == [] and mine["paused"]["scope"] == "fleet"
    assert api.get("/api/coord/status", headers=active).json()["paused"]["paused_at"]
    assert api.get("/api/coord/locks/conflicts", params={"project_key": "p", "resource": "x"},
                   headers=active).json()["paused"]["scope"] == "fleet"

    lifted = events(api, "halt.lifted")
    assert [e["payload"]["scope"] for e in lifted] == ["fleet"]
    paused = events(api, "session.paused")
    assert sorted((e["target"], e["payload"]["scope"]) for e in paused) == sorted([(A, "fleet"), (A2, "fleet")])
    notes = api.get("/api/coord/notifications", headers=active).json()["events"]
    assert [e["kind"] for e in notes if e["kind"].startswith("session.")] == ["session.paused"]

    r = api.post("/api/coord/engage", headers=active)
    assert r.status_code == 200 and r.json()["was"]["scope"] == "fleet" and r.json()["paused"] is False
    assert todo(api, active).status_code == 201
    assert todo(api, late).status_code == 423  # engaging is per session
    assert api.post("/api/coord/engage", headers=active).json()["was"] is None
    assert [e["payload"]["engaged_session"] for e in events(api, "session.engaged")] == [A]


def test_who_is_paused_follows_presences_own_active_threshold(api: Api, clock: ManualClock,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # core/pause.py kept a copy of presence's "active" threshold, taken when it was imported: a change of the one
    # definition (here 30 s) left the pause going by the old 120 s
    from coordhub.core import presence

    monkeypatch.setattr(presence, "ACTIVE_SECONDS", 30.0)
    a, b = api.token(A), api.token(B)
    register(api, a)
    clock.advance(60)  # A: idle by the threshold in force when the halt falls, B: active
    register(api, b)
    api.post(HALTS, json={"reason": "incident"}, headers=api.admin)
    r = api.post("/api/coord/resume", headers=api.admin)
    assert r.status_code == 200 and r.json()["paused"] == [B], r.text


def test_only_sessions_in_the_lifted_scope_are_paused(api: Api) -> None:
    a, b = api.token(A), api.token(B)
    register(api, a)
    register(api, b)
    api.post(HALTS, json={"reason": "box on fire", "scope": "machine:host-a"}, headers=api.admin)
    r = api.post("/api/coord/resume", json={"scope": "machine:host-a"}, headers=api.admin)
    assert r.json()["paused"] == [A] and r.json()["scope"] == "machine:host-a"
    assert todo(api, a).json()["error"]["paused"]["scope"] == "machine:host-a"
    assert todo(api, b).status_code == 201


def test_the_session_that_resumes_is_not_paused(api: Api) -> None:
    a, a2 = api.token(A), api.token(A2)
    register(api, a)
    register(api, a2)
    api.post(HALTS, json={"reason": "mine", "scope": "machine:host-a"}, headers=a)
    assert api.post("/api/coord/resume", json={"scope": "machine:host-a"}, headers=a).json()["paused"] == [A2]
    assert todo(api, a).status_code == 201 and todo(api, a2).status_code == 423


def test_engage_all_lets_everyone_in_the_scope_go_on(api: Api, clock: ManualClock) -> None:
    a, a2, b = api.token(A), api.token(A2), api.token(B)
    for headers in (a, a2, b):
        register(api, headers)
    api.post(HALTS, json={"reason": "one"}, headers=api.admin)
    assert len(api.post("/api/coord/resume", headers=api.admin).json()["paused"]) == 3
    # without a halt standing, --engage-all of one machine clears that machine's pauses only
    r = api.post("/api/coord/resume", json={"scope": "machine:host-a", "engage_all": True}, headers=api.admin)
    assert r.json()["was"] is None and r.json()["paused"] == [] and sorted(r.json()["engaged"]) == sorted([A, A2])
    assert todo(api, a).status_code == 201 and todo(api, a2).status_code == 201 and todo(api, b).status_code == 423
    # a halt resumed with engage_all pauses nobody
    api.post(HALTS, json={"reason": "two"}, headers=api.admin)
    clock.advance(5)
    r = api.post("/api/coord/resume", json={"engage_all": True}, headers=api.admin)
    assert r.json()["was"]["reason"] == "two" and r.json()["paused"] == [] and r.json()["engaged"] == [B]
    for headers in (a, a2, b):
        assert todo(api, headers).status_code == 201
    # a session may engage everyone on its own machine, and nobody elsewhere
    assert api.post("/api/coord/resume", json={"scope": "machine:host-b", "engage_all": True},
                    headers=a).status_code == 403


def test_a_paused_session_keeps_its_exempt_writes(api: Api) -> None:
    a, other = api.token(A), api.token(B)
    lease = api.post("/api/coord/locks", json={"project_key": "p", "resource": "src/"}, headers=a).json()
    msg = api.post("/api/coord/messages", json={"to_session": A, "subject": "s", "requires_ack": True},
                   headers=other).json()
    register(api, a)
    api.post(HALTS, json={"reason": "freeze"}, headers=api.admin)
    api.post("/api/coord/resume", headers=api.admin)
    assert api.post("/api/coord/presence/heartbeat", json={}, headers=a).status_code == 200
    assert api.post("/api/coord/messages/unshown", json={}, headers=a).json()["messages"][0]["id"] == msg["id"]
    assert api.put(f"/api/coord/messages/{msg['id']}/read", headers=a).status_code == 200
    assert api.post(f"/api/coord/messages/{msg['id']}/ack", headers=a).status_code == 200
    assert api.post("/api/coord/events", json={"kind": "hook.denied"}, headers=a).status_code == 201
    assert api.delete(f"/api/coord/locks/{lease['id']}", headers=a).status_code == 200
    for method, path, body in (("POST", "/api/coord/locks", {"project_key": "p", "resource": "r"}),
                               ("POST", "/api/coord/messages", {"subject": "x"}),
                               ("PUT", "/api/coord/components", {"project_key": "p", "component": "c",
                                                                 "state": "deployed"})):
        r = api.request(method, path, json=body, headers=a)
        assert r.status_code == 423 and r.json()["error"]["code"] == "paused", (path, r.text)
    assert api.get("/api/coord/messages", headers=a).status_code == 200  # reads go through


def test_engage_is_allowed_while_a_halt_still_covers_the_session(api: Api) -> None:
    a = api.token(A)
    register(api, a)
    api.post(HALTS, json={"reason": "one"}, headers=api.admin)
    api.post("/api/coord/resume", headers=api.admin)
    api.post(HALTS, json={"reason": "box", "scope": "machine:host-a"}, headers=api.admin)
    assert api.post("/api/coord/engage", headers=a).json()["was"]["scope"] == "fleet"
    assert todo(api, a).json()["error"]["code"] == "halted"  # the standing halt still refuses


@pytest.mark.parametrize("resume_first", [False, True])
def test_scoped_halts_and_pauses_survive_a_restart(api: Api, store_factory: Callable[[], Store],
                                                   clock: ManualClock, resume_first: bool) -> None:
    a = api.token(A)
    register(api, a)
    api.post(HALTS, json={"reason": "maintenance", "scope": "machine:host-a"}, headers=api.admin)
    if resume_first:
        api.post("/api/coord/resume", json={"scope": "machine:host-a"}, headers=api.admin)
    api.hub.store.close()
    reopened = Hub(store_factory(), clock)
    with TestClient(create_app(reopened, sweep_seconds=0)) as client:
        r = client.post("/api/coord/todos", json={"text": "t"}, headers=a)
        assert r.status_code == 423
        err = r.json()["error"]
        if resume_first:
            assert err["code"] == "paused" and err["paused"]["scope"] == "machine:host-a"
        else:
            assert err["code"] == "halted" and err["halt"]["reason"] == "maintenance"


def test_a_caller_naming_no_session_is_shown_the_fleet_halt_as_a_projects(open_api: TestClient, hub: Hub) -> None:
    """``/locks/conflicts`` answers the halt that stops work in the project: on a ``--no-auth`` hub a hook or guard
    with no identity names no session, and was shown a project's halt there but not the fleet's (none covers
    nobody), so the edit hook allowed and the guard accepted work the fleet halt stops."""
    admin = {"X-Coord-Session": "ops/admin"}
    assert open_api.post(HALTS, json={"reason": "incident", "scope": "project:career"},
                         headers=admin).status_code == 201
    assert open_api.post(HALTS, json={"reason": "all stop"}, headers=admin).status_code == 201
    for key in ("career", "homelab"):
        got = open_api.get("/api/coord/locks/conflicts", params={"project_key": key, "resource": "a.py"}).json()
        assert got["halt"]["scope"] == "fleet" and got["halt"]["reason"] == "all stop", got
        got = open_api.post("/api/coord/locks/conflicts", json={"project_key": key, "resources": ["a.py"]}).json()
        assert got["halt"]["scope"] == "fleet", got
    assert open_api.post("/api/coord/resume", json={}, headers=admin).status_code == 200
    got = open_api.get("/api/coord/locks/conflicts", params={"project_key": "homelab", "resource": "a.py"}).json()
    assert got["halt"] is None
    got = open_api.get("/api/coord/locks/conflicts", params={"project_key": "career", "resource": "a.py"}).json()
    assert got["halt"]["scope"] == "project:career"
