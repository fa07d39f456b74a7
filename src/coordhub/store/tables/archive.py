"""The queries of ``coord archive``: tables read page by page in key order, and rows written back as they were.

Only the tables in :data:`TABLES` can be read or written, and column names
coming from an archive file must look like SQL identifiers (checked here, as
they are part of the statement); anything else raises ``ValueError``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from coordhub.store.base import Row
from coordhub.store.tables.base import Table


class Spec(NamedTuple):
    """How one table is archived: its key columns (page order), its time column, and, for a child table,
    the parent table, the parent's key and the child's column that names it (the parent's time filters)."""

    key: tuple[str, ...]
    time: str | None = None
    parent: tuple[str, str, str] | None = None  # (parent table, parent key column, child column)


TABLES: dict[str, Spec] = {
    "sessions": Spec(("session_id",)),
    "events": Spec(("id",), "created_at"),
    "messages": Spec(("seq",), "created_at"),
    "receipts": Spec(("message_seq", "session_id"), parent=("messages", "seq", "message_seq")),
    "leases": Spec(("id",), "acquired_at"),
    "conversations": Spec(("conversation_id",), "created_at"),
    "turns": Spec(("id",), "created_at"),
    "assignments": Spec(("id",), "created_at"),
    "assignment_attempts": Spec(("assignment_id", "attempt"), parent=("assignments", "id", "assignment_id")),
    "assignment_logs": Spec(("assignment_id", "start"), parent=("assignments", "id", "assignment_id")),
    "stage_runs": Spec(("id",), parent=("assignments", "id", "assignment_id")),
    "merge_entries": Spec(("id",), parent=("assignments", "id", "assignment_id")),
    "github_posts": Spec(("key",), parent=("assignments", "id", "assignment_id")),
}
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# counters the hub hands out from, and the column whose highest value each must not fall below after an import
_COUNTERS = (("fence", "leases", "fence"), ("assignment", "assignments", "seq"), ("stage_run", "stage_runs", "seq"),
             ("merge_entry", "merge_entries", "seq"))


def spec(table: str) -> Spec:
    """The spec of an archived table; ``ValueError`` for any other name."""
    try:
        return TABLES[table]
    except KeyError:
        raise ValueError(f"{table!r} is not an archived table ({', '.join(TABLES)})") from None


def _window(table: str, since: float | None, until: float | None) -> tuple[str, list[Any]]:
    """The WHERE conditions (joined with AND, each starting with " AND ") and parameters of a time window."""
    s = spec(table)
    if s.time is not None:
        column = s.time
    elif s.parent is not None:
        parent, pkey, child = s.parent
        column = f"(SELECT p.{spec(parent).time} FROM {parent} p WHERE p.{pkey} = {table}.{child})"
    else:
        return "", []
    sql, params = "", list[Any]()
    if since is not None:
        sql, params = sql + f" AND {column} >= ?", params + [since]
    if until is not None:
        sql, params = sql + f" AND {column} < ?", params + [until]
    return sql, params


class Archive(Table):
    """Reads and writes of whole rows, for export and for import into an empty database."""

    def count(self, table: str, since: float | None, until: float | None) -> int:
        """How many rows of ``table`` fall in the window (all of them for a table without a time)."""
        where, params = _window(table, since, until)
        row = self.ex.one(f"SELECT COUNT(*) AS n FROM {table} WHERE 1 = 1{where}", tuple(params))
        return int(row["n"]) if row else 0

    def page(self, table: str, after: Sequence[Any] | None, since: float | None, until: float | None,
             limit: int) -> list[Row]:
        """The next ``limit`` rows of ``table`` in the window after the key ``after`` (None: from the start),
        in key order; [] at the end."""
        key = spec(table).key
        where, params = _window(table, since, until)
        if after is not None:
            cols = ", ".join(key)
            where += f" AND ({cols}) > ({', '.join('?' * len(key))})" if len(key) > 1 else f" AND {key[0]} > ?"
            params += list(after)
        return self.ex.all(f"SELECT * FROM {table} WHERE 1 = 1{where} ORDER BY {', '.join(key)} LIMIT ?",
                           (*params, limit))

    def has_rows(self) -> list[str]:
        """The archived tables that hold any row ([] for a database no hub has written to)."""
        return [t for t in TABLES if self.ex.one(f"SELECT 1 AS x FROM {t} LIMIT 1") is not None]

    def put_rows(self, table: str, rows: list[Row], identity_clause: str) -> None:
        """Insert ``rows`` (column → value) into ``table`` as they are, keys included.

        ``identity_clause`` is the backend's phrase that lets an insert set a
        generated key (PostgreSQL: ``OVERRIDING SYSTEM VALUE``; SQLite: "").
        ``ValueError`` for a table or column name that is not one; the
        database's own error for a column the table lacks or a duplicate key.
        """
        spec(table)
        for row in rows:
            bad = [c for c in row if not _IDENT.match(c)]
            if bad:
                raise ValueError(f"{table}: {bad[0][:80]!r} is not a column name")
            cols = ", ".join(row)
            self.ex.execute(f"INSERT INTO {table} ({cols}) {identity_clause} VALUES ({', '.join('?' * len(row))})",
                            tuple(row.values()))

    def raise_counters(self) -> None:
        """Move each counter of the hub (fences, assignment and stage-run numbers) up to the highest value the
        imported rows used, so what the hub hands out next is new."""
        for name, table, column in _COUNTERS:
            self.ex.execute(
                f"UPDATE counters SET value = (SELECT MAX({column}) FROM {table}) WHERE name = ? "
                f"AND (SELECT MAX({column}) FROM {table}) > value", (name,))
        self.ex.counters_moved()
