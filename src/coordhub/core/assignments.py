"""Assignments: one issue for one headless worker, queued, dispatched, reported on (issue 11 point 3).

States are a table, in one place (:data:`TRANSITIONS`); every change goes
through :func:`transition`, which checks the table inside the transaction and
emits the event ``assignment.<state>``::

    queued -> dispatched -> running -> done | failed | stuck | needs_input | cancelled
       ^          |             |
       +----------+-------------+  re-queued: host lost, files busy, retry, resume-stuck

An **attempt** is one dispatch of an assignment (an incarnation, as Gas Town
#909 needed): ``attempt`` counts them, and every host report and log line
names the attempt it belongs to. A report of an attempt that is not the
current one, or of one the hub gave up as lost, is refused with 409
``stale_attempt`` and changes nothing, so a late completion of a dead attempt
never closes a newer one. Each attempt runs as its own hub session
``<machine>/worker-<id>`` with a token minted at dispatch and retired, with
every lease the worker held, when the attempt ends.

Who may: any session may queue, stop, retry and resume (the briefing is all
it chooses: repos, paths, tools and budgets come from the admin's
``coordinator.yml``, never from the request — seed 003's agent ran whatever
``repo_path`` and ``system_prompt`` a caller sent), except the orchestrator's
own sessions: a worker or a host may not direct work (:func:`may_direct`). Stopping, retrying and
resuming live in :mod:`coordhub.core.assignmentcontrol`. Only the host running an attempt
(``<machine>/agent``) or an admin reports on it.

How many: the assignments a session queued that are queued, dispatched or
running number at most :data:`MAX_LIVE_PER_SESSION` (409
``assignment_limit``; admins are not bounded), checked when one is queued,
retried or resumed (:func:`check_room`). Queued assignments are never
pruned and each holds up to 64 KiB of briefing, so without the bound one
token could grow the queue, and every scan of it, without end (a review
queued ~2,900 and an unrelated write waited over a second). A count rather
than the daily write quota (:mod:`coordhub.core.quota`): a quota bounds a
day, and the queue outlives days; the bound is the same kind as the live
leases of a session (:data:`coordhub.core.leases.MAX_LIVE_PER_SESSION`).
"""

from __future__ import annotations

import enum
import json
import re
import secrets
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import coordinator, repodeps, tokens
from coordhub.core.events import emit
from coordhub.core.identity import Actor, fold, orchestrator_role
from coordhub.core.orchestrator_config import Config, model_for, unknown_model
from coordhub.errors import Conflict, Forbidden, Invalid, NotFound
from coordhub.store.base import Row
from coordhub.store.tables.orchestrator import WORKER_INFIX
from coordhub.store.tx import Tx

MAX_BRIEFING_BYTES = 65_536
MAX_GUIDANCE_BYTES = 65_536
# UTF-8 bytes of an assignment's files_likely joined by ", ": the worker's system prompt names them in one argument
# of claude's command line, and Linux refuses any argument over 128 KiB (E2BIG: every attempt would fail to start)
MAX_FILES_LIKELY_BYTES = 16_384
MAX_LOG_CHARS = 1_048_576      # the relayed log kept per assignment (its newest part)
MAX_LOG_READ_CHARS = 262_144   # one GET of the log answers at most this much
RATE_LIMIT_REASON = "rate limit"
FRESHNESS = (None, "pull", "skip")  # per assignment: workers.auto_pull, pull first, or no check (coord approve)
MAX_FRESHNESS_NOTES = 50
MAX_LIVE_PER_SESSION = 500  # queued, dispatched or running assignments one session's queueing may keep at once


class State(enum.StrEnum):
    """An assignment's state."""

    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STUCK = "stuck"
    NEEDS_INPUT = "needs_input"
    CANCELLED = "cancelled"


