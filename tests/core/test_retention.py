"""Retention (issue 14 point 4): the pruner removes what is past retention and nothing a reader still needs.

Every test runs on SQLite and PostgreSQL, through the HTTP app on a manual
clock; a pass of the pruner is run directly (``coord serve`` runs it every
``prune_seconds``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from coordhub.core.retention import HOUR, Policy, Pruner, pruned_through
from tests.conftest import Api

A, B, C = "A/claude-main", "B/claude-main", "C/claude-main"
KEEP = Policy(events_hours=1.0, messages_hours=1.0, leases_hours=1.0, idempotency_hours=1.0,
              assignments_hours=1.0, cursor_hold_hours=2.0, batch=3)


def prune(api: Api, policy: Policy = KEEP) -> dict[str, int]:
    """One pass of a pruner over the api's hub, on its clock."""
    pruner = Pruner(policy, api.hub.stream_cursors)
    return asyncio.run(pruner.run_pass(api.hub.store, api.hub.clock.now))


def later(api: Api, hours: float) -> None:
    api.hub.clock.advance(hours * HOUR)  # type: ignore[attr-defined]


def count(api: Api, sql: str, *params: Any) -> int:
    row = api.hub.store.read_sync(lambda tx: tx.ex.one(sql, params))
    return int(next(iter(row.values())))


def send(api: Api, who: dict[str, str], to: str | None, **extra: Any) -> str:
    r = api.post("/api/coord/messages", json={"to_session": to, "subject": "s", "body": "b", **extra}, headers=who)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.fixture
def fleet(api: Api) -> dict[str, dict[str, str]]:
    return {s: api.token(s) for s in (A, B, C)}


def test_old_events_go_as_a_prefix_and_readers_are_told(api: Api, fleet: dict[str, dict[str, str]]) -> None:
    send(api, fleet[A], B)
    old_last = count(api, "SELECT MAX(id) FROM events")
    later(api, 1.5)
    send(api, fleet[A], B)
    done = prune(api)
    assert done["events"] == old_last
    assert count(api, "SELECT MIN(id) FROM events") == old_last + 1
    assert api.hub.store.read_sync(pruned_through) == old_last
    r = api.get("/api/coord/audit", params={"after": 0}, headers=api.admin)
    assert r.headers["Coord-Gap"] == str(old_last) and r.json()[0]["id"] == old_last + 1
    assert "Coord-Gap" not in api.get("/api/coord/audit", params={"after": old_last}, headers=api.admin).headers
    gap = api.get("/api/coord/notifications", headers=fleet[B]).json()["gap"]
    assert gap == {"after": 0, "pruned_through": old_last}
    assert prune(api)["events"] == 0  # nothing else is old enough


def test_a_live_notification_cursor_holds_its_events(api: Api, fleet: dict[str, dict[str, str]]) -> None:
    send(api, fleet[A], B)
    first = api.get("/api/coord/notifications", headers=fleet[B]).json()["events"][0]["id"]
    assert api.post("/api/coord/notifications/ack", json={"up_to": first}, headers=fleet[B]).status_code == 200
    send(api, fleet[A], B)  # after B's cursor: B still needs it
    last = count(api, "SELECT MAX(id) FROM events")
    later(api, 1.5)
    send(api, fleet[C], A, subject="B stays live")  # B is seen within cursor_hold_hours through its ack
    prune(api)
    assert count(api, "SELECT MIN(id) FROM events") == first + 1
    body = api.get("/api/coord/notifications", headers=fleet[B]).json()
    assert body["gap"] is None and body["events"][0]["id"] <= last
    later(api, 3)  # B is no longer live: its cursor holds nothing
    send(api, fleet[C], A)
    prune(api)
    assert count(api, "SELECT MIN(id) FROM events") > last
    assert api.get("/api/coord/notifications", headers=fleet[B]).json()["gap"]["after"] == first


