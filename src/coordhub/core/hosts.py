"""Worker hosts: one ``coord agent`` per machine, connected out to the hub (issue 11 point 2).

A host registers (each registration is a new **incarnation**), then
heartbeats every ``concurrency.heartbeat_seconds``. Its presence is a lease:
a host silent for ``stale_threshold`` heartbeats (seed 003 counted missed
polls) is stale, and the reconciler re-queues what it was running
(:mod:`coordhub.core.reconcile`). Hosts act as the session
``<machine>/agent``, with a token an admin minted for that machine; nothing
listens on a worker machine, so seed 003's unauthenticated agent port (which
ran Claude with Bash for whoever reached it) does not exist.

The heartbeat is also where a host and the hub reconcile what runs
(contract amendment A2): the host lists the assignments it runs; the hub
answers which of them to ``cancel`` (stopped, re-queued, ended), adopts those
a restarted host re-attached, gives up as lost those it did not, renews the
issue leases of the ones that live, and says whether a halt pauses them.

A host that shuts down says so in a last heartbeat (``stopping``): its row's
``slots`` become 0 (a registration asks for at least 1, so 0 means only
this) and it is ``stopping`` rather than ``online``, then ``stopped`` (not
``stale``) once its heartbeats have stopped for a stale window. Every dispatch (``next``,
``next-run``, ``merges/next``) gives a host with no slots nothing, so the work
its stopping workers hand back is not taken again by the long-poll it still
has open: with a short ``backoff_base`` that poll took the work back before
the host exited, and lost a second attempt with it. The next registration
gives the machine its slots again.
"""

from __future__ import annotations

import json
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import assignments, coordinator, halt, leases, presence
from coordhub.core.events import emit
from coordhub.core.identity import Actor, fold
from coordhub.core.orchestrator_config import Config, Machine
from coordhub.core.presence import StaleIncarnation
from coordhub.core.redaction import redact
from coordhub.core.scope import from_key, project_of
from coordhub.errors import Conflict, Forbidden, Invalid, StaleFence
from coordhub.store.base import Row
from coordhub.store.tx import Tx


class NotRegistered(Conflict):
    """A heartbeat or ``next`` from a machine whose host never registered (409); register first."""

    code = "not_registered"


def machine_of_config(config: Config, machine: str) -> Machine:
    """The config's machine ``machine`` (case-insensitive); ``Invalid`` (422) listing the known ones."""
    m = config.machine(machine)
    if m is None:
        raise Invalid(f"unknown machine {machine!r}: coordinator.yml has "
                      f"{', '.join(x.name for x in config.machines)} (start the agent with --machine NAME)",
                      field="machine")
    return m


def stale_after(config: Config) -> float:
    """Seconds without a heartbeat after which a host is stale."""
    return config.concurrency.stale_after_seconds


def state_of(row: Row, config: Config, now: float) -> str:
    """``online`` while heartbeats arrive in time; ``stopping`` in time but shutting down (it said so in a
    heartbeat, and takes no more work: :func:`stopping`); past the stale window, ``stopped`` when its last word
    was that it is stopping (a clean stop: ``coord agent`` got SIGTERM) and ``stale`` when it went silent without
    saying so (a crash, a lost network): an operator tells the two apart. Both are silent hosts to the reconciler
    (:mod:`coordhub.core.reconcile`), which re-queues what either left running."""
    if now - row["last_heartbeat"] > stale_after(config):
        return "stopped" if stopping(row) else "stale"
    return "stopping" if stopping(row) else "online"


def stopping(row: Row) -> bool:
    """Whether the host of ``row`` said it is shutting down (its ``slots`` set to 0 by :func:`heartbeat`): no
    dispatch gives it anything."""
    return int(row["slots"]) <= 0


def silence(row: Row, now: float) -> str:
    """Why a silent host's work is lost, as the reason's prefix says it (the reconciler found it past the stale
    window): ``host_stopped: …`` when its last heartbeat said it stops (:func:`stopping`, a clean stop of
    ``coord agent``), ``host_stale: …`` when it went silent without saying so (a crash, a lost network). Seed 003
    had only "the agent is gone"; an operator reading a reason must tell a service restart from a crash."""
    name, silent = row["machine"], round(now - row["last_heartbeat"], 1)
    if stopping(row):
        return f"host_stopped: {name} stopped (its last heartbeat said so) and has been silent for {silent:g} s"
    return f"host_stale: no heartbeat from {name} for {silent:g} s"


def departure(row: Row | None, machine: str, incarnation: int | None, now: float) -> str:
    """Why work given to incarnation ``incarnation`` of ``machine``'s host is lost, once the caller found that
    host gone: ``host_restarted: …`` when another incarnation registered since (the work was not re-attached),
    else :func:`silence`; ``host_lost: …`` only when the machine has no host row at all.

    Stage runs and merge runs say this as assignments do (:mod:`coordhub.core.reconcile`,
    :func:`_settle`), so all three tell a clean stop from a vanished host."""
    if row is None:
        return f"host_lost: {machine} has no registered host"
    if row["incarnation"] != incarnation:
        return f"host_restarted: {machine} came back as incarnation {row['incarnation']} without it"
    return silence(row, now)


