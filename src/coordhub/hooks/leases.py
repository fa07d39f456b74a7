"""How hooks and the git guard describe a lease: holder, purpose, id, fence and when it ends.

Every field comes from the hub and some from other sessions (a description is
free text), so each goes through :func:`~coordhub.hooks.untrusted.one_line`
(the quoted description through :func:`~coordhub.hooks.untrusted.in_quotes`).
"""

from __future__ import annotations

import re
from typing import Any

from coordhub.hooks.untrusted import in_quotes, one_line

_FRACTION = re.compile(r"(T\d\d:\d\d:\d\d)\.\d+")


def when(timestamp: Any) -> str:
    """An RFC 3339 timestamp from the hub without its fraction of a second (``2026-11-20T14:05:00Z``)."""
    return one_line(_FRACTION.sub(r"\1", str(timestamp)))


def ends(lease: dict[str, Any]) -> str:
    """When a lease ends, e.g. ``until 2026-11-20T14:05:00Z, 23 min left``, or ``no expiry``."""
    if not lease.get("expires_at"):
        return "no expiry"
    left = lease.get("expires_in_seconds")
    if not isinstance(left, (int, float)):
        return f"until {when(lease['expires_at'])}"
    remaining = f"{left / 60:.0f} min left" if left >= 60 else f"{left:.0f} s left"
    return f"until {when(lease['expires_at'])}, {remaining}"


def purpose(lease: dict[str, Any]) -> str:
    """The lease's description in quotes, or ``no description``."""
    return in_quotes(lease["description"]) if lease.get("description") else "no description"


def held(lease: dict[str, Any]) -> str:
    """Another session's lease as a conflict: ``holder — "purpose" (lease ID on RESOURCE in project P, ends)``."""
    return (f"{one_line(lease.get('session_id'))} — {purpose(lease)} (lease {one_line(lease.get('id'))} on "
            f"{one_line(lease.get('resource'))} in project {one_line(lease.get('project_key'))}, {ends(lease)})")


def own(lease: dict[str, Any]) -> str:
    """One's own lease: ``RESOURCE in project P — "purpose" (lease ID, fence F, ends)``."""
    return (f"{one_line(lease.get('resource'))} in project {one_line(lease.get('project_key'))} — {purpose(lease)} "
            f"(lease {one_line(lease.get('id'))}, fence {one_line(lease.get('fence'))}, {ends(lease)})")
