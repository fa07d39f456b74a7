"""Commit announcements between hub processes sharing one SQLite file (``coord serve --workers N``).

The PostgreSQL backend announces commits with ``NOTIFY``
(:mod:`coordhub.store.announce`); SQLite has no such channel, so worker
processes on one machine tell each other with Unix datagrams. The payload is
the same ``coordhub:1:<origin>:<high-water event id>`` and means the same:
"read the log after your cursor". The log stays the truth: a lost, late,
repeated or forged datagram costs latency or one query, never an event.

Each process binds an abstract-namespace datagram socket (Linux: no file,
no path-length limit, gone when the process dies) named after the database
file and its origin, and registers the origin as an empty file in
``<database>.peers/`` (0700). After each commit the writer sends one datagram
to every registered peer, non-blocking: a full peer buffer drops the datagram
(that peer is busy reading the log anyway, and its safety-net poll catches
up); a peer whose socket is gone (``ECONNREFUSED``) had died, and its file is
removed. Anyone on the machine can send to an abstract socket, so payloads
are parsed strictly and anything else is counted and ignored, as on the
PostgreSQL channel.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from coordhub.store import announce
from coordhub.store.announce import Announced, ListenState

log = logging.getLogger("coordhub.store")

REFRESH_SECONDS = 1.0  # how often a sender re-reads the registry for new peers
MAX_DATAGRAM = 128


def peers_dir(database: Path) -> Path:
    """The registry directory of the processes sharing ``database``."""
    return database.with_name(database.name + ".peers")


def _address(database: Path, origin: str) -> bytes:
    """The abstract socket name of ``origin``'s process on ``database`` (a hash keeps it short)."""
    digest = hashlib.sha256(str(database.resolve()).encode()).hexdigest()[:16]
    return f"\0coordhub/{digest}/{origin}".encode()


class LocalAnnouncer:
    """One process's end: its own socket and registry entry, sending to peers and receiving from them.

    ``origin`` is this process's :func:`coordhub.store.announce.new_origin`.
    Thread-safe: :meth:`announce` runs on the writer thread, the receiving
    loop on its own thread (:meth:`listen`).
    """

    def __init__(self, database: Path, origin: str) -> None:
        self.database = database
        self.origin = origin
        self._dir = peers_dir(database)
        self._entry = self._dir / origin
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(_address(database, origin))
        self._sock.setblocking(False)
        self._send_lock = threading.Lock()
        self._peers: list[tuple[str, bytes]] = []
        self._read_at = 0.0
        self.dropped = 0  # datagrams a busy peer could not take
        self._dir.mkdir(mode=0o700, exist_ok=True)
        self._entry.touch(mode=0o600)

    def announce(self, high_water: int) -> None:
        """Tell every other registered process that the log now reaches ``high_water`` (never raises)."""
        payload = f"{announce.PREFIX}{self.origin}:{high_water}".encode()
        with self._send_lock:
            for origin, address in self._current_peers():
                try:
                    self._sock.sendto(payload, address)
                except BlockingIOError:
                    self.dropped += 1
                except OSError as exc:
                    if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                        self._forget(origin)
                    else:
                        log.warning("announcing a commit to %s failed: %s", origin, exc)

    def _current_peers(self) -> list[tuple[str, bytes]]:
        now = time.monotonic()
        if now - self._read_at >= REFRESH_SECONDS:
            self._read_at = now
            try:
                names = sorted(p.name for p in self._dir.iterdir())
            except OSError:
                names = []
            self._peers = [(n, _address(self.database, n)) for n in names if n != self.origin and _is_origin(n)]
        return self._peers

    def _forget(self, origin: str) -> None:
        """A peer's socket is gone: it died; remove its registry entry (a restarted process makes a new one)."""
        self._peers = [p for p in self._peers if p[0] != origin]
        try:
            (self._dir / origin).unlink()
        except OSError:
            pass

    def listen(self, on_announce: Announced) -> LocalListener:
        """Start the receiving thread; it calls ``on_announce(origin, high_water)`` per valid datagram."""
        listener = LocalListener(self._sock, on_announce)
        listener.start()
        return listener

    def close(self) -> None:
        """Leave the registry and close the socket."""
        try:
            self._entry.unlink()
        except OSError:
            pass
        self._sock.close()


def _is_origin(name: str) -> bool:
    return len(name) == 12 and all(c in "0123456789abcdef" for c in name)


class LocalListener:
    """The receiving thread: the same ``state`` and ``stop()`` as the PostgreSQL :class:`~announce.Listener`."""

    def __init__(self, sock: socket.socket, on_announce: Announced) -> None:
        self._sock = sock
        self._on_announce = on_announce
        self._stop = threading.Event()
        self.state = ListenState()
        self._thread = threading.Thread(target=self._run, name="coord-local-listen", daemon=True)

    def start(self) -> None:
        """Start receiving; the first call to ``on_announce`` is ``(None, None)`` (catch up from the log)."""
        self.state.connected, self.state.since = True, time.time()
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (waits at most about :data:`coordhub.store.announce.WAKE_SECONDS`)."""
        self._stop.set()
        self._thread.join(timeout=announce.WAKE_SECONDS * 4)
        self.state.connected = False

    def _run(self) -> None:
        import select

        self._on_announce(None, None)
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        while not self._stop.is_set():
            try:
                if not poller.poll(announce.WAKE_SECONDS * 1000):
                    continue
                while True:
                    try:
                        data = self._sock.recv(MAX_DATAGRAM)
                    except BlockingIOError:
                        break
                    self._received(data)
            except OSError as exc:  # the socket was closed under us: the store is closing
                if not self._stop.is_set():
                    log.warning("commit announcements stopped: %s", exc)
                    self.state.connected, self.state.error = False, type(exc).__name__
                return

    def _received(self, data: bytes) -> None:
        parsed = announce.parse(data.decode("ascii", "replace"))
        if parsed is None:
            self.state.ignored += 1
            return
        self.state.announcements += 1
        self._on_announce(*parsed)


def writer_lock(database: Path) -> Callable[[], Callable[[], None]]:
    """A lock serialising the writers of every process on ``database``; ``acquire()`` returns ``release``.

    SQLite serialises writers itself, but a writer refused by ``BEGIN
    IMMEDIATE`` sleeps in its busy handler (1, 2, 5, 10 … ms) and retries;
    an ``flock`` on ``<database>.writer.lock`` instead wakes the next writer
    the moment the lock is free, and blocks without the GIL.
    """
    import fcntl

    path = database.with_name(database.name + ".writer.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    mutex = threading.Lock()  # flock is per open file: the threads of one process also take turns here

    def acquire() -> Callable[[], None]:
        mutex.acquire()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            mutex.release()
            raise

        def release() -> None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            mutex.release()

        return release

    return acquire