S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.QUEUED: frozenset({S.DISPATCHED, S.CANCELLED, S.FAILED}),
    S.DISPATCHED: frozenset({S.RUNNING, S.DONE, S.FAILED, S.STUCK, S.NEEDS_INPUT, S.CANCELLED, S.QUEUED}),
    S.RUNNING: frozenset({S.DONE, S.FAILED, S.STUCK, S.NEEDS_INPUT, S.CANCELLED, S.QUEUED}),
    S.STUCK: frozenset({S.QUEUED, S.CANCELLED}),
    S.NEEDS_INPUT: frozenset({S.QUEUED, S.CANCELLED}),
    S.FAILED: frozenset({S.QUEUED}),
    S.CANCELLED: frozenset({S.QUEUED}),
    S.DONE: frozenset({S.QUEUED}),  # only a fix worker on the same branch (core/stages.py, core/mergequeue.py)
}
LIVE = ("queued", "dispatched", "running", "stuck", "needs_input")  # the issue is taken
ACTIVE = ("dispatched", "running")  # a worker slot is held
WAITING = ("stuck", "needs_input")  # the attempt ended; a human or resume-stuck decides
REPORTED = ("running", "done", "failed", "stuck", "needs_input")  # what a host may report


class StaleAttempt(Conflict):
    """A host reported on an attempt that is not the assignment's current one, or was given up as lost (409)."""

    code = "stale_attempt"


class AlreadyAssigned(Conflict):
    """The issue already has a live assignment (409); details name it."""

    code = "already_assigned"


class InvalidTransition(Conflict):
    """The assignment's state does not allow this (409); details give the state."""

    code = "invalid_transition"


class AssignmentLimit(Conflict):
    """The session's assignments already hold :data:`MAX_LIVE_PER_SESSION` live places (409; ``limit``):
    let some run or stop some first."""

    code = "assignment_limit"


class LogGap(Conflict):
    """A log chunk starts past the end of what the hub holds (409); resend from ``size``."""

    code = "log_gap"


# ---- ids, names, rendering ----------------------------------------------------------

_ID = re.compile(r"[0-9a-fA-F]{8}")


def check_id(assignment_id: str) -> str:
    """``assignment_id`` in lower case, as ids are stored, if it looks like one (8 hex characters of either case);
    ``NotFound`` otherwise.

    An id is hex, so its case says nothing: ``A1B2C3D4`` names ``a1b2c3d4``, as an upper-case UUID names its
    message and session ids compare case-insensitively.
    """
    if not _ID.fullmatch(assignment_id):
        raise NotFound(f"no assignment {assignment_id[:40]!r} (ids are 8 hex characters, e.g. a1b2c3d4)")
    return assignment_id.lower()


def worker_session(machine: str, assignment_id: str) -> str:
    """The hub session a worker acts as: ``<machine>/worker-<id>``."""
    return f"{machine}{WORKER_INFIX}{assignment_id}"


def host_session(machine: str) -> str:
    """The hub session a machine's ``coord agent`` acts as: ``<machine>/agent``."""
    return f"{machine}/agent"


def is_worker(session_id: str) -> bool:
    """Whether a session is an orchestrator worker (``<machine>/worker-<id>``, any letter case)."""
    return orchestrator_role(session_id) == "worker"


def may_act_for_host(actor: Actor, machine: str) -> None:
    """Refuse (403) unless ``actor`` is ``<machine>/agent`` or an admin."""
    if actor.is_admin or fold(actor.session_id) == fold(host_session(machine)):
        return
    raise Forbidden(f"{actor.session_id!r} may not act for the host of machine {machine!r}: only "
                    f"{host_session(machine)!r} (or an admin) may", machine=machine)


def may_direct(actor: Actor) -> None:
    """Refuse (403) an orchestrator worker or host directing work.

    Directing: assign, stop, retry, resume-stuck, ``halt --kill``, and the
    pipeline's ``test`` (a run or a verdict), ``review``, ``fix``, ``accept``
    and ``done``, and the planning brain's proposals (store, approve,
    record a split): a worker that could record a passing verdict or pass
    the approval gate would merge unverified work.

    A worker runs Claude with Bash in a repository anyone may have written
    to; were its token able to assign, one prompt injection would start
    workers with briefings of its choosing on every machine (seed 003's
    agent port ran Claude for anyone: research/claude-coordinator.md). A
    host acts only for its own machine. People's sessions and admins direct.
    """
    if actor.is_admin:
        return
    sid = actor.session_id
    role = orchestrator_role(sid)
    if role is not None:
        raise Forbidden(f"{sid!r} is an orchestrator {role}: it may not "
                        "assign, stop, retry or resume work (a person's session or an admin does)")


