"""The standard-library hub client (the hooks', and the CLI fast path's) against canned answers from a real TCP
server (one thread, no hub)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from coordhub.client.wire import Failed, Hub, HubRefused, HubUnreachable


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
                self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        """One connection: one request read, answered (then the connection is closed)."""
        data = self.read(conn)
        self.requests.append(data)
        if self.delay:
            threading.Event().wait(self.delay)
        try:
            conn.sendall(self.answer(data) if callable(self.answer) else self.answer)
        except OSError:
            pass

    @staticmethod
    def read(conn: socket.socket) -> bytes:
        """One whole request from ``conn`` (head and ``content-length`` body); b"" when it closes first."""
        data = b""
        while b"\r\n\r\n" not in data:
            more = conn.recv(65536)
            if not more:
                return b""
            data += more
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

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


def test_exchange_returns_any_status_with_its_fields(canned: Canned) -> None:
    canned.answer = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\ncontent-length: 2\r\n\r\n{}"
    reply = Hub(canned.url, None, None, 2.0, agent="coordhub").exchange(
        "GET", "/health", params={"a": None}, headers={"X-Coord-Heartbeat": "1"})
    assert (reply.status, reply.fields["retry-after"], reply.body) == (503, "30", b"{}")
    request = canned.requests[0]
    assert request.startswith(b"GET /health HTTP/1.1\r\n") and b"\r\nX-Coord-Heartbeat: 1\r\n" in request
    assert b"\r\nUser-Agent: coordhub/" in request and b"Authorization" not in request


def test_exchange_says_whether_anything_was_sent(canned: Canned) -> None:
    """``connect``: no connection; ``read``: the request went out and the answer was lost or unreadable."""
    canned.answer = b"SSH-2.0-OpenSSH\r\n"
    with pytest.raises(Failed) as err:
        Hub(canned.url, "t", None, 2.0).exchange("GET", "/api/coord/locks")
    assert err.value.phase == "read" and isinstance(err.value.error, ValueError)
    port = canned.url.rsplit(":", 1)[1]
    canned.close()
    with pytest.raises(Failed) as err:
        Hub(f"http://127.0.0.1:{port}", "t", None, 1.0).exchange("GET", "/api/coord/locks")
    assert err.value.phase == "connect" and isinstance(err.value.error, ConnectionRefusedError)


@pytest.mark.parametrize("token, session", [("tok\r\nX-Evil: 1", None), (None, "S/x\nAuthorization: Bearer y"),
                                            ("tök€n", None)])
def test_a_credential_that_would_break_the_request_is_never_sent(canned: Canned, token: str | None,
                                                                 session: str | None) -> None:
    """A line break in a token or session (from identity.json, say) would start a header of its own."""
    canned.answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]"
    hub = Hub(canned.url, token, session, 2.0)
    with pytest.raises(Failed) as err:
        hub.exchange("GET", "/api/coord/locks")
    assert err.value.phase == "request"
    with pytest.raises(HubUnreachable, match="not asking the hub"):
        hub.get("/locks")
    assert canned.requests == []


def test_a_path_whose_ids_would_steer_the_request_is_refused_before_it_is_sent() -> None:
    from coordhub.client.wire import unsafe_path

    for fine in ("/api/coord/locks/0190-ab", "/api/coord/tokens/laptop/agent", "/api/coord/conversations/prep-fix",
                 "/api/coord/a.b/c..d"):
        assert unsafe_path(fine) is None, fine
    for steered in ("/api/coord/locks/../locks", "/api/coord/locks/..", "/api/coord/locks/x?release_all=true",
                    "/api/coord/x/./y", "/api/coord/a%2e%2e", "/api/coord/a//b", "/api/coord/a#b", "/api/coord/a\\..",
                    "/api/coord/a\nb"):
        assert unsafe_path(steered) is not None, steered