def test_a_cursor_holds_events_at_most_cursor_max_hold_hours_past_retention(
        api: Api, fleet: dict[str, dict[str, str]]) -> None:
    """Review: one token acked once and then only heartbeated; its cursor kept the log from there on for as long
    as it stayed live, so the disk grew without bound. Now what it holds is pruned once older than
    ``events_hours + cursor_max_hold_hours``, and it is told of the gap."""
    policy = KEEP._replace(cursor_max_hold_hours=3.0)  # events older than 1 + 3 hours go, held or not
    send(api, fleet[A], B)
    first = api.get("/api/coord/notifications", headers=fleet[B]).json()["events"][0]["id"]
    assert api.post("/api/coord/notifications/ack", json={"up_to": first}, headers=fleet[B]).status_code == 200
    send(api, fleet[A], B)  # after B's cursor: B needs it, and never reads it
    old_last = count(api, "SELECT MAX(id) FROM events")
    for _ in range(3):  # 4.5 hours in all, B seen every 1.5 (cursor_hold_hours is 2): B stays live throughout
        later(api, 1.5)
        assert api.post("/api/coord/presence/heartbeat", json={}, headers=fleet[B]).status_code == 200
        send(api, fleet[A], C)
        prune(api, policy)
    assert count(api, "SELECT MIN(id) FROM events") == old_last + 1  # younger than 4 hours: still held for B
    assert api.get("/api/coord/notifications", headers=fleet[B]).json()["gap"] == {
        "after": first, "pruned_through": old_last}
    assert count(api, "SELECT COUNT(*) FROM events WHERE id > ?", old_last) > 0


def test_an_open_stream_holds_the_events_after_its_position(api: Api, fleet: dict[str, dict[str, str]]) -> None:
    send(api, fleet[A], B)
    held = count(api, "SELECT MAX(id) FROM events")
    handle = api.hub.stream_cursors.open(held)
    send(api, fleet[A], B)
    later(api, 1.5)
    prune(api)
    assert count(api, "SELECT MIN(id) FROM events") == held + 1
    api.hub.stream_cursors.close(handle)
    prune(api)
    assert count(api, "SELECT COUNT(*) FROM events") == 0


def test_a_stream_that_ended_holds_its_resume_while_its_session_is_live(
        api: Api, fleet: dict[str, dict[str, str]]) -> None:
    send(api, fleet[A], B)
    position = count(api, "SELECT MAX(id) FROM events")
    api.hub.store.write_sync(lambda tx: tx.retention.set_stream_cursor(B, position, api.hub.clock.now()))
    send(api, fleet[A], B)
    later(api, 1.5)
    prune(api)
    assert count(api, "SELECT MIN(id) FROM events") == position + 1
    later(api, 3)
    prune(api)
    assert count(api, "SELECT COUNT(*) FROM events") == 0


def test_settled_direct_messages_go_unread_and_unacked_stay(api: Api, fleet: dict[str, dict[str, str]]) -> None:
    unread = send(api, fleet[A], B)
    read = send(api, fleet[A], B)
    unacked = send(api, fleet[A], B, requires_ack=True)
    acked = send(api, fleet[A], B, requires_ack=True)
    assert api.put(f"/api/coord/messages/{read}/read", headers=fleet[B]).status_code == 200
    assert api.put(f"/api/coord/messages/{unacked}/read", headers=fleet[B]).status_code == 200
    assert api.post(f"/api/coord/messages/{acked}/ack", headers=fleet[B]).status_code == 200
    later(api, 0.5)
    assert prune(api)["messages"] == 0  # settled, but not old enough
    later(api, 1)
    assert prune(api)["messages"] == 2
    ids = {m["id"] for m in api.get("/api/coord/messages", params={"unread_only": "false"}, headers=fleet[B]).json()}
    assert ids == {unread, unacked}
    assert count(api, "SELECT COUNT(*) FROM receipts") == 2
    later(api, 1000)
    assert prune(api)["messages"] == 0  # however old: unread and unacked messages stay


