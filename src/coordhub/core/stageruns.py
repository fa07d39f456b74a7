"""Stage runs: one smoke test or review of an assignment's branch, queued by the hub, run by a host (issue 12).

A run is a row (``stage_runs``) with its evidence: for a test the command,
its exit code and the tail of its output; for a review the verdict, the
summary and the findings. States::

    queued -> dispatched -> running -> passed | failed | error
       ^           |            |
       +-----------+------------+   its host went away or was stopped: dispatched again (``attempt`` + 1,
                                    at most MAX_RUN_ATTEMPTS), then ``error``; the reason says which
                                    (``host_stopped``, ``host_stale``, ``host_restarted``), as an
                                    assignment's does
    queued | dispatched | running -> cancelled   (a human's verdict or a fix replaced it)

**The verdict is the hub's, from the evidence**: a test passed iff the
command's own exit code is 0 (seed 003 took Claude's exit code for the
test's); a review passed iff its parsed verdict is ``approve``, and a review
without a valid verdict is an ``error``, never an approval.

Where it runs: a host long-polls ``POST …/hosts/next-run``; it gets the
oldest queued run it may take — its repo served, the capabilities
``smoke_tests.capability_rules`` require for the files the branch changed,
a free slot (stage runs share the host's ``slots`` with workers; reviews,
being Claude sessions, also count against ``max_workers``), no halt over it.
A review avoids the worker's own machine while another online host could
take it (seed 003: idle different, busy different, then the same).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import assignments, coordinator, hosts, paths, reviews
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.core.orchestrator_config import Config, Repo
from coordhub.core.presence import StaleIncarnation
from coordhub.core.redaction import redact, redact_opt
from coordhub.core.scope import project_of
from coordhub.errors import Conflict, NotFound
from coordhub.store.base import Row
from coordhub.store.tx import Tx

ENDED = ("passed", "failed", "error", "cancelled")
ACTIVE = ("dispatched", "running")
MAX_RUN_ATTEMPTS = 3
MAX_TAIL_CHARS = 8000
HOST_STOPPED = "host_stopped"
"""The prefix of an ``error`` report's reason that says the host, not the branch, ended the run: ``coord agent``
was stopped (SIGTERM) while it ran. The hub queues the run again (:func:`_lose`) as it does a run whose host went
away, with the host's reason, so a clean stop reads as one (as an assignment's ``host_stopped`` does,
:data:`coordhub.core.hostreports.HOST_WENT_AWAY`) and not as ``host_restarted`` once the agent is back."""


class StaleRun(Conflict):
    """A host reported on a run attempt that is not current, or on a run that already ended (409)."""

    code = "stale_attempt"


def _new_id(tx: Tx) -> str:
    while True:
        candidate = secrets.token_hex(4)
        if tx.stage_runs.get(candidate) is None:
            return candidate


def get_row(tx: Tx, run_id: str) -> Row:
    """The run's row; ``NotFound`` when there is none."""
    row = tx.stage_runs.get(assignments.check_id(run_id))
    if row is None:
        raise NotFound(f"no stage run {run_id!r}")
    return row


def render(row: Row) -> dict[str, Any]:
    """The JSON form of a run."""
    return {"id": row["id"], "assignment_id": row["assignment_id"], "stage": row["stage"], "round": row["round"],
            "state": row["state"], "verdict": row["verdict"], "manual": bool(row["manual"]),
            "attempt": row["attempt"], "machine": row["machine"], "requires": json.loads(row["requires"]),
            "avoid_machine": row["avoid_machine"], "branch": row["branch"], "base": row["base"],
            "commit": row["commit_sha"], "model": row["model"], "command": row["command"],
            "exit_code": row["exit_code"], "output_tail": row["output_tail"],
            "findings": json.loads(row["findings"]) if row["findings"] else [], "summary": row["summary"],
            "reason": row["reason"], "cost_usd": row["cost_usd"], "timeout_seconds": row["timeout_seconds"],
            "created_by": row["created_by"], "created_at": isoformat(row["created_at"]),
            "dispatched_at": isoformat(row["dispatched_at"]), "started_at": isoformat(row["started_at"]),
            "ended_at": isoformat(row["ended_at"])}


