"""A dispatch's work does not grow with the queued assignments it cannot run now because of their backoff."""

from __future__ import annotations

import sqlite3

import pytest

from coordhub.clock import ManualClock
from coordhub.core import assignments, coordinator, dispatch
from coordhub.core.identity import Actor
from coordhub.server import SYSTEM
from coordhub.store.tx import Tx
from tests.conftest import Api
from tests.orchestrator.conftest import BASE_CONFIG, Host, apply_config, config


def _backed_off(orch: Api, first_issue: int, count: int) -> None:
    """Queue ``count`` assignments of issues from ``first_issue``, each waiting out a backoff an hour long."""
    def run(tx: Tx, now: float) -> None:
        for n in range(first_issue, first_issue + count):
            row = assignments.create(tx, Actor("flood/claude-main"), now, machine=None, repo="api", issue=n)
            tx.assignments.set(row["id"], {"not_before": now + 3600, "attempt": 1})
    orch.hub.mutate_sync(SYSTEM, run)


def _plan_steps(orch: Api) -> tuple[dispatch.Plan, int]:
    """Plan laptop's next dispatch; the plan, and the SQLite virtual-machine steps its statements took."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    def run(tx: Tx, now: float) -> dispatch.Plan:
        conn = tx.ex.conn
        assert isinstance(conn, sqlite3.Connection)
        conn.set_progress_handler(count, 1)
        try:
            return _plan(tx, now)
        finally:
            conn.set_progress_handler(None, 1)
    return orch.hub.mutate_sync(SYSTEM, run).body, steps[0]


def _plan(tx: Tx, now: float) -> dispatch.Plan:
    """laptop's plan, as its host's next dispatch would make it."""
    host = tx.hosts.get("laptop")
    assert host is not None
    return dispatch.plan(tx, coordinator.require(tx), host, now)


@pytest.mark.parametrize("backend", ["sqlite"])  # it counts SQLite's virtual-machine steps: SQLite only, no skip
def test_assignments_waiting_out_a_backoff_cost_a_dispatch_nothing(
        orch: Api, laptop: Host, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 10,000 queued assignments in their backoff one dispatch walked all 10,000 (380,549 SQLite steps
    against 549 with 10 of them): the queue was walked in its order and each row's backoff tested, and the
    list of the running ones was read by walking every assignment. Counted in SQLite's steps, not timed."""
    monkeypatch.setattr(assignments, "MAX_LIVE_PER_SESSION", 3_000, raising=False)
    _backed_off(orch, 1000, 10)
    few, few_steps = _plan_steps(orch)
    _backed_off(orch, 10_000, 2_000)
    many, many_steps = _plan_steps(orch)
    assert few.row is None and many.row is None and few.wake_at == many.wake_at is not None
    assert many_steps <= few_steps + 50, (few_steps, many_steps)


def test_the_oldest_runnable_is_dispatched_whether_its_backoff_ended_or_it_had_none(
        orch: Api, laptop: Host, clock: ManualClock) -> None:
    """The two walks of a dispatch (no backoff; backoff ended) give the oldest of all, and none still waiting."""
    def queue(tx: Tx, now: float) -> list[str]:
        out = []
        for n, wait in ((1, None), (2, 5.0), (3, 60.0), (4, None)):
            row = assignments.create(tx, Actor("flood/claude-main"), now, machine=None, repo="api", issue=n)
            if wait is not None:
                tx.assignments.set(row["id"], {"not_before": now + wait})
            out.append(str(row["id"]))
        return out
    ids = orch.hub.mutate_sync(SYSTEM, queue).body
    apply_config(orch, config(concurrency={**BASE_CONFIG["concurrency"], "max_workers": 9}))
    laptop.slots = 9
    laptop.register()
    clock.advance(10)
    got = [job["id"] for job in iter(laptop.next, None)]
    assert got == [ids[0], ids[1], ids[3]]  # issue 3 waits 50 seconds more
    assert orch.hub.mutate_sync(SYSTEM, _plan).body.wake_at == pytest.approx(clock.now() + 50)
    clock.advance(50)
    job = laptop.next()
    assert job is not None and job["id"] == ids[2]
