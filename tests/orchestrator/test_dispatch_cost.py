"""A dispatch's work does not grow with the queued assignments it cannot run now: in their backoff, their issue
lease held by another session, or of a repo the host does not serve."""

from __future__ import annotations

import sqlite3

import pytest

from coordhub.clock import ManualClock
from coordhub.core import assignments, coordinator, dispatch, leases
from coordhub.core.identity import Actor
from coordhub.server import SYSTEM
from coordhub.store.tables.orchestrator import issue_lease_name, issue_lease_number
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


def _held(orch: Api, first_issue: int, count: int, *, ttl_hours: float = 0) -> list[str]:
    """Queue ``count`` assignments of issues from ``first_issue``, each issue's lease held by a person (taken
    first, then the assignment queued, or the other way round, alternately); their ids."""
    def run(tx: Tx, now: float) -> list[str]:
        person, out = Actor("desk/claude-main"), []
        for n in range(first_issue, first_issue + count):
            lease = {"project_key": "api", "resource": issue_lease_name("api", n), "description": None,
                     "ttl_hours": ttl_hours, "now": now}
            if n % 2:
                leases.claim(tx, person, **lease)
            row = assignments.create(tx, Actor("flood/claude-main"), now, machine=None, repo="api", issue=n)
            if not n % 2:
                leases.claim(tx, person, **lease)
            out.append(str(row["id"]))
        return out
    return list(orch.hub.mutate_sync(SYSTEM, run).body)


def _queued(orch: Api, first_issue: int, count: int, repo: str = "api") -> list[str]:
    """Queue ``count`` assignments of ``repo``'s issues from ``first_issue``; their ids."""
    def run(tx: Tx, now: float) -> list[str]:
        return [str(assignments.create(tx, Actor("flood/claude-main"), now, machine=None, repo=repo, issue=n)["id"])
                for n in range(first_issue, first_issue + count)]
    return list(orch.hub.mutate_sync(SYSTEM, run).body)


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


