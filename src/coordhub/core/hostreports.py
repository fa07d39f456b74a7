"""What a host reports on the attempt it runs: state, telemetry, record fields, and the relayed log (issue 11).

The host running an attempt (``<machine>/agent``) or an admin reports,
naming the host incarnation it speaks for; a report from an incarnation that
is not the machine's current one (a newer agent registered) is refused with
409 ``stale_incarnation``, and one on an attempt that is not the current
one, or one the hub gave up as lost, with 409 ``stale_attempt``; either
changes nothing (see
:mod:`coordhub.core.assignments`, whose one :func:`~coordhub.core.assignments.transition`
every state change here goes through).

Every session may read what is reported (the log, the reason, the progress),
and a worker runs Bash in a repository anyone may have written to: the free
text a host sends is stored with its tokens masked
(:func:`coordhub.core.redaction.redact`), and the log is masked again when
read (logs relayed before the masking).
"""

from __future__ import annotations

import json
import math
from typing import Any

from coordhub.core import coordinator, hosts
from coordhub.core.assignments import (
    ACTIVE,
    MAX_FRESHNESS_NOTES,
    MAX_LOG_CHARS,
    MAX_LOG_READ_CHARS,
    RATE_LIMIT_REASON,
    LogGap,
    StaleAttempt,
    State,
    end_attempt,
    get_row,
    may_act_for_host,
    render,
    requeue,
    transition,
)
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.core.presence import StaleIncarnation
from coordhub.core.redaction import CONTEXT, redact, redact_after, redact_opt
from coordhub.store.base import Row
from coordhub.store.tx import Tx

HOST_WENT_AWAY = ("host_restarted", "host_stopped")
"""Reasons of a host's ``failed`` report that say its host, not the work, ended the attempt: a restarted host
found an attempt whose claude never started (``host_restarted``), or the host was stopped (SIGTERM, a service
restart) and stopped its workers with their work saved (``host_stopped``). The hub takes either as it takes a host
it lost (stale, or restarted under kill -9): the attempt is ``lost`` and the assignment re-queued with backoff,
failed after ``max_retries``. Before, a graceful stop failed its assignments for good while kill -9 re-queued them."""


def _current_attempt(tx: Tx, actor: Actor, assignment_id: str, attempt: int, now: float,
                     incarnation: int | None = None) -> Row:
    """The assignment, if ``attempt`` is its current attempt and ``actor`` may report on it; else 403/409.

    With ``incarnation`` (a report), also that it is the machine's current host incarnation
    (``StaleIncarnation``, 409, checked first: a replaced agent learns it) and :func:`_adopt`; a log append names
    none.
    """
    row = get_row(tx, assignment_id)
    if row["ran_on"] is None:
        raise StaleAttempt(f"assignment {row['id']} was never dispatched", current=row["attempt"])
    runs = {a["attempt"]: a for a in tx.attempts.of(row["id"])}
    machine = runs[attempt]["machine"] if attempt in runs else row["ran_on"]
    may_act_for_host(actor, machine)
    host = None if incarnation is None else hosts.current(tx, actor, coordinator.require(tx), machine, incarnation)
    if attempt != row["attempt"]:
        raise StaleAttempt(f"attempt {attempt} of assignment {row['id']} is not its current attempt "
                           f"({row['attempt']}); the report is ignored", current=row["attempt"])
    if runs.get(attempt, {}).get("state") == "lost":
        raise StaleAttempt(f"attempt {attempt} of assignment {row['id']} was given up as lost "
                           f"({runs[attempt]['reason']}); the report is ignored", current=row["attempt"])
    return row if host is None else _adopt(tx, row, host, now)


