"""The one JSON error envelope, and the handlers that produce it.

Every error response, whatever raised it, has this shape::

    {"error": {"code": "lease_conflict", "message": "…", …details},
     "detail": "…same message…"}

``detail`` repeats the message for clients written against seed 001 (whose
503 body was ``{"detail": …, "retry_after": 30}``; 503 responses also carry
``retry_after`` and the ``Retry-After`` header).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from coordhub import strictjson
from coordhub.api.answers import JSONResponse
from coordhub.errors import CoordError, RateLimited, Unavailable, WriterLost, describe_problem

log = logging.getLogger("coordhub.api")
MAX_PROBLEMS = 100  # problems one 422 names (errors past them are counted in its message)

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
               415: "unsupported_media_type", 422: "invalid", 423: "halted", 429: "rate_limited",
               503: "database_unavailable"}


class ErrorBody(BaseModel):
    """The ``error`` member of the envelope; extra members carry details."""

    model_config = ConfigDict(extra="allow")
    code: str
    message: str


class ErrorEnvelope(BaseModel):
    """Every non-2xx response body."""

    model_config = ConfigDict(extra="allow")
    error: ErrorBody
    detail: str


_DESCRIPTIONS = {
    400: "Malformed request: invalid JSON, non-UTF-8 body, bad header.",
    401: "Missing, unknown or revoked bearer token.",
    403: "Not allowed: the request names another session, or needs the holder or an admin.",
    404: "No such object.",
    409: "Conflict with current state (lease held by another session, stale fence).",
    413: "Request body larger than the limit (1 MiB by default).",
    415: "The body was not sent as JSON: send it with 'Content-Type: application/json'.",
    422: "Invalid values: unknown or missing fields, wrong types, bad ids, reused Idempotency-Key.",
    423: "The fleet is halted; the body says who halted it, why and when.",
    429: "Too many requests from this token; retry after the Retry-After seconds.",
    503: "The database is unavailable; retry after the Retry-After seconds.",
}


ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error status codes: each one's body is an
    :class:`ErrorEnvelope`, by reference (:func:`envelope_components` puts it in the document).

    Not FastAPI's ``"model"`` key: with it FastAPI builds a validator for every route and code (1,099 of them),
    a quarter of the CPU a hub spends starting, for a body it never validates.
    """
    return {c: {"description": _DESCRIPTIONS[c], "content": {"application/json": {"schema": dict(ENVELOPE_REF)}}}
            for c in codes}


