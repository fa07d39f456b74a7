"""Live SSE frames written straight to the connection's transport, past the ASGI send chain (issue 15).

A frame sent the ASGI way passes through every ``send`` wrapper between the
route and the server (the route's and the app's exception handlers, the
metrics middleware, Starlette's error middleware), each a coroutine, before
uvicorn frames it as an HTTP/1.1 chunk and writes it to the transport. The
fan-out (:mod:`coordhub.api.fanout`) writes one frame to every live stream
per event, so those layers were most of its cost per delivery after the write
itself. A :class:`Wire` does only what uvicorn's own ``send`` does for a body
chunk of a started chunked response: the chunk framing (RFC 9112 §7.1) and
one ``transport.write``. It refuses (returns :data:`BACKED_UP`) whenever
uvicorn's send would have to wait: the transport has paused writing (flow
control: its buffer passed the high-water mark because the client reads
slowly). The caller then queues the frame for the stream's task, which sends
it the ASGI way and waits for the socket, so the transport's buffer never
grows past one write beyond its high-water mark, and a reader that stays
slow is dropped to catch-up by the fan-out's bounds.

The server's own ``send`` is not visible inside the app (every middleware
wraps it), so the app's outermost layer (:class:`~coordhub.api.door.Door`)
records it in each HTTP request's scope; :func:`of` turns it into a :class:`Wire`
when it is uvicorn's httptools cycle with a chunked response started, and
gives None otherwise (another server or protocol, a test transport): then
the stream writes the ASGI way, as before.

:func:`whole` does the same for a whole response: uvicorn's ``send``
writes the status line and headers in one ``transport.write`` and the body
in a second, two system calls and two TCP segments per answer; :func:`whole`
writes the same bytes in one. A hot route's answer goes through
:func:`answer`, every other one through :func:`coalescing` (the door's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Scope, Send

CYCLE: type[Any] | None  # uvicorn's httptools request-response cycle, the one server send a wire knows
try:
    from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle as CYCLE
except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools; without it streams use ASGI sends
    CYCLE = None

SERVER_SEND = "coordhub.server_send"  # the scope key of the server's own ASGI send
OPEN, BACKED_UP, GONE = 0, 1, 2  # a wire's state: writable now; refused (flow control); connection gone


def of(scope: Scope) -> Wire | None:
    """The wire of a request whose chunked response has started; None when this server's send is not known."""
    cycle = _cycle(scope.get(SERVER_SEND))
    if cycle is None or not cycle.response_started or cycle.chunked_encoding is not True:
        return None
    return Wire(cycle)


class Wire:
    """The body of one started chunked HTTP/1.1 response on uvicorn's httptools protocol (event loop's thread only)."""

    __slots__ = ("_cycle", "_transport", "_flow", "send")

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle
        self._transport = cycle.transport
        self._flow = cycle.flow
        #: The transport's ``write``: takes a framed chunk (:func:`chunk`); call only right after :meth:`state`
        #: said :data:`OPEN` (or, for a parked stream, :meth:`clear` said True), with nothing run on the event
        #: loop in between.
        self.send: Callable[[bytes], object] = self._transport.write

    def state(self) -> int:
        """:data:`OPEN` (a write now is taken whole, in order), :data:`BACKED_UP` (the transport paused writing:
        send the ASGI way, which waits) or :data:`GONE` (the client went away or the response ended)."""
        cycle = self._cycle
        if cycle.disconnected or cycle.response_complete or self._transport.is_closing():
            return GONE
        if self._flow.write_paused:
            return BACKED_UP
        return OPEN

    def clear(self) -> bool:
        """Whether a write now goes straight to the socket: the connection is not closing and its transport
        holds nothing unwritten.

        The fan-out's test before each direct write (:meth:`coordhub.api.fanout.Fanout.publish`), in place of
        :meth:`state`: it reads the transport alone (a C object), where :meth:`state` also reads uvicorn's
        request cycle and flow control, two more objects a pass over 1,000 streams would bring into the cache
        per stream (measured: 0.8 ms less hub CPU a pass, docs/benchmarks.md). It is stricter about the
        buffer (anything waiting in it, not only past the high-water mark) and says nothing of the
        response itself: use it only for a stream whose response cannot have ended (a parked subscriber's:
        its task ends the response only after it stops waiting). A connection lost is a closing transport
        (uvicorn marks its cycle disconnected in ``connection_lost``, after the transport closed).
        """
        transport = self._transport
        return not transport.is_closing() and not transport.get_write_buffer_size()

    def write(self, chunk: bytes) -> int:
        """Write ``chunk`` (already framed, see :func:`chunk`) unless the connection is backed up or gone.

        Returns :data:`OPEN` (written), else :data:`BACKED_UP` or :data:`GONE` with nothing written (see
        :meth:`state`).
        """
        state = self.state()
        if state == OPEN:
            self.send(chunk)
        return state