def evidence(run: Row) -> str:
    """A failed run's evidence as text for a fix worker: the command, exit code and output tail, or the findings."""
    if run["stage"] == "test":
        head = f"Smoke test `{run['command']}` exited {run['exit_code']}" if run["command"] else "Smoke test failed"
        body = run["output_tail"] or ""
        why = f" ({run['reason']})" if run["reason"] else ""
        return f"{head}{why}.\nOutput (tail):\n{body}".rstrip()
    findings = json.loads(run["findings"]) if run["findings"] else []
    lines = [f"Review verdict: {run['verdict']}. {run['summary'] or ''}".rstrip()]
    for f in findings:
        where = f"{f.get('file')}:{f['line']}" if f.get("line") else str(f.get("file") or "-")
        lines.append(f"- [{f.get('severity', 'major')}] {where}: {f.get('message', '')}")
    if run["manual"] and run["reason"]:
        lines.append(run["reason"])
    return "\n".join(lines)


def smoke_command(config: Config, repo: Repo | None) -> str | None:
    """The smoke test a repo runs: ``build_command && test_command``, else ``smoke_tests.default_command``."""
    parts = [c for c in ((repo.build_command, repo.test_command) if repo else ()) if c]
    if len(parts) == 2:
        return f"( {parts[0]} ) && ( {parts[1]} )"
    return parts[0] if parts else config.smoke_tests.default_command


def capability_requires(config: Config, changed: list[str]) -> list[str]:
    """The capabilities ``smoke_tests.capability_rules`` require for the ``changed`` files (sorted, unique)."""
    need: set[str] = set()
    for rule in config.smoke_tests.capability_rules:
        for pattern in rule.files:
            try:
                if any(paths.contains(pattern, path) for path in changed):
                    need.update(rule.requires)
                    break
            except ValueError:
                continue  # a changed path the lease grammar cannot express (never a reason to skip a rule silently)
    return sorted(need)


def queue(tx: Tx, config: Config, row: Row, stage: str, now: float, *, by: str | None) -> Row:
    """Queue a ``test`` or ``review`` run of the assignment's branch; return it (event ``stage_run.queued``)."""
    repo = config.repo(row["repo"])
    changed = json.loads(row["changed_files"]) if row["changed_files"] else []
    test = stage == "test"
    run: Row = {
        "id": _new_id(tx), "assignment_id": row["id"], "stage": stage, "round": row["fix_round"], "state": "queued",
        "verdict": None, "manual": 0, "attempt": 0, "machine": None, "host_incarnation": None,
        "requires": json.dumps(capability_requires(config, changed) if test else []),
        "avoid_machine": None if test else row["ran_on"], "branch": row["branch"],
        "base": repo.default_branch if repo else "main", "commit_sha": None,
        "model": None if test else reviews.model(config),
        "command": smoke_command(config, repo) if test else None, "exit_code": None, "output_tail": None,
        "findings": None, "summary": None, "reason": None, "cost_usd": 0.0,
        "timeout_seconds": config.smoke_tests.timeout_seconds if test else config.workers.wall_clock_seconds,
        "created_by": by, "created_at": now, "dispatched_at": None, "started_at": None, "ended_at": None}
    nobody = _no_machine(config, row["repo"], json.loads(run["requires"]))
    if nobody:  # a run no machine of the config could take would wait forever: a clear error instead
        run.update(state="error", reason=nobody, ended_at=now)
    tx.stage_runs.add(run)
    _event(tx, run, run["state"], now, by)
    return run


def _no_machine(config: Config, repo: str, requires: list[str]) -> str | None:
    """Why no machine of the config can run a run of ``repo`` needing ``requires``, or None when one can."""
    if any(repo in m.repos and set(requires) <= set(m.capabilities) for m in config.machines):
        return None
    needs = f" with capabilities {', '.join(requires)} (smoke_tests.capability_rules)" if requires else ""
    return f"no_machine: no machine in coordinator.yml serves repo {repo}{needs}"


