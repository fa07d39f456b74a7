"""A refused body's client reads its 413, on a real hub: the rest of the body is dropped, up to a bound.

Raw sockets, as a client that sends its whole body before it reads (most
HTTP clients): before the fix the hub closed the connection with the body
unread, so the client's send failed (broken pipe) or its read was reset,
for REST and ``/mcp`` alike. httpx2 hides this on Linux (it reads the answer
after a failed send), so it is not used here.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordhub.api.limits import DRAIN_BYTES
from tests.conftest import LiveHub

LIMIT = 1_048_576  # coord serve's default --max-body-bytes
PIECE = 65_536


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    h = LiveHub(Path(tmp_path_factory.mktemp("limits")) / "hub").start()
    try:
        yield h
    finally:
        h.stop()


def _head(hub: LiveHub, path: str, framing: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\nAuthorization: Bearer {hub.token('M/a')}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{framing}\r\n\r\n"
            ).encode()


def _chunked(size: int) -> Iterator[bytes]:
    """``size`` bytes of body in chunked framing, then its last chunk."""
    for _ in range(size // PIECE):
        yield b"%x\r\n" % PIECE + b"x" * PIECE + b"\r\n"
    yield b"0\r\n\r\n"


def _answer(s: socket.socket) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the one answer on ``s``, read to the end of the connection (a reset raises)."""
    got = b""
    while data := s.recv(PIECE):
        got += data
    head, _, body = got.partition(b"\r\n\r\n")
    assert b"\r\nconnection: close" in head.lower()
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("path", ["/mcp", "/api/coord/messages"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_client_sending_an_oversize_body_whole_reads_its_413(hub: LiveHub, path: str, framing: str) -> None:
    size = 3 * LIMIT
    with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as s:
        if framing == "length":
            s.sendall(_head(hub, path, f"Content-Length: {size}"))
            for _ in range(size // PIECE):
                s.sendall(b"x" * PIECE)
        else:
            s.sendall(_head(hub, path, "Transfer-Encoding: chunked"))
            for piece in _chunked(size):
                s.sendall(piece)
        status, body = _answer(s)
    assert status == 413
    assert body["error"] == {"code": "payload_too_large", "message": f"request body is larger than {LIMIT} bytes",
                             "limit": LIMIT}


def test_a_body_past_the_bound_is_not_read_to_its_end(hub: LiveHub) -> None:
    """The hub stops reading ``DRAIN_BYTES`` past the limit and closes: the client's send fails."""
    size = 4 * (LIMIT + DRAIN_BYTES)  # more than the bound plus both sockets' buffers
    sent = 0
    with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as s:
        s.sendall(_head(hub, "/api/coord/messages", "Transfer-Encoding: chunked"))
        with pytest.raises(OSError):  # BrokenPipeError or ConnectionResetError
            for piece in _chunked(size):
                s.sendall(piece)
                sent += len(piece)
    assert sent < size


def test_a_declared_length_past_the_bound_is_refused_unread_at_once(hub: LiveHub) -> None:
    """Content-Length beyond the bound: the 413 comes at once and the hub closes, waiting for none of the body."""
    with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as s:
        started = time.monotonic()
        s.sendall(_head(hub, "/mcp", f"Content-Length: {LIMIT + DRAIN_BYTES + 1}"))
        status, body = _answer(s)
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert time.monotonic() - started < 5  # the body deadline (--header-timeout) is 10 s
