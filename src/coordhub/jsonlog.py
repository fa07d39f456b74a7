"""``coord serve --log-format json``: one JSON object per log line, with the request it belongs to.

Every line carries ``time`` (RFC 3339 UTC), ``level``, ``logger``,
``message``, and ``request_id``, ``session`` and ``route`` (null outside a
request). The request is found through :data:`CURRENT_SCOPE`, which the
hub's one ASGI layer (coordhub.api.door) sets per request (one context-variable set: the
hot path pays nothing else). The route is the matched route's template
(``/api/coord/locks/{lease_id}``), the session the authenticated caller's;
the request id is the client's ``X-Request-ID`` when it is short and
printable, else one made on the first line that needs it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import uuid
from collections.abc import MutableMapping
from typing import Any

from coordhub.clock import isoformat

CURRENT_SCOPE: contextvars.ContextVar[MutableMapping[str, Any] | None] = contextvars.ContextVar("coord_scope",
                                                                                               default=None)
SESSION_KEY = "coord.session"  # scope key: the authenticated session (set by the auth dependency)
REQUEST_ID_KEY = "coord.request_id"
REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID = 64


def request_id(scope: MutableMapping[str, Any]) -> str:
    """The request's id: the client's ``X-Request-ID`` if short and printable ASCII, else a new one (kept)."""
    found = scope.get(REQUEST_ID_KEY)
    if found is None:
        given = next((v for k, v in scope.get("headers", ()) if k == REQUEST_ID_HEADER), b"")
        ok = 0 < len(given) <= MAX_REQUEST_ID and all(0x21 <= c <= 0x7E for c in given)
        found = given.decode("ascii") if ok else uuid.uuid4().hex[:16]
        scope[REQUEST_ID_KEY] = found
    return str(found)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": isoformat(record.created), "level": record.levelname, "logger": record.name,
                               "message": record.getMessage(), "request_id": None, "session": None, "route": None}
        scope = CURRENT_SCOPE.get()
        if scope is not None and scope.get("type") == "http":
            route = scope.get("route")
            out.update(request_id=request_id(scope), session=scope.get(SESSION_KEY),
                       route=getattr(route, "path", None) or scope.get("path"))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(level: str, log_format: str) -> None:
    """Set up the root logger: ``text`` (the classic line) or ``json`` (:class:`JsonFormatter`)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