def branch_for(issue: int, title: str | None) -> str:
    """Seed 003's branch name ``issue-<N>-<slug of the title>`` (slug at most 40 characters); ``issue-<N>`` bare."""
    slug = re.sub(r"[^a-z0-9]+", "-", (title or "").lower()).strip("-")[:40].strip("-")
    return f"issue-{issue}-{slug}" if slug else f"issue-{issue}"


def _loads(text: str | None, default: Any) -> Any:
    return default if text is None else json.loads(text)


def render(row: Row, *, briefing: bool = True) -> dict[str, Any]:
    """The JSON form of an assignment (``briefing=False``: its size instead of its text, for lists)."""
    out: dict[str, Any] = {
        "id": row["id"], "state": row["state"], "attempt": row["attempt"], "repo": row["repo"],
        "issue": row["issue"], "title": row["title"], "labels": _loads(row["labels"], []),
        "machine": row["machine"], "any": row["machine"] is None, "avoid_machine": row["avoid_machine"],
        "ran_on": row["ran_on"], "requires": _loads(row["requires"], []), "model": row["model"],
        "model_source": row["model_source"], "files_likely": _loads(row["files_likely"], []),
        "branch": row["branch"], "worktree": row["worktree"], "session_id": row["claude_session"],
        "resume": ({"session_id": row["resume_session"], "guidance": row["guidance"]}
                   if row["resume_session"] else None),
        "reason": row["reason"], "cost_usd": row["cost_usd"], "total_cost_usd": row["total_cost_usd"],
        "turns": row["turns"], "last_tool": row["last_tool"], "last_file": row["last_file"],
        "progress": row["progress"], "status_line": row["status_line"], "result": _loads(row["result"], None),
        "pushed": bool(row["pushed"]), "wip_commit": row["wip_commit"], "worker_session": row["worker_session"],
        "lease_id": row["lease_id"], "fence": row["fence"], "budget_usd": row["budget_usd"],
        "wall_clock_seconds": row["wall_clock_seconds"], "not_before": isoformat(row["not_before"]),
        "created_by": row["created_by"], "created_at": isoformat(row["created_at"]),
        "queued_at": isoformat(row["queued_at"]), "dispatched_at": isoformat(row["dispatched_at"]),
        "started_at": isoformat(row["started_at"]), "ended_at": isoformat(row["ended_at"]),
        "updated_at": isoformat(row["updated_at"]),
        "stage": row.get("stage", "work"), "stage_reason": row.get("stage_reason"),
        "fix_round": row.get("fix_round", 0), "fix_stage": row.get("fix_stage"),
        "stage_at": isoformat(row.get("stage_at")), "changed_files": _loads(row.get("changed_files"), []),
        "freshness": {"mode": row.get("freshness") or "config", "notes": _loads(row.get("freshness_notes"), None)},
    }
    if briefing:
        out["briefing"] = row["briefing"]
    elif "briefing_bytes" in row:  # kept when the assignment was made: a list never reads the briefing
        out["briefing_bytes"] = row["briefing_bytes"]
    else:
        out["briefing_bytes"] = len(row["briefing"].encode("utf-8"))
    return out


def render_attempt(row: Row) -> dict[str, Any]:
    """The JSON form of one attempt."""
    return {"attempt": row["attempt"], "machine": row["machine"], "host_incarnation": row["host_incarnation"],
            "model": row["model"], "state": row["state"], "reason": row["reason"], "cost_usd": row["cost_usd"],
            "turns": row["turns"], "session_id": row["claude_session"],
            "dispatched_at": isoformat(row["dispatched_at"]), "started_at": isoformat(row["started_at"]),
            "ended_at": isoformat(row["ended_at"])}


def get_row(tx: Tx, assignment_id: str) -> Row:
    """The assignment's row; ``NotFound`` if there is none."""
    row = tx.assignments.get(check_id(assignment_id))
    if row is None:
        raise NotFound(f"no assignment {assignment_id!r}")
    return row


def get(tx: Tx, assignment_id: str) -> dict[str, Any]:
    """One assignment with its briefing and its ``attempts``."""
    row = get_row(tx, assignment_id)
    return {**render(row), "attempts": [render_attempt(a) for a in tx.attempts.of(row["id"])]}


def find(tx: Tx, state: str | None = None, machine: str | None = None, repo: str | None = None,
         limit: int = 200) -> list[dict[str, Any]]:
    """Assignments (newest queue position first), filtered; ``state`` may be ``live`` or ``active``."""
    states: tuple[str, ...] | None
    if state is None:
        states = None
    elif state == "live":
        states = LIVE
    elif state == "active":
        states = ACTIVE
    elif state in {s.value for s in State}:
        states = (state,)
    else:
        raise Invalid(f"state must be one of {', '.join(s.value for s in State)}, live or active", field="state")
    return [render(r, briefing=False) for r in tx.assignments.find(states, machine, repo, limit)]


# ---- the one way a state changes --------------------------------------------------------

def transition(tx: Tx, row: Row, to: State, now: float, *, by: str | None, **changes: Any) -> Row:
    """Move an assignment to ``to`` (checked against :data:`TRANSITIONS`), apply ``changes``, emit the event.

    Raises ``InvalidTransition`` (409) when the table does not allow it.
    Returns the updated row.
    """
    current = State(row["state"])
    if to not in TRANSITIONS[current]:
        raise InvalidTransition(f"assignment {row['id']} is {current.value}; it cannot become {to.value}",
                                state=current.value)
    changes = {**changes, "state": to.value, "updated_at": now}
    tx.assignments.set(row["id"], changes)
    if to is State.QUEUED:  # queued again, maybe from a state no issue lease's change keeps held_until in
        tx.assignments.refresh_held(row["repo"], row["issue"])
    new = {**row, **changes}
    emit(tx, f"assignment.{to.value}", now, session_id=by, project_key=new["repo"], subject_id=new["id"],
         **_event_payload(new))
    return new


def _event_payload(row: Row) -> dict[str, Any]:
    """The compact payload of an assignment event."""
    return {"assignment_id": row["id"], "attempt": row["attempt"], "repo": row["repo"], "issue": row["issue"],
            "machine": row["ran_on"] or row["machine"], "model": row["model"], "state": row["state"],
            "reason": row["reason"], "cost_usd": row["cost_usd"]}


# ---- queueing ---------------------------------------------------------------------------

def _new_id(tx: Tx) -> str:
    while True:
        candidate = secrets.token_hex(4)
        if tx.assignments.get(candidate) is None:
            return candidate


def check_target(config: Config, machine: str | None, repo: str, requires: list[str]) -> str | None:
    """The machine as spelled in the config (None for any); ``Invalid`` naming what is unknown or unserved.

    Shared by ``assign`` and the planning brain's proposals (``coordhub.core.proposals``).
    """
    if config.repo(repo) is None:
        raise Invalid(f"unknown repo {repo!r}; coordinator.yml has {', '.join(r.name for r in config.repos)}",
                      field="repo")
    if machine is None:
        capable = [m.name for m in config.machines if repo in m.repos and set(requires) <= set(m.capabilities)]
        if not capable:
            needs = f" with capabilities {', '.join(requires)}" if requires else ""
            raise Invalid(f"no machine in coordinator.yml serves repo {repo!r}{needs}", field="repo")
        return None
    m = config.machine(machine)
    if m is None:
        raise Invalid(f"unknown machine {machine!r}; coordinator.yml has "
                      f"{', '.join(x.name for x in config.machines)}", field="machine")
    if repo not in m.repos:
        raise Invalid(f"machine {m.name!r} does not serve repo {repo!r} (its repos: {', '.join(m.repos) or 'none'})",
                      field="repo")
    missing = sorted(set(requires) - set(m.capabilities))
    if missing:
        raise Invalid(f"machine {m.name!r} lacks capabilities {', '.join(missing)}", field="requires")
    return m.name


def check_guidance(text: str) -> None:
    """``Invalid`` (422) when guidance for a worker is over :data:`MAX_GUIDANCE_BYTES`."""
    _check_size(text, MAX_GUIDANCE_BYTES, "guidance")


def check_files_likely(files: list[str]) -> None:
    """``Invalid`` (422) when ``files`` joined by ", " are over :data:`MAX_FILES_LIKELY_BYTES`."""
    _check_size(", ".join(files), MAX_FILES_LIKELY_BYTES, "files_likely")


