"""Connection limits of ``coord serve``: descriptors, a connection cap, and a header-read deadline.

uvicorn bounds the idle time between requests (``timeout_keep_alive``, reset
by every byte received) but has no deadline for receiving a request's
headers, and it accepts connections until the process runs out of file
descriptors, after which nobody (not ``/health``, not an admin) gets in
(issue 8: ~1,000 half-open requests took a hub at ``ulimit -n 1024``
offline). :func:`guarded_protocol` wraps uvicorn's HTTP protocol class with:

* a **header deadline**: from the moment a connection opens, and again each
  time a response completes, the next request's headers must arrive within
  ``header_timeout`` seconds, or the connection is closed (trickling bytes
  does not extend it);
* a **header size bound**: a request line and headers larger than
  ``max_header_bytes`` are answered 431 and the connection closed. uvicorn's
  httptools parser (the one ``coord serve`` runs) has no bound of its own and
  joins a header value or URL that arrives in pieces by copying all of it
  for each piece, on the event loop: one connection trickling a 100 MB
  header within the header deadline froze every request for seconds
  (h11 bounds its heads itself, to 16 KiB);
* a **pipelining bound**: a connection that sends more than
  ``max_pipelined`` requests ahead of the answers it has been given is
  closed. httptools parses every request in what one read brings (up to
  256 KiB) and queues each, so one unauthenticated connection pipelining
  ``GET /health`` and reading nothing held ~5 MiB until it let go (60 such
  connections: +315 MiB), and a few thousand would exhaust the machine's
  memory (h11 reads one request at a time);
* a **body pieces bound**: a request body that arrives in more than
  ``max_body_pieces`` pieces (chunks of a chunked body, or separate reads)
  is answered 400 and the connection closed. httptools hands each piece to
  uvicorn, which appends it to the body read so far (a copy of all of it) on
  the event loop: 1 MiB sent in one-byte chunks took ~0.4 s of the loop, and
  eight such unauthenticated connections held ``/health`` up 1.6 s;
* a **connection cap** below the descriptor limit: when a new connection
  would pass ``max_connections``, the connection that has waited longest for
  its headers (half-open, or idle between requests) is closed to make room,
  or, if every connection is busy with a request, the new one is. Long-lived
  requests are capped separately (:mod:`coordhub.api.streams`) below this
  cap, so short requests such as ``/health`` always find room.

:func:`raise_fd_limit` lifts the soft descriptor limit to the hard one at
start, and :func:`connection_budget` derives the caps from it.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from typing import Any

FD_RESERVE = 128  # descriptors kept for the database, its reader threads, logs and the listening socket
STREAM_HEADROOM = 8  # 1/8 of the connections (at least 16) stay free of streams and long-polls
MAX_HEADER_BYTES = 64 * 1024  # a request line and headers past this answer 431 (h11's own bound is 16 KiB; nginx's
# default buffers hold 32 KiB): a token, a cookie and the ordinary headers take well under 2 KiB
MAX_BODY_PIECES = 16_384  # pieces a request body may arrive in: 1 MiB (the default body limit) in 64-byte pieces
MAX_PIPELINED = 32  # requests a connection may send ahead of its answers (clients rarely pipeline at all)
_TOO_LARGE = "the request line and headers exceed {} bytes"
_PIECES = ("the request body arrived in more than {} pieces (chunks of a chunked body, or reads); send it in larger "
           "chunks")  # the 431's message; its envelope is the API's own


def raise_fd_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit where allowed; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # a container may forbid it; keep what we have
            pass
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


def connection_budget(fd_limit: int, max_connections: int = 0) -> tuple[int, int]:
    """``(connections, streams)`` the process may hold at once, given its descriptor limit.

    ``max_connections`` 0 means as many as the descriptors allow after
    :data:`FD_RESERVE`; a larger request is lowered to that. Streams and
    long-polls get all but :data:`STREAM_HEADROOM`-ths of the connections.
    """
    room = max(16, fd_limit - FD_RESERVE)
    connections = room if max_connections <= 0 else min(max_connections, room)
    streams = max(1, connections - max(16, connections // STREAM_HEADROOM))
    return connections, streams


def guarded_protocol(base: type[asyncio.Protocol], *, header_timeout: float, max_connections: int,
                     max_header_bytes: int = MAX_HEADER_BYTES,
                     max_pipelined: int = MAX_PIPELINED,
                     max_body_pieces: int = MAX_BODY_PIECES) -> type[asyncio.Protocol]:
    """A subclass of uvicorn's HTTP protocol ``base`` (httptools or h11) with the module's guards.

    Relies on what both uvicorn protocols share: ``connections`` (the
    server's set of open protocols), ``cycle`` (the current request, replaced
    when a new request's headers are complete), ``loop``, ``transport``,
    ``on_response_complete``; and, for the header size and pipelining bounds,
    on the httptools protocol's ``on_message_begin``, ``on_headers_complete``,
    ``on_body`` and ``pipeline`` (h11's protocol has none of them, bounds a
    head itself and reads no request ahead).
    """
    proto: Any = base
    message = _TOO_LARGE.format(max_header_bytes)
    too_large = json.dumps({"error": {"code": "header_too_large", "message": message}, "detail": message}).encode()
    message = _PIECES.format(max_body_pieces)
    in_pieces = json.dumps({"error": {"code": "bad_request", "message": message}, "detail": message}).encode()

    class Guarded(proto):  # type: ignore[misc]
        # One timer per connection, re-armed lazily: a request on a kept-alive connection only moves
        # ``_waiting_since`` (no timer made or cancelled per request, issue 15's profile); when the timer fires
        # early it sleeps again for what is left of the wait.
        _deadline: asyncio.TimerHandle | None = None
        _armed_cycle: Any = None
        _waiting = False
        _waiting_since = 0.0
        _in_head = False  # httptools: between a request's first byte and the end of its headers
        _head_bytes = 0  # bytes of the current head counted so far (see data_received)
        _done = False  # refused (431, pipelining): no request more is read; closed once the current answer is
        _pieces = 0  # pieces of the current request's body so far

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm()
            if len(self.connections) > max_connections and self._open() > max_connections:
                self._shed()

        def data_received(self, data: bytes) -> None:
            if self._done or self.transport.is_closing():
                return  # refused (431, pipelining) or shed: nothing more is parsed
            within = self._in_head
            super().data_received(data)
            if self._waiting and self.cycle is not self._armed_cycle:
                self._waiting = False  # a new request's headers are complete
            if within and self._in_head:
                # The whole piece belongs to a head that began before it and is still not complete. A head that
                # began inside this piece is not counted: at most one read (256 KiB) more is parsed before the
                # refusal, and a request body's bytes ahead of it are never taken for a head.
                self._head_bytes += len(data)
                if self._head_bytes > max_header_bytes and not self._done:
                    self._refuse_head()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes, self._pieces = True, 0, 0

        def on_headers_complete(self) -> None:
            self._in_head = False
            if self._done or self.transport.is_closing():
                return  # the rest of the read starts and queues no request
            super().on_headers_complete()
            pipeline = getattr(self, "pipeline", None)
            if pipeline is not None and len(pipeline) > max_pipelined:
                pipeline.clear()  # never started
                self._finish()

        def on_body(self, body: bytes) -> None:
            if self._done or self.transport.is_closing():
                return  # a request not started feeds no other's body
            self._pieces += 1
            if self._pieces > max_body_pieces:
                self._refuse_body()
            else:
                super().on_body(body)

        def _refuse_body(self) -> None:
            """Answer 400 to a request whose body came in too many pieces and close; its app sees the client gone.
            Queued behind another answer (pipelined), it is never started and the connection closes after that
            answer."""
            pipeline = getattr(self, "pipeline", None)
            if pipeline:
                pipeline.clear()
                self._finish()
                return
            cycle = self.cycle
            self._done = True
            self._disarm()
            if cycle is not None and not cycle.response_started:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                                     b"connection: close\r\ncontent-length: " + str(len(in_pieces)).encode()
                                     + b"\r\n\r\n" + in_pieces)
            if cycle is not None:  # its app's reads end (http.disconnect) and its writes are dropped by uvicorn
                cycle.disconnected = True
                cycle.message_event.set()
            self.transport.close()

        def _busy(self) -> bool:
            """Whether a request's answer is being made (a pipelined request is queued only behind one)."""
            return bool(getattr(self, "pipeline", None)) or not (self.cycle is None or self.cycle.response_complete)

        def _finish(self) -> None:
            """Read and start no request more, and close the connection: now, or once the answer being made is
            complete (closing under it would fail its writes: uvloop raises on a closed transport)."""
            self._done = True
            self._disarm()
            if not self._busy():
                self.transport.close()

        def _refuse_head(self) -> None:
            """Answer 431 and close; with an earlier (pipelined) request's answer still being made, close after it
            without a 431."""
            if not self._busy():
                self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                     b"content-type: application/json\r\nconnection: close\r\n"
                                     b"content-length: " + str(len(too_large)).encode() + b"\r\n\r\n" + too_large)
            self._finish()

        def on_response_complete(self) -> None:
            if self._done:
                getattr(self, "pipeline", []).clear()
                super().on_response_complete()
                self._disarm()
                self.transport.close()
                return
            super().on_response_complete()
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self._arm()  # idle until the next request: its headers have a deadline too

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._armed_cycle = self.cycle
            self._waiting = True
            self._waiting_since = time.monotonic()
            if self._deadline is None:
                self._deadline = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            self._waiting = False
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self._waiting or self.transport.is_closing():
                return  # serving a request (the next wait arms the timer again), or closed
            left = self._waiting_since + header_timeout - time.monotonic()
            if left > 0:
                self._deadline = self.loop.call_later(left, self._expire)
            else:
                self.transport.close()

        def _open(self) -> int:
            # closed connections stay in the set until connection_lost runs: count only live ones (O(n), at the cap)
            return sum(1 for c in self.connections if not c.transport.is_closing())

        def _shed(self) -> None:
            waiting = [c for c in self.connections if c._waiting and c is not self
                       and not c.transport.is_closing()]
            victim = min(waiting, key=lambda c: c._waiting_since) if waiting else self
            victim._disarm()
            victim.transport.close()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded
