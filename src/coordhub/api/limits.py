"""Per-client bounds of one hub process, and the request body limit.

Bodies over the limit answer 413 before any handler runs (:func:`read_body`,
applied by :class:`~coordhub.api.door.Door` to every request, REST and
``/mcp`` alike); the rest of such a body is read and dropped, up to
:data:`DRAIN_BYTES`, so that its client reads the 413 (:meth:`BodyRefused.answer`). :class:`Limits`
gathers the other bounds one client must not exceed (issue 8: no single
client can stall, exhaust or crash the hub); each comes from a setting in
:mod:`coordhub.config`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from starlette.types import Message, Receive, Send

from coordhub.api import eager

DRAIN_BYTES = 8 * 1024 * 1024
"""How far past the body limit the hub reads a refused body (bytes) to drop it. A client that sends its
whole body before reading the answer would otherwise have its send fail, or its connection reset, before
it reads the 413: closing a socket with unread bytes sends a TCP reset (RFC 9293 §3.6.1, RFC 9112 §9.6).
The bound keeps what one request can make the hub read at ``max_body_bytes + DRAIN_BYTES``."""


@dataclass(frozen=True)
class Limits:
    """Bounds per client and per hub process; every field but ``max_streams`` is the setting of the same name.

    ``event_detail_bytes``: largest ``detail`` of a client event (UTF-8 JSON).
    ``event_quota``: client events each session may record per minute (a
    token bucket of that size refilling evenly). ``event_ring_bytes``: the
    in-memory event ring's budget (estimated bytes). ``streams_per_token``:
    concurrent SSE streams plus long-polls per session. ``max_streams``: the
    same for the whole process; ``coord serve`` derives it from the connection
    limit, keeping headroom for short requests. ``header_timeout`` also
    bounds how long a request's body may take to arrive (408 past it).
    ``stream_max_seconds``: the longest an event stream lives (0: unbounded)
    before the hub ends it and its client reconnects, authenticating again.
    """

    event_detail_bytes: int = 4096
    event_quota: int = 120
    event_ring_bytes: int = 32 * 1024 * 1024
    streams_per_token: int = 64
    max_streams: int = 4096
    header_timeout: float = 10.0
    stream_max_seconds: float = 6 * 3600.0


class Disconnected(Exception):
    """The client went away while sending its body."""


class BodyRefused(Exception):
    """A request body the hub will not take: over ``limit`` bytes (413) or too slow to arrive (408).

    :meth:`answer` sends the refusal, which closes the connection. ``drain``:
    how many bytes of the rest of the body the answer may read and drop first
    (0: none; the connection is closed with the rest unread).
    """

    def __init__(self, limit: int, status: int = 413, code: str = "payload_too_large", message: str = "",
                 drain: int = 0) -> None:
        super().__init__(message or f"request body is larger than {limit} bytes")
        self.limit, self.status, self.code, self.drain = limit, status, code, drain

    async def answer(self, send: Send, receive: Receive | None = None, timeout: float = 0.0) -> None:
        """Send the refusal in the one error envelope (with ``limit``), asking the client to close.

        Given the connection's ``receive``, the answer is sent first (a client
        that watches for it while sending stops early, RFC 9112 §9.5), then
        up to ``drain`` more bytes of the body are read and dropped within
        ``timeout`` seconds, then the answer ends and the server closes the
        connection: a client sending a body of up to the limit plus
        :data:`DRAIN_BYTES` reads its 413 instead of a reset.
        """
        message = str(self)
        payload: dict[str, Any] = {"error": {"code": self.code, "message": message, "limit": self.limit},
                                   "detail": message}
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                (b"connection", b"close")]})
        if receive is None or self.drain <= 0:
            await send({"type": "http.response.body", "body": data})
            return
        # the server reads the request only until the answer is complete: it stays open while the rest is dropped
        await send({"type": "http.response.body", "body": data, "more_body": True})
        await _discard(receive, self.drain, timeout)
        await send({"type": "http.response.body", "body": b""})


async def _discard(receive: Receive, most: int, timeout: float) -> None:
    """Read and drop the request's body messages until it ends, the client goes away, over ``most`` bytes are
    dropped (at most one message more), or ``timeout`` seconds pass; never raises for any of these."""
    try:
        async with asyncio.timeout(timeout):
            while most >= 0:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
                most -= len(message.get("body", b""))
    except TimeoutError:
        return


async def read_body(receive: Receive, declared: bytes | None, max_bytes: int, timeout: float) -> bytes:
    """The whole request body, buffered, up to ``max_bytes``.

    ``declared`` is the ``Content-Length`` header's value, checked first; then
    what actually arrives is counted, so a chunked or lying client cannot slip
    past. The whole body must arrive within ``timeout`` seconds (a slow-body
    client holds a connection). Raises :class:`BodyRefused` (413 over the
    limit, its ``drain`` what is left of :data:`DRAIN_BYTES`; 408 too slow)
    and :class:`Disconnected` (the client went away).
    """
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        # a body that cannot be dropped whole within the bound is not read at all
        raise BodyRefused(max_bytes, drain=int(declared) if int(declared) <= max_bytes + DRAIN_BYTES else 0)
    chunks: list[bytes] = []
    # Most bodies are in by the time the headers are: take them without arming a timer (issue 15).
    done, first, pending = eager.start(receive())
    if done and first is not None and not first.get("more_body", False):
        _take(first, chunks, 0, max_bytes)
        return chunks[0]
    try:
        async with asyncio.timeout(timeout):
            if pending is not None:
                first = await eager.finish(pending)
            size, message = 0, first
            while True:
                if message is None:
                    message = await receive()
                size = _take(message, chunks, size, max_bytes)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
                message = None
    except TimeoutError:
        raise BodyRefused(max_bytes, 408, "request_timeout",
                          f"request body not received within {timeout:g} s") from None


def _take(message: Message, chunks: list[bytes], size: int, max_bytes: int) -> int:
    """Add one message's body to ``chunks``; the body's size so far. Raises past ``max_bytes``, or on disconnect."""
    if message["type"] == "http.disconnect":
        raise Disconnected
    chunk = message.get("body", b"")
    size += len(chunk)
    if size > max_bytes:
        raise BodyRefused(max_bytes, drain=max_bytes + DRAIN_BYTES - size)
    chunks.append(chunk)
    return size


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the buffered ``body`` as one message, then defers to the connection's
    ``receive`` (for the disconnect). Used by :class:`~coordhub.api.door.Door` to hand a buffered body on."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