def _check_size(text: str, limit: int, field: str) -> None:
    size = len(text.encode("utf-8"))
    if size > limit:
        raise Invalid(f"{field} is {size} bytes; the limit is {limit} (put long context in the issue or a file "
                      "the worker reads)", field=field, limit=limit)


def create(tx: Tx, actor: Actor, now: float, *, machine: str | None, repo: str, issue: int,
           model: str | None = None, labels: list[str] | None = None, title: str | None = None,
           briefing: str = "", files_likely: list[str] | None = None, requires: list[str] | None = None,
           budget_usd: float | None = None, wall_clock_seconds: int | None = None,
           dry_run: bool = False, freshness: str | None = None, model_source: str | None = None) -> dict[str, Any]:
    """Queue an assignment of issue ``repo#issue`` (``machine`` None: any capable machine); return it.

    The model is ``model`` > the first of ``labels`` that ``models.labels``
    maps > ``models.default`` (``model_source`` says which). Raises
    ``NotConfigured`` (409) before any config is applied, ``Invalid`` (422)
    for an unknown repo or machine, a machine that does not serve the repo,
    a briefing over :data:`MAX_BRIEFING_BYTES` or ``files_likely`` over
    :data:`MAX_FILES_LIKELY_BYTES`; ``AlreadyAssigned`` (409)
    when the issue has a live assignment; ``UpstreamInFlight`` (409) while a
    repo it ``depends_on`` has work running or in the merge queue;
    ``Forbidden`` for a worker session; ``AssignmentLimit`` (409) when the
    session's live assignments are at :data:`MAX_LIVE_PER_SESSION`.
    ``dry_run`` checks and resolves everything and writes nothing.
    ``freshness`` (:data:`FRESHNESS`) overrides ``workers.auto_pull`` for
    this assignment: ``pull`` fast-forwards stale dependency repos on the
    target machine first, ``skip`` checks none (``coord approve``);
    ``model_source`` names where a given ``model`` came from (``proposal``).
    """
    may_direct(actor)
    if freshness not in FRESHNESS:
        raise Invalid(f"freshness must be one of {', '.join(str(f) for f in FRESHNESS)}", field="freshness")
    config = coordinator.require(tx)
    check_model(config, model)
    requires = requires or []
    spelled = check_target(config, machine, repo, requires)
    _check_size(briefing, MAX_BRIEFING_BYTES, "briefing")
    check_files_likely(files_likely or [])
    check_room(tx, actor, actor.session_id)
    repodeps.check_assign(tx, config, repo)
    existing = tx.assignments.live_for_issue(repo, issue)
    if existing is not None:
        raise AlreadyAssigned(f"{repo}#{issue} already has assignment {existing['id']} ({existing['state']}); "
                              f"stop it first (`coord stop {existing['id']}`) or retry that one",
                              assignment_id=existing["id"], state=existing["state"])
    labels = labels or []
    chosen, source = model_for(config.models, model, labels)
    if source == "flag" and model_source:
        source = model_source
    row: Row = {
        "id": _new_id(tx), "seq": 0, "state": State.QUEUED.value, "attempt": 0, "repo": repo, "issue": issue,
        "title": title, "labels": json.dumps(labels), "machine": spelled, "avoid_machine": None, "ran_on": None,
        "requires": json.dumps(requires), "model": chosen, "model_source": source, "briefing": briefing,
        "briefing_bytes": len(briefing.encode("utf-8")), "files_likely": json.dumps(files_likely or []),
        "branch": branch_for(issue, title),
        "budget_usd": budget_usd if budget_usd is not None else config.workers.max_budget_usd,
        "wall_clock_seconds": wall_clock_seconds or config.workers.wall_clock_seconds,
        "created_by": actor.session_id, "created_at": now, "queued_at": now, "updated_at": now,
        "freshness": freshness,
    }
    position = tx.assignments.queued_count() + 1  # counted on the queue's index: no briefing is read
    if dry_run:
        full = {**_blank(), **row}
        return {**render(full), "dry_run": True, "position": position}
    row["seq"] = tx.assignments.next_seq()
    tx.assignments.add(row)
    full = {**_blank(), **row}
    emit(tx, "assignment.queued", now, session_id=actor.session_id, project_key=repo, subject_id=row["id"],
         **_event_payload(full))
    return {**render(full), "dry_run": False, "position": position}


