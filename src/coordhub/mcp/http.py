"""MCP over streamable HTTP at ``/mcp`` on the hub, with the hub's own bearer tokens.

:func:`mount` adds one route, ``/mcp``, to the hub's FastAPI app. A request
passes a small gate first:

* **Auth.** ``Authorization: Bearer <token>`` is checked with the hub's own
  :class:`~coordhub.api.auth.Authenticator`; a missing, unknown or revoked
  token gets the hub's plain 401 envelope (``WWW-Authenticate: Bearer``, no
  OAuth metadata, so MCP clients do not start an OAuth discovery that cannot
  succeed) and no tool runs. ``--no-auth`` hubs pass ``X-Coord-Session``
  through instead.
* **Tools** are those of the ``COORD_MCP_TOOLS`` profile (default
  ``default``); ``/mcp?tools=seed002`` or ``?tools=all`` picks another.
* **Browsers.** ``/mcp`` is behind the hub's one DNS-rebinding and
  cross-origin check, like every REST route (:mod:`coordhub.api.hosts`): a
  cross-origin ``Origin`` is refused with 403, and a ``--no-auth`` hub on
  loopback answers only loopback ``Host`` names (421). The SDK's own check
  is therefore off.

Each tool then calls the hub's REST API in-process (the request is handed to
the same app's :class:`~coordhub.api.door.Door`, see :class:`_Inner`) carrying
the caller's token, so identity, the halt, idempotency, rate limits and
validation are exactly the REST ones. The MCP transport is stateless
(``stateless_http=True``, JSON responses): any hub process can answer any
request, and legacy (initialize handshake) and 2026 clients both work. A plain
``tools/call`` is answered by :class:`coordhub.mcp.direct.DirectCalls` without
the SDK's per-request transport; every other request goes to the SDK.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import QueryParams
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from coordhub.api.auth import INNER_REQUEST, SESSION_HEADER, Authenticator, Caller, client_address
from coordhub.api.door import inner_door, serve_directly
from coordhub.api.headers import header
from coordhub.api.limits import replay
from coordhub.client.aio import AsyncCoordClient, asgi_call, asgi_request, asgi_scope
from coordhub.errors import Invalid
from coordhub.mcp.connect import CallerContext
from coordhub.mcp.direct import DirectCalls
from coordhub.mcp.server import PROFILE_ENV, PROFILES, build_server, profile_tools

PATH = "/mcp"
SCOPE_KEY = "coordhub.mcp.caller"
INTERNAL_URL = "http://coordhub.internal"  # the hub's own app, reached in-process; never resolved


@dataclass(frozen=True)
class HttpCaller:
    """Who an ``/mcp`` request acts as: its token (or ``X-Coord-Session`` on a no-auth hub), and the caller its
    tools' REST requests resolve to (``who``: the ``/mcp`` request resolved it already)."""

    token: str | None
    session: str | None
    session_id: str | None
    who: Caller


