"""Per-client bounds of one hub process, and the request body limit (ASGI middleware).

Bodies over the limit answer 413 before any handler runs. :class:`Limits`
gathers the other bounds one client must not exceed (issue 8: no single
client can stall, exhaust or crash the hub); each comes from a setting in
:mod:`coordhub.config`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    """

    event_detail_bytes: int = 4096
    event_quota: int = 120
    event_ring_bytes: int = 32 * 1024 * 1024
    streams_per_token: int = 64
    max_streams: int = 4096
    header_timeout: float = 10.0


class _Disconnected(Exception):
    """The client went away while sending its body."""


class BodyLimit:
    """Buffers each request body up to ``max_bytes``; a larger one is refused with 413, a slower one with 408.

    Checks the declared ``Content-Length`` first, then counts what actually
    arrives (a chunked or lying client cannot slip past).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout  # seconds the whole body may take to arrive (a slow-body client holds a connection)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.max_bytes:
                    await self._refuse(send)
                    return
                break
        chunks: list[bytes] = []
        try:
            # Most bodies are in by the time the headers are: take them without arming a timer (issue 15).
            done, first, pending = eager.start(receive())
            if not done or first is None or first.get("more_body", False):
                async with asyncio.timeout(self.timeout):
                    if pending is not None:
                        first = await eager.finish(pending)
                    if not await self._read(receive, chunks, first):
                        await self._refuse(send)
                        return
            elif self._take(first, chunks, 0) < 0:
                await self._refuse(send)
                return
        except TimeoutError:
            await self._refuse(send, 408, "request_timeout", f"request body not received within {self.timeout:g} s")
            return
        except _Disconnected:
            return
        await self.app(scope, replay(chunks[0] if len(chunks) == 1 else b"".join(chunks), receive), send)

    async def _read(self, receive: Receive, chunks: list[bytes], message: Message | None) -> bool:
        """Collect the body into ``chunks``, starting with ``message`` if given; False when it passes ``max_bytes``."""
        size = 0
        while True:
            if message is None:
                message = await receive()
            size = self._take(message, chunks, size)
            if size < 0:
                return False
            if not message.get("more_body", False):
                return True
            message = None

    def _take(self, message: Message, chunks: list[bytes], size: int) -> int:
        """Add one message's body to ``chunks``; the body's size so far, or -1 past ``max_bytes``."""
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > self.max_bytes:
            return -1
        chunks.append(chunk)
        return size

    async def _refuse(self, send: Send, status: int = 413, code: str = "payload_too_large",
                      message: str | None = None) -> None:
        message = message or f"request body is larger than {self.max_bytes} bytes"
        payload: dict[str, Any] = {"error": {"code": code, "message": message, "limit": self.max_bytes},
                                   "detail": message}
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": data})


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the buffered ``body`` as one message, then defers to the connection's
    ``receive`` (for the disconnect). Used by :class:`BodyLimit` and the hot routes' fallback."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
