"""The pause after a resume: lifting a halt does not revive the sessions it stopped (seed 004's asymmetry).

Seed 004's resume clears the halt but leaves every agent's polling stopped
until someone tells that session to go on, for two reasons we keep:
resuming must not silently undo an intentional kill (the operator may have
halted *because* of one session), and the operator may want to look around
(pending messages, configuration, one session to shut down for good) before
sessions come back. Here the hub enforces it.

**Who is paused.** When the halt of a scope, set at time ``T``, is lifted,
every session in that scope whose last presence heartbeat is at
``T - presence.ACTIVE_SECONDS`` or later — active, by presence's own
2-minute measure (read from :func:`coordhub.core.presence.tiers` at each
resume, never a copy), when the halt fell, or showing life while it stood —
is paused. A registration counts as a heartbeat, and so do the in-band heartbeats of the
``coord`` CLI and the hooks, so every agent working through them counts.
Not paused: the session that lifts the halt (resuming is its explicit act),
the hub's own names, the orchestrator's hosts and workers (``<m>/agent``,
``<m>/worker-<id>``: the host stops its workers with SIGSTOP under a halt
and continues them on resume, issue 11 point 9), and sessions that never heartbeat (a plain REST
script; its writes under the halt were refused, leaving no sign of life to
go by). A session already paused keeps its first pause.

**What a pause does.** A paused session's writes answer 423 ``paused``
(the :class:`coordhub.core.halt.Exempt` writes still go through, as under a
halt) until it re-engages itself (``POST /engage``, ``coord engage``) or
the operator resumes with ``engage_all``, which clears every pause in the
scope. The pause is a column of the session's row: it survives restarts.
"""

from __future__ import annotations

from typing import Any

from coordhub.clock import isoformat
from coordhub.core import presence
from coordhub.core.events import emit
from coordhub.core.identity import HUB_NAMES, Actor, fold, is_orchestrated, same_session
from coordhub.core.scope import Scope
from coordhub.errors import Paused
from coordhub.store.base import Row
from coordhub.store.tx import Tx


def render(row: Row | None) -> dict[str, Any] | None:
    """The JSON form of a session's pause (``paused_at``, ``scope``), or None when it is not paused."""
    if row is None or row.get("paused_at") is None:
        return None
    return {"paused": True, "paused_at": isoformat(row["paused_at"]), "scope": row.get("paused_scope")}


def refuse_if_paused(session_id: str, row: Row) -> None:
    """Raise ``Paused`` (423) if the session's row (from ``Sessions.act``) says it is paused."""
    paused = render(row)
    if paused is not None:
        raise Paused(f"your session {session_id} is paused since {paused['paused_at']}: it was active under the "
                     f"halt of {paused['scope']}, which was lifted, and a resume does not revive sessions. "
                     "Re-engage with `coord engage` once your user says so", paused=paused)


def pause_after(tx: Tx, scope: Scope, halted_at: float, resumer: Actor, now: float) -> list[str]:
    """Pause the sessions active under the lifted halt of ``scope`` (the rule: module docstring); return their ids.

    Emits ``session.paused`` for each (``target``: that session, so it is in
    its notifications). Ids of sessions that were paused already are not
    returned. Costs one scan of the sessions that heartbeat since the halt.
    """
    paused = []
    for row in tx.sessions.heartbeating_since(halted_at - presence.tiers()["active"]):
        sid = str(row["session_id"])
        if (row["paused_at"] is not None or same_session(sid, resumer.session_id) or fold(sid) in HUB_NAMES
                or is_orchestrated(sid) or not scope.covers(sid, row)):
            continue
        tx.sessions.pause(sid, scope.label, now)
        emit(tx, "session.paused", now, session_id=resumer.session_id, subject_id=sid, target=sid,
             paused_session=sid, scope=scope.label)
        paused.append(sid)
    return paused


def engage_all(tx: Tx, scope: Scope, actor: Actor, now: float) -> list[str]:
    """Clear the pause of every paused session in ``scope``; return their ids (``session.engaged`` for each)."""
    engaged = []
    for row in tx.sessions.paused():
        sid = str(row["session_id"])
        if scope.covers(sid, row) and tx.sessions.engage(sid):
            emit(tx, "session.engaged", now, session_id=actor.session_id, subject_id=sid, target=sid,
                 engaged_session=sid, scope=row["paused_scope"])
            engaged.append(sid)
    return engaged


def engage(tx: Tx, actor: Actor, now: float) -> dict[str, Any]:
    """Clear the actor's own pause: ``{"session_id", "paused": false, "was": <pause or None>}``.

    Engaging a session that is not paused changes nothing (``was`` is None).
    A halt that still covers the session keeps refusing its writes.
    """
    was = render(tx.sessions.get(actor.session_id))
    if tx.sessions.engage(actor.session_id):
        emit(tx, "session.engaged", now, session_id=actor.session_id, subject_id=actor.session_id,
             engaged_session=actor.session_id, scope=was["scope"] if was else None)
    return {"session_id": actor.session_id, "paused": False, "was": was}