def record_manual(tx: Tx, config: Config, row: Row, passed: bool, reason: str | None, now: float, *,
                  by: str) -> Row:
    """A human's smoke verdict as an ended run (``manual``); return it."""
    state = "passed" if passed else "failed"
    run: Row = {
        "id": _new_id(tx), "assignment_id": row["id"], "stage": "test", "round": row["fix_round"], "state": state,
        "verdict": state, "manual": 1, "attempt": 0, "machine": None, "host_incarnation": None, "requires": "[]",
        "avoid_machine": None, "branch": row["branch"], "base": "", "commit_sha": None, "model": None,
        "command": smoke_command(config, config.repo(row["repo"])), "exit_code": None, "output_tail": None,
        "findings": None, "summary": None, "reason": (reason or f"recorded by {by}")[:4000], "cost_usd": 0.0,
        "timeout_seconds": None, "created_by": by, "created_at": now, "dispatched_at": None, "started_at": None,
        "ended_at": now}
    tx.stage_runs.add(run)
    _event(tx, run, state, now, by)
    return run


def cancel(tx: Tx, run: Row, now: float, *, reason: str, by: str | None) -> None:
    """End a live run as ``cancelled`` (its host stops it: its next report is refused)."""
    tx.stage_runs.set(run["id"], {"state": "cancelled", "reason": reason, "ended_at": now})
    _event(tx, {**run, "state": "cancelled", "reason": reason}, "cancelled", now, by)


def _event(tx: Tx, run: Row, what: str, now: float, by: str | None) -> None:
    emit(tx, f"stage_run.{what}", now, session_id=by, subject_id=run["assignment_id"], run_id=run["id"],
         assignment_id=run["assignment_id"], stage=run["stage"], state=run["state"], verdict=run["verdict"],
         machine=run["machine"], attempt=run["attempt"], exit_code=run.get("exit_code"), reason=run.get("reason"))


# ---- dispatch --------------------------------------------------------------------------------

def _busy(tx: Tx, machine: str) -> int:
    return tx.assignments.active_count(machine) + tx.stage_runs.active_count(machine)


def plan(tx: Tx, config: Config, host: Row, now: float) -> Row | None:
    """The run ``host`` should take now (its whole row), or None (the rules: the module docstring); writes nothing.

    Every rule past the host's own (a halt over the machine, a free slot) is
    asked of the store in one statement, before any limit
    (:meth:`~coordhub.store.tables.pipeline.StageRuns.first_runnable`): the
    repo served and its project not halted, the ``requires`` among the
    host's capabilities, a review only under ``max_workers`` and no pause,
    and a review of this machine's own work only when no other online host
    could take it. So no number of queued runs this host may not take now
    stands in front of one it may: when those rules were checked here, on
    the oldest 200 runs a call, 200 runs needing a capability it lacks, or
    reviews waiting for another machine, kept every later run from it for
    good. The work is one walk of the live-run index in the database plus
    one look at the hosts table; no row is read into Python but the one
    taken.
    """
    machine = host["machine"]
    # a stopping host has 0 slots (hosts.stopping): it takes no run, as no assignment
    if hosts.halt_over_machine(tx, machine) is not None or _busy(tx, machine) >= host["slots"]:
        return None
    halted = hosts.halted_projects(tx)
    repos = sorted(r for r in set(json.loads(host["repos"])) if project_of(r) not in halted)
    caps = sorted(set(json.loads(host["capabilities"])))
    claude_full = (tx.assignments.active_count() + tx.stage_runs.active_count(stage="review")
                   >= config.concurrency.max_workers) or coordinator.paused_until(tx, now) is not None
    return tx.stage_runs.first_runnable(machine, repos, caps, not claude_full,
                                        hosts.elsewhere(tx, config, machine, now))


def look(tx: Tx, actor: Actor, now: float, *, machine: str, incarnation: int) -> Row | None:
    """:func:`plan` for a host, read-only, with the host checks (for a long-poll to decide cheaply)."""
    config = coordinator.require(tx)
    return plan(tx, config, hosts.current(tx, actor, config, machine, incarnation), now)


