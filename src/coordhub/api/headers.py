"""One request header read straight from the ASGI scope (the hot routes' header reads, issue 15).

Starlette's ``request.headers.get`` builds a ``Headers`` view and answers a
missing header by raising and catching ``KeyError``; a send reads four headers
of which three are usually absent (heartbeat, idempotency key, queued-at), and
those reads were ~8 % of its CPU on the event loop. :func:`header` is the same
lookup without either.
"""

from __future__ import annotations

from starlette.types import Scope


def header(scope: Scope, name: str) -> str | None:
    """The first value of header ``name`` (any case), latin-1 decoded as Starlette decodes it; None when the
    request has none."""
    value = raw_header(scope, name.lower().encode("latin-1"))  # ASGI servers give names in lower case
    return None if value is None else value.decode("latin-1")


def raw_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case bytes), as sent; None when the request has none."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None
