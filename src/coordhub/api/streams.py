"""Caps on long-lived requests: SSE streams and long-polls, per session and per hub process.

Each open stream or long-poll holds a connection (a file descriptor) for as
long as it lasts, so one client opening thousands of them could take every
descriptor the hub has (issue 8: 1,100 streams from one token took a hub at
``ulimit -n 1024`` offline). :class:`StreamSlots` counts them: past
``per_key`` for one session, or ``total`` for the process, a new one is
refused with 429 ``too_many_streams`` and a message saying which limit was
hit. ``total`` is set below the connection limit, so short requests
(``/health``, admin calls) always find a connection.

Under ``coord serve --workers N`` the per-session limit holds across the
serving processes (:class:`SharedSlots`): a session's streams are counted
wherever they landed, not ``per_key`` in each process. On PostgreSQL it holds
across every hub on the database (:mod:`coordhub.store.pgslots`), behind a load
balancer too. ``total`` stays each process's own, as its descriptors are.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from coordhub.api import wire
from coordhub.api.auth import Authenticator, Caller, web_cookie
from coordhub.api.headers import header
from coordhub.core import websessions
from coordhub.core.identity import fold
from coordhub.errors import TooManyStreams, Unauthorized, Unavailable

if TYPE_CHECKING:  # psycopg loads only on a PostgreSQL hub
    from coordhub.core.bus import EventBus
    from coordhub.store.pgslots import AdvisorySlots, Ticket

RETRY_SECONDS = 5
DATABASE_SECONDS = 5.0  # a stream waits this long for the database's count, then is counted in its hub alone
DATABASE_RETRY_SECONDS = 5.0  # once it failed, the database is asked again after this long, not by every stream
MAX_PENDING = 64  # slot calls queued for the database past which a stream is counted in its hub alone
SLOTS_FILE = "stream-slots"  # in the data directory: the byte-range locks of SharedSlots
_OFFSETS = 1 << 62  # SharedSlots' slots lie below it (off_t is 63 bits), its probe at it
log = logging.getLogger(__name__)


class SharedSlots:
    """A session's stream slots as byte-range locks on one file that every serving process of a hub opens, so
    that ``per_key`` holds across them (``coord serve --workers N``).

    Slot ``i`` of a key is one byte of the file, at ``h * per_key + i`` where
    ``h`` is the key's BLAKE2b digest reduced so that every offset stays below
    2**62; a process holds a slot while it holds the byte's POSIX record lock
    (``fcntl(2)``, ``F_SETLK``: a byte another process holds is refused at
    once, nothing waits). The kernel drops a dead process's locks, so a worker
    killed with its streams open frees their slots with it. Record locks belong
    to the process, not to a descriptor, and closing any descriptor of the
    file drops them all: one descriptor is opened per process and kept, and
    the process remembers which bytes it holds itself (a second lock of its
    own byte would succeed), by offset, so two keys whose digests collide share
    one budget rather than exceed it. The file stays empty: a lock may lie past
    its end.

    Raises ``OSError`` when the file cannot be opened or locked at all (a file
    system without record locks): :meth:`StreamSlots.share` then counts in
    each process.
    """

    def __init__(self, path: Path, per_key: int) -> None:
        self.per_key = per_key
        self._span = _OFFSETS // per_key  # digests reduced modulo this: h * per_key + i < 2**62
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._held: set[int] = set()  # the offsets this process holds
        try:  # a file system that refuses record locks is found here, not at each stream
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _OFFSETS, os.SEEK_SET)
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, _OFFSETS, os.SEEK_SET)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):  # held: another worker probing as it starts
                os.close(self._fd)
                raise

    def _base(self, key: str) -> int:
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % self._span * self.per_key

    def take(self, key: str) -> int | None:
        """A free slot of ``key`` (its index), now held by this process; None when every one is held by some
        process of the hub. Raises ``OSError`` for a lock refused otherwise than as held elsewhere."""
        base = self._base(key)
        for i in range(self.per_key):
            if base + i in self._held:
                continue
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, base + i, os.SEEK_SET)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):  # another serving process holds this one
                    continue
                raise
            self._held.add(base + i)
            return i
        return None

    def give(self, key: str, slot: int) -> None:
        """Give back ``slot`` of ``key`` (:meth:`take`'s)."""
        offset = self._base(key) + slot
        self._held.discard(offset)
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)


