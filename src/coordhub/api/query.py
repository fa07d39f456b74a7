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


def without_empty_values(query: bytes) -> bytes:
    """``query`` (raw, percent-encoded) without the parameters whose value is empty; order kept."""
    return b"&".join(p for p in query.split(b"&") if p.partition(b"=")[2])


def pairs_without_empty_values(pairs: Mapping[str, str]) -> dict[str, str]:
    """:func:`without_empty_values` for a query given as pairs (a request the hub makes to itself)."""
    return {name: value for name, value in pairs.items() if value}
