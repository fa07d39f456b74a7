"""Presence: who is online, from heartbeats on the hub's clock, with incarnations.

A session *registers* when an agent process starts; each registration starts
a new **incarnation** (1, 2, …), so a message or completion meant for an
earlier process is flagged so to its successor, never taken as news for it. The agent then
*heartbeats*; the state is derived from the time since the last heartbeat on
the hub's clock (seed 002 kept the same three tiers, 5 and 15 minutes, but
never implemented the third):

=========  ==============================================================
active     heartbeat within the last :data:`ACTIVE_SECONDS` (2 minutes)
idle       within :data:`IDLE_SECONDS` (5 minutes)
stale      within :data:`STALE_SECONDS` (15 minutes)
offline    older than that, deregistered, or never registered
=========  ==============================================================
"""

from __future__ import annotations

from typing import Any

from coordhub.clock import isoformat
from coordhub.core import leases
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.core.vocab import PresenceState, values
from coordhub.errors import Conflict
from coordhub.store.base import Row
from coordhub.store.tx import Tx

ACTIVE_SECONDS = 120.0
IDLE_SECONDS = 300.0
STALE_SECONDS = 900.0
STATES = values(PresenceState)


def tiers() -> dict[str, float]:
    """The state tiers in seconds since the last heartbeat, ``{active, idle, stale}`` (past ``stale``: offline).

    Read at call time, so the dashboard (which times its re-reads of the Fleet
    view by them, from ``GET /api/coord/web/session``) follows whatever
    :func:`state_of` goes by: one definition for both.
    """
    return {"active": ACTIVE_SECONDS, "idle": IDLE_SECONDS, "stale": STALE_SECONDS}


class StaleIncarnation(Conflict):
    """A heartbeat or deregistration names an incarnation that is no longer the current one (409)."""

    code = "stale_incarnation"


def state_of(row: Row | None, now: float) -> str:
    """The presence state of a session row at ``now`` (see the module docstring)."""
    if row is None or not row.get("incarnation") or row.get("deregistered_at") is not None:
        return "offline"
    age = now - (row.get("last_heartbeat") or 0.0)
    if age <= ACTIVE_SECONDS:
        return "active"
    if age <= IDLE_SECONDS:
        return "idle"
    return "stale" if age <= STALE_SECONDS else "offline"


def live_incarnation(row: Row | None, now: float) -> int | None:
    """The incarnation of a session (its ``sessions`` row) that is not offline, else None (messages then wait for
    any successor)."""
    return int(row["incarnation"]) if row is not None and state_of(row, now) != "offline" else None


def render(row: Row, now: float) -> dict[str, Any]:
    """The JSON form of one session's presence."""
    beat = row.get("last_heartbeat")
    return {"session_id": row["session_id"], "incarnation": row.get("incarnation") or 0,
            "state": state_of(row, now), "registered_at": isoformat(row.get("registered_at")),
            "last_heartbeat": isoformat(beat),
            "seconds_since_heartbeat": None if beat is None else round(now - beat, 3),
            "deregistered_at": isoformat(row.get("deregistered_at")), "client": row.get("client"),
            "client_session": row.get("client_session"), "cwd": row.get("cwd"),
            "paused": row.get("paused_at") is not None}


def register(tx: Tx, actor: Actor, *, client: str | None = None, client_session: str | None = None,
             cwd: str | None = None, now: float) -> dict[str, Any]:
    """Start a new incarnation of the actor's session; return its presence."""
    row = tx.sessions.register(actor.session_id, now, client, client_session, cwd)
    emit(tx, "presence.registered", now, session_id=actor.session_id, incarnation=row["incarnation"],
         client=client)
    return render(row, now)


def _check_incarnation(row: Row | None, incarnation: int | None, verb: str) -> None:
    if incarnation is None or row is None:
        return
    if incarnation != row["incarnation"] or row["deregistered_at"] is not None:
        raise StaleIncarnation(
            f"cannot {verb} incarnation {incarnation} of {row['session_id']}: the current one is "
            f"{row['incarnation']}{' (deregistered)' if row['deregistered_at'] is not None else ''}; register again",
            current=row["incarnation"])


def heartbeat(tx: Tx, actor: Actor, incarnation: int | None, now: float) -> dict[str, Any]:
    """Keep the actor's presence alive.

    With ``incarnation``, a heartbeat of an older or ended incarnation is
    refused (``StaleIncarnation``): that process was superseded. Without it, a
    session that is not registered (or was deregistered) registers anew.
    """
    row = tx.sessions.get(actor.session_id)
    _check_incarnation(row, incarnation, "heartbeat")
    if row is None or not row["incarnation"] or row["deregistered_at"] is not None:
        return register(tx, actor, client=None if row is None else row["client"], now=now)
    tx.sessions.heartbeat(actor.session_id, now)
    updated = tx.sessions.get(actor.session_id)
    assert updated is not None
    return render(updated, now)


def deregister(tx: Tx, actor: Actor, incarnation: int | None, release_leases: bool, now: float) -> dict[str, Any]:
    """End the actor's current incarnation (offline at once); optionally release its live leases."""
    row = tx.sessions.get(actor.session_id)
    _check_incarnation(row, incarnation, "deregister")
    released = leases.release_all(tx, actor, actor.session_id, now)["released"] if release_leases else 0
    if row is not None and row["incarnation"] and row["deregistered_at"] is None:
        tx.sessions.deregister(actor.session_id, now)
        emit(tx, "presence.deregistered", now, session_id=actor.session_id, incarnation=row["incarnation"],
             released_leases=released)
    current = tx.sessions.get(actor.session_id)
    return {**render(current or {"session_id": actor.session_id}, now), "released_leases": released}


def find(tx: Tx, now: float, state: str | None = None) -> list[dict[str, Any]]:
    """Every session that ever registered, with its state; ``state`` filters."""
    rows = [render(r, now) for r in tx.sessions.registered()]
    return rows if state is None else [r for r in rows if r["state"] == state]


def of(tx: Tx, session_id: str, now: float) -> dict[str, Any]:
    """One session's presence (offline with incarnation 0 when it never registered)."""
    return render(tx.sessions.get(session_id) or {"session_id": session_id}, now)
