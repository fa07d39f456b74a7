"""Messages and per-recipient receipts (delivery, read and ack state).

Direct messages get a receipt row at send time, so a session's unread direct
messages are an index range (``receipts_unread``). Broadcasts are stored once
and never copied; a session's unread broadcasts are those above its
``broadcast_cursor`` that it has no read receipt for, so both costs grow with
what is unread, not with history. The same holds for "not yet shown to the
agent" (``delivered_at``), with ``broadcast_shown_cursor``.

Incarnations: a direct message sent to a live incarnation records it in
``to_incarnation``. Unread is unread whichever incarnation reads it: the
queries here do not filter by it; the core flags what a later incarnation is
shown (:func:`coordhub.core.messages.unshown`).
"""

from __future__ import annotations

from coordhub.store.base import Row
from coordhub.store.tables.base import Table

_COLS = ("m.seq, m.id, m.from_session, m.to_session, m.project_key, m.subject, m.body, m.thread_id, "
         "m.reply_to, m.importance, m.message_type, m.requires_ack, m.created_at, m.to_incarnation, "
         "m.ack_wait_seconds, m.max_deliveries, m.escalate_to, m.queued_at, m.origin_id")
_RECEIPT = "r.read_at, r.acked_at, r.delivered_at, r.deliveries, r.ack_deadline, r.dead_at"
_DIRECT = f"SELECT {_COLS}, {_RECEIPT} FROM receipts r JOIN messages m ON m.seq = r.message_seq "
_BROADCAST = (f"SELECT {_COLS}, {_RECEIPT} FROM messages m LEFT JOIN receipts r "
              "ON r.message_seq = m.seq AND r.session_id = ? ")
_SEEN_BY = "(m.to_session IS NULL OR m.to_session = ? OR m.from_session = ?)"  # a broadcast, to or from a session


