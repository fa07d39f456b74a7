"""The merge queue's tables: ``merge_entries`` (one per time a branch entered a queue) and ``github_posts``."""

from __future__ import annotations

from coordhub.store.base import Row
from coordhub.store.tables.base import Table

IN_QUEUE = ("queued", "running")
LIVE = ("queued", "running", "fixing", "needs_input")
#: the entry columns every query reads: all but ``briefing``, a relic: entries once kept a copy of the assignment's
#: briefing (up to 64 KiB) that nothing read back (a fix worker is briefed from its assignment's row); they store ''
#: now and migration 0034 cleared the old copies (the column stays for hubs of before it, which still insert it).
#: Kept equal to the table's columns less the briefing by tests/orchestrator/test_list_columns.py.
COLUMNS = ("id, seq, assignment_id, repo, target, branch, issue, title, method, state, attempt, machine, "
           "host_incarnation, batch_id, batch_cap, tip, merged_sha, pr_number, pr_url, conflict_fixes, red_fixes, "
           "fix_attempt, reason, evidence, created_by, created_at, started_at, ended_at, updated_at, gated_sha")


class MergeEntries(Table):
    """The ``merge_entries`` table."""

    def next_seq(self) -> int:
        """Take the next queue position (strictly increasing, from the ``counters`` table)."""
        return self.ex.next_value("merge_entry")

    def add(self, row: Row) -> None:
        """Insert a new entry."""
        self.insert("merge_entries", row)

    def get(self, entry_id: str) -> Row | None:
        """The entry with this id, or None."""
        return self.ex.one(f"SELECT {COLUMNS} FROM merge_entries WHERE id = ?", (entry_id,))

    def set(self, entry_id: str, changes: Row) -> None:
        """Update columns of an entry."""
        self.update("merge_entries", "id", entry_id, changes)

    def live_for(self, assignment_id: str) -> Row | None:
        """The live (queued, running, fixing, needs_input) entry of an assignment, or None."""
        return self.ex.one(f"SELECT {COLUMNS} FROM merge_entries WHERE assignment_id = ? AND state IN "
                           "('queued', 'running', 'fixing', 'needs_input')", (assignment_id,))

    def of_assignment(self, assignment_id: str) -> list[Row]:
        """Every entry an assignment ever had, oldest first."""
        return self.ex.all(f"SELECT {COLUMNS} FROM merge_entries WHERE assignment_id = ? ORDER BY created_at",
                           (assignment_id,))

    def in_states(self, states: tuple[str, ...], repo: str | None = None, limit: int = 1000) -> list[Row]:
        """Entries in ``states`` (optionally of one repo), queue order."""
        marks = ", ".join("?" * len(states))
        if repo is None:
            return self.ex.all(f"SELECT {COLUMNS} FROM merge_entries WHERE state IN ({marks}) ORDER BY seq LIMIT ?",
                               (*states, limit))
        return self.ex.all(f"SELECT {COLUMNS} FROM merge_entries WHERE state IN ({marks}) AND repo = ? "
                           "ORDER BY seq LIMIT ?", (*states, repo, limit))

    def recent(self, limit: int = 50, repo: str | None = None) -> list[Row]:
        """Entries that ended (merged, cancelled), most recent first."""
        sql = f"SELECT {COLUMNS} FROM merge_entries WHERE state IN ('merged', 'cancelled')"
        params: tuple[object, ...] = ()
        if repo is not None:
            sql += " AND repo = ?"
            params = (repo,)
        return self.ex.all(sql + " ORDER BY updated_at DESC LIMIT ?", (*params, limit))

    def batch(self, batch_id: str) -> list[Row]:
        """The entries of one run, queue order."""
        return self.ex.all(f"SELECT {COLUMNS} FROM merge_entries WHERE batch_id = ? ORDER BY seq", (batch_id,))

    def landed_since(self, since: float) -> int:
        """Entries merged at or after ``since``."""
        row = self.ex.one("SELECT COUNT(*) AS n FROM merge_entries WHERE state = 'merged' AND ended_at >= ?",
                          (since,))
        return int(row["n"]) if row else 0

    def unentered_done(self, limit: int = 100, skip_stages: tuple[str, ...] = ()) -> list[Row]:
        """Done assignments with a pushed branch that never entered a queue (``merge.auto_queue``), oldest first;
        none in a pipeline stage of ``skip_stages``."""
        skip = "".join(" AND a.stage <> ?" for _ in skip_stages)
        return self.ex.all("SELECT a.* FROM assignments a WHERE a.state = 'done' AND a.pushed = 1" + skip
                           + " AND NOT EXISTS (SELECT 1 FROM merge_entries m WHERE m.assignment_id = a.id) "
                           "ORDER BY a.seq LIMIT ?", (*skip_stages, limit))

    def seq_free(self, seq: int) -> bool:
        """Whether no entry holds queue position ``seq``."""
        return self.ex.one("SELECT 1 AS x FROM merge_entries WHERE seq = ?", (seq,)) is None


class GithubPosts(Table):
    """The ``github_posts`` table: the audit trail's outbox, keyed ``<assignment>:<attempt>:<event>``."""

    def get(self, key: str) -> Row | None:
        """The post with this key, or None."""
        return self.ex.one("SELECT * FROM github_posts WHERE key = ?", (key,))

    def add(self, row: Row) -> None:
        """Insert a new post."""
        self.insert("github_posts", row)

    def set(self, key: str, changes: Row) -> None:
        """Update columns of a post."""
        self.update("github_posts", "key", key, changes)

    def pending(self, limit: int = 20) -> list[Row]:
        """Posts not yet made (pending, or running on a host), oldest first."""
        return self.ex.all("SELECT * FROM github_posts WHERE state IN ('pending', 'running') ORDER BY created_at "
                           "LIMIT ?", (limit,))

    def cursor(self) -> int:
        """The id of the last event the trail read (0 before any)."""
        row = self.ex.one("SELECT event_cursor FROM github_trail WHERE id = 1")
        return int(row["event_cursor"]) if row else 0

    def set_cursor(self, event_id: int) -> None:
        """Record the last event the trail read."""
        if not self.ex.execute("UPDATE github_trail SET event_cursor = ? WHERE id = 1", (event_id,)):
            self.insert("github_trail", {"id": 1, "event_cursor": event_id})

    def of_assignment(self, assignment_id: str) -> list[Row]:
        """Every post of an assignment, oldest first."""
        return self.ex.all("SELECT * FROM github_posts WHERE assignment_id = ? ORDER BY created_at", (assignment_id,))