def next_for(tx: Tx, actor: Actor, now: float, *, machine: str, incarnation: int) -> dict[str, Any] | None:
    """Dispatch the next run to ``machine``'s host (``queued → dispatched``, attempt + 1); its payload, or None.

    Counts as a heartbeat. Raises as :func:`coordhub.core.hosts.current` does.
    """
    config = coordinator.require(tx)
    host = hosts.current(tx, actor, config, machine, incarnation)
    tx.hosts.set(host["machine"], {"last_heartbeat": now})
    run = plan(tx, config, host, now)
    if run is None:
        return None
    changes: Row = {"state": "dispatched", "attempt": run["attempt"] + 1, "machine": host["machine"],
                    "host_incarnation": host["incarnation"], "dispatched_at": now, "started_at": None}
    tx.stage_runs.set(run["id"], changes)
    run = {**run, **changes}
    _event(tx, run, "dispatched", now, actor.session_id)
    row = assignments.get_row(tx, run["assignment_id"])
    payload: dict[str, Any] = {
        "id": run["id"], "attempt": run["attempt"], "stage": run["stage"], "assignment_id": row["id"],
        "repo": row["repo"], "issue": row["issue"], "title": row["title"], "branch": run["branch"],
        "base": run["base"], "command": run["command"], "timeout_seconds": run["timeout_seconds"],
        "model": run["model"]}
    if run["stage"] == "review":
        payload["review"] = reviews.payload(config, row)
    return payload


# ---- reports -----------------------------------------------------------------------------------

def _current(tx: Tx, actor: Actor, run_id: str, attempt: int, incarnation: int | None) -> Row:
    """The run, if ``attempt`` is its current attempt, it is active, and host incarnation ``incarnation`` of its
    machine, the current one, is the one it was dispatched to; else 403 or 409 (``StaleIncarnation``, ``StaleRun``).

    Runs are never adopted (a host that registers again does not re-attach them; :func:`reap` queues them again),
    so the run's own incarnation must be the reporter's: an agent a newer one replaced never passes a run.
    ``incarnation`` None (deprecated: an agent from before reports named one) stands for the machine's current
    incarnation.
    """
    run = get_row(tx, run_id)
    if run["machine"] is None:
        raise StaleRun(f"stage run {run['id']} was never dispatched", current=run["attempt"])
    assignments.may_act_for_host(actor, run["machine"])
    if incarnation is None:  # 0 is no incarnation: hosts.current answers NotRegistered for an unregistered machine
        host = tx.hosts.get(run["machine"])
        incarnation = int(host["incarnation"]) if host is not None else 0
    hosts.current(tx, actor, coordinator.require(tx), run["machine"], incarnation)
    if run["host_incarnation"] != incarnation:
        raise StaleIncarnation(f"stage run {run['id']} was dispatched to incarnation {run['host_incarnation']} of "
                               f"{run['machine']}, not {incarnation}; the report is ignored",
                               current=incarnation, dispatched_to=run["host_incarnation"])
    if attempt != run["attempt"] or run["state"] not in ACTIVE:
        raise StaleRun(f"attempt {attempt} of stage run {run['id']} is not current (it is {run['state']}, attempt "
                       f"{run['attempt']}); the report is ignored", current=run["attempt"], state=run["state"])
    return run


