"""Sessions the hub has seen, and their broadcast cursors."""

from __future__ import annotations

from coordhub.store.base import Row
from coordhub.store.tables.base import Table


class Sessions(Table):
    """The ``sessions`` table."""

    def touch(self, session_id: str, now: float) -> None:
        """Record that the session acted at ``now`` (creating it on first contact)."""
        self.ex.execute(
            "INSERT INTO sessions (session_id, first_seen, last_seen) VALUES (?, ?, ?) "
            "ON CONFLICT (session_id) DO UPDATE SET last_seen = excluded.last_seen",
            (session_id, now, now),
        )

    def get(self, session_id: str) -> Row | None:
        """The session row, or None if the hub has never seen it."""
        return self.ex.one("SELECT * FROM sessions WHERE session_id = ?", (session_id,))

    def broadcast_cursor(self, session_id: str) -> int:
        """Seq up to which the session has read every broadcast; 0 for an unknown session."""
        row = self.get(session_id)
        return int(row["broadcast_cursor"]) if row else 0

    def set_broadcast_cursor(self, session_id: str, seq: int) -> None:
        """Move the session's broadcast cursor (callers only move it forward)."""
        self.ex.execute("UPDATE sessions SET broadcast_cursor = ? WHERE session_id = ?", (seq, session_id))
