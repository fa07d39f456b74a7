"""The scheduler, both backends: max_workers fleet-wide and per machine, FIFO, stagger, the issue lease, halt."""

from __future__ import annotations

from typing import Any

from coordhub.clock import ManualClock
from tests.conftest import Api
from tests.orchestrator.conftest import ORCH, Host, apply_config, assign, config, get


def test_six_assignments_two_hosts_max_workers_two(orch: Api, clock: ManualClock, user: dict[str, str]) -> None:
    apply_config(orch, config(concurrency={"max_workers": 2, "stagger_seconds": 30}))
    hosts = [Host(orch, m, orch.token(f"{m}/agent"), slots=2) for m in ("laptop", "server")]
    for h in hosts:
        h.register()
    queued = [assign(orch, user, issue=n)["id"] for n in range(1, 7)]
    order: list[str] = []
    dispatched_at: list[float] = []
    active_max = 0
    while len(order) < 6:
        for h in hosts:
            job = h.next()
            if job is not None:
                order.append(job["id"])
                dispatched_at.append(clock.now())
                h.report(job, "running")
            active = sum(len(x.running) for x in hosts)
            active_max = max(active_max, active)
            status = orch.get(f"{ORCH}/status", headers=user).json()
            assert status["totals"]["running"] == active <= 2
        clock.advance(10)
        # the oldest running one finishes every 40 s of hub time
        if clock.now() % 40 == 0:
            for h in hosts:
                if h.running:
                    h.report(h.jobs[h.running[0]], "done", telemetry={"cost_usd": 0.5})
                    break
    assert active_max == 2
    assert order == queued  # FIFO: the oldest first, whichever host asked
    gaps = [b - a for a, b in zip(dispatched_at, dispatched_at[1:], strict=False)]
    assert min(gaps) >= 30  # stagger_seconds, fleet-wide
    for h in hosts:
        for job_id in list(h.running):
            h.report(h.jobs[job_id], "done", telemetry={"cost_usd": 0.5})
    status = orch.get(f"{ORCH}/status", headers=user).json()
    assert status["totals"]["cost_usd"] == 3.0 and sum(status["totals"]["by_day"].values()) == 3.0
    assert sum(m["cost_today_usd"] for m in status["machines"]) == 3.0
    assert all(a["state"] == "done" for a in status["assignments"]) and len(status["assignments"]) == 6


def test_per_machine_slots_and_pinned_machines(orch: Api, user: dict[str, str]) -> None:
    apply_config(orch, config(concurrency={"max_workers": 5}))
    laptop = Host(orch, "laptop", orch.token("laptop/agent"), slots=1)
    laptop.register()
    server = Host(orch, "server", orch.token("server/agent"), slots=2)
    server.register()
    a = assign(orch, user, issue=1, machine="server")
    b = assign(orch, user, issue=2, machine="laptop")
    c = assign(orch, user, issue=3, machine="laptop")
    job = laptop.next()
    assert job is not None and job["id"] == b["id"]  # a is pinned to server: laptop skips it, FIFO among its own
    assert laptop.next() is None  # one slot
    job = server.next()
    assert job is not None and job["id"] == a["id"]
    assert server.next() is None  # c is laptop's
    laptop.report(laptop.jobs[b["id"]], "done")
    job = laptop.next()
    assert job is not None and job["id"] == c["id"]


def test_status_counts_free_slots_as_dispatch_does_not_as_the_host_last_said(orch: Api, user: dict[str, str]) -> None:
    laptop = Host(orch, "laptop", orch.token("laptop/agent"), slots=2)
    laptop.register()  # the host says 2 free, and says nothing more until its next heartbeat
    assign(orch, user, issue=1)
    job = laptop.next()
    assert job is not None
    laptop.report(job, "running")

    def machine() -> dict[str, Any]:
        return dict(next(m for m in orch.get(f"{ORCH}/status", headers=user).json()["machines"]
                         if m["machine"] == "laptop"))

    m = machine()  # the board read "2 free of 2" next to "1 running"
    assert (m["slots"], m["running"], m["busy_slots"], m["free_slots"], m["reported_free_slots"]) == (2, 1, 1, 1, 2)
    laptop.beat()
    assert (machine()["free_slots"], machine()["reported_free_slots"]) == (1, 1)
    laptop.report(job, "done")
    assert (machine()["free_slots"], machine()["reported_free_slots"]) == (2, 1)  # free again before the host says so


def test_capabilities_and_repos_of_the_host(orch: Api, user: dict[str, str]) -> None:
    server = Host(orch, "server", orch.token("server/agent"))
    server.register(repos={"lib": "/src/lib"}, capabilities=["python"])
    assign(orch, user, issue=1, repo="api")  # the host did not register api
    docker = assign(orch, user, issue=2, repo="lib", requires=["docker"])  # the host lacks docker
    assert server.next() is None
    server.register(repos={"lib": "/src/lib"}, capabilities=["python", "docker"])
    job = server.next()
    assert job is not None and job["id"] == docker["id"]


