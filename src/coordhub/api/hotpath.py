"""Routes served without FastAPI's per-request resolver (issue 15, "a lean hot path").

For every request FastAPI walks its router and a dependency graph, which
profiling put at ~15 % of the hub's CPU per send and ~85 % of a lease list
(docs/benchmarks.md). :class:`HotRoutes` serves every route whose declaration
it can resolve exactly as FastAPI does (a *lean* route, :func:`plan`): a
``request``, the :func:`~coordhub.api.auth.caller` dependency, single-valued
path and query parameters and at most one JSON body (required, or optional
with the default None: an empty body is then None, as FastAPI reads it), on an ``async``
endpoint that returns a ``Response``. It matches the method and path against
the app's routes in the app's own order (:class:`_Table`), validates the
parameters and the body with pydantic adapters built once from the route's
own declaration, resolves the caller with the same dependency, and calls the
route's own endpoint function. So there is one definition of each route — its
parameters, their bounds, the body model and what it does — and the OpenAPI
document is unchanged. The hottest routes (:data:`HOT`: sends and inbox reads,
lease claims, releases and renewals, the edit hook's conflict check, the
lease list) must stay lean: the app refuses to start otherwise.

Anything the fast path is not sure about goes to FastAPI unchanged (the buffered
body replayed): a route that is not lean, a body that is not
``application/json``, JSON or a parameter that does not validate, a body
with an integer orjson would read as a float, a path under a ``root_path``
or ending in a newline. So every error answer (422 with its ``problems``, 400,
415, 404, 405) is FastAPI's own, and the fast path only ever answers requests
FastAPI would have accepted, with the endpoint's answer. A
:class:`~coordhub.errors.CoordError` the endpoint raises becomes the error
envelope through the app's own exception handlers (:mod:`coordhub.api.errors`).

:class:`~coordhub.api.door.Door` calls it after the host, body, input and
query rules, so those apply to these routes as to every other route; it sets
the scope's ``route``, ``endpoint`` and ``path_params`` as the router would,
for metrics and log lines. On uvicorn's connection an answer goes out in one
write (:func:`coordhub.api.wire.answer`), not as the two its ASGI messages make.
"""

from __future__ import annotations

import inspect
import re
import types
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticUndefined
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from coordhub.api import wire
from coordhub.api.auth import Caller, caller
from coordhub.api.headers import raw_header
from coordhub.api.inputs import body_value
from coordhub.api.limits import replay
from coordhub.jsonlog import SESSION_KEY

# The hottest routes: (method, path template). Each must be lean (see `plan`; checked when the app is built).
HOT = (
    ("POST", "/api/coord/messages"),
    ("GET", "/api/coord/messages"),
    ("POST", "/api/coord/locks"),
    ("DELETE", "/api/coord/locks/{lease_id}"),
    ("POST", "/api/coord/locks/{lease_id}/renew"),
    ("GET", "/api/coord/locks/conflicts"),
    ("GET", "/api/coord/locks"),
)
_MISSING = object()
# orjson reads an integer outside [-2**63, 2**64) as a float, FastAPI's json.loads exactly: a body with 19 or more
# digits in a row (maybe such a number) is FastAPI's to read. Found as a run of 19 zeros once every digit is a zero:
# two C passes, ~3.5k instructions on a 100-byte body where the regular expression `\d{19}` took ~17k (it restarts
# its match at every byte; issue 15).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19


def _long_number(body: bytes) -> bool:
    """Whether ``body`` has 19 or more ASCII digits in a row."""
    return body.translate(_DIGITS_AS_ZERO).find(_LONG_RUN) >= 0


@dataclass(frozen=True)
class _Param:
    """One path or query parameter: its name in the endpoint, in the request, and how FastAPI validates it."""

    name: str
    alias: str
    adapter: TypeAdapter[Any]
    default: Any  # _MISSING when the parameter is required


