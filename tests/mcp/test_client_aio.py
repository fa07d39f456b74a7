"""The asyncio client the MCP tools use: in-process (ASGI) and over HTTP, errors, idempotency keys."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest

from coordhub.client.aio import MAX_NEXT_CURSOR, AsyncCoordClient, asgi_request
from coordhub.client.client import HubError, Unreachable
from coordhub.client.wire import NEXT_AFTER_FENCE, NEXT_AFTER_SEQ, NEXT_BEFORE_SEQ
from tests.conftest import free_port

pytestmark = pytest.mark.anyio


class Echo:
    """An ASGI app answering with what it received (or an error envelope, or an exception)."""

    def __init__(self, status: int = 200, body: bytes | None = None, explode: bool = False,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status, self.body, self.explode, self.headers = status, body, explode, headers or []
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        if self.explode:
            raise RuntimeError("boom")
        seen = {"method": scope["method"], "path": scope["path"], "query": scope["query_string"].decode(),
                "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
                "body": message["body"].decode()}
        self.seen.append(seen)
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/json"), *self.headers]})
        await send({"type": "http.response.body", "body": self.body or json.dumps(seen).encode()})


async def test_in_process_request_carries_identity_query_and_body(anyio_backend: str) -> None:
    app = Echo()
    async with AsyncCoordClient("http://hub", "tok", app=app) as c:  # type: ignore[arg-type]
        got = await c.call("POST", "/api/coord/x", params={"a": 1, "b": None, "flag": True}, body={"k": "v"})
        await c.call("POST", "/api/coord/x", idempotency_key="k-1")
        await c.call("GET", "/api/coord/y")
    assert got["method"] == "POST" and got["path"] == "/api/coord/x" and got["query"] == "a=1&flag=true"
    assert got["headers"]["authorization"] == "Bearer tok" and json.loads(got["body"]) == {"k": "v"}
    assert got["headers"]["content-type"] == "application/json"
    keys = [s["headers"].get("idempotency-key") for s in app.seen]
    # in-process: never retried, so no fresh key (it would only cost an idempotency record); a given key is sent
    assert keys == [None, "k-1", None]


async def test_over_the_network_each_write_gets_a_fresh_idempotency_key(anyio_backend: str) -> None:
    seen: list[str | None] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers.get("idempotency-key"))
        return httpx2.Response(200, json={})

    async with AsyncCoordClient("http://hub", "tok", transport=httpx2.MockTransport(handler)) as c:
        await c.call("POST", "/api/coord/x")
        await c.call("POST", "/api/coord/x")
        await c.call("GET", "/api/coord/y")
    assert seen[0] and seen[1] and seen[0] != seen[1] and seen[2] is None


async def test_no_auth_identity_is_the_session_header(anyio_backend: str) -> None:
    app = Echo()
    async with AsyncCoordClient("http://hub", None, "M/s", app=app) as c:  # type: ignore[arg-type]
        got = await c.call("GET", "/api/coord/y")
        assert await c.session_id() == "M/s"
    assert got["headers"]["x-coord-session"] == "M/s" and "authorization" not in got["headers"]


async def test_error_envelope_becomes_hub_error(anyio_backend: str) -> None:
    envelope = {"error": {"code": "lease_conflict", "message": "held by B"}, "detail": "held by B"}
    app = Echo(409, json.dumps(envelope).encode())
    async with AsyncCoordClient("http://hub", "tok", app=app) as c:  # type: ignore[arg-type]
        with pytest.raises(HubError) as caught:
            await c.call("POST", "/api/coord/locks", body={})
    assert (caught.value.status, caught.value.code, caught.value.message) == (409, "lease_conflict", "held by B")
    async with AsyncCoordClient("http://hub", "tok", app=Echo(502, b"bad gateway")) as c:  # type: ignore[arg-type]
        with pytest.raises(HubError) as caught:
            await c.call("GET", "/x")
    assert (caught.value.code, caught.value.message) == ("bad_response", "bad gateway")  # as the sync client reads it


async def test_an_exception_in_the_app_is_a_500(anyio_backend: str) -> None:
    assert await asgi_request(Echo(explode=True), "GET", "/x", {}, {}, b"") == (500, b"")  # type: ignore[arg-type]
    async with AsyncCoordClient("http://hub", "tok", app=Echo(explode=True)) as c:  # type: ignore[arg-type]
        with pytest.raises(HubError) as caught:
            await c.call("GET", "/x")
    assert caught.value.status == 500


async def test_over_http_and_unreachable(anyio_backend: str) -> None:
    transport = httpx2.ASGITransport(app=Echo())  # type: ignore[arg-type]
    async with AsyncCoordClient("http://hub/", "tok", transport=transport) as c:
        got = await c.call("PUT", "/api/coord/z", params={"q": "a b"}, body=[1])
    assert got["path"] == "/api/coord/z" and got["query"] == "q=a+b" and got["body"] == "[1]"
    assert got["headers"]["idempotency-key"]
    down = f"http://127.0.0.1:{free_port()}"
    async with AsyncCoordClient(down, "tok") as c:
        with pytest.raises(Unreachable, match="cannot reach the hub at " + down):
            await c.call("GET", "/health")


class _Whoami(http.server.BaseHTTPRequestHandler):
    answer = b"{}"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("answer", [[], "ops", {}, {"session_id": 5}, {"session_id": ""}, {"session_id": ["M/s"]}])
async def test_a_whoami_answer_of_another_shape_is_unreachable_not_a_traceback(anyio_backend: str,
                                                                                answer: Any) -> None:
    handler = type("H", (_Whoami,), {"answer": json.dumps(answer).encode()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        async with AsyncCoordClient(f"http://127.0.0.1:{server.server_port}", "tok") as c:
            with pytest.raises(Unreachable, match="whoami is not an object with session_id"):
                await c.session_id()
    finally:
        server.shutdown()
        server.server_close()


async def test_a_token_acting_as_no_session_is_said_so(anyio_backend: str) -> None:
    handler = type("H", (_Whoami,), {"answer": b'{"session_id": null, "admin": true, "presence": null}'})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        async with AsyncCoordClient(f"http://127.0.0.1:{server.server_port}", "tok") as c:
            assert c.has_token
            with pytest.raises(HubError) as caught:
                await c.session_id()
    finally:
        server.shutdown()
        server.server_close()
    assert caught.value.code == "no_session" and "acts as no session" in caught.value.message


class _Page(_Whoami):
    """An answer with a ``header`` of ``cursor`` (none for None)."""

    cursor: str | None = None
    header = "Coord-Next-Cursor"

    def end_headers(self) -> None:
        if self.cursor is not None:
            self.send_header(self.header, self.cursor)
        super().end_headers()


@asynccontextmanager
async def paging_hub(way: str, cursor: str | None,
                     header: str = "Coord-Next-Cursor") -> AsyncIterator[AsyncCoordClient]:
    """A client of a hub answering ``[1, 2]`` with a ``header`` of ``cursor`` (none for None): an app handed the
    request in-process (``app``), or a server over HTTP (``network``)."""
    if way == "app":
        app = Echo(body=b"[1, 2]", headers=[] if cursor is None else [(header.lower().encode(), cursor.encode())])
        async with AsyncCoordClient("http://hub", "tok", app=app) as c:  # type: ignore[arg-type]
            yield c
        return
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Page,), {"answer": b"[1, 2]",
                                                                                     "cursor": cursor,
                                                                                     "header": header}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        async with AsyncCoordClient(f"http://127.0.0.1:{server.server_port}", "tok") as c:
            yield c
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("way", ["app", "network"])
@pytest.mark.parametrize("cursor", ["WzEsImEiXQ", None, "c" * MAX_NEXT_CURSOR])
async def test_call_page_answers_the_body_and_the_hubs_next_cursor(anyio_backend: str, way: str,
                                                                   cursor: str | None) -> None:
    async with paging_hub(way, cursor) as c:
        assert await c.call_page("GET", "/api/coord/todos", {"status": "all"}) == ([1, 2], cursor)
        assert await c.call("GET", "/api/coord/todos") == [1, 2]


@pytest.mark.parametrize("way", ["app", "network"])
@pytest.mark.parametrize("cursor", ["", "c" * (MAX_NEXT_CURSOR + 1)])
async def test_a_next_cursor_no_hub_sends_is_a_bad_answer(anyio_backend: str, way: str, cursor: str) -> None:
    """A hostile hub cannot make the cursor a tool keeps and sends back any size it likes."""
    async with paging_hub(way, cursor) as c:
        with pytest.raises(Unreachable, match=f"to GET /api/coord/todos has a Coord-Next-Cursor header of "
                                              f"{len(cursor)} characters, not 1 to {MAX_NEXT_CURSOR}$"):
            await c.call_page("GET", "/api/coord/todos")


@pytest.mark.parametrize("way", ["app", "network"])
async def test_call_page_reads_the_header_it_is_told_of_and_bounds_it(anyio_backend: str, way: str) -> None:
    """Messages and leases are paged by a number in their own header: the one asked for is read, no other."""
    async with paging_hub(way, "41", "Coord-Next-After-Seq") as c:
        assert await c.call_page("GET", "/api/coord/messages", header=NEXT_AFTER_SEQ) == ([1, 2], "41")
        assert await c.call_page("GET", "/api/coord/messages", header=NEXT_BEFORE_SEQ) == ([1, 2], None)
        assert await c.call_page("GET", "/api/coord/messages") == ([1, 2], None)
    async with paging_hub(way, "7" * (MAX_NEXT_CURSOR + 1), "Coord-Next-After-Fence") as c:
        with pytest.raises(Unreachable, match="to GET /api/coord/locks has a Coord-Next-After-Fence header of "):
            await c.call_page("GET", "/api/coord/locks", header=NEXT_AFTER_FENCE)