class Messages(Table):
    """The ``messages`` and ``receipts`` tables."""

    def add(self, row: Row) -> int:
        """Insert a message; return its ``seq`` (increasing in commit order)."""
        return self.insert_returning("messages", row, "seq")

    def add_receipt(self, session_id: str, seq: int, ack_deadline: float | None) -> None:
        """Create the unread receipt of a direct message for its recipient (deferred: see ``Executor.defer``)."""
        self.ex.defer("INSERT INTO receipts (session_id, message_seq, ack_deadline) VALUES (?, ?, ?)",
                        (session_id, seq, ack_deadline))

    def add_settled_receipt(self, session_id: str, seq: int, read_at: float | None, acked_at: float | None) -> None:
        """Give a session a receipt already read and/or acked (an imported message's state); never un-reads or
        un-acks one that exists, so applying the same state twice changes nothing."""
        self.ex.execute(
            "INSERT INTO receipts (session_id, message_seq, read_at, acked_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (session_id, message_seq) DO UPDATE SET read_at = COALESCE(receipts.read_at, "
            "excluded.read_at), acked_at = COALESCE(receipts.acked_at, excluded.acked_at)",
            (session_id, seq, read_at, acked_at))

    def get(self, message_id: str, session_id: str) -> Row | None:
        """A message with ``session_id``'s receipt fields (None where it has no receipt)."""
        return self.ex.one(_BROADCAST + "WHERE m.id = ?", (session_id, message_id))

    def by_seq(self, seq: int, session_id: str) -> Row | None:
        """A message by seq with ``session_id``'s receipt fields."""
        return self.ex.one(_BROADCAST + "WHERE m.seq = ?", (session_id, seq))

    def unread_direct(self, session_id: str, limit: int, after_seq: int = 0) -> list[Row]:
        """Oldest-first unread direct messages of a session above ``after_seq``."""
        return self.ex.all(
            _DIRECT + "WHERE r.session_id = ? AND r.read_at IS NULL AND m.to_session IS NOT NULL "
            "AND r.message_seq > ? ORDER BY r.message_seq LIMIT ?",
            (session_id, after_seq, limit))

    def unread_broadcasts(self, session_id: str, after_seq: int, limit: int) -> list[Row]:
        """Oldest-first broadcasts above ``after_seq`` not sent by and not yet read by the session."""
        return self.ex.all(
            _BROADCAST + "WHERE m.to_session IS NULL AND m.seq > ? AND m.from_session <> ? AND r.read_at IS NULL "
            "ORDER BY m.seq LIMIT ?",
            (session_id, after_seq, session_id, limit))

    def unshown_direct(self, session_id: str, limit: int, after_seq: int = 0) -> list[Row]:
        """Oldest-first unread direct messages above ``after_seq`` not yet shown (delivered) to the session's
        agent."""
        return self.ex.all(
            _DIRECT + "WHERE r.session_id = ? AND r.delivered_at IS NULL AND r.read_at IS NULL "
            "AND m.to_session IS NOT NULL AND r.message_seq > ? ORDER BY r.message_seq LIMIT ?",
            (session_id, after_seq, limit))

    def unshown_count(self, session_id: str, after_seq: int) -> int:
        """How many messages :meth:`unshown_direct` and :meth:`unshown_broadcasts` (above ``after_seq``) would
        give in all; no message text is read."""
        direct = self.ex.one(
            "SELECT COUNT(*) AS n FROM receipts r JOIN messages m ON m.seq = r.message_seq WHERE r.session_id = ? "
            "AND r.delivered_at IS NULL AND r.read_at IS NULL AND m.to_session IS NOT NULL",
            (session_id,))
        broadcast = self.ex.one(
            "SELECT COUNT(*) AS n FROM messages m LEFT JOIN receipts r ON r.message_seq = m.seq AND r.session_id = ? "
            "WHERE m.to_session IS NULL AND m.seq > ? AND m.from_session <> ? AND r.read_at IS NULL "
            "AND r.delivered_at IS NULL", (session_id, after_seq, session_id))
        return (int(direct["n"]) if direct else 0) + (int(broadcast["n"]) if broadcast else 0)

    def unshown_broadcasts(self, session_id: str, after_seq: int, limit: int) -> list[Row]:
        """Oldest-first broadcasts above ``after_seq`` (not its own) neither shown to nor read by the session."""
        return self.ex.all(
            _BROADCAST + "WHERE m.to_session IS NULL AND m.seq > ? AND m.from_session <> ? "
            "AND r.read_at IS NULL AND r.delivered_at IS NULL ORDER BY m.seq LIMIT ?",
            (session_id, after_seq, session_id, limit))

    def history(self, session_id: str, before_seq: int, limit: int) -> list[Row]:
        """Newest-first messages to a session (direct and broadcast, read or not) below ``before_seq``."""
        direct = _DIRECT + ("WHERE r.session_id = ? AND m.to_session IS NOT NULL AND r.message_seq < ? "
                            "ORDER BY r.message_seq DESC LIMIT ?")
        broadcast = _BROADCAST + "WHERE m.to_session IS NULL AND m.seq < ? ORDER BY m.seq DESC LIMIT ?"
        return self.ex.all(
            f"SELECT * FROM (SELECT * FROM ({direct}) d UNION ALL SELECT * FROM ({broadcast}) b) u "
            "ORDER BY seq DESC LIMIT ?",
            (session_id, before_seq, limit, session_id, before_seq, limit, limit))

    def thread(self, session_id: str, thread_id: str, after_seq: int, limit: int) -> list[Row]:
        """Oldest-first messages of thread ``thread_id`` above ``after_seq`` that ``session_id`` sent, was sent,
        or that were broadcast, with its receipt fields; empty when there are none.

        A thread's messages are those whose ``thread_id`` it is, and the message whose ``id`` it is (the first of
        a thread a reply started). Each part is read in seq order along an index of the thread and the recipient
        (``messages_thread_to``: broadcasts, messages to the session) or the sender (``messages_thread_from``),
        at most ``limit`` rows each: the cost grows with what the session may see of the thread above
        ``after_seq``, not with the thread's other messages.
        """
        broadcasts = _BROADCAST + "WHERE m.thread_id = ? AND m.to_session IS NULL AND m.seq > ? ORDER BY m.seq LIMIT ?"
        received = _BROADCAST + "WHERE m.thread_id = ? AND m.to_session = ? AND m.seq > ? ORDER BY m.seq LIMIT ?"
        # its broadcasts and messages to itself are in the parts above (NULL <> ? is not true)
        sent = (_BROADCAST + "WHERE m.thread_id = ? AND m.from_session = ? AND m.to_session <> ? AND m.seq > ? "
                "ORDER BY m.seq LIMIT ?")
        # the message named as the thread, unless it is a member already (it would be answered twice)
        first = (_BROADCAST + "WHERE m.id = ? AND m.seq > ? AND (m.thread_id IS NULL OR m.thread_id <> ?) "
                 f"AND {_SEEN_BY}")
        return self.ex.all(
            f"SELECT * FROM (SELECT * FROM ({broadcasts}) b UNION ALL SELECT * FROM ({received}) r "
            f"UNION ALL SELECT * FROM ({sent}) s UNION ALL SELECT * FROM ({first}) f) u ORDER BY seq LIMIT ?",
            (session_id, thread_id, after_seq, limit,
             session_id, thread_id, session_id, after_seq, limit,
             session_id, thread_id, session_id, session_id, after_seq, limit,
             session_id, thread_id, after_seq, thread_id, session_id, session_id, limit))

    def _upsert(self, session_id: str, seq: int, column: str, now: float) -> None:
        self.ex.execute(
            f"INSERT INTO receipts (session_id, message_seq, {column}) VALUES (?, ?, ?) "
            f"ON CONFLICT (session_id, message_seq) DO UPDATE SET {column} = COALESCE(receipts.{column}, "
            f"excluded.{column})",
            (session_id, seq, now))

    def mark_read(self, session_id: str, seq: int, now: float) -> None:
        """Set the session's ``read_at`` on a message (creating the receipt for a broadcast); idempotent."""
        self._upsert(session_id, seq, "read_at", now)

    def mark_delivered(self, session_id: str, seq: int, now: float) -> None:
        """Set ``delivered_at``: the message was shown to the session's agent; idempotent."""
        self._upsert(session_id, seq, "delivered_at", now)

    def mark_acked(self, session_id: str, seq: int, now: float) -> None:
        """Set ``acked_at`` (and ``read_at``) of the session's receipt; idempotent."""
        self._upsert(session_id, seq, "read_at", now)
        self._upsert(session_id, seq, "acked_at", now)

    def first_unread_broadcast(self, session_id: str, after_seq: int) -> int | None:
        """The lowest seq of an unread broadcast (not the session's own) above ``after_seq``, or None."""
        row = self.unread_broadcasts(session_id, after_seq, 1)
        return int(row[0]["seq"]) if row else None

    def first_unshown_broadcast(self, session_id: str, after_seq: int) -> int | None:
        """The lowest seq of an unshown broadcast (not the session's own) above ``after_seq``, or None."""
        row = self.unshown_broadcasts(session_id, after_seq, 1)
        return int(row[0]["seq"]) if row else None

    def last_broadcast_seq(self) -> int:
        """The highest broadcast seq so far, 0 when there is none."""
        row = self.ex.one("SELECT MAX(seq) AS seq FROM messages WHERE to_session IS NULL")
        return int(row["seq"]) if row and row["seq"] is not None else 0

    def unread_direct_count(self, session_id: str) -> int:
        """How many direct messages the session has not read."""
        row = self.ex.one("SELECT COUNT(*) AS n FROM receipts r JOIN messages m ON m.seq = r.message_seq "
                          "WHERE r.session_id = ? AND r.read_at IS NULL AND m.to_session IS NOT NULL",
                          (session_id,))
        return int(row["n"]) if row else 0

    def unread_broadcast_count(self, session_id: str, after_seq: int) -> int:
        """How many broadcasts above ``after_seq`` the session has not read (excluding its own)."""
        row = self.ex.one(
            "SELECT COUNT(*) AS n FROM messages m LEFT JOIN receipts r ON r.message_seq = m.seq "
            "AND r.session_id = ? WHERE m.to_session IS NULL AND m.seq > ? AND m.from_session <> ? "
            "AND r.read_at IS NULL",
            (session_id, after_seq, session_id))
        return int(row["n"]) if row else 0

    def ack_due(self, now: float, limit: int = 500) -> list[Row]:
        """Receipts whose ack deadline passed unacked and not dead-lettered, with their message's fields."""
        return self.ex.all(
            f"SELECT r.session_id AS recipient, {_COLS}, {_RECEIPT} FROM receipts r "
            "JOIN messages m ON m.seq = r.message_seq WHERE r.ack_deadline IS NOT NULL AND r.ack_deadline <= ? "
            "AND r.acked_at IS NULL AND r.dead_at IS NULL ORDER BY r.ack_deadline LIMIT ?",
            (now, limit))

    def redeliver(self, session_id: str, seq: int, ack_deadline: float) -> None:
        """Make a receipt unread and unshown again, one more delivery, with a new deadline."""
        self.ex.execute(
            "UPDATE receipts SET read_at = NULL, delivered_at = NULL, deliveries = deliveries + 1, "
            "ack_deadline = ? WHERE session_id = ? AND message_seq = ?", (ack_deadline, session_id, seq))

    def dead_letter(self, session_id: str, seq: int, now: float) -> None:
        """Stop redelivering a receipt: it is dead-lettered."""
        self.ex.execute("UPDATE receipts SET dead_at = ? WHERE session_id = ? AND message_seq = ?",
                        (now, session_id, seq))
