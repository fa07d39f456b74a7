"""The event log: every mutation appends one event in its own transaction.

Event ids increase strictly in commit order (the store has one writer), so a
reader that remembers the last id it saw can follow the log with no gaps and
no duplicates (push and audit build on this). Kinds are ``noun.verb``:
``lease.granted``, ``lease.released``, ``lease.expired``, ``lease.revoked``,
``lease.renewed``, ``lease.stale_takeover``, ``message.sent``, ``message.read``, ``message.acked``,
``message.redelivered``, ``message.dead_lettered``, ``todo.added``,
``todo.done``, ``workflow.created``, ``workflow.updated``,
``work_item.created``, ``work_item.updated``, ``component.set``,
``halt.set``, ``halt.lifted``, ``token.created``, ``token.revoked``,
``presence.registered``, ``presence.deregistered``, and the client-reported
``guard.*`` and ``hook.*``.
"""

from __future__ import annotations

import json
from typing import Any

from coordhub.clock import isoformat
from coordhub.store.base import Row
from coordhub.store.tx import Tx


def emit(
    tx: Tx,
    kind: str,
    now: float,
    *,
    session_id: str | None,
    project_key: str | None = None,
    subject_id: str | None = None,
    target: str | None = None,
    **payload: Any,
) -> int:
    """Append an event; return its id. ``payload`` must be JSON-serialisable.

    ``target`` is the session the event is *for* (``"*"``: everyone): it
    feeds that session's notifications and, for direct-message events, limits
    who may see the event (see :func:`visible`).
    """
    return tx.events.append({
        "kind": kind,
        "session_id": session_id,
        "project_key": project_key,
        "subject_id": subject_id,
        "target": target,
        "payload": json.dumps(payload, separators=(",", ":"), default=str),
        "created_at": now,
    })


def visible(row: Row, session_id: str, is_admin: bool) -> bool:
    """Whether a session may see an event: direct-message events only by their two parties (and admins)."""
    if is_admin or not row["kind"].startswith("message.") or row["target"] in (None, "*"):
        return True
    return session_id in (row["target"], row["session_id"])


def render(row: Row) -> dict[str, Any]:
    """The JSON form of an event."""
    return {"id": row["id"], "kind": row["kind"], "session_id": row["session_id"],
            "project_key": row["project_key"], "subject_id": row["subject_id"], "target": row["target"],
            "created_at": isoformat(row["created_at"]), "payload": json.loads(row["payload"])}


def matches(row: Row, kinds: tuple[str, ...] = (), project_key: str | None = None,
            to_session: str | None = None, session_id: str | None = None) -> bool:
    """Whether an event passes the subscription filters (``kinds`` are prefixes)."""
    return ((not kinds or row["kind"].startswith(kinds))
            and (project_key is None or row["project_key"] == project_key)
            and (to_session is None or row["target"] in (to_session, "*"))
            and (session_id is None or row["session_id"] == session_id))