def test_a_broadcast_goes_once_every_live_session_read_it(api: Api, fleet: dict[str, dict[str, str]]) -> None:
    news = send(api, fleet[A], None)
    assert api.put(f"/api/coord/messages/{news}/read", headers=fleet[B]).status_code == 200
    later(api, 2.5)  # past the cursor hold of the sessions seen at the start (the admin that made tokens)
    assert api.put(f"/api/coord/messages/{news}/read", headers=fleet[B]).status_code == 200  # B live, has read
    send(api, fleet[C], A, subject="C is live")
    assert prune(api)["messages"] == 0  # C has not read it
    assert api.put(f"/api/coord/messages/{news}/read", headers=fleet[C]).status_code == 200
    assert prune(api)["messages"] == 1
    assert count(api, "SELECT COUNT(*) FROM messages WHERE to_session IS NULL") == 0
    assert count(api, "SELECT COUNT(*) FROM receipts r JOIN messages m ON m.seq = r.message_seq "
                      "WHERE m.to_session IS NULL") == 0
    assert count(api, "SELECT COUNT(*) FROM receipts") == 1  # C's unread message to A


def test_a_session_gone_quiet_no_longer_holds_broadcasts(api: Api, fleet: dict[str, dict[str, str]]) -> None:
    send(api, fleet[A], None)
    later(api, 3)  # past retention and past the cursor hold: B and C are not live
    assert prune(api)["messages"] == 1


def test_ended_leases_go_live_ones_stay(api: Api, fleet: dict[str, dict[str, str]]) -> None:
    def claim(resource: str) -> str:
        r = api.post("/api/coord/locks", json={"project_key": "p", "resource": resource, "ttl_hours": 0},
                     headers=fleet[A])
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    live, ended = claim("a.py"), claim("b.py")
    assert api.delete(f"/api/coord/locks/{ended}", headers=fleet[A]).status_code == 200
    later(api, 1.5)
    assert prune(api)["leases"] == 1
    rows = api.hub.store.read_sync(lambda tx: tx.ex.all("SELECT id, state FROM leases"))
    assert rows == [{"id": live, "state": "active"}]


def test_idempotency_records_go_after_their_retention(api: Api, fleet: dict[str, dict[str, str]]) -> None:
    for n in range(7):  # more than a batch of 3
        headers = {**fleet[A], "Idempotency-Key": f"k{n}"}
        assert api.post("/api/coord/messages", json={"to_session": B, "subject": "s", "body": "b"},
                        headers=headers).status_code == 201
    later(api, 0.9)
    assert prune(api)["idempotency"] == 0
    later(api, 0.2)
    assert prune(api)["idempotency"] == 7
    assert count(api, "SELECT COUNT(*) FROM idempotency") == 0


def _assignment(api: Api, ident: str, seq: int, state: str, ended: float | None, stage: str = "work",
                run: str | None = None) -> None:
    now = api.hub.clock.now()

    def unit(tx: Any) -> None:
        tx.ex.execute(
            "INSERT INTO assignments (id, seq, state, attempt, repo, issue, labels, requires, model, model_source, "
            "briefing, files_likely, branch, created_by, created_at, queued_at, ended_at, updated_at, stage) "
            "VALUES (?, ?, ?, 1, 'r', ?, '[]', '[]', 'sonnet', 'default', 'b', '[]', 'issue', 'admin', ?, ?, ?, ?, ?)",
            (ident, seq, state, seq, now, now, ended, now, stage))
        if run is not None:
            tx.ex.execute("INSERT INTO stage_runs (id, seq, assignment_id, stage, round, state, branch, base, "
                          "created_at) VALUES (?, ?, ?, 'test', 0, ?, 'issue', 'main', ?)",
                          (f"r{ident}", seq, ident, run, now))
        tx.ex.execute("INSERT INTO assignment_attempts (assignment_id, attempt, machine, host_incarnation, model, "
                      "state, dispatched_at) VALUES (?, 1, 'm', 1, 'sonnet', ?, ?)", (ident, state, now))
        tx.ex.execute("INSERT INTO assignment_logs (assignment_id, start, text, created_at) VALUES (?, 0, 'x', ?)",
                      (ident, now))

    api.hub.store.write_sync(unit)


