"""Numbers the PostgreSQL writer hands out itself, batch by batch (issue 15: fewer waits per unit of work).

A fence token (the ``counters`` row ``fence``, and the other ``counters``
rows) or a message's ``seq`` used to cost a unit of work a round trip
(``UPDATE counters … RETURNING value``, ``INSERT INTO messages … RETURNING
seq``) in the middle of the unit, because the unit needs the number next
(the lease row, the receipt, the event, the answer). The writer holds the
fleet-wide advisory lock for the whole batch (see :mod:`coordhub.store.postgres`),
so no other process takes a number meanwhile: the batch reads where every
counter stands with its ``BEGIN`` (same round trip), hands numbers out in
memory, and moves the counters to the highest number it gave out with its
``COMMIT`` (same round trip again).

The rules stay those of the database's own counters: every number handed
out is higher than any committed before it, in this process or another
(batches are serialised by the lock, and each one starts from what the last
committed); numbers of a unit that failed, or of a batch that did not
commit, are never stored, so a later batch may hand them out again, exactly
as a rolled-back ``UPDATE counters`` would have; gaps are possible (a
``setval`` is not undone by a rollback). Not thread-safe: the writer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Row = dict[str, Any]

_SEQ = "messages.seq"
#: Identity columns numbered by the writer: (table, column) → the counter name used here.
NUMBERED = {("messages", "seq"): _SEQ}


class Numbers:
    """Where each counter stands in the running batch, and the highest number the batch gave out.

    ``load`` after ``BEGIN`` (the batch then holds the writer lock), ``take``
    while units run, ``write_back`` for the ``COMMIT``, ``reset`` when the
    batch ends either way.
    """

    def __init__(self) -> None:
        self.sequence: str | None = None  # the messages.seq identity's sequence (pg_get_serial_sequence), once known
        self._next: dict[str, int] | None = None  # next number per counter; None: not read in this batch
        self._top: dict[str, int] = {}  # the highest number handed out per counter in this batch

    @property
    def loaded(self) -> bool:
        """True while the batch knows where its counters stand."""
        return self._next is not None

    def query(self) -> str:
        """The query (no parameters) :meth:`load` takes the answer of: ``(name, value)``, the last number given
        out, of each counter and of the sequence (one statement: a result fewer to fetch a batch)."""
        counters = "SELECT name, value FROM counters"
        if not self.sequence:
            return counters
        return (f"{counters} UNION ALL SELECT '{_SEQ}', CASE WHEN is_called THEN last_value ELSE last_value - 1 "
                f"END FROM {self.sequence}")

    def load(self, rows: Sequence[Row]) -> None:
        """Take the answer of :meth:`query`: each counter's next number is past what is stored and past what
        this batch already gave out (a reload after :meth:`forget`)."""
        last = {str(r["name"]): int(r["value"]) for r in rows}
        self._next = {name: max(value, self._top.get(name, 0)) + 1 for name, value in last.items()}

    def take(self, name: str) -> int | None:
        """The next number of counter ``name``; None when it is not loaded (the caller asks the database)."""
        if self._next is None or name not in self._next:
            return None
        n = self._next[name]
        self._next[name] = n + 1
        self._top[name] = n
        return n

    def forget(self) -> None:
        """SQL the batch ran moved counters (an archive import): read them again before the next :meth:`take`."""
        self._next = None

    def write_back(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Statements (``?`` parameters, so each one's text is the same every batch and is prepared once) that
        move each counter the batch used to its highest number, never down."""
        out: list[tuple[str, tuple[Any, ...]]] = []
        for name, top in self._top.items():
            if name == _SEQ:
                assert self.sequence is not None
                out.append((f"SELECT setval(?::regclass, GREATEST(?::bigint, last_value)) FROM {self.sequence}",
                            (self.sequence, top)))
            else:
                out.append(("UPDATE counters SET value = GREATEST(value, ?::bigint) WHERE name = ?", (top, name)))
        return out

    def reset(self) -> None:
        """The batch ended (committed or not): nothing is loaded and nothing was handed out."""
        self._next, self._top = None, {}
