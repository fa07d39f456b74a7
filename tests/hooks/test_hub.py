"""The hooks' socket HTTP client against canned answers from a real TCP server (one thread, no hub)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from coordhub.hooks.hub import Hub, HubRefused, HubUnreachable


class Canned:
    """A TCP server on 127.0.0.1 that reads one request per connection and answers ``answer`` (then closes).

    ``answer`` is the raw HTTP answer, or a function of the raw request returning it.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # accept() wakes up to notice close()
        self.stopped = threading.Event()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.answer: bytes | Callable[[bytes], bytes] = b""
        self.delay = 0.0
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                data = head + b"\r\n\r\n" + body
                self.requests.append(data)
                if self.delay:
                    threading.Event().wait(self.delay)
                try:
                    conn.sendall(self.answer(data) if callable(self.answer) else self.answer)
                except OSError:
                    pass

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def canned() -> Iterator[Canned]:
    server = Canned()
    yield server
    server.close()


def json_answer(body: bytes, status: str = "200 OK") -> bytes:
    """A complete HTTP answer with a JSON body."""
    return b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        status.encode(), len(body), body)


def test_content_length_answer_and_request_shape(canned: Canned) -> None:
    canned.answer = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"a": [1]}\nxx'
    hub = Hub(canned.url + "/prefix/", "tok", None, 2.0)
    assert hub.post("/x", {"k": "v"}) == {"a": [1]}
    assert hub.get("/locks", project_key="p q", resource="src/a b.py", fence=None, flag=True) == {"a": [1]}
    post, get = canned.requests
    assert post.startswith(b"POST /prefix/api/coord/x HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer tok\r\n" in post and b"\r\nContent-Type: application/json\r\n" in post
    assert post.endswith(b'\r\n\r\n{"k": "v"}')
    assert get.startswith(b"GET /prefix/api/coord/locks?project_key=p%20q&resource=src%2Fa%20b.py&flag=true HTTP/1.1")
    assert f"\r\nHost: 127.0.0.1:{canned.url.rsplit(':', 1)[1]}\r\n".encode() in get


def test_chunked_answer(canned: Canned) -> None:
    canned.answer = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"4\r\n[1, \r\n3;ext=1\r\n2]\n\r\n0\r\n\r\n")
    assert Hub(canned.url, None, "S/x", 2.0).get("/y") == [1, 2]
    assert b"\r\nX-Coord-Session: S/x\r\n" in canned.requests[0]


def test_error_envelope_is_refused(canned: Canned) -> None:
    body = b'{"error": {"code": "stale_incarnation", "message": "newer one"}, "detail": "x"}'
    canned.answer = b"HTTP/1.1 409 Conflict\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    with pytest.raises(HubRefused) as err:
        Hub(canned.url, "t", None, 2.0).post("/presence/heartbeat", {})
    assert (err.value.status, err.value.code, err.value.message) == (409, "stale_incarnation", "newer one")


@pytest.mark.parametrize("answer, problem", [
    (b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}", "answered 503"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", "not JSON"),
    (b"SSH-2.0-OpenSSH\r\n", "not readable HTTP"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n[]", "ended early"),
    (b"", "not readable HTTP"),
])
def test_bad_answers_are_unreachable(canned: Canned, answer: bytes, problem: str) -> None:
    canned.answer = answer
    with pytest.raises(HubUnreachable, match=problem):
        Hub(canned.url, "t", None, 2.0).get("/z")


def test_timeout_and_refused_connection(canned: Canned) -> None:
    canned.answer, canned.delay = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]", 1.0
    with pytest.raises(HubUnreachable, match="did not answer within 0.2 s"):
        Hub(canned.url, "t", None, 0.2).get("/slow")
    port = canned.url.rsplit(":", 1)[1]
    canned.close()
    with pytest.raises(HubUnreachable, match="refused the connection"):
        Hub(f"http://127.0.0.1:{port}", "t", None, 1.0).get("/gone")


def test_not_an_http_url() -> None:
    with pytest.raises(HubUnreachable, match="not an http"):
        Hub("ftp://x", None, None, 1.0)
