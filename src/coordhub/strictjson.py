"""Strict JSON for request bodies: the rules, shared by the input guard and the error handlers.

Python's ``json`` module accepts more than JSON: ``NaN`` and ``Infinity``
(not JSON, RFC 8259 §6), strings with lone surrogates (not Unicode text, RFC
8259 §8.2, and impossible to encode back to UTF-8 in an answer), nesting
until the interpreter's recursion limit, and integers it then refuses to
convert past 4,300 digits with a bare ``ValueError``. :func:`loads` refuses all
of these, and NUL (U+0000) in any string, with one exception type each.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32  # nesting of arrays/objects in a JSON body; the API's own bodies need 3
MAX_INT_DIGITS = 4300  # Python's own limit on converting a decimal string to an int

_ESCAPES = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")  # a surrogate or NUL escape
_SURROGATE = re.compile("[\ud800-\udfff]")


class BadJSON(ValueError):
    """The body is not JSON this hub accepts; ``str(exc)`` says why, for a client."""


class NulInput(ValueError):
    """A NUL character in a parameter; ``field`` names where."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} must not contain NUL characters")
        self.field = field


def _constant(name: str) -> Any:
    raise BadJSON(f"body is not valid JSON ({name} is not a JSON number)")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadJSON(f"body is not valid JSON (an integer longer than {MAX_INT_DIGITS} digits)")
    return int(text)


def loads(raw: bytes | str, *, nul_ok: bool = False) -> Any:
    """Parse a request body strictly; raise :class:`BadJSON` (why) or :class:`NulInput` (where).

    Refuses non-UTF-8 bytes, syntax errors, NaN/Infinity, integers over
    :data:`MAX_INT_DIGITS` digits, nesting over :data:`MAX_DEPTH`, lone
    surrogates and (unless ``nul_ok``) NUL in any string. Never raises
    anything else.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise BadJSON("body is not UTF-8 text") from None
    try:
        value = json.loads(text, parse_constant=_constant, parse_int=_integer)
    except json.JSONDecodeError as exc:
        raise BadJSON(f"body is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise BadJSON(f"body is not valid JSON (nested deeper than {MAX_DEPTH})") from None
    except ValueError as exc:  # BadJSON from the hooks, or any other conversion the parser refused
        raise exc if isinstance(exc, BadJSON) else BadJSON(f"body is not valid JSON ({exc})") from None
    check(value, nul_ok=nul_ok)
    return value


def check(value: Any, where: str = "body", *, nul_ok: bool = False) -> None:
    """Refuse a parsed JSON value nested over :data:`MAX_DEPTH`, with non-finite floats, lone surrogates or NUL.

    Iterative (a hostile value cannot exhaust the stack); raises
    :class:`BadJSON` or :class:`NulInput` (never when ``nul_ok``).
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, where)]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise BadJSON(f"body is not valid JSON (nested deeper than {MAX_DEPTH})")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, sub in pairs:
                if isinstance(key, str):
                    _string(key, path, nul_ok)
                stack.append((sub, depth + 1, f"{path}.{key}"))
        elif isinstance(item, str):
            _string(item, path, nul_ok)
        elif isinstance(item, float) and item - item != 0.0:  # inf - inf and nan - nan are nan
            raise BadJSON(f"{path}: not a finite number")


def _string(text: str, path: str, nul_ok: bool) -> None:
    if not nul_ok and "\x00" in text:
        raise NulInput(path)
    if _SURROGATE.search(text):
        raise BadJSON(f"{path}: a lone surrogate is not Unicode text (RFC 8259 §8.2)")


def suspect(body: bytes) -> bool:
    """Whether a body needs the strict parse: cheap scans, false for nearly every real request.

    Deep nesting needs more brackets than :data:`MAX_DEPTH`; NaN/Infinity,
    surrogate and NUL escapes need their literal bytes. Huge integers are not
    scanned for: Python's parser refuses them itself, and the error handler
    reports that (through :func:`loads`). A few ms per MiB.
    """
    # find, not `in`: see coordhub.api.inputs.query_nul
    return (body.count(b"[") + body.count(b"{") > MAX_DEPTH or body.find(b"NaN") >= 0 or body.find(b"Infinity") >= 0
            or (body.find(b"\\u") >= 0 and _ESCAPES.search(body) is not None))
