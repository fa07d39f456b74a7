"""Notifications (seed 002's ``coord_get_notifications``), as a cursor over the caller's own events.

A session's notifications are the events addressed to it (``target`` is the
session or ``*``) that it did not cause: messages sent to it, redeliveries,
reads and acks of what it sent, dead letters, its leases expiring or being
revoked, halts. Unlike seed 002's destructive pop, reading never destroys:
the caller acks up to an event id and the cursor moves forward, so a session
that crashes mid-read loses nothing.
"""

from __future__ import annotations

from typing import Any

from coordhub.core import events, retention
from coordhub.core.identity import Actor
from coordhub.errors import Invalid
from coordhub.store.tx import Tx

MAX_LIMIT = 1000


def pending(tx: Tx, session_id: str, limit: int = 100) -> dict[str, Any]:
    """Events for the session after its notification cursor, oldest first, that cursor, and ``gap``.

    ``gap`` is ``{"after": cursor, "pruned_through": N}`` when events after
    the cursor were pruned by retention (some of them may have been for the
    session: it was not live while they aged out), else None.
    """
    row = tx.sessions.get(session_id)
    cursor = int(row["notify_cursor"]) if row else 0
    rows = tx.events.for_target(session_id, cursor, max(1, min(limit, MAX_LIMIT)))
    return {"cursor": cursor, "events": [events.render(r) for r in rows], "gap": retention.gap(tx, cursor)}


def ack(tx: Tx, actor: Actor, up_to: int, now: float) -> dict[str, Any]:
    """Advance the actor's cursor to event ``up_to`` (never backwards); ``Invalid`` beyond the log's end."""
    last = tx.events.last_id()
    if up_to < 0 or up_to > last:
        raise Invalid(f"up_to must be an event id between 0 and {last}", field="up_to")
    row = tx.sessions.get(actor.session_id)
    cursor = max(int(row["notify_cursor"]) if row else 0, up_to)
    tx.sessions.set_cursor(actor.session_id, "notify_cursor", cursor)
    return {"cursor": cursor}
