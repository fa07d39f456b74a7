"""The queries of the pruner: what is past retention, and its removal in small batches.

Every ``prune_*`` method deletes at most ``limit`` rows of its kind (with
their dependent rows) and returns how many it removed; the caller runs each
call as one unit of work, so a batch is removed entirely or not at all (a
killed hub leaves nothing half-deleted). Each selects its victims through an
index or the primary key, oldest first, so a batch costs the same whatever
the table's size. The rules of what may go are in ``coordhub.core.retention``;
the SQL here only applies them.
"""

from __future__ import annotations

from collections.abc import Sequence

from coordhub.store.tables.base import Table

_TERMINAL = ("done", "failed", "cancelled")  # assignment states whose work ended (a retry may queue them again)
_FINISHED_STAGES = ("work", "fix", "passed", "merged")  # pipeline stages with no gate waiting (core/stages.py)
_LIVE_RUNS = ("queued", "dispatched", "running")  # stage runs not yet ended


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


class Retention(Table):
    """Deletes of rows past retention, batch by batch."""

    def event_prefix(self, before: float, floor: int, limit: int) -> int:
        """The highest event id of the oldest ``limit`` events that were all created before ``before``, capped at
        ``floor``; 0 when the oldest event is newer (nothing to prune).

        Events are pruned as a prefix of the log (every id up to a bound), so
        "the log was pruned through id N" is one number a reader can compare
        its cursor with. The walk stops at the first event not old enough
        (``created_at`` follows commit order up to clock steps).
        """
        rows = self.ex.all("SELECT id, created_at FROM events WHERE id <= ? ORDER BY id LIMIT ?", (floor, limit))
        upto = 0
        for row in rows:
            if row["created_at"] >= before:
                break
            upto = int(row["id"])
        return upto

    def prune_events(self, upto: int) -> int:
        """Delete every event with id <= ``upto``; return how many."""
        return self.ex.execute("DELETE FROM events WHERE id <= ?", (upto,))

    def message_window(self, after_seq: int, before: float, limit: int) -> list[int]:
        """Seqs of the oldest ``limit`` messages after ``after_seq``, stopping at the first created at or after
        ``before``; [] when there is none. A primary-key range: its cost does not grow with the table.

        An imported message (core/imports.py) counts as created when it was
        imported (its ledger row's time), not at its original time: a
        migration keeps its history for the retention period.
        """
        rows = self.ex.all("SELECT m.seq, m.created_at, i.imported_at FROM messages m LEFT JOIN imported i "
                           "ON i.key = 'seed002:message-id:' || m.id WHERE m.seq > ? ORDER BY m.seq LIMIT ?",
                           (after_seq, limit))
        out: list[int] = []
        for row in rows:
            if max(row["created_at"], row["imported_at"] or 0.0) >= before:
                break
            out.append(int(row["seq"]))
        return out

    def prune_messages(self, seqs: list[int], live_since: float) -> int:
        """Delete, among the messages ``seqs``, those nobody needs any more, with their receipts; return how many.

        A direct message goes when its recipient's receipt is settled: read,
        and acked or dead-lettered when an ack was required. A broadcast goes
        when no receipt of it is left unacked (ack required) and every session
        seen since ``live_since`` but its sender has read it (its
        ``broadcast_cursor`` passed it, or it holds a read receipt). Unread and
        unacked messages are never selected.
        """
        if not seqs:
            return 0
        marks = _marks(seqs)
        rows = self.ex.all(
            f"SELECT m.seq FROM messages m WHERE m.seq IN ({marks}) AND ("
            "(m.to_session IS NOT NULL AND NOT EXISTS (SELECT 1 FROM receipts r WHERE r.message_seq = m.seq "
            "AND (r.read_at IS NULL OR (m.requires_ack <> 0 AND r.acked_at IS NULL AND r.dead_at IS NULL)))) "
            "OR (m.to_session IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM receipts r WHERE r.message_seq = m.seq AND m.requires_ack <> 0 "
            "AND r.acked_at IS NULL AND r.dead_at IS NULL) "
            "AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.last_seen >= ? AND s.session_id <> m.from_session "
            "AND s.broadcast_cursor < m.seq AND NOT EXISTS (SELECT 1 FROM receipts r WHERE r.session_id = "
            "s.session_id AND r.message_seq = m.seq AND r.read_at IS NOT NULL))))",
            (*seqs, live_since))
        return self._delete_messages([int(r["seq"]) for r in rows])

    def _delete_messages(self, seqs: list[int]) -> int:
        if not seqs:
            return 0
        self.ex.execute(f"DELETE FROM receipts WHERE message_seq IN ({_marks(seqs)})", tuple(seqs))
        return self.ex.execute(f"DELETE FROM messages WHERE seq IN ({_marks(seqs)})", tuple(seqs))

    def prune_leases(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` leases that ended (released, expired, revoked) before ``before``; return how many.

        A live lease (state ``active``) is never selected, even long expired
        and not yet swept: the sweeper records its end first.
        """
        rows = self.ex.all("SELECT id FROM leases WHERE state <> 'active' AND updated_at < ? ORDER BY updated_at "
                           "LIMIT ?", (before, limit))
        ids = [r["id"] for r in rows]
        if not ids:
            return 0
        return self.ex.execute(f"DELETE FROM leases WHERE id IN ({_marks(ids)})", tuple(ids))

    def prune_idempotency(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` idempotency records created before ``before``; return how many."""
        rows = self.ex.all("SELECT scope, key FROM idempotency WHERE created_at < ? ORDER BY created_at LIMIT ?",
                           (before, limit))
        for row in rows:
            self.ex.execute("DELETE FROM idempotency WHERE scope = ? AND key = ?", (row["scope"], row["key"]))
        return len(rows)

    def prune_assignments(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` finished assignments not changed since before ``before``, with their attempts,
        relayed logs and stage runs; return the assignments deleted.

        Finished: the work ended (done, failed, cancelled), no pipeline gate
        waits (stage ``work``, ``fix``, ``passed`` or ``merged``) and no stage
        run is live, and no merge entry is in the queue (queued, running,
        fixing, needs_input); its ended merge entries and audit-trail posts go
        with it. ``coord retry`` of a pruned assignment finds nothing.
        """
        rows = self.ex.all(
            f"SELECT a.id FROM assignments a WHERE a.state IN ({_marks(_TERMINAL)}) AND a.updated_at < ? "
            f"AND a.stage IN ({_marks(_FINISHED_STAGES)}) AND COALESCE(a.stage_at, 0) < ? "
            f"AND NOT EXISTS (SELECT 1 FROM stage_runs r WHERE r.assignment_id = a.id "
            f"AND r.state IN ({_marks(_LIVE_RUNS)})) AND NOT EXISTS (SELECT 1 FROM merge_entries m "
            f"WHERE m.assignment_id = a.id AND m.state IN ('queued', 'running', 'fixing', 'needs_input')) "
            f"ORDER BY a.updated_at LIMIT ?",
            (*_TERMINAL, before, *_FINISHED_STAGES, before, *_LIVE_RUNS, limit))
        ids = [r["id"] for r in rows]
        if not ids:
            return 0
        for table in ("assignment_logs", "assignment_attempts", "stage_runs", "merge_entries", "github_posts"):
            self.ex.execute(f"DELETE FROM {table} WHERE assignment_id IN ({_marks(ids)})", tuple(ids))
        return self.ex.execute(f"DELETE FROM assignments WHERE id IN ({_marks(ids)})", tuple(ids))

    def notify_floor(self, live_since: float) -> int | None:
        """The lowest notification cursor (> 0) of a session seen since ``live_since``; None when no such session
        has one (nothing is held back by notification cursors)."""
        row = self.ex.one("SELECT MIN(notify_cursor) AS floor FROM sessions WHERE notify_cursor > 0 "
                          "AND last_seen >= ?", (live_since,))
        return int(row["floor"]) if row and row["floor"] is not None else None

    def stream_floor(self, live_since: float) -> int | None:
        """The lowest event-stream cursor a session seen since ``live_since`` left behind (recorded when its
        stream ended); None when there is none."""
        row = self.ex.one("SELECT MIN(stream_cursor) AS floor FROM sessions WHERE stream_cursor IS NOT NULL "
                          "AND last_seen >= ?", (live_since,))
        return int(row["floor"]) if row and row["floor"] is not None else None

    def set_stream_cursor(self, session_id: str, position: int, now: float) -> None:
        """Record where a session's event stream ended at ``now`` (the hub's cursor hold for its resume); the
        session counts as seen then. No change for a session the hub does not know."""
        self.ex.execute("UPDATE sessions SET stream_cursor = ?, last_seen = CASE WHEN last_seen < ? THEN ? "
                        "ELSE last_seen END WHERE session_id = ?", (position, now, now, session_id))
