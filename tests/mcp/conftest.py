"""MCP fixtures: a hub app with ``/mcp`` mounted, served in-process or by uvicorn, and real SDK clients.

The SDK runs on anyio, so these tests use anyio's pytest plugin
(``@pytest.mark.anyio``) on the asyncio backend.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from coordhub.api.app import create_app
from coordhub.core import tokens
from coordhub.core.hub import Hub
from coordhub.server import SYSTEM
from coordhub.store.sqlite import SQLiteStore
from tests.conftest import free_port

MODES = ["legacy", "auto"]


@pytest.fixture
def anyio_backend() -> str:
    """The SDK's tests run on asyncio; so do ours."""
    return "asyncio"


class McpHub:
    """A hub app with ``/mcp`` mounted, reached in-process (``httpx2.ASGITransport``) or at ``url``."""

    def __init__(self, app: FastAPI, admin_token: str, url: str | None = None) -> None:
        self.app = app
        self.admin_token = admin_token
        self.in_process = url is None
        self.url = url or "http://127.0.0.1:8001"
        self.tokens: dict[str, str] = {}

    def transport(self) -> httpx2.AsyncBaseTransport | None:
        """The app itself when in-process; the network otherwise."""
        return httpx2.ASGITransport(app=self.app) if self.in_process else None

    def http(self, headers: dict[str, str] | None = None) -> httpx2.AsyncClient:
        """A raw HTTP client of the hub."""
        return httpx2.AsyncClient(transport=self.transport(), base_url=self.url, headers=headers or {})

    async def rest(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        """One REST call (as the admin by default); the decoded 2xx answer."""
        async with self.http({"Authorization": f"Bearer {token or self.admin_token}"}) as h:
            r = await h.request(method, path, **kwargs)
        assert r.status_code < 300, r.text
        return r.json()

    async def token(self, session: str, admin: bool = False) -> str:
        """A token acting as ``session`` (minted once per session)."""
        if session not in self.tokens:
            made = await self.rest("POST", "/api/coord/tokens", json={"name": session, "admin": admin})
            self.tokens[session] = made["token"]
        return self.tokens[session]

    async def declare(self, session: str, machine: str, project: str, tools: list[str] | None = None) -> None:
        """Declare ``session``'s conversation address (what the CLI and hooks do from the git root), and its
        tools when given (``coord conv tools set``)."""
        body: dict[str, Any] = {"machine": machine, "project": project}
        if tools is not None:
            body["tools"] = tools
        await self.rest("PUT", "/api/coord/conversations/profile", await self.token(session), json=body)

    @asynccontextmanager
    async def client(self, session: str | None, mode: str = "legacy", tools: str | None = None,
                     headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
        """A real SDK client over streamable HTTP acting as ``session`` (``None``: no token)."""
        auth = {"Authorization": f"Bearer {await self.token(session)}"} if session else {}
        url = self.url + "/mcp" + (f"?tools={tools}" if tools else "")
        async with self.http({**auth, **(headers or {})}) as h:
            async with Client(streamable_http_client(url, http_client=h), mode=mode) as c:
                yield c


def open_hub(tmp_path: Path, no_auth: bool = False) -> tuple[FastAPI, str, SQLiteStore]:
    """A hub app over a fresh SQLite store with ``/mcp`` mounted, and its admin token."""
    store = SQLiteStore(tmp_path / "coord.db")
    store.open()
    hub = Hub(store)
    admin = hub.mutate_sync(SYSTEM, lambda tx, now: tokens.ensure_admin(tx, None, now)).body
    app = create_app(hub, no_auth=no_auth, sweep_seconds=0)  # mounts /mcp itself
    return app, admin, store


@asynccontextmanager
async def running_hub(path: Path, no_auth: bool = False) -> AsyncIterator[McpHub]:
    """A hub with ``/mcp`` over a fresh store in ``path``, its lifespan running, reached in-process."""
    app, admin, store = open_hub(path, no_auth)
    try:
        async with app.router.lifespan_context(app):
            yield McpHub(app, admin)
    finally:
        store.close()


@pytest.fixture
async def mcp_hub(tmp_path: Path, anyio_backend: str) -> AsyncIterator[McpHub]:
    """A hub with ``/mcp``, its lifespan running, reached in-process."""
    async with running_hub(tmp_path) as hub:
        yield hub


@pytest.fixture
def served_hub(tmp_path: Path) -> Iterator[McpHub]:
    """The same app served by uvicorn on a free port in a thread (real HTTP, real lifespan)."""
    app, admin, store = open_hub(tmp_path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                          access_log=False))  # as `coord serve` runs it (a whole answer: one write)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield McpHub(app, admin, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def text(result: CallToolResult) -> str:
    """The text block of a tool result."""
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def ok(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful tool call (fails with the error text otherwise)."""
    assert not result.is_error, text(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def error(result: CallToolResult) -> str:
    """The one-line error text of a failed tool call (fails if the call succeeded)."""
    assert result.is_error, f"expected an error, got {json.dumps(result.structured_content)[:300]}"
    return text(result)