def report(tx: Tx, actor: Actor, run_id: str, attempt: int, now: float, *, incarnation: int | None, state: str,
           exit_code: int | None = None, output_tail: str | None = None, commit: str | None = None,
           verdict: str | None = None, summary: str | None = None, findings: list[dict[str, Any]] | None = None,
           reason: str | None = None, cost_usd: float | None = None) -> Row:
    """Apply a host's report (from host incarnation ``incarnation``) on the current attempt of a run; return the run.

    ``state``: ``running`` (started), ``done`` (ran to the end: the hub
    decides passed or failed from ``exit_code`` or ``verdict``), ``error``
    (could not run: a git failure, no ``claude``, a review without a valid
    verdict; with a reason starting :data:`HOST_STOPPED`, the host was stopped
    while it ran: the run is queued again, no verdict). ``cost_usd`` (USD, the attempt's, read from the report
    that ends it) adds to the run's cost, a ``host_stopped`` attempt's too. ``StaleRun`` (409) for another
    attempt or an ended run;
    ``StaleIncarnation`` (409) from an incarnation that is not the machine's
    current one or not the run's (:func:`_current`); ``incarnation`` None (deprecated, an agent from before
    reports named one): the machine's current one. The
    reason, output tail, summary and findings are stored with their tokens
    masked (:func:`~coordhub.core.redaction.redact`): every session reads them.
    """
    run = _current(tx, actor, run_id, attempt, incarnation)
    reason, summary = redact_opt(reason), redact_opt(summary)  # every session reads them: no tokens
    changes: Row = {}
    if cost_usd is not None and state != "running":
        # an attempt's cost adds to the run's: a reviewer a stopping host ended had spent money too, and the
        # attempt after it must not hide it (only the report that ends an attempt counts its cost, once)
        changes["cost_usd"] = float(run["cost_usd"] or 0.0) + float(cost_usd)
    if state == "error" and reason and reason.startswith(HOST_STOPPED):  # no verdict: the host stopped it
        if changes:
            tx.stage_runs.set(run["id"], changes)
        return _lose(tx, {**run, **changes}, f"{reason[:1000]} (it ran attempt {run['attempt']})", now,
                     actor.session_id)
    if commit is not None:
        changes["commit_sha"] = commit
    if output_tail is not None:
        changes["output_tail"] = redact(output_tail)[-MAX_TAIL_CHARS:]
    if state == "running":
        changes.update(state="running", started_at=run["started_at"] or now)
    elif state == "error":
        changes.update(state="error", reason=(reason or "error")[:4000], ended_at=now, exit_code=exit_code)
    elif run["stage"] == "test":
        if exit_code is None:
            changes.update(state="error", reason="the host reported no exit code", ended_at=now)
        else:
            ok = exit_code == 0
            changes.update(state="passed" if ok else "failed", verdict="passed" if ok else "failed",
                           exit_code=exit_code, reason=reason[:4000] if reason else None, ended_at=now)
    else:
        checked = reviews.check_verdict(verdict, summary, findings)
        if checked is None:
            changes.update(state="error", ended_at=now, reason=f"review_verdict_invalid: {verdict!r} is not "
                           "approve or request_changes")
        else:
            # reason None: an earlier attempt's (host_stopped, host_stale) is no part of this verdict
            changes.update(state="passed" if checked["verdict"] == "approve" else "failed", ended_at=now,
                           reason=None, verdict=checked["verdict"], summary=checked["summary"],
                           findings=redact(json.dumps(checked["findings"])))
    tx.stage_runs.set(run["id"], changes)
    run = {**run, **changes}
    if run["state"] != "running" or state == "running":
        _event(tx, run, run["state"], now, actor.session_id)
    return run


def reap(tx: Tx, now: float) -> dict[str, list[str]]:
    """Runs whose host the reconciler marked gone (stopped or stale), or that restarted (another incarnation):
    queued again, or ``error`` after :data:`MAX_RUN_ATTEMPTS`, the reason from
    :func:`coordhub.core.hosts.departure`. Returns ``{requeued, failed}`` (run ids).

    Staleness is the reconciler's (``hosts.stale_since``), which gives hosts a
    full window after a hub restart: a run survives a kill -9 of the hub.
    """
    out: dict[str, list[str]] = {"requeued": [], "failed": []}
    host_rows = {h["machine"]: h for h in tx.hosts.all()}
    for run in tx.stage_runs.active():
        h = host_rows.get(run["machine"])
        if h is not None and h["incarnation"] == run["host_incarnation"] and h["stale_since"] is None:
            continue
        why = f"{hosts.departure(h, run['machine'], run['host_incarnation'], now)} (it ran attempt {run['attempt']})"
        new = _lose(tx, run, why, now, None)
        out["requeued" if new["state"] == "queued" else "failed"].append(run["id"])
    return out


def _lose(tx: Tx, run: Row, why: str, now: float, by: str | None) -> Row:
    """Queue a run its host gave up (``why``: the reason, from :func:`coordhub.core.hosts.departure` or a
    stopping host's own report) again for any host, or end it ``error`` after :data:`MAX_RUN_ATTEMPTS`; the
    new row."""
    if run["attempt"] >= MAX_RUN_ATTEMPTS:
        changes: Row = {"state": "error", "reason": f"{why}; gave up after {run['attempt']} attempts", "ended_at": now}
    else:
        changes = {"state": "queued", "reason": why, "machine": None}
    tx.stage_runs.set(run["id"], changes)
    new = {**run, **changes}
    _event(tx, new, new["state"], now, by)
    return new
