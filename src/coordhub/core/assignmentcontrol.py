"""What people do to an assignment once it is queued: stop it, retry it, resume a stuck one (issue 11 point 3).

Each is a request of a person's session or an admin (:func:`~coordhub.core.assignments.may_direct`), and each
changes the assignment only through :func:`~coordhub.core.assignments.transition`, the one place its states
move. A retry or resume puts an ended assignment back in the queue; both count against the live assignments
of the session that queued it (:func:`~coordhub.core.assignments.check_room`). Seed 003 is the source of
``retry`` (another machine when possible, the model one step up) and of resuming a stuck worker's Claude
session with guidance.
"""

from __future__ import annotations

import json
from typing import Any

from coordhub.core import assignments, coordinator
from coordhub.core.assignments import ACTIVE, LIVE, WAITING, AlreadyAssigned, InvalidTransition, State
from coordhub.core.identity import Actor
from coordhub.core.orchestrator_config import Config, escalate
from coordhub.store.base import Row
from coordhub.store.tx import Tx


def stop(tx: Tx, actor: Actor, assignment_id: str, now: float) -> dict[str, Any]:
    """Cancel a live assignment; a running worker is told to stop in its host's next heartbeat answer.

    ``InvalidTransition`` (409) when it already ended.
    """
    assignments.may_direct(actor)
    row = assignments.get_row(tx, assignment_id)
    if row["state"] not in LIVE:
        raise InvalidTransition(f"assignment {row['id']} already ended ({row['state']})", state=row["state"])
    if row["state"] in ACTIVE:
        assignments.end_attempt(tx, row, State.CANCELLED.value, f"stopped by {actor.session_id}", now)
    return assignments.render(assignments.transition(tx, row, State.CANCELLED, now, by=actor.session_id,
                                                     ended_at=now, reason=f"stopped by {actor.session_id}"))


def _other_machine(config: Config, row: Row) -> bool:
    """Whether a machine other than the last one could run the assignment."""
    needs = set(json.loads(row["requires"] or "[]"))
    return any(m.name != row["ran_on"] and row["repo"] in m.repos and needs <= set(m.capabilities)
               for m in config.machines)


def _reopen(tx: Tx, row: Row, what: str) -> None:
    """Refuse a retry or resume when another assignment took the issue meanwhile."""
    other = tx.assignments.live_for_issue(row["repo"], row["issue"])
    if other is not None and other["id"] != row["id"]:
        raise AlreadyAssigned(f"cannot {what} {row['id']}: {row['repo']}#{row['issue']} has assignment "
                              f"{other['id']} ({other['state']}) now", assignment_id=other["id"],
                              state=other["state"])


def _failed(row: Row) -> bool:
    """Whether the ended assignment's model failed at it, so a retry steps it up the ladder (seed 003 escalates on
    failure: ``coord fix``, "auto-escalation on failure").

    A failed, stuck or needs-input assignment: its host reported that outcome
    of an attempt. A cancelled one: no — a person's stop (``coord stop``,
    whether it was queued, dispatched or running) says nothing of the model;
    a retry of it keeps the model and where it came from (``--model`` steps up
    by hand).
    """
    return bool(row["state"] != State.CANCELLED.value)


def retry(tx: Tx, actor: Actor, assignment_id: str, now: float, model: str | None = None) -> dict[str, Any]:
    """Queue a failed, cancelled, stuck or needs-input assignment again as a fresh attempt (seed 003 ``retry``).

    On another machine when one could run it (seed 003), with the model one
    step up ``models.escalation`` unless ``model`` is given, and only after
    a failure (:func:`_failed`): a person's stop says nothing of the model,
    so that retry keeps the model and where it came from. 409
    for a live or done assignment, when the issue was assigned again
    meanwhile, or when its creator's live assignments are at the bound
    (:func:`~coordhub.core.assignments.check_room`).
    """
    assignments.may_direct(actor)
    row = assignments.get_row(tx, assignment_id)
    if row["state"] not in ("failed", "cancelled", "stuck", "needs_input"):
        raise InvalidTransition(_not_retried(row), state=row["state"], stage=row.get("stage", "work"))
    _reopen(tx, row, "retry")
    assignments.check_room(tx, actor, row["created_by"])
    config = coordinator.require(tx)
    assignments.check_model(config, model)
    if model:
        model, source = model, "flag"
    elif _failed(row):
        model, source = escalate(config.models, row["model"])
    else:
        model, source = row["model"], row["model_source"]
    changes: Row = {"model": model, "model_source": source, "reason": None, "not_before": None,
                    "resume_session": None, "guidance": None, "worktree": None, "ended_at": None,
                    "queued_at": now, "result": None, "started_at": None}
    if row["ran_on"] and _other_machine(config, row):
        changes.update(machine=None, avoid_machine=row["ran_on"])
    return assignments.render(assignments.transition(tx, row, State.QUEUED, now, by=actor.session_id, **changes))


def _not_retried(row: Row) -> str:
    """Why ``retry`` refuses ``row``, and what to run instead when its pipeline stopped for a person.

    A done assignment whose gates stopped shows ``needs_input`` as its stage (``coord status``), the word of the
    state ``retry`` takes: the refusal must tell the two apart, or it reads as a contradiction.
    """
    text = f"assignment {row['id']} is {row['state']}; only a failed, cancelled, stuck or needs_input one is retried"
    if row["state"] == State.DONE.value and row.get("stage") == "needs_input":
        text += (f" (its work is done; its pipeline stopped for a person: {row.get('stage_reason') or 'needs input'}). "
                 f"Run `coord fix {row['id']} --guidance \"…\"` for a fix worker on its branch, or record a "
                 f"person's verdict (`coord stages {row['id']}` shows the gates)")
    return text


def resume_stuck(tx: Tx, actor: Actor, assignment_id: str, guidance: str, now: float) -> dict[str, Any]:
    """Queue a stuck or needs-input assignment to resume its Claude session with ``guidance``.

    Same machine and worktree (a session resumes only from where it ran),
    the model one step up the ladder; the host runs ``claude -p --resume
    <session> "<guidance>"``. One resume at a time per session: the
    assignment is live until it reports again. 409 when it is not stuck or
    needs input, or no Claude session id was reported (then ``retry``), or
    when its creator's live assignments are at the bound (:func:`~coordhub.core.assignments.check_room`).
    """
    assignments.may_direct(actor)
    assignments.check_guidance(guidance)
    row = assignments.get_row(tx, assignment_id)
    if row["state"] not in WAITING:
        raise InvalidTransition(f"assignment {row['id']} is {row['state']}; only a stuck or needs_input one is "
                                "resumed", state=row["state"])
    if not row["claude_session"]:
        raise InvalidTransition(f"assignment {row['id']} never reported its Claude session id, so it cannot be "
                                f"resumed; use `coord retry {row['id']}`", state=row["state"])
    assignments.check_room(tx, actor, row["created_by"])
    config = coordinator.require(tx)
    model, source = escalate(config.models, row["model"])
    return assignments.render(assignments.transition(
        tx, row, State.QUEUED, now, by=actor.session_id, machine=row["ran_on"], avoid_machine=None,
        resume_session=row["claude_session"], guidance=guidance, model=model, model_source=source, started_at=None,
        reason=None, not_before=None, ended_at=None, queued_at=now))
