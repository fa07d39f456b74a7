"""The base of every query object."""

from __future__ import annotations

from typing import Any

from coordhub.store.base import Executor, Row


class Table:
    """Holds the executor of the current connection; subclasses add queries."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    def insert(self, table: str, row: Row) -> None:
        """INSERT one row given as a column → value dict (deferred: see ``Executor.defer``)."""
        cols = ", ".join(row)
        marks = ", ".join("?" * len(row))
        self.ex.defer(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(row.values()))

    def insert_returning(self, table: str, row: Row, column: str) -> int:
        """INSERT one row; return the integer ``column`` the database assigned (an id or seq)."""
        cols = ", ".join(row)
        marks = ", ".join("?" * len(row))
        got = self.ex.one(f"INSERT INTO {table} ({cols}) VALUES ({marks}) RETURNING {column}", tuple(row.values()))
        assert got is not None
        return int(got[column])

    def update(self, table: str, key: str, key_value: Any, changes: Row) -> int:
        """UPDATE the row whose ``key`` column equals ``key_value``; return rows changed."""
        sets = ", ".join(f"{c} = ?" for c in changes)
        return self.ex.execute(
            f"UPDATE {table} SET {sets} WHERE {key} = ?", (*changes.values(), key_value)
        )
