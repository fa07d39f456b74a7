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
* **Browsers.** With auth on, the token is the defence against DNS
  rebinding (a rebound page cannot present it), so ``Host`` is not
  restricted and LAN names, IPs and reverse proxies work; a request carrying
  an ``Origin`` whose host is not the ``Host`` it was sent to is refused
  with 403 (no web page has a reason to call ``/mcp``). With ``--no-auth``
  the SDK's DNS-rebinding protection is on: ``Host`` must be loopback
  (``127.0.0.1``, ``localhost``, ``[::1]``, any port) or listed in
  ``allowed_hosts``.

Each tool then calls the hub's REST API in-process (the request is handed to
the same app, see :func:`coordhub.client.aio.asgi_request`) carrying the
caller's token, so identity, the halt, idempotency, rate limits and validation
are exactly the REST ones. The MCP transport is stateless
(``stateless_http=True``, JSON responses): any hub process can answer any
request, and legacy (initialize handshake) and 2026 clients both work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers, QueryParams
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from coordhub.api.auth import INNER_REQUEST, SESSION_HEADER, Authenticator, client_address
from coordhub.client.aio import AsyncCoordClient
from coordhub.errors import Forbidden, Invalid
from coordhub.mcp.server import PROFILE_ENV, PROFILES, build_server

PATH = "/mcp"
SCOPE_KEY = "coordhub.mcp.caller"
INTERNAL_URL = "http://coordhub.internal"  # the hub's own app, reached in-process; never resolved
LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class HttpCaller:
    """Who an ``/mcp`` request acts as: its token (or ``X-Coord-Session`` on a no-auth hub)."""

    token: str | None
    session: str | None
    session_id: str | None


class AppConnector:
    """Gives each tool call a client of the hub's own app (in-process) carrying the HTTP caller's identity.

    Its requests are marked as the hub's own (``INNER_REQUEST``): the
    ``/mcp`` request that made them was already counted by the rate limit.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._inner = _Inner(app)

    def client(self, ctx: Context) -> AsyncCoordClient:
        """The caller's client; it holds no connection, so it needs no closing."""
        caller: HttpCaller = ctx.request_context.request.scope[SCOPE_KEY]  # type: ignore[union-attr]
        return AsyncCoordClient(INTERNAL_URL, caller.token, caller.session, app=self._inner,
                                session_id=caller.session_id)

    def resource(self, text: str) -> str:
        """``text`` unchanged: the hub's working directory is not the caller's, so it names no local path."""
        return text


class _Inner:
    """The app, with each request marked as made by the hub itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app({**scope, INNER_REQUEST: True}, receive, send)


def mount(app: FastAPI, *, allowed_hosts: Sequence[str] = ()) -> None:
    """Serve MCP at ``/mcp`` on ``app`` (call once, after ``app.state.auth`` is set).

    Wraps the app's lifespan so the MCP session managers run while the app
    does; nothing else is needed. ``allowed_hosts`` (``host`` or
    ``host:port``, ``host:*`` for any port) widens the loopback-only ``Host``
    check of ``--no-auth`` hubs. Raises ``ValueError`` if ``COORD_MCP_TOOLS``
    names no profile.
    """
    auth: Authenticator = app.state.auth
    default = os.environ.get(PROFILE_ENV) or "default"
    if default not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={default!r}: use one of {', '.join(PROFILES)}")
    security = _security(auth.no_auth, allowed_hosts)

    @contextlib.asynccontextmanager
    async def connector() -> AsyncIterator[AppConnector]:
        yield AppConnector(app)

    servers = {profile: build_server(profile, connector) for profile in PROFILES}
    gate = _Gate(default, auth)
    # first, so /mcp is not matched against every REST route; its one path shadows nothing
    app.router.routes.insert(0, Route(PATH, endpoint=gate, include_in_schema=False))
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


def _security(no_auth: bool, allowed_hosts: Sequence[str]) -> TransportSecuritySettings:
    if not no_auth:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = [*LOOPBACK_HOSTS, *allowed_hosts]
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                     allowed_origins=origins)


class _Gate:
    """The ``/mcp`` endpoint: authenticate, check the origin, pick the profile, hand over to the SDK.

    Errors are raised as the hub's ``CoordError``\\ s, so the app's handlers
    answer with the one error envelope.
    """

    def __init__(self, default: str, auth: Authenticator) -> None:
        self.endpoints: dict[str, ASGIApp] = {}  # filled while the app's lifespan runs
        self.default = default
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        if not self.auth.no_auth:
            _same_origin(headers)
        scope[SCOPE_KEY] = await self._caller(headers, client_address(scope))
        profile = QueryParams(scope.get("query_string", b"")).get("tools") or self.default
        if profile not in PROFILES:
            raise Invalid(f"tools={profile!r}: use one of {', '.join(PROFILES)}", field="tools")
        if profile not in self.endpoints:
            raise RuntimeError("/mcp is not running: the app's lifespan has not started")
        await self.endpoints[profile](scope, receive, send)

    async def _caller(self, headers: Headers, address: str) -> HttpCaller:
        """Who is calling; each ``/mcp`` request counts against the caller's rate limit, like a REST request."""
        if self.auth.no_auth:
            session = headers.get(SESSION_HEADER)
            self.auth.limiter.check(session or address)
            stored = await self.auth.spelling(session) if session else None  # ids compare case-insensitively
            return HttpCaller(None, stored, stored)
        authorization = headers.get("authorization")
        actor = await self.auth.authenticate(authorization, address)
        return HttpCaller((authorization or "").partition(" ")[2].strip(), None, actor.session_id)


def _same_origin(headers: Headers) -> None:
    """Refuse a browser request from a page not served by this host (403)."""
    origin = headers.get("origin")
    if origin and urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
        raise Forbidden(f"Origin {origin!r} is not this hub; /mcp does not serve web pages")
