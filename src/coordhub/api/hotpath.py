"""The hot routes without FastAPI's per-request resolver (issue 15, "a lean hot path").

Most requests a fleet makes are a handful of routes: sends and inbox reads,
lease claims, releases and renewals, the edit hook's conflict check, and the
lease list (seed 001's conflict check, the MCP ``list_leases`` tool). For
each of them FastAPI walks a dependency graph per request, which profiling put
at ~15 % of the hub's CPU per send (docs/benchmarks.md). :class:`HotRoutes`
serves these routes itself: it matches the method and path, validates the path
and query parameters and the JSON body with pydantic adapters built once from
the route's own FastAPI declaration, resolves the caller with the same
:func:`~coordhub.api.auth.caller` dependency, and calls the route's own
endpoint function. So there is one definition of each route — its parameters,
their bounds, the body model and what it does — and the OpenAPI document is
unchanged.

Anything the fast path is not sure about goes to FastAPI unchanged (the buffered
body replayed): a body that is not ``application/json``, JSON or a parameter
that does not validate, a path under a ``root_path``. So every error answer
(422 with its ``problems``, 400, 415) is FastAPI's own, and the fast path only
ever answers requests FastAPI would have accepted, with the endpoint's answer.
A :class:`~coordhub.errors.CoordError` the endpoint raises becomes the error
envelope through the app's own exception handlers (:mod:`coordhub.api.errors`).

:class:`~coordhub.api.door.Door` calls it after the host, body, input and
query rules, so those apply to hot routes as to every other route; it sets the
scope's ``route`` and ``endpoint`` as the router would, for metrics and log
lines.
"""

from __future__ import annotations

import re
import types
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

import orjson
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticUndefined
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from coordhub.api.auth import caller
from coordhub.api.limits import replay

# The routes served here: (method, path template). Each must be an APIRoute whose only dependency is
# `caller`, with a `request` parameter and at most one body parameter (checked when the app is built).
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
    body: tuple[str, TypeAdapter[Any]] | None
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
        if field.field_info.default is not PydanticUndefined:
            raise NotLean(f"{route.path}: an optional body is not served here")
        if field.field_info.annotation is None:
            raise NotLean(f"{route.path}: the body has no declared type")
        body = (field.name, TypeAdapter(field.field_info.annotation))
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

    ``plans`` is called once, at the first request (the app's routes exist by then); ``counts`` is updated.
    """

    def __init__(self, plans: Callable[[], list[_Plan]], counts: Counts | None = None) -> None:
        self._make = plans
        self.counts = counts or Counts()
        self._exact: dict[tuple[str, str], _Plan] | None = None
        self._templated: list[tuple[str, re.Pattern[str], _Plan]] = []

    def _load(self) -> dict[tuple[str, str], _Plan]:
        exact = {}
        for p in self._make():
            if p.path:
                self._templated.append((p.method, p.route.path_regex, p))
            else:
                exact[(p.method, p.route.path)] = p
        self._exact = exact
        return exact

    def match(self, scope: Scope) -> tuple[_Plan, dict[str, str]] | None:
        """The plan of an HTTP request's route and its raw path parameters; None when it is not a hot route
        (or is under a ``root_path``, which FastAPI strips and the plans do not)."""
        if scope.get("root_path"):
            return None
        exact = self._exact if self._exact is not None else self._load()
        method, path = scope["method"], scope["path"]
        hit = exact.get((method, path))
        if hit is not None:
            return hit, {}
        for want, regex, p in self._templated:
            if want == method and (m := regex.match(path)) is not None:
                return p, m.groupdict()
        return None

    async def serve(self, found: tuple[_Plan, dict[str, str]], scope: Scope, body: bytes, receive: Receive,
                    send: Send) -> int | None:
        """Answer a request :meth:`match` found with its route's endpoint; the status sent, or None (nothing
        sent) when FastAPI should take the request instead.

        ``body`` is the whole request body, buffered. An exception the app has
        no handler for gets the app's catch-all answer (500), as Starlette's
        server-error layer gives it, and is raised on to the server.
        """
        p, raw_path = found
        request = Request(scope, replay(body, receive))
        kwargs = self._arguments(p, request, raw_path, body)
        if kwargs is None:  # FastAPI decides (and words the error)
            self.counts.passed_on += 1
            return None
        self.counts.served += 1
        scope["route"], scope["endpoint"], scope["path_params"] = p.route, p.route.endpoint, raw_path
        try:
            kwargs[p.caller_name] = await caller(request, None)
            response: Response = await p.route.endpoint(**kwargs)
        except Exception as exc:
            response, unexpected = await error_answer(scope["app"], request, exc)
            if unexpected:
                await response(scope, receive, send)
                raise
        await response(scope, receive, send)
        return response.status_code

    @staticmethod
    def _arguments(p: _Plan, request: Request, raw_path: dict[str, str], body: bytes) -> dict[str, Any] | None:
        """The endpoint's arguments, or None when FastAPI should take the request instead."""
        kwargs: dict[str, Any] = {p.request_name: request}
        try:
            for param in p.path:
                kwargs[param.name] = param.adapter.validate_python(raw_path[param.alias])
            if p.query:
                query = request.query_params
                for param in p.query:
                    value = query.get(param.alias, _MISSING)
                    if value is _MISSING:
                        if param.default is _MISSING:
                            return None
                        kwargs[param.name] = param.default
                    else:
                        kwargs[param.name] = param.adapter.validate_python(value)
            if p.body is not None:
                content_type = next((v for k, v in request.scope["headers"] if k == b"content-type"), None)
                if not body or content_type is None or not _is_json(content_type):
                    return None
                kwargs[p.body[0]] = p.body[1].validate_python(orjson.loads(body))
        except (ValidationError, orjson.JSONDecodeError):
            return None
        return kwargs


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