class AppConnector:
    """Gives each tool call a client of the hub's own app (in-process) carrying the HTTP caller's identity.

    Its requests are marked as the hub's own (``INNER_REQUEST``): the
    ``/mcp`` request that made them was already counted by the rate limit.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def client(self, ctx: Context) -> AsyncCoordClient:
        """The caller's client; it holds no connection, so it needs no closing."""
        if isinstance(ctx, CallerContext):  # a direct tools/call (coordhub.mcp.direct)
            caller = ctx.caller
        else:
            caller = ctx.request_context.request.scope[SCOPE_KEY]  # type: ignore[union-attr]
        assert isinstance(caller, HttpCaller)
        return AsyncCoordClient(INTERNAL_URL, caller.token, caller.session, app=_Inner(self.app, caller.who),
                                session_id=caller.session_id)

    def resource(self, text: str) -> str:
        """``text`` unchanged: the hub's working directory is not the caller's, so it names no local path."""
        return text


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
                               body: bytes) -> tuple[int, bytes]:
        """The request's status and body (:data:`coordhub.client.aio.ServeInProcess`)."""
        door = inner_door(self.app)
        if door is not None:
            scope = asgi_scope(method, path, {}, headers)
            # the pairs the query string would carry (urlencode writes str(value) of a value that is not text)
            pairs = {k: v if type(v) is str else str(v) for k, v in query.items()}
            response = await door.local(scope, body, query=pairs, who=self.who)
            if response is not None:
                answer = getattr(response, "body", None)  # a streamed answer has none: run it to collect it
                return (response.status_code, answer) if isinstance(answer, bytes) else \
                    await asgi_call(response, scope, b"")
        return await asgi_request(self, method, path, query, headers, body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        door = inner_door(self.app)
        if door is None:
            await self.app({**scope, INNER_REQUEST: True}, receive, send)
            return
        await door.inner(dict(scope), await _body(receive), receive, send)


def mount(app: FastAPI) -> None:
    """Serve MCP at ``/mcp`` on ``app`` (call once, after ``app.state.auth`` is set).

    Wraps the app's lifespan so the MCP session managers run while the app
    does; nothing else is needed. Raises ``ValueError`` if
    ``COORD_MCP_TOOLS`` names no profile.
    """
    auth: Authenticator = app.state.auth
    default = os.environ.get(PROFILE_ENV) or "default"
    if default not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={default!r}: use one of {', '.join(PROFILES)}")
    # The hub's BrowserGuard middleware checks Host and Origin for every route, /mcp included.
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)

    app_connector = AppConnector(app)

    @contextlib.asynccontextmanager
    async def connector() -> AsyncIterator[AppConnector]:
        yield app_connector

    servers = {profile: build_server(profile, connector) for profile in PROFILES}
    gate = _Gate(default, auth)
    gate.direct = {profile: DirectCalls(server, profile_tools(profile), app_connector)
                   for profile, server in servers.items()}
    # first, so /mcp is not matched against every REST route; its one path shadows nothing
    app.router.routes.insert(0, Route(PATH, endpoint=gate, include_in_schema=False))
    serve_directly(app, PATH, gate)  # past FastAPI's stack: the gate raises CoordErrors the app answers
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        # A mounted app's own lifespan never runs, so the hub's runs the SDK's session managers. Each run
        # builds fresh ones (a manager runs only once), so an app may be started more than once.
        async with inner(a) as state, contextlib.AsyncExitStack() as stack:
            for profile, server in servers.items():
                endpoint = server.streamable_http_app(streamable_http_path=PATH, stateless_http=True,
                                                      json_response=True, transport_security=security)
                await stack.enter_async_context(server.session_manager.run())
                gate.endpoints[profile] = endpoint
            stack.callback(gate.endpoints.clear)
            yield state

    app.router.lifespan_context = lifespan


class _Gate:
    """The ``/mcp`` endpoint: authenticate, pick the profile, hand over to the SDK.

    Errors are raised as the hub's ``CoordError``\\ s, so the app's handlers
    answer with the one error envelope.
    """

    def __init__(self, default: str, auth: Authenticator) -> None:
        self.endpoints: dict[str, ASGIApp] = {}  # filled while the app's lifespan runs
        self.direct: dict[str, DirectCalls] = {}  # plain tools/call requests, per profile
        self.default = default
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = scope[SCOPE_KEY] = await self._caller(scope, client_address(scope))
        query = scope.get("query_string", b"")
        profile = (QueryParams(query).get("tools") if query else None) or self.default
        if profile not in PROFILES:
            raise Invalid(f"tools={profile!r}: use one of {', '.join(PROFILES)}", field="tools")
        if profile not in self.endpoints:
            raise RuntimeError("/mcp is not running: the app's lifespan has not started")
        if scope["method"] == "POST" and profile in self.direct:
            body = await _body(receive)
            if await self.direct[profile].answer(scope["headers"], body, caller, send):
                return
            receive = replay(body, receive)
        await self.endpoints[profile](scope, receive, send)

    async def _caller(self, scope: Scope, address: str) -> HttpCaller:
        """Who is calling; each ``/mcp`` request counts against the caller's rate limit, like a REST request."""
        if self.auth.no_auth:
            session = header(scope, SESSION_HEADER)
            self.auth.limiter.check(session or address)
            stored = await self.auth.spelling(session) if session else None  # ids compare case-insensitively
            return HttpCaller(None, stored, stored, Caller(None, stored, self.auth))
        authorization = header(scope, "authorization")
        actor = await self.auth.authenticate(authorization, address)
        return HttpCaller((authorization or "").partition(" ")[2].strip(), None, actor.session_id,
                          Caller(actor, None, self.auth))


async def _body(receive: Receive) -> bytes:
    """The whole request body (the hub's body limit has bounded it already)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: an empty body, which the SDK refuses
            return b""
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