def _adopt(tx: Tx, row: Row, host: Row, now: float) -> Row:
    """The assignment, reported on by ``host`` (its current incarnation, :func:`coordhub.core.hosts.current`):
    adopted by that incarnation when an older one of the machine ran it; ``StaleIncarnation`` (409) when a newer one
    did.

    An agent that a newer one replaced must not end (or pass) what it ran:
    ``hosts.current`` refused it before this. The attempt's own incarnation
    must be the reporter's too, or an older one
    of the same machine when the current incarnation has not listed it in a
    heartbeat yet (a host that registered again after a config change
    reports before its next heartbeat): the report then adopts the attempt,
    as that heartbeat would (:func:`coordhub.core.hosts.heartbeat`). An
    attempt recorded under a newer incarnation than the reporter's is refused.
    """
    incarnation = int(host["incarnation"])
    recorded = row["host_incarnation"]
    if recorded == incarnation or row["state"] not in ACTIVE:
        return row
    if recorded is not None and recorded > incarnation:
        raise StaleIncarnation(f"attempt {row['attempt']} of assignment {row['id']} runs under incarnation "
                               f"{recorded} of {host['machine']}, not {incarnation}; the report is ignored",
                               current=incarnation, dispatched_to=recorded)
    tx.assignments.set(row["id"], {"host_incarnation": incarnation, "updated_at": now})
    emit(tx, "assignment.adopted", now, session_id=None, project_key=row["repo"], subject_id=row["id"],
         assignment_id=row["id"], attempt=row["attempt"], machine=host["machine"], incarnation=incarnation)
    return {**row, "host_incarnation": incarnation, "updated_at": now}


def _telemetry_changes(telemetry: dict[str, Any]) -> Row:
    """Columns a report's telemetry updates (its Claude session, turns, last tool and file, progress, cost, result)."""
    changes: Row = {}
    for src, col in (("session_id", "claude_session"), ("turns", "turns"), ("last_tool", "last_tool"),
                     ("last_file", "last_file"), ("progress", "progress"), ("status_line", "status_line")):
        value = telemetry.get(src)
        if value is not None:
            changes[col] = redact(value) if isinstance(value, str) else value
    if telemetry.get("cost_usd") is not None:  # cumulative for the attempt: the latest result wins
        changes["cost_usd"] = float(telemetry["cost_usd"])
    if telemetry.get("result") is not None:
        changes["result"] = json.dumps(telemetry["result"])
    return changes


def _record_changes(extra: dict[str, Any]) -> Row:
    """Columns a report's record fields update: worktree, branch, wip commit, changed files, pushed, freshness."""
    changes: Row = {}
    for key in ("worktree", "branch", "wip_commit"):
        if extra.get(key) is not None:
            changes[key] = extra[key]
    if extra.get("changed_files") is not None:  # what the branch changed, for smoke_tests.capability_rules
        changes["changed_files"] = json.dumps(list(extra["changed_files"]))
    if extra.get("pushed") is not None:
        changes["pushed"] = int(bool(extra["pushed"]))
    if extra.get("freshness") is not None:  # what the host's freshness check found, one note per dependency repo
        changes["freshness_notes"] = json.dumps([redact(str(n)[:500]) for n in extra["freshness"]]
                                                [:MAX_FRESHNESS_NOTES])
    return changes


