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
removed. Anyone on the machine can send to an abstract socket, so a
datagram whose sender (the kernel's ``SCM_CREDENTIALS``) is another user, or
whose payload is not ours, is counted and ignored, as on the PostgreSQL
channel; and the datagrams waiting at one wake are read together and make at
most one announcement (the highest high-water), so a flood costs the hub one
log read per wake, not one per datagram. A socket's queue is short
(``net.unix.max_dgram_qlen``, often 10), so junk can crowd out the peers'
datagrams (they are dropped, not queued): while junk arrives the listener
asks for a catch-up from the log at most once per
:data:`NOISE_CATCH_UP_SECONDS`, as the hub polls without announcements. The registry directory and the lock
file must be this user's and closed to others (a planted
``<database>.peers/`` could otherwise point every commit at a peer list of
the planter's choosing, and a planted lock file could be held to stop every
write): anything else is refused with :class:`UnsafePath`.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from coordhub.store import announce
from coordhub.store.announce import Announced, ListenState

log = logging.getLogger("coordhub.store")

REFRESH_SECONDS = 1.0  # how often a sender re-reads the registry for new peers
MAX_DATAGRAM = 128
MAX_PEERS = 256  # registry entries a sender reads (workers are at most 64 per supervisor)
MAX_DRAIN = 1024  # datagrams read at one wake before they are announced (the rest wait for the next wake)
NOISE_CATCH_UP_SECONDS = 1.0  # while junk arrives, read the log at most this often (it may have crowded ours out)
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class UnsafePath(OSError):
    """The registry directory or the lock file is not this user's, or others may write or open it."""


def _check_private(path: Path, st: os.stat_result, kind: str) -> None:
    """Refuse ``path`` unless it is a ``kind`` owned by this user with no group or world permissions."""
    is_kind = stat.S_ISDIR(st.st_mode) if kind == "directory" else stat.S_ISREG(st.st_mode)
    if not is_kind or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise UnsafePath(f"{path} must be a {kind} owned by uid {os.getuid()} with no group or world permissions "
                         f"(it is uid {st.st_uid}, mode {stat.filemode(st.st_mode)}); remove it, or make it so, "
                         "and start again")


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
        self._dir.mkdir(mode=0o700, exist_ok=True)
        _check_private(self._dir, os.lstat(self._dir), "directory")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # each datagram carries its sender's uid
        self._sock.bind(_address(database, origin))
        self._sock.setblocking(False)
        self._send_lock = threading.Lock()
        self._peers: list[tuple[str, bytes]] = []
        self._read_at = 0.0
        self.dropped = 0  # datagrams a busy peer could not take
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
                names = sorted(n for n in os.listdir(self._dir) if n != self.origin and _is_origin(n))
            except OSError:
                names = []
            if len(names) > MAX_PEERS:
                log.warning("%s lists %d processes; announcing to the first %d", self._dir, len(names), MAX_PEERS)
            self._peers = [(n, _address(self.database, n)) for n in names[:MAX_PEERS]]
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
        listener = LocalListener(self._sock, on_announce, self.origin)
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

    def __init__(self, sock: socket.socket, on_announce: Announced, origin: str | None = None) -> None:
        self._sock = sock
        self._on_announce = on_announce
        self._origin = origin  # this process's: it never sends to itself, so a datagram naming it is forged
        self._uid = os.getuid()
        self._caught_up = time.monotonic()  # when the log was last read in full on this thread's word
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
        self._caught_up = time.monotonic()
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        while not self._stop.is_set():
            try:
                if not poller.poll(announce.WAKE_SECONDS * 1000):
                    continue
                self._drain()
            except OSError as exc:  # the socket was closed under us: the store is closing
                if not self._stop.is_set():
                    log.warning("commit announcements stopped: %s", exc)
                    self.state.connected, self.state.error = False, type(exc).__name__
                return

    def _drain(self) -> None:
        """Read what is waiting (at most :data:`MAX_DRAIN`); announce the highest valid high-water once."""
        best: tuple[str, int] | None = None
        noise = False
        for _ in range(MAX_DRAIN):
            try:
                data, ancillary, _flags, _addr = self._sock.recvmsg(MAX_DATAGRAM, socket.CMSG_SPACE(_UCRED.size))
            except BlockingIOError:
                break
            parsed = self._parse(data, ancillary)
            if parsed is None:
                self.state.ignored += 1
                noise = True
                continue
            self.state.announcements += 1
            if best is None or parsed[1] > best[1]:
                best = parsed
        if best is not None:
            self._on_announce(*best)
        elif noise and time.monotonic() - self._caught_up >= NOISE_CATCH_UP_SECONDS:
            self._caught_up = time.monotonic()
            self._on_announce(None, None)  # a peer's announcement may have been dropped for the junk

    def _parse(self, data: bytes, ancillary: list[tuple[int, int, bytes]]) -> tuple[str, int] | None:
        """``(origin, high-water)`` of a datagram this user sent with our payload, else None."""
        uid = None
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(value) >= _UCRED.size:
                uid = _UCRED.unpack_from(value)[1]
        if uid != self._uid:
            return None
        parsed = announce.parse(data.decode("ascii", "replace"))
        if parsed is None or not _is_origin(parsed[0]) or parsed[0] == self._origin:
            return None
        return parsed


class WriterLock:
    """A lock serialising the writers of every process on ``database``; calling it acquires it and returns
    ``release``. :meth:`close` lets go of its file (the store is closed).

    SQLite serialises writers itself, but a writer refused by ``BEGIN
    IMMEDIATE`` sleeps in its busy handler (1, 2, 5, 10 … ms) and retries;
    an ``flock`` on ``<database>.writer.lock`` instead wakes the next writer
    the moment the lock is free, and blocks without the GIL.
    """

    def __init__(self, database: Path) -> None:
        path = database.with_name(database.name + ".writer.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            _check_private(path, os.fstat(fd), "regular file")
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._mutex = threading.Lock()  # flock is per open file: the threads of one process also take turns here

    def __call__(self) -> Callable[[], None]:
        import fcntl

        fd, mutex = self._fd, self._mutex
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

    def close(self) -> None:
        """Close the lock's file (the processes ``coord serve --workers`` forks afterwards do not inherit it)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
