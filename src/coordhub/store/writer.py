"""The single writer with group commit, shared by both backends.

One thread owns the only write connection. Callers queue units of work; the
thread takes everything queued (up to ``max_batch``), runs it in one
transaction with a SAVEPOINT per unit, commits once, and only then resolves
the callers' futures. Under load many units share one commit (and one fsync),
which is how a durable SQLite reaches thousands of writes per second; under no
load a unit commits alone with no added delay.

Because there is one writer, every read-then-write decision (is this lease
free? was this idempotency key used?) is serialised without row locks, and
ids assigned by the database increase in commit order.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from coordhub.errors import CoordError, Unavailable
from coordhub.store.base import STALE_RETRIES, Ahead, Executor, ReadsAhead

log = logging.getLogger("coordhub.store")

_STOP = object()
Reply = Future[Any] | asyncio.Future[Any]  # where a unit's result goes: a thread's or an event loop's future


def _settle(items: list[tuple[Reply, Any, BaseException | None]]) -> None:
    """Resolve futures with their units' results (on the thread or loop that owns them)."""
    for future, result, failure in items:
        if future.cancelled():
            continue
        if failure is None:
            future.set_result(result)
        else:
            future.set_exception(failure)
CHAIN_UNITS = 8  # units queued at a COMMIT from which the next batch begins in its round trip (commit_and_begin)
_RECONNECT_BACKOFF = 1.0  # seconds a failed connect is remembered, so an outage fails fast


def _named(units: list[Callable[[Any], Any]]) -> Ahead | None:
    """The rows ``units`` said they will look up (:class:`ReadsAhead`), for their batch's ``BEGIN``."""
    named = [fn.ahead for fn in units if isinstance(fn, ReadsAhead)]
    return Ahead.merged(named) if named else None


class UnitLost(BaseException):
    """A unit failed after it had ended (raised by the executor, caught here).

    ``unit`` is the unit's position in the batch, ``cause`` why it failed: a
    statement it had deferred failed in the database, or a check it left
    waiting (``Executor.expect``, settled late: :meth:`Executor.finish_unit`)
    refused it. The batch's transaction is then abandoned; the writer rolls it
    back and runs the batch again without that unit, which fails with
    ``cause``. A ``BaseException``, so that no unit of work's ``except
    Exception`` takes it for its own.
    """

    def __init__(self, unit: int, cause: BaseException) -> None:
        super().__init__(unit, cause)
        self.unit = unit
        self.cause = cause


#: Why a batch runs again (:attr:`BatchWriter.runs_again`): ``isolated``, a unit of a SQLite batch's first run
#: failed having written (:class:`RunIsolated`); ``unit_lost``, a unit's held write or check failed after it
#: ended (:class:`UnitLost`, PostgreSQL); ``stale``, the server refused a statement prepared before a schema
#: change (``is_stale``).
RUN_AGAIN_CAUSES = ("isolated", "unit_lost", "stale")


class RunIsolated(BaseException):
    """A unit of a batch's first run on a ``local`` store, which takes no savepoints, failed having written (or
    its failure ended the transaction): the batch is rolled back and runs again, each unit in its own
    savepoint, so that unit's outcome is judged again on what the run again holds (its first one may name
    rows the rollback undid: a lease another unit of the batch had been granted). A ``BaseException``, as
    :class:`UnitLost` is."""


class WriterConnection(Protocol):
    """One backend connection as the writer drives it."""

    @property
    def executor(self) -> Executor:
        """The executor units of work run their SQL on."""

    def begin(self, ahead: Ahead | None = None) -> list[Any] | None:
        """Start the batch transaction (SQLite: BEGIN IMMEDIATE).

        Returns the standing halts when the backend reads them in the same
        round trip (PostgreSQL), else None (see ``Halts.batch``).
        ``ahead``: rows the batch's units will look up
        (:class:`~coordhub.store.base.ReadsAhead`), which a backend may read now.
        """

    def commit(self) -> None:
        """Commit durably at the store's declared level.

        A backend whose ``BEGIN`` is a round trip (PostgreSQL) may also offer
        ``commit_and_begin(ahead) -> list | None``: commit, and in the same
        round trip begin the next batch (whose units named ``ahead``),
        returning what :meth:`begin` would, or None when it did not begin it.
        """

    def rollback(self) -> None:
        """Abandon the batch transaction."""

    def close(self) -> None:
        """Close the connection."""


