"""The scheduler: which queued assignment a host runs next, decided and taken in one transaction.

Seed 003 parsed ``max_workers`` and never enforced it (five parallel assigns
ran five workers at ``max_workers: 3``), and its claim check raced between
check and act. Here a host asks ``next`` and the hub, inside one write
transaction (the store has one writer, so decisions are serialised):

1. refuses while a halt covers the host (fleet or ``machine:<m>``) or a
   rate-limit pause stands;
2. counts the workers running fleet-wide (``max_workers``) and on the
   machine (the host's ``slots``);
3. picks the oldest queued assignment this host may run (FIFO by the time it
   was first queued): its machine, or any capable machine (repo registered by
   the host, ``requires`` ⊆ capabilities, "another machine when possible"
   after a retry), past its backoff, its project not halted, no repo it
   ``depends_on`` (transitively) with work running or in the merge queue
   (seed 003; :mod:`coordhub.core.repodeps`), and its issue lease
   ``issue:<repo>#<n>`` free;
4. waits ``stagger_seconds`` since the previous dispatch, fleet-wide;
5. takes the issue lease for the worker session, mints the worker's token,
   moves the assignment ``queued → dispatched`` with ``attempt + 1``, and
   records the attempt.

:func:`plan` is steps 1–4 without writing, so a long-poll can ask cheaply
whether waking up is worth a write, and how long to sleep.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from coordhub.core import assignments, coordinator, hosts, leases, repodeps, tokens
from coordhub.core.assignments import State
from coordhub.core.identity import Actor
from coordhub.core.orchestrator_config import Config
from coordhub.core.scope import project_of
from coordhub.errors import LeaseConflict
from coordhub.store.base import Row
from coordhub.store.tables.orchestrator import issue_lease_name
from coordhub.store.tx import Tx


class Plan(NamedTuple):
    """What :func:`plan` found: the assignment to dispatch (or None), when to look again, and why not now."""

    row: Row | None
    wake_at: float | None
    why: str


def plan(tx: Tx, config: Config, host: Row, now: float) -> Plan:
    """Decide, without writing, whether ``host`` gets an assignment now (see the module docstring)."""
    machine = host["machine"]
    if hosts.stopping(host):  # it shuts down: what its workers hand back must wait for another host
        return Plan(None, None, "stopping")
    if hosts.halt_over_machine(tx, machine) is not None:
        return Plan(None, None, "halted")
    paused = coordinator.paused_until(tx, now)
    if paused is not None:
        return Plan(None, paused, "rate-limit pause")
    c = config.concurrency
    # reviews are Claude sessions too (max_workers); smoke tests and reviews share the host's slots
    if tx.assignments.active_count() + tx.stage_runs.active_count(stage="review") >= c.max_workers:
        return Plan(None, None, f"max_workers ({c.max_workers}) running")
    if tx.assignments.active_count(machine) + tx.stage_runs.active_count(machine) >= host["slots"]:
        return Plan(None, None, f"all {host['slots']} slots of {machine} busy")
    row, wake = _oldest_runnable(tx, config, host, now)
    if row is None:
        return Plan(None, wake, "nothing runnable")
    until = stagger_until(tx, config, now)
    if until is not None:
        return Plan(None, until, "stagger")
    return Plan(row, None, "")


def stagger_until(tx: Tx, config: Config, now: float) -> float | None:
    """When the fleet-wide stagger (step 4: ``concurrency.stagger_seconds`` after the previous dispatch, seed 003)
    lets the next dispatch happen, epoch seconds; None when it does not hold one back at ``now``."""
    last = tx.orchestrator.get()["last_dispatch_at"]
    if last is None or now >= last + config.concurrency.stagger_seconds:
        return None
    return float(last + config.concurrency.stagger_seconds)


def _oldest_runnable(tx: Tx, config: Config, host: Row, now: float) -> tuple[Row | None, float | None]:
    """The oldest queued assignment ``host`` may run now (its whole row), or None and when to look again.

    Every rule of step 3 is asked of the store in one statement
    (:meth:`~coordhub.store.tables.orchestrator.Assignments.first_runnable`),
    before any limit: pinned to this machine or to any, a repo the host
    serves whose project is not halted and none of whose upstream repos has
    work in flight, past its backoff, its ``requires`` among the host's
    capabilities, not avoiding this machine after a retry while another
    online host could run it, and its issue lease ``issue:<repo>#<n>`` not
    held by another session. So no number of assignments this host cannot
    run now stands in front of one it can. The two rules that once were
    checked here, row by row on at most 1,000 rows a call, let 1,000 queued
    assignments whose issues a person held starve every later one for good:
    each call checked the same oldest 1,000. The work is three walks per repo
    the host may take (the queued ones with no backoff, oldest first; those
    whose backoff ended; those whose issue lease is past its end) with one
    probe of the live-lease index per row passed over, in one statement,
    plus one look at the hosts table; no row of another repo, still in its
    backoff, or whose issue lease another session holds is read, and none
    into Python but the one dispatched. The wake time is the earliest end of
    a backoff of one it could run, or None (the backoff indexes walked up
    from ``now``).
    """
    machine = host["machine"]
    caps = sorted(set(json.loads(host["capabilities"])))
    repos = _open_repos(tx, config, json.loads(host["repos"]))
    row = tx.assignments.first_runnable(machine, repos, caps, now, hosts.elsewhere(tx, config, machine, now))
    if row is not None:
        return row, None
    return None, tx.assignments.next_not_before(machine, repos, caps, now)


def _open_repos(tx: Tx, config: Config, served: list[str]) -> list[str]:
    """The repos of ``served`` that may be dispatched now: their project not halted, and no repo they
    ``depends_on`` (transitively) with work running or in the merge queue (seed 003)."""
    busy = tx.assignments.active_repos() | repodeps.merging_repos(tx)
    halted = hosts.halted_projects(tx)
    out = []
    for name in sorted(set(served)):
        if project_of(name) in halted:
            continue
        repo = config.repo(name)
        if repo is not None and busy & set(repodeps.upstream(config, repo.name)):
            continue
        out.append(name)
    return out


def next_for(tx: Tx, actor: Actor, now: float, *, machine: str, incarnation: int) -> dict[str, Any] | None:
    """Dispatch the next assignment to ``machine``'s host, or None; the payload carries the worker token once.

    Counts as a heartbeat of the host's liveness. Raises as
    :func:`coordhub.core.hosts.current` does, and ``NotConfigured``.
    """
    config = coordinator.require(tx)
    host = hosts.current(tx, actor, config, machine, incarnation)
    tx.hosts.set(host["machine"], {"last_heartbeat": now})
    found = plan(tx, config, host, now)
    if found.row is None:
        return None
    try:
        return _dispatch(tx, actor, config, host, found.row, now)
    except LeaseConflict:  # taken between plan and claim cannot happen (one writer); a rule refused it: skip
        return None


def _dispatch(tx: Tx, actor: Actor, config: Config, host: Row, row: Row, now: float) -> dict[str, Any]:
    machine = host["machine"]
    session = assignments.worker_session(machine, row["id"])
    window = hosts.stale_after(config)
    lease = leases.claim(tx, Actor(session), project_key=row["repo"],
                         resource=issue_lease_name(row["repo"], row["issue"]),
                         description=f"assignment {row['id']} attempt {row['attempt'] + 1} on {machine}",
                         ttl_hours=2 * window / 3600.0, now=now)
    token = tokens.mint(tx, session, now, purpose=f"orchestrator worker of assignment {row['id']}")
    attempt = int(row["attempt"]) + 1
    resume = row["resume_session"]
    new = assignments.transition(
        tx, row, State.DISPATCHED, now, by=actor.session_id, attempt=attempt, ran_on=machine,
        host_incarnation=host["incarnation"], worker_session=session, lease_id=lease["id"], fence=lease["fence"],
        dispatched_at=now, started_at=None, ended_at=None, cost_usd=0.0, turns=None, last_tool=None, last_file=None,
        progress=None, status_line=None, result=None, pushed=0, reason=None, not_before=None,
        claude_session=resume, worktree=row["worktree"] if resume else None, freshness_notes=None)
    tx.attempts.add({"assignment_id": row["id"], "attempt": attempt, "machine": machine,
                     "host_incarnation": host["incarnation"], "model": row["model"], "state": "dispatched",
                     "dispatched_at": now})
    tx.orchestrator.set({"last_dispatch_at": now})
    repo = config.repo(row["repo"])
    w = config.workers
    return {
        "id": new["id"], "attempt": attempt, "repo": new["repo"], "issue": new["issue"], "title": new["title"],
        "labels": json.loads(new["labels"]), "branch": new["branch"], "model": new["model"],
        "model_source": new["model_source"], "briefing": _briefing(new),
        "files_likely": json.loads(new["files_likely"]), "permission_mode": w.permission_mode,
        "allowed_tools": w.allowed_tools, "disallowed_tools": sorted({*w.disallowed_tools, "AskUserQuestion"}),
        "budget_usd": new["budget_usd"], "wall_clock_seconds": new["wall_clock_seconds"],
        "first_output_seconds": w.first_output_seconds, "silence_seconds": w.silence_seconds,
        "max_turns": w.max_turns,
        "worker_session": session, "worker_token": token, "lease_id": lease["id"], "fence": lease["fence"],
        "worktree": new["worktree"],
        "resume": {"session_id": resume, "guidance": new["guidance"]} if resume else None,
        "repo_config": {"default_branch": repo.default_branch if repo else "main",
                        "build_command": repo.build_command if repo else None,
                        "test_command": repo.test_command if repo else None,
                        "github": repo.github if repo else None},
        "freshness": _freshness(config, new),
    }


def _freshness(config: Config, row: Row) -> dict[str, Any]:
    """What the host checks before the worker starts: the repos ``row``'s repo depends on (transitively), and
    whether to pull them (``workers.auto_pull``, or the assignment's own ``freshness`` from ``coord approve``:
    ``pull``, or ``skip``: no check)."""
    mode = row.get("freshness")
    deps = [] if mode == "skip" else [{"repo": r, "default_branch": _default_branch(config, r)}
                                      for r in repodeps.upstream(config, row["repo"])]
    return {"depends_on": deps, "auto_pull": mode == "pull" or config.workers.auto_pull, "skip": mode == "skip"}


def _default_branch(config: Config, name: str) -> str:
    repo = config.repo(name)
    return repo.default_branch if repo is not None else "main"


def _briefing(row: Row) -> str:
    """The briefing a worker gets: a fix worker's (guidance without a session to resume) has the findings added."""
    if row["guidance"] and not row["resume_session"]:
        return f"{row['briefing']}\n\n{row['guidance']}".strip()
    return str(row["briefing"])


def look(tx: Tx, actor: Actor, now: float, *, machine: str, incarnation: int) -> Plan:
    """:func:`plan` for a host, read-only, with the checks of :func:`next_for` (for a long-poll to decide cheaply)."""
    config = coordinator.require(tx)
    return plan(tx, config, hosts.current(tx, actor, config, machine, incarnation), now)
