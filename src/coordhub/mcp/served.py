"""The SDK side of the hub's ``/mcp``: one server per tool profile, its direct calls, and the app they call.

:mod:`coordhub.mcp.http` mounts ``/mcp`` without the ``mcp`` SDK and loads
this module when the first ``/mcp`` request comes (:func:`load`, on a worker
thread): the SDK and the tools' models are ~40 % of a hub's start-up CPU and
~29 MiB of its memory, which a hub that nobody reaches over MCP never needs
(issue 15). Each tool calls the hub's REST API in-process through
:class:`AppConnector`, carrying the caller's identity, so identity, the halt,
idempotency and validation are exactly the REST rules.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from coordhub.api.auth import INNER_REQUEST, Caller
from coordhub.api.door import inner_door
from coordhub.client.aio import AnswerHeaders, AsyncCoordClient, asgi_call, asgi_request, asgi_scope
from coordhub.mcp import PROFILE_NAMES
from coordhub.mcp.connect import CallerContext
from coordhub.mcp.direct import DirectCalls
from coordhub.mcp.http import PATH, SCOPE_KEY, HttpCaller, whole_body
from coordhub.mcp.server import build_server, profile_tools

INTERNAL_URL = "http://coordhub.internal"  # the hub's own app, reached in-process; never resolved
# The hub's Door checks Host and Origin for every route, /mcp included, so the SDK's own check is off.
SECURITY = TransportSecuritySettings(enable_dns_rebinding_protection=False)


class Served:
    """Every profile's SDK server and direct-call handler for one app (built once; :meth:`running` per lifespan)."""

    def __init__(self, app: FastAPI) -> None:
        connector = AppConnector(app)

        @contextlib.asynccontextmanager
        async def connect() -> AsyncIterator[AppConnector]:
            yield connector

        self.servers = {profile: build_server(profile, connect) for profile in PROFILE_NAMES}
        self.direct = {profile: DirectCalls(server, profile_tools(profile), connector)
                       for profile, server in self.servers.items()}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[dict[str, ASGIApp]]:
        """Run the SDK's session managers; yields each profile's streamable-HTTP endpoint.

        The transport is stateless with JSON answers: any hub process can
        answer any request, and handshake-era and 2026 clients both work. A
        session manager runs only once, so each run builds fresh endpoints and
        an app may be started more than once.
        """
        async with contextlib.AsyncExitStack() as stack:
            endpoints: dict[str, ASGIApp] = {}
            for profile, server in self.servers.items():
                endpoints[profile] = server.streamable_http_app(streamable_http_path=PATH, stateless_http=True,
                                                                json_response=True, transport_security=SECURITY)
                await stack.enter_async_context(server.session_manager.run())
            yield endpoints


def load(app: FastAPI) -> Served:
    """Import the SDK and build ``app``'s servers (blocking, ~0.6 s the first time in a process: run it on a
    thread)."""
    return Served(app)


class AppConnector:
    """Gives each tool call a client of the hub's own app (in-process) carrying the HTTP caller's identity.

    Its requests are marked as the hub's own (``INNER_REQUEST``): the
    ``/mcp`` request that made them was already counted by the rate limit.
    """

    fresh_keys = False  # in-process: an answer is never lost, so a write given no key needs none

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def client(self, ctx: Context) -> AsyncCoordClient:
        """The caller's client; it holds no connection, so it needs no closing."""
        caller = _caller(ctx)
        return AsyncCoordClient(INTERNAL_URL, caller.token, caller.session, app=_Inner(self.app, caller.who),
                                session_id=caller.session_id)

    def request_key(self, ctx: Context) -> str | None:
        """The ``/mcp`` request's ``Idempotency-Key`` header, if it has one."""
        return _caller(ctx).idempotency_key

    def resource(self, text: str) -> str:
        """``text`` unchanged: the hub's working directory is not the caller's, so it names no local path."""
        return text


def _caller(ctx: Context) -> HttpCaller:
    """Who the ``/mcp`` request running the tool acts as (the gate noted it)."""
    if isinstance(ctx, CallerContext):  # a direct tools/call (coordhub.mcp.direct)
        caller = ctx.caller
    else:
        caller = ctx.request_context.request.scope[SCOPE_KEY]  # type: ignore[union-attr]
    assert isinstance(caller, HttpCaller)
    return caller


class _Inner:
    """The app, with each request marked as made by the hub itself on behalf of ``who``.

    Once the app has served a request (the ``/mcp`` request that makes these
    did), they go straight to its :class:`~coordhub.api.door.Door`: a hot
    route's answer is taken from the endpoint itself (:meth:`Door.local`,
    with the query as pairs and the caller ``who`` the ``/mcp`` request
    resolved), anything else is served the ASGI way (:meth:`Door.inner`,
    which resolves the caller from the headers); the same rules and answer
    either way, less work than from outside.
    """

    def __init__(self, app: FastAPI, who: Caller) -> None:
        self.app = app
        self.who = who

    async def serve_in_process(self, method: str, path: str, query: dict[str, Any], headers: dict[str, str],
                               body: bytes, answer_headers: AnswerHeaders | None = None) -> tuple[int, bytes]:
        """The request's status and body, its headers into ``answer_headers`` unless None
        (:data:`coordhub.client.aio.ServeInProcess`)."""
        door = inner_door(self.app)
        if door is not None:
            scope = asgi_scope(method, path, {}, headers)
            # the pairs the query string would carry (urlencode writes str(value) of a value that is not text)
            pairs = {k: v if type(v) is str else str(v) for k, v in query.items()}
            response = await door.local(scope, body, query=pairs, who=self.who)
            if response is not None:
                answer = getattr(response, "body", None)  # a streamed answer has none: run it to collect it
                if not isinstance(answer, bytes):
                    return await asgi_call(response, scope, b"", answer_headers)
                if answer_headers is not None:
                    answer_headers.update(response.headers.items())
                return response.status_code, answer
        return await asgi_request(self, method, path, query, headers, body, answer_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        door = inner_door(self.app)
        if door is None:
            await self.app({**scope, INNER_REQUEST: True}, receive, send)
            return
        await door.inner(dict(scope), await whole_body(receive), receive, send)
