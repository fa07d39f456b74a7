"""A kept-alive connection the hub closes just as a request goes out on it is not an outage.

CI met it once: an MCP tool's request reused an idle connection at the moment
the hub's keep-alive timeout (5 s, as long as the HTTP client's) closed it, and
the tool answered ``hub_unreachable``. Both clients now send a GET or a keyed
write once more, on a new connection, when the connection drops under it.
The server here is real TCP on loopback: it answers the first request of each
connection and keeps it open, then closes it at the second, without an answer.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordhub.client.aio import AsyncCoordClient
from coordhub.client.client import CoordClient, Unreachable
from coordhub.client.settings import ClientSettings
from tests.client.test_wire import Canned

BODY = b'{"ok": true}'
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (len(BODY), BODY)


class Closing(Canned):
    """A TCP server on 127.0.0.1: each connection gets an answer to its first request, then is closed at its
    second (read, not answered), as a hub's idle timeout closes a connection the client is reusing.
    ``always``: close at the first request too (a hub that drops every request)."""

    def __init__(self, always: bool = False) -> None:
        self.always = always
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        first = self.read(conn)
        if not first:
            return
        self.requests.append(first)
        if self.always:
            return
        conn.sendall(ANSWER)
        second = self.read(conn)
        if second:
            self.requests.append(second)  # and closed unanswered


@pytest.fixture
def closing() -> Iterator[Closing]:
    server = Closing()
    yield server
    server.close()


def keys(requests: list[bytes]) -> list[str]:
    return [line.split(b":", 1)[1].strip().decode() for r in requests for line in r.split(b"\r\n")
            if line.lower().startswith(b"idempotency-key:")]


def sync_client(url: str, tmp_path: Path) -> CoordClient:
    return CoordClient(ClientSettings(url=url, token="coord_test", session=None, user=None, machine=None,
                                      queue_file=tmp_path / "coord-queue.jsonl", timeout=5.0))


def test_sync_client_sends_a_read_and_a_write_again_when_the_reused_connection_drops(
        closing: Closing, tmp_path: Path) -> None:
    with sync_client(closing.url, tmp_path) as client:
        assert client.call("GET", "/api/coord/whoami") == {"ok": True}  # the connection is kept
        assert client.call("GET", "/api/coord/whoami") == {"ok": True}  # dropped under it, then a new one
        assert client.call("POST", "/api/coord/messages", body={"to": "b", "body": "x"},
                           queue=False) == {"ok": True}
    # the write: dropped on the connection the read left, answered on a new one, with the same key both times
    assert len(closing.requests) == 5
    sent = keys(closing.requests)
    assert len(sent) == 2 and sent[0] == sent[1]
    assert not (tmp_path / "coord-queue.jsonl").exists()


def test_sync_client_gives_up_on_a_read_whose_connections_drop_twice(tmp_path: Path) -> None:
    server = Closing(always=True)
    try:
        with sync_client(server.url, tmp_path) as client:
            with pytest.raises(Unreachable, match="RemoteProtocolError"):
                client.call("GET", "/api/coord/whoami")
        assert len(server.requests) == 2  # once more, not for ever
    finally:
        server.close()


@pytest.mark.anyio
async def test_async_client_sends_a_read_and_a_write_again_when_the_reused_connection_drops(
        closing: Closing) -> None:
    async with AsyncCoordClient(closing.url, "coord_test", timeout=5.0) as client:
        assert await client.call("GET", "/api/coord/whoami") == {"ok": True}
        assert await client.call("GET", "/api/coord/whoami") == {"ok": True}
        assert await client.call("POST", "/api/coord/messages", body={"to": "b", "body": "x"}) == {"ok": True}
    assert len(closing.requests) == 5
    sent = keys(closing.requests)
    assert len(sent) == 2 and sent[0] == sent[1]


@pytest.mark.anyio
async def test_async_client_gives_up_after_one_more_attempt() -> None:
    server = Closing(always=True)
    try:
        async with AsyncCoordClient(server.url, "coord_test", timeout=5.0) as client:
            with pytest.raises(Unreachable):
                await client.call("GET", "/api/coord/whoami")
        assert len(server.requests) == 2
    finally:
        server.close()


class DropThenGone(Canned):
    """A hub that reads the first request, then goes away without answering: its connection is dropped and its
    port refuses the next one (it committed the write and crashed, say)."""

    def handle(self, conn: socket.socket) -> None:
        first = self.read(conn)
        if first:
            self.requests.append(first)
        self.sock.close()


def test_a_write_dropped_then_refused_is_queued_as_one_that_may_have_reached_the_hub(tmp_path: Path) -> None:
    """Review: the retry's ConnectError marked the queued write as never sent, so it was replayed however old,
    after the hub had forgotten its key: applied twice."""
    import json

    from coordhub.client.client import Queued

    server = DropThenGone()
    try:
        with sync_client(server.url, tmp_path) as client:
            out = client.call("POST", "/api/coord/messages", body={"to_session": "b", "subject": "x"})
        assert isinstance(out, Queued) and len(server.requests) == 1
        [entry] = [json.loads(line) for line in (tmp_path / "coord-queue.jsonl").read_text().splitlines()]
        assert entry["reached"] is True, entry
    finally:
        server.close()


@pytest.mark.anyio
async def test_an_async_write_dropped_then_refused_may_have_been_made() -> None:
    server = DropThenGone()
    try:
        async with AsyncCoordClient(server.url, "coord_test", timeout=5.0) as client:
            with pytest.raises(Unreachable) as caught:
                await client.call("POST", "/api/coord/messages", body={"to": "b"}, idempotency_key="k-1")
        assert caught.value.sent is True and len(server.requests) == 1
    finally:
        server.close()
