"""What the read commands agents run most print for people: the inbox, a thread, the lease table, a turn's number.

Standard library only (Rich is loaded by :func:`coordhub.cli.output.table`
only for what it must draw itself): the Typer commands and the fast path of
:mod:`coordhub.cli.fast` print through these same functions, so the two
cannot print differently for the same answer of the hub.
"""

from __future__ import annotations

from typing import Any

from coordhub.cli.output import console, message_banner, table, verbatim
from coordhub.hooks.leases import when

LEASE_COLUMNS = [("id", "id"), ("fence", "fence"), ("project_key", "project"), ("resource", "resource"),
                 ("session_id", "holder"), ("expires_at", "expires"), ("description", "description")]
HISTORY_COLUMNS = [("id", "id"), ("created_at", "sent"), ("from_session", "from"), ("to_session", "to"),
                   ("subject", "subject"), ("read", "read")]


def inbox(rows: list[dict[str, Any]], history: bool, more: bool = False) -> None:
    """``coord msg inbox``: unread messages as seed 000's banners and a count; ``history`` (``--all``): a table.

    ``more``: the hub left unread messages out of this answer (``Coord-Next-After-Seq``): the count says these are
    the oldest and more wait, where it said "100 unread" of 105 (the inbox's default --limit)."""
    if history:
        table(rows, HISTORY_COLUMNS, "no messages")
        return
    if not rows:
        console.print("no unread messages")
    for m in rows:
        verbatim(message_banner(m))
    if rows:
        ack = any(m.get("requires_ack") and not m.get("acked_at") for m in rows)
        # read alone, an ACK REQUIRED message is redelivered and finally dead-lettered (review)
        count = (f"The oldest {len(rows)} unread shown; more are waiting (a higher --limit, at most 500, or this "
                 "command again once these are read)." if more else f"{len(rows)} unread.")
        console.print(f"{count} Mark each read with `coord msg read <id>`"
                      + (", and acknowledge the ACK REQUIRED ones with `coord msg ack <id>`." if ack else "."))


def thread(rows: list[dict[str, Any]], thread_id: str) -> None:
    """``coord msg thread``: a thread's messages as banners, oldest first."""
    if not rows:
        console.print(f"no messages you may read in thread {thread_id}")
    for m in rows:
        verbatim(message_banner(m))


def leases(rows: list[dict[str, Any]]) -> None:
    """``coord lock list``: live leases as a table."""
    table(lease_rows(rows), LEASE_COLUMNS, "no live leases")


def lease_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leases as their tables show them: the expiry to the second (:func:`shown_time`); one that never expires
    (TTL 0) says ``never`` (review: a blank cell)."""
    return [{**r, "expires_at": shown_time(r.get("expires_at")) or "never"} for r in rows]


def shown_time(timestamp: Any) -> str | None:
    """A hub timestamp as the CLI prints times to people: to the second (``2026-11-20T14:05:00Z``, as the hooks'
    banners print them: :func:`coordhub.hooks.leases.when`); None stays None (a blank cell). ``--json`` keeps the
    hub's microseconds."""
    return None if timestamp is None else when(timestamp)


def seq_text(sequence: Any) -> str:
    """A turn's sequence as shown: ``#3``, or ``#-`` for a turn that took none (``query``, ``reject``)."""
    return f"#{sequence}" if sequence is not None else "#-"
