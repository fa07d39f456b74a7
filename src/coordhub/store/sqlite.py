"""The SQLite backend: the embedded default.

Discipline (after datasette's ``Database``): WAL journal, a busy timeout, one
writer connection driven by :class:`~coordhub.store.writer.BatchWriter`
(``BEGIN IMMEDIATE`` batches with group commit), and reads on their own
connections, one per reader thread. ``synchronous=FULL`` by default: every
commit is fsynced before any write in it is acknowledged.
"""

from __future__ import annotations

import functools
import itertools
import logging
import operator
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from coordhub.errors import Unavailable
from coordhub.store import announce, files, migrate
from coordhub.store.base import (
    READ_BACKS,
    Ahead,
    Row,
    Scan,
    Scanned,
    counter_from_database,
    insert_numbered_by_database,
    insert_sql,
)
from coordhub.store.localannounce import LocalAnnouncer, WriterLock
from coordhub.store.sqlitebuckets import SQLiteBuckets
from coordhub.store.threaded import ThreadedStore
from coordhub.store.tx import Tx

T = TypeVar("T")
_SYNC_LEVELS = ("FULL", "NORMAL")
RECLAIM_PAGES = 64  # free pages one reclaim unit returns to the OS (~50 µs each: a few ms per unit)
WAL_LIMIT = 64 * 1024 * 1024  # bytes the WAL file is truncated to after a checkpoint
_COMPANIONS = ("-wal", "-shm", "-journal")
log = logging.getLogger("coordhub")


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    # dict(zip(…)), not a comprehension, and no length check: ~1 µs less a row, on every row read (issue 15)
    return dict(zip(map(_NAME, cursor.description), row, strict=False))  # sqlite3 gives one value per column


def bind_plainly() -> None:
    """Have ``sqlite3`` bind ``None`` and ``bool`` parameters without its adaptation protocol (issue 15).

    ``sqlite3`` binds an exact ``int``, ``float`` or ``str`` at once; any other
    value is first looked up in its adapter registry and, not found there,
    offered to the PEP 246 protocol (``__adapt__``, then ``__conform__``),
    whose first lookup raises and formats an ``AttributeError`` on every
    parameter. A send binds ~22 ``None``/``bool`` values (its optional columns),
    ~1k instructions each (``callgrind``: 2.6 % of a send). Registered here,
    each is one dict lookup and a C call, and binds as before: ``None`` as
    NULL (``{}.get`` answers None for any key), a ``bool`` as the integer 0 or
    1 (what ``sqlite3`` binds an ``int`` subclass as). Process-wide, and only
    for these two types, which the registry has no other use for here.
    """
    sqlite3.register_adapter(type(None), cast(Callable[[None], None], {}.get))
    sqlite3.register_adapter(bool, int)


bind_plainly()

_NAME = operator.itemgetter(0)  # a column's name in cursor.description
_PART = "coordhub_part_"  # the arm a row of a compound statement came from (SQLiteExecutor.parts)


@functools.lru_cache(maxsize=256)
def _compound(queries: tuple[str, ...], order: str) -> str:
    """:meth:`SQLiteExecutor.parts`' one statement for ``queries``: each an arm tagged with its place, the outer
    ORDER BY keeping the arms apart and each arm in ``order``, whatever SQLite's planner does with the arms' own
    ORDER BY. Memoized (a claim's arms differ only by their scope count and options; building one costs ~3 µs)."""
    if not order.isidentifier():
        raise ValueError(f"parts: order must be a column name, not {order!r}")
    arms = " UNION ALL ".join(f"SELECT {i} AS {_PART}, * FROM ({query})" for i, query in enumerate(queries))
    return f"{arms} ORDER BY {_PART}, {order}"