@dataclass(frozen=True)
class _Plan:
    """How to call one hot route's endpoint from a request."""

    method: str
    route: APIRoute
    query: tuple[_Param, ...]
    path: tuple[_Param, ...]
    body: tuple[str, TypeAdapter[Any], bool] | None  # name, validation, optional (an empty body is None)
    request_name: str
    caller_name: str


class NotLean(ValueError):
    """A route listed as hot declares something the fast path cannot resolve exactly as FastAPI does."""


_SCALARS = (str, int, float, bool, uuid.UUID, type(None))


def _scalar(annotation: Any) -> bool:
    """Whether a parameter's type is one value (``str``, ``int``, ``float``, ``bool``, ``UUID``, optional or
    constrained): a list parameter takes every repetition of its name, which ``query.get`` would not."""
    if annotation in _SCALARS:
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return all(_scalar(a) for a in get_args(annotation))
    return False


def _param(field: Any) -> _Param:
    info = field.field_info
    if not _scalar(info.annotation):
        raise NotLean(f"parameter {field.name!r}: only single values are served here, not {info.annotation!r}")
    # The same validation FastAPI applies to the parameter: its annotation and its constraints (Ge, Le, ...).
    form: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(form)
    default = _MISSING if info.default is PydanticUndefined else info.default
    return _Param(field.name, field.alias, adapter, default)


def plan(method: str, route: APIRoute) -> _Plan:
    """The fast path's plan for ``method`` on ``route``; ``NotLean`` when its declaration has anything else than a
    ``request``, the ``caller`` dependency, path and query parameters, and one JSON body model."""
    if not inspect.iscoroutinefunction(route.endpoint):
        raise NotLean(f"{route.path}: only an async endpoint is called here (FastAPI runs others in a thread)")
    try:
        returns = get_type_hints(route.endpoint).get("return")
    except Exception as exc:  # an annotation that does not resolve: FastAPI's to serve
        raise NotLean(f"{route.path}: the endpoint's annotations do not resolve ({exc})") from None
    if not (isinstance(returns, type) and issubclass(returns, Response)):
        raise NotLean(f"{route.path}: the endpoint must return a Response (FastAPI serializes anything else)")
    dep = route.dependant
    callers = [d for d in dep.dependencies if d.call is caller]
    if len(dep.dependencies) != 1 or len(callers) != 1 or callers[0].name is None:
        raise NotLean(f"{route.path}: the fast path resolves exactly one dependency, `caller`")
    if dep.request_param_name is None:
        raise NotLean(f"{route.path}: the endpoint must take the request")
    if (dep.header_params or dep.cookie_params or len(dep.body_params) > 1 or dep.background_tasks_param_name
            or dep.response_param_name or dep.websocket_param_name or dep.security_scopes_param_name):
        raise NotLean(f"{route.path}: headers, cookies, several bodies or special parameters are not served here")
    body = None
    if dep.body_params:
        field = dep.body_params[0]
        default = field.field_info.default
        if default is not PydanticUndefined and default is not None:
            raise NotLean(f"{route.path}: a body whose default is not None is not served here")
        if field.field_info.annotation is None:
            raise NotLean(f"{route.path}: the body has no declared type")
        body = (field.name, TypeAdapter(field.field_info.annotation), default is None)
    return _Plan(method, route, tuple(_param(f) for f in dep.query_params), tuple(_param(f) for f in dep.path_params),
                 body, dep.request_param_name, callers[0].name)


def _api_routes(routes: Sequence[Any]) -> Iterator[APIRoute]:
    """The API routes of a route list, through routers included without a prefix or dependencies of their own
    (an inclusion adding either would change what the route's own declaration says, so it is not looked into)."""
    for r in routes:
        if isinstance(r, APIRoute):
            yield r
        inner, context = getattr(r, "original_router", None), getattr(r, "include_context", None)
        if inner is not None and context is not None and not context.prefix and not context.dependencies:
            yield from _api_routes(inner.routes)


