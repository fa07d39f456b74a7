"""What the read commands agents run most print for people: the inbox, the lease table, the status overview.

Standard library only (Rich is loaded by :func:`coordhub.cli.output.table`
only for what it must draw itself): the Typer commands and the fast path of
:mod:`coordhub.cli.fast` print through these same functions, so the two
cannot print differently for the same answer of the hub.
"""

from __future__ import annotations

from typing import Any

from coordhub.cli.output import console, heading, message_banner, table, verbatim
from coordhub.hooks.untrusted import one_line

LEASE_COLUMNS = [("id", "id"), ("fence", "fence"), ("project_key", "project"), ("resource", "resource"),
                 ("session_id", "holder"), ("expires_at", "expires"), ("description", "description")]
HISTORY_COLUMNS = [("id", "id"), ("created_at", "sent"), ("from_session", "from"), ("to_session", "to"),
                   ("subject", "subject"), ("read", "read")]


def inbox(rows: list[dict[str, Any]], history: bool) -> None:
    """``coord msg inbox``: unread messages as seed 000's banners and a count; ``history`` (``--all``): a table."""
    if history:
        table(rows, HISTORY_COLUMNS, "no messages")
        return
    if not rows:
        console.print("no unread messages")
    for m in rows:
        verbatim(message_banner(m))
    if rows:
        console.print(f"{len(rows)} unread. Mark each read with `coord msg read <id>`.")


def leases(rows: list[dict[str, Any]]) -> None:
    """``coord lock list``: live leases as a table."""
    table(rows, LEASE_COLUMNS, "no live leases")


def status(s: dict[str, Any]) -> None:
    """``coord status``: standing halts, your pause, your unread count, then leases, components and active
    workflows."""
    for h in s.get("halts") or ([s["halt"]] if s["halt"] else []):
        console.print(halt_line(h), style="bold red")
    if s.get("paused"):
        console.print(pause_line(s["paused"]), style="bold yellow")
    console.print(f"unread messages: {s['unread_messages']}")
    heading("leases")
    table(s["active_locks"], LEASE_COLUMNS, "  none")
    heading("components")
    table(s["components"], [("project_key", "project"), ("component", "component"), ("state", "state"),
                            ("version", "version"), ("updated_at", "updated")], "  none")
    heading("active workflows")
    table(s["active_workflows"], [("id", "id"), ("project_key", "project"), ("name", "name"),
                                  ("status", "status")], "  none")


def halt_line(h: dict[str, Any]) -> str:
    """One standing halt in a line: ``HALTED (machine:m) by … at …: reason``, marked when it covers you."""
    scope = h.get("scope") or "fleet"
    mine = " — covers you" if h.get("applies") and scope != "fleet" else ""
    return one_line(f"HALTED{'' if scope == 'fleet' else f' ({scope})'} by {h['halted_by']} at {h['halted_at']}: "
                    f"{h['reason']}{mine}")


def pause_line(p: dict[str, Any]) -> str:
    """The caller's pause in a line, saying how to end it."""
    return one_line(f"PAUSED since {p['paused_at']} (the halt of {p.get('scope')} was lifted): your writes are "
                    "refused until you run `coord engage`")