def report(tx: Tx, actor: Actor, assignment_id: str, attempt: int, now: float, *, incarnation: int | None,
           state: str | None = None, reason: str | None = None, telemetry: dict[str, Any] | None = None,
           **extra: Any) -> dict[str, Any]:
    """Apply a host's report on the current attempt, sent by host incarnation ``incarnation``; return the
    assignment.

    ``state`` (one of :data:`REPORTED`) moves it on; ``telemetry`` updates
    what is shown (cost is the attempt's running total); ``extra`` carries
    ``worktree``, ``branch``, ``pushed``, ``wip_commit``. Rules:

    * ``done`` with ``result.is_error`` is recorded ``failed`` (an auth
      failure looks like success, research §1);
    * ``failed`` with a reason starting ``files_busy`` is re-queued (attempt
      counts, backoff, failed after ``max_retries``); one starting
      ``host_restarted`` (a restarted host found an attempt whose claude never
      started, and the hub adopted it) or ``host_stopped`` (the host was
      stopped and stopped its workers) is lost and re-queued as the hub's own
      ``host_restarted`` path does (the same count, backoff and
      ``max_retries``; :data:`HOST_WENT_AWAY`); any other failure is final
      unless ``auto_reassign``;
    * a ``rate_limited_for`` (seconds from now, from a host's own clock)
      pauses dispatch fleet-wide for that long on the hub's clock; else a
      ``rate_limited_until`` (absolute: the API's reset time, or what hosts
      before ``rate_limited_for`` sent) until then; both capped at
      :data:`~coordhub.core.coordinator.MAX_PAUSE_SECONDS` from now;
    * on an assignment that already ended (stopped meanwhile) the record
      fields are kept and the state is not changed; but a report on an ended
      attempt pauses nothing, and one on a ``done`` assignment changes none of
      the record fields (:func:`_record_changes`: the branch the pipeline tests
      and merges, and may delete, is the one reported before: review).

    ``StaleIncarnation`` (409) from an incarnation that is not the machine's
    current one, or when a newer one ran the attempt (:func:`_adopt`); ``StaleAttempt`` (409) for
    another attempt or one given up as lost.

    ``incarnation`` None (deprecated: an agent from before reports named one, during a rolling upgrade): the
    report stands for the machine's current incarnation, checked as before reports named one (the attempt, and
    that ``actor`` may act for the machine), and adopts nothing: the next heartbeat adopts what the host runs.
    """
    telemetry = telemetry or {}
    reason = redact_opt(reason)
    row = _current_attempt(tx, actor, assignment_id, attempt, now, incarnation)
    ended = row["state"] not in ACTIVE
    changes = _telemetry_changes(telemetry)
    if row["state"] != State.DONE.value:
        changes.update(_record_changes(extra))
    if changes.get("cost_usd") is not None:
        tx.attempts.set(row["id"], attempt, {"cost_usd": changes["cost_usd"]})
        changes["total_cost_usd"] = tx.attempts.total_cost(row["id"])
    until = telemetry.get("rate_limited_until")
    left = telemetry.get("rate_limited_for")
    if isinstance(left, int | float) and not isinstance(left, bool) and math.isfinite(left):
        until = now + min(max(0.0, float(left)), coordinator.MAX_PAUSE_SECONDS)  # the hub's clock, not the host's
    if until is not None and not ended:  # the limit an ended run met is no news; its final report repeats it
        coordinator.pause(tx, float(until), f"{RATE_LIMIT_REASON} reported by {row['ran_on']} (assignment "
                          f"{row['id']})", now, by=actor.session_id)
    if changes:
        tx.assignments.set(row["id"], {**changes, "updated_at": now})
        row = {**row, **changes, "updated_at": now}
    if ended:  # ended meanwhile: keep what it saved, change nothing else
        return render(row)
    if state is None or state == "running":
        return render(_running(tx, row, actor, now, bool(changes)))
    return render(_finish(tx, row, actor, State(state), reason, now))


def _running(tx: Tx, row: Row, actor: Actor, now: float, changed: bool) -> Row:
    if row["state"] == State.DISPATCHED.value:
        tx.attempts.set(row["id"], row["attempt"], {"state": "running", "started_at": now})
        return transition(tx, row, State.RUNNING, now, by=actor.session_id, started_at=now)
    if changed:
        emit(tx, "assignment.telemetry", now, session_id=actor.session_id, project_key=row["repo"],
             subject_id=row["id"], assignment_id=row["id"], attempt=row["attempt"], turns=row["turns"],
             cost_usd=row["cost_usd"], last_tool=row["last_tool"], last_file=row["last_file"],
             status_line=row["status_line"])
    return row


def _finish(tx: Tx, row: Row, actor: Actor, to: State, reason: str | None, now: float) -> Row:
    result = (json.loads(row["result"]) if row["result"] else None) or {}
    if to is State.DONE and result.get("is_error"):
        to = State.FAILED
        reason = reason or ("claude reported an error: " + "/".join(
            str(result.get(k)) for k in ("subtype", "terminal_reason") if result.get(k)))
    config = coordinator.require(tx)
    by = actor.session_id
    if to is State.FAILED and (reason or "").startswith("files_busy"):
        return requeue(tx, row, config, now, reason=reason or "files_busy", lost=False, by=by)
    if to is State.FAILED and (reason or "").startswith(HOST_WENT_AWAY):
        return requeue(tx, row, config, now, reason=reason or HOST_WENT_AWAY[0], lost=True, by=by)
    if to is State.FAILED and config.concurrency.auto_reassign and row["attempt"] <= config.concurrency.max_retries:
        end_attempt(tx, row, to.value, reason, now)
        return transition(tx, row, State.QUEUED, now, by=by, reason=reason, machine=None,
                          avoid_machine=row["ran_on"], worker_session=None, lease_id=None, fence=None,
                          queued_at=now, not_before=now + config.concurrency.backoff_base * 2 ** (row["attempt"] - 1))
    end_attempt(tx, row, to.value, reason, now)
    ended = now if to in (State.DONE, State.FAILED) else None
    return transition(tx, row, to, now, by=by, reason=reason, ended_at=ended, worker_session=None)