class _SlotThread:
    """One daemon thread running the database's slot calls in order (an :class:`AdvisorySlots` is used from one
    thread only). A daemon: a connection stuck on a network path that stopped answering must not keep the hub
    process from exiting, and the server frees the locks of a connection that ends anyway."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]] | None] = \
            queue.SimpleQueue()
        self.pending = 0  # calls queued or running: a bound on what a database that does not answer piles up
        self._count = threading.Lock()  # pending moves on both threads (a late give is submitted from this one)
        threading.Thread(target=self._run, name="stream-slots", daemon=True).start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._count:
            self.pending += 1
        self._calls.put((fn, args, future))
        return future

    def stop(self) -> None:
        """End the thread after the calls queued before this one."""
        self._calls.put(None)

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            fn, args, future = call
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(*args))
                    except BaseException as exc:
                        future.set_exception(exc)
            finally:
                with self._count:
                    self.pending -= 1


class StreamSlots:
    """Counts held streams per key (a session) and in total. Use from the event loop's thread only."""

    def __init__(self, per_key: int, total: int) -> None:
        self.per_key = per_key
        self.total = total
        self.held = 0
        self._by_key: dict[str, int] = {}
        self._shared: SharedSlots | None = None
        self._database: AdvisorySlots | None = None
        self._thread: _SlotThread | None = None  # the database's slots run here: each take is a round trip
        self._database_down = False  # said once in the log, until the database counts again
        self._retry_at = 0.0  # while down, streams are counted here alone until this time (monotonic seconds)
        self._stopping = False  # the process began to shut down: every LiveStream ends (stop_streams)
        self._stopped: asyncio.Future[None] | None = None  # one for every stream: no task or waiter per stream

    def stopped(self) -> asyncio.Future[None]:
        """A future of the running loop, done once :meth:`stop_streams` was called (the same one for every stream;
        never cancel it)."""
        if self._stopped is None:
            self._stopped = asyncio.get_running_loop().create_future()
            if self._stopping:
                self._stopped.set_result(None)
        return self._stopped

    def stop_streams(self) -> None:
        """End every live stream of this process, now and from now on (:class:`LiveStream`): the server is shutting
        down. Each ends its response cleanly (a client reconnects with ``Last-Event-ID`` elsewhere or after the
        restart) instead of holding the shutdown for its whole grace and being cut with an error logged.

        Safe to call from a signal handler on the event loop's thread: the future is completed by the loop."""
        self._stopping = True
        stopped = self._stopped
        if stopped is not None:
            stopped.get_loop().call_soon_threadsafe(_finish, stopped)

    def share(self, data_dir: Path) -> None:
        """Count each key's slots across every serving process that shares ``data_dir`` (:class:`SharedSlots`);
        when its file cannot be opened, each process goes on counting its own (logged)."""
        try:
            self._shared = SharedSlots(data_dir / SLOTS_FILE, self.per_key)
        except OSError as exc:
            log.warning("streams_per_token is counted in each serving process: %s: %s", data_dir / SLOTS_FILE, exc)

    def share_database(self, slots: AdvisorySlots) -> None:
        """Count each key's slots with every hub on the database (:mod:`coordhub.store.pgslots`), on a thread of
        their own; :meth:`close` gives them back."""
        self._database = slots
        self._thread = _SlotThread()

    def close(self) -> None:
        """Give back every slot held in the database (its connection closes); a no-op without one."""
        thread, database, self._thread, self._database = self._thread, self._database, None, None
        if thread is not None and database is not None:
            thread.submit(database.close)
            thread.stop()

    async def acquire(self, key: str) -> Callable[[], None]:
        """Take a slot for ``key``; return the function that gives it back (idempotent).

        Raises :class:`TooManyStreams` (429) when ``key`` holds ``per_key``
        slots (in every serving process after :meth:`share`, on every hub of
        the database after :meth:`share_database`) or the process holds
        ``total``. Where they cannot be counted together (the file or the
        database fails), the slot is counted in this process alone, and logged.
        """
        mine = self._by_key.get(key, 0)
        if mine >= self.per_key:
            raise TooManyStreams(f"{key} already holds {mine} event streams and long-polls, the limit per token "
                                 f"(streams_per_token); close one before opening another", RETRY_SECONDS)
        if self.held >= self.total:
            raise TooManyStreams(f"the hub holds its limit of {self.total} event streams and long-polls; "
                                 f"retry in {RETRY_SECONDS} s", RETRY_SECONDS)
        self._count(key, 1)  # before any wait: this process's other opens of the key see it
        try:
            give = await self._take_shared(key)
        except BaseException:
            self._count(key, -1)
            raise
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._count(key, -1)
            give()

        return release

    def _count(self, key: str, step: int) -> None:
        self.held += step
        left = self._by_key.get(key, 0) + step
        if left:
            self._by_key[key] = left
        else:
            del self._by_key[key]

    async def _take_shared(self, key: str) -> Callable[[], None]:
        """Take ``key``'s slot where slots are shared; the function that gives it back (a no-op where none is
        held). Raises :class:`TooManyStreams` when every one is held."""
        if self._database is not None:
            return await self._take_in_database(key, self._database)
        shared = self._shared
        if shared is None:
            return _nothing
        try:
            slot = shared.take(key)
        except OSError as exc:  # counted here alone, this once: the stream is not refused for it
            log.warning("a stream slot of %s is counted in this serving process only: %s", key, exc)
            return _nothing
        if slot is None:
            raise TooManyStreams(f"{key} already holds {self.per_key} event streams and long-polls across the "
                                 f"hub's serving processes, the limit per token (streams_per_token); close one "
                                 f"before opening another", RETRY_SECONDS)
        return lambda: shared.give(key, slot)

    async def _take_in_database(self, key: str, database: AdvisorySlots) -> Callable[[], None]:
        thread = self._thread
        assert thread is not None
        if self._database_down and time.monotonic() < self._retry_at:
            return _nothing  # asked again once the retry time has come, not by every stream meanwhile
        if thread.pending >= MAX_PENDING:  # a database that answers slowly: the streams are not queued behind it
            self._say_down(key, f"{thread.pending} stream slots wait for the database")
            return _nothing
        future = thread.submit(database.take, key)
        try:
            ticket = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), DATABASE_SECONDS)
        except (TimeoutError, asyncio.CancelledError) as exc:
            future.add_done_callback(self._give_late)  # a take that ends after all must not keep its slot
            if isinstance(exc, asyncio.CancelledError):
                raise
            self._say_down(key, f"no answer in {DATABASE_SECONDS:g} s")
            return _nothing
        except Unavailable as exc:
            self._say_down(key, exc.message)
            return _nothing
        except Exception as exc:  # not the database's answer: the stream is not refused for it, nor the hub's 500
            log.exception("counting a stream slot of %s in the database failed", key)
            self._say_down(key, f"{type(exc).__name__}: {exc}")
            return _nothing
        if self._database_down:
            self._database_down = False
            log.warning("stream slots are counted in the database again")
        if ticket is None:
            raise TooManyStreams(f"{key} already holds {self.per_key} event streams and long-polls across the "
                                 f"hubs on the database, the limit per token (streams_per_token); close one "
                                 f"before opening another", RETRY_SECONDS)
        return lambda: self._give(ticket)

    def _say_down(self, key: str, why: str) -> None:
        if not self._database_down:
            log.warning("stream slots are counted in each hub process until the database answers (%s); first "
                        "for %s", why, key)
        self._database_down = True
        self._retry_at = time.monotonic() + DATABASE_RETRY_SECONDS

    def _give(self, ticket: Ticket) -> None:
        thread, database = self._thread, self._database
        if thread is None or database is None:  # closed: its connection gave back every slot
            return
        thread.submit(database.give, ticket).add_done_callback(_log_failed_give)

    def _give_late(self, future: Future[Ticket | None]) -> None:
        if not future.cancelled() and future.exception() is None and (ticket := future.result()) is not None:
            self._give(ticket)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """A slot for ``key`` for the duration of the ``async with`` block (see :meth:`acquire`)."""
        release = await self.acquire(key)
        try:
            yield
        finally:
            release()


