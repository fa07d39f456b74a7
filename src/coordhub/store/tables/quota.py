"""The ``write_quota`` table: what each session wrote per UTC day into records retention never prunes."""

from __future__ import annotations

from coordhub.store.base import Row
from coordhub.store.tables.base import Table


class WriteQuota(Table):
    """Writes and bytes per ``(session_id, day)``, day counted in days since the epoch (UTC); only the current
    day is kept (a charge forgets the session's earlier days). See :mod:`coordhub.core.quota`."""

    def used(self, session_id: str, day: int) -> Row | None:
        """``{writes, bytes}`` the session charged on ``day``, or None when it charged nothing."""
        return self.ex.one("SELECT writes, bytes FROM write_quota WHERE session_id = ? AND day = ?", (session_id, day))

    def charge(self, session_id: str, day: int, size: int) -> None:
        """Count one write of ``size`` bytes against the session's ``day``; forget its earlier days."""
        self.ex.execute("DELETE FROM write_quota WHERE session_id = ? AND day < ?", (session_id, day))
        self.ex.execute("INSERT INTO write_quota (session_id, day, writes, bytes) VALUES (?, ?, 1, ?) "
                        "ON CONFLICT (session_id, day) DO UPDATE SET writes = write_quota.writes + 1, "
                        "bytes = write_quota.bytes + excluded.bytes", (session_id, day, size))
