"""The hub's one ASGI layer in front of every route: the request rules, metrics and the hot routes in one pass.

Every HTTP request the hub answers passes the same rules before any route
sees it, each defined in its own module:

1. the browser rules (:mod:`coordhub.api.hosts`: a cross-origin ``Origin``,
   a non-loopback ``Host`` on a loopback ``--no-auth`` hub), except for the
   hub's own in-process requests (``INNER_REQUEST``, the ``/mcp`` tools');
2. the body limit (:func:`coordhub.api.limits.read_body`: 413 over the
   limit, the rest of a body up to a bound dropped so its client reads it;
   408 too slow), which buffers the body;
3. the hostile-input rules (:mod:`coordhub.api.inputs`: NUL, JSON that is not
   interoperable), on that buffered body;
4. empty query values dropped, a parameter given twice refused with 422
   (:mod:`coordhub.api.query`).

Then the request is counted and timed (:meth:`HubMetrics.observe_answer`; not
a request the hub makes to itself, an ``/mcp`` tool's, whose ``/mcp`` request
is counted) and answered by a hot route (:mod:`coordhub.api.hotpath`) when it is one, by an
endpoint registered with :func:`serve_directly` (``/mcp``) when its path is
that endpoint's, else by FastAPI's own stack (its error layers, the router). A
refused request never reaches a route and is not counted.

Why one layer: these were six ASGI middlewares, each a coroutine per request,
two of them wrapping ``send`` and two wrapping ``receive``; together they were
~20 % of a send's CPU (issue 15's profiles, docs/benchmarks.md). Here the
headers are read once and nothing is wrapped on the hot path.

:func:`install` puts it outside FastAPI's whole stack, so it also records the
server's own ``send`` in each HTTP scope for the live SSE streams
(:data:`coordhub.api.wire.SERVER_SEND`). Being outside Starlette's
server-error layer, it answers the hot routes' unexpected errors itself, the
same way (:meth:`HotRoutes.serve`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordhub.api import hosts, inputs, wire
from coordhub.api.auth import INNER_REQUEST, Caller
from coordhub.api.errors import envelope
from coordhub.api.headers import raw_header
from coordhub.api.hotpath import HotRoutes, error_answer
from coordhub.api.limits import BodyRefused, Disconnected, read_body, replay
from coordhub.api.metrics import HubMetrics
from coordhub.api.query import pairs_without_empty_values, repeated, without_empty_values
from coordhub.api.wire import SERVER_SEND
from coordhub.jsonlog import CURRENT_SCOPE


class Door:
    """The layer (see the module docstring) in front of ``app``, FastAPI's own middleware stack.

    ``max_body_bytes``/``body_timeout``: the body limit (bytes, seconds).
    ``loopback_only``: the ``Host`` rule. ``nul_ok_paths``: paths whose bodies
    may carry NUL (``/mcp``: its tools' REST requests pass this layer in turn).
    ``hot``: the hot routes, or None to send every request to ``app``.
    ``hub_app``: the FastAPI app (its exception handlers answer errors raised
    outside its stack); ``direct``: ASGI endpoints by exact path, answered
    without FastAPI's stack (:func:`serve_directly`).
    """

    __slots__ = ("app", "hub_app", "metrics", "hot", "direct", "max_body_bytes", "body_timeout", "loopback_only",
                 "nul_ok_paths")

    def __init__(self, app: ASGIApp, hub_app: FastAPI, metrics: HubMetrics, hot: HotRoutes | None, *,
                 direct: dict[str, ASGIApp], max_body_bytes: int, body_timeout: float, loopback_only: bool,
                 nul_ok_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.hub_app = hub_app
        self.metrics = metrics
        self.hot = hot
        self.direct = direct
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.loopback_only = loopback_only
        self.nul_ok_paths = nul_ok_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket" and scope.get("query_string"):
                scope["query_string"] = without_empty_values(scope["query_string"])
            await self.app(scope, receive, send)
            return
        scope[SERVER_SEND] = send
        try:
            await self._http(scope, receive, send)
        finally:
            # uvicorn's cycle holds the scope: kept in it, its send would make every request a reference
            # cycle, freed only by the garbage collector (measured: ~15 objects of cyclic garbage a request)
            del scope[SERVER_SEND]

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = origin = length = content_type = None
        for name, value in scope["headers"]:  # the first of each, as Starlette's Headers.get reads them
            if name == b"host":
                host = host if host is not None else value
            elif name == b"content-type":
                content_type = content_type if content_type is not None else value
            elif name == b"content-length":
                length = length if length is not None else value
            elif name == b"origin":
                origin = origin if origin is not None else value
        if not scope.get(INNER_REQUEST):
            refused = hosts.refusal("" if host is None else host.decode("latin-1"),
                                    None if origin is None else origin.decode("latin-1"),
                                    loopback_only=self.loopback_only)
            if refused is not None:
                await refused(scope, receive, send)
                return
        try:
            body = await read_body(receive, length, self.max_body_bytes, self.body_timeout)
        except BodyRefused as exc:
            await exc.answer(send, receive, self.body_timeout)
            return
        except Disconnected:
            return
        await self._ruled(scope, body, content_type, receive, send)

    async def inner(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        """Answer a request the hub makes to itself (an ``/mcp`` tool's REST call) whose whole ``body`` is in hand.

        The same rules and answer as :meth:`__call__` gives it, in one pass
        less: FastAPI's and Starlette's entry (``scope`` gets the app, as
        they would give it) and the body's reading are skipped, and the browser
        rules do not apply to such a request anyway (``INNER_REQUEST``, set
        here). The body limit, the hostile-input rules and the empty query
        values apply as to any request (issue 15: the second pass through the
        layers cost ~10 % of a tool call's CPU); the metrics count the ``/mcp``
        request, not this one. The caller must not set a
        ``root_path`` (this app's routes are at the root: :func:`inner_door`).
        """
        scope[INNER_REQUEST] = True
        scope["app"] = self.hub_app
        if len(body) > self.max_body_bytes:
            await BodyRefused(self.max_body_bytes).answer(send)
            return
        await self._ruled(scope, body, raw_header(scope, b"content-type"), receive, send)

    async def local(self, scope: Scope, body: bytes, *, query: Mapping[str, str] | None = None,
                    who: Caller | None = None) -> Response | None:
        """The answer, not sent, to a request the hub makes to itself (an ``/mcp`` tool's REST request) whose whole
        ``body`` is in hand, when a hot route takes and accepts it; None when it must go :meth:`inner`'s way.

        The same rules, route, endpoint and hot-route count as :meth:`inner` gives it,
        without the ASGI messages in between: the answer comes back as the
        endpoint's ``Response`` (issue 15: the request's messages, sent to a
        collector and joined back, cost ~5 % of an MCP tool call's CPU). None
        (nothing of it run) for everything else: a refusal by the rules, a
        path no hot route serves, parameters or a body FastAPI must word the
        error for. An exception the app has no handler for is answered with the
        catch-all 500, which logs it.

        ``query`` is the request's query as pairs, when the scope carries none
        (no string to build and parse again: the query rules are applied to
        the pairs); ``who`` the caller, when the request that makes this one
        has resolved it (see :meth:`HotRoutes.respond`).
        """
        hot = self.hot
        if hot is None or len(body) > self.max_body_bytes:
            return None
        scope[INNER_REQUEST] = True
        scope["app"] = self.hub_app
        if query:
            if inputs.pairs_nul(query) is not None:  # the ASGI way words the refusal
                return None
            query = pairs_without_empty_values(query)  # step 4
        if self._refusal(scope, body, raw_header(scope, b"content-type")) is not None:
            return None
        found = hot.match(scope)
        if found is None:
            return None
        CURRENT_SCOPE.set(scope)
        answered = await hot.respond(found, scope, body, _disconnected, tried_again=True, query=query, who=who)
        return None if answered is None else answered[0]

    def _refusal(self, scope: Scope, body: bytes, content_type: bytes | None) -> Response | None:
        """The rules that read the buffered body and the query (steps 3 and 4): the refusal, or None and the
        query's empty values dropped from ``scope``."""
        refused = inputs.refusal(scope, body, content_type, nul_ok=scope["path"] in self.nul_ok_paths)
        if refused is not None:
            return refused
        query = scope.get("query_string", b"")  # an ASGI server always sends it; a bare test caller may not
        if query:
            scope["query_string"] = query = without_empty_values(query)
            name = repeated(query)
            if name is not None:
                return envelope(422, "invalid", f"query parameter {name!r} is given more than once", field=name)
        return None

    async def _ruled(self, scope: Scope, body: bytes, content_type: bytes | None, receive: Receive,
                     send: Send) -> None:
        """The rules that read the buffered body and the query (steps 3 and 4), then the answer."""
        if len(body) > inputs.OFF_LOOP_BYTES:  # judged before authentication: a stranger's body must not stall all
            refused = await inputs.off_loop(self._refusal, scope, body, content_type)
        else:
            refused = self._refusal(scope, body, content_type)
        if refused is not None:
            await refused(scope, receive, send)
            return
        await self._answer(scope, body, receive, send)

    async def _answer(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        CURRENT_SCOPE.set(scope)  # JSON log lines name this request (coordhub.jsonlog)
        started = time.perf_counter()
        status = [500]  # what an exception before the answer started counts as: the 500 the server sends
        try:
            # A direct endpoint's path is its route's, first in the app's routes (serve_directly): no lean route
            # takes it, so it is looked up first (an /mcp request is not matched against the hot routes).
            endpoint = self.direct.get(scope["path"]) if not scope.get("root_path") else None
            if endpoint is not None:
                await self._direct(endpoint, scope, body, receive, send, status)
                return

            found = self.hot.match(scope) if self.hot is not None else None
            if found is not None:
                assert self.hot is not None
                served = await self.hot.serve(found, scope, body, receive, send)
                if served is not None:
                    status[0] = served
                    return

            out = wire.coalescing(send, scope["method"])  # a whole answer in one write

            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await out(message)

            await self.app(scope, replay(body, receive), sending)
        finally:
            if INNER_REQUEST not in scope:  # the /mcp request that made a tool's REST request is the one counted
                self.metrics.observe_answer(scope, status[0], started)

    async def _direct(self, endpoint: ASGIApp, scope: Scope, body: bytes, receive: Receive, send: Send,
                      status: list[int]) -> None:
        """Run ``endpoint`` on the request whose whole ``body`` is buffered; an error it raises before its answer
        started gets the app's answer, as FastAPI's exception layers would give it (the catch-all 500 is raised on
        to the server after it is sent).

        An endpoint that is also a :class:`Responder` is asked for its answer
        first; one it gives is sent like a hot route's (one write on uvicorn's
        connection), and the endpoint is run the ASGI way only when it gives
        none (issue 15: the ASGI messages of an ``/mcp`` answer, through the
        layers that hold and join them, cost ~5 % of an MCP call's CPU).
        """
        started = False
        out: Send | None = None  # made at the first message: an answer the endpoint responds with needs none

        async def sending(message: Message) -> None:
            nonlocal started, out
            if message["type"] == "http.response.start":
                started, status[0] = True, message["status"]
            if out is None:
                out = wire.coalescing(send, scope["method"])  # a whole answer in one write
            await out(message)

        try:
            respond = getattr(endpoint, "respond", None)  # a Responder's (isinstance of a Protocol costs µs)
            if respond is not None:
                response: Response | None = await respond(scope, body)
                if response is not None:
                    if wire.answer(send, scope["method"], response):
                        status[0] = response.status_code
                    else:
                        await response(scope, receive, sending)
                    return
            await endpoint(scope, replay(body, receive), sending)
        except Exception as exc:
            if started:
                raise
            response, unexpected = await error_answer(self.hub_app, Request(scope, receive), exc)
            await response(scope, receive, sending)
            if unexpected:
                raise


class Responder(Protocol):
    """A direct endpoint (:func:`serve_directly`) that can answer a request without ASGI messages."""

    async def respond(self, scope: Scope, body: bytes) -> Response | None:
        """The answer to the request (``body``: its whole body), not yet sent; None when the endpoint must be run
        the ASGI way instead (it is then called with the same scope, ``body`` replayed). Errors are raised as from
        the endpoint itself."""
        ...


def install(app: FastAPI, metrics: HubMetrics, hot: HotRoutes | None, **rules: Any) -> None:
    """Put a :class:`Door` in front of the middleware stack FastAPI builds for ``app`` (``rules``: its keyword
    arguments). Call it instead of adding middlewares: anything added with ``add_middleware`` runs inside."""
    build = app.build_middleware_stack
    direct: dict[str, ASGIApp] = {}
    app.state.direct_endpoints = direct

    def build_with_door() -> ASGIApp:
        return Door(build(), app, metrics, hot, direct=direct, **rules)

    app.build_middleware_stack = build_with_door  # type: ignore[method-assign]


async def _disconnected() -> Message:
    """The ``receive`` of a request the hub makes to itself, once its body is handed over: nobody is there."""
    return {"type": "http.disconnect"}


def inner_door(app: FastAPI) -> Door | None:
    """The :class:`Door` in front of ``app`` once it has served a request, for :meth:`Door.local` and
    :meth:`Door.inner`; None before
    then, when ``app`` serves under a ``root_path``, or when FastAPI's own telemetry is on (it traces each
    request at the app's entry): then the hub's own requests take the whole way in."""
    door = app.middleware_stack
    if not isinstance(door, Door) or app.root_path:
        return None
    telemetry = getattr(app, "_native_telemetry", None)  # FastAPI ≥ 0.16x; absent before
    return None if telemetry is not None and telemetry.enabled() else door


def serve_directly(app: FastAPI, path: str, endpoint: ASGIApp) -> None:
    """Have the app's :class:`Door` answer requests to exactly ``path`` with ``endpoint`` (an ASGI app), past
    FastAPI's stack; errors it raises get the app's exception handlers. An endpoint that also has a
    :class:`Responder`'s ``respond`` is asked for its answer first (see :meth:`Door._direct`). Register the same
    endpoint as a route too, first in the app's routes: requests under a root path take that route, and no other
    route takes the path before it (the Door looks ``path`` up before the hot routes).
    """
    app.state.direct_endpoints[path] = endpoint
