"""Facts about the hub itself, halt records, the event log and idempotency records."""

from __future__ import annotations

from collections.abc import Callable

from coordhub.store.base import Executor, Row
from coordhub.store.tables.base import Table

_AFTER = "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?"


class Meta(Table):
    """The ``hub_meta`` table: one value per key about the hub itself (``hub_id``, set by migration 0004)."""

    def get(self, key: str) -> str | None:
        """The value of ``key``, or None when it has none."""
        row = self.ex.one("SELECT value FROM hub_meta WHERE key = ?", (key,))
        return str(row["value"]) if row is not None else None

    def put(self, key: str, value: str) -> None:
        """Set the value of ``key`` (inserting or replacing it)."""
        self.ex.execute("INSERT INTO hub_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                        "SET value = excluded.value", (key, value))

    def put_absent(self, key: str, value: str) -> None:
        """Set the value of ``key`` unless it has one (a concurrent first writer wins; read it back)."""
        self.ex.execute("INSERT INTO hub_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))


class Halts(Table):
    """The ``halts`` table: a row present means that scope is halted.

    Every mutation asks for the standing halts in its own transaction. In a
    write batch (:meth:`batch`) the answer is kept until a unit of the batch
    changes the table or is rolled back: nobody else can write while the
    batch holds the writer's lock, so the units after the first ask no query
    (on PostgreSQL, one round trip less per unit).
    """

    STANDING = "SELECT * FROM halts ORDER BY halted_at, scope"  # every standing halt, oldest first

    def __init__(self, ex: Executor) -> None:
        super().__init__(ex)
        self._batch = False
        self._standing: list[Row] | None = None
        self._read_in_unit = False  # _standing was read by the running unit (it may hold that unit's writes)

    def batch(self, active: bool, standing: list[Row] | None = None) -> None:
        """Start (True) or end (False) a write batch, forgetting what was read.

        ``standing`` is what :data:`STANDING` answered when the backend read it
        with the batch's ``BEGIN`` (PostgreSQL), kept as this batch's first answer.
        """
        self._batch, self._standing = active, (standing if active else None)

    def unit_begins(self) -> None:
        """A unit of the batch begins (the writer's ``_run_unit``): what was read so far was read before it."""
        self._read_in_unit = False

    def forget(self) -> None:
        """A unit of the batch was rolled back: drop what was read, if that unit read it (it may hold a halt the
        unit put or lifted). What was read before the unit stands: the rollback leaves the table as it was then,
        and on PostgreSQL the next unit would ask again in a round trip of its own."""
        if self._read_in_unit:
            self._standing = None

    def get(self, scope: str = "*") -> Row | None:
        """The halt of a scope, or None when it is not halted."""
        return self.ex.one("SELECT * FROM halts WHERE scope = ?", (scope,))

    def all(self) -> list[Row]:
        """Every standing halt, oldest first; [] when none (one query per batch, see the class)."""
        if self._standing is not None:
            return list(self._standing)
        rows = self.ex.all(self.STANDING)
        if self._batch:
            self._standing, self._read_in_unit = rows, True
        return list(rows)

    def put(self, row: Row) -> None:
        """Record a halt (replacing an earlier one of the same scope)."""
        self._standing = None
        self.ex.execute("DELETE FROM halts WHERE scope = ?", (row["scope"],))
        self.insert("halts", row)

    def clear(self, scope: str = "*") -> int:
        """Lift the halt of a scope; return 1 if there was one."""
        self._standing = None
        return self.ex.execute("DELETE FROM halts WHERE scope = ?", (scope,))


class Events(Table):
    """The append-only event log; ids increase strictly in commit order (single writer)."""

    def append(self, row: Row) -> int:
        """Append an event; return its id."""
        return self.insert_returning("events", row, "id")

    def append_nowait(self, row: Row) -> None:
        """Append an event without reading back its id (deferred: see ``Executor.defer``)."""
        self.insert("events", row)

    def after(self, after_id: int, limit: int = 1000) -> list[Row]:
        """Events with id greater than ``after_id``, oldest first."""
        return self.ex.all(_AFTER, (after_id, limit))

    def after_then(self, after_id: int, limit: int, then: Callable[[list[Row]], None]) -> None:
        """:meth:`after`, handing the rows to ``then`` (``Executor.expect``: on PostgreSQL they may come back
        with the unit's next statement, or with the batch's COMMIT)."""
        self.ex.expect(_AFTER, (after_id, limit), then)

    def page(self, after_id: int, limit: int, max_bytes: int, *, kinds: tuple[str, ...] = (),
             project_key: str | None = None, through_id: int | None = None,
             session_prefix: str | None = None) -> list[Row]:
        """Events after ``after_id``, oldest first: at most ``limit`` of them and about ``max_bytes`` of payload.

        Only events whose kind starts with one of ``kinds`` (all when empty),
        of ``project_key`` (all when None), done by a session whose id starts
        with ``session_prefix`` ignoring case (all when None; ids are ASCII) and with id at most ``through_id``
        (no bound when None): the database skips the others, so rows that do
        not match are never turned into Python objects.

        Always at least one event when there is one, however large; an empty
        list when there is none. Rows are fetched in batches that start small
        and grow while rows stay small, so a page of huge rows holds at most
        a few rows beyond the budget in memory (asking the database for the
        sizes first would make SQLite read every payload in full).
        """
        where: list[str] = ["id > ?"]
        args: list[object] = []
        if through_id is not None:
            where.append("id <= ?")
            args.append(through_id)
        if project_key is not None:
            where.append("project_key = ?")
            args.append(project_key)
        if session_prefix is not None:  # substr for the same reason as kinds: "_" and "%" are literal text
            where.append("substr(lower(session_id), 1, CAST(? AS INTEGER)) = ?")
            args += [len(session_prefix), session_prefix.lower()]
        if kinds:  # substr, not LIKE: a kind prefix is literal text ("_" and "%" included)
            where.append("(" + " OR ".join("substr(kind, 1, CAST(? AS INTEGER)) = ?" for _ in kinds) + ")")
            for k in kinds:
                args += [len(k), k]
        sql = f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
        out: list[Row] = []
        total, cursor, batch = 0, after_id, 4
        while len(out) < limit:
            rows = self.ex.all(sql, (cursor, *args, min(batch, limit - len(out))))
            for row in rows:
                size = len(row["payload"])
                if out and total + size > max_bytes:
                    return out
                out.append(row)
                total += size
            if len(rows) < batch:
                return out
            cursor, batch = rows[-1]["id"], min(2 * batch, 256)
        return out

    def first_after(self, after_id: int) -> int | None:
        """The id of the oldest event after ``after_id`` (an index lookup), None when there is none."""
        row = self.ex.one("SELECT MIN(id) AS id FROM events WHERE id > ?", (after_id,))
        return int(row["id"]) if row and row["id"] is not None else None

    def for_target(self, session_id: str, after_id: int, limit: int) -> list[Row]:
        """Events addressed to a session (or to everyone) after ``after_id``, not caused by it, oldest first."""
        return self.ex.all(
            "SELECT * FROM events WHERE target IN (?, '*') AND id > ? AND (session_id IS NULL OR session_id <> ?) "
            "ORDER BY id LIMIT ?", (session_id, after_id, session_id, limit))

    def last_id(self) -> int:
        """The newest event id, 0 when the log is empty; when retention pruned every event, the pruned bound
        (``events_pruned_through``), so a hub started on a pruned log does not count from 0 again."""
        row = self.ex.one("SELECT MAX(id) AS id FROM events")
        if row and row["id"] is not None:
            return int(row["id"])
        pruned = self.ex.one("SELECT value FROM hub_meta WHERE key = 'events_pruned_through'")
        return int(pruned["value"]) if pruned else 0


class Idempotency(Table):
    """Stored first responses, keyed by (acting session, Idempotency-Key)."""

    def get(self, scope: str, key: str) -> Row | None:
        """The stored record, or None when the key is new."""
        return self.ex.one("SELECT * FROM idempotency WHERE scope = ? AND key = ?", (scope, key))

    def put(self, row: Row) -> None:
        """Store the first response of a key."""
        self.insert("idempotency", row)
