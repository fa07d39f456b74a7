"""A halt or a pause as the hooks read it from ``/locks/conflicts`` and say it (standard library only).

Shared by the edit hook (:mod:`coordhub.hooks.edits`) and the git guard
(:mod:`coordhub.guard.run`), so an edit and a commit under the same halt are
refused in the same words. The hub answers ``halt`` (the halt covering the
caller, or else the standing halt of the project asked about:
:func:`coordhub.core.halt.for_work`) and ``paused`` (the caller's pause after
a resume); DESIGN.md, contract point 8: every hook shows a halt.
"""

from __future__ import annotations

from typing import Any

from coordhub.hooks import leases as leases_text
from coordhub.hooks.untrusted import one_line


def stop_of(data: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(halt, pause) from a ``/locks/conflicts`` answer: each a dict, or None when absent or not an object (an
    older hub's list answer has neither; a halt row saying ``"halted": false`` is no halt)."""
    if not isinstance(data, dict):
        return None, None
    halt, paused = data.get("halt"), data.get("paused")
    return (halt if isinstance(halt, dict) and halt.get("halted", True) else None,
            paused if isinstance(paused, dict) else None)


def halted_line(halt: dict[str, Any]) -> str:
    """``"<scope> is halted by <who> since <when>: <reason>"`` (``the fleet`` for the fleet's halt); every field
    made one line of printable text, as the hub's rows are written by other sessions."""
    scope = str(halt.get("scope") or "fleet")
    what = "the fleet is halted" if scope == "fleet" else f"{one_line(scope)} is halted"
    return (f"{what} by {one_line(halt.get('halted_by'))} since {leases_text.when(halt.get('halted_at'))}: "
            f"{one_line(halt.get('reason'))}")


def paused_line(paused: dict[str, Any]) -> str:
    """``"your session is paused since <when>: the halt of <scope> was lifted, …"``: why a resumed session still
    may not work (seed 004's asymmetry: a resume does not revive the sessions active under the halt)."""
    return (f"your session is paused since {leases_text.when(paused.get('paused_at'))}: the halt of "
            f"{one_line(paused.get('scope'))} was lifted, but a resume does not revive sessions that were active "
            "under it")
