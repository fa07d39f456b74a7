"""MCP over streamable HTTP at ``/mcp`` on the hub, with the hub's own bearer tokens.

:func:`mount` adds one route, ``/mcp``, to the hub's FastAPI app. A request
passes a small gate first:

* **Auth.** ``Authorization: Bearer <token>`` is checked with the hub's own
  :class:`~coordhub.api.auth.Authenticator`; a missing, unknown or revoked
  token gets the hub's plain 401 envelope (``WWW-Authenticate: Bearer``, no
  OAuth metadata, so MCP clients do not start an OAuth discovery that cannot
  succeed) and no tool runs. ``--no-auth`` hubs pass ``X-Coord-Session``
  through instead; with a token, that header naming another session is
  refused as on every REST route (403 ``session_mismatch``,
  :func:`~coordhub.api.auth.check_named_session`).
* **Tools** are those of the ``COORD_MCP_TOOLS`` profile (default
  ``default``); ``/mcp?tools=seed002`` or ``?tools=all`` picks another.
* **Browsers.** ``/mcp`` is behind the hub's one DNS-rebinding and
  cross-origin check, like every REST route (:mod:`coordhub.api.hosts`): a
  cross-origin ``Origin`` is refused with 403, and a ``--no-auth`` hub on
  loopback answers only loopback ``Host`` names (421). The SDK's own check
  is therefore off.

The SDK side (a server per profile, the direct calls, the in-process app the
tools call: :mod:`coordhub.mcp.served`) is loaded when the first ``/mcp``
request comes, on a worker thread while the hub goes on answering: importing
the SDK and building the tools' models was ~40 % of a hub's start-up CPU and
~29 MiB of its memory (issue 15), which a hub nobody reaches over MCP never
needs. That first request waits for it (~0.6 s); every later one finds it
loaded. Each tool then calls the hub's REST API in-process, carrying the
caller's token, so identity, the halt, idempotency, rate limits and
validation are exactly the REST ones. A plain ``tools/call`` is answered by
:class:`coordhub.mcp.direct.DirectCalls` without the SDK's per-request
transport; every other request goes to the SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from coordhub import heap
from coordhub.api.auth import Authenticator, Caller, check_named_session, client_address
from coordhub.api.door import serve_directly
from coordhub.api.headers import header
from coordhub.api.inputs import body_value
from coordhub.api.limits import replay
from coordhub.errors import CoordError, Invalid
from coordhub.headers import IDEMPOTENCY_HEADER, SESSION_HEADER
from coordhub.mcp import PROFILE_ENV, PROFILE_NAMES

if TYPE_CHECKING:
    from coordhub.mcp.direct import DirectCalls
    from coordhub.mcp.served import Served

log = logging.getLogger("coordhub.mcp")

PATH = "/mcp"
SCOPE_KEY = "coordhub.mcp.caller"


@dataclass(frozen=True)
class HttpCaller:
    """Who an ``/mcp`` request acts as: its token (or ``X-Coord-Session`` on a no-auth hub), and the caller its
    tools' REST requests resolve to (``who``: the ``/mcp`` request resolved it already); ``idempotency_key`` is
    the request's ``Idempotency-Key`` header, which a tool that writes uses when given no key of its own
    (:func:`coordhub.mcp.connect.retry_key`)."""

    token: str | None
    session: str | None
    session_id: str | None
    who: Caller
    idempotency_key: str | None = None


UNLOADED = ("MCP could not be loaded in this hub process; its log says why. Every other route works; restart the "
            "hub once the cause is fixed.")
FAILED = ("MCP stopped with an error in this hub process; its log says why. Every other route works; restart the "
          "hub.")
STOPPING = "/mcp is stopping with the hub"


class McpUnavailable(CoordError):
    """``/mcp`` cannot serve in this hub process (503): its SDK side failed to load or stopped with an error (the
    hub logged why, once), or the hub is stopping (messages :data:`UNLOADED`, :data:`FAILED`, :data:`STOPPING`)."""

    status, code = 503, "mcp_unavailable"


def mount(app: FastAPI) -> None:
    """Serve MCP at ``/mcp`` on ``app`` (call once, after ``app.state.auth`` is set).

    Adds the route and wraps the app's lifespan, which runs the SDK's session
    managers once the first ``/mcp`` request has loaded them; nothing else is
    needed. Raises ``ValueError`` if ``COORD_MCP_TOOLS`` names no profile.
    """
    auth: Authenticator = app.state.auth
    default = os.environ.get(PROFILE_ENV) or "default"
    if default not in PROFILE_NAMES:
        raise ValueError(f"{PROFILE_ENV}={default!r}: use one of {', '.join(PROFILE_NAMES)}")
    gate = Gate(app, default, auth)
    # first, so /mcp is not matched against every REST route; its one path shadows nothing
    app.router.routes.insert(0, Route(PATH, endpoint=gate, include_in_schema=False))
    serve_directly(app, PATH, gate)  # past FastAPI's stack: the gate raises CoordErrors the app answers
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        # A mounted app's own lifespan never runs, so the hub's runs the SDK's session managers (in the gate's
        # keeper task, from the first /mcp request until the hub stops).
        async with inner(a) as state:
            gate.start()
            try:
                yield state
            finally:
                await gate.stop()

    app.router.lifespan_context = lifespan


async def ready(app: FastAPI) -> None:
    """Load ``app``'s ``/mcp`` now, as its first ``/mcp`` request would (its lifespan must be running)."""
    for route in app.router.routes:
        if isinstance(route, Route) and isinstance(route.endpoint, Gate):
            await route.endpoint.ready()
            return
    raise LookupError("the app has no /mcp (coordhub.mcp.http.mount)")


