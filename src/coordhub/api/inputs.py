"""Hostile-input rules: refuse what no handler or store should ever see.

Checked for every request before routing (by :class:`~coordhub.api.door.Door`),
so the rule is one mechanism for REST and ``/mcp`` alike and a refused request
changes nothing:

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

Cost: a JSON body is read once by orjson, which refuses all but RFC 8259
JSON in UTF-8, and a few C-speed scans of it show that nearly every real body
passes (:func:`strictjson.plain`); the value read is handed on to the hot
route that serves the request (:func:`body_value`), which would read it anyway.
Any other body gets the byte scans of :func:`strictjson.suspect`, and only a
body those flag is parsed here, strictly, to decide (within a few times the
plain parse's cost, whatever the body). The rules run before a
request is authenticated, so a body over :data:`OFF_LOOP_BYTES` is judged on
one thread of its own (:func:`off_loop`): the event loop goes on
serving meanwhile, and such bodies queue behind each other, not in front of
everyone's requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from starlette.responses import Response
from starlette.types import Scope

from coordhub.api.errors import envelope
from coordhub.strictjson import BadJSON, NulInput, loads, plain, suspect

OFF_LOOP_BYTES = 64 * 1024  # a body judged on the loop takes at most a few ms below this
_judge: concurrent.futures.ThreadPoolExecutor | None = None
T = TypeVar("T")
BODY_VALUE = "coordhub.body_value"  # the scope's (body, its value as orjson reads it), left by refusal()


def query_nul(scope: Scope) -> str | None:
    """The name of the first path or query parameter carrying NUL, or None."""
    if "\x00" in scope.get("path", ""):
        return "path"
    raw: bytes = scope.get("query_string", b"")
    # bytes.find, not `in`: CPython's bytes `in` first tries the operand as an integer, raising and clearing a
    # TypeError each time (~2,000 instructions; issue 15)
    if raw.find(b"%00") < 0 and raw.find(b"\x00") < 0:
        return None
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "\\0")
    return None


def pairs_nul(pairs: Mapping[str, str]) -> str | None:
    """:func:`query_nul` for a query given as pairs (a request the hub makes to itself): the name of the first
    parameter carrying NUL in its name or value, or None."""
    for name, value in pairs.items():
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "\\0")
    return None


def refusal(scope: Scope, body: bytes, content_type: bytes | None, nul_ok: bool = False) -> Response | None:
    """The answer refusing a request by the module's rules (422 ``invalid`` with ``field``, 400 ``bad_request``),
    or None when it may go on.

    ``body`` is the whole buffered body; ``content_type`` its header's value
    (None: absent, read as JSON, as FastAPI does). ``nul_ok`` exempts the body
    (not the path or query) from the NUL rule: ``/mcp``.
    """
    field = query_nul(scope)
    if field is not None:
        return envelope(422, "invalid", f"{field} must not contain NUL characters", field=field)
    if not body or (content_type is not None and content_type.lower().find(b"json") < 0):
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:  # not strict JSON in UTF-8: the scans decide
        pass
    else:
        if plain(body, value):
            scope[BODY_VALUE] = body, value
            return None
    if suspect(body):
        try:
            loads(body, nul_ok=nul_ok)
        except NulInput as exc:
            return envelope(422, "invalid", str(exc), field=exc.field)
        except BadJSON as exc:
            return envelope(400, "bad_request", str(exc), problems=[{"field": "body", "problem": str(exc)}])
    return None


def body_value(scope: Scope, body: bytes) -> Any:
    """``body`` (JSON) as ``orjson.loads`` reads it: the value :func:`refusal` read, when it left it in ``scope``
    for this very body (taken: one read per request), else read now. Raises ``orjson.JSONDecodeError``."""
    read = scope.pop(BODY_VALUE, None)
    return read[1] if read is not None and read[0] is body else orjson.loads(body)


async def off_loop(judge: Callable[..., T], *args: Any) -> T:
    """``judge(*args)`` (:func:`refusal` and what goes with it) on the rules' own thread: one for the process, so
    the bodies judged there wait for each other, not the event loop. For bodies over :data:`OFF_LOOP_BYTES`."""
    global _judge
    if _judge is None:
        _judge = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="coord-input-rules")
    return await asyncio.get_running_loop().run_in_executor(_judge, judge, *args)
