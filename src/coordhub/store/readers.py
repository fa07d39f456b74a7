"""Read connections, one per reader thread, shared by both backends.

Each reader thread opens its own connection on first use and keeps it. A read
runs ``fn(tx)`` inside ``BEGIN … COMMIT`` (a consistent snapshot). When the
database is lost, the failing thread drops its connection and reopens it on
its next read, so reads recover as soon as the database is back; a failed
connect is remembered for a second so an outage answers fast instead of
waiting out a connect timeout on every read. A kept connection found dead
(the database restarted while it sat idle) is replaced and the read tried
once more on the new one, which a read-only transaction makes safe: after a
restart a read is refused only while the database is really down, not once
per reader thread that had a connection from before it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from coordhub.errors import Unavailable
from coordhub.store.base import STALE_RETRIES, Executor

T = TypeVar("T")
_RECONNECT_BACKOFF = 1.0  # seconds


class ReaderConnection(Protocol):
    """A connection as a reader uses it."""

    @property
    def executor(self) -> Executor:
        """The executor read units run their SQL on."""

    def close(self) -> None:
        """Close the connection."""


class ReaderThreads:
    """Runs read units on ``threads`` threads, each with its own connection."""

    def __init__(self, connect: Callable[[], ReaderConnection], make_tx: Callable[[Executor], Any],
                 is_unavailable: Callable[[BaseException], bool], *, threads: int = 4,
                 name: str = "coord-reader", is_stale: Callable[[BaseException], bool] | None = None) -> None:
        self._connect = connect
        self._make_tx = make_tx
        self._is_unavailable = is_unavailable
        # A failure that running the read again on the same connection cures (PostgreSQL: a statement the server
        # refused as it was prepared, which the connection has since forgotten); a read changes nothing.
        self._is_stale = is_stale or (lambda exc: False)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._local = threading.local()
        self._open: set[Any] = set()
        self._lock = threading.Lock()
        self._failed_at = 0.0

    def submit(self, fn: Callable[[Any], T]) -> Future[T]:
        """Run ``fn(tx)`` in a read transaction on a reader thread."""
        try:
            return self._pool.submit(self._run, fn)
        except RuntimeError:  # shut down
            future: Future[T] = Future()
            future.set_exception(Unavailable("The hub's store is closed."))
            return future

    def close(self) -> None:
        """Wait for running reads, then close every connection."""
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._open:
                conn.close()
            self._open.clear()

    def _session(self) -> tuple[ReaderConnection, Any, bool]:
        """This thread's connection, its transaction maker, and whether it was kept from an earlier read."""
        held: tuple[ReaderConnection, Any] | None = getattr(self._local, "held", None)
        if held is not None:
            return (*held, True)
        if time.monotonic() - self._failed_at < _RECONNECT_BACKOFF:
            raise Unavailable()
        try:
            conn = self._connect()
        except Exception as exc:
            if not self._is_unavailable(exc):
                raise
            self._failed_at = time.monotonic()
            raise Unavailable() from exc
        with self._lock:
            self._open.add(conn)
        held = self._local.held = (conn, self._make_tx(conn.executor))
        return (*held, False)

    def _drop(self, conn: ReaderConnection) -> None:
        self._local.held = None
        with self._lock:
            self._open.discard(conn)
        try:
            conn.close()
        except Exception:  # already broken
            pass

    def _run(self, fn: Callable[[Any], T]) -> T:
        stale = STALE_RETRIES
        while True:
            conn, tx, kept = self._session()
            ex = conn.executor
            try:
                ex.execute("BEGIN")
                result = fn(tx)
                ex.execute("COMMIT")
                return result
            except Exception as exc:
                if not self._is_unavailable(exc):
                    self._end(conn, ex)
                    if stale and self._is_stale(exc):  # each run reports one such statement
                        stale -= 1
                        continue
                    raise
                self._drop(conn)
                if not kept:  # a new connection failed: the database is down
                    raise Unavailable() from exc
                # a kept one may only have died while idle: once more on a new one (a read changes nothing)

    def _end(self, conn: ReaderConnection, ex: Executor) -> None:
        """Roll back a read that failed for a reason of its own; drop the connection if even that fails."""
        try:
            ex.execute("ROLLBACK")
        except Exception:
            self._drop(conn)
