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
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from coordhub.clock import OffsetClock
from coordhub.errors import Unavailable
from coordhub.store import announce, migrate
from coordhub.store.base import Row
from coordhub.store.ratebuckets import SharedBuckets
from coordhub.store.threaded import ThreadedStore

T = TypeVar("T")
log = logging.getLogger("coordhub.store")

# Arbitrary but fixed: the advisory lock key that serialises writers (ASCII "coordhub").
_WRITER_LOCK = 0x636F6F7264687562
_MIGRATION_LOCK = _WRITER_LOCK + 1
_CONNECT_TIMEOUT = 3  # seconds
# clock_timestamp(), not now(): the time when the lock was granted, not when the transaction began.
_BEGIN_LOCK_AND_TIME = (f"BEGIN; SELECT pg_advisory_xact_lock({_WRITER_LOCK}), "
                        "extract(epoch FROM clock_timestamp())::float8 AS db_now").encode()


@lru_cache(maxsize=1024)
def _translate(sql: str) -> str:
    """SQLite-style ``?`` placeholders to psycopg's ``%s`` (no SQL of ours has a literal ``?``)."""
    return sql.replace("%", "%%").replace("?", "%s")


# The writer's savepoint bookkeeping: nothing reads their answers, so they can wait for the next statement.
_DEFERRABLE = frozenset({"SAVEPOINT unit", "RELEASE SAVEPOINT unit"})


class PostgresExecutor:
    """Runs SQL on one psycopg connection.

    Each statement is a network round trip, and a unit of work in a batch
    is wrapped in ``SAVEPOINT``/``RELEASE`` (see
    :mod:`coordhub.store.writer`). Those two are held back and sent with the
    next statement in one pipeline (psycopg's pipeline mode: one round trip
    for both), or prefixed to the batch's ``COMMIT`` (:meth:`take_deferred`).
    An error in a held-back statement surfaces on the statement it travelled
    with, inside the same transaction, so the writer's handling is unchanged.
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._deferred: list[str] = []

    def _run(self, sql: str, params: tuple[Any, ...]) -> psycopg.Cursor[Any]:
        if not self._deferred:
            return self.conn.execute(_translate(sql), params)
        pending, self._deferred = self._deferred, []
        with self.conn.pipeline():
            for statement in pending:
                self.conn.execute(statement)
            cur = self.conn.execute(_translate(sql), params)
        return cur

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        if not params and sql in _DEFERRABLE:
            self._deferred.append(sql)
            return 0
        return self._run(sql, params).rowcount

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        row: Row | None = self._run(sql, params).fetchone()
        return row

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        rows: list[Row] = self._run(sql, params).fetchall()
        return rows

    def take_deferred(self) -> str:
        """The held-back statements as one ``;``-terminated text (emptied), to travel with the next simple query."""
        pending, self._deferred = self._deferred, []
        return "".join(f"{statement}; " for statement in pending)


class _Connection:
    def __init__(self, conn: psycopg.Connection[Any], origin: str, clock: OffsetClock) -> None:
        self.conn = conn
        self._clock = clock
        self._executor = PostgresExecutor(conn)
        # Announce the batch to every hub (delivered only if it commits), in COMMIT's round trip.
        self._commit_sql = (announce.notify_sql(origin) + "; COMMIT").encode()

    @property
    def executor(self) -> PostgresExecutor:
        return self._executor

    def begin(self) -> None:
        self._executor.take_deferred()  # left by a batch that failed: its transaction is gone
        # One round trip: BEGIN and the lock, whose answer carries the database's clock (see OffsetClock).
        cur = self.conn.execute(_BEGIN_LOCK_AND_TIME)
        row = cur.fetchone() if cur.nextset() else None
        if row is not None:
            self._clock.offset = float(row["db_now"]) - time.time()

    def commit(self) -> None:
        self.conn.execute(self._executor.take_deferred().encode() + self._commit_sql)

    def rollback(self) -> None:
        self._executor.take_deferred()
        if not self.conn.closed:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()


def _is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


_IDENTITIES = (("events", "id"), ("messages", "seq"), ("turns", "id"))  # GENERATED ALWAYS AS IDENTITY columns


class PostgresStore(ThreadedStore):
    """A store in one PostgreSQL database, named by a ``postgresql://`` URL."""

    name = "postgresql"
    identity_clause = "OVERRIDING SYSTEM VALUE"

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

        return unit
    durability = "postgresql commit (server's synchronous_commit), group commit"

    def __init__(self, url: str, *, readers: int = 4) -> None:
        self.url = url
        self._origin = announce.new_origin()  # names this process's announcements (see store/announce.py)
        self.origin = self._origin
        self._clock = OffsetClock()
        self.clock = self._clock  # the database's clock decides expiry for every hub on it
        super().__init__(self._connection, _is_unavailable, readers=readers, name="pg")

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=_CONNECT_TIMEOUT)

    def _connection(self) -> _Connection:
        return _Connection(self._connect(), self._origin, self._clock)

    def rate_buckets(self) -> SharedBuckets:
        """Rate budgets shared by every hub on this database (:mod:`coordhub.store.ratebuckets`)."""
        return SharedBuckets(self._connect)

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