class Gate:
    """The ``/mcp`` endpoint: authenticate, pick the profile, load the SDK side once, hand over.

    Errors are raised as the hub's ``CoordError``\\ s, so the app's handlers
    answer with the one error envelope. ``direct`` and ``endpoints`` (per
    profile) are filled once the SDK side is loaded and running.
    """

    def __init__(self, app: FastAPI, default: str, auth: Authenticator) -> None:
        self.app = app
        self.default = default
        self.auth = auth
        self.endpoints: dict[str, ASGIApp] = {}  # while the keeper runs the session managers
        self.direct: dict[str, DirectCalls] = {}  # plain tools/call requests, per profile
        self._loading: asyncio.Future[Served | None] | None = None  # the one load of this app (None: it failed)
        self._keeper: asyncio.Task[None] | None = None
        self._wanted = asyncio.Event()
        self._started: asyncio.Future[None] | None = None
        self._stopping = asyncio.Event()
        self._refusal = STOPPING  # what a request that finds no session manager running is told

    def start(self) -> None:
        """Start the keeper task (the app's lifespan calls it): it loads and runs the SDK side when first wanted."""
        self._wanted, self._stopping, self._refusal = asyncio.Event(), asyncio.Event(), STOPPING
        self._started = started = asyncio.get_running_loop().create_future()
        # a refusal nobody waited for is not an error to report (the keeper logged why)
        started.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._keeper = asyncio.create_task(self._keep(started, self._wanted, self._stopping), name="coordhub-mcp")

    async def stop(self) -> None:
        """Stop the session managers (the app's lifespan calls it); a load under way is let finish first (it runs
        on a thread, which cannot be interrupted), and the caller's own cancellation goes through. From here on
        every ``/mcp`` request is refused with 503."""
        keeper, self._keeper = self._keeper, None
        if keeper is None:
            return
        self._stopping.set()
        self.direct, self.endpoints = {}, {}  # no new request reaches a session manager being torn down
        if not self._wanted.is_set():
            keeper.cancel()
        await asyncio.wait({keeper})  # not `await keeper`: cancelling this task must not cancel the keeper's load
        if not keeper.cancelled():
            keeper.result()

    async def ready(self) -> None:
        """Return once the SDK side runs; the first caller has it loaded.

        Raises :class:`McpUnavailable` when the load failed or the app is
        stopping or stopped, ``RuntimeError`` when its lifespan never started.
        """
        started = self._started
        if self._stopping.is_set():
            raise McpUnavailable(self._refusal)
        if self._keeper is None or started is None:
            raise RuntimeError("/mcp is not running: the app's lifespan has not started")
        if not started.done():
            self._wanted.set()
            await asyncio.shield(started)  # one waiter's cancellation must not cancel it for the others
        started.result()

    async def _keep(self, started: asyncio.Future[None], wanted: asyncio.Event, stopping: asyncio.Event) -> None:
        # wanted/stopping are this lifespan run's own: a keeper outliving its run (its stop was cancelled) must
        # not act on the next run's
        await wanted.wait()
        try:
            served = None if stopping.is_set() else await self._load()
            if stopping.is_set():  # stopped before or while loading: start nothing
                started.set_exception(McpUnavailable(self._refusal))
                return
            if served is None:
                started.set_exception(McpUnavailable(UNLOADED))
                return
            async with served.running() as endpoints:
                if not stopping.is_set():
                    self.direct, self.endpoints = dict(served.direct), endpoints
                started.set_result(None)
                await stopping.wait()
        except Exception:  # the SDK's session managers failed: /mcp refuses until the next run, the hub goes on
            log.exception("MCP stopped with an error; /mcp answers 503")
            if not stopping.is_set():
                self._refusal = FAILED
            if not started.done():
                started.set_exception(McpUnavailable(FAILED))
        except BaseException:
            if not started.done():
                started.set_exception(McpUnavailable(STOPPING))
            raise
        finally:
            if not stopping.is_set():  # once stopping, stop() has cleared them (and a later run may have set its own)
                self.direct, self.endpoints = {}, {}  # a request that finds none is refused, never half-served

    async def _load(self) -> Served | None:
        """The app's SDK side, loaded once (shared by every keeper of the app); None if the load failed (logged
        once, not tried again)."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load_once())
        return await asyncio.shield(self._loading)

    async def _load_once(self) -> Served | None:
        try:
            with heap.absorbing():
                served = await asyncio.to_thread(_load, self.app)
        except Exception:
            log.exception("MCP could not be loaded; /mcp answers 503 until the hub restarts")
            return None
        log.info("MCP loaded: %d tool profiles", len(served.servers))
        return served

    async def respond(self, scope: Scope, body: bytes) -> Response | None:
        """The answer to a plain ``tools/call`` (:class:`~coordhub.mcp.direct.DirectCalls`), not yet sent; None
        when the SDK must serve the request (the hub's :class:`~coordhub.api.door.Door` then calls the gate, which
        does not authenticate it again). ``body`` is the whole request body.

        Only POST is served: the hub runs the SDK stateless, where a GET stream would carry nothing, and such a
        stream held no stream slot, had no lifetime and outlived its token (review: one token held 1,500 of them
        and filled the connection cap). The transport lets a server answer 405 to GET (MCP 2025-06-18,
        "Streamable HTTP"); clients then go on without the stream.
        """
        if scope["method"] != "POST":
            return Response(status_code=405, headers={"Allow": "POST"})
        caller, profile = await self._admit(scope)
        direct = self.direct.get(profile)
        if direct is None:
            return None
        return await direct.answer(scope["headers"], lambda: body_value(scope, body), caller)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if SCOPE_KEY not in scope:  # not admitted by respond() first (a request under a root path takes the route)
            body = await whole_body(receive)
            response = await self.respond(scope, body)
            if response is not None:
                await response(scope, receive, send)
                return
            receive = replay(body, receive)
        endpoint = self.endpoints.get(self._profile(scope))
        if endpoint is None:  # stopped while this request waited
            raise McpUnavailable(self._refusal)
        await endpoint(scope, receive, send)

    async def _admit(self, scope: Scope) -> tuple[HttpCaller, str]:
        """Authenticate the request (counted against the caller's rate limit: once per request), check its
        profile, and have the SDK side loaded; the caller, noted in ``scope`` for the SDK's tools, and the
        profile."""
        caller = scope[SCOPE_KEY] = await self._caller(scope, client_address(scope))
        profile = self._profile(scope)
        if not self.endpoints:
            await self.ready()
        return caller, profile

    def _profile(self, scope: Scope) -> str:
        """The tool profile the request asks for (``?tools=``, else the hub's default); ``Invalid`` if none."""
        query = scope.get("query_string", b"")
        profile = (QueryParams(query).get("tools") if query else None) or self.default
        if profile not in PROFILE_NAMES:
            raise Invalid(f"tools={profile!r}: use one of {', '.join(PROFILE_NAMES)}", field="tools")
        return profile

    async def _caller(self, scope: Scope, address: str) -> HttpCaller:
        """Who is calling; each ``/mcp`` request counts against the caller's rate limit, like a REST request."""
        if self.auth.no_auth:
            session = header(scope, SESSION_HEADER)
            self.auth.limiter.check(session or address)
            stored = await self.auth.spelling(session) if session else None  # ids compare case-insensitively
            return HttpCaller(None, stored, stored, Caller(None, stored, self.auth, session or address),
                              header(scope, IDEMPOTENCY_HEADER))
        authorization = header(scope, "authorization")
        actor, key = await self.auth.authenticate_keyed(authorization, address)
        check_named_session(scope, actor)  # the REST rule: a header naming another session is refused
        return HttpCaller((authorization or "").partition(" ")[2].strip(), None, actor.session_id,
                          Caller(actor, None, self.auth, key), header(scope, IDEMPOTENCY_HEADER))


def _load(app: FastAPI) -> Served:
    """Import the SDK side and build ``app``'s servers (blocking: on a worker thread, never the event loop's)."""
    from coordhub.mcp import served  # the SDK loads here, not at start-up

    return served.load(app)


async def whole_body(receive: Receive) -> bytes:
    """The whole request body (the hub's body limit has bounded it already)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: an empty body, which the SDK refuses
            return b""
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