def plans(app: FastAPI, hot: Sequence[tuple[str, str]] = HOT) -> list[_Plan]:
    """The plans of the ``hot`` routes of ``app``, in order; ``NotLean`` when one is missing or unsuitable."""
    found = []
    for method, path in hot:
        route = next((r for r in _api_routes(app.router.routes) if r.path == path and method in (r.methods or ())),
                     None)
        if route is None:
            raise NotLean(f"no route {method} {path} to serve")
        found.append(plan(method, route))
    return found


_KEY_SEGMENTS = 4  # a path's bucket: its first three segments ("/api/coord/locks")


def _key(path: str) -> str:
    return "/".join(path.split("/", _KEY_SEGMENTS)[:_KEY_SEGMENTS])


@dataclass(frozen=True)
class _Entry:
    """One route of the app, for one method, as :class:`_Table` matches it.

    ``methods`` None: any method (a mount, an ASGI endpoint). ``exact``: the
    path of a route without parameters; else ``regex`` matches its paths;
    neither: it may match any path (a router included with a prefix or
    dependencies, which is not looked into). ``key``: the bucket of every
    path it can match (:func:`_key`), None when it is not bounded to one.
    ``plan`` None: FastAPI answers the requests it takes.
    """

    methods: frozenset[str] | None
    exact: str | None
    regex: re.Pattern[str] | None
    key: str | None
    plan: _Plan | None

    def matches(self, method: str, path: str) -> re.Match[str] | bool | None:
        """Whether this route takes ``method`` on ``path`` (its path-parameter match, if it has parameters)."""
        if self.methods is not None and method not in self.methods:
            return None
        if self.exact is not None:
            return path == self.exact
        if self.regex is not None:
            return self.regex.match(path)
        return True


def _entries(routes: Sequence[Any]) -> Iterator[_Entry]:
    """The routes of a route list in the order the router tries them, as :class:`_Entry` s.

    Starlette takes the first route that matches both path and method (a
    path-only match is kept for a 405 only if none does), so a request is the
    fast path's only when the first route that takes it is lean.
    """
    for r in routes:
        if isinstance(r, APIRoute):
            exact = None if r.param_convertors else r.path
            for method in sorted(r.methods or ()):
                try:
                    lean: _Plan | None = plan(method, r)
                except NotLean:
                    lean = None
                regex = None if exact else r.path_regex
                yield _Entry(frozenset((method,)), exact, regex, _bounded(r.path_format), lean)
            continue
        inner, context = getattr(r, "original_router", None), getattr(r, "include_context", None)
        if inner is not None and context is not None:
            if not context.prefix and not context.dependencies:
                yield from _entries(inner.routes)
            else:
                yield _Entry(None, None, None, None, None)
        elif isinstance(r, WebSocketRoute):
            continue  # never an HTTP request's
        elif isinstance(r, Route | Mount) and r.path_regex is not None:
            methods = frozenset(r.methods) if isinstance(r, Route) and r.methods else None
            exact = r.path if isinstance(r, Route) and not r.param_convertors else None
            yield _Entry(methods, exact, None if exact else r.path_regex, _bounded(r.path_format), None)
        else:
            yield _Entry(None, None, None, None, None)


def _bounded(template: str) -> str | None:
    """The bucket of every path ``template`` matches; None when its parameters begin before the bucket ends."""
    literal = template.split("{", 1)[0]
    if "{" not in template:
        return _key(template)
    return _key(literal) if literal.count("/") >= _KEY_SEGMENTS else None


