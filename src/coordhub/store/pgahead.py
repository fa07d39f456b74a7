"""Rows a PostgreSQL write batch reads with its ``BEGIN`` (issue 15: a round trip per send, per release).

A send looks its recipient up (:meth:`~coordhub.store.tables.sessions.Sessions.by_key`)
and a release the lease it ends (:meth:`~coordhub.store.tables.leases.Leases.get`)
before either can decide anything, and on PostgreSQL each lookup was a round
trip of its own, one per unit of a batch. Units that name their lookups
(:class:`~coordhub.store.base.ReadsAhead`) have those rows read in the batch's
first round trip instead, and a lookup is answered from them while they are
current.

Current means: what a ``SELECT`` at that point of the batch would return. The
batch's own writes are followed as they are given (held back or not, they run
before any later read), by what their SQL says:

* the sender's upsert that every unit runs (:data:`~coordhub.store.tables.sessions.ACT`)
  is applied to the row it touches (:func:`~coordhub.store.tables.sessions.acted`);
  a spelling that had no row is dropped (asked again);
* ``UPDATE <table> SET … WHERE <key> = ?`` (one row by its key) drops that key;
* a plain ``INSERT`` (no ``ON CONFLICT``) only adds rows: it drops the keys
  known to have none;
* any other statement that writes the table drops all of its rows, and a unit
  rolled back to its savepoint drops every row of every table.

Rows read under the writer's lock change only through the batch itself: every
write to the database goes through a writer holding that lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from coordhub.store.base import Ahead, Row
from coordhub.store.tables.sessions import ACT, acted

MAX_AHEAD = 256  # keys read ahead per table per batch; a lookup past them is asked as before
KEY_COLUMN = "ahead_key"  # the key each row read ahead answers


@dataclass(frozen=True)
class _Table:
    """How rows of one table are read ahead and followed."""

    name: str
    joins: str  # the row for key k.ahead_key
    written: str  # the column a one-row UPDATE names in its WHERE
    keys: frozenset[str]  # columns that say which row is which (a one-row UPDATE must not set them)
    fold: Callable[[str], str]  # keys that name the same row compare equal folded
    shape: re.Pattern[str]  # well-formed keys (others are never read ahead)


TABLES = (
    # Session ids as the core accepts them: ASCII, so Python's lower() is the database's lower() (checked per
    # connection: ASCII_LOWER; a Turkish collation, say, folds I otherwise, and then no session is read ahead).
    _Table("sessions", "sessions t ON t.session_key = lower(k.ahead_key)", "session_id",
           frozenset({"session_id", "session_key"}), str.lower, re.compile(r"[A-Za-z0-9_.@+/-]{1,200}")),
    _Table("leases", "leases t ON t.id = k.ahead_key", "id", frozenset({"id"}), str, re.compile(r"[0-9a-f-]{36}")),
)
ASCII_LOWER = b"SELECT lower('ABCDEFGHIJKLMNOPQRSTUVWXYZ') = 'abcdefghijklmnopqrstuvwxyz' AS ok"
_BY_NAME = {t.name: t for t in TABLES}

_ADDS, _ONE_ROW, _OTHER = "adds", "one row", "other"


@lru_cache(maxsize=4096)
def effect(sql: str) -> tuple[tuple[str, str], ...]:
    """``(table, kind)`` for each followed table ``sql`` writes (kind: what it may change); empty if none.

    A statement that writes two of them changes anything in both.
    """
    text = " ".join(sql.split())
    written = [t for t in TABLES if re.search(
        rf"\b(?:insert\s+into|update|delete\s+from|truncate(?:\s+table)?)\b[^;]*?\b{t.name}\b", text,
        re.IGNORECASE)]
    if len(written) != 1:
        return tuple((t.name, _OTHER) for t in written)
    table = written[0]
    name = re.escape(table.name)
    if sql == ACT:
        return ((table.name, ACT),)
    one = re.fullmatch(rf"UPDATE {name} SET ((?:[a-z_]+ = \?, )*[a-z_]+ = \?) WHERE {table.written} = \?", text)
    if one is not None and not {s.split(" = ")[0] for s in one.group(1).split(", ")} & table.keys:
        return ((table.name, _ONE_ROW),)
    if re.match(rf"INSERT INTO {name} \(", text) and not re.search(r"\bON\s+CONFLICT\b", text, re.IGNORECASE):
        return ((table.name, _ADDS),)
    return ((table.name, _OTHER),)


def query(ahead: Ahead, literal: Callable[[str], str], *, sessions: bool = True) -> list[tuple[str, bytes]]:
    """The reads for ``ahead`` (each key quoted by ``literal``): ``(table, SQL)`` for each table with keys.

    Only well-formed keys are read (a lookup of anything else cannot have been
    named by a unit the core accepted), each once, at most :data:`MAX_AHEAD`;
    sessions only with ``sessions`` (the database folds ASCII as Python does).
    """
    out = []
    for table, keys in (("sessions", ahead.sessions if sessions else ()), ("leases", ahead.leases)):
        spec = _BY_NAME[table]
        wanted = list(dict.fromkeys(k for k in keys if spec.shape.fullmatch(k)))[:MAX_AHEAD]
        if wanted:
            out.append((table, (f"SELECT k.{KEY_COLUMN}, t.* FROM unnest(ARRAY[{', '.join(map(literal, wanted))}]"
                                f"::text[]) AS k({KEY_COLUMN}) LEFT JOIN {spec.joins}").encode()))
    return out


class RowsAhead:
    """The rows read ahead for one batch, by table and by the key each unit named (empty between batches)."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Row | None]] = {}

    def load(self, table: str, rows: Sequence[Row]) -> None:
        """Keep the answer of a :func:`query`: each key's row, or None when there is none under it."""
        kept: dict[str, Row | None] = {}
        for row in rows:
            key = row.pop(KEY_COLUMN)
            kept[key] = None if all(v is None for v in row.values()) else row
        self.rows[table] = kept

    def get(self, table: str, key: str) -> tuple[bool, Row | None]:
        """``(True, row or None)`` when ``key`` was read ahead and is current, else ``(False, None)``."""
        rows = self.rows.get(table)
        if rows is not None and key in rows:
            return True, rows[key]
        return False, None

    def wrote(self, sql: str, params: tuple[Any, ...]) -> None:
        """Follow a statement the batch gives (before it runs; see the module docstring)."""
        if not self.rows:
            return
        for table, kind in effect(sql):
            rows = self.rows.get(table)
            if rows is None:
                continue
            if kind == _OTHER:
                del self.rows[table]
            elif kind == _ADDS:
                for key in [k for k, row in rows.items() if row is None]:
                    del rows[key]
            else:  # one row, by the key in its last parameter (ACT: its first, and the time it sets)
                fold = _BY_NAME[table].fold
                written = fold(str(params[0] if kind == ACT else params[-1]))
                for key, row in list(rows.items()):
                    if fold(key) == written:
                        if kind == ACT and row is not None:
                            rows[key] = acted(row, float(params[2]))
                        else:
                            del rows[key]

    def clear(self) -> None:
        """Forget every row (a rollback, the batch's end)."""
        self.rows = {}
