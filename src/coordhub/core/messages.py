"""Messages: direct, broadcast and threaded, with per-recipient read and ack state.

Contract §2.6: a message acknowledged to its sender is durable; read and ack
state belongs to each recipient, so one session reading a broadcast never
hides it from another; reading never consumes. Field names are seed 001's
(``from_session``, ``to_session``, ``project_key``, ``subject``, ``body``);
``to_session`` null, omitted or ``"ALL_SESSIONS"`` is a broadcast (seeds 001
and 000 disagree; both are accepted). ``message_type`` is a free label; seed
002's types are the documented set (:data:`KNOWN_TYPES`).
"""

from __future__ import annotations

import uuid
from typing import Any

from coordhub.clock import isoformat
from coordhub.core.events import emit
from coordhub.core.identity import Actor, recipient
from coordhub.errors import Forbidden, Invalid, NotFound
from coordhub.store.base import Row
from coordhub.store.tx import Tx

IMPORTANCE = ("low", "normal", "high", "urgent")
KNOWN_TYPES = ("READY_FOR_REVIEW", "REVIEW_COMPLETE", "REVIEW_FAILED", "CONTRACT_CHANGE_PROPOSED",
               "CONTRACT_APPROVED", "META_CHANGE_REQUEST", "GENERAL", "NOTIFICATION")  # seed 002
BROADCAST = "ALL_SESSIONS"
MAX_INBOX = 500


def render(row: Row) -> dict[str, Any]:
    """The JSON form of a message as seen by one session (its own read/ack state)."""
    return {
        "id": row["id"],
        "seq": row["seq"],
        "from_session": row["from_session"],
        "to_session": row["to_session"] if row["to_session"] is not None else BROADCAST,
        "broadcast": row["to_session"] is None,
        "project_key": row["project_key"],
        "subject": row["subject"],
        "body": row["body"],
        "thread_id": row["thread_id"],
        "reply_to": row["reply_to"],
        "importance": row["importance"],
        "message_type": row["message_type"],
        "requires_ack": bool(row["requires_ack"]),
        "created_at": isoformat(row["created_at"]),
        "read": row.get("read_at") is not None,
        "read_at": isoformat(row.get("read_at")),
        "acked_at": isoformat(row.get("acked_at")),
    }


def send(tx: Tx, actor: Actor, *, to_session: str | None, subject: str, body: str,
         project_key: str | None = None, thread_id: str | None = None, reply_to: str | None = None,
         importance: str = "normal", message_type: str | None = None, requires_ack: bool = False,
         now: float) -> dict[str, Any]:
    """Store a message from the actor; a direct one gets its recipient's unread receipt at once.

    ``reply_to`` must name a message the actor can see; the reply joins its
    thread (``thread_id`` defaults to the parent's thread, else the parent's
    id). Raises ``Invalid`` for an unknown importance, ``NotFound`` for an
    unknown ``reply_to``.
    """
    to = recipient(to_session)
    if importance not in IMPORTANCE:
        raise Invalid(f"importance must be one of {', '.join(IMPORTANCE)}, not {importance!r}", field="importance")
    if reply_to is not None:
        parent = _visible(tx, actor, reply_to)
        thread_id = thread_id or parent["thread_id"] or parent["id"]
    row: Row = {"id": str(uuid.uuid4()), "from_session": actor.session_id, "to_session": to,
           "project_key": project_key, "subject": subject, "body": body, "thread_id": thread_id,
           "reply_to": reply_to, "importance": importance, "message_type": message_type,
           "requires_ack": int(requires_ack), "created_at": now}
    seq = tx.messages.add(row)
    if to is not None:
        tx.messages.add_receipt(to, seq)
    emit(tx, "message.sent", now, session_id=actor.session_id, project_key=project_key, subject_id=row["id"],
         to_session=to or BROADCAST, subject=subject, importance=importance, message_type=message_type,
         thread_id=thread_id, requires_ack=requires_ack)
    return render({**row, "seq": seq})