class _Table:
    """Which route takes a request, as the app's router would choose it, in a dictionary lookup or a few matches.

    Built once from the app's routes (the first request: every route exists by
    then). ``exact``: (method, path) → plan for the lean routes without
    parameters that are the first to take their path; ``buckets``: (method,
    bucket) → the entries, in the app's order, that can take a path of that
    bucket (those bounded to it and every unbounded one); ``anywhere``: the
    unbounded ones alone, for paths of a bucket no route names; ``planned``:
    how many (method, route) pairs are lean.
    """

    def __init__(self, routes: Sequence[Any]) -> None:
        entries = list(_entries(routes))
        self.planned = sum(1 for e in entries if e.plan is not None)
        methods = {m for e in entries if e.methods for m in e.methods}
        keys = {e.key for e in entries if e.key is not None}
        self.buckets = {(m, k): [e for e in entries if (e.key is None or e.key == k)
                                 and (e.methods is None or m in e.methods)] for m in methods for k in keys}
        self.anywhere = {m: [e for e in entries if e.key is None and (e.methods is None or m in e.methods)]
                         for m in methods}
        self.exact: dict[tuple[str, str], _Plan] = {}
        for e in entries:
            if e.plan is not None and e.exact is not None:
                found = self.find(e.plan.method, e.exact)
                if found is not None and found[0] is e.plan:
                    self.exact[(e.plan.method, e.exact)] = e.plan

    def find(self, method: str, path: str) -> tuple[_Plan, dict[str, str]] | None:
        """The plan of the route that takes ``method`` on ``path`` and its raw path parameters; None when that
        route is not lean, or no route takes it (FastAPI answers both)."""
        bucket = self.buckets.get((method, _key(path)))
        for e in bucket if bucket is not None else self.anywhere.get(method, ()):
            hit = e.matches(method, path)
            if hit:
                if e.plan is None:
                    return None
                return e.plan, hit.groupdict() if isinstance(hit, re.Match) else {}
        return None


def _is_json(content_type: bytes) -> bool:
    return content_type.partition(b";")[0].strip().lower() == b"application/json"


@dataclass
class Counts:
    """What :class:`HotRoutes` did so far: requests it ``served``, and hot-route requests it ``passed_on`` to
    FastAPI because a parameter or the body did not validate there (those get FastAPI's error answer)."""

    served: int = 0
    passed_on: int = 0