class BatchWriter:
    """Runs queued units of work on one connection, committing them in batches.

    ``connect`` opens a :class:`WriterConnection`; ``make_tx`` wraps its
    executor in the object units of work receive; ``is_unavailable`` tells a
    lost database (→ ``Unavailable``, the connection is dropped and reopened
    on the next batch) from other errors; ``is_stale`` an error that running
    the batch again cures (a statement the server refused as it was prepared,
    which the connection then prepares anew: ``pgpipe.refused_as_prepared``):
    such a batch runs again, up to ``STALE_RETRIES`` times, and after that a
    unit that meets one more fails alone, as for any error of its own.
    """

    def __init__(
        self,
        connect: Callable[[], WriterConnection],
        make_tx: Callable[[Executor], Any],
        is_unavailable: Callable[[BaseException], bool],
        *,
        max_batch: int = 256,
        name: str = "coord-writer",
        is_stale: Callable[[BaseException], bool] | None = None,
    ) -> None:
        self._connect = connect
        self._make_tx = make_tx
        self._is_unavailable = is_unavailable
        self._is_stale = is_stale or (lambda exc: False)
        self._stale_left = 0  # runs again the running batch may still take (is_stale); spent, a unit fails alone
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._conn: WriterConnection | None = None
        self._tx: Any = None
        self._failed_at = 0.0
        self._down = False  # log an outage once, not on every retry
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        # The connection's commit_and_begin, if it has one; the batch taken to be begun with the last COMMIT, and
        # what its BEGIN answered when it was begun (else None: it begins as any other).
        self._chain: Callable[[Ahead | None], list[Any] | None] | None = None
        self._next: list[tuple[Callable[[Any], Any], Reply]] | None = None
        self._begun: list[Any] | None = None
        self._stopping = False  # _STOP was taken from the queue: run what was taken with it, then end
        # Whether the thread takes units: ``Thread.is_alive`` costs a lock and two Python calls per submission.
        self._running = False
        self.batches = 0
        self.units = 0
        # Runs of a batch after its first, by cause (:data:`RUN_AGAIN_CAUSES`): each one rolled back work done.
        self.runs_again: dict[str, int] = dict.fromkeys(RUN_AGAIN_CAUSES, 0)
        # Called in the writer thread after each successful commit, outside any
        # transaction, with the writer's query objects (the hub feeds its event bus).
        self.after_commit: Callable[[Any], None] | None = None
        # Called in the writer thread in each batch's transaction just before COMMIT (see Store.set_after_commit).
        self.before_commit: Callable[[Any], None] | None = None
        # Called on the writer thread after each commit with (units in the batch, COMMIT seconds): metrics.
        self.on_batch: Callable[[int, float], None] | None = None

    def start(self) -> None:
        """Start the writer thread."""
        self._running = True  # before the thread runs: it clears the flag when it ends
        try:
            self._thread.start()
        except BaseException:  # no thread was made (a second start leaves the first one running)
            self._running = self._thread.is_alive()
            raise

    def stop(self) -> None:
        """Run what is queued, then stop the thread and close the connection."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def submit(self, fn: Callable[[Any], Any]) -> Future[Any]:
        """Queue ``fn``; see ``Store.submit_write`` for the guarantees."""
        future: Future[Any] = Future()
        if not self._running:
            future.set_exception(Unavailable("The hub's store is closed."))
            return future
        self._queue.put((fn, future))
        return future

    def submit_async(self, fn: Callable[[Any], Any]) -> asyncio.Future[Any]:
        """Queue ``fn`` from an event loop; the asyncio future resolves on that loop after the commit.

        Cheaper than wrapping a thread future: all the units of a batch that
        came from one loop are settled with a single cross-thread wake-up.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._running:
            future.set_exception(Unavailable("The hub's store is closed."))
            return future
        self._queue.put((fn, future))
        return future

    def _run(self) -> None:
        try:
            self._take_batches()
        finally:
            self._running = False

    def _take_batches(self) -> None:
        while not self._stopping or self._next is not None:
            batch, self._next = self._next, None
            if batch is None:
                item = self._queue.get()
                if item is _STOP:
                    return
                batch = self._take([item])
            self._run_batch(batch)

    def _take(self, batch: list[Any]) -> list[Any]:
        """``batch`` and what is queued after it, up to ``max_batch`` units, without waiting."""
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._stopping = True
                break
            batch.append(item)
        return batch

    def _ensure_connection(self) -> WriterConnection:
        if self._conn is None:
            if time.monotonic() - self._failed_at < _RECONNECT_BACKOFF:
                raise Unavailable()
            try:
                self._conn = self._connect()
            except Exception as exc:
                self._failed_at = time.monotonic()
                if not self._down:
                    log.warning("database unavailable, writes answer 503 until it is back: %s", exc)
                self._down = True
                raise Unavailable() from exc
            self._tx = self._make_tx(self._conn.executor)
            self._chain = getattr(self._conn, "commit_and_begin", None)
            if self._down:
                log.warning("database reachable again")
                self._down = False
        return self._conn

    def _run_batch(self, batch: list[tuple[Callable[[Any], Any], Reply]]) -> None:
        lost: dict[int, BaseException] = {}  # units that failed after they ended (UnitLost), by batch position
        self._stale_left = STALE_RETRIES
        isolated = False  # a run in savepoints was asked for (RunIsolated)
        while True:
            running = [i for i in range(len(batch)) if i not in lost]
            if not running:
                results = []
                break
            try:
                # The first run leaves the units' checks waiting (one round trip for many units) and, on a local
                # store, takes no savepoints; a run after a loss settles each unit's checks at its end, in its
                # savepoint, so refused checks or a unit failing after it wrote cost a batch at most one more run.
                results = self._attempt([batch[i][0] for i in running], optimistic=not lost and not isolated)
            except RunIsolated:
                self._tx.halts.batch(False)
                self._rollback()
                isolated = True
                self.runs_again["isolated"] += 1
                continue
            except UnitLost as failure:  # run the batch again without that unit
                self._tx.halts.batch(False)
                self._rollback()
                if self._runs_again(failure.cause):  # or with it: its statement prepared anew
                    continue
                lost[running[failure.unit]] = failure.cause
                if len(lost) < len(batch):  # units are left to run
                    self.runs_again["unit_lost"] += 1
                if not isinstance(failure.cause, CoordError):
                    log.error("unit of work failed", exc_info=failure.cause)
                continue
            except BaseException as exc:  # the whole batch is lost: nothing was acknowledged
                if self._tx is not None:
                    self._tx.halts.batch(False)
                if self._runs_again(exc):
                    self._rollback()
                    continue
                results = [(None, self._batch_failure(exc))] * len(running)
            break
        by_position = dict(zip(running, results, strict=True))
        outcomes = [(future, *(by_position[i] if i in by_position else (None, lost[i])))
                    for i, (_, future) in enumerate(batch)]
        self.batches += 1
        self.units += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Reply, Any, BaseException | None]]] = {}
        for outcome in outcomes:
            future = outcome[0]
            if isinstance(future, asyncio.Future):
                by_loop.setdefault(future.get_loop(), []).append(outcome)
            else:
                _settle([outcome])
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, items)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

    def _attempt(self, units: list[Callable[[Any], Any]], *,
                 optimistic: bool) -> list[tuple[Any, BaseException | None]]:
        """Run ``units`` in one transaction and commit; return each one's (result, failure).

        ``optimistic``: a unit that ends without error leaves its checks
        waiting (:meth:`Executor.finish_unit`); one that refuses it later is
        lost (:class:`UnitLost`). Else each unit's checks are settled when it ends.
        """
        conn = self._ensure_connection()
        begun, self._begun = self._begun, None
        self._tx.halts.batch(True, conn.begin(_named(units)) if begun is None else begun)
        single = len(units) == 1
        results = [self._run_unit(conn, fn, single, optimistic) for fn in units]
        if self.before_commit is not None:
            self.before_commit(self._tx)
        committing = time.perf_counter()
        self._tx.halts.batch(False)
        # Units that queued while this batch ran begin their batch in its COMMIT's round trip (one fewer per
        # batch) when the backend can. A unit that comes during that round trip waits for the batch after, where
        # it would have joined this one: so only as many as CHAIN_UNITS are worth it (fewer, and the batches shrink
        # by more than the round trip saves: measured, docs/benchmarks.md).
        if (self._chain is not None and self._next is None and not self._stopping
                and self._queue.qsize() >= CHAIN_UNITS):
            self._next = self._take([]) or None
        if self._chain is not None and self._next is not None:
            self._begun = self._chain(_named([fn for fn, _ in self._next]))
        else:
            conn.commit()
        self._observe(len(units), time.perf_counter() - committing)
        self._notify_commit()
        return results

    def _runs_again(self, exc: BaseException) -> bool:
        """Whether the running batch runs again for ``exc`` (``is_stale``, while runs are left); spends a run."""
        if self._stale_left and self._is_stale(exc):
            self._stale_left -= 1
            self.runs_again["stale"] += 1
            return True
        return False

    def _rollback(self) -> None:
        self._begun = None
        conn = self._conn
        if conn is not None:
            try:
                conn.rollback()
            except Exception:  # the connection may already be gone
                pass

    def _observe(self, units: int, seconds: float) -> None:
        observe = self.on_batch
        if observe is not None:
            try:
                observe(units, seconds)
            except Exception:  # metrics must never fail a committed batch
                log.exception("batch observer failed")

    def _notify_commit(self) -> None:
        hook = self.after_commit
        if hook is None:
            return
        try:
            hook(self._tx)
        except Exception as exc:  # a listener's failure must not undo an acknowledged commit
            if self._is_unavailable(exc):  # the database went away just after the commit
                log.warning("after-commit listener: database unavailable: %s", exc)
            else:
                log.exception("after-commit listener failed")

    def _run_unit(self, conn: WriterConnection, fn: Callable[[Any], Any], single: bool,
                  optimistic: bool) -> tuple[Any, BaseException | None]:
        """Run one unit of the batch in its own savepoint, so that its failure undoes only its own writes; a lone
        unit owns the transaction and needs none.

        On a ``local`` store (SQLite) the first run of a batch takes no savepoints (issue 15: a savepoint copies
        every page the unit then writes into SQLite's statement journal, ~10 % of a unit's instructions). A
        unit that fails there having changed no row has nothing to undo and fails alone; one that changed rows
        raises :class:`RunIsolated`: the batch runs again, every unit in its savepoint.
        """
        ex = conn.executor
        bare = not single and optimistic and ex.local  # a local batch's first run: no savepoint, changes watched
        isolated = not single and not bare
        changed = ex.changes() if bare else 0
        self._tx.halts.unit_begins()
        if isolated:
            ex.execute("SAVEPOINT unit")
        try:
            try:
                result = fn(self._tx)
            except BaseException:  # a check the unit's SQL still waits for comes first, even before its own error
                ex.settle()
                raise
            if not optimistic:
                ex.settle()
            ex.finish_unit()
        except Exception as exc:
            if self._is_unavailable(exc) or (self._stale_left and self._is_stale(exc)):  # the batch's (_run_batch)
                raise
            if single:
                # A lone unit owns the transaction; re-raise so the batch rolls back.
                raise
            if isolated:
                ex.execute("ROLLBACK TO SAVEPOINT unit")
                ex.execute("RELEASE SAVEPOINT unit")
            elif ex.changes() != changed:  # its writes (or the transaction) must be undone: the batch runs again
                raise RunIsolated() from exc
            self._tx.halts.forget()
            if not isinstance(exc, CoordError):
                log.exception("unit of work failed")
            return None, exc
        if isolated:
            ex.execute("RELEASE SAVEPOINT unit")
        return result, None

    def _batch_failure(self, exc: BaseException) -> BaseException:
        conn = self._conn
        self._rollback()
        if isinstance(exc, CoordError):
            return exc
        if self._is_unavailable(exc):
            if not self._down:
                log.warning("store write failed, database unavailable: %s", exc)
            self._down = True
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
            self._conn = None
            self._failed_at = time.monotonic()
            return Unavailable()
        log.error("store write failed", exc_info=exc)
        return exc
