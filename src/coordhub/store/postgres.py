"""The PostgreSQL backend, for larger fleets and several hub processes.

It keeps the SQLite backend's shape: one writer connection per hub with group
commit, reads on a few reader threads with a connection each. Each write batch first takes a transaction-
scoped advisory lock, so the batches of several hub processes sharing one
database are serialised too, and every read-then-write decision (lease free?
key used?) holds across the whole fleet, with ids increasing in commit order.
Durability is PostgreSQL's commit (``synchronous_commit`` as the server sets it).

Time is the database's: each batch reads PostgreSQL's clock with its writer
lock and the hub's clock follows it (:class:`~coordhub.clock.OffsetClock`),
so hubs whose own clocks disagree by minutes still agree on every expiry.
Each batch also announces its commit to the other hubs (:mod:`coordhub.store.announce`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import psycopg
from psycopg.rows import dict_row

from coordhub.clock import OffsetClock
from coordhub.errors import Unavailable
from coordhub.store import announce, migrate, pgahead
from coordhub.store.base import (
    Ahead,
    Row,
    Scan,
    Scanned,
    counter_from_database,
    insert_numbered_by_database,
    insert_sql,
)
from coordhub.store.pgnumbers import NUMBERED, Numbers
from coordhub.store.pgpipe import Answer, Pipe, Statement, refused_as_prepared
from coordhub.store.pgslots import AdvisorySlots
from coordhub.store.ratebuckets import SharedBuckets
from coordhub.store.tables.system import Halts
from coordhub.store.threaded import ThreadedStore
from coordhub.store.writer import UnitLost

T = TypeVar("T")
log = logging.getLogger("coordhub.store")

# Arbitrary but fixed: the advisory lock key that serialises writers (ASCII "coordhub").
_WRITER_LOCK = 0x636F6F7264687562
_MIGRATION_LOCK = _WRITER_LOCK + 1
_CONNECT_TIMEOUT = 3  # seconds
# clock_timestamp(), not now(): the time when the lock was granted, not when the transaction began.
# READ COMMITTED whatever the server's default: each statement after the lock must see what the last batch committed.
_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
_NOW = "extract(epoch FROM clock_timestamp())::float8 AS db_now"
_LOCK_AND_TIME = f"SELECT pg_advisory_xact_lock({_WRITER_LOCK}), {_NOW}"
# A batch begun in the round trip of the last one's COMMIT does not wait for the lock: while another hub holds it,
# the server would hold back the COMMIT's answer too (see _Connection.commit_and_begin).
_TRY_LOCK_AND_TIME = f"SELECT pg_try_advisory_xact_lock({_WRITER_LOCK}) AS locked, {_NOW}"


class _Held(NamedTuple):
    """A statement held back to travel with the next one (see :class:`PostgresExecutor`)."""

    sql: str
    params: tuple[Any, ...]
    unit: int  # the batch position of the unit that gave it (counted by the writer's SAVEPOINTs), or _BATCH
    check: Callable[[list[Row]], None] | None  # an expect()'s check, run on its rows


_SAVEPOINT, _RELEASE, _ROLLBACK_TO = "SAVEPOINT unit", "RELEASE SAVEPOINT unit", "ROLLBACK TO SAVEPOINT unit"
_BATCH = -1  # what a statement given after the last unit ended belongs to: the batch (its failure loses it whole)
SEND_AHEAD = 32  # statements held in a write batch that are sent on without waiting (PostgresExecutor._send_ahead)


class PostgresExecutor:
    """Runs SQL on one connection's :class:`~coordhub.store.pgpipe.Pipe`, holding back what nobody waits for.

    Each statement sent alone is a network round trip. Statements whose answer
    is not needed yet are held back and sent, in order, with the next one that
    needs an answer, in one pipeline (one round trip for all): the writer's
    ``SAVEPOINT``/``RELEASE`` around each unit, :meth:`defer`'s writes, and
    :meth:`expect`'s queries (whose checks run as soon as their answers are
    back, before any later answer is used). A unit that ended without error
    leaves its checks held too (:meth:`finish_unit`): units that only write
    (the sender's check of every unit, its writes) share one round trip. What
    is still held when the batch commits is sent just before the ``COMMIT``
    if a check waits (a check must pass before the commit), else with it.

    A held statement may thus fail, or its check refuse, on a later unit's
    round trip. Each one carries the position of its unit in the batch (the
    writer's ``SAVEPOINT`` statements count them), so the failure is laid at
    the right unit's door: on the unit's own statement it is raised there, as
    if it had failed at once; a unit already finished raises
    :class:`~coordhub.store.writer.UnitLost` and the writer runs the batch
    again without it, settling each unit's checks as it ends.

    In a write batch, fence tokens and other counters, and message ``seq``
    values, come from the batch's :class:`~coordhub.store.pgnumbers.Numbers`
    (no round trip); outside one (a reader's connection) from the database.
    Lookups the batch's units named (sessions, leases) are answered from the
    rows read with its ``BEGIN`` (:mod:`coordhub.store.pgahead`).
    """

    local = False

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self._held: list[_Held] = []
        self._sent = 0  # how many of _held (the first ones) were sent ahead: the server is running them
        self._savepoint_at: int | None = None  # the running unit's SAVEPOINT in _held, while none of it was sent
        self._stop_ahead = False  # one held could not be adapted: nothing more is sent ahead until it is reported
        self._unit = -1  # the running unit's position in the batch; -1 before its first SAVEPOINT
        self._drop_release = False  # the failed unit's SAVEPOINT was never sent: nothing to roll back or release
        self._ahead_at_unit = 0  # rows_ahead.writes when the running unit began (its SAVEPOINT)
        # A check that failed: every later statement of its unit raises it again, and so does settle(), so the
        # unit fails even if its code caught the exception (as some catch every CoordError of their own).
        self._refused: BaseException | None = None
        self.numbers = Numbers()
        self.rows_ahead = pgahead.RowsAhead()  # rows read with the batch's BEGIN, kept current
        self._in_batch = False  # between the writer's BEGIN and the batch's end: numbers are handed out here
        self._ended = False  # the last unit ended (finish_unit) and no other began: statements are the batch's

    def start_batch(self, counters: list[Row] | None = None) -> None:
        """Forget what a failed batch left held back (its transaction is gone) and count units from 0.

        ``counters``: the answer of ``numbers.query()`` read with the
        batch's ``BEGIN`` (a write batch), or None (the batch ended).
        """
        self._held, self._unit, self._drop_release, self._refused, self._ended = [], -1, False, None, False
        self._sent, self._stop_ahead, self._savepoint_at = 0, False, None
        self.numbers.reset()
        self.rows_ahead.clear()
        self._in_batch = counters is not None
        if counters is not None:
            self.numbers.load(counters)

    def _refuse_again(self) -> None:
        if self._refused is not None:
            raise self._refused

    @property
    def _own(self) -> int:
        """Who a statement given now belongs to: the running unit's position, or ``_BATCH`` after the last."""
        return _BATCH if self._ended else max(self._unit, 0)

    def _hold(self, sql: str, params: tuple[Any, ...], check: Callable[[list[Row]], None] | None = None) -> None:
        self.rows_ahead.wrote(sql, params)
        self._held.append(_Held(sql, params, self._own, check))
        if self._in_batch and len(self._held) - self._sent >= SEND_AHEAD and not self._stop_ahead:
            self._send_ahead()

    def _send_ahead(self) -> None:
        """Send what is held and not sent yet into the open pipeline, without waiting: the server runs a batch's
        writes while its later units run here, instead of all of them after its last (its ``COMMIT``'s round
        trip carried every write of a batch whose lookups were all read ahead). Their answers are read, and
        their failures laid at their units' doors, with the next round trip, as for any statement held."""
        unsent = self._held[self._sent:]
        sent = self.pipe.send_ahead([(h.sql, h.params) for h in unsent])
        self._sent += sent
        self._savepoint_at = None if sent else self._savepoint_at
        self._stop_ahead = sent < len(unsent)  # the next round trip reports the one that could not be adapted

    def _send(self, sql: str, params: tuple[Any, ...]) -> Answer:
        self._refuse_again()
        self.rows_ahead.wrote(sql, params)
        return self._pipeline([(sql, params)], self._own)[0]

    def _pipeline(self, tail: Sequence[Statement], own: int | None, optional: int = 0) -> list[Answer]:
        """Send what is held, then ``tail``, in one round trip; run the checks; return ``tail``'s answers.

        A held statement of unit ``own`` (or of the batch) that fails, or whose
        check refuses, raises its error here; those of units that have ended
        raise :class:`UnitLost`. A failure of one of the last ``optional``
        statements of ``tail`` raises nothing: the answers returned stop before it.
        """
        held, sent, self._held, self._sent, self._stop_ahead = self._held, self._sent, [], 0, False
        self._savepoint_at = None
        unsent = held[sent:]
        done = self.pipe.run([*((h.sql, h.params) for h in unsent), *tail] if unsent else tail)
        self._check(held, done.answers, own)  # a check that came before a failure wins, as it would have at once
        if done.error is not None:
            if done.failed >= len(held) + len(tail) - optional:
                return done.answers[len(held):]
            if done.failed < len(held) and held[done.failed].unit not in (own, _BATCH):
                raise UnitLost(held[done.failed].unit, done.error) from done.error
            raise done.error
        return done.answers[len(held):]

    def _check(self, held: list[_Held], answers: list[Answer], own: int | None) -> None:
        """Run the checks of the answered statements, in order; see :meth:`_pipeline` for what a refusal raises.

        Only the first refusal counts: a later unit's check may have been
        decided by what the refused unit did (its upsert of the same session,
        in another spelling), which the batch's rollback undoes, so the later
        units are judged again in the rerun.
        """
        for h, answer in zip(held, answers, strict=False):
            if h.check is None:
                continue
            try:
                h.check(answer.rows)
            except BaseException as exc:
                if h.unit not in (own, _BATCH):  # a unit that ended
                    raise UnitLost(h.unit, exc) from None
                self._refused = exc
                raise

    def changes(self) -> int:
        raise NotImplementedError("a PostgreSQL unit is isolated by its savepoint (held back until it writes)")

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        if not params and sql in (_SAVEPOINT, _RELEASE, _ROLLBACK_TO):
            return self._savepoint(sql)
        return self._send(sql, params).rowcount

    def _savepoint(self, sql: str) -> int:
        if sql == _SAVEPOINT:
            self._unit += 1
            self._ended = False
            self._savepoint_at = len(self._held)  # where it is held, until anything held is sent (_pipeline, ahead)
            self._hold(sql, ())
            self._ahead_at_unit = self.rows_ahead.writes
        elif sql == _RELEASE:
            at, self._savepoint_at = self._savepoint_at, None
            if self._drop_release:
                pass
            elif at is not None and self._held[at].sql == _SAVEPOINT and self._held[at].unit == self._unit:
                # Nothing of the unit reached the server while it ran, so nothing of it can need undoing: the
                # savepoint and its release would be two statements doing nothing. Its writes stay held; one
                # that fails later loses the unit as before (UnitLost), savepoint or not.
                del self._held[at]
            else:
                self._hold(sql, ())
            self._drop_release = False
            self._ended = True  # (a failed unit's too: what comes before the next SAVEPOINT is the batch's)
        else:  # the running unit failed: what it still holds would only be undone
            self._refused = None
            self._savepoint_at = None
            if self.rows_ahead.writes != self._ahead_at_unit:  # rows it changed are back as they were: read them
                self.rows_ahead.clear()  # again (a unit refused before it wrote, as most refused claims, changed none)
            sent, unsent = self._held[:self._sent], self._held[self._sent:]  # what was sent ahead stays
            mine = [h for h in unsent if h.unit == self._unit]
            self._held = sent + [h for h in unsent if h.unit != self._unit]
            if mine and mine[0].sql == _SAVEPOINT:  # it never reached the server: nothing to undo
                self._drop_release = True
                return 0
            if any(h.unit == self._unit for h in sent):
                self._answers_of_failed_unit()
            self._send(sql, ())
        return 0

    def _answers_of_failed_unit(self) -> None:
        """Read the answers of what the failing unit sent ahead before it is undone. One of its own statements
        may have failed there: that is the unit's failure, being undone with it, not the batch's (left in the
        pipeline, it would fail the ROLLBACK TO, and with it every unit of the batch). An earlier unit's
        failure (``UnitLost``) and a lost connection are raised."""
        try:
            self._pipeline([], self._own)
        except UnitLost:
            raise
        except Exception as exc:
            if _is_unavailable(exc):
                raise
            self._refused = None

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        rows = self._send(sql, params).rows
        return rows[0] if rows else None

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        return self._send(sql, params).rows

    def many(self, queries: list[tuple[str, tuple[Any, ...]]]) -> list[list[Row]]:
        """Run independent queries, in order, in one round trip; return each one's rows."""
        self._refuse_again()
        for sql, params in queries:
            self.rows_ahead.wrote(sql, params)
        return [answer.rows for answer in self._pipeline(queries, self._own)]

    def parts(self, queries: list[tuple[str, tuple[Any, ...]]], order: str) -> list[list[Row]]:
        return self.many(queries)  # one round trip already; each query carries its own ORDER BY

    def defer(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._hold(sql, params)

    def _number(self, name: str) -> int | None:
        """The batch's next number of counter ``name``; None outside a write batch or for one it does not keep."""
        if not self._in_batch:
            return None
        if not self.numbers.loaded:  # moved by SQL earlier in the batch (counters_moved): read them again
            [counters] = self.many([(self.numbers.query(), ())])
            self.numbers.load(counters)
        return self.numbers.take(name)

    def next_value(self, counter: str) -> int:
        n = self._number(counter)
        return counter_from_database(self, counter) if n is None else n

    def insert_numbered(self, table: str, row: Row, column: str) -> int:
        name = NUMBERED.get((table, column))
        n = self._number(name) if name is not None else None
        if n is None:
            return insert_numbered_by_database(self, table, row, column)
        numbered = {**row, column: n}
        self._hold(insert_sql(table, numbered, clause="OVERRIDING SYSTEM VALUE"), tuple(numbered.values()))
        return n

    def counters_moved(self) -> None:
        self.numbers.forget()

    def ahead(self, table: str, key: str) -> tuple[bool, Row | None]:
        return self.rows_ahead.get(table, key)

    def scanned(self, scan: Scan) -> Scanned | None:
        return self.rows_ahead.scanned(scan)

    def expect(self, sql: str, params: tuple[Any, ...], check: Callable[[list[Row]], None]) -> None:
        self._hold(sql, params, check)

    def settle(self) -> None:
        self._refuse_again()
        if self._checks_held():
            self._pipeline([], self._own)

    def finish_unit(self) -> None:
        self._refuse_again()
        self._ended = True

    def _checks_held(self, units_only: bool = False) -> bool:
        return any(h.check is not None and not (units_only and h.unit == _BATCH) for h in self._held)

    def commit(self, tail: list[str], then: Sequence[Statement] = ()) -> list[Answer] | None:
        """Send what is held, then ``tail`` (parameterless statements ending in ``COMMIT``), then ``then``.

        One round trip, or two when a unit's check still waits: it must pass
        before the ``COMMIT`` is sent. A held write that fails here, or a check
        that refuses, fails its unit: :class:`UnitLost` when the batch has
        several units (each in its savepoint), else the error itself. The
        batch's own reads (its ``before`` hook's, which refuse nothing) travel
        with the ``COMMIT``. The counters the batch took numbers from move with
        it (:class:`Numbers`).

        ``then``: statements run after the ``COMMIT`` in its round trip (the
        next batch's ``BEGIN`` and reads: :meth:`_Connection.commit_and_begin`).
        Returns their answers; None when there were none, or when one of them
        failed: the batch is committed all the same, and the connection is
        left in a failed transaction (roll it back).
        """
        own = None if self._unit >= 0 else 0
        if self._checks_held(units_only=True):
            self._pipeline([], own)
        moves = self.numbers.write_back()
        self._in_batch = False
        self.rows_ahead.clear()  # after the COMMIT other hubs may write them: nothing outside a batch reads them
        if (not moves and not self._sent and all(h.sql in (_SAVEPOINT, _RELEASE) for h in self._held)
                and not any(params for _, params in then)):  # one simple query
            statements = [h.sql for h in self._held] + tail
            self._held = []
            text = "; ".join(statements).encode()
            if not then:
                self.pipe.simple(text)
                return None
            done = self.pipe.simple_outcome(b"; ".join([text, *(sql if isinstance(sql, bytes) else sql.encode()
                                                                 for sql, _ in then)]))
            if done.error is not None and done.failed < len(statements):
                raise done.error
            answers = done.answers[len(statements):]
        else:
            answers = self._pipeline([*moves, *((sql, ()) for sql in tail), *then], own, optional=len(then))
            answers = answers[len(moves) + len(tail):]
        return answers if then and len(answers) == len(then) else None


class _Connection:
    def __init__(self, conn: psycopg.Connection[Any], origin: str, clock: OffsetClock) -> None:
        self.conn = conn
        self._clock = clock
        self._executor = PostgresExecutor(Pipe(conn))
        # Announce the batch to every hub (delivered only if it commits), in COMMIT's round trip.
        self._commit_tail = [announce.notify_sql(origin), "COMMIT"]
        self._begin: list[Statement] = []  # built on the first batch, once the schema is known (see begin)
        self._then_begin: list[Statement] = []  # commit_and_begin's BEGIN (built with _begin)
        self._abandoned = False  # a transaction commit_and_begin opened and did not take: rolled back by begin
        self._fold_ok = False  # the database's lower() folds ASCII as Python's does (sessions read ahead)
        self._planned_as_before: Statement = ("", ())  # undoes pgahead.PLAN_BY_INDEX after the reads ahead

    @property
    def executor(self) -> PostgresExecutor:
        return self._executor

    def _learn(self) -> None:
        """What every batch's ``BEGIN`` reads, and how rows are read ahead: asked once, on the first batch."""
        ex = self._executor
        named = ex.pipe.simple(b"SELECT pg_get_serial_sequence('messages', 'seq') AS name")[0].rows
        ex.numbers.sequence = named[0]["name"] if named else None
        reads = [Halts.STANDING, ex.numbers.query()]
        self._fold_ok = bool(ex.pipe.simple(pgahead.ASCII_LOWER)[0].rows[0]["ok"])
        [settings] = ex.pipe.simple(pgahead.PLANNER_SETTINGS.encode())
        self._planned_as_before = pgahead.planned_as_before(settings.rows[0])
        columns, encoding = ex.pipe.simple(pgahead.LAYOUT.encode())
        ex.rows_ahead.layout = pgahead.Layout(columns.rows, str(encoding.rows[0]["server_encoding"]))
        # Last: until it is set, each batch asks all of the above again (one that failed part way is not kept).
        self._then_begin = [(sql, ()) for sql in (_BEGIN, _TRY_LOCK_AND_TIME, *reads)]
        self._begin = [(sql, ()) for sql in (_BEGIN, _LOCK_AND_TIME, *reads)]

    def begin(self, ahead: Ahead | None = None) -> list[Row]:
        ex = self._executor
        if not self._begin:
            self._learn()
        ex.start_batch()  # a failed batch may have left statements held: its transaction is gone
        # One round trip: BEGIN, the lock, whose answer carries the database's clock (see OffsetClock), the
        # standing halts, which every unit of the batch checks (Halts.batch), where the counters stand, and
        # the rows its units will look up (after the lock: what the last batch committed).
        reads = self._reads(ahead)
        abandoned, self._abandoned = self._abandoned, False
        ex.pipe.discard()  # what a failed batch sent ahead and never synced
        done = ex.pipe.run([*[("ROLLBACK", ())] * abandoned, *self._begin, *self._planned(reads)])
        if done.error is not None:
            # A read ahead of whole rows of leases, after a column was added (a newer hub's migration, an operator),
            # is refused as it was prepared (refused_as_prepared): the writer runs the batch again (is_stale).
            raise done.error
        return self._begun(done.answers[abandoned:], ahead, reads)

    def commit_and_begin(self, ahead: Ahead | None) -> list[Row] | None:
        """:meth:`commit`, and in the same round trip begin the next batch, whose units named ``ahead``.

        Returns what :meth:`begin` returns (the next batch is begun: run it
        without calling :meth:`begin`), or None when it is not (the lock was
        held by another hub's writer, or a statement after the ``COMMIT``
        failed: the batch is committed all the same, and :meth:`begin` begins
        the next one). The lock is only tried: waiting for it would hold back
        the ``COMMIT``'s answer (the server answers the whole round trip at once).
        A connection lost in this round trip answers the batch ``Unavailable``,
        as one lost before its ``COMMIT``'s answer always has: its outcome is
        unknown to its callers (an idempotency key makes the retry safe).
        """
        ex = self._executor
        reads = self._reads(ahead)
        answers = ex.commit(self._commit_tail, [*self._then_begin, *self._planned(reads)])
        if answers is None or not answers[1].rows[0]["locked"]:
            self._abandoned = True
            return None
        return self._begun(answers, ahead, reads)

    def _reads(self, ahead: Ahead | None) -> list[pgahead.Read]:
        return pgahead.query(ahead, sessions=self._fold_ok) if ahead is not None else []

    def _planned(self, reads: list[pgahead.Read]) -> list[Statement]:
        """The reads ahead to send after a batch's ``BEGIN``, planned by index (:data:`pgahead.PLAN_BY_INDEX`)."""
        if not reads:
            return []
        return [(pgahead.PLAN_BY_INDEX, ()), *(statement for _, statement in reads), self._planned_as_before]

    def _begun(self, answers: list[Answer], ahead: Ahead | None, reads: list[pgahead.Read]) -> list[Row]:
        """Take the answers of a batch's ``BEGIN`` and its reads; the standing halts."""
        ex = self._executor
        _, lock, halts, counters, *rows = answers
        rows = rows[1:-1]  # the planner's settings, set and given back around the reads
        self._clock.offset = float(lock.rows[0]["db_now"]) - time.time()
        ex.start_batch(counters.rows)
        if ahead is not None:
            ex.rows_ahead.load(ahead, {name: answer.rows for (name, _), answer in zip(reads, rows, strict=True)})
        return halts.rows

    def commit(self) -> None:
        self._executor.commit(self._commit_tail)

    def rollback(self) -> None:
        self._executor.start_batch()
        if not self.conn.closed:
            self._executor.pipe.simple(b"ROLLBACK")
        self._abandoned = False

    def close(self) -> None:
        self.conn.close()


def _is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


_IDENTITIES = (("events", "id"), ("messages", "seq"), ("turns", "id"))  # GENERATED ALWAYS AS IDENTITY columns


class PostgresStore(ThreadedStore):
    """A store in one PostgreSQL database, named by a ``postgresql://`` URL."""

    name = "postgresql"
    identity_clause = "OVERRIDING SYSTEM VALUE"
    reads_ahead = True  # each read is a round trip: a batch's named rows come with its BEGIN (store/pgahead.py)

    def columns(self, table: str) -> frozenset[str]:
        """The column names of ``table`` in the current schema; empty when there is no such table."""
        rows = self.read_sync(lambda tx: tx.ex.all(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ?", (table,)))
        return frozenset(str(r["column_name"]) for r in rows)

    def identity_sync_unit(self) -> Callable[[Any], None]:
        """Set each identity column's sequence to the highest id stored (after an archive import)."""
        def unit(tx: Any) -> None:
            for table, column in _IDENTITIES:
                tx.ex.one(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), MAX({column})) "
                          f"FROM {table} HAVING MAX({column}) IS NOT NULL")
            tx.ex.counters_moved()

        return unit
    durability = "postgresql commit (server's synchronous_commit), group commit"

    def __init__(self, url: str, *, readers: int = 4) -> None:
        self.url = url
        self._origin = announce.new_origin()  # names this process's announcements (see store/announce.py)
        self.origin = self._origin
        self._clock = OffsetClock()
        self.clock = self._clock  # the database's clock decides expiry for every hub on it
        super().__init__(self._connection, _is_unavailable, readers=readers, name="pg", is_stale=refused_as_prepared)

    def _connect(self) -> psycopg.Connection[Any]:
        # UTF-8 whatever PGCLIENTENCODING says: text then comes back as it was given (in EUC_JP or SJIS, Python's
        # codecs turn ¥ and ‾ into \ and ~, so a lease would be stored, and collide, as another resource).
        return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=_CONNECT_TIMEOUT,
                               client_encoding="UTF8")

    def _connection(self) -> _Connection:
        return _Connection(self._connect(), self._origin, self._clock)

    def rate_buckets(self) -> SharedBuckets:
        """Rate budgets shared by every hub on this database (:mod:`coordhub.store.ratebuckets`)."""
        return SharedBuckets(self._connect)

    def stream_slots(self, per_key: int) -> AdvisorySlots:
        """Stream slots every hub on this database counts (:mod:`coordhub.store.pgslots`), on a connection of
        their own, which gives up on a network path that stopped answering within about 10 s (TCP keepalives and
        ``tcp_user_timeout``) rather than the kernel's 15 minutes: streams are then counted in each hub."""
        def connect() -> psycopg.Connection[Any]:
            return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=_CONNECT_TIMEOUT,
                                   keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=2,
                                   tcp_user_timeout=10_000)

        return AdvisorySlots(connect, per_key)

    def listen(self, on_announce: announce.Announced) -> announce.Listener:
        """Start a :class:`~coordhub.store.announce.Listener` on its own connection; the caller stops it."""
        listener = announce.Listener(self._connect, on_announce)
        listener.start()
        return listener

    def open(self) -> None:
        try:
            conn = self._connect()
        except psycopg.OperationalError as exc:
            raise Unavailable(f"cannot connect to PostgreSQL: {str(exc).strip().splitlines()[0]}") from exc
        with conn:
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8 AS db_now").fetchone()
            if row is not None:
                self._clock.offset = float(row["db_now"]) - time.time()
            conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
            self._migrate(conn)
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
        self._start_writer()

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                     "(name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")

        def applied() -> set[str]:
            return {r["name"] for r in conn.execute("SELECT name FROM schema_migrations").fetchall()}

        def run(name: str, sql: str) -> None:
            with conn.transaction():
                conn.execute(sql.encode())
                conn.execute("INSERT INTO schema_migrations VALUES (%s, extract(epoch FROM now()))", (name,))

        migrate.apply_all("postgres", applied, run)
