"""Hostile-input guard (ASGI middleware): refuse what no handler or store should ever see.

Checked for every request before routing, so the rule is one mechanism for
REST and ``/mcp`` alike and a refused request changes nothing:

* **NUL** (U+0000) in the path, in any query parameter name or value, or in
  any string (key or value) of a JSON body answers 422 with ``field``.
  PostgreSQL cannot store NUL in text, so both backends refuse it the same
  way, here, before any SQL runs. Bodies sent to the paths in
  ``nul_ok_paths`` (``/mcp``) are exempt from the body rule: a JSON-RPC
  client expects a tool error there, and gets one, because each tool's REST
  request passes this guard in turn.
* **JSON that is not interoperable JSON** answers 400 (see
  :mod:`coordhub.strictjson`: NaN/Infinity, lone surrogates, nesting over
  ``MAX_DEPTH``, integers over ``MAX_INT_DIGITS`` digits).

Cost: ordinary bodies pass a few C-speed byte scans (:func:`strictjson.suspect`);
only a body those scans flag is parsed here, strictly, to decide.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordhub.api.errors import envelope
from coordhub.strictjson import BadJSON, NulInput, loads, suspect


def query_nul(scope: Scope) -> str | None:
    """The name of the first path or query parameter carrying NUL, or None."""
    if "\x00" in scope.get("path", ""):
        return "path"
    raw: bytes = scope.get("query_string", b"")
    if b"%00" not in raw and b"\x00" not in raw:
        return None
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "\\0")
    return None


class InputGuard:
    """ASGI middleware applying the module's rules; sits inside :class:`~coordhub.api.limits.BodyLimit`.

    A refused request gets the one error envelope (400 ``bad_request`` or 422
    ``invalid`` with ``field``) and never reaches a handler.
    """

    def __init__(self, app: ASGIApp, nul_ok_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.nul_ok_paths = nul_ok_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        field = query_nul(scope)
        if field is not None:
            await envelope(422, "invalid", f"{field} must not contain NUL characters", field=field)(
                scope, receive, send)
            return
        message = await receive()
        body = message.get("body", b"") if message["type"] == "http.request" else b""
        if body and _is_json(scope) and suspect(body):
            try:
                loads(body, nul_ok=scope.get("path", "") in self.nul_ok_paths)
            except NulInput as exc:
                await envelope(422, "invalid", str(exc), field=exc.field)(scope, receive, send)
                return
            except BadJSON as exc:
                await envelope(400, "bad_request", str(exc), problems=[{"field": "body", "problem": str(exc)}])(
                    scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return message
            return await receive()

        await self.app(scope, replay, send)


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value.lower()
    return True  # FastAPI parses a body without a content type as JSON too
