"""Leases and the fencing counter."""

from __future__ import annotations

from typing import Any

from coordhub.store.base import Row
from coordhub.store.tables.base import Table

_LIVE = "state = 'active' AND (expires_at IS NULL OR expires_at > ?)"


class Leases(Table):
    """The ``leases`` table; "live" means active and not past ``expires_at`` at ``now``."""

    def next_fence(self) -> int:
        """Take the next value of the one persisted fencing counter (strictly increasing)."""
        row = self.ex.one("UPDATE counters SET value = value + 1 WHERE name = 'fence' RETURNING value")
        assert row is not None
        return int(row["value"])

    def add(self, row: Row) -> None:
        """Insert a new lease row."""
        self.insert("leases", row)

    def get(self, lease_id: str) -> Row | None:
        """The lease with this id in any state, or None."""
        return self.ex.one("SELECT * FROM leases WHERE id = ?", (lease_id,))

    def by_fence(self, fence: int) -> Row | None:
        """The lease granted with this fence, in any state, or None."""
        return self.ex.one("SELECT * FROM leases WHERE fence = ?", (fence,))

    def live_in_project(self, project_key: str, now: float) -> list[Row]:
        """Every live lease of a project, oldest grant first."""
        return self.ex.all(
            f"SELECT * FROM leases WHERE project_key = ? AND {_LIVE} ORDER BY fence", (project_key, now)
        )

    def live(self, now: float, project_key: str | None = None, session_id: str | None = None) -> list[Row]:
        """Live leases, optionally of one project and/or one holder, oldest grant first."""
        sql = f"SELECT * FROM leases WHERE {_LIVE}"
        params: list[Any] = [now]
        if project_key is not None:
            sql, params = sql + " AND project_key = ?", [*params, project_key]
        if session_id is not None:
            sql, params = sql + " AND session_id = ?", [*params, session_id]
        return self.ex.all(sql + " ORDER BY fence", tuple(params))

    def due(self, now: float) -> list[Row]:
        """Leases still marked active whose ``expires_at`` has passed."""
        return self.ex.all(
            "SELECT * FROM leases WHERE state = 'active' AND expires_at IS NOT NULL AND expires_at <= ?",
            (now,),
        )

    def end(self, lease_id: str, state: str, now: float, by: str | None, reason: str | None = None) -> None:
        """Move a lease to a final state (released, expired, revoked, stale_takeover), with who and why."""
        self.update("leases", "id", lease_id, {"state": state, "released_at": now, "released_by": by,
                                               "release_reason": reason, "updated_at": now})

    def extend(self, lease_id: str, ttl_hours: float, expires_at: float | None, now: float) -> None:
        """Record a renewal: new TTL and expiry."""
        self.update("leases", "id", lease_id,
                    {"ttl_hours": ttl_hours, "expires_at": expires_at, "renewed_at": now, "updated_at": now})
