"""Per-session, per-UTC-day counters of what a session stored: the ``turn_quota`` table (conversation turns,
:mod:`coordhub.core.turnbounds`), the ``write_quota`` table (todos, workflows, work items, component states,
:mod:`coordhub.core.quota`) and the ``message_quota`` table (messages, :mod:`coordhub.core.quota`)."""

from __future__ import annotations

from collections.abc import Callable

from coordhub.store.base import Executor, Row
from coordhub.store.tables.base import Table


class DailyQuota(Table):
    """Writes and bytes per ``(session_id, day)`` in one table, day counted in days since the epoch (UTC); only
    the current day is kept (a charge forgets the session's earlier days)."""

    def __init__(self, ex: Executor, table: str, count: str) -> None:
        super().__init__(ex)
        self._used = f"SELECT {count}, bytes FROM {table} WHERE session_id = ? AND day = ?"
        self._forget = f"DELETE FROM {table} WHERE session_id = ? AND day < ?"
        self._charge = (f"INSERT INTO {table} (session_id, day, {count}, bytes) VALUES (?, ?, 1, ?) "
                        f"ON CONFLICT (session_id, day) DO UPDATE SET {count} = {table}.{count} + 1, "
                        f"bytes = {table}.bytes + excluded.bytes")

    def used(self, session_id: str, day: int) -> Row | None:
        """What the session charged on ``day`` (the count column and ``bytes``), or None when it charged nothing."""
        return self.ex.one(self._used, (session_id, day))

    def charge(self, session_id: str, day: int, size: int, *, first: bool = True) -> None:
        """Count one write of ``size`` bytes against the session's ``day``; with ``first`` (the session had charged
        nothing on ``day``: :meth:`used` was None), forget its earlier days. Its later charges that day leave them:
        they were forgotten by its first (one statement less a write; a clock set back leaves a day behind until
        the next day's first charge)."""
        if first:
            self.ex.execute(self._forget, (session_id, day))
        self.ex.execute(self._charge, (session_id, day, size))


#: A send's charge of its sender's day (parameters: session id, day, bytes): it starts the row again on a new day.
CHARGE = ("INSERT INTO message_quota (session_id, day, messages, bytes) VALUES (?, ?, 1, ?) "
          "ON CONFLICT (session_id) DO UPDATE SET "
          "messages = CASE WHEN message_quota.day = excluded.day THEN message_quota.messages + 1 ELSE 1 END, "
          "bytes = CASE WHEN message_quota.day = excluded.day THEN message_quota.bytes + excluded.bytes "
          "ELSE excluded.bytes END, day = excluded.day")
CHARGE_RETURNING = CHARGE + " RETURNING messages, bytes"
READ_AHEAD = ("day", "messages", "bytes")  # the columns of a row read ahead (coordhub.store.pgahead)
_ROW = f"SELECT {', '.join(READ_AHEAD)} FROM message_quota WHERE session_id = ?"  # a row as read ahead


def charged(row: Row | None, day: int, size: int) -> Row:
    """The row :data:`CHARGE` leaves for one message of ``size`` bytes on ``day``, from the row before it (None:
    the session has none)."""
    if row is None or row["day"] != day:
        return {"day": day, "messages": 1, "bytes": size}
    return {"day": day, "messages": int(row["messages"]) + 1, "bytes": int(row["bytes"]) + size}


class MessageQuota(Table):
    """Messages and bytes a session sent on its last day of sending, one ``message_quota`` row a session.

    A send is one statement, with no read of its own (sends are the hub's
    hottest write, issue 15). Where the unit named its sender's row
    (:class:`~coordhub.store.base.Ahead` ``quotas``: PostgreSQL read it with the
    batch's ``BEGIN``) the new totals are judged from it at once, before the
    upsert is held back with the batch's other writes; where a read costs no
    round trip (SQLite) the row is read first, so that a refused send has
    written nothing (``BatchWriter._run_unit``). Otherwise the upsert
    answers the new totals, judged when they come back
    (:meth:`~coordhub.store.base.Executor.expect`; a refusal rolls the charge
    back with the rest of the unit): on PostgreSQL that check must pass before
    the batch's ``COMMIT`` is sent, one round trip more
    (``tests/bench/test_round_trips.py`` counts both).
    """

    def charge(self, session_id: str, day: int, size: int, check: Callable[[int, int], None]) -> None:
        """Count one message of ``size`` bytes on ``day``; ``check(messages, bytes)`` judges the new totals and
        raises to refuse the message (then nothing is counted)."""
        known, row = self.ex.ahead("message_quota", session_id)
        if not known and self.ex.local:  # read first: a refused send writes nothing (no batch run again for it)
            known, row = True, self.ex.one(_ROW, (session_id,))
        if known:
            after = charged(row, day, size)
            check(after["messages"], after["bytes"])
            self.ex.defer(CHARGE, (session_id, day, size))
            return
        self.ex.expect(CHARGE_RETURNING, (session_id, day, size),
                       lambda rows: check(int(rows[0]["messages"]), int(rows[0]["bytes"])))

    def used(self, session_id: str, day: int) -> Row | None:
        """The session's ``messages`` and ``bytes`` of ``day``, or None when it sent none that day."""
        return self.ex.one("SELECT messages, bytes FROM message_quota WHERE session_id = ? AND day = ?",
                           (session_id, day))
