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
from coordhub.core import leases, paging
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.core.vocab import PresenceState, values
from coordhub.errors import Conflict, Invalid
from coordhub.store.base import Row
from coordhub.store.tables.records import Key
from coordhub.store.tx import Tx

ACTIVE_SECONDS = 120.0
IDLE_SECONDS = 300.0
STALE_SECONDS = 900.0
STATES = values(PresenceState)
LIVE = "live"  # a state filter: every state but offline
LIMIT = 1000  # sessions one GET /presence answer holds, by default and at most
KEY: Key = (("session_id", str, False),)  # the order of its pages


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


def page(tx: Tx, now: float, state: str | None = None, limit: int = LIMIT,
         cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Sessions that registered presence, by id, with their state: at most ``limit`` after ``cursor`` (None: from
    the first), and the cursor after the last one when more may follow (None: none do).

    ``state`` is one of :data:`STATES`, or ``live`` (every state but
    offline), or None (all); the database skips the others, by the heartbeat
    windows :func:`state_of` goes by. Raises ``Invalid`` for another state or
    a cursor not from this list. Bounded because every orchestrator worker
    is a session of its own: the sessions that ever registered grow without
    end, and the dashboard's Fleet view reads the live ones on every presence
    event (it read them all: about 90 ms at 10,000 sessions).
    """
    if state is not None and state not in (*STATES, LIVE):
        raise Invalid(f"state must be one of {', '.join((*STATES, LIVE))}, not {state[:40]!r}", field="state")
    bounds = _windows(now)[state] if state is not None else {}
    rows, more = paging.page(lambda k, after: tx.sessions.registered_page(k, after, **bounds), limit,
                             ("cwd", "client", "client_session"), KEY, cursor)
    # the window in SQL and state_of's age could part by a rounding at the very edge: state_of has the last word
    shown = [render(r, now) for r in rows]
    wanted = STATES if state is None else (tuple(s for s in STATES if s != "offline") if state == LIVE else (state,))
    return [r for r in shown if r["state"] in wanted], more


def _windows(now: float) -> dict[str, dict[str, float]]:
    """The store's bounds on the last heartbeat for each ``state`` filter (the module docstring's tiers)."""
    active, idle, stale = now - ACTIVE_SECONDS, now - IDLE_SECONDS, now - STALE_SECONDS
    return {"active": {"beat_from": active}, "idle": {"beat_from": idle, "beat_before": active},
            "stale": {"beat_from": stale, "beat_before": idle}, LIVE: {"beat_from": stale},
            "offline": {"offline_before": stale}}


def of(tx: Tx, session_id: str, now: float) -> dict[str, Any]:
    """One session's presence (offline with incarnation 0 when it never registered)."""
    return render(tx.sessions.get(session_id) or {"session_id": session_id}, now)