def _nothing() -> None:
    """What gives back a slot counted in this process alone."""


def _log_failed_give(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:  # the lost connection dropped its locks too
        log.warning("giving back a stream slot failed: %s", future.exception())


class LiveStream(Response):
    """A streaming response written by ``body(send, wire)`` until the client goes away; gives its slot back however
    it ends.

    ``body`` sends only ``http.response.body`` messages (``more_body``: true)
    and may hand ``send`` or ``wire`` (the connection's transport once the
    response has started, when the server is uvicorn: :mod:`coordhub.api.wire`;
    else None) to others for the life of the stream (the SSE fan-out writes
    through them from its own loop, :mod:`coordhub.api.fanout`). The
    response starts before ``body`` runs; a task per stream (not per write)
    waits for the client's disconnect and then cancels ``body``. When the
    process shuts down (:meth:`StreamSlots.stop_streams`) ``body`` is
    cancelled and the response ended after ``farewell`` (bytes), so the client
    sees a finished stream.
    """

    def __init__(self, body: Callable[[Send, wire.Wire | None], Awaitable[None]], release: Callable[[], None], *,
                 media_type: str, headers: dict[str, str], farewell: bytes = b"") -> None:
        self._body = body
        self._farewell = farewell
        self._release = release
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)  # no body attribute: no Content-Length (the stream's length is unknown)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            writing = asyncio.ensure_future(self._body(send, wire.of(scope)))
            listening = asyncio.ensure_future(_disconnected(receive))
            stopping = _stopped(scope)
            farewell = False
            try:
                await asyncio.wait((writing, listening, stopping), return_when=asyncio.FIRST_COMPLETED)
                farewell = stopping.done() and not listening.done() and not writing.done()
            finally:
                for task in (writing, listening):
                    task.cancel()
                for task in (writing, listening):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task  # a failure of the body is raised here
            if farewell:  # the process is stopping and the client still listens: end the response, not the connection
                await send({"type": "http.response.body", "body": self._farewell, "more_body": False})
        finally:
            self._release()


