"""The pipeline's tables: stage runs (smoke tests and reviews), and the stage columns of ``assignments``."""

from __future__ import annotations

from coordhub.store.base import Row
from coordhub.store.tables.base import Table
from coordhub.store.tables.orchestrator import not_left_to, requires_within

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

    def first_runnable(self, machine: str, repos: list[str], capabilities: list[str], reviews: bool,
                       elsewhere: list[tuple[list[str], list[str]]]) -> Row | None:
        """The oldest queued run a host of ``machine`` may take now (its whole row), or None.

        Oldest by ``seq``; of those whose assignment is of one of ``repos``
        (the caller's: those the host serves whose project no halt covers),
        whose ``requires`` are all among ``capabilities``; no review unless
        ``reviews`` (the caller's: a free Claude session under
        ``max_workers``, no pause); never one that avoids ``machine`` (a
        review of the worker's own machine, "another machine when possible",
        seed 003) while a host of ``elsewhere`` could take it (each a host's
        repos and capabilities, the caller's list of the other online hosts).
        The rules and their source: ``coordhub.core.stageruns``. None when
        nothing qualifies (or ``repos`` is empty).

        One statement: the live-run index ``stage_runs_live`` is walked
        oldest first until a row qualifies, each costing one probe of the
        assignments' primary key, so no number of runs that do not qualify
        stands in front of one that does.
        """
        if not repos:
            return None
        subset, caps = requires_within(capabilities, "r.requires")
        avoided, more = not_left_to(machine, elsewhere, row="r", pinned=False)
        # CROSS JOIN fixes SQLite's join order (the runs outside, by seq). The state IN term is the index's own
        # WHERE, so SQLite may walk it; "queued" is then said as NOT IN, as SQLite takes an equality for a few rows
        # and sorts them all from stage_runs_one_live instead (tests/orchestrator/test_stage_queue_bounds.py)
        sql = ("SELECT r.* FROM stage_runs r CROSS JOIN assignments a WHERE a.id = r.assignment_id "
               "AND r.state IN ('queued', 'dispatched', 'running') AND r.state NOT IN ('dispatched', 'running') "
               f"AND a.repo IN ({', '.join('?' * len(repos))}) AND {subset}")
        if not reviews:
            sql += " AND r.stage <> 'review'"
        return self.ex.one(sql + avoided + " ORDER BY r.seq LIMIT 1", (*repos, *caps, *more))

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

    def active_by_machine(self) -> dict[str, int]:
        """How many runs hold a slot (dispatched or running) on each machine that has any (its name → the count)."""
        rows = self.ex.all("SELECT machine, COUNT(*) AS n FROM stage_runs WHERE state IN ('dispatched', 'running') "
                           "GROUP BY machine")
        return {r["machine"]: int(r["n"]) for r in rows if r["machine"] is not None}

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

