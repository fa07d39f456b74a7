"""The pipeline's tables: stage runs (smoke tests and reviews), and the stage columns of ``assignments``."""

from __future__ import annotations

from coordhub.store.base import Row
from coordhub.store.tables.base import Table

LIVE = ("queued", "dispatched", "running")


class StageRuns(Table):
    """The ``stage_runs`` table: one row per smoke test or review of an assignment's branch."""

    def add(self, row: Row) -> None:
        """Insert a new run, giving it the next ``seq`` (creation order)."""
        self.insert("stage_runs", {**row, "seq": self.ex.next_value("stage_run")})

    def get(self, run_id: str) -> Row | None:
        """The run with this id, or None."""
        return self.ex.one("SELECT * FROM stage_runs WHERE id = ?", (run_id,))

    def set(self, run_id: str, changes: Row) -> None:
        """Update columns of a run."""
        self.update("stage_runs", "id", run_id, changes)

    def of(self, assignment_id: str) -> list[Row]:
        """Every run of an assignment, oldest first."""
        return self.ex.all("SELECT * FROM stage_runs WHERE assignment_id = ? ORDER BY seq",
                           (assignment_id,))

    def live_of(self, assignment_id: str) -> Row | None:
        """The queued, dispatched or running run of an assignment, or None (there is at most one)."""
        return self.ex.one("SELECT * FROM stage_runs WHERE assignment_id = ? AND state IN "
                           "('queued', 'dispatched', 'running')", (assignment_id,))

    def queued(self, limit: int) -> list[Row]:
        """Queued runs, oldest first."""
        return self.ex.all("SELECT * FROM stage_runs WHERE state = 'queued' ORDER BY seq LIMIT ?",
                           (limit,))

    def live(self, limit: int = 200) -> list[Row]:
        """Queued, dispatched or running runs, oldest first (at most ``limit``)."""
        return self.ex.all("SELECT * FROM stage_runs WHERE state IN ('queued', 'dispatched', 'running') "
                           "ORDER BY seq LIMIT ?", (limit,))

    def active(self, machine: str | None = None) -> list[Row]:
        """Dispatched or running runs, fleet-wide or on one machine."""
        if machine is None:
            return self.ex.all("SELECT * FROM stage_runs WHERE state IN ('dispatched', 'running') "
                               "ORDER BY seq")
        return self.ex.all("SELECT * FROM stage_runs WHERE state IN ('dispatched', 'running') AND machine = ? "
                           "ORDER BY seq", (machine,))

    def active_count(self, machine: str | None = None, stage: str | None = None) -> int:
        """How many runs hold a slot (dispatched or running), fleet-wide or on one machine, of one stage or all."""
        sql, params = "SELECT COUNT(*) AS n FROM stage_runs WHERE state IN ('dispatched', 'running')", []
        if machine is not None:
            sql += " AND machine = ?"
            params.append(machine)
        if stage is not None:
            sql += " AND stage = ?"
            params.append(stage)
        row = self.ex.one(sql, tuple(params))
        return int(row["n"]) if row else 0

    def ended_since(self, since: float) -> list[Row]:
        """Runs that ended at or after ``since``, oldest first."""
        return self.ex.all("SELECT * FROM stage_runs WHERE ended_at >= ? ORDER BY seq", (since,))

    def live_count(self) -> int:
        """Runs queued, dispatched or running."""
        row = self.ex.one("SELECT COUNT(*) AS n FROM stage_runs WHERE state IN ('queued', 'dispatched', 'running')")
        return int(row["n"]) if row else 0