def _stopped(scope: Scope) -> asyncio.Future[None]:
    """:meth:`StreamSlots.stopped` of the app serving ``scope``; a future never done for an app without slots."""
    slots = getattr(getattr(scope.get("app"), "state", None), "streams", None)
    return slots.stopped() if isinstance(slots, StreamSlots) else asyncio.get_running_loop().create_future()


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone away."""
    while (await receive())["type"] != "http.disconnect":
        pass


CATCH_UP_READS_PER_KEY = 1
"""Store reads of the event log one session's streams make at once while they catch up (:class:`ReadTurns`)."""


class ReadTurns:
    """Turns per key (a session) at a costly read: at most ``per_key`` run at once, the rest wait their turn.

    A stream catching up from the store reads and renders up to 1,000 events a page on a reader thread: pure
    Python, holding the GIL. One token's 32 streams resumed from ``Last-Event-ID: 0`` kept every reader thread
    busy, so the event loop got the GIL about one sample in ten and ``/health`` waited up to 1.8-3.6 s (review
    DoS, 30,000 events, real hub). Taking turns, a session's streams still catch up (one page after another,
    each paced by its client's reading), while other requests and other sessions' reads go on. A key's entry
    lives while a read holds or waits for its turn. Use from the event loop's thread only.
    """

    def __init__(self, per_key: int = CATCH_UP_READS_PER_KEY) -> None:
        self.per_key = per_key
        self._by_key: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        """Hold one of ``key``'s turns for the body (waiting for one first)."""
        entry = self._by_key.get(key)
        if entry is None:
            entry = self._by_key[key] = (asyncio.Semaphore(self.per_key), [0])
        gate, users = entry
        users[0] += 1
        try:
            async with gate:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._by_key[key]

    def keys(self) -> int:
        """How many keys hold or wait for a turn now."""
        return len(self._by_key)