def test_finished_assignments_go_with_attempts_logs_and_stage_runs(api: Api) -> None:
    now = api.hub.clock.now()
    for n, state in enumerate(("done", "failed", "cancelled", "running", "stuck", "queued", "needs_input")):
        _assignment(api, f"a{n}", n + 1, state, now if state in ("done", "failed", "cancelled") else None)
    _assignment(api, "merged", 8, "done", now, stage="merged", run="passed")
    _assignment(api, "in-review", 9, "done", now, stage="review", run="queued")  # a gate waits: not finished
    _assignment(api, "rerun", 10, "done", now, stage="passed", run="running")  # a live stage run
    later(api, 1.5)
    assert prune(api)["assignments"] == 4
    left = {r["id"] for r in api.hub.store.read_sync(lambda tx: tx.ex.all("SELECT id FROM assignments"))}
    assert left == {"a3", "a4", "a5", "a6", "in-review", "rerun"}
    for table in ("assignment_attempts", "assignment_logs", "stage_runs"):
        assert count(api, f"SELECT COUNT(*) FROM {table} WHERE assignment_id NOT IN (SELECT id FROM assignments)") == 0
    assert count(api, "SELECT COUNT(*) FROM assignment_logs") == 6
    assert count(api, "SELECT COUNT(*) FROM stage_runs") == 2


def test_zero_keeps_a_kind_forever(api: Api, fleet: dict[str, dict[str, str]]) -> None:
    read = send(api, fleet[A], B)
    assert api.put(f"/api/coord/messages/{read}/read", headers=fleet[B]).status_code == 200
    later(api, 10_000)
    forever = Policy(events_hours=0, messages_hours=0, leases_hours=0, idempotency_hours=0, assignments_hours=0)
    assert prune(api, forever) == {}
    assert count(api, "SELECT COUNT(*) FROM messages") == 1 and api.hub.store.read_sync(pruned_through) == 0


def test_the_pruner_times_its_batches(api: Api, fleet: dict[str, dict[str, str]]) -> None:
    for _ in range(10):
        send(api, fleet[A], B)
    later(api, 1.5)
    pruner = Pruner(KEEP, api.hub.stream_cursors)
    asyncio.run(pruner.run_pass(api.hub.store, api.hub.clock.now))
    stats = pruner.stats.summary()
    assert stats["removed"]["events"] >= 10 and stats["batches"] >= 4  # batches of 3
    assert stats["max_batch_ms"] > 0 and stats["last_pass_p50_ms"] is not None


def test_the_overview_and_metrics_show_the_pruner(api: Api, fleet: dict[str, dict[str, str]]) -> None:
    send(api, fleet[A], B)
    later(api, 1.5)
    pruner = api.client.app.state.pruner  # the app's own (coord serve runs it every prune_seconds)
    pruner.policy = KEEP
    asyncio.run(pruner.run_pass(api.hub.store, api.hub.clock.now))
    assert api.get("/api/coord/retention", headers=fleet[A]).status_code == 403  # admins only
    body = api.get("/api/coord/retention", headers=api.admin).json()
    assert body["policy"]["events_hours"] == 1.0 and body["events_pruned_through"] > 0
    assert body["pruner"]["removed"]["events"] == body["events_pruned_through"]
    text = api.get("/metrics", headers=api.admin).text
    assert f'coord_pruned_rows_total{{kind="events"}} {float(body["events_pruned_through"])}' in text
    assert 'coord_prune_worst_batch_ms{kind="events"}' in text


def test_a_log_pruned_empty_still_knows_its_last_id(api: Api, fleet: dict[str, dict[str, str]]) -> None:
    send(api, fleet[A], B)
    last = count(api, "SELECT MAX(id) FROM events")
    later(api, 1.5)
    prune(api, KEEP._replace(cursor_hold_hours=0.1))
    assert count(api, "SELECT COUNT(*) FROM events") == 0
    assert api.hub.store.read_sync(lambda tx: tx.events.last_id()) == last  # a restarted hub's bus starts here
    send(api, fleet[A], B)
    assert count(api, "SELECT MIN(id) FROM events") > last
