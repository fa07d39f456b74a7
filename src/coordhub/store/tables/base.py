"""The base of every query object."""

from __future__ import annotations

from typing import Any

from coordhub.store.base import Executor, Row, insert_sql


class Table:
    """Holds the executor of the current connection; subclasses add queries."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    def insert(self, table: str, row: Row) -> None:
        """INSERT one row given as a column → value dict (deferred: see ``Executor.defer``)."""
        self.ex.defer(insert_sql(table, row), tuple(row.values()))

    def insert_returning(self, table: str, row: Row, column: str) -> int:
        """INSERT one row; return the integer ``column`` it was given (an id or seq: ``Executor.insert_numbered``)."""
        return self.ex.insert_numbered(table, row, column)

    def one_ahead(self, table: str, key: str, sql: str) -> Row | None:
        """The row of ``table`` under ``key``: from the batch's rows read ahead when the unit named it
        (:class:`~coordhub.store.base.ReadsAhead`; PostgreSQL, a copy), else ``sql`` asked with ``(key,)``."""
        ahead, row = self.ex.ahead(table, key)
        if ahead:
            return None if row is None else dict(row)
        return self.ex.one(sql, (key,))

    def update(self, table: str, key: str, key_value: Any, changes: Row) -> int:
        """UPDATE the row whose ``key`` column equals ``key_value``; return rows changed."""
        sets = ", ".join(f"{c} = ?" for c in changes)
        return self.ex.execute(
            f"UPDATE {table} SET {sets} WHERE {key} = ?", (*changes.values(), key_value)
        )