def catch_up_turns(request: Request) -> ReadTurns:
    """The app's turns at store reads of streams catching up."""
    turns: ReadTurns = request.app.state.catch_up_turns
    return turns


def slots(request: Request) -> StreamSlots:
    """The app's stream slots."""
    held: StreamSlots = request.app.state.streams
    return held


async def until_event(request: Request, bus: EventBus, after_id: int, timeout: float) -> bool:
    """:meth:`EventBus.wait <coordhub.core.bus.EventBus.wait>` for a long-poll: True once an event newer than
    ``after_id`` is published; False after ``timeout`` seconds, or at once when this process begins to shut down
    (:meth:`StreamSlots.stop_streams`), so a waiting request answers what it has instead of holding the shutdown
    for its grace and being cut."""
    stopped = slots(request).stopped()
    if stopped.done():
        return False
    waiting = asyncio.ensure_future(bus.wait(after_id, timeout))
    try:
        await asyncio.wait((waiting, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not waiting.done():
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
    return waiting.result() if not waiting.cancelled() else False


def key(who: Caller, request: Request) -> str:
    """Whose slots a request uses: its token's session; on a ``--no-auth`` hub the named session, else the address."""
    if who.token_actor is not None:
        return who.token_actor.session_id
    return who.header_session or (request.client.host if request.client else "?")


@dataclass(frozen=True)
class Credential:
    """What authenticated a stream, so that the stream ends with it: the session whose token did (folded; a
    ``token.revoked`` naming it ends the stream), the web session whose cookie did (its key; its
    ``web.signed_out`` does), ``still`` (whether it is still live, asked once the stream has joined the fan-out:
    a revocation published before that is not missed), and ``lifetime`` (seconds; 0: unbounded)."""

    session: str | None = None
    web: str | None = None
    still: Callable[[], Awaitable[bool]] | None = None
    lifetime: float = 0.0


async def credential(request: Request, who: Caller) -> Credential:
    """What authenticated this stream request (see :class:`Credential`): its token, or its web-session cookie."""
    lifetime = float(request.app.state.limits.stream_max_seconds)
    if who.token_actor is None:  # --no-auth: nothing to revoke
        return Credential(lifetime=lifetime)
    auth: Authenticator = request.app.state.auth
    session = fold(who.token_actor.session_id)
    authorization = header(request.scope, "authorization")
    cookie = web_cookie(request) if authorization is None else None
    if cookie is not None:  # as :func:`coordhub.api.auth.caller` decided: the cookie authenticated it
        async def web_live() -> bool:
            return await auth.web_session(cookie) is not None

        web = await auth.web_session(cookie)
        if web is not None:  # a web session expires without an event: its stream ends when it does
            left = max(web.expires_at - request.app.state.hub.clock.now(), 1.0)
            lifetime = min(lifetime, left) if lifetime > 0 else left
        return Credential(session, websessions.key(cookie), web_live, lifetime)
    token = (authorization or "").partition(" ")[2].strip()

    async def token_live() -> bool:
        try:
            await auth.actor(token)
        except Unauthorized:
            return False
        return True

    return Credential(session, None, token_live, lifetime)