class HotRoutes:
    """Serves the planned routes (see the module docstring) for :class:`~coordhub.api.door.Door`.

    ``plans`` is called once, by :meth:`load` or else at the first request (the app's routes exist by then);
    ``counts`` is updated.
    """

    def __init__(self, routes: Callable[[], Sequence[Any]], counts: Counts | None = None) -> None:
        self._routes = routes
        self.counts = counts or Counts()
        self._table: _Table | None = None

    def match(self, scope: Scope) -> tuple[_Plan, dict[str, str]] | None:
        """The plan of an HTTP request's route and its raw path parameters; None when FastAPI should take it: its
        route is not lean, no route takes it, or it is under a ``root_path`` (which FastAPI strips and the
        plans do not), or it ends in a newline (which the router's patterns match as if it were not there)."""
        method, path = scope["method"], scope["path"]
        if scope.get("root_path") or path.endswith("\n"):  # the router's `$` also matches before a final newline
            return None
        table = self._table if self._table is not None else self.load()
        hit = table.exact.get((method, path))
        if hit is not None:
            return hit, {}
        return table.find(method, path)

    def load(self) -> _Table:
        """Plan the hot routes now (once their app has its routes): the plans' adapters are start-up's objects."""
        self._table = _Table(self._routes())
        return self._table

    async def serve(self, found: tuple[_Plan, dict[str, str]], scope: Scope, body: bytes, receive: Receive,
                    send: Send) -> int | None:
        """Answer a request :meth:`match` found with its route's endpoint; the status sent, or None (nothing
        sent) when FastAPI should take the request instead.

        ``body`` is the whole request body, buffered. An exception the app has
        no handler for gets the app's catch-all answer (500), as Starlette's
        server-error layer gives it, and is raised on to the server.
        """
        answered = await self.respond(found, scope, body, receive)
        if answered is None:
            return None
        response, unexpected = answered
        if not wire.answer(send, scope["method"], response):  # one write on uvicorn's connection, else two messages
            await response(scope, receive, send)
        if unexpected is not None:
            raise unexpected
        return response.status_code

    async def respond(self, found: tuple[_Plan, dict[str, str]], scope: Scope, body: bytes, receive: Receive, *,
                      tried_again: bool = False, query: Mapping[str, str] | None = None,
                      who: Caller | None = None) -> tuple[Response, Exception | None] | None:
        """The endpoint's answer to a request :meth:`match` found, not yet sent, and the exception the app has no
        handler for when the answer is the catch-all 500 (else None); None (the endpoint not called) when FastAPI
        should take the request instead. ``body`` is the whole request body, buffered. ``tried_again``: the
        caller hands a request this declines to :meth:`serve` next, which counts it (so it is not counted here).

        A request the hub makes to itself may come with its query already
        parsed (``query``: the pairs its query string would hold, empty values
        dropped; the scope's own is then ignored) and its caller already
        resolved (``who``, by the request that makes it), instead of the
        ``caller`` dependency resolving it again from the headers.
        """
        p, raw_path = found
        convertors = p.route.param_convertors
        path_params = {k: convertors[k].convert(v) for k, v in raw_path.items()} if raw_path else raw_path
        request = Request(scope, replay(body, receive))
        kwargs = self._arguments(p, request, path_params, body, query)
        if kwargs is None:  # FastAPI decides (and words the error)
            if not tried_again:
                self.counts.passed_on += 1
            return None
        self.counts.served += 1
        scope["route"], scope["endpoint"], scope["path_params"] = p.route, p.route.endpoint, path_params
        try:
            if who is None:
                who = await caller(request, None)
            else:
                scope[SESSION_KEY] = who.logged_session
            kwargs[p.caller_name] = who
            response: Response = await p.route.endpoint(**kwargs)
        except Exception as exc:
            response, unexpected = await error_answer(scope["app"], request, exc)
            return response, (exc if unexpected else None)
        return response, None

    @staticmethod
    def _arguments(p: _Plan, request: Request, path_params: dict[str, Any], body: bytes,
                   parsed: Mapping[str, str] | None) -> dict[str, Any] | None:
        """The endpoint's arguments, or None when FastAPI should take the request instead; ``parsed``: the query,
        already parsed (see :meth:`respond`)."""
        kwargs: dict[str, Any] = {p.request_name: request}
        try:
            for param in p.path:
                kwargs[param.name] = param.adapter.validate_python(path_params[param.alias])
            if p.query:
                # No query string, no parameters: skip parsing one (most requests, the /mcp tools' among them).
                # Else a plain dict of the pairs, the last of a repeated name winning, as Starlette's QueryParams
                # reads them for FastAPI: no QueryParams to build, no KeyError raised per absent parameter
                # (GET /api/coord/locks?session_id=…: 4.7 µs of 36 less).
                raw = request.scope.get("query_string")
                query = parsed if parsed is not None else \
                    dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)) if raw else _NO_QUERY
                for param in p.query:
                    value = query.get(param.alias, _MISSING)
                    if value is _MISSING:
                        if param.default is _MISSING:
                            return None
                        kwargs[param.name] = param.default
                    else:
                        kwargs[param.name] = param.adapter.validate_python(value)
            if p.body is not None:
                name, adapter, optional = p.body
                content_type = raw_header(request.scope, b"content-type")
                if not body and optional:  # FastAPI reads no body as none, whatever the Content-Type says
                    kwargs[name] = None
                elif not body or content_type is None or not _is_json(content_type) or _long_number(body):
                    return None
                else:
                    # the value the door's input rules read (orjson, as here), not a second parse
                    kwargs[name] = adapter.validate_python(body_value(request.scope, body))
        except (ValidationError, orjson.JSONDecodeError):
            return None
        return kwargs


_NO_QUERY: Mapping[str, str] = types.MappingProxyType({})


async def error_answer(app: Any, request: Request, exc: Exception) -> tuple[Response, bool]:
    """``app``'s answer to ``exc``, raised while serving ``request`` outside FastAPI's stack, and whether it is
    the catch-all 500.

    The handler is found by the exception's class hierarchy, as Starlette's
    exception layer looks it up; an exception with none but the catch-all gets
    that 500 (which logs it) and must then be raised on to the server, as
    Starlette's server-error layer does.
    """
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            break
        if cls in handlers:
            return await handlers[cls](request, exc), False
    return await handlers[Exception](request, exc), True