def _visible(tx: Tx, actor: Actor, message_id: str) -> Row:
    """The message as the actor sees it; 404 if it does not exist or is someone else's direct message."""
    row = tx.messages.get(message_id, actor.session_id)
    if row is None or not (row["to_session"] in (None, actor.session_id)
                           or row["from_session"] == actor.session_id or actor.is_admin):
        raise NotFound(f"no message {message_id!r} for {actor.session_id}")
    return row


def get(tx: Tx, actor: Actor, message_id: str) -> dict[str, Any]:
    """One message the actor sent, received, or that was broadcast; 404 otherwise."""
    return render(_visible(tx, actor, message_id))


def inbox(tx: Tx, session_id: str, *, unread_only: bool, limit: int = 100,
          before_seq: int | None = None) -> list[dict[str, Any]]:
    """A session's messages: unread ones oldest first, or (``unread_only=False``) all, newest first.

    Unread = direct messages to the session without ``read_at`` plus
    broadcasts (not its own) it has not read. Cost grows with the unread count,
    not with history. ``before_seq`` pages the full history.
    """
    limit = max(1, min(limit, MAX_INBOX))
    if not unread_only:
        return [render(r) for r in tx.messages.history(session_id, before_seq or 2**62, limit)]
    cursor = tx.sessions.broadcast_cursor(session_id)
    rows = tx.messages.unread_direct(session_id, limit) + tx.messages.unread_broadcasts(session_id, cursor, limit)
    rows.sort(key=lambda r: r["seq"])
    return [render(r) for r in rows[:limit]]


def unread_count(tx: Tx, session_id: str) -> int:
    """How many messages the session has not read (direct and broadcast)."""
    cursor = tx.sessions.broadcast_cursor(session_id)
    return tx.messages.unread_direct_count(session_id) + tx.messages.unread_broadcast_count(session_id, cursor)


def _recipient_of(actor: Actor, row: Row, verb: str) -> None:
    if row["to_session"] is not None and row["to_session"] != actor.session_id:
        raise Forbidden(f"message {row['id']} is addressed to {row['to_session']}; only it may {verb} it")


def mark_read(tx: Tx, actor: Actor, message_id: str, now: float) -> dict[str, Any]:
    """Mark a message read for the actor only (seed 001 ``PUT …/read``); idempotent."""
    row = _visible(tx, actor, message_id)
    _recipient_of(actor, row, "mark read")
    if row["read_at"] is None:
        tx.messages.mark_read(actor.session_id, row["seq"], now)
        if row["to_session"] is None:
            _advance_broadcast_cursor(tx, actor.session_id)
        emit(tx, "message.read", now, session_id=actor.session_id, subject_id=message_id)
    return render(_visible(tx, actor, message_id))


def ack(tx: Tx, actor: Actor, message_id: str, now: float) -> dict[str, Any]:
    """Acknowledge a message for the actor (also marks it read); idempotent."""
    row = _visible(tx, actor, message_id)
    _recipient_of(actor, row, "ack")
    if row["acked_at"] is None:
        tx.messages.mark_acked(actor.session_id, row["seq"], now)
        if row["to_session"] is None:
            _advance_broadcast_cursor(tx, actor.session_id)
        emit(tx, "message.acked", now, session_id=actor.session_id, subject_id=message_id,
             from_session=row["from_session"])
    return render(_visible(tx, actor, message_id))


def _advance_broadcast_cursor(tx: Tx, session_id: str) -> None:
    """Move the cursor past every broadcast the session has now read, so unread scans stay short."""
    cursor = tx.sessions.broadcast_cursor(session_id)
    first_unread = tx.messages.first_unread_broadcast(session_id, cursor)
    new = first_unread - 1 if first_unread is not None else tx.messages.last_broadcast_seq()
    if new > cursor:
        tx.sessions.set_broadcast_cursor(session_id, new)