def answer(send: Send, method: str, response: Response) -> bool:
    """Write ``response`` whole in one ``transport.write`` (:func:`whole`) when ``send`` is uvicorn's; False
    (nothing done) when it must be sent the ASGI way: also for anything but a plain
    :class:`~starlette.responses.Response` without a background task."""
    if type(response).__call__ is not _PLAIN_CALL or response.background is not None:
        return False
    return whole(send, method, response.status_code, response.raw_headers, response.body)


def whole(send: Send, method: str, status: int, headers: Iterable[tuple[bytes, bytes]],
          body: bytes | memoryview) -> bool:
    """Write a whole response (its start message's ``status`` and ``headers``, its one body message's ``body``) to
    the connection ``send`` is uvicorn's send of, in one ``transport.write``; False (nothing done) when it must be
    sent the ASGI way. ``method`` is the request's.

    The bytes are those uvicorn's ``send`` writes for the two messages (its
    default headers, such as ``date``, first; names in lower case), and the
    cycle and its protocol are left as that ``send`` leaves them: the
    response started and complete, the request's waiters told, the
    protocol's ``on_response_complete`` run (reading resumed if a large body
    paused it, the keep-alive timer armed, a pipelined request started).

    Declined (False) for a response without a ``content-length`` equal to
    the body's length, a connection that is not uvicorn's httptools cycle, a
    response already started, a client gone or not reading (flow control:
    the ASGI ``send`` waits for it), a connection that closes after the
    answer, a ``HEAD`` request, a server that logs access, and a header the
    ASGI ``send`` would refuse (names and values as uvicorn checks them, RFC
    9110 §5.1 and §5.5): the ASGI way then gives the same answer, or the
    same error.
    """
    cycle = _cycle(send)
    if cycle is None or (cycle.response_started or cycle.disconnected or cycle.flow.write_paused
                         or not cycle.keep_alive or cycle.access_log or method == "HEAD"):
        return False
    content: list[bytes | memoryview] = [STATUS_LINE[status]]
    length = None
    for name, value in (*cycle.default_headers, *headers):
        name = name.lower()
        if name == b"content-length":
            length = value
        elif name in (b"transfer-encoding", b"connection"):
            return False
        content += (name, b": ", value, b"\r\n")
    # Every name and every value checked as uvicorn checks each (a character class found anywhere), in one search
    # each over them joined: ~8 searches fewer an answer (issue 15). Lower case changes no character of the class.
    if HEADER_RE.search(b"".join(content[1::4])) or HEADER_VALUE_RE.search(b"".join(content[3::4])):
        return False
    if length is None or not length.isdigit() or int(length) != len(body):
        return False
    content += (b"\r\n", body)
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    cycle.chunked_encoding = False
    cycle.expected_content_length = 0
    cycle.transport.write(b"".join(content))
    cycle.response_complete = True
    cycle.message_event.set()
    cycle.on_response()  # the protocol's turn: reading resumed, the keep-alive timer armed, a pipelined request run
    return True


def coalescing(send: Send, method: str) -> Send:
    """``send`` (uvicorn's; any other is returned as it is) for an app whose answers go out the ASGI way: a start
    message with a ``content-length`` is held until the next message, and when that is the whole body the two go
    out in one write (:func:`whole`); else both are passed on to ``send``, in order. A start that declares no
    length (a stream) is passed on at once. ``method`` is the request's. A start still held when the app fails
    before its body is never sent: uvicorn then answers 500 itself, as for an app that never started one."""
    if _cycle(send) is None:
        return send
    held: Message | None = None

    async def sending(message: Message) -> None:
        nonlocal held
        start = held
        if start is None:
            if message["type"] == "http.response.start" and any(
                    name.lower() == b"content-length" for name, _ in message.get("headers", ())):
                held = message
                return
            await send(message)
            return
        held = None
        if (message["type"] == "http.response.body" and not message.get("more_body", False)
                and whole(send, method, start["status"], start.get("headers", ()), message.get("body", b""))):
            return
        await send(start)
        await send(message)

    return sending


def _cycle(send: object) -> Any:
    """The uvicorn httptools cycle whose ``send`` this is, else None."""
    cycle = getattr(send, "__self__", None)
    return cycle if CYCLE is not None and isinstance(cycle, CYCLE) else None


_PLAIN_CALL = Response.__call__


def chunk(data: bytes) -> bytes:
    """``data`` framed as one HTTP/1.1 chunk (RFC 9112 §7.1: size in hex, CRLF, data, CRLF), as uvicorn frames it."""
    return b"%x\r\n%b\r\n" % (len(data), data)
