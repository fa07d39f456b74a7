"""Live SSE frames and whole answers written straight to uvicorn's transport (issue 15, :mod:`coordhub.api.wire`).

A real uvicorn server (httptools, as ``coord serve`` runs it) on loopback in a
thread, real sockets as clients: the frames must arrive as valid HTTP/1.1
chunks, exactly once and in order, and a client that stops reading must never
make the hub buffer more than flow control allows; a whole answer must read
back as the two ASGI messages would, in one write, without stalling the
connection's next request.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from coordhub.api import wire
from coordhub.api.app import create_app
from coordhub.clock import SystemClock
from coordhub.core import tokens
from coordhub.core.hub import Hub
from coordhub.server import SYSTEM
from coordhub.store.sqlite import SQLiteStore
from tests.conftest import free_port


class Served:
    """The app served on loopback by uvicorn in a thread, with an admin token."""

    def __init__(self, app: Any, hub: Hub, port: int, admin: str) -> None:
        self.app, self.hub, self.port, self.admin = app, hub, port, admin
        self.url = f"http://127.0.0.1:{port}"

    def token(self, session_id: str) -> str:
        r = httpx2.post(self.url + "/api/coord/tokens", json={"name": session_id},
                        headers={"Authorization": f"Bearer {self.admin}"})
        assert r.status_code == 201, r.text
        token: str = r.json()["token"]
        return token

    def on_loop(self, fn: Any) -> None:
        """Run ``fn()`` after every publish, on the event loop (after the fan-out has run)."""
        assert self.hub.bus is not None
        self.hub.bus.listeners.append(lambda rows: fn())


@contextlib.contextmanager
def serving(tmp_path: Path, http: Any = "httptools") -> Iterator[Served]:
    store = SQLiteStore(tmp_path / "coord.db")
    store.open()
    hub = Hub(store, SystemClock())
    admin = hub.mutate_sync(SYSTEM, lambda tx, now: tokens.ensure_admin(tx, None, now)).body
    app = create_app(hub, sweep_seconds=0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=http, log_level="warning",
                                          access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield Served(app, hub, port, admin)
    finally:
        server.should_exit = True
        thread.join(30)
        store.close()


def _open_stream(port: int, token: str, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /api/coord/events?kinds=message. HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
              .encode())
    return s


class ChunkedSse:
    """Reads an SSE response off a raw socket, decoding HTTP/1.1 chunked framing strictly (RFC 9112 §7.1)."""

    def __init__(self, s: socket.socket) -> None:
        self.s = s
        self.raw = b""
        self.body = b""
        self.head: bytes | None = None

    def _fill(self) -> None:
        data = self.s.recv(65536)
        assert data, "the hub closed the stream"
        self.raw += data

    def _decode(self) -> None:
        if self.head is None:
            if b"\r\n\r\n" not in self.raw:
                return
            self.head, self.raw = self.raw.split(b"\r\n\r\n", 1)
            assert self.head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in self.head.lower()
        while b"\r\n" in self.raw:
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line, 16)
            assert size > 0, "the stream ended"
            if len(rest) < size + 2:
                return
            assert rest[size:size + 2] == b"\r\n", "a chunk not followed by CRLF"
            self.body += rest[:size]
            self.raw = rest[size + 2:]

    def subjects(self, want: int, timeout: float = 60.0) -> list[str]:
        """The first ``want`` message subjects' first words, in the order the stream carried them."""
        self.s.settimeout(timeout)
        out: list[str] = []
        while True:
            self._decode()
            out = [json.loads(line[6:])["payload"]["subject"].split()[0]
                   for line in self.body.split(b"\n") if line.startswith(b"data: ")]
            if len(out) >= want:
                return out
            self._fill()

    def connected(self) -> None:
        self.s.settimeout(20)
        while b": connected" not in self.body:
            self._fill()
            self._decode()


def _send(url: str, token: str, subjects: list[str]) -> None:
    with httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        for subject in subjects:
            assert c.post("/api/coord/messages", json={"subject": subject}).status_code == 201