# ---- the relayed log -------------------------------------------------------------------

def append_log(tx: Tx, actor: Actor, assignment_id: str, attempt: int, offset: int, text: str,
               now: float) -> dict[str, int]:
    """Append the host's filtered log at character ``offset``; return ``{size}`` (characters relayed so far).

    A chunk that overlaps what is held (a retry) adds only its new part; one
    that starts past the end raises ``LogGap`` (409) with ``size``. Only the
    newest :data:`MAX_LOG_CHARS` (about 1 MiB) are kept. Tokens in ``text``
    are masked (:func:`~coordhub.core.redaction.redact_after`, same length),
    with the end of what is stored: a token the previous chunk cut has its rest
    masked here. ``StaleAttempt`` for another attempt.
    """
    row = _current_attempt(tx, actor, assignment_id, attempt, now)
    size = tx.assignment_logs.size(row["id"])
    if offset > size:
        raise LogGap(f"the log of {row['id']} holds {size} characters; send from there, not {offset}", size=size)
    # masking keeps the length: the offsets stay the host's; the stored end completes a token cut at its end
    new = text[size - offset:]
    fresh = redact_after(_stored_before(tx, row["id"], size), new) if new else ""
    if fresh:
        tx.assignment_logs.append(row["id"], size, fresh, now)
        size += len(fresh)
        tx.assignment_logs.trim(row["id"], size - MAX_LOG_CHARS)
    return {"size": size}


def _stored_before(tx: Tx, assignment_id: str, end: int) -> str:
    """The stored log's last :data:`~coordhub.core.redaction.CONTEXT` characters before offset ``end`` (fewer at
    its start or after dropped chunks), for :func:`~coordhub.core.redaction.redact_after`."""
    at, parts = max(0, end - CONTEXT), list[str]()
    while at < end:  # a read stops after 64 chunks: a window of tiny ones takes more than one
        chunks = [c for c in tx.assignment_logs.read(assignment_id, at, CONTEXT) if int(c["start"]) < end]
        if not chunks:
            break
        if int(chunks[0]["start"]) > at:  # the chunks before were dropped: the log starts again here
            parts.clear()
        for c in chunks:
            start, text = int(c["start"]), str(c["text"])
            parts.append(text[max(0, at - start):end - start])
            at = start + len(text)
    return "".join(parts)


def read_log(tx: Tx, assignment_id: str, offset: int) -> dict[str, Any]:
    """The relayed log from character ``offset``: ``{text, offset, size, truncated}``.

    ``offset`` in the answer is where ``text`` starts: later than asked when
    the older part was dropped (``truncated: true``). At most
    :data:`MAX_LOG_READ_CHARS` per call; ask again from ``offset + len(text)``.
    Tokens are masked here too: what was stored before the masking, and the
    rest of a token cut at a chunk's end, stored before the masking of a chunk
    looked at the stored end.
    """
    row = get_row(tx, assignment_id)
    size = tx.assignment_logs.size(row["id"])
    chunks = tx.assignment_logs.read(row["id"], offset, MAX_LOG_READ_CHARS)
    if not chunks:
        return {"text": "", "offset": min(offset, size), "size": size, "truncated": False, "state": row["state"]}
    start = max(offset, int(chunks[0]["start"]))
    first = int(chunks[0]["start"])
    text = redact_after(_stored_before(tx, row["id"], first), "".join(c["text"] for c in chunks))[start - first:]
    return {"text": text, "offset": start, "size": size, "truncated": start > offset, "state": row["state"]}

