"""One writer process in front of the database for ``coord serve --workers N --writer-process``.

Under ``--workers N`` every serving process has its own writer, and the
writers take turns at the database's writer lock (PostgreSQL's advisory lock,
SQLite's ``flock``). A writer holding the lock runs its batch's Python on an
interpreter lock it shares with its own HTTP loop, so on PostgreSQL the other
writers mostly wait for a process that is busy serving (issue 15, measured in
docs/benchmarks.md). With ``--writer-process`` the supervisor also starts one
process that serves no HTTP: it opens the store and runs the hottest writes
and an agent's routine ones (:class:`coordhub.core.calls.Call`: sends, claims,
releases, renewals, revocations, presence, marking read, acks) for every
serving process, so they share its batches and its commits.

The frames they exchange, and what a frame may carry, are
:mod:`coordhub.writer_wire`'s. In short: a serving process says hello, then
sends calls; the writer process says hello, answers each call, sends every
serving process the events each commit logged before that batch's answers,
and reports its batches once a second.

What stays true: every write still runs :meth:`Hub.mutate`'s rules (halts,
idempotency, the acting session) in the writer process's own unit of work;
writes that are not calls, and calls while the link is down (the writer
process starting or restarting), run on the serving process's own writer
under the same database lock. A write whose answer is lost with the link
fails with ``WriterLost`` (503): as with a database lost during a commit,
it may or may not have been applied, and its ``Idempotency-Key`` makes the
retry safe; the writer process does not start a write of a link that has
gone. Neither end waits on the other for long: the writer thread never
blocks on a link (:class:`_Link`), and a serving process leaves a writer
process that has answered nothing for :data:`STALL_SECONDS` while writes
wait, or that has not said hello.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import pickle
import select
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from coordhub.core.automata import Meter
from coordhub.core.calls import Call
from coordhub.core.halt import Exempt
from coordhub.core.hub import Hub, Outcome
from coordhub.core.idempotency import IdempotentRequest
from coordhub.core.identity import Actor
from coordhub.errors import CoordError, WriterLost
from coordhub.store.base import Ahead, Row, Scan
from coordhub.store.tx import Tx
from coordhub.writer_wire import MAX_FRAME, PROTOCOL, Frames, decode, encode, frame_size

log = logging.getLogger("coordhub")

SOCKET_NAME = "writer.sock"
MAX_OUTBOX = 2 * MAX_FRAME  # bytes a serving process may fall behind before its link is closed
RECONNECT_SECONDS = 0.2  # between a serving process's attempts to reach the writer process
SEND_SECONDS = 5.0  # a send to a serving process that has not finished in this long closes its link
STOP_SECONDS = 30.0  # a stopping link waits at most this long for the answers of its calls under way
STALL_SECONDS = 10.0  # a serving process whose oldest call has had no frame back this long drops the link
REPORT_SECONDS = 1.0  # how often the writer process reports its batches to the serving processes (/metrics)
_REPORT_MAX = 10_000  # batches one report carries; past it between two reports the oldest are not reported


class WriterLink:
    """A serving process's end: runs :class:`Call` mutations in the writer process at ``path`` (``Hub.remote``)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._frames: Frames | None = None
        self._pending: dict[int, asyncio.Future[Outcome]] = {}
        self._meters: dict[int, Meter] = {}  # call id -> the meter its overlap steps go to
        self._next = 0
        self._task: asyncio.Task[None] | None = None
        self._publish: Callable[[int, list[Row]], None] = lambda after, rows: None
        #: Connections made (the first, and one after each restart of the writer process).
        self.connections = 0
        #: Calls the writer process answered.
        self.calls = 0
        #: The writer process's pid, from its hello (None until the first).
        self.pid: int | None = None
        self._mismatched: list[object] = []  # versions of the link writer processes said that are not ours (logged)
        #: Called with each of the writer process's batches (its units, its commit's seconds): ``/metrics``.
        self.on_batch: Callable[[int, float], None] | None = None
        self._heard = 0.0  # loop time of the last frame from the writer process (or of the first call waiting)
        self._greeted: asyncio.Future[bool] | None = None  # resolved by the writer process's hello: ours or not

    @property
    def ready(self) -> bool:
        """True while connected."""
        return self._frames is not None

    def as_dict(self) -> dict[str, Any]:
        """``connected``, ``connections`` made, ``calls`` answered, the writer process's ``pid`` (``/health``)."""
        return {"connected": self.ready, "connections": self.connections, "calls": self.calls, "pid": self.pid}

    def start(self, publish: Callable[[int, list[Row]], None]) -> None:
        """Keep connected from the running loop; ``publish(after, rows)`` gets the events the writer process
        commits (:meth:`Hub.feed_commits`)."""
        self._publish = publish
        self._task = asyncio.ensure_future(self._keep_connected())

    def stop(self) -> None:
        """Disconnect for good; calls run on the serving process's own writer from now on."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        frames, self._frames = self._frames, None
        if frames is not None and frames.transport is not None:
            frames.transport.close()

    async def _keep_connected(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            lost: asyncio.Future[None] = loop.create_future()

            def on_lost(exc: BaseException | None, lost: asyncio.Future[None] = lost) -> None:
                if not lost.done():
                    lost.set_result(None)

            self._greeted = loop.create_future()  # before connecting: the hello may come with the connection
            try:
                _, frames = await loop.create_unix_connection(lambda: Frames(self._received, on_lost),
                                                              str(self._path))
            except OSError:  # not listening yet, or restarting
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            frames.send(encode(("hello", PROTOCOL)))
            # Ready only once it says hello: a writer process that is stopped or wedged still has its
            # connections accepted by the kernel, and must not be sent calls it will never answer.
            try:
                waiting: list[asyncio.Future[Any]] = [self._greeted, lost]
                await asyncio.wait(waiting, timeout=STALL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:  # stopped meanwhile
                if frames.transport is not None:
                    frames.transport.abort()
                raise
            if not self._greeted.done() or lost.done() or not self._greeted.result():
                if frames.transport is not None:
                    frames.transport.abort()
                # another version answers more slowly than a restart: it stays until the supervisor replaces it
                await asyncio.sleep(STALL_SECONDS if self._greeted.done() else RECONNECT_SECONDS)
                continue
            self._frames = frames
            self.connections += 1
            self._heard = loop.time()
            try:
                while not lost.done():
                    await asyncio.wait([lost], timeout=1.0)
                    if self._pending and loop.time() - self._heard > STALL_SECONDS:
                        log.warning("the writer process answered nothing for %.0f s; writes run here until it "
                                    "does", STALL_SECONDS)
                        if frames.transport is not None:
                            frames.transport.abort()
                        break
            finally:
                self._frames = None
                pending, self._pending = self._pending, {}
                for future in pending.values():
                    if not future.done():
                        future.set_exception(WriterLost())
            log.warning("the link to the writer process was lost; writes run here until it is back")

    async def mutate(self, actor: Actor, call: Call, status: int, idem: IdempotentRequest | None,
                     during_halt: Exempt | None, ahead: Ahead | None, meter: Meter | None = None) -> Outcome:
        """Run ``Hub.mutate`` in the writer process as ``call.actor`` (``actor``: the same, as the protocol
        passes it); raise what it raised there (``Unavailable`` if the link was lost before the answer came).
        The overlap steps it spent there, which the answer carries, are added to ``meter``."""
        frames = self._frames
        if frames is None:
            raise WriterLost()
        self._next += 1
        ident = self._next
        loop = asyncio.get_running_loop()
        if not self._pending:
            self._heard = loop.time()  # the stall watch counts from the oldest call waiting
        future: asyncio.Future[Outcome] = loop.create_future()
        self._pending[ident] = future
        if meter is not None:
            self._meters[ident] = meter
        try:
            named = None if ahead is None else (ahead.sessions, ahead.leases, [tuple(s) for s in ahead.scans],
                                                ahead.quotas)
            frames.send(encode((ident, call.plain(), status, None if idem is None else (idem.key, idem.fingerprint),
                                None if during_halt is None else during_halt.name, named)))
            return await future
        finally:
            self._pending.pop(ident, None)
            self._meters.pop(ident, None)

    def _received(self, message: Any) -> None:
        self._heard = asyncio.get_running_loop().time()
        kind = message[0]
        if kind == "hello":
            said = message[2] if len(message) > 2 else None  # a writer process of before versions said none
            ours = said == PROTOCOL
            if ours:
                self.pid = message[1]
            elif said not in self._mismatched:
                self._mismatched.append(said)
                log.warning("the writer process speaks version %s of the link, not %s (an upgrade under way?); "
                            "writes run here until one that speaks it starts", said, PROTOCOL)
            if self._greeted is not None and not self._greeted.done():
                self._greeted.set_result(ours)
            return
        if kind == "batches":
            if self.on_batch is not None:
                for units, seconds in message[1]:
                    self.on_batch(units, seconds)
            return
        if kind == "events":
            self._publish(message[1], message[2])
            return
        future = self._pending.get(message[1])
        self.calls += 1
        if future is None or future.done():
            return  # its request was cancelled (the client went away)
        meter = self._meters.get(message[1])
        if meter is not None and kind in ("ok", "error"):
            meter.steps += message[-1]
        if kind == "ok":
            future.set_result(Outcome(*message[2:-1]))
        elif kind == "error":
            future.set_exception(message[2])
        else:
            future.set_exception(RuntimeError(f"the writer process failed this write: {message[2]}"))


class _LinkedCall(Call):
    """A :class:`Call` a serving process shipped over ``link``. It stays a ``Call`` when it runs, so the rules
    :meth:`Hub.mutate <coordhub.core.hub.Hub.mutate>` keeps for calls by name apply here as in the serving
    process (a claim or renewal in a halted project is refused, whoever makes it); a closure around it hid its
    name, and let both through under ``coord serve --workers N``."""

    __slots__ = ("link",)
    link: _Link

    def __call__(self, tx: Tx, now: float) -> Any:
        if self.link.gone:  # its caller was answered 503 already: it must not happen later behind its back
            raise WriterLost()
        return super().__call__(tx, now)


class _Link:
    """The writer process's end of one serving process's connection.

    Frames queue here in order and leave in as few system calls as the
    traffic allows: a thread of the link's own sends the answers that queued
    while the writer thread went on with its next batch. A batch's events
    (:meth:`send` ``at_once``) are tried from the writer thread itself, with
    what queued before them, in one non-blocking send, so that a push waits
    for no thread to wake; whatever the socket does not take at once is left
    to the link's thread. The writer thread never waits for a serving process.

    A serving process that stops reading loses its link: a send that has not
    finished within :data:`SEND_SECONDS`, or an outbox over :data:`MAX_OUTBOX`
    bytes, closes it (the serving process reconnects). ``gone`` is set when
    the link ends before its calls were answered: calls of it still queued
    then refuse to run (:meth:`WriterServer._run`).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.gone = False
        self.protocol: object = None  # the link's version, as its serving process said it
        self._outbox: list[bytes] = []
        self._queued = 0  # bytes in the outbox
        self._ready = threading.Condition()
        self._sending = threading.Lock()  # one sender at a time, so frames leave in the order they queued
        self._closed = False
        self._in_flight = 0  # calls read and not yet answered (answers queued)
        self._sender = threading.Thread(target=self._send_forever, name="coord-writer-send", daemon=True)
        self._sender.start()

    def send(self, frame: bytes, *, at_once: bool = False) -> None:
        """Queue one frame (from any thread); ``at_once``: try to send it and all before it now, without
        waiting (neither for the socket nor for the link's thread)."""
        with self._ready:
            if self._closed:
                return
            self._outbox.append(frame)
            self._queued += len(frame)
            if self._queued > MAX_OUTBOX:
                log.warning("writer process: a serving process is %d bytes behind; closing its link", self._queued)
                self._close_locked()
                return
            if not at_once or not self._sending.acquire(blocking=False):
                self._ready.notify()
                return
        try:
            self._send_some()
        finally:
            self._sending.release()
        with self._ready:
            if self._outbox:
                self._ready.notify()

    def _take(self) -> bytes:
        with self._ready:
            data, self._outbox, self._queued = b"".join(self._outbox), [], 0
        return data

    def _send_some(self) -> None:
        """One non-blocking send of what has queued (``_sending`` held); the rest goes back to the front."""
        data = self._take()
        try:
            sent = self.sock.send(data, socket.MSG_DONTWAIT) if data else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(data):
            with self._ready:
                self._outbox.insert(0, data[sent:])
                self._queued += len(data) - sent

    def _send_all(self) -> bool:
        """Send everything queued (``_sending`` held), within SEND_SECONDS; False when the link had to close."""
        data = memoryview(self._take())
        deadline = time.monotonic() + SEND_SECONDS
        poller = select.poll()
        try:
            poller.register(self.sock, select.POLLOUT)
        except (ValueError, OSError):  # the socket was closed under the link (its fd is -1): the link is over
            self.close()
            return False
        while data:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                log.warning("writer process: a serving process read nothing for %.0f s; closing its link",
                            SEND_SECONDS)
                self.close()
                return False
            try:
                data = data[self.sock.send(data, socket.MSG_DONTWAIT):]
            except BlockingIOError:
                continue
            except OSError:
                self.close()
                return False
        return True

    def _send_forever(self) -> None:
        while True:
            with self._ready:
                while not self._outbox and not self._closed:
                    self._ready.wait()
                if self._closed:
                    return
            with self._sending:
                # closed while this thread waited for the lock (finish sent the rest, and the socket's owner may
                # have closed it since): nothing is left to send
                if self._closed or not self._send_all():
                    return

    def begun(self) -> None:
        """A call of this link was queued on the writer."""
        with self._ready:
            self._in_flight += 1

    def answered(self) -> None:
        """A call's answer was queued."""
        with self._ready:
            self._in_flight -= 1
            self._ready.notify_all()

    def finish(self, seconds: float) -> None:
        """Wait (at most ``seconds``) for the answers of the calls under way, send what has queued, close."""
        deadline = time.monotonic() + seconds
        with self._ready:
            while self._in_flight and not self._closed and self._ready.wait(max(0.0, deadline - time.monotonic())):
                pass
        with self._sending:
            if not self._closed:
                self._send_all()
        self.close()

    def close(self) -> None:
        """Shut the connection (its reading thread then ends) and stop sending; what is queued is dropped."""
        with self._ready:
            self._close_locked()

    def _close_locked(self) -> None:
        self._closed = True
        self._outbox, self._queued = [], 0
        self._ready.notify_all()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class WriterServer:
    """The writer process's end: runs each serving process's calls on ``hub``'s writer and sends them its
    commits' events.

    No event loop: one thread per serving process reads its frames and queues
    each call on the store's writer (``Store.submit_write``); after each commit
    the writer thread sends the batch's events to every link, then queues the
    batch's answers as it settles them (:class:`_Link`: in that order on every
    link).

    Stopping (:meth:`serve`'s ``stop``) stops reading calls, lets the writer
    answer every call it has, sends those answers, and only then closes the
    links: a call the writer process committed is answered as such. A link
    whose serving process went away (end of stream while the writer process
    was not stopping) is ``gone``: its calls still queued do not run, since
    their callers were told 503 and may be retrying them elsewhere.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.links: set[_Link] = set()
        self._stopping = False
        self._batches: collections.deque[tuple[int, float]] = collections.deque(maxlen=_REPORT_MAX)

    def serve(self, path: Path, stop: threading.Event) -> None:
        """Listen on ``path`` until ``stop`` is set; then finish the writes under way (blocks)."""
        first = self.hub.query_sync(lambda tx, now: tx.events.last_id())
        self.hub.feed_commits(first, self._broadcast)
        self.hub.store.set_batch_observer(self._batched)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a socket left by a writer process that was killed
        server = socketserver.ThreadingUnixStreamServer(str(path), self._handler(), bind_and_activate=True)
        server.daemon_threads = False
        server.block_on_close = True  # server_close() waits for every link's thread
        os.chmod(path, 0o600)
        accepting = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                     name="coord-writer-accept", daemon=True)
        accepting.start()
        try:
            while not stop.wait(REPORT_SECONDS):
                self._report()
        finally:
            self._stopping = True
            server.shutdown()
            for link in list(self.links):  # no more calls: each link's thread finishes its own (_serve_link)
                with contextlib.suppress(OSError):
                    link.sock.shutdown(socket.SHUT_RD)
            server.server_close()
            self.hub.store.set_after_commit(None)
            self.hub.store.set_batch_observer(None)

    def _handler(self) -> type[socketserver.BaseRequestHandler]:
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._serve_link(self.request)

        return Handler

    def _serve_link(self, sock: socket.socket) -> None:
        link = _Link(sock)
        self.links.add(link)
        if self._stopping:
            # Accepted in the server's last turn, possibly after the stop shut the other links' reading (it
            # sets the flag before it walks the links, and this link joined them before looking at it): no
            # hello, so its serving process sends it no call, and no wait for a peer that may never close.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
        else:
            link.send(encode(("hello", os.getpid(), PROTOCOL)), at_once=True)
        try:
            with sock.makefile("rb", buffering=1 << 16) as frames:
                while True:
                    header = frames.read(4)
                    if len(header) < 4:
                        break
                    size = frame_size(header)
                    body = frames.read(size)
                    if len(body) < size:
                        break
                    self._run(link, decode(body))
        except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
            log.error("writer process: closing a link: %s", exc)
            link.gone = True
        finally:
            if not self._stopping:
                link.gone = True  # its serving process closed it: it failed what it was waiting for
            self.links.discard(link)
            link.finish(STOP_SECONDS)

    def _broadcast(self, after: int, rows: list[Row]) -> None:
        # on the writer thread, after the commit and before its answers
        if self.links:
            frame = encode(("events", after, rows))
            for link in list(self.links):
                link.send(frame, at_once=True)

    def _batched(self, units: int, seconds: float) -> None:
        # on the writer thread: kept for the next report, so that a batch costs the links no send of its own
        self._batches.append((units, seconds))

    def _report(self) -> None:
        """Send the batches since the last report to the serving processes that read them (their ``/metrics``),
        queued behind what their links already hold."""
        batches: list[tuple[int, float]] = []
        while self._batches and len(batches) < _REPORT_MAX:
            batches.append(self._batches.popleft())
        readers = [link for link in list(self.links) if link.protocol == PROTOCOL]
        if batches and readers:
            frame = encode(("batches", batches))
            for link in readers:
                link.send(frame)

    def _run(self, link: _Link, message: Any) -> None:
        if not isinstance(message, tuple | list) or not message:  # nothing to answer it by: the link is broken
            raise ValueError(f"a frame with no call id: {type(message).__name__}")
        ident = message[0]
        if ident == "hello":  # the serving process's version (one of before versions sends none)
            link.protocol = message[1] if len(message) > 1 else None
            return
        try:
            _, plain, status, idem, during_halt, ahead = message
            call = _LinkedCall.from_plain(plain)
            call.link = link
            exempt = None if during_halt is None else Exempt[during_halt]
            named = None if ahead is None else Ahead(ahead[0], ahead[1], tuple(Scan(*scan) for scan in ahead[2]),
                                                    tuple(ahead[3]))
            request = None if idem is None else IdempotentRequest(*idem)
        except (IndexError, KeyError, TypeError, ValueError) as exc:  # a serving process of another version
            link.send(encode(("bug", ident, f"not a call this writer process runs: {exc!r}")))
            return

        link.begun()
        meter = Meter()  # its steps go back with the answer: the serving process charges its caller by them
        future = self.hub.store.submit_write(self.hub.unit_of_work(call.actor, call, status, request, exempt, named,
                                                                   meter))

        def answer(done: Future[Outcome]) -> None:  # on the writer thread as it settles the batch
            try:
                exc = done.exception()
                if exc is None:
                    frame = encode(("ok", ident, *done.result(), meter.steps))
                elif isinstance(exc, CoordError):
                    frame = encode(("error", ident, exc, meter.steps))
                else:
                    log.error("a call failed in the writer process: %r", call, exc_info=exc)
                    frame = encode(("bug", ident, f"{type(exc).__name__}: {exc}"))
            except Exception as failed:  # an answer that does not encode: still answer, or its caller waits
                log.exception("writer process: an answer to %r did not encode", call)
                frame = encode(("bug", ident, f"{type(failed).__name__}: {failed}"))
            link.send(frame)
            link.answered()

        future.add_done_callback(answer)


def writer_main(cfg: Any, path: Path, supervisor: int) -> None:
    """The writer process (started by :func:`coordhub.workers.supervise`): serve ``path`` until SIGTERM."""
    from coordhub import jsonlog
    from coordhub.heap import settle_heap
    from coordhub.server import StartupError, _open_hub
    from coordhub.workers import die_with

    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides: it sends SIGTERM
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    die_with(supervisor)
    jsonlog.configure(cfg.log_level, cfg.log_format)
    try:
        try:
            store, hub, _ = _open_hub(cfg, worker=0)
        except StartupError as exc:
            log.error("the writer process cannot start: %s", exc)
            raise SystemExit(1) from None
        settle_heap()  # its batches allocate as much as a serving process's requests: the same short pauses
        try:
            WriterServer(hub).serve(path, stop)
        finally:
            store.close()
    finally:
        if os.getppid() != supervisor:  # the supervisor was killed outright: nobody else removes its directory
            with contextlib.suppress(OSError):
                path.unlink()
            with contextlib.suppress(OSError):
                path.parent.rmdir()
