"""Merge entries: one time an assignment's branch entered its merge queue; its states, its JSON form.

An entry is a row (``merge_entries``) keyed by a short random id; ``seq`` is
its FIFO position in its (repo, target branch) queue
(:mod:`coordhub.core.mergequeue`), kept across retries and fix rounds.
States are a table (:data:`TRANSITIONS`), declared here once; every change
goes through :func:`transition`, which checks it against the table and emits
``merge.<state>``.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import assignments
from coordhub.core.events import emit
from coordhub.errors import NotFound
from coordhub.store.base import Row
from coordhub.store.tx import Tx


class State(enum.StrEnum):
    """A merge entry's state."""

    QUEUED = "queued"
    RUNNING = "running"
    MERGED = "merged"
    FIXING = "fixing"
    NEEDS_INPUT = "needs_input"
    CANCELLED = "cancelled"


S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED, S.FIXING, S.NEEDS_INPUT}),  # the last two: gates disagree
    S.RUNNING: frozenset({S.MERGED, S.QUEUED, S.FIXING, S.NEEDS_INPUT, S.CANCELLED}),
    S.FIXING: frozenset({S.QUEUED, S.NEEDS_INPUT, S.CANCELLED}),
    S.NEEDS_INPUT: frozenset({S.QUEUED, S.CANCELLED}),
    S.CANCELLED: frozenset(),
    S.MERGED: frozenset(),
}
IN_QUEUE = ("queued", "running")
LIVE = ("queued", "running", "fixing", "needs_input")


def render(row: Row) -> dict[str, Any]:
    """The JSON form of an entry."""
    return {"id": row["id"], "seq": row["seq"], "assignment_id": row["assignment_id"], "repo": row["repo"],
            "target": row["target"], "branch": row["branch"], "issue": row["issue"], "title": row["title"],
            "method": row["method"], "state": row["state"], "attempt": row["attempt"], "machine": row["machine"],
            "batch_id": row["batch_id"], "batch_cap": row["batch_cap"], "gated_sha": row["gated_sha"],
            "tip": row["tip"],
            "merged_sha": row["merged_sha"], "pr_number": row["pr_number"], "pr_url": row["pr_url"],
            "conflict_fixes": row["conflict_fixes"], "red_fixes": row["red_fixes"], "reason": row["reason"],
            "evidence": _evidence(row["evidence"]), "created_by": row["created_by"],
            "created_at": isoformat(row["created_at"]), "started_at": isoformat(row["started_at"]),
            "ended_at": isoformat(row["ended_at"]), "updated_at": isoformat(row["updated_at"])}


def _evidence(text: str | None) -> Any:
    """The stored evidence (JSON text) as JSON, or None. A hub before 9b93690 cut the text of a long one at 16,000
    characters, which could leave it unterminated; such a row outlives the upgrade, and reading it answered 500
    for the entry and every list holding it: it reads as ``{"unreadable": <its last 4,000 characters>}``."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:  # JSONDecodeError: cut inside a value
        return {"unreadable": text[-4000:]}


def transition(tx: Tx, row: Row, to: State, now: float, *, by: str | None, **changes: Any) -> Row:
    """Move an entry to ``to`` (checked against :data:`TRANSITIONS`), apply ``changes``, emit ``merge.<state>``.

    ``assignments.InvalidTransition`` (409) when the table does not allow it.
    """
    current = State(row["state"])
    if to not in TRANSITIONS[current]:
        raise assignments.InvalidTransition(f"merge entry {row['id']} is {current.value}; it cannot become "
                                            f"{to.value}", state=current.value)
    changes = {**changes, "state": to.value, "updated_at": now}
    tx.merge_entries.set(row["id"], changes)
    new = {**row, **changes}
    emit(tx, f"merge.{to.value}", now, session_id=by, project_key=new["repo"], subject_id=new["id"],
         entry_id=new["id"], assignment_id=new["assignment_id"], repo=new["repo"], target=new["target"],
         branch=new["branch"], issue=new["issue"], state=new["state"], reason=new["reason"],
         merged_sha=new["merged_sha"], machine=new["machine"])
    return new


def get_row(tx: Tx, entry_id: str) -> Row:
    """The entry; ``NotFound`` when there is none."""
    row = tx.merge_entries.get(assignments.check_id(entry_id))
    if row is None:
        raise NotFound(f"no merge entry {entry_id!r}")
    return row
