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
        """Move the session's broadcast read cursor (callers only move it forward)."""
        self.ex.execute("UPDATE sessions SET broadcast_cursor = ? WHERE session_id = ?", (seq, session_id))

    def set_cursor(self, session_id: str, column: str, value: int) -> None:
        """Set ``broadcast_shown_cursor`` or ``notify_cursor`` of a session."""
        assert column in ("broadcast_shown_cursor", "notify_cursor")
        self.ex.execute(f"UPDATE sessions SET {column} = ? WHERE session_id = ?", (value, session_id))

    def register(self, session_id: str, now: float, client: str | None, client_session: str | None,
                 cwd: str | None) -> Row:
        """Start the next incarnation of a session (creating it if new); return its row."""
        self.touch(session_id, now)
        self.ex.execute(
            "UPDATE sessions SET incarnation = incarnation + 1, registered_at = ?, last_heartbeat = ?, "
            "deregistered_at = NULL, client = ?, client_session = ?, cwd = ? WHERE session_id = ?",
            (now, now, client, client_session, cwd, session_id))
        row = self.get(session_id)
        assert row is not None
        return row

    def heartbeat(self, session_id: str, now: float) -> None:
        """Record a heartbeat of the current incarnation."""
        self.ex.execute("UPDATE sessions SET last_heartbeat = ? WHERE session_id = ?", (now, session_id))

    def deregister(self, session_id: str, now: float) -> None:
        """Mark the current incarnation ended."""
        self.ex.execute("UPDATE sessions SET deregistered_at = ? WHERE session_id = ?", (now, session_id))

    def registered(self) -> list[Row]:
        """Every session that ever registered presence, by id."""
        return self.ex.all("SELECT * FROM sessions WHERE incarnation > 0 ORDER BY session_id")
