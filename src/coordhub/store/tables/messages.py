"""Messages and per-recipient receipts.

Direct messages get a receipt row at send time, so a session's unread direct
messages are an index range (``receipts_unread``). Broadcasts are stored once
and never copied; a session's unread broadcasts are those above its
``broadcast_cursor`` that it has no read receipt for, so both costs grow with
what is unread, not with history.
"""

from __future__ import annotations

from coordhub.store.base import Row
from coordhub.store.tables.base import Table

_COLS = ("m.seq, m.id, m.from_session, m.to_session, m.project_key, m.subject, m.body, m.thread_id, "
         "m.reply_to, m.importance, m.message_type, m.requires_ack, m.created_at")


class Messages(Table):
    """The ``messages`` and ``receipts`` tables."""

    def add(self, row: Row) -> int:
        """Insert a message; return its ``seq`` (increasing in commit order)."""
        return self.insert_returning("messages", row, "seq")

    def add_receipt(self, session_id: str, seq: int) -> None:
        """Create the unread receipt of a direct message for its recipient."""
        self.ex.execute("INSERT INTO receipts (session_id, message_seq) VALUES (?, ?)", (session_id, seq))

    def get(self, message_id: str, session_id: str) -> Row | None:
        """A message with ``session_id``'s ``read_at``/``acked_at`` (None if it has no receipt)."""
        return self.ex.one(
            f"SELECT {_COLS}, r.read_at, r.acked_at FROM messages m LEFT JOIN receipts r "
            "ON r.message_seq = m.seq AND r.session_id = ? WHERE m.id = ?",
            (session_id, message_id),
        )

    def unread_direct(self, session_id: str, limit: int) -> list[Row]:
        """Oldest-first unread direct messages of a session."""
        return self.ex.all(
            f"SELECT {_COLS}, r.read_at, r.acked_at FROM receipts r JOIN messages m ON m.seq = r.message_seq "
            "WHERE r.session_id = ? AND r.read_at IS NULL AND m.to_session IS NOT NULL "
            "ORDER BY r.message_seq LIMIT ?",
            (session_id, limit),
        )

    def unread_broadcasts(self, session_id: str, after_seq: int, limit: int) -> list[Row]:
        """Oldest-first broadcasts above ``after_seq`` not sent by and not yet read by the session."""
        return self.ex.all(
            f"SELECT {_COLS}, r.read_at, r.acked_at FROM messages m LEFT JOIN receipts r "
            "ON r.message_seq = m.seq AND r.session_id = ? "
            "WHERE m.to_session IS NULL AND m.seq > ? AND m.from_session <> ? AND r.read_at IS NULL "
            "ORDER BY m.seq LIMIT ?",
            (session_id, after_seq, session_id, limit),
        )

    def history(self, session_id: str, before_seq: int, limit: int) -> list[Row]:
        """Newest-first messages to a session (direct and broadcast, read or not) below ``before_seq``."""
        direct = (
            f"SELECT {_COLS}, r.read_at, r.acked_at FROM receipts r JOIN messages m ON m.seq = r.message_seq "
            "WHERE r.session_id = ? AND m.to_session IS NOT NULL AND r.message_seq < ? "
            "ORDER BY r.message_seq DESC LIMIT ?"
        )
        broadcast = (
            f"SELECT {_COLS}, r.read_at, r.acked_at FROM messages m LEFT JOIN receipts r "
            "ON r.message_seq = m.seq AND r.session_id = ? "
            "WHERE m.to_session IS NULL AND m.seq < ? ORDER BY m.seq DESC LIMIT ?"
        )
        return self.ex.all(
            f"SELECT * FROM (SELECT * FROM ({direct}) d UNION ALL SELECT * FROM ({broadcast}) b) u "
            "ORDER BY seq DESC LIMIT ?",
            (session_id, before_seq, limit, session_id, before_seq, limit, limit),
        )

    def mark_read(self, session_id: str, seq: int, now: float) -> None:
        """Set the session's ``read_at`` on a message (creating the receipt for a broadcast); idempotent."""
        self.ex.execute(
            "INSERT INTO receipts (session_id, message_seq, read_at) VALUES (?, ?, ?) "
            "ON CONFLICT (session_id, message_seq) DO UPDATE SET "
            "read_at = COALESCE(receipts.read_at, excluded.read_at)",
            (session_id, seq, now),
        )

    def mark_acked(self, session_id: str, seq: int, now: float) -> None:
        """Set ``acked_at`` (and ``read_at``) of the session's receipt; idempotent."""
        self.ex.execute(
            "INSERT INTO receipts (session_id, message_seq, read_at, acked_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (session_id, message_seq) DO UPDATE SET "
            "read_at = COALESCE(receipts.read_at, excluded.read_at), "
            "acked_at = COALESCE(receipts.acked_at, excluded.acked_at)",
            (session_id, seq, now, now),
        )

    def first_unread_broadcast(self, session_id: str, after_seq: int) -> int | None:
        """The lowest seq of an unread broadcast (not the session's own) above ``after_seq``, or None."""
        row = self.unread_broadcasts(session_id, after_seq, 1)
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
            (session_id, after_seq, session_id),
        )
        return int(row["n"]) if row else 0