def test_the_issue_lease_blocks_a_second_dispatch(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    human = orch.token("desk/claude-2")
    held = orch.post("/api/coord/locks", headers=human, json={"project_key": "api", "resource": "issue:api#8"})
    assert held.status_code == 201
    a = assign(orch, user, issue=8)
    assert laptop.next() is None  # someone works on issue 8 already
    b = assign(orch, user, issue=9)
    job = laptop.next()
    assert job is not None and job["id"] == b["id"]  # the next one in line is not held up
    orch.delete(f"/api/coord/locks/{held.json()['id']}", headers=human)
    job = laptop.next()
    assert job is not None and job["id"] == a["id"]
    # and while the worker holds it, nobody else can claim the issue
    r = orch.post("/api/coord/locks", headers=human, json={"project_key": "api", "resource": "issue:api#8"})
    assert r.status_code == 409 and r.json()["error"]["holder"] == job["worker_session"]


def test_depends_on_holds_back_downstream_work(orch: Api, laptop: Host, server: Host, user: dict[str, str]) -> None:
    cfg = config()
    cfg["repos"][0]["depends_on"] = ["lib"]
    apply_config(orch, cfg)
    up = assign(orch, user, repo="lib", issue=1, machine="laptop")
    down = assign(orch, user, repo="api", issue=2, machine="server")
    assert laptop.next() is not None
    assert server.next() is None  # api depends on lib, which has work in flight
    laptop.report(laptop.jobs[up["id"]], "done")
    job = server.next()
    assert job is not None and job["id"] == down["id"]


def test_halt_stops_dispatch_and_pauses_hosts(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    running = assign(orch, user, issue=1)
    job = laptop.next()
    assert job is not None
    waiting = assign(orch, user, issue=2)
    assert orch.post("/api/coord/halt", headers=orch.admin, json={"reason": "incident"}).status_code == 201
    beat = laptop.beat()
    assert beat["paused"] is True and beat["halt"]["reason"] == "incident"
    assert beat["paused_assignments"] == [running["id"]]
    assert laptop.next() is None  # allowed, answers nothing
    r = orch.post(f"{ORCH}/assignments", headers=user, json={"repo": "api", "issue": 3, "any": True})
    assert r.status_code == 423  # new work is refused
    laptop.report(job, "done", telemetry={"cost_usd": 1.0})  # what finishes is still recorded
    assert get(orch, running["id"])["state"] == "done"
    assert orch.post(f"{ORCH}/assignments/{waiting['id']}/stop", headers=user).status_code == 200  # stop reduces
    assign_after = None
    assert orch.post("/api/coord/resume", headers=orch.admin).status_code == 200
    assert laptop.beat()["paused"] is False
    assign_after = assign(orch, user, issue=4)
    job = laptop.next()
    assert job is not None and job["id"] == assign_after["id"]


def test_machine_and_project_halts(orch: Api, laptop: Host, server: Host, user: dict[str, str]) -> None:
    apply_config(orch, config(concurrency={"max_workers": 5}))
    on_laptop = assign(orch, user, issue=1, machine="laptop")
    lib_work = assign(orch, user, repo="lib", issue=2, machine="server")
    api_work = assign(orch, user, repo="api", issue=3, machine="server")
    admin = orch.admin
    assert orch.post("/api/coord/halt", headers=admin, json={"reason": "laptop fan", "scope": "machine:laptop"}
                     ).status_code == 201
    assert orch.post("/api/coord/halt", headers=admin, json={"reason": "lib freeze", "scope": "project:lib"}
                     ).status_code == 201
    assert laptop.next() is None and laptop.beat()["paused"] is True
    job = server.next()
    assert job is not None and job["id"] == api_work["id"]  # lib is halted: the next one in line goes
    beat = server.beat()
    assert beat["paused"] is False and beat["paused_assignments"] == []
    assert orch.post("/api/coord/resume", headers=admin, json={"scope": "machine:laptop"}).status_code == 200
    job = laptop.next()
    assert job is not None and job["id"] == on_laptop["id"]
    assert server.next() is None
    orch.post("/api/coord/resume", headers=admin, json={"scope": "project:lib"})
    job = server.next()
    assert job is not None and job["id"] == lib_work["id"]


def test_a_resume_does_not_pause_the_orchestrator_s_sessions(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    assign(orch, user, issue=1)
    job = laptop.next()
    assert job is not None
    worker = {"Authorization": f"Bearer {job['worker_token']}", "X-Coord-Heartbeat": "1"}
    assert orch.get("/api/coord/whoami", headers=worker).status_code == 200  # an in-band heartbeat: it is active
    orch.post("/api/coord/halt", headers=orch.admin, json={"reason": "pause the fleet"})
    assert laptop.beat()["paused"] is True  # the host stops its workers (SIGSTOP)
    resumed = orch.post("/api/coord/resume", headers=orch.admin).json()
    assert not any(s.endswith(("/agent", f"/worker-{job['id']}")) for s in resumed["paused"])
    assert laptop.beat()["paused"] is False  # … and continues them (SIGCONT); the worker may write again
    claim = orch.post("/api/coord/locks", headers=worker, json={"project_key": "api", "resource": "src/x.py"})
    assert claim.status_code == 201, claim.text


def test_a_stopping_host_gets_no_more_work_until_it_registers_again(orch: Api, user: dict[str, str]) -> None:
    """A host shutting down says so (a heartbeat with ``stopping``); from then on no dispatch gives it anything,
    not even the assignment its stopped worker just handed back with no backoff (which its long-poll, still
    open, took again before), nor a stage run or a merge run. Another host takes what it may; the machine's
    next registration (the restarted agent) runs the handed-back assignment."""
    from tests.orchestrator.test_pipeline import next_run, report_run

    apply_config(orch, config(repos=[{"name": "api", "build_command": "make"}, {"name": "lib"}],
                              concurrency={"backoff_base": 0}, smoke_tests={"auto_queue": True},
                              pipeline={"stages": ["test", "merge"]}))
    laptop = Host(orch, "laptop", orch.token("laptop/agent"))
    server = Host(orch, "server", orch.token("server/agent"))
    laptop.register()
    server.register()
    a = assign(orch, user, issue=1, machine="laptop")
    job = laptop.next()
    assert job is not None and job["id"] == a["id"]
    laptop.report(job, "running")
    r = orch.post(f"{ORCH}/hosts/heartbeat", headers=laptop.headers, json={
        "machine": "laptop", "host_incarnation": laptop.incarnation, "free_slots": 0, "running": [a["id"]],
        "stopping": True})
    assert r.status_code == 200, r.text
    machines = {m["machine"]: m for m in orch.get(f"{ORCH}/status", headers=user).json()["machines"]}
    assert (machines["laptop"]["state"], machines["laptop"]["slots"]) == ("stopping", 0)
    assert machines["server"]["state"] == "online"
    laptop.report(job, "failed", reason="host_stopped: the host was stopped")
    assert get(orch, a["id"])["state"] == "queued"  # handed back, runnable at once (backoff_base 0)
    assert laptop.next() is None
    # another assignment: the stopping host takes none of it, at any stage
    b = assign(orch, user, issue=2)
    assert laptop.next() is None
    done = server.next()
    assert done is not None and done["id"] == b["id"]
    server.report(done, "done", pushed=True, changed_files=["src/a.py"])
    assert next_run(laptop) is None
    run = next_run(server)
    assert run is not None and run["assignment_id"] == b["id"]
    report_run(server, run, state="done", exit_code=0, output_tail="ok", commit="a" * 40)
    assert get(orch, b["id"])["stage"] == "merge"

    def merge_next(host: Host) -> Any:
        r = orch.post(f"{ORCH}/merges/next", headers=host.headers,
                      json={"machine": host.machine, "host_incarnation": host.incarnation, "wait": 0})
        assert r.status_code == 200, r.text
        return r.json()["run"]

    assert merge_next(laptop) is None
    merging = merge_next(server)
    assert merging is not None and [e["assignment_id"] for e in merging["entries"]] == [b["id"]]
    kinds = [e["kind"] for e in orch.get("/api/coord/audit", headers=orch.admin,
                                         params={"limit": 500, "kinds": "host."}).json()]
    assert kinds.count("host.stopping") == 1
    # the restarted agent registers: its slots are back, and it runs the assignment its worker handed back
    laptop.register()
    machines = {m["machine"]: m for m in orch.get(f"{ORCH}/status", headers=user).json()["machines"]}
    assert (machines["laptop"]["state"], machines["laptop"]["slots"]) == ("online", 2)
    again = laptop.next()
    assert again is not None and again["id"] == a["id"] and again["attempt"] == 2


def test_a_host_that_said_it_stops_is_stopped_not_stale(orch: Api, clock: ManualClock, user: dict[str, str]) -> None:
    """After a clean stop (``coord agent`` got SIGTERM and said ``stopping``) the machine showed ``stopping`` for
    a stale window and then ``stale``, as a crashed one does (seed-003 user run): it is ``stopped`` now; a host
    silent without saying so stays ``stale``, and one that registers again is ``online``."""
    apply_config(orch, config())  # stale after 3 × 5 s
    laptop = Host(orch, "laptop", orch.token("laptop/agent"))
    server = Host(orch, "server", orch.token("server/agent"))
    laptop.register()
    server.register()
    r = orch.post(f"{ORCH}/hosts/heartbeat", headers=laptop.headers, json={
        "machine": "laptop", "host_incarnation": laptop.incarnation, "free_slots": 0, "running": [],
        "stopping": True})
    assert r.status_code == 200, r.text

    def states() -> dict[str, str]:
        return {m["machine"]: m["state"] for m in orch.get(f"{ORCH}/status", headers=user).json()["machines"]}

    assert states() == {"laptop": "stopping", "server": "online"}
    clock.advance(16)
    assert states() == {"laptop": "stopped", "server": "stale"}
    laptop.register()
    assert states()["laptop"] == "online"