@pytest.mark.parametrize("backend", ["sqlite"])  # it counts SQLite's virtual-machine steps: SQLite only, no skip
def test_assignments_whose_issue_lease_is_held_cost_a_dispatch_nothing(
        orch: Api, laptop: Host, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 10,000 queued assignments whose issue leases a person held one dispatch read all 10,000, each probed in
    the lease index, before the one it could run (380,627 SQLite steps against 627 with 10). Migration 0032 keeps
    them out of the index the dispatch walks (``held_until``)."""
    monkeypatch.setattr(assignments, "MAX_LIVE_PER_SESSION", 20_000, raising=False)
    monkeypatch.setattr(leases, "MAX_LIVE_PER_SESSION", 20_000, raising=False)
    _held(orch, 1000, 10)
    few, few_steps = _plan_steps(orch)
    _held(orch, 10_000, 10_000)
    many, many_steps = _plan_steps(orch)
    assert few.row is None and many.row is None and few.wake_at is None and many.wake_at is None
    [free] = _queued(orch, 30_000, 1)
    found, found_steps = _plan_steps(orch)
    assert found.row is not None and found.row["id"] == free
    print(f"held by an issue lease: {few_steps} steps with 10, {many_steps} with 10,010, {found_steps} to find "
          "the one behind them")
    assert many_steps <= few_steps + 50 and found_steps <= few_steps + 400, (few_steps, many_steps, found_steps)


@pytest.mark.parametrize("backend", ["sqlite"])  # it counts SQLite's virtual-machine steps: SQLite only, no skip
def test_assignments_of_repos_the_host_does_not_serve_cost_a_dispatch_nothing(
        orch: Api, laptop: Host, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 10,000 queued assignments of a repo laptop does not serve one dispatch of laptop's read all 10,000
    (60,304 SQLite steps against 304 with 10): the queue was walked in its order and each row's repo tested.
    Migration 0032 walks an index per repo the host serves."""
    monkeypatch.setattr(assignments, "MAX_LIVE_PER_SESSION", 20_000, raising=False)
    laptop.register(repos={"lib": "/src/lib"})
    _queued(orch, 1000, 10)
    few, few_steps = _plan_steps(orch)
    _queued(orch, 10_000, 10_000)
    many, many_steps = _plan_steps(orch)
    assert few.row is None and many.row is None
    [mine] = _queued(orch, 30_000, 1, repo="lib")
    found, found_steps = _plan_steps(orch)
    assert found.row is not None and found.row["id"] == mine
    print(f"of a repo not served: {few_steps} steps with 10, {many_steps} with 10,010, {found_steps} to find "
          "the one behind them")
    assert many_steps <= few_steps + 50 and found_steps <= few_steps + 400, (few_steps, many_steps, found_steps)


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


def test_an_issue_lease_holds_its_assignment_back_until_it_ends_whenever_it_was_taken(
        orch: Api, laptop: Host, server: Host, clock: ManualClock) -> None:
    """The dispatch's walks pass by a queued assignment whose issue lease is held (``held_until``), so that mark
    follows every grant, renewal and end of the lease, and a lease past its end never recorded as expired holds
    nothing back; a lease of the assignment's own worker holds it back from other machines only."""
    person = Actor("desk/claude-main")
    apply_config(orch, config(concurrency={**BASE_CONFIG["concurrency"], "max_workers": 9}))
    for host in (laptop, server):
        host.slots = 9
        host.register()

    def claim(issue: int, ttl_hours: float = 0, holder: Actor = person) -> str:
        def run(tx: Tx, now: float) -> str:
            return str(leases.claim(tx, holder, project_key="api", resource=issue_lease_name("api", issue),
                                    description=None, ttl_hours=ttl_hours, now=now)["id"])
        return str(orch.hub.mutate_sync(SYSTEM, run).body)

    def end(lease_id: str, holder: Actor = person) -> None:
        orch.hub.mutate_sync(SYSTEM, lambda tx, now: leases.release(tx, holder, lease_id, now))

    def renew(lease_id: str, ttl_hours: float) -> None:
        orch.hub.mutate_sync(SYSTEM, lambda tx, now: leases.renew(tx, person, lease_id, ttl_hours, now))

    def nxt(host: Host) -> str | None:
        job = host.next()
        return None if job is None else str(job["id"])

    before = claim(1)  # taken before the assignment is queued
    [one, two, three] = _queued(orch, 1, 3)
    after = claim(2, ttl_hours=1)  # taken after
    timed = claim(3, ttl_hours=1)
    renew(timed, 3)
    assert nxt(laptop) is None
    end(after)
    assert nxt(laptop) == two
    clock.advance(2 * 3600)  # lease 3 past its first end, not its renewed one; lease 1 never ends
    assert nxt(laptop) is None
    clock.advance(3600 + 1)  # lease 3 past its end, still marked active
    assert nxt(server) == three
    end(before)
    [four] = _queued(orch, 4, 1)
    own = claim(4, holder=Actor(assignments.worker_session("laptop", four)))
    assert nxt(server) == one and nxt(server) is None
    assert nxt(laptop) == four
    end(own, holder=Actor(assignments.worker_session("laptop", four)))


@pytest.mark.parametrize("backend", ["sqlite"])  # SQLite's limit of 500 terms in a compound SELECT
def test_a_host_serving_many_repos_is_dispatched_to(orch: Api, laptop: Host, backend: str) -> None:
    """A host serving 200 repos (the most it may register) gets the assignment queued in its last one.
    first_runnable was one UNION ALL of three walks per repo the host serves (next_not_before two), past SQLite's
    500 terms from 167 repos: every ``next`` of such a host failed (``too many terms in compound SELECT``) and it
    never got work."""
    names = [f"r{i:03d}" for i in range(200)]
    repos = [{"name": n, "github": f"acme/{n}"} for n in names]
    machines = [{"name": "laptop", "capabilities": ["python"], "repos": names}]
    apply_config(orch, config(repos=repos, machines=machines))
    laptop.register(repos={n: f"/src/{n}" for n in names})
    assert laptop.next() is None  # nothing queued: the wake-time walk, of every repo, answers too
    [last] = _queued(orch, 1, 1, repo=names[-1])
    job = laptop.next()
    assert job is not None and job["id"] == last


@pytest.mark.parametrize("repo", ["api", "org/web", "a#b"])
def test_issue_lease_number_reads_back_the_name_dispatch_takes(repo: str) -> None:
    """The marker's parse (store) and the dispatch's lease (core) share one spelling: what one writes the other
    reads, and nothing else is read as an issue lease."""
    assert issue_lease_number(repo, issue_lease_name(repo, 42)) == 42
    assert issue_lease_number(repo, issue_lease_name(repo, 0)) == 0
    for other in (f"issue:{repo}#042", f"issue:{repo}#-1", f"issue:{repo}#+1", f"issue:{repo}#", f"issue:{repo}#٣",
                  f"issue:{repo}x#1", f"lease:{repo}#1"):
        assert issue_lease_number(repo, other) is None, other
    assert issue_lease_number("other", issue_lease_name(repo, 1)) is None