class SQLiteExecutor:
    """Runs SQL on one sqlite3 connection (autocommit mode; transactions are explicit)."""

    local = True

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def changes(self) -> int:
        return self.conn.total_changes if self.conn.in_transaction else -1

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        row: Row | None = self._query(sql, params).fetchone()
        return row

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        rows: list[Row] = self._query(sql, params).fetchall()
        return rows

    def _query(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        back = READ_BACKS.get(sql)
        if back is None:
            return self.conn.execute(sql, params)
        self.conn.execute(back.write, params)  # without RETURNING's ephemeral table (see base.returning)
        return self.conn.execute(back.read, back.read_params(params))

    def parts(self, queries: list[tuple[str, tuple[Any, ...]]], order: str) -> list[list[Row]]:
        out: list[list[Row]] = [[] for _ in queries]
        for row in self.conn.execute(_compound(tuple(query for query, _ in queries), order),
                                     tuple(itertools.chain.from_iterable(p for _, p in queries))).fetchall():
            out[row.pop(_PART)].append(row)
        return out

    # In process there is no round trip to save: what PostgreSQL may hold back runs at once here.
    def defer(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self.conn.execute(sql, params)

    def expect(self, sql: str, params: tuple[Any, ...], check: Callable[[list[Row]], None]) -> None:
        check(self.all(sql, params))

    def settle(self) -> None:
        return None

    def finish_unit(self) -> None:
        return None

    def ahead(self, table: str, key: str) -> tuple[bool, Row | None]:
        return False, None  # every read is local: nothing is read ahead

    def scanned(self, scan: Scan) -> Scanned | None:
        return None

    def next_value(self, counter: str) -> int:
        return counter_from_database(self, counter)

    def insert_numbered(self, table: str, row: Row, column: str) -> int:
        if not _is_rowid(self.conn, table, column):
            return insert_numbered_by_database(self, table, row, column)
        # The key is the rowid SQLite reports for the INSERT: no RETURNING and its ephemeral table (issue 15)
        rowid = self.conn.execute(insert_sql(table, row), tuple(row.values())).lastrowid
        assert rowid is not None
        return rowid

    def counters_moved(self) -> None:
        return None


_ROWID: dict[tuple[str, str], bool] = {}  # (table, column) -> is the column the table's rowid (the schema is ours)


def _is_rowid(conn: sqlite3.Connection, table: str, column: str) -> bool:
    """Whether ``column`` is ``table``'s ``INTEGER PRIMARY KEY`` (an alias of its rowid), read once per pair."""
    known = _ROWID.get((table, column))
    if known is None:
        info = conn.execute("SELECT name, type, pk FROM pragma_table_info(?)", (table,)).fetchall()
        keys = [c for c in info if c["pk"]]
        known = _ROWID[(table, column)] = (len(keys) == 1 and keys[0]["name"] == column
                                           and str(keys[0]["type"]).upper() == "INTEGER")
    return known


class _Connection:
    def __init__(self, conn: sqlite3.Connection, lock: Callable[[], Callable[[], None]] | None = None,
                 announcer: LocalAnnouncer | None = None) -> None:
        self.conn = conn
        self._executor = SQLiteExecutor(conn)
        self._lock = lock  # shared file: the writers of all processes take turns (see localannounce.WriterLock)
        self._release: Callable[[], None] | None = None
        self._announcer = announcer

    @property
    def executor(self) -> SQLiteExecutor:
        return self._executor

    def begin(self, ahead: Ahead | None = None) -> None:
        if self._lock is not None:
            self._release = self._lock()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._unlock()
            raise

    def commit(self) -> None:
        high_water = None
        try:
            if self._announcer is not None:
                row = self.conn.execute("SELECT coalesce(max(id), 0) AS hw FROM events").fetchone()
                high_water = int(row["hw"]) if row is not None else 0
            self.conn.execute("COMMIT")
        finally:
            if not self.conn.in_transaction:
                self._unlock()
        if self._announcer is not None and high_water is not None:
            self._announcer.announce(high_water)  # after COMMIT: peers read only what is durable

    def rollback(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self._unlock()

    def _unlock(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def close(self) -> None:
        self.conn.close()


# SQLite's primary result codes that are conditions of the store, not of the request: BUSY ("database is locked":
# another process outlasted busy_timeout), LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL (the disk), CANTOPEN,
# PROTOCOL, NOTADB (https://sqlite.org/rescode.html). SQLITE_ERROR, a statement's own (no such table or column, a
# syntax error), is a fault of the request or of the hub: answered as such, not as the database being away.
_STORE_CONDITIONS = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})


def _is_unavailable(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # the extended code: its low byte is the primary one
    return code is None or code & 0xFF in _STORE_CONDITIONS


class SQLiteStore(ThreadedStore):
    """A store in one SQLite file. ``synchronous`` is FULL (default) or NORMAL.

    ``shared=True`` when several hub processes on this machine serve from the
    file (``coord serve --workers N``): their writers take turns on an
    ``flock``, each commit is announced to the others over Unix datagrams
    (:mod:`coordhub.store.localannounce`), and rate budgets are kept in the
    file (:class:`~coordhub.store.sqlitebuckets.SQLiteBuckets`).
    """

    name = "sqlite"

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", readers: int = 4,
                 shared: bool = False) -> None:
        synchronous = synchronous.upper()
        if synchronous not in _SYNC_LEVELS:
            raise ValueError(f"sqlite_synchronous must be one of {', '.join(_SYNC_LEVELS)}, not {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self.shared = shared
        self.durability = f"sqlite WAL synchronous={synchronous}, group commit"
        self._announcer: LocalAnnouncer | None = None
        if shared:
            self.origin = announce.new_origin()
        super().__init__(self._connection, _is_unavailable, readers=readers, name="sqlite",
                         writer_connect=self._writer_connection)
        self._inline: tuple[sqlite3.Connection, Tx] | None = None
        self._writer_lock: WriterLock | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
        conn.row_factory = _dict_row
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
        return conn

    def _connection(self) -> _Connection:
        return _Connection(self._connect())

    def _writer_connection(self) -> _Connection:
        conn = self._connect()
        # A batch run again after a unit failed having written runs each unit in a SAVEPOINT (RunIsolated), whose
        # undo images SQLite keeps in a statement journal, as it does for a statement that may fail halfway; past
        # 64 KiB that journal goes to a temporary file, created, written (two pwrites a page, twice the WAL's
        # own writes) and deleted in every batch (issue 15: ~18 % of the writer's CPU per send). In memory it
        # holds ~4 KiB per existing page the unit changes, until the unit ends: a few pages for a request's
        # unit; the largest units are pruning batches (200 rows by default, at most 10,000: a few thousand
        # pages, tens of MB for that one unit). Only the writer: readers and migrations (the one-time VACUUM
        # included) keep temporary files on disk.
        conn.execute("PRAGMA temp_store = MEMORY")
        return _Connection(conn, self._writer_lock, self._announcer)

    def listen(self, on_announce: announce.Announced) -> Any:
        """Other worker processes' commits (shared file only; else None): see :mod:`coordhub.store.localannounce`."""
        return self._announcer.listen(on_announce) if self._announcer is not None else None

    def rate_buckets(self) -> SQLiteBuckets | None:
        """Rate budgets shared by the worker processes of a shared file (else None: limits stay in memory)."""
        if not self.shared:
            return None
        return SQLiteBuckets(self._connect, self._writer_lock)

    async def read(self, fn: Callable[[Any], T]) -> T:
        """Run a read on the event loop's own connection, without a thread hop.

        SQLite reads of a few indexed rows take tens of microseconds, far less
        than handing them to a reader thread and back; WAL lets this snapshot
        run beside the writer. (Blocking callers use ``read_sync`` and the
        reader threads.)
        """
        if self._inline is None:
            conn = self._connect()
            self._inline = (conn, Tx(SQLiteExecutor(conn)))
        conn, tx = self._inline
        try:
            conn.execute("BEGIN")
            try:
                result: T = fn(tx)
                return result
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if _is_unavailable(exc):
                raise Unavailable() from exc
            raise

    def close(self) -> None:
        super().close()
        if self._inline is not None:
            self._inline[0].close()
            self._inline = None
        if self._announcer is not None:
            self._announcer.close()
            self._announcer = None
        if self._writer_lock is not None:
            self._writer_lock.close()
            self._writer_lock = None

    def open(self) -> None:
        """Create the file (0600, in directories made 0700) if new, migrate, start the writer.

        The migrations run with ``secure_delete`` on and, when any ran, the WAL
        is truncated afterwards, so what a migration scrubs (0003: tokens kept
        by older hubs) is not left behind in free pages or old WAL frames.
        """
        self._make_private()
        if self.shared:  # the processes opening one file at once migrate it one at a time
            self._writer_lock = WriterLock(self.path)
        release = self._writer_lock() if self._writer_lock is not None else None
        conn = self._connect()
        try:
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect at once on a new, empty file
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(next(iter(mode.values()))).lower() != "wal":
                raise Unavailable(f"SQLite at {self.path} refused WAL mode")
            conn.execute("PRAGMA secure_delete = ON")
            if self._migrate(conn):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._make_incremental(conn)
        finally:
            conn.close()
            if release is not None:
                release()
        if self.shared:
            assert self.origin is not None
            self._announcer = LocalAnnouncer(self.path, self.origin)
        self._start_writer()

    def _make_incremental(self, conn: sqlite3.Connection) -> None:
        """Switch a database made by an older hub to incremental auto-vacuum: one VACUUM, once.

        Pages freed by the pruner are then returned to the file system a few
        at a time (:meth:`reclaim_unit`) instead of only being reused. The
        VACUUM rewrites the whole file (it needs as much free disk again) and
        runs before the hub serves; a new database needs none.
        """
        row = conn.execute("PRAGMA auto_vacuum").fetchone()
        if row is not None and int(next(iter(row.values()))) == 2:
            return
        size = self.path.stat().st_size / 1e6
        log.warning("converting %s to incremental auto-vacuum: a one-time VACUUM of %.0f MB", self.path, size)
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log.warning("converted %s to incremental auto-vacuum", self.path)

    def columns(self, table: str) -> frozenset[str]:
        """The column names of ``table`` (``pragma_table_info``); empty when there is no such table."""
        rows = self.read_sync(lambda tx: tx.ex.all("SELECT name FROM pragma_table_info(?)", (table,)))
        return frozenset(str(r["name"]) for r in rows)

    def checkpoint(self) -> None:
        """Copy the WAL into the database file without waiting for anyone (PASSIVE) on a connection of its own;
        when every frame is copied SQLite truncates the file to its pages, so space :meth:`reclaim_unit` freed
        reaches the file system even when too little was written since to trigger the automatic checkpoint."""
        conn = self._connect()
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def reclaim_unit(self) -> Callable[[Any], int]:
        """A unit of work returning up to :data:`RECLAIM_PAGES` free pages to the file system; it returns the
        free pages left (0: nothing more to reclaim). The file shrinks at the next checkpoint."""
        def unit(tx: Tx) -> int:
            ex = tx.ex
            free = int(next(iter((ex.one("PRAGMA freelist_count") or {"n": 0}).values())))
            # Python's sqlite3 steps a PRAGMA once, and one step of incremental_vacuum frees one page.
            for _ in range(min(free, RECLAIM_PAGES)):
                ex.execute("PRAGMA incremental_vacuum(1)")
            return max(0, free - RECLAIM_PAGES)

        return unit

    def _make_private(self) -> None:
        """The database and its companions 0600, directories created for it 0700 (issue 7, point 6)."""
        files.private_dir(self.path.parent)
        for path in (self.path, *(self.path.with_name(self.path.name + s) for s in _COMPANIONS)):
            if path == self.path or path.exists():
                old = files.private_file(path)
                if old is not None and old & 0o077:
                    log.warning("%s was readable by others (mode %o); now 0600", path, old)

    def _migrate(self, conn: sqlite3.Connection) -> list[str]:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")

        def applied() -> set[str]:
            return {r["name"] for r in conn.execute("SELECT name FROM schema_migrations").fetchall()}

        def run(name: str, sql: str) -> None:
            # executescript would commit between statements; wrap the script in
            # one explicit transaction so a failing migration changes nothing.
            record = f"INSERT INTO schema_migrations VALUES ('{name}', CAST(strftime('%s', 'now') AS REAL))"
            conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\n;{record};\nCOMMIT;")

        return migrate.apply_all("sqlite", applied, run)
