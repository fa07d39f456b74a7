"""Per-session, per-UTC-day counters of what a session stored: the ``turn_quota`` table (conversation turns,
:mod:`coordhub.core.turnbounds`) and the ``write_quota`` table (todos, workflows, work items, component states,
:mod:`coordhub.core.quota`)."""

from __future__ import annotations

from coordhub.store.base import Executor, Row
from coordhub.store.tables.base import Table


class DailyQuota(Table):
    """Writes and bytes per ``(session_id, day)`` in one table, day counted in days since the epoch (UTC); only
    the current day is kept (a charge forgets the session's earlier days)."""

    def __init__(self, ex: Executor, table: str, count: str) -> None:
        super().__init__(ex)
        self._used = f"SELECT {count}, bytes FROM {table} WHERE session_id = ? AND day = ?"
        self._forget = f"DELETE FROM {table} WHERE session_id = ? AND day < ?"
        self._charge = (f"INSERT INTO {table} (session_id, day, {count}, bytes) VALUES (?, ?, 1, ?) "
                        f"ON CONFLICT (session_id, day) DO UPDATE SET {count} = {table}.{count} + 1, "
                        f"bytes = {table}.bytes + excluded.bytes")

    def used(self, session_id: str, day: int) -> Row | None:
        """What the session charged on ``day`` (the count column and ``bytes``), or None when it charged nothing."""
        return self.ex.one(self._used, (session_id, day))

    def charge(self, session_id: str, day: int, size: int) -> None:
        """Count one write of ``size`` bytes against the session's ``day``; forget its earlier days."""
        self.ex.execute(self._forget, (session_id, day))
        self.ex.execute(self._charge, (session_id, day, size))