def test_live_frames_go_through_the_wire_as_chunks_exactly_once_in_order(tmp_path: Path) -> None:
    with serving(tmp_path) as hub:
        readers = [ChunkedSse(_open_stream(hub.port, hub.token(f"R{i}/x"))) for i in range(3)]
        for r in readers:
            r.connected()
        fan = hub.app.state.fanout
        deadline = time.monotonic() + 10
        while not all(not sub.behind for sub in fan):  # each stream caught up and went live
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert len(list(fan)) == 3 and all(sub.wire is not None for sub in fan)  # uvicorn's send was found
        want = [f"m{i}" for i in range(120)]
        senders = [threading.Thread(target=_send, args=(hub.url, hub.token(f"S{k}/x"), want[k::3])) for k in range(3)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(60)
        order = [e["payload"]["subject"] for e in httpx2.get(
            hub.url + "/api/coord/audit", params={"kinds": "message.", "limit": 1000},
            headers={"Authorization": f"Bearer {hub.admin}"}).json()]
        assert sorted(order) == sorted(want)
        for r in readers:
            with contextlib.closing(r.s):
                assert r.subjects(120) == order  # the log's order, each once; valid chunks (ChunkedSse checks)


def test_a_backed_up_wire_writes_nothing_and_its_stream_catches_up(tmp_path: Path) -> None:
    """A client that stops reading: the transport's buffer stays at flow control's bound, the stream drops to
    catch-up, and once it reads again it gets every event once, in order."""
    n, pad = 1500, "x" * 480  # ~1.1 MB of frames: far beyond the socket buffers set below
    with serving(tmp_path) as hub, contextlib.closing(_open_stream(hub.port, hub.token("C/x"), rcvbuf=4096)) as s:
        stalled = ChunkedSse(s)
        stalled.connected()
        fan = hub.app.state.fanout
        deadline = time.monotonic() + 10
        while not fan or any(sub.behind for sub in fan):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        (sub,) = list(fan)
        assert sub.wire is not None
        transport = sub.wire._transport
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        buffered: list[int] = []
        hub.on_loop(lambda: buffered.append(transport.get_write_buffer_size()))
        _send(hub.url, hub.token("A/x"), [f"m{i} {pad}" for i in range(n)])
        # flow control's bound: the high-water mark, plus one write of the stream's task (CHUNK_BYTES) and a frame
        assert max(buffered) <= 64 * 1024 + 64 * 1024 + 4096, max(buffered)
        assert fan.drops >= 1  # it fell behind and read on from the log by its cursor
        assert stalled.subjects(n) == [f"m{i}" for i in range(n)]


def test_no_wire_without_uvicorns_send() -> None:
    """Another server (or none): the scope has no server send the wire knows, and streams write the ASGI way."""
    async def send(message: Any) -> None:
        pass

    assert wire.of({"type": "http"}) is None
    assert wire.of({"type": "http", wire.SERVER_SEND: send}) is None
    assert wire.chunk(b"hello") == b"5\r\nhello\r\n"


def test_requests_leave_no_reference_cycles_behind(tmp_path: Path) -> None:
    """Serving requests makes no cyclic garbage (freed by reference counting alone), so the garbage collector has
    little to do under load (issue 15: its pauses were the p99). The server's send kept in the scope for the wire
    is removed when the request ends: left there, it made every request a cycle of ~15 objects."""
    import gc

    with serving(tmp_path) as hub:
        headers = {"Authorization": f"Bearer {hub.token('A/x')}"}
        with httpx2.Client(base_url=hub.url, headers=headers) as c:
            c.post("/api/coord/messages", json={"subject": "warm-up"})
            gc.collect()
            gc.disable()
            try:
                for i in range(100):
                    assert c.post("/api/coord/messages", json={"subject": f"m{i}"}).status_code == 201
                    assert c.get("/api/coord/messages", params={"unread_only": "true"}).status_code == 200
                garbage = gc.collect()
            finally:
                gc.enable()
    assert garbage < 100, f"{garbage} objects in reference cycles after 200 requests"


def test_streams_leave_no_reference_cycles_behind(tmp_path: Path) -> None:
    """Opening, following and closing SSE streams makes no cyclic garbage either: a stream's objects, frozen by
    ``coord serve`` once they outlive a young collection (coordhub.heap.Freezer), are freed by
    reference counting when it ends."""
    import gc

    with serving(tmp_path) as hub:
        tokens_ = [hub.token(f"R{i}/x") for i in range(20)]
        sender = hub.token("A/x")
        gc.collect()
        gc.disable()
        try:
            socks = [_open_stream(hub.port, t) for t in tokens_]
            readers = [ChunkedSse(s) for s in socks]
            for r in readers:
                r.connected()
            _send(hub.url, sender, [f"m{i}" for i in range(10)])
            for r in readers:
                assert r.subjects(10) == [f"m{i}" for i in range(10)]
            for s in socks:
                s.close()
            deadline = time.monotonic() + 20
            while list(hub.app.state.fanout):  # every stream noticed its client went away and ended
                assert time.monotonic() < deadline
                time.sleep(0.02)
            garbage = gc.collect()
        finally:
            gc.enable()
    assert garbage < 100, f"{garbage} objects in reference cycles after 20 streams"


class _Writes:
    """A transport that records each ``write`` in ``writes`` (shared by the server's connections) and passes everything
    on."""

    def __init__(self, transport: Any, writes: list[bytes]) -> None:
        self._transport, self.writes = transport, writes

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _recording(writes: list[bytes]) -> type[HttpToolsProtocol]:
    class Recording(HttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(_Writes(transport, writes))

    return Recording


_STAMP = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|"
                    rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z|date: [^\r]*|"
                    rb"content-length: \d+|_seconds\":[0-9.]+")  # (a lease's time left: its length varies)


def _read_answer(reader: Any) -> bytes:
    """One HTTP/1.1 answer with a ``content-length`` body, off a socket's binary file."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        assert line, "the hub closed the connection"
        head += line
    length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    return head + reader.read(length)


def _script(hub: Served, written: list[bytes]) -> list[tuple[list[bytes], bytes]]:
    """Hot requests on one keep-alive connection, the last with ``Connection: close``; per answer, the hub's writes
    and what the client read (ids, times and the date blanked)."""
    a, b = hub.token("A/x"), hub.token("B/x")
    lease = json.dumps({"project_key": "p", "resource": "src/x.py"})
    big = json.dumps({"kind": "hook.blob", "detail": {"blob": "x" * 300_000}})  # past uvicorn's read pause (64 KiB)
    requests = [("POST", "/api/coord/events", a, big),  # 422: over the detail cap; the next request must be read
                ("POST", "/api/coord/messages", a, json.dumps({"subject": "s", "body": "b", "to_session": "B/x"})),
                ("GET", "/api/coord/messages?unread_only=true", b, ""),
                ("POST", "/api/coord/locks", a, lease),
                ("POST", "/api/coord/locks", b, lease),  # held by A: 409, the error envelope
                ("GET", "/api/coord/locks?session_id=A/x", a, ""),
                ("GET", "/api/coord/nope", a, ""),  # FastAPI's 404
                ("POST", "/api/coord/locks", a, json.dumps({"resource": 5})),  # FastAPI's 422
                ("POST", "/mcp", a, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})),  # direct
                ("POST", "/api/coord/messages", b, json.dumps({"subject": "bye"}))]
    answers = []
    with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as s, s.makefile("rb") as reader:
        for i, (method, path, token, body) in enumerate(requests):
            close = "Connection: close\r\n" if i == len(requests) - 1 else ""
            before = len(written)
            s.sendall((f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{close}"
                       "Accept: application/json, text/event-stream\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
            got = _read_answer(reader)
            if close:
                assert reader.read() == b""  # the hub closed the connection after the answer
            answers.append((written[before:], _STAMP.sub(b"*", got)))
    return answers


def test_a_whole_answer_is_one_write_of_the_bytes_the_two_messages_make(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole answer goes to the transport in one write, a hot route's, FastAPI's or a direct endpoint's (issue 15:
    uvicorn's send writes the head and the body apart, a system call and a TCP segment each); the client reads the
    same bytes as the two ASGI messages give (the run with ``wire.whole`` declining everything), and a
    ``Connection: close`` request is answered the ASGI way and closed."""
    writes: list[bytes] = []
    (tmp_path / "one").mkdir()
    with serving(tmp_path / "one", http=_recording(writes)) as hub:
        answers = _script(hub, writes)
    declined: list[bytes] = []
    monkeypatch.setattr(wire, "whole", lambda *args: False)
    (tmp_path / "two").mkdir()
    with serving(tmp_path / "two", http=_recording(declined)) as other:
        expected = _script(other, declined)
    assert [got for _, got in answers] == [got for _, got in expected]
    assert [got.split(b" ")[1] for _, got in answers] == [b"422", b"201", b"200", b"201", b"409", b"200", b"404",
                                                          b"422", b"200", b"201"]
    assert [len(w) for w, _ in answers] == [1] * 9 + [2]  # the last: Connection: close, the ASGI way
    assert [len(w) for w, _ in expected] == [2] * 10


def test_pipelined_requests_each_get_their_one_write_answer_in_order(tmp_path: Path) -> None:
    """Requests sent back to back before any answer (HTTP/1.1 pipelining): uvicorn runs each after the one before
    has answered, which a one-write answer must tell it (the protocol's ``on_response_complete``), or the second
    request waits forever."""
    writes: list[bytes] = []
    with serving(tmp_path, http=_recording(writes)) as hub:
        token = hub.token("A/x")
        one = (f"GET /api/coord/locks?session_id=A/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
               "\r\n")
        body = json.dumps({"subject": "piped"})
        two = (f"POST /api/coord/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}")
        with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as s, s.makefile("rb") as reader:
            before = len(writes)
            s.sendall((one + two + one).encode())
            answers = [_read_answer(reader) for _ in range(3)]
    assert [a.split(b" ")[1] for a in answers] == [b"200", b"201", b"200"]
    assert b'"subject":"piped"' in answers[1]
    assert len(writes) - before == 3  # one write each


class _Transport:
    """What a cycle writes, for :func:`_cycle_for` (no socket: :func:`wire.whole` needs only ``write``)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False


def _cycle_for(default_headers: list[tuple[bytes, bytes]]) -> tuple[Any, _Transport]:
    """A real uvicorn httptools request cycle of a GET, on a recording transport (built inside a running loop: its
    flow control makes an ``asyncio.Event``)."""
    import asyncio
    import logging

    from uvicorn.protocols.http.flow_control import FlowControl
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    transport = _Transport()
    scope: Any = {"type": "http", "method": "GET", "path": "/", "headers": []}
    cycle = RequestResponseCycle(scope, transport, FlowControl(transport), logging.getLogger("t"),  # type: ignore[arg-type]
                                 logging.getLogger("t"), False, default_headers, asyncio.Event(), False, True,
                                 lambda: None)
    return cycle, transport


_HEADER_CASES = [
    ([], [(b"content-type", b"application/json")]),
    ([], [(b"Content-Type", b"text/plain; charset=utf-8"), (b"x-a", b"\t tab and space ok")]),
    ([], [(b"bad name", b"v")]),
    ([], [(b"bad:name", b"v")]),
    ([], [(b"x-a", b"ok"), (b"x-b\x7f", b"v")]),
    ([], [(b"x-a", b"line\r\nbreak")]),
    ([], [(b"x-a", b"ok"), (b"x-b", b"nul\x00")]),
    ([], [(b"x-a", b"esc\x1b")]),
    ([(b"bad(name", b"v")], [(b"x-a", b"ok")]),  # the server's own default headers are checked too
    ([(b"server", b"bad\nvalue")], [(b"x-a", b"ok")]),
]


@pytest.mark.parametrize(("defaults", "headers"), _HEADER_CASES)
def test_a_whole_answer_refuses_exactly_the_headers_uvicorns_send_refuses(defaults: list[tuple[bytes, bytes]],
                                                                          headers: list[tuple[bytes, bytes]]) -> None:
    """``wire.whole`` declines (writes nothing, so the ASGI way gives uvicorn's own error) exactly when uvicorn's
    ``send`` refuses a header name or value (RFC 9110 §5.1, §5.5), whichever header it is in the list and whether
    it is the server's default or the answer's; else it writes the bytes uvicorn's two writes make."""
    import asyncio

    body = b'{"ok":true}'
    listed = [*headers, (b"content-length", str(len(body)).encode())]

    async def both() -> tuple[bool, list[bytes], str | None, list[bytes]]:
        cycle, transport = _cycle_for(list(defaults))
        wrote = wire.whole(cycle.send, "GET", 200, listed, body)
        theirs, their_transport = _cycle_for(list(defaults))
        refused = None
        try:
            await theirs.send({"type": "http.response.start", "status": 200, "headers": listed})
            await theirs.send({"type": "http.response.body", "body": body})
        except RuntimeError as exc:
            refused = str(exc)
        return wrote, transport.writes, refused, their_transport.writes

    wrote, writes, refused, theirs = asyncio.run(both())
    if refused is not None:
        assert refused.startswith("Invalid HTTP header")
        assert (wrote, writes) == (False, [])
    else:
        assert wrote is True
        assert writes == [b"".join(theirs)]