def elsewhere(tx: Tx, config: Config, machine: str, now: float) -> list[tuple[list[str], list[str]]]:
    """The repos and capabilities of each online host other than ``machine`` (each distinct pair once): where an
    assignment that avoids ``machine`` could run instead ("another machine when possible", seed 003).

    A host a standing halt covers (the fleet's, or ``machine:<m>``) is left
    out: it takes nothing until someone resumes it, and an assignment that
    waited for it would wait as long. A host with no free slot counts: its
    slots free up as its work ends.
    """
    halted = _halted_machines(tx)
    if halted is None:
        return []
    out: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    for h in tx.hosts.all():
        if h["machine"] != machine and h["machine"].lower() not in halted and state_of(h, config, now) == "online":
            out.add((tuple(sorted(json.loads(h["repos"]))), tuple(sorted(set(json.loads(h["capabilities"]))))))
    return [(list(r), list(c)) for r, c in sorted(out)]


def halt_over_machine(tx: Tx, machine: str) -> dict[str, Any] | None:
    """The standing halt that covers a machine's host (the fleet's first, else the machine's), or None."""
    for row in sorted(halt.standing(tx), key=lambda r: from_key(r["scope"]).kind != "fleet"):
        scope = from_key(row["scope"])
        if scope.kind == "fleet" or (scope.kind == "machine" and scope.name == machine.lower()):
            return halt.render(row)
    return None


def _halted_machines(tx: Tx) -> set[str] | None:
    """The machines (lower case) standing halts cover by name; None when the fleet's halt covers every one."""
    out: set[str] = set()
    for row in halt.standing(tx):
        scope = from_key(row["scope"])
        if scope.kind == "fleet":
            return None
        if scope.kind == "machine" and scope.name:
            out.add(scope.name.lower())
    return out


def halted_projects(tx: Tx) -> set[str]:
    """The projects a standing halt covers; a repo is the project of its assignments and leases.

    Compare a repo's name by :func:`~coordhub.core.scope.project_of` (repo ``coord.hub`` is project ``coord-hub``).
    """
    return {project_of(s.name) for s in (from_key(r["scope"]) for r in halt.standing(tx))
            if s.kind == "project" and s.name}


def _timing(config: Config) -> dict[str, float]:
    return {"heartbeat_seconds": config.concurrency.heartbeat_seconds, "stale_after_seconds": stale_after(config)}


