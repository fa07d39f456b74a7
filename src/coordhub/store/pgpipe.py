"""Statements sent to PostgreSQL in one round trip, straight through libpq (issue 15: the writer's CPU).

psycopg's cursors cost ~100 µs of Python per statement (a cursor, a query
object, an adapters map, a row maker and a pipeline generator each time),
four to five times what libpq and psycopg's own C adapters need. A
:class:`Pipe` keeps the psycopg connection (its connect, its type adapters, its
error classes) and drives the connection's libpq handle itself: parameters
are dumped and rows loaded by psycopg's C ``Transformer``, exactly as a cursor
would (same dumpers, same loaders, so the values a unit of work sees do not
change), and each statement is prepared on the server on its first use, so
later uses skip the parse and plan (what psycopg does after a statement's
fifth use).
"""

from __future__ import annotations

import itertools
import re
import select
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import psycopg
from psycopg import errors, pq
from psycopg.abc import Buffer
from psycopg.adapt import PyFormat, Transformer
from psycopg.pq.abc import PGresult

Row = dict[str, Any]
_MAX_PREPARED = 512  # statements each connection keeps prepared; past it, new ones are sent unprepared
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY)
_AUTO = PyFormat.AUTO


@lru_cache(maxsize=4096)
def numbered(sql: str) -> bytes:
    """SQLite-style ``?`` placeholders to libpq's ``$1, $2, …`` (no SQL of ours has a literal ``?``)."""
    count = iter(range(1, 1 << 16))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql).encode()


_PREPARED_AGAIN = "coordhub_prepared_again"  # set on an error by Pipe.run (refused_as_prepared)


def refused_as_prepared(exc: BaseException) -> bool:
    """Whether ``exc`` is the server refusing a statement the connection had prepared before, which the pipe has
    forgotten since (:meth:`Pipe.run`): running it again prepares it anew.

    The server refuses a prepared statement whose result's columns changed
    since it was prepared (``cached plan must not change result type``,
    SQLSTATE 0A000: a ``SELECT *`` of a table a newer hub's migration, or an
    operator, altered while this hub runs). Another 0A000 error, or one of a
    statement prepared in the same round trip (it cannot be out of date), is
    not such a refusal: running it again would fail again.
    """
    return getattr(exc, _PREPARED_AGAIN, False) is True


# A statement ready to send: its SQL ($n placeholders), its parameters dumped (None: a one-off text, sent
# unprepared), their type oids and formats.
_Ready = tuple[bytes, "Sequence[Buffer | None] | None", tuple[int, ...], Sequence[pq.Format]]
#: A statement to run: SQL with ``?`` placeholders and its parameters; or, as ``bytes``, a one-off text with no
#: parameters (its values quoted in it: a read ahead), sent as it is and never prepared.
Statement = tuple[str | bytes, tuple[Any, ...]]


class Answer(NamedTuple):
    """What one statement returned: its rows (empty for a command) and the rows it changed or returned."""

    rows: list[Row]
    rowcount: int


class Outcome(NamedTuple):
    """What a :meth:`Pipe.run` did: the answers of the statements before ``failed``, and why ``failed`` failed.

    ``failed`` is the position of the first statement that failed
    (``len(statements)`` when none did); the statements after it never ran
    (and outside ``BEGIN`` those before it are undone too: a pipeline up to
    its sync is one implicit transaction).
    ``error`` is the database's error for it (a ``psycopg.Error``), or the
    error its parameters raised when they could not be adapted (then it was
    never sent, and the transaction is not aborted); None when none failed.
    """

    answers: list[Answer]
    failed: int
    error: BaseException | None


class _Open:
    """A pipeline sent in part (:meth:`Pipe.send_ahead`) and not yet ended by a sync."""

    __slots__ = ("fresh", "slots", "commands")

    def __init__(self) -> None:
        self.fresh: dict[tuple[bytes, tuple[int, ...]], tuple[bytes, int]] = {}  # prepared in it: name, slot
        self.slots: list[tuple[int, bytes | None]] = []  # each statement's result's position, its name
        self.commands = 0


