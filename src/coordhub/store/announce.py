"""Commit announcements between hub processes sharing one PostgreSQL database (``LISTEN``/``NOTIFY``).

Every write batch that commits on PostgreSQL sends, inside its transaction,
one ``NOTIFY`` on :data:`CHANNEL` whose payload is ``coordhub:1:<origin>:<id>``:
the process that wrote it (a random id per store object) and the newest event
id in the log at that commit (the *high-water mark*). PostgreSQL delivers it
to every listener only if the transaction commits, after it is visible. The
payload carries no data: a listener reads the log after its own cursor, so a
lost or late notification costs latency, never an event; a repeated or
out-of-order one costs a query that finds nothing.

:class:`Listener` holds one dedicated connection per hub process in a thread,
``LISTEN``\\s, and hands each valid announcement to a callback. A payload that
is not ours (another application on the channel, junk from anyone who can
``NOTIFY``) is counted and ignored. A lost connection is retried with backoff;
while it is down the hub follows the log by polling (see
:meth:`coordhub.core.hub.Hub.follow_interval`), and when it is back the
callback is called with ``None`` so the hub catches up from the log at once.
Both transitions are logged, and :meth:`Listener.state` feeds ``/health``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coordhub.errors import first_line

log = logging.getLogger("coordhub.store")

CHANNEL = "coordhub_events"
PREFIX = "coordhub:1:"
MAX_ID = 2**63 - 1
BACKOFF_FIRST = 0.2  # seconds before the first reconnect attempt; doubles up to BACKOFF_MAX
BACKOFF_MAX = 5.0
WAKE_SECONDS = 0.5  # how often the listening thread looks at its stop flag

Announced = Callable[[str | None, int | None], None]  # (origin, high-water id), or (None, None): catch up


def new_origin() -> str:
    """A random id for one writing process (12 hex digits)."""
    return uuid.uuid4().hex[:12]


def notify_sql(origin: str) -> str:
    """The statement a batch runs before its ``COMMIT``: announce the log's high-water mark on :data:`CHANNEL`.

    ``origin`` is :func:`new_origin`'s hex (checked: it is spliced into SQL
    text so that the statement and the ``COMMIT`` travel in one round trip).
    """
    if not (len(origin) == 12 and all(c in "0123456789abcdef" for c in origin)):
        raise ValueError(f"origin must be 12 lowercase hex digits, not {origin!r}")
    return (f"SELECT pg_notify('{CHANNEL}', '{PREFIX}{origin}:' || coalesce(max(id), 0)) FROM events")


def parse(payload: str) -> tuple[str, int] | None:
    """``(origin, high-water id)`` of one of our payloads, or None for anything else (never raises)."""
    if not payload.startswith(PREFIX) or len(payload) > 64:
        return None
    origin, sep, number = payload[len(PREFIX):].partition(":")
    if not sep or not origin or not number.isdigit() or not number.isascii():
        return None
    value = int(number)
    return (origin, value) if value <= MAX_ID else None


@dataclass
class ListenState:
    """What ``/health`` shows of the listening connection."""

    connected: bool = False
    since: float | None = None  # wall time of the last transition (connected or lost)
    reconnects: int = 0  # times it came back after being lost
    announcements: int = 0  # valid payloads received (ours included)
    ignored: int = 0  # payloads on the channel that were not ours
    error: str | None = None  # why it was last lost: the exception's class only (the log has its text)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``since`` as epoch seconds; the route renders times)."""
        return {"connected": self.connected, "since": self.since, "reconnects": self.reconnects,
                "announcements": self.announcements, "ignored": self.ignored, "error": self.error}


class Listener:
    """A thread that ``LISTEN``\\s on :data:`CHANNEL` over its own connection and calls ``on_announce``.

    ``connect`` opens an autocommit ``psycopg`` connection (raising on
    failure). ``on_announce(origin, high_water)`` runs on this thread and
    must be quick (hand over to the event loop); it gets ``(None, None)``
    after every reconnect, when announcements may have been missed.
    """

    def __init__(self, connect: Callable[[], Any], on_announce: Announced) -> None:
        self._connect = connect
        self._on_announce = on_announce
        self._stop = threading.Event()
        self._conn: Any = None
        self.state = ListenState()
        self._thread = threading.Thread(target=self._run, name="coord-pg-listen", daemon=True)

    def start(self) -> None:
        """Start listening (returns at once; the first connection is made on the thread)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the connection (waits at most about :data:`WAKE_SECONDS`)."""
        self._stop.set()
        self._thread.join(timeout=WAKE_SECONDS * 4)
        conn = self._conn
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already gone
                pass

    def drop_connection(self) -> None:
        """Close the listening connection as if the network had dropped it (for fault tests and operators)."""
        conn = self._conn
        if conn is not None:
            try:
                conn.pgconn.finish()  # the socket goes; the thread sees the loss on its next read
            except Exception:
                pass

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        first = True
        while not self._stop.is_set():
            try:
                conn = self._connect()
                conn.execute(f"LISTEN {CHANNEL}")
            except Exception as exc:
                self._lost(exc, first)
                first = False
                self._stop.wait(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)
                continue
            self._conn = conn
            backoff = BACKOFF_FIRST
            try:
                # in the try: a failing on_announce is a lost connection, retried, never the thread's end with
                # the connection left open
                up, first = first, False
                self._up(up)
                self._listen(conn)
            except Exception as exc:
                self._lost(exc, False)
                lost = True
            else:
                lost = False
            finally:
                self._conn = None
                try:
                    conn.close()
                except Exception:
                    pass
            if lost:
                self._stop.wait(BACKOFF_FIRST)  # not a tight loop of connections while something keeps failing

    def _listen(self, conn: Any) -> None:
        while not self._stop.is_set():
            for note in conn.notifies(timeout=WAKE_SECONDS):
                parsed = parse(note.payload) if note.channel == CHANNEL else None
                if parsed is None:
                    self.state.ignored += 1
                    if self.state.ignored in (1, 10, 100, 1000) or self.state.ignored % 10_000 == 0:
                        log.warning("ignored %d notification(s) on %s that are not coordhub's (last: %.60r)",
                                    self.state.ignored, CHANNEL, note.payload)
                    continue
                self.state.announcements += 1
                self._on_announce(*parsed)
            if conn.closed or conn.broken:
                raise ConnectionError("the LISTEN connection closed")

    def _up(self, first: bool) -> None:
        was_down = not first
        self.state.connected, self.state.since, self.state.error = True, time.time(), None
        if was_down:
            self.state.reconnects += 1
            log.warning("LISTEN connection back (reconnect #%d); catching up from the event log",
                        self.state.reconnects)
        self._on_announce(None, None)  # anything committed while it was down (or before the first LISTEN)

    def _lost(self, exc: BaseException, first: bool) -> None:
        reason = first_line(exc)
        if self.state.connected or first:  # a transition: logged once, not on every retry
            log.warning("LISTEN connection %s: %s; following the event log by polling until it is back",
                        "unavailable" if first else "lost", reason)
            self.state.since = time.time()
        # /health answers without a token: the class of the failure, never its text (host, user, database)
        self.state.connected, self.state.error = False, type(exc).__name__