def register(tx: Tx, actor: Actor, now: float, *, machine: str, capabilities: list[str], repos: dict[str, str],
             slots: int, agent_version: str | None, problems: list[str] | None = None,
             recovered: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Start a new incarnation of a machine's host; answer its incarnation, timing and the active config.

    ``problems`` (what the agent found wrong: a repo path that is not a git
    repository, no ``claude``) are shown in status until the next register;
    ``recovered`` (what a restarted agent did with orphaned workers and
    worktrees) is kept the same way and goes into the ``host.registered`` event.

    ``capabilities`` are kept only where the config gives them to the machine.

    Raises ``NotConfigured`` (409) before any config is applied, ``Invalid``
    (422) for a machine the config does not have or repos it does not give
    that machine, ``Forbidden`` unless the actor is ``<machine>/agent`` or an admin.
    """
    config = coordinator.require(tx)
    m = machine_of_config(config, machine)
    assignments.may_act_for_host(actor, m.name)
    extra = sorted(set(repos) - set(m.repos))
    if extra:
        raise Invalid(f"coordinator.yml does not give machine {m.name!r} the repos {', '.join(extra)} (it has "
                      f"{', '.join(m.repos) or 'none'})", field="repos")
    # What a machine may do (a GPU's jobs, GitHub's posts and merges) is what coordinator.yml gives it: a host's
    # token claiming more would take work meant for others and report it done.
    capabilities = sorted(set(capabilities) & set(m.capabilities))
    previous = tx.hosts.get(m.name)
    incarnation = (int(previous["incarnation"]) if previous else 0) + 1
    # what a host found (paths, git's and workers' messages) is shown to every session: no credentials in it
    problems = json.loads(redact(json.dumps(problems or [])))
    recovered = json.loads(redact(json.dumps(recovered or [])))
    tx.hosts.put({"machine": m.name, "session_id": actor.session_id, "incarnation": incarnation,
                  "capabilities": json.dumps(sorted(set(capabilities))), "repos": json.dumps(repos), "slots": slots,
                  "free_slots": slots, "running": "[]", "agent_version": agent_version, "registered_at": now,
                  "last_heartbeat": now, "beats": 0, "stale_since": None,
                  "problems": json.dumps(problems), "recovered": json.dumps(recovered)})
    if not actor.is_admin:
        presence.register(tx, actor, client="coord-agent", now=now)
    emit(tx, "host.registered", now, session_id=actor.session_id, subject_id=m.name, machine=m.name,
         incarnation=incarnation, slots=slots, repos=sorted(repos), capabilities=sorted(set(capabilities)),
         problems=problems, recovered=recovered)
    version = tx.orchestrator.get()["config_version"]
    return {"machine": m.name, "host_incarnation": incarnation, **_timing(config), "config_version": version,
            "config": config.as_json()}


def current(tx: Tx, actor: Actor, config: Config, machine: str, incarnation: int) -> Row:
    """The host row of ``machine`` if ``actor`` may act for it and ``incarnation`` is its current one.

    ``Forbidden`` (403), ``NotRegistered`` (409) or ``StaleIncarnation`` (409:
    a newer agent registered for that machine; this one should exit).
    """
    m = machine_of_config(config, machine)
    assignments.may_act_for_host(actor, m.name)
    row = tx.hosts.get(m.name)
    if row is None:
        raise NotRegistered(f"the host of machine {m.name!r} is not registered; register first")
    if incarnation != row["incarnation"]:
        raise StaleIncarnation(f"incarnation {incarnation} of the host of {m.name!r} was superseded by "
                               f"{row['incarnation']}; this agent should exit", current=row["incarnation"])
    return row


def heartbeat(tx: Tx, actor: Actor, now: float, *, machine: str, incarnation: int, free_slots: int,
              running: list[str], stopping: bool = False) -> dict[str, Any]:
    """Keep a host alive and reconcile what it runs (see the module docstring); answer what it must do.

    ``stopping``: the host shuts down; from now on it gets no work (its ``slots`` become 0, event
    ``host.stopping`` the first time), until it registers again.

    Answer: ``{ok, config_version, heartbeat_seconds, stale_after_seconds,
    paused, halt, paused_assignments, cancel, rate_limited_until}``.
    """
    config = coordinator.require(tx)
    row = current(tx, actor, config, machine, incarnation)
    name = row["machine"]
    listed = set(running)
    first = int(row["beats"]) == 0
    if row["stale_since"] is not None:
        emit(tx, "host.back", now, session_id=actor.session_id, subject_id=name, machine=name,
             incarnation=incarnation, stale_since=isoformat(row["stale_since"]))
    tx.hosts.set(name, {"last_heartbeat": now, "free_slots": free_slots, "running": json.dumps(sorted(listed)),
                        "beats": int(row["beats"]) + 1, "stale_since": None})
    if stopping and int(row["slots"]) > 0:
        tx.hosts.set(name, {"slots": 0, "free_slots": 0})
        emit(tx, "host.stopping", now, session_id=actor.session_id, subject_id=name, machine=name,
             incarnation=incarnation, running=sorted(listed))
    elif stopping:
        tx.hosts.set(name, {"free_slots": 0})
    kept = _settle(tx, config, name, incarnation, listed, first, now)
    if not actor.is_admin and fold(actor.session_id) == fold(assignments.host_session(name)):
        presence.heartbeat(tx, actor, None, now)
    standing = halt_over_machine(tx, name)
    projects = halted_projects(tx)
    pause = coordinator.paused_until(tx, now)
    return {"ok": True, "machine": name, "config_version": tx.orchestrator.get()["config_version"],
            **_timing(config), "paused": standing is not None, "halt": standing,
            "paused_assignments": [a["id"] for a in kept if standing is not None or project_of(a["repo"]) in projects],
            "cancel": sorted(listed - {a["id"] for a in kept}), "rate_limited_until": isoformat(pause)}


def _settle(tx: Tx, config: Config, machine: str, incarnation: int, listed: set[str], first: bool,
            now: float) -> list[Row]:
    """Adopt, give up or keep each assignment live on this host; return those it should go on running."""
    kept = []
    window = stale_after(config)
    for a in tx.assignments.on_machine(machine, assignments.ACTIVE):
        if a["host_incarnation"] != incarnation:
            if a["id"] in listed:  # a restarted host re-attached it
                tx.assignments.set(a["id"], {"host_incarnation": incarnation, "updated_at": now})
                emit(tx, "assignment.adopted", now, session_id=None, project_key=a["repo"], subject_id=a["id"],
                     assignment_id=a["id"], attempt=a["attempt"], machine=machine, incarnation=incarnation)
                kept.append(a)
            else:
                assignments.lose(tx, a, config, now, f"host_restarted: {machine} came back as incarnation "
                                 f"{incarnation} without it" + ("" if first else " (not adopted)"))
            continue
        if a["state"] == "dispatched" and a["id"] not in listed and now - a["dispatched_at"] > window:
            assignments.lose(tx, a, config, now, f"dispatch_lost: {machine} never listed it in {window:g} s")
            continue
        kept.append(a)
        _renew_issue_lease(tx, a, window, now)
    return kept


def _renew_issue_lease(tx: Tx, a: Row, window: float, now: float) -> None:
    """Keep the issue lease of a live assignment two stale windows ahead (renewed when one is left)."""
    if not a["lease_id"] or not a["worker_session"]:
        return
    lease = tx.leases.get(a["lease_id"])
    if lease is None or lease["expires_at"] is None or lease["expires_at"] - now > window:
        return
    try:
        leases.renew(tx, Actor(a["worker_session"]), a["lease_id"], 2 * window / 3600.0, now)
    except (StaleFence, Forbidden):
        pass  # an admin ended it: the worker goes on without it; the lease was the admin's call