class Pipe:
    """One psycopg connection's libpq handle, driven directly (the psycopg connection stays idle meanwhile).

    Not thread-safe: one thread uses it (the writer, or one reader). A
    connection error (``psycopg.OperationalError``) leaves it unusable: close
    the connection.
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._pg = conn.pgconn
        self._encoding = conn.info.encoding
        self._tx = Transformer(conn)
        self._prepared: dict[tuple[bytes, tuple[int, ...]], bytes] = {}  # confirmed by the server
        self._columns: dict[bytes, list[str]] = {}  # the column names of a prepared statement's rows
        self._names = itertools.count()  # a name is never reused: one whose PREPARE failed may still be taken
        self._poll = select.poll()
        self._poll.register(self._pg.socket, select.POLLIN)
        self._open: _Open | None = None  # statements sent and not yet synced (send_ahead)

    def send_ahead(self, statements: Sequence[Statement]) -> int:
        """Send ``statements`` in order into the open pipeline (opening it), without waiting for their answers:
        the server runs them while the caller goes on. The next :meth:`run` ends the pipeline and returns their
        answers first. Returns how many were sent: it stops before one whose parameters cannot be adapted
        (:meth:`run` then reports that one).

        Raises ``psycopg.OperationalError`` when the connection is lost.
        """
        ready, _ = self._dump(statements)
        if ready:
            self._submit(ready)
        return len(ready)

    def run(self, statements: Sequence[Statement]) -> Outcome:
        """Send ``statements`` (``?`` placeholders) in order in one pipeline, one round trip; see :class:`Outcome`.

        The answers are those of the statements sent ahead (:meth:`send_ahead`) since the last run, then of
        ``statements``. Raises ``psycopg.OperationalError`` when the connection is lost.
        """
        ready, bad = self._dump(statements)
        self._submit(ready, flush=False)  # the sync right after sends them with itself: one system call, not two
        results, fresh = self._sync()
        answers: list[Answer] = []
        for res, name in results:
            if res.status not in _OK:
                error = errors.error_from_result(res, encoding=self._encoding)
                if name is not None and name not in fresh and isinstance(error, errors.FeatureNotSupported):
                    self._forget(name)
                    setattr(error, _PREPARED_AGAIN, True)
                return Outcome(answers, len(answers), error)
            answers.append(self._answer(res, name))
        return Outcome(answers, len(answers), bad)

    def _forget(self, name: bytes) -> None:
        """Prepare the statement ``name`` again at its next use (:func:`refused_as_prepared`: the server goes on
        refusing it as it is); the old one stays on the server, unused, until the connection closes (it cannot
        be deallocated in the transaction its failure aborted)."""
        for key in [key for key, prepared in self._prepared.items() if prepared == name]:
            del self._prepared[key]
        self._columns.pop(name, None)

    def discard(self) -> None:
        """End the open pipeline, if any (statements a failed batch sent ahead), dropping its answers.

        Raises ``psycopg.OperationalError`` when the connection is lost.
        """
        if self._open is not None:
            self._sync()

    def simple(self, text: bytes) -> list[Answer]:
        """Run ``text`` (statements without parameters, ``;``-separated) in one round trip; every answer.

        A pipeline left open (statements sent ahead by a batch that failed before it ran them to the end) is
        ended first, its answers dropped. Raises the database's error (``psycopg.Error``) when a statement fails.
        """
        done = self.simple_outcome(text)
        if done.error is not None:
            raise done.error
        return done.answers

    def simple_outcome(self, text: bytes) -> Outcome:
        """:meth:`simple`, telling where it stopped instead of raising the database's error: the answers of the
        statements before the first that failed (the server ran none after it), and its error.

        Raises ``psycopg.OperationalError`` when the connection is lost.
        """
        self.discard()
        pg = self._pg
        pg.send_query(text)
        self._flush()
        answers: list[Answer] = []
        failure: BaseException | None = None
        while (res := self._result()) is not None:
            if res.status not in _OK:
                failure = failure or errors.error_from_result(res, encoding=self._encoding)
            elif failure is None:
                answers.append(self._answer(res, None))
        return Outcome(answers, len(answers), failure)

    def _dump(self, statements: Sequence[Statement]) -> tuple[list[_Ready], BaseException | None]:
        """The statements ready to send, up to the first whose parameters psycopg cannot adapt (and its error)."""
        ready: list[_Ready] = []
        tx = self._tx
        for sql, params in statements:
            if isinstance(sql, bytes):
                ready.append((sql, None, (), ()))
                continue
            try:
                values = tx.dump_sequence(params, [_AUTO] * len(params))
            except Exception as exc:  # a value psycopg cannot adapt: the statements before it still run
                return ready, exc
            ready.append((numbered(sql), values, tx.types or (), tx.formats or ()))
        return ready, None

    def _submit(self, ready: list[_Ready], flush: bool = True) -> None:
        """Put ``ready`` into the open pipeline (opening it), each prepared on its first use; send them unless
        ``flush`` is false (libpq still sends whenever its buffer fills)."""
        pg = self._pg
        if self._open is None:
            pg.enter_pipeline_mode()
            self._open = _Open()
        pipeline = self._open
        try:
            for sql, values, types, formats in ready:
                if values is None:  # a one-off text: preparing it would only fill the server's cache
                    pg.send_query_params(sql, None)
                    pipeline.slots.append((pipeline.commands, None))
                    pipeline.commands += 1
                    continue
                key = (sql, types)
                name = self._prepared.get(key)
                if name is None and key in pipeline.fresh:
                    name = pipeline.fresh[key][0]
                if name is None and len(self._prepared) + len(pipeline.fresh) < _MAX_PREPARED:
                    name = f"coord_{next(self._names)}".encode()
                    pg.send_prepare(name, sql, param_types=types)
                    pipeline.fresh[key] = (name, pipeline.commands)
                    pipeline.commands += 1
                if name is None:
                    pg.send_query_params(sql, values, param_types=types, param_formats=formats)
                else:
                    pg.send_query_prepared(name, values, param_formats=formats)
                pipeline.slots.append((pipeline.commands, name))
                pipeline.commands += 1
            if flush:
                self._flush()
        except BaseException:
            self._sync()  # a lost connection raises again here; the pipeline is not left half-known
            raise

    def _sync(self) -> tuple[list[tuple[PGresult, bytes | None]], set[bytes]]:
        """End the open pipeline with a sync; return each statement's result and prepared name, in order, and the
        names of those prepared in this pipeline."""
        pg = self._pg
        pipeline, self._open = self._open, None
        if pipeline is None:
            return [], set()
        try:
            pg.pipeline_sync()
            self._flush()
            results = []
            for _ in range(pipeline.commands):
                res = self._result()
                assert res is not None
                while self._result() is not None:  # a statement's results end with a NULL
                    pass
                results.append(res)
            sync = self._result()
            assert sync is not None and sync.status == pq.ExecStatus.PIPELINE_SYNC
        finally:
            if pg.pipeline_status != pq.PipelineStatus.OFF and not pg.is_busy():
                pg.exit_pipeline_mode()
        for key, (name, slot) in pipeline.fresh.items():
            if results[slot].status == pq.ExecStatus.COMMAND_OK:
                self._prepared[key] = name
        # A statement whose PREPARE failed (no such table, a syntax error) is itself only aborted: the server's
        # error is the PREPARE's. Every statement after the first failure is aborted (so the last result tells
        # whether any failed), and that first one is the cause.
        failed = None if not results or results[-1].status in _OK else next(
            (slot for slot, res in enumerate(results) if res.status == pq.ExecStatus.FATAL_ERROR), None)
        own = [(results[failed] if failed is not None and slot > failed else results[slot], name)
               for slot, name in pipeline.slots]
        return own, {name for name, _ in pipeline.fresh.values()}

    def _flush(self) -> None:
        pg = self._pg
        while pg.flush():  # the socket's buffer is full: wait until the server reads (and answers)
            select.select([pg.socket], [pg.socket], [])
            pg.consume_input()

    def _result(self) -> PGresult | None:
        pg = self._pg
        while pg.is_busy():
            self._poll.poll()  # releases the GIL while the server works
            pg.consume_input()
        return pg.get_result()

    def _answer(self, res: PGresult, name: bytes | None) -> Answer:
        """The rows of ``res`` as dicts; ``name``: the prepared statement it came from (its columns never change)."""
        count = res.command_tuples
        if res.status != pq.ExecStatus.TUPLES_OK:
            return Answer([], -1 if count is None else count)
        names = self._columns.get(name) if name is not None else None
        if names is None:
            names = [(res.fname(i) or b"").decode() for i in range(res.nfields)]
            if name is not None:
                self._columns[name] = names
        self._tx.set_pgresult(res)
        rows: list[Row] = self._tx.load_rows(0, res.ntuples, lambda values: dict(zip(names, values, strict=True)))
        return Answer(rows, len(rows) if count is None else count)
