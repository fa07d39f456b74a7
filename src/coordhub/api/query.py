"""An empty query value means "no filter", on every endpoint (issue 7 point 20).

Seed 001's clients build URLs from templates, so ``?project_key=&resource=``
reaches the hub for "any project, any resource"; FastAPI would pass ``""`` as
a filter that matches nothing. :class:`~coordhub.api.door.Door` drops every
parameter whose value is empty (``a=`` or a bare ``a``) from the query string
before routing, so each endpoint sees it as absent, the one mechanism for all
of them (the idempotency fingerprint, built from the same scope, sees it absent
too).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl


def without_empty_values(query: bytes) -> bytes:
    """``query`` (raw, percent-encoded) without the parameters whose value is empty; order kept."""
    return b"&".join(p for p in query.split(b"&") if p.partition(b"=")[2])


def pairs_without_empty_values(pairs: Mapping[str, str]) -> dict[str, str]:
    """:func:`without_empty_values` for a query given as pairs (a request the hub makes to itself)."""
    return {name: value for name, value in pairs.items() if value}


def repeated(query: bytes) -> str | None:
    """The name of the first parameter ``query`` (raw, percent-encoded, empty values already dropped) gives more
    than once, decoded, or None.

    No endpoint takes a list from the query, and FastAPI would keep the last of two values where a proxy, WAF or
    log in front may have judged the first (HTTP parameter pollution): the door refuses such a query, as it
    refuses a JSON object naming one key twice. One ``find`` for the usual query of one parameter; names are
    compared raw first and decoded only when the raw ones differ in a way decoding could hide (``%``, ``+``).
    """
    if query.find(b"&") < 0:
        return None
    names = [part.partition(b"=")[0] for part in query.split(b"&")]
    if len(set(names)) == len(names) and not any(n.find(b"%") >= 0 or n.find(b"+") >= 0 for n in names):
        return None
    seen: set[str] = set()
    for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            return name
        seen.add(name)
    return None