def check_room(tx: Tx, actor: Actor, created_by: str) -> None:
    """Refuse (:class:`AssignmentLimit`, 409) making one more of ``created_by``'s assignments live when
    :data:`MAX_LIVE_PER_SESSION` of them are queued, dispatched or running; an admin ``actor`` is not bounded."""
    if actor.is_admin:
        return
    if tx.assignments.live_count_of(created_by, MAX_LIVE_PER_SESSION) >= MAX_LIVE_PER_SESSION:
        raise AssignmentLimit(f"{created_by} has {MAX_LIVE_PER_SESSION} assignments queued, dispatched or running, "
                              "the most one session may have at once; let some run, or stop some, first",
                              limit=MAX_LIVE_PER_SESSION, session_id=created_by)


def check_model(config: Config, model: str | None) -> None:
    """Refuse (``Invalid``, 422 on ``model``) a given model no worker could run (:func:`unknown_model`)."""
    if model is None:
        return
    why = unknown_model(config, model)
    if why is not None:
        raise Invalid(why, field="model")


def _blank() -> Row:
    """Every assignment column a new row leaves at its default."""
    return {k: None for k in ("worktree", "claude_session", "resume_session", "guidance", "reason", "turns",
                              "last_tool", "last_file", "progress", "status_line", "result", "wip_commit",
                              "worker_session", "lease_id", "fence", "host_incarnation", "not_before",
                              "dispatched_at", "started_at", "ended_at", "freshness_notes")} | {
        "cost_usd": 0.0, "total_cost_usd": 0.0, "pushed": 0}


# ---- the end of an attempt, and re-queueing ---------------------------------------------------

def end_attempt(tx: Tx, row: Row, outcome: str, reason: str | None, now: float) -> None:
    """Record how the current attempt ended (``outcome``: a state or ``lost``) and retire its worker credential.

    The worker's token is revoked and every lease its session held (the
    issue lease, ``files_likely``) ends in the same transaction.
    """
    if row["attempt"] and row["ran_on"]:
        tx.attempts.set(row["id"], row["attempt"], {"state": outcome, "reason": reason, "ended_at": now,
                                                    "cost_usd": row["cost_usd"], "turns": row["turns"],
                                                    "claude_session": row["claude_session"]})
    if row["worker_session"]:
        tokens.retire(tx, row["worker_session"], now, reason=f"assignment {row['id']} attempt {row['attempt']} "
                                                             f"ended: {outcome}")


def requeue(tx: Tx, row: Row, config: Config, now: float, *, reason: str, lost: bool, by: str | None) -> Row:
    """End the current attempt and queue the assignment again with backoff, or fail it after ``max_retries``.

    Backoff is ``backoff_base × 2^(attempt-1)`` seconds (seed 003's
    ``backoff_base``); the assignment keeps its queue position (FIFO by the
    time it was first queued). With ``auto_reassign`` it may then run on any
    capable machine, another one when possible. ``lost``: the attempt's host
    went away (its late reports are refused from now on).
    """
    end_attempt(tx, row, "lost" if lost else State.FAILED.value, reason, now)
    c = config.concurrency
    if row["attempt"] > c.max_retries:
        return transition(tx, row, State.FAILED, now, by=by, ended_at=now,
                          reason=f"{reason}; gave up after {row['attempt']} attempt(s) (max_retries {c.max_retries})")
    changes: Row = {"reason": reason, "not_before": now + c.backoff_base * 2 ** (row["attempt"] - 1),
                    "worker_session": None, "lease_id": None, "fence": None, "queued_at": now}
    if c.auto_reassign:
        changes.update(machine=None, avoid_machine=row["ran_on"])
    return transition(tx, row, State.QUEUED, now, by=by, **changes)


def lose(tx: Tx, row: Row, config: Config, now: float, reason: str) -> Row:
    """The attempt's host went away (stale, restarted, or never got it): re-queue or fail (see :func:`requeue`)."""
    return requeue(tx, row, config, now, reason=reason, lost=True, by=None)
