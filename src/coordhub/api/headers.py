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
    wanted = name.lower().encode("latin-1")  # ASGI servers give names in lower case
    for key, value in scope["headers"]:
        if key == wanted:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None
