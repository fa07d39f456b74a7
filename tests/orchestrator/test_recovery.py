"""Crash recovery, both backends: stale hosts, restarted hosts, lost dispatches, late reports, max_retries."""

from __future__ import annotations

from coordhub.clock import ManualClock
from coordhub.core import reconcile
from coordhub.store import Store
from tests.conftest import Api
from tests.orchestrator.conftest import ORCH, Host, apply_config, assign, config, get


def reconcile_now(api: Api) -> dict[str, list[str]]:
    r = api.post(f"{ORCH}/reconcile", headers=api.admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_stale_host_requeues_and_the_late_report_is_ignored(orch: Api, clock: ManualClock, laptop: Host,
                                                            server: Host, user: dict[str, str]) -> None:
    a = assign(orch, user, issue=1)
    old = laptop.next()
    assert old is not None and old["attempt"] == 1
    laptop.report(old, "running", telemetry={"cost_usd": 0.2})
    worker = {"Authorization": f"Bearer {old['worker_token']}"}
    clock.advance(10)
    server.beat()
    nothing = {"stale_hosts": [], "stopped_hosts": [], "requeued": [], "failed": []}
    assert reconcile_now(orch) == nothing  # 10 s < 3 × 5 s
    clock.advance(6)
    server.beat()
    assert reconcile_now(orch) == {"stale_hosts": ["laptop"], "stopped_hosts": [], "requeued": [a["id"]],
                                   "failed": []}
    assert reconcile_now(orch) == {"stale_hosts": [], "stopped_hosts": [], "requeued": [], "failed": []}  # idempotent
    got = get(orch, a["id"])
    assert got["state"] == "queued" and got["attempt"] == 1 and got["reason"].startswith("host_stale")
    assert [x["state"] for x in got["attempts"]] == ["lost"]
    assert orch.get("/api/coord/whoami", headers=worker).status_code == 401  # the lost worker's token ended
    assert orch.get(f"/api/coord/locks/{old['lease_id']}", headers=user).json()["state"] == "revoked"
    clock.advance(10)  # backoff_base 10 × 2^0
    new = server.next()
    assert new is not None and new["id"] == a["id"] and new["attempt"] == 2 and new["fence"] > old["fence"]
    # the dead attempt's completion arrives late: refused, and it changes nothing
    r = orch.post(f"{ORCH}/assignments/{a['id']}/report", headers=laptop.headers,
                  json={"attempt": 1, "host_incarnation": laptop.incarnation, "state": "done",
                        "telemetry": {"cost_usd": 9.0}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "stale_attempt"
    got = get(orch, a["id"])
    assert (got["state"], got["attempt"], got["ran_on"], got["cost_usd"]) == ("dispatched", 2, "server", 0.0)
    # the laptop comes back: it is told to cancel what it still runs
    beat = laptop.beat()
    (back,) = orch.get("/api/coord/audit", headers=orch.admin, params={"kinds": "host.back"}).json()
    assert isinstance(back["payload"]["stale_since"], str) and back["payload"]["stale_since"].endswith("Z"), back
    assert beat["cancel"] == [a["id"]]
    server.report(new, "done", telemetry={"cost_usd": 0.3})
    got = get(orch, a["id"])
    assert (got["state"], got["total_cost_usd"]) == ("done", 0.5)
    assert [x["state"] for x in got["attempts"]] == ["lost", "done"]


def test_a_host_that_stopped_cleanly_is_stopped_not_stale(orch: Api, clock: ManualClock, laptop: Host,
                                                          server: Host, user: dict[str, str]) -> None:
    """A host whose last heartbeat said it stops (``coord agent`` got SIGTERM) and then went silent is reported
    as stopped (event ``host.stopped``, reason ``host_stopped``), not as stale like one that vanished: the
    operator tells a clean stop from a crash. What it did not hand back is re-queued all the same."""
    a = assign(orch, user, issue=1, machine="laptop")
    b = assign(orch, user, issue=2, machine="server")
    assert laptop.next() is not None and server.next() is not None
    r = orch.post(f"{ORCH}/hosts/heartbeat", headers=laptop.headers, json={
        "machine": "laptop", "host_incarnation": laptop.incarnation, "free_slots": 0,
        "running": laptop.running, "stopping": True})  # its worker's final report never arrives
    assert r.status_code == 200, r.text
    clock.advance(16)  # both silent past 3 × 5 s: the laptop said it stops, the server did not
    done = reconcile_now(orch)
    assert (done["stale_hosts"], done["stopped_hosts"], done["failed"]) == (["server"], ["laptop"], [])
    assert sorted(done["requeued"]) == sorted([a["id"], b["id"]])
    assert reconcile_now(orch) == {"stale_hosts": [], "stopped_hosts": [], "requeued": [], "failed": []}
    assert get(orch, a["id"])["reason"].startswith("host_stopped: laptop stopped")
    assert get(orch, b["id"])["reason"].startswith("host_stale: no heartbeat from server")
    events = orch.get("/api/coord/audit", headers=orch.admin, params={"limit": 500, "kinds": "host."}).json()
    gone = {e["kind"]: e["subject_id"] for e in events if e["kind"] in ("host.stale", "host.stopped")}
    assert gone == {"host.stopped": "laptop", "host.stale": "server"}
    # its last heartbeat as every time the hub answers is (ISO 8601): it was epoch seconds, which the dashboard's
    # event feed showed as "last_heartbeat":1796638053.15
    beats = [e["payload"]["last_heartbeat"] for e in events if e["kind"] in ("host.stale", "host.stopped")]
    assert beats and all(isinstance(b, str) and b.endswith("Z") for b in beats), beats


def test_max_retries_then_failed(orch: Api, clock: ManualClock, laptop: Host, user: dict[str, str]) -> None:
    apply_config(orch, config(concurrency={"max_retries": 1, "backoff_base": 0}))
    a = assign(orch, user, issue=1, machine="laptop")
    for attempt in (1, 2):
        job = laptop.next()
        assert job is not None and job["attempt"] == attempt
        clock.advance(16)
        reconcile_now(orch)
        laptop.register()  # the agent restarts after each loss
    got = get(orch, a["id"])
    assert got["state"] == "failed" and "gave up after 2 attempt(s) (max_retries 1)" in got["reason"]
    assert laptop.next() is None


def test_restarted_host_adopts_what_it_reattached(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    kept = assign(orch, user, issue=1)
    lost = assign(orch, user, issue=2)
    jobs = [laptop.next(), laptop.next()]
    assert all(jobs)
    laptop.register()  # a new incarnation; it found the process of `kept` and re-attached it
    laptop.running = [kept["id"]]
    beat = laptop.beat()
    assert beat["cancel"] == []
    assert get(orch, kept["id"])["state"] == "dispatched"
    got = get(orch, lost["id"])
    assert got["state"] == "queued" and got["reason"].startswith("host_restarted")
    # the old incarnation is superseded
    r = orch.post(f"{ORCH}/hosts/heartbeat", headers=laptop.headers, json={
        "machine": "laptop", "host_incarnation": laptop.incarnation - 1, "free_slots": 0, "running": []})
    assert r.status_code == 409 and r.json()["error"]["code"] == "stale_incarnation"
    # the adopted one reports under its attempt as before
    laptop.report(jobs[0], "done")  # type: ignore[arg-type]
    assert get(orch, kept["id"])["state"] == "done"


def test_a_lost_dispatch_answer_is_requeued(orch: Api, clock: ManualClock, laptop: Host,
                                            user: dict[str, str]) -> None:
    a = assign(orch, user, issue=1)
    job = laptop.next()
    assert job is not None
    laptop.running = []  # the answer never reached the host
    clock.advance(5)
    assert laptop.beat()["cancel"] == []
    assert get(orch, a["id"])["state"] == "dispatched"  # within the window: maybe still starting
    clock.advance(11)
    laptop.beat()
    got = get(orch, a["id"])
    assert got["state"] == "queued" and got["reason"].startswith("dispatch_lost")


def test_auto_reassign_moves_failed_work_to_another_machine(orch: Api, laptop: Host, server: Host,
                                                            user: dict[str, str]) -> None:
    apply_config(orch, config(concurrency={"auto_reassign": True, "backoff_base": 0}))
    a = assign(orch, user, issue=1, machine="laptop")
    job = laptop.next()
    assert job is not None
    laptop.report(job, "failed", reason="exit 1")
    got = get(orch, a["id"])
    assert (got["state"], got["any"], got["avoid_machine"]) == ("queued", True, "laptop")
    assert laptop.next() is None
    job = server.next()
    assert job is not None and job["attempt"] == 2


def test_the_background_pass_is_the_same_pass(orch: Api, clock: ManualClock, laptop: Host,
                                              user: dict[str, str]) -> None:
    a = assign(orch, user, issue=1)
    assert laptop.next() is not None
    clock.advance(20)
    done = orch.hub.store.write_sync(lambda tx: reconcile.run(tx, clock.now()))
    assert done["requeued"] == [a["id"]]


def test_a_restarted_hub_gives_hosts_a_stale_window_first(store: Store, clock: ManualClock) -> None:
    from fastapi.testclient import TestClient

    from coordhub.api.app import create_app
    from coordhub.core import tokens
    from coordhub.core.hub import Hub
    from coordhub.server import SYSTEM

    hub = Hub(store, clock)
    admin = hub.mutate_sync(SYSTEM, lambda tx, now: tokens.ensure_admin(tx, None, now)).body
    with TestClient(create_app(hub, sweep_seconds=0)) as client:
        api = Api(client, hub, admin)
        apply_config(api)
        laptop = Host(api, "laptop", api.token("laptop/agent"))
        laptop.register()
        a = assign(api, api.token("desk/claude-main"), issue=1)
        assert laptop.next() is not None
    clock.advance(600)  # the hub was down for ten minutes: no heartbeat could arrive
    with TestClient(create_app(hub, sweep_seconds=0)) as client:
        api = Api(client, hub, admin)
        assert reconcile_now(api)["requeued"] == []  # the host gets a window to reach the restarted hub
        laptop.api = api
        clock.advance(10)
        laptop.beat()
        clock.advance(10)
        assert reconcile_now(api)["requeued"] == []  # it heartbeats: nothing is lost
        clock.advance(6)
        assert reconcile_now(api)["requeued"] == [a["id"]]  # silent for a window after the restart: lost