def envelope_components() -> dict[str, Any]:
    """The OpenAPI ``components.schemas`` entries of :class:`ErrorEnvelope` and the models it holds, as FastAPI
    names and renders a response model (``mode="serialization"``)."""
    schema = ErrorEnvelope.model_json_schema(mode="serialization", ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs", {}), "ErrorEnvelope": schema}


def envelope(status: int, code: str, message: str, headers: dict[str, str] | None = None,
             **details: Any) -> JSONResponse:
    """Build an error response in the one envelope."""
    content: dict[str, Any] = {"error": {"code": code, "message": message, **details}, "detail": message}
    if "retry_after" in details:
        content["retry_after"] = details["retry_after"]
    return JSONResponse(content, status_code=status, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def _undecodable(raw: bytes) -> str | None:
    """Why a request body cannot be read as JSON this hub accepts, or None if it can (never raises)."""
    try:
        strictjson.loads(raw)
    except ValueError as exc:  # BadJSON and NulInput both say why
        return str(exc)
    return None


def _validation_message(exc: RequestValidationError, raw: bytes) -> tuple[int, str, list[dict[str, Any]]]:
    """``(status, message, problems)`` of a request that did not validate: at most :data:`MAX_PROBLEMS` problems
    (the message then says how many more), so no request makes the answer larger than the problems it names."""
    problems = []
    status = 422
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        why = _undecodable(raw) or "body is not valid JSON"
        return 400, why, [{"field": "body", "problem": why}]
    for err in errors[:MAX_PROBLEMS]:
        kind = err.get("type", "")
        text = describe_problem(kind, _location(err.get("loc", ())), err.get("msg", "invalid"), err.get("input"))
        problems.append({"field": _location(err.get("loc", ())), "problem": text})
    message = "; ".join(p["problem"] for p in problems) or "invalid request"
    if len(errors) > MAX_PROBLEMS:
        message += f"; and {len(errors) - MAX_PROBLEMS} more problems"
    return status, message, problems


def is_json_type(content_type: str) -> bool:
    """Whether a ``Content-Type`` value is JSON (``application/json``, ``application/*+json``, any parameters)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


# Where FastAPI serves its stock pages, and where seed 001's API served its own (/api/docs): none is served here
# (their scripts come from a CDN, docs/api.md), and a bare 404 there left a newcomer without the document.
DOC_PAGES = frozenset({"/docs", "/redoc", "/api/docs", "/api/redoc", "/api/openapi.json"})


def no_route(method: str, path: str) -> str:
    """The 404 message for a path no endpoint serves; names an empty id segment (seed 001's ``/locks/``), and
    points a docs page's path at ``/openapi.json``."""
    if path.endswith("/") or "//" in path:
        return (f"no endpoint for {method} {path}: a path segment is empty (an id missing between the "
                "slashes or before the trailing '/'?)")
    if path in DOC_PAGES:
        return (f"no endpoint for {method} {path}: the hub serves no docs page; its OpenAPI document is "
                "/openapi.json (load it into any OpenAPI viewer)")
    return f"no endpoint for {method} {path}"


def wrong_method(method: str, path: str, allowed: str) -> str:
    """The 405 message: which methods ``path`` takes (Starlette's ``Allow`` header), not just 'Method Not
    Allowed' (seed 001's users list work items with ``GET /work-items``, which only takes POST here)."""
    return f"{method} is not served at {path}: it takes {allowed or 'another method'}"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into the envelope, and put the envelope's schema in the app's
    OpenAPI document (:func:`responses` refers to it)."""
    build_document = app.openapi

    def document() -> dict[str, Any]:
        built = app.openapi_schema
        if built is None:  # FastAPI's document, which it keeps for the next call, made once
            built = build_document()
            built.setdefault("components", {}).setdefault("schemas", {}).update(envelope_components())
        return built

    app.openapi = document  # type: ignore[method-assign]

    @app.exception_handler(CoordError)
    async def coord_error(request: Request, exc: CoordError) -> JSONResponse:
        if isinstance(exc, WriterLost):  # the database is not known to be down: its own message, its own wait
            return envelope(503, exc.code, exc.message, {"Retry-After": str(exc.retry_after)},
                            retry_after=exc.retry_after)
        if isinstance(exc, Unavailable):
            request.app.state.db_probe.saw_unavailable()
            wait = request.app.state.retry_after
            message = f"Database unavailable. Retry after {wait} seconds."
            return envelope(503, exc.code, message, {"Retry-After": str(wait)}, retry_after=wait)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(exc.retry_after)}
        return envelope(exc.status, exc.code, exc.message, headers, **exc.details)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        raw = await request.body()
        content_type = request.headers.get("content-type")
        if raw and content_type is not None and not is_json_type(content_type):
            # FastAPI did not read the body as JSON, so every field looks missing: say what to send instead
            message = (f"send the request body as JSON with 'Content-Type: application/json' "
                       f"(this one was sent as {content_type!r})")
            return envelope(415, "unsupported_media_type", message, field="body")
        status, message, problems = _validation_message(exc, raw)
        return envelope(status, _HTTP_CODES[status], message, problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":  # no route matched (slashes are never redirected)
            message = no_route(request.method, request.url.path)
        if exc.status_code == 405 and message == "Method Not Allowed":
            allowed = next((v for k, v in (exc.headers or {}).items() if k.lower() == "allow"), "")
            message = wrong_method(request.method, request.url.path, allowed)
        if exc.status_code == 400:  # Starlette could not parse the body; say why
            message = _undecodable(await request.body()) or message
        return envelope(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return envelope(500, "internal", "internal error in the hub; it has been logged")
