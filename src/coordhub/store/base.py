"""The Store interface every backend implements, and the pieces they share.

A store runs *units of work*: plain synchronous functions ``fn(tx) -> T`` that
receive a :class:`~coordhub.store.tx.Tx` (the domain tables, each a small
query object) and run inside one database transaction. The core is written as
such functions, so an operation that touches leases, events and idempotency
records is one transaction by construction (contract §2.1).

Writes are serialised: each backend has exactly one writer connection, fed by
a queue, that commits queued units of work in batches (group commit). One
failing unit of a batch rolls back alone: it runs inside its own SAVEPOINT,
or, in a SQLite batch's first run, which takes none, a unit that fails having
written makes the batch run again in savepoints (``BatchWriter._run_unit``); the
batch's COMMIT is the durability point and no unit's result is released to
its caller before that COMMIT returned. Reads run on separate
connections and see only committed data.

Capabilities differ in attributes, not in ``isinstance`` checks (pattern from
huey's ``BaseStorage``).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from functools import lru_cache
from typing import Any, NamedTuple, Protocol, TypeVar

T = TypeVar("T")
# Runs again of one read or one batch whose statements the server refused as they were prepared (a column added
# to a table they read whole: pgpipe.refused_as_prepared); each run reports one such statement.
STALE_RETRIES = 4

Row = dict[str, Any]


class Executor(Protocol):
    """What the table objects need from a connection: run SQL with ``?`` placeholders.

    SQL is written once, in the SQLite dialect subset both backends share
    (``?`` placeholders, ``RETURNING``, ``ON CONFLICT``); the PostgreSQL
    executor translates placeholders.

    ``local``: a read costs no round trip (SQLite, in process), so a unit may
    read a row before it writes it where the read can save the write; such an
    executor also counts the rows it changed (:meth:`changes`).
    """

    local: bool

    def changes(self) -> int:
        """Rows INSERT, UPDATE and DELETE have changed on this connection so far (SQLite's ``total_changes``): a
        unit that failed having changed none has nothing to undo. -1 when no transaction is open (SQLite ends
        one itself on some errors, a full disk say: then every unit's writes are gone). Only asked of a
        ``local`` executor, in a write batch."""
        ...

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run a statement; return the number of rows it changed."""
        ...

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        """Run a query; return the first row as a dict, or None when there is none."""
        ...

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        """Run a query; return every row as a dict (an empty list when there are none)."""
        ...

    def parts(self, queries: list[tuple[str, tuple[Any, ...]]], order: str) -> list[list[Row]]:
        """Run independent queries of one shape, each selecting the same columns (``SELECT *`` of one table) and
        ending ordered by the column ``order``; return each one's rows in that order.

        SQLite runs them as one compound statement (one statement's fixed cost
        instead of one per query: issue 15); PostgreSQL pipelines them, in one
        round trip.
        """
        ...

    def defer(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run a statement whose answer nobody reads (an INSERT or UPDATE whose row count does not matter).

        A backend may hold it back and send it with the next statement, the
        next unit's first one, or the batch's ``COMMIT`` (PostgreSQL: no round
        trip of its own); statements still run in the order they were given.
        If it fails, the unit of work that deferred it fails, whole, as if it
        had failed here (see :mod:`coordhub.store.writer`).
        """
        ...

    def expect(self, sql: str, params: tuple[Any, ...], check: Callable[[list[Row]], None]) -> None:
        """Run a query and hand its rows (an empty list when there are none) to ``check``.

        A backend may hold the query back and send it with the next
        statement; ``check`` then runs when that round trip returns, before the
        next statement's answer is used, and an exception it raises wins over
        anything later in the unit (the writer settles a check still waiting
        when the unit fails: :meth:`settle`). A check still waiting when the
        unit ends may run with a later unit's round trip or the batch's commit
        (:meth:`finish_unit`); if it raises then, the unit is lost
        (:class:`~coordhub.store.writer.UnitLost`) and fails with its exception.
        What the unit did in the meantime is rolled back with it either way, so
        the outcome is as if ``check`` ran here.
        """
        ...

    def settle(self) -> None:
        """Run every :meth:`expect` check still waiting (sending what is held back); a no-op when none waits."""
        ...

    def finish_unit(self) -> None:
        """The running unit ended without error; its checks may keep waiting (see :meth:`expect`).

        PostgreSQL sends them with the next round trip, so units that only
        write share one (issue 15: a round trip per unit capped the writer);
        statements given after this and before the next unit (the batch's
        ``before`` hook) belong to the batch, and their failure loses it whole.
        """
        ...

    def next_value(self, counter: str) -> int:
        """Take the next number of the persisted counter ``counter`` (a row of ``counters``: fences, queue
        positions). Strictly increasing across every batch and process; numbers of a unit or batch that did
        not commit may be handed out again, and gaps are possible. PostgreSQL's writer hands them out
        without a round trip (:mod:`coordhub.store.pgnumbers`). ``LookupError`` for an unknown counter.
        """
        ...

    def insert_numbered(self, table: str, row: Row, column: str) -> int:
        """INSERT ``row`` (column → value) into ``table``; return the integer key ``column`` it was given
        (an id or ``seq``, increasing in commit order). Where the backend numbers the row itself
        (PostgreSQL's writer: ``messages.seq``) the INSERT is deferred like :meth:`defer`'s."""
        ...

    def counters_moved(self) -> None:
        """SQL of the running unit moved counters or id generators itself (an archive import): numbers
        handed out after this come from where the database now stands."""
        ...

    def ahead(self, table: str, key: str) -> tuple[bool, Row | None]:
        """``(True, row)`` when the batch read the row of ``table`` (``sessions``, ``leases``) under ``key`` ahead
        (``row`` None: there is none) and it is still current; ``(False, None)`` when the caller must ask
        (see :class:`ReadsAhead`)."""
        ...

    def scanned(self, scan: Scan) -> Scanned | None:
        """The rows of ``scan`` when the batch read them ahead and they are still current, else None (the caller
        asks; see :class:`ReadsAhead`)."""
        ...


class Scan(NamedTuple):
    """The live leases a claim decides on (``Leases.candidates``): those of ``project_key`` filed at one of
    ``scopes`` or at no scope, and (``beneath`` not None) its path and glob leases filed strictly beneath
    ``beneath`` ("": every scope). ``scopes`` sorted, so equal scans compare equal."""

    project_key: str
    scopes: tuple[str, ...]
    beneath: str | None


class Scanned(NamedTuple):
    """A :class:`Scan` as the batch read it ahead and kept current: its active rows, oldest grant first, before
    any filter on expiry or holder (``filed``: at its scopes or at none; ``beneath``: every such row), and the
    earliest ``expires_at`` of any active lease (None: none expires), when known (``due_known``)."""

    filed: list[Row]
    beneath: list[Row]
    due_known: bool
    due_at: float | None


class Ahead(NamedTuple):
    """Rows a unit of work will look up: session ids (``Sessions.by_key``), lease ids (``Leases.get``), the
    leases a claim decides on (:class:`Scan`) and the sessions whose day of sending a send charges
    (``quotas``: ``MessageQuota.charge``)."""

    sessions: tuple[str, ...] = ()
    leases: tuple[str, ...] = ()
    scans: tuple[Scan, ...] = ()
    quotas: tuple[str, ...] = ()

    @classmethod
    def of(cls, *, sessions: Iterable[str | None] = (), leases: Iterable[str | None] = (),
           scans: Iterable[Scan | None] = (), quotas: Iterable[str | None] = ()) -> Ahead:
        """The keys given, None left out."""
        return cls(tuple(s for s in sessions if s is not None), tuple(x for x in leases if x is not None),
                   tuple(x for x in scans if x is not None), tuple(x for x in quotas if x is not None))

    @classmethod
    def merged(cls, named: Iterable[Ahead]) -> Ahead:
        """Everything several units name, in their order."""
        named = list(named)
        return cls(tuple(s for a in named for s in a.sessions), tuple(x for a in named for x in a.leases),
                   tuple(x for a in named for x in a.scans), tuple(x for a in named for x in a.quotas))


class ReadsAhead:
    """A unit of work (called as ``fn(tx)``) with the rows it will look up (``ahead``).

    A backend whose every read is a network round trip (PostgreSQL) reads
    those rows with its batch's ``BEGIN`` and answers the lookups from them,
    so a send to a known recipient, or the release of a lease, waits for no
    answer of its own (issue 15). The rows follow the batch's own writes
    (:mod:`coordhub.store.pgahead`).
    """

    __slots__ = ("fn", "ahead")

    def __init__(self, fn: Callable[[Any], Any], ahead: Ahead) -> None:
        self.fn = fn
        self.ahead = ahead

    def __call__(self, tx: Any) -> Any:
        return self.fn(tx)


class ReadBack(NamedTuple):
    """What a write's ``RETURNING`` clause answers, got without one: ``write`` alone, then ``read`` of the row it
    changed, with ``read_params(params)`` (see :func:`returning`)."""

    write: str
    read: str
    read_params: Callable[[tuple[Any, ...]], tuple[Any, ...]]


READ_BACKS: dict[str, ReadBack] = {}  # a write's SQL with RETURNING -> how to run it without (see returning())


def returning(write: str, columns: str, read: str, read_params: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> str:
    """``write`` (an INSERT or UPDATE of exactly one row) with ``RETURNING columns``, registered as equivalent to
    ``write`` then ``read`` (a SELECT of ``columns`` of that row, given ``read_params(params)``) in one transaction.

    SQLite builds an ephemeral table for every statement with ``RETURNING``
    (two zeroed 4 KiB pages and a b-tree: ~15,000 instructions, more than a
    second statement costs; issue 15), so its executor runs the pair;
    PostgreSQL runs the one statement (one round trip). Tables use the
    returned SQL as they would the ``RETURNING`` form.
    """
    sql = f"{write} RETURNING {columns}"
    READ_BACKS[sql] = ReadBack(write, read, read_params)
    return sql


def _same(params: tuple[Any, ...]) -> tuple[Any, ...]:
    return params


NEXT_VALUE = returning("UPDATE counters SET value = value + 1 WHERE name = ?", "value",
                       "SELECT value FROM counters WHERE name = ?", _same)


def counter_from_database(ex: Executor, counter: str) -> int:
    """:meth:`Executor.next_value` by the database itself (``UPDATE counters … RETURNING``); ``LookupError``
    for an unknown counter. What SQLite always does, and PostgreSQL outside a write batch."""
    row = ex.one(NEXT_VALUE, (counter,))
    if row is None:
        raise LookupError(f"no counter {counter!r}")
    return int(row["value"])


def insert_numbered_by_database(ex: Executor, table: str, row: Row, column: str) -> int:
    """:meth:`Executor.insert_numbered` by the database itself (``INSERT … RETURNING column``)."""
    got = ex.one(insert_sql(table, row, returning=column), tuple(row.values()))
    assert got is not None
    return int(got[column])


def insert_sql(table: str, row: Row, *, clause: str = "", returning: str | None = None) -> str:
    """``INSERT INTO table (columns of row) [clause] VALUES (?, …) [RETURNING returning]`` (names are ours)."""
    return _insert_sql(table, tuple(row), clause, returning)


@lru_cache(maxsize=1024)
def _insert_sql(table: str, columns: tuple[str, ...], clause: str, returning: str | None) -> str:
    # Made once per shape: the writer inserts rows of the same few shapes for every unit (issue 15).
    tail = f" RETURNING {returning}" if returning else ""
    return f"INSERT INTO {table} ({', '.join(columns)}) {clause}{' ' if clause else ''}VALUES " \
           f"({', '.join('?' * len(columns))}){tail}"


class Store(abc.ABC):
    """All durable state of one hub.

    Capability attributes:

    - ``name``: ``"sqlite"`` or ``"postgresql"``.
    - ``durability``: the declared durability level, reported by ``/health``
      and by benchmarks (contract §2.9).
    """

    name: str
    durability: str

    @abc.abstractmethod
    def open(self) -> None:
        """Connect and migrate the schema to the newest version.

        Blocking; call before serving. Raises ``coordhub.errors.Unavailable``
        when the database cannot be reached and ``OSError`` when a SQLite file
        cannot be created.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Finish queued writes, then close every connection. Idempotent."""

    @abc.abstractmethod
    def submit_write(self, fn: Callable[[Any], T]) -> Future[T]:
        """Queue a unit of work for the writer; the future resolves after its batch committed.

        Atomic: ``fn``'s effects commit entirely or not at all. If ``fn``
        raises, its effects are rolled back and the future carries the
        exception. If the commit itself fails, every unit of the batch fails:
        with the database's error (a trigger refused it), and nothing of the
        batch is visible; or with ``Unavailable`` when the database went away,
        and then the outcome is unknown (a ``COMMIT`` may have been applied
        before the connection broke: an idempotency key makes the retry
        safe). A failure of the batch's before-commit hook
        (:meth:`set_after_commit`) fails it the same way. ``fn`` may
        run more than once before its batch commits (when a write another unit
        deferred fails after that unit ended, the batch is rolled back and run
        again without it: :class:`~coordhub.store.writer.UnitLost`); only the
        last run counts, so ``fn`` must act on nothing but ``tx``.
        """

    @abc.abstractmethod
    def submit_read(self, fn: Callable[[Any], T]) -> Future[T]:
        """Run ``fn`` on a read connection in one read transaction (a consistent snapshot).

        ``fn`` must not write. Raises ``Unavailable`` through the future when
        the database cannot be reached.
        """

    @abc.abstractmethod
    def set_after_commit(self, listener: Callable[[Any], None] | None,
                         before: Callable[[Any], None] | None = None) -> None:
        """Call ``listener(tx)`` in the writer after every successful commit (None removes it).

        It runs outside any transaction, on the writer's connection, before the
        committed units' callers are answered; it must be quick and must not
        write. Its exceptions are logged and otherwise ignored. ``before(tx)``,
        if given, runs in each batch's transaction after its units, just before
        the COMMIT: a read it queues with ``Executor.expect`` (sees the batch's
        own writes) travels with the COMMIT on PostgreSQL, so ``listener`` need
        not ask again; it must not write, and an exception it raises loses the batch.
        """

    clock: Any = None  # a Clock the store's database keeps (PostgreSQL: its clock decides expiry), else None
    #: Whether the store reads the rows a unit names (:class:`ReadsAhead`) with its batch's ``BEGIN``. False: every
    #: read is local and cheap (SQLite), so what a unit would look up need not even be worked out.
    reads_ahead = False
    origin: str | None = None  # the id this process's commit announcements carry (None: the store announces none)

    def listen(self, on_announce: Callable[[str | None, int | None], None]) -> Any:
        """Follow other processes' commits: call ``on_announce(origin, high_water_event_id)`` on each.

        Returns an object with ``stop()`` and ``state`` (a
        :class:`~coordhub.store.announce.ListenState`), or None when the
        backend has no cross-process announcements (SQLite: one process owns
        the file). ``on_announce(None, None)`` means "announcements may have
        been missed: catch up from the log". See :mod:`coordhub.store.announce`.
        """
        return None

    @abc.abstractmethod
    def columns(self, table: str) -> frozenset[str]:
        """The column names of ``table`` (empty for a table that does not exist). Blocking; for maintenance."""

    #: The phrase that lets an INSERT set a generated key itself (an archive import keeps every id).
    identity_clause = ""

    def identity_sync_unit(self) -> Callable[[Any], None] | None:
        """A unit of work that moves the generators of ids past the highest id stored (after an import that set
        ids itself), or None when the backend does so by itself (SQLite's AUTOINCREMENT)."""
        return None

    def reclaim_unit(self) -> Callable[[Any], int] | None:
        """A unit of work that returns some free space to the file system and returns how much is left to
        reclaim (0: done), or None when the backend reclaims space by itself (PostgreSQL's autovacuum).

        Capability of SQLite with incremental auto-vacuum; run it on the writer
        after pruning, as often as it asks.
        """
        return None

    def checkpoint(self) -> None:
        """Blocking: make what :meth:`reclaim_unit` freed visible to the file system (SQLite: a PASSIVE WAL
        checkpoint); a no-op where the backend needs none. Never waits for readers or the writer."""
        return None

    def rate_buckets(self) -> Any:
        """Rate budgets shared with other hub processes, or None (SQLite: one process; its limits stay in memory).

        PostgreSQL returns a :class:`~coordhub.store.ratebuckets.SharedBuckets`.
        """
        return None

    def stream_slots(self, per_key: int) -> Any:
        """Stream slots counted with every hub on the database, ``per_key`` per session, or None (SQLite: the hub's
        own processes count theirs in a file, :class:`coordhub.api.streams.SharedSlots`).

        PostgreSQL returns a :class:`~coordhub.store.pgslots.AdvisorySlots`.
        """
        return None

    def set_batch_observer(self, observer: Callable[[int, float], None] | None) -> None:
        """Call ``observer(units, commit_seconds)`` on the writer after each committed batch (metrics; quick).

        A store without batches ignores it.
        """
        return None

    def writer_runs_again(self) -> dict[str, int]:
        """Runs of this process's write batches after their first, by cause
        (:data:`~coordhub.store.writer.RUN_AGAIN_CAUSES`), since the store opened; {} for a store without batches.
        Each rolled back a batch's work and did it again (metrics: ``coord_writer_runs_again``)."""
        return {}

    async def write(self, fn: Callable[[Any], T]) -> T:
        """``await`` form of :meth:`submit_write` (backends may settle it more cheaply on the loop)."""
        return await asyncio.wrap_future(self.submit_write(fn))

    async def read(self, fn: Callable[[Any], T]) -> T:
        """``await`` form of :meth:`submit_read`."""
        return await asyncio.wrap_future(self.submit_read(fn))

    def write_sync(self, fn: Callable[[Any], T]) -> T:
        """Blocking form of :meth:`submit_write`, for tests and maintenance commands."""
        return self.submit_write(fn).result()

    def read_sync(self, fn: Callable[[Any], T]) -> T:
        """Blocking form of :meth:`submit_read`."""
        return self.submit_read(fn).result()

