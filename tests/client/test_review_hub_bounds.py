"""A hostile hub, or a man-in-the-middle on plain http, cannot hold the client without end or fill its memory.

The server is real TCP on loopback (:class:`tests.client.test_wire.Canned`).
Before the fix the sync client (``httpx2``) and the async one read any body
whole, for as long as each byte came within the per-read timeout: an endless
body filled memory, a body dripped a byte at a time held a command for ever,
and a gzip answer was unpacked (a thousand times its size) or, unreadable, a
traceback.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from coordhub.client.aio import AsyncCoordClient
from coordhub.client.client import Unreachable
from coordhub.client.wire import MAX_ANSWER
from tests.client.conftest import TOKEN, sync_client
from tests.client.test_wire import Canned


class Streaming(Canned):
    """Answers each request with a head (``status``) after ``head_after`` seconds, then ``body_size`` bytes of ``x``
    in chunks of ``chunk`` every ``pause`` seconds (or until the client goes, or ``stop`` is set); ``sent`` counts
    the body bytes that went out."""

    def __init__(self, body_size: int, chunk: int, pause: float, status: bytes = b"200 OK",
                 head_after: float = 0.0) -> None:
        self.body_size, self.chunk, self.pause, self.status = body_size, chunk, pause, status
        self.head_after = head_after
        self.sent = 0
        self.stop = threading.Event()
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        self.requests.append(self.read(conn))
        head = b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (self.status,
                                                                                                self.body_size)
        try:
            self.stop.wait(self.head_after)
            conn.sendall(head)
            while self.sent < self.body_size and not self.stop.is_set():
                conn.sendall(b"x" * self.chunk)
                self.sent += self.chunk
                if self.pause:
                    self.stop.wait(self.pause)
        except OSError:
            pass  # the client went away: what it should do

    def close(self) -> None:
        self.stop.set()
        super().close()


def test_an_endless_body_is_cut_off_at_the_bound(tmp_path: Path) -> None:
    server = Streaming(body_size=8 * MAX_ANSWER, chunk=1 << 20, pause=0)
    try:
        with sync_client(server.url, tmp_path, timeout=30) as client, pytest.raises(Unreachable):
            client.call("GET", "/api/coord/status")
        assert server.sent < 3 * MAX_ANSWER  # it stopped reading near the bound, not at the end
    finally:
        server.close()


@pytest.mark.anyio
async def test_the_async_client_cuts_an_endless_body_off_at_the_bound() -> None:
    server = Streaming(body_size=8 * MAX_ANSWER, chunk=1 << 20, pause=0)
    try:
        async with AsyncCoordClient(server.url, TOKEN, timeout=30) as client:
            with pytest.raises(Unreachable, match="larger than"):
                await client.call("GET", "/api/coord/status")
        assert server.sent < 3 * MAX_ANSWER
    finally:
        server.close()


def test_a_dripped_answer_ends_within_twice_the_timeout(tmp_path: Path) -> None:
    server = Streaming(body_size=150, chunk=1, pause=0.1)  # every byte well within the 1 s read timeout: 15 s
    try:
        start = time.monotonic()
        with sync_client(server.url, tmp_path, timeout=1.0) as client, pytest.raises(Unreachable):
            client.call("GET", "/api/coord/status")
        assert time.monotonic() - start < 4
    finally:
        server.close()


def test_a_late_head_does_not_restart_the_time_a_dripped_body_may_take(tmp_path: Path) -> None:
    # The head comes just within the 2 s timeout, then the body drips: the answer is cut off at the timeout counted
    # from the request's start (about 2 s). Review: counted from the head it ran about 4 s, twice the budget, and a
    # drip after each late head could hold a command three times its timeout.
    server = Streaming(body_size=150, chunk=1, pause=0.1, head_after=1.8)
    try:
        start = time.monotonic()
        with sync_client(server.url, tmp_path, timeout=2.0) as client, pytest.raises(Unreachable):
            client.call("GET", "/api/coord/status")
        assert time.monotonic() - start < 3.0
    finally:
        server.close()


@pytest.mark.anyio
async def test_the_async_client_ends_a_dripped_answer_at_its_timeout() -> None:
    server = Streaming(body_size=150, chunk=1, pause=0.1)
    try:
        start = time.monotonic()
        async with AsyncCoordClient(server.url, TOKEN, timeout=1.0) as client:
            with pytest.raises(Unreachable, match="in time"):
                await client.call("GET", "/api/coord/status")
        assert time.monotonic() - start < 3
    finally:
        server.close()


def test_a_gzip_answer_is_not_unpacked(canned: Canned, tmp_path: Path) -> None:
    canned.answer = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 4\r\n\r\nnope"
    with sync_client(canned.url, tmp_path) as client, pytest.raises(Unreachable):
        client.call("GET", "/api/coord/status")
    assert b"accept-encoding: identity" in canned.requests[0].lower()


def test_a_refused_event_stream_with_an_endless_body_is_cut_off_at_the_bound(tmp_path: Path) -> None:
    server = Streaming(body_size=8 * MAX_ANSWER, chunk=1 << 20, pause=0, status=b"400 Bad Request")
    try:
        with sync_client(server.url, tmp_path, timeout=30) as client, pytest.raises(Unreachable, match="larger than"):
            next(client.events(reconnect=False))
        assert server.sent < 3 * MAX_ANSWER
    finally:
        server.close()
