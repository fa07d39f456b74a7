"""The ``sessions`` rows a PostgreSQL write batch reads with its ``BEGIN`` (issue 15: a round trip per send).

A send looks its recipient up (:meth:`~coordhub.store.tables.sessions.Sessions.by_key`)
before it can write anything, and on PostgreSQL each lookup was a round trip
of its own, one per unit of a batch. Units that name their lookups
(:class:`~coordhub.store.base.ReadsAhead`) have those rows read in the
batch's first round trip instead, and a lookup is answered from them while
they are current.

Current means: what a ``SELECT`` at that point of the batch would return. The
batch's own writes are followed as they are given (held back or not, they run
before any later read): the sender's upsert that every unit runs
(:data:`~coordhub.store.tables.sessions.ACT`) is applied to the row it
touches (:func:`~coordhub.store.tables.sessions.acted`), or drops it when the
spelling had no row; any other statement that writes ``sessions`` drops every
row, and so does a unit rolled back to its savepoint. Rows read under the
writer's lock can change only through the batch itself, since every write to
the database goes through a writer holding that lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from coordhub.store.base import Row
from coordhub.store.tables.sessions import ACT, AHEAD_COLUMN, acted, rows_ahead_sql

MAX_AHEAD = 256  # spellings read ahead per batch; a lookup past them is asked as before
_SPELLING = re.compile(r"[A-Za-z0-9_.@+/-]{1,200}")  # session ids as the core accepts them (ASCII: lower() agrees)
_WRITES = re.compile(r"\b(?:insert\s+into|update|delete\s+from|truncate)\s+(?:table\s+)?sessions\b", re.IGNORECASE)


@lru_cache(maxsize=2048)
def writes_sessions(sql: str) -> bool:
    """Whether ``sql`` writes the ``sessions`` table (our SQL names it plainly)."""
    return _WRITES.search(sql) is not None


class SessionsAhead:
    """The rows read ahead for one batch, by the spelling each unit named (empty between batches)."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: dict[str, Row | None] = {}

    @staticmethod
    def query(spellings: list[str], literal: Callable[[str], str]) -> bytes | None:
        """The read for ``spellings`` (each quoted by ``literal``), or None when none can be read ahead.

        Only well-formed session ids are read (a lookup of anything else
        cannot have been named by a unit the core accepted), each once, at most
        :data:`MAX_AHEAD`.
        """
        wanted = list(dict.fromkeys(s for s in spellings if _SPELLING.fullmatch(s)))[:MAX_AHEAD]
        return rows_ahead_sql([literal(s) for s in wanted]).encode() if wanted else None

    def load(self, rows: list[Row]) -> None:
        """Keep the answer of :meth:`query`: each spelling's row, or None when the hub has none under it."""
        self.rows = {}
        for row in rows:
            spelling = row.pop(AHEAD_COLUMN)
            self.rows[spelling] = row if row["session_key"] is not None else None

    def get(self, spelling: str) -> tuple[bool, Row | None]:
        """``(True, row or None)`` when ``spelling`` was read ahead and is current, else ``(False, None)``."""
        rows = self.rows
        if spelling in rows:
            return True, rows[spelling]
        return False, None

    def wrote(self, sql: str, params: tuple[Any, ...]) -> None:
        """Follow a statement the batch gives (before it runs; see the module docstring)."""
        if not self.rows or not writes_sessions(sql):
            return
        if sql is not ACT and sql != ACT:
            self.rows = {}
            return
        key, now = str(params[0]).lower(), float(params[2])
        for spelling, row in list(self.rows.items()):
            if spelling.lower() == key:
                if row is None:  # the upsert creates it, with defaults this module does not repeat
                    del self.rows[spelling]
                else:
                    self.rows[spelling] = acted(row, now)

    def clear(self) -> None:
        """Forget every row (a rollback, the batch's end)."""
        self.rows = {}
