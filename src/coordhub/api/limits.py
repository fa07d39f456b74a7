"""Per-client bounds of one hub process, and the request body limit.

Bodies over the limit answer 413 before any handler runs (:func:`read_body`,
applied by :class:`~coordhub.api.door.Door` to every request). :class:`Limits`
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

    :meth:`answer` sends the refusal, which closes the connection (the rest of
    the body is not read).
    """

    def __init__(self, limit: int, status: int = 413, code: str = "payload_too_large", message: str = "") -> None:
        super().__init__(message or f"request body is larger than {limit} bytes")
        self.limit, self.status, self.code = limit, status, code

    async def answer(self, send: Send) -> None:
        """Send the refusal in the one error envelope (with ``limit``), asking the client to close."""
        message = str(self)
        payload: dict[str, Any] = {"error": {"code": self.code, "message": message, "limit": self.limit},
                                   "detail": message}
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": data})


async def read_body(receive: Receive, declared: bytes | None, max_bytes: int, timeout: float) -> bytes:
    """The whole request body, buffered, up to ``max_bytes``.

    ``declared`` is the ``Content-Length`` header's value, checked first; then
    what actually arrives is counted, so a chunked or lying client cannot slip
    past. The whole body must arrive within ``timeout`` seconds (a slow-body
    client holds a connection). Raises :class:`BodyRefused` (413 over the
    limit, 408 too slow) and :class:`Disconnected` (the client went away).
    """
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyRefused(max_bytes)
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
        raise BodyRefused(max_bytes)
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
