"""Stage-run dispatch, both backends: no number of queued runs a host may not take now holds back one it may, and
the store's rule is the one ``coordhub.core.stageruns`` states (repo, capabilities, halts, ``max_workers`` for
reviews, "another machine when possible"), oldest first."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from coordhub.clock import ManualClock
from coordhub.core import assignments, coordinator, stageruns
from coordhub.core.identity import Actor
from coordhub.server import SYSTEM
from coordhub.store.base import Executor
from coordhub.store.tables.pipeline import StageRuns
from coordhub.store.tx import Tx
from tests.conftest import Api
from tests.orchestrator.conftest import BASE_CONFIG, ORCH, Host, apply_config, config
from tests.orchestrator.test_pipeline import next_run


def _flood(orch: Api, first_issue: int, count: int, *, stage: str = "test", repo: str = "api",
           requires: list[str] | None = None, ran_on: str | None = None) -> list[str]:
    """Queue ``count`` runs of ``stage`` in one transaction, each of a new assignment of ``repo`` (issues from
    ``first_issue``): needing ``requires``, or (a review) of work that ran on ``ran_on``, which the review avoids.
    Returns the runs' ids, oldest first."""
    def run(tx: Tx, now: float) -> list[str]:
        config = coordinator.require(tx)
        out = []
        for n in range(first_issue, first_issue + count):
            made = assignments.create(tx, Actor("flood/claude-main"), now, machine=None, repo=repo, issue=n)
            row = {**(tx.assignments.get(made["id"]) or {}), "ran_on": ran_on, "branch": f"work/{n}"}
            queued = stageruns.queue(tx, config, row, stage, now, by=None)
            if requires is not None:
                tx.stage_runs.set(queued["id"], {"requires": json.dumps(requires)})
            out.append(str(queued["id"]))
        return out
    return list(orch.hub.mutate_sync(SYSTEM, run).body)


def _history(orch: Api, count: int) -> None:
    """Leave ``count`` ended runs (passed tests of one assignment, issue 99) at the head of ``seq``."""
    def run(tx: Tx, now: float) -> None:
        config = coordinator.require(tx)
        made = assignments.create(tx, Actor("flood/claude-main"), now, machine=None, repo="api", issue=99)
        row = {**(tx.assignments.get(made["id"]) or {}), "branch": "work/99"}
        for _ in range(count):
            ended = stageruns.queue(tx, config, row, "test", now, by=None)
            tx.stage_runs.set(ended["id"], {"state": "passed", "verdict": "passed", "ended_at": now})
    orch.hub.mutate_sync(SYSTEM, run)


@pytest.fixture
def many(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let one session queue the thousands of assignments these tests put runs on."""
    monkeypatch.setattr(assignments, "MAX_LIVE_PER_SESSION", 10_000, raising=False)


@pytest.mark.parametrize("blocked", [3, 201])
def test_no_number_of_runs_a_host_may_not_take_starves_one_it_may(
        orch: Api, laptop: Host, server: Host, many: None, monkeypatch: pytest.MonkeyPatch, blocked: int) -> None:
    """200 queued runs laptop could not take (a test needing docker, which it lacks; a review of its own work
    while server is online) kept every later run from it for good: each call read the same oldest 200 runs
    and checked them in Python."""
    # the old per-call bound (2 rows), lowered so the small case shows that starvation too
    monkeypatch.setattr(stageruns, "SCAN_LIMIT", 2, raising=False)
    server.register(capabilities=["python", "docker"])
    docker = _flood(orch, 1000, blocked, requires=["docker"])
    reviews = _flood(orch, 5000, blocked, stage="review", ran_on="laptop")
    (mine,) = _flood(orch, 1, 1)
    run = next_run(laptop)  # the first call: no scan to give up on
    assert run is not None and run["id"] == mine
    assert next_run(laptop) is None
    run = next_run(server)  # the blocked ones were server's all along, oldest first
    assert run is not None and run["id"] == docker[0]
    run = next_run(server)
    assert run is not None and run["id"] == docker[1]
    # the reviews wait for server, whose two slots are now full; laptop still may not take them
    assert orch.get(f"{ORCH}/stage-runs/{reviews[0]}", headers=orch.admin).json()["state"] == "queued"
    assert next_run(laptop) is None


def test_the_store_s_rule_is_the_documented_one_oldest_first(orch: Api, user: dict[str, str], many: None,
                                                             clock: ManualClock) -> None:
    """Each rule of the module docstring of ``coordhub.core.stageruns``, decided in the store behind 201 runs laptop
    can never take: what laptop may take is exactly the runs the rules allow, oldest first, and each rule that held
    one back lets it go when lifted."""
    cfg = config(concurrency={**BASE_CONFIG["concurrency"], "max_workers": 1})
    cfg["machines"][0]["capabilities"] = ["python", "docker"]
    cfg["machines"][1]["capabilities"] = ["python", "docker", "gpu"]
    apply_config(orch, cfg)
    laptop = Host(orch, "laptop", orch.token("laptop/agent"), slots=20)
    laptop.register(capabilities=["python", "docker"])
    server = Host(orch, "server", orch.token("server/agent"), slots=20)
    server.register(capabilities=["python", "docker", "gpu"])
    ids: dict[str, str] = {}
    gpu = _flood(orch, 1000, 201, requires=["gpu"])  # laptop lacks gpu: more than a call once read, in front
    ids["docker"], = _flood(orch, 2, 1, requires=["docker"])                # a subset of laptop's: may
    ids["own"], = _flood(orch, 3, 1, stage="review", ran_on="laptop")       # server is online: held back
    ids["other"], = _flood(orch, 4, 1, stage="review", ran_on="server")     # avoids server, not laptop: may
    ids["lib"], = _flood(orch, 5, 1, repo="lib")                            # lib is halted below
    ids["plain"], = _flood(orch, 6, 1)
    ids["docker_gpu"], = _flood(orch, 7, 1, requires=["docker", "gpu"])      # not a subset
    assert orch.post("/api/coord/halt", headers=orch.admin, json={"reason": "lib freeze", "scope": "project:lib"}
                     ).status_code == 201
    # a worker holds the one max_workers allows: no review starts anywhere
    assert _work(orch, user, laptop) is not None

    def taken() -> list[str]:
        out = []
        while (run := next_run(laptop)) is not None:
            out.append(run["id"])
        return out

    assert taken() == [ids["docker"], ids["plain"]]  # no review while the fleet's Claude sessions are full
    laptop.report(laptop.jobs[laptop.running[0]], "done", pushed=True)
    assert taken() == [ids["other"]]
    assert orch.post("/api/coord/resume", headers=orch.admin, json={"scope": "project:lib"}).status_code == 200
    assert taken() == [ids["lib"]]
    cfg["concurrency"]["max_workers"] = 5  # the review laptop took holds the one there was
    apply_config(orch, cfg)
    assert taken() == []
    clock.advance(3600)  # server goes quiet: a review of laptop's own work runs there rather than not at all
    laptop.beat()
    assert taken() == [ids["own"]]
    assert orch.get(f"{ORCH}/stage-runs/{gpu[0]}", headers=orch.admin).json()["state"] == "queued"


def _work(orch: Api, user: dict[str, str], host: Host) -> dict[str, Any] | None:
    r = orch.post(f"{ORCH}/assignments", headers=user, json={"repo": "api", "issue": 900, "any": True})
    assert r.status_code == 201, r.text
    return host.next()


class _Recorder:
    """An executor that keeps the statements it is given and answers nothing."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, tuple[Any, ...]]] = []

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self.queries.append((sql, params))


def test_a_call_walks_the_live_run_index_oldest_first(orch: Api, laptop: Host, server: Host, many: None,
                                                      backend: str, request: pytest.FixtureRequest) -> None:
    """The work of a call is the live runs walked up to the one taken, in ``seq`` order on ``stage_runs_live``: never
    a sort of every queued run (SQLite took ``state = 'queued'`` for a few rows and did just that), nor a walk of
    the ended runs before them (3,000 here). PostgreSQL is asked with its statistics up to date, as autovacuum
    keeps them (there only a partial index of the live runs is asserted: which one, and a sort of what it finds,
    are the planner's choice by cost);
    SQLite's store never gathers any."""
    server.register(capabilities=["python", "docker"])
    _history(orch, 3000)
    _flood(orch, 1000, 300, requires=["docker"])
    _flood(orch, 1, 1)
    recorder = _Recorder()
    StageRuns(cast(Executor, recorder)).first_runnable("laptop", ["api", "lib"], ["python"], True,
                                                       [(["api", "lib"], ["docker", "python"])])
    ((sql, params),) = recorder.queries
    if backend == "sqlite":
        plan = [str(r["detail"]) for r in orch.hub.query_sync(
            lambda tx, now: tx.ex.all("EXPLAIN QUERY PLAN " + sql, params))]
        assert plan[0] == "SCAN r USING INDEX stage_runs_live" and not any("TEMP B-TREE" in d for d in plan), plan
    else:
        import psycopg

        with psycopg.connect(request.getfixturevalue("pg_url"), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE stage_runs, assignments")  # as autovacuum leaves them
        plan = [str(next(iter(r.values()))) for r in orch.hub.query_sync(
            lambda tx, now: tx.ex.all("EXPLAIN " + sql, params))]
        # the live runs only (through either partial index of them), never the ended ones; which of the two, and
        # whether it then sorts the few it estimates, is the planner's call by cost, seen every way on the same data
        assert any(f"Index Scan using {index} on stage_runs r" in d for d in plan
                   for index in ("stage_runs_live", "stage_runs_one_live")), "\n".join(plan)
        assert not any("Seq Scan on stage_runs" in d for d in plan), plan
