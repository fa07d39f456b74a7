"""The halt switch: the fleet, one machine or one project (contract §2.8, issue 9 point 8).

A halt is a durable record of who halted what (its :mod:`scope
<coordhub.core.scope>`), why and when. While it stands every mutating call of
a session in its scope is refused with 423 and the record, except the writes
listed in :class:`Exempt` — the one table of what a halt lets through and why
(front ends name the row they use; ``docs/api.md`` carries the table, a test
compares). Reads show every standing halt. It survives restarts because it is
a row like any other. Lifting a halt does not revive the sessions it stopped:
they are paused until they re-engage (:mod:`coordhub.core.pause`, seed 004).

Who may: an admin token halts and resumes any scope; any other session only
its own machine (:func:`coordhub.core.scope.may_act_on`), and it may not lift
a halt an admin set there — the session an operator stopped cannot undo that.
An admin halting a scope a session halted first takes that halt over
(:func:`set_halt`), so a session cannot squat its machine's halt.

The rule behind the table: a halt stops everything that starts, extends or
changes shared work (claims and renewals, messages sent, todos, workflows and
work items, components, new tokens). It lets through what ends it, what keeps
agents informed while they stand still, and what only *reduces* what is held
or who may act — the writes an operator needs during an incident.
"""

from __future__ import annotations

import enum
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import pause
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.core.scope import FLEET, FLEET_KEY, Scope, from_key, may_act_on
from coordhub.errors import Conflict, Forbidden, Halted, Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx


class Exempt(enum.Enum):
    """A kind of write a standing halt lets through: ``writes`` says which, ``why`` why (see the module docstring).

    :meth:`coordhub.core.hub.Hub.mutate` takes one of these as ``during_halt``;
    every other mutation of a session in a halt's scope is refused while it
    stands, and every other mutation of a paused session until it engages.
    """

    writes: str
    why: str

    RESUME = ("`POST /resume`", "lifting the halt is what ends it")
    ENGAGE = ("`POST /engage`: a paused session re-engaging itself",
              "it is how a session comes back after a resume; it changes no shared work")
    PRESENCE = ("presence register, heartbeat and deregister (with `release_leases`, see below)",
                "agents stay visible while they stand still; it changes no shared work")
    SEEN = ("marking messages shown (`/messages/unshown`), read or acked; the notification cursor",
            "bookkeeping of what an agent was shown: the halt notice itself has to reach agents")
    CLIENT_EVENT = ("client events (`POST /events`, kinds `guard.*` and `hook.*`)",
                    "the audit record of what a hook or guard did, including what the halt refused")
    RELEASE = ("ending leases: the holder's release (`DELETE /locks/{id}`, `DELETE /locks?release_all=true`, "
               "deregister with `release_leases`), an admin's force-release, a stale takeover",
               "it only reduces what is held and starts no work: nothing can be claimed until resume")
    REVOKE_TOKEN = ("revoking a session's tokens (`DELETE /tokens/{name}`), which also ends its leases",
                    "an incident is exactly when a credential has to be cut off")
    ORCHESTRATOR = ("worker hosts' register, heartbeat and `next` (which dispatches nothing while a halt covers the "
                    "host or the assignment's project), their reports and log lines; `coord stop` of an assignment; a "
                    "reconciliation pass",
                    "hosts stay visible and record what their workers did and saved; stopping work only reduces "
                    "it. A halt stops new work at dispatch, and hosts pause running workers")
    WEB_SESSION = ("signing in to and out of the dashboard (`POST`/`DELETE /web/session`)",
                   "an admin must be able to reach the resume button; it changes no shared work")
    BOOTSTRAP = ("the hub's own start-up bookkeeping (minting the first admin token)",
                 "a halted hub must still be administrable after a restart")
    REFRESH = ("saying anew why a standing halt stands (`POST /halt` with `refresh: true`, by who may lift it; "
               "`halted_by` stays who halted, an admin's refresh of a session's halt takes it over; with `kill`, "
               "also stopping the scope's workers, by who may kill there; a new halt this way is refused as any "
               "other write)",
               "the halt stays as it fell and starts no work; seed 004's second halt rewrote its HALT file's reason. "
               "A kill ends running attempts and re-queues them, work saved: it only reduces work, as `coord stop`")

    def __init__(self, writes: str, why: str) -> None:
        self.writes = writes
        self.why = why


def exemptions_table() -> str:
    """The Markdown table of :class:`Exempt`, as ``docs/api.md`` carries it (a test compares)."""
    rows = ["| allowed while halted | why |", "|---|---|"]
    rows += [f"| {e.writes} | {e.why} |" for e in Exempt]
    return "\n".join(rows)


def render(row: Row | None) -> dict[str, Any] | None:
    """The JSON form of a halt record, or None when not halted."""
    if row is None:
        return None
    return {"halted": True, "scope": from_key(row["scope"]).label, "halted_by": row["halted_by"],
            "reason": row["reason"], "halted_at": isoformat(row["halted_at"])}


def current(tx: Tx) -> dict[str, Any] | None:
    """The standing fleet halt, or None."""
    return render(tx.halts.get(FLEET_KEY))


def standing(tx: Tx) -> list[Row]:
    """Every standing halt's row, oldest first (one query)."""
    return tx.halts.all()


def listing(tx: Tx, session_id: str | None, me: Row | None = None) -> list[dict[str, Any]]:
    """Every standing halt, oldest first, each with ``applies``: whether it covers ``session_id`` (False for None).

    ``me`` is the session's row when the caller has it (else it is read, and
    only when a halt other than the fleet's stands).
    """
    rows = standing(tx)
    if me is None and session_id and any(r["scope"] != FLEET_KEY for r in rows):
        me = tx.sessions.get(session_id)
    return [{**(render(r) or {}), "applies": session_id is not None and from_key(r["scope"]).covers(session_id, me)}
            for r in rows]


def for_session(tx: Tx, session_id: str | None) -> dict[str, Any]:
    """What stops ``session_id``'s writes: ``{"halts": [...], "halt": <the fleet's, else the oldest that applies,
    or None>, "paused": <its pause or None>}`` (two queries)."""
    me = tx.sessions.get(session_id) if session_id else None
    halts = listing(tx, session_id, me)
    applies = sorted((h for h in halts if h["applies"]), key=lambda h: h["scope"] != "fleet")
    return {"halts": halts, "halt": applies[0] if applies else None, "paused": pause.render(me)}


def for_work(tx: Tx, session_id: str | None, project_key: str) -> dict[str, Any]:
    """:func:`for_session`, for work in the project ``project_key`` names (an edit or a commit the edit hook or the
    git guard asks about, through ``/locks/conflicts``): when no halt covers the session, ``halt`` is that
    project's standing halt, if any.

    A project halt stops the work in the project, not only the sessions that declared it: most sessions never
    declare a project (only ``coord conv`` and the ``cross-agent-*`` commands do), and the edit hook names the
    project by the repository it runs in, so without this ``coord halt --project P`` let every such session go
    on editing and committing in P. (A declared session is covered wherever it works.) The fleet's halt stops
    all work, so it is ``halt`` also when the caller names no session (a ``--no-auth`` hook or guard without an
    identity), whom :func:`for_session` finds covered by nothing: else such a caller was shown a project's halt
    but not the fleet's.
    """
    found = for_session(tx, session_id)
    if found["halt"] is None:
        found["halt"] = next((h for h in sorted(found["halts"], key=lambda h: h["scope"] != "fleet")
                              if h["scope"] == "fleet" or from_key(h["scope"]).holds_project(project_key)), None)
    return found


def overview(tx: Tx, session_id: str | None) -> dict[str, Any]:
    """``GET /halt``: the fleet halt in its old shape, every standing halt, and the caller's pause."""
    mine = for_session(tx, session_id)
    fleet = next((h for h in mine["halts"] if h["scope"] == "fleet"), None)
    shown = {k: v for k, v in fleet.items() if k != "applies"} if fleet else {"halted": False}
    return {**shown, "halts": mine["halts"], "paused": mine["paused"]}


def refuse_fleet(halts: list[Row]) -> None:
    """Raise ``Halted`` if ``halts`` (from :func:`standing`) holds the fleet's."""
    for row in halts:
        if row["scope"] == FLEET_KEY:
            raise _refusal(row)


def refuse_in_scope(halts: list[Row], session_id: str, session: Row) -> None:
    """Raise ``Halted`` if a halt of ``halts`` covers the session (its id and ``sessions`` row)."""
    for row in halts:
        if from_key(row["scope"]).covers(session_id, session):
            raise _refusal(row)


def refuse_work_in(halts: list[Row], project_key: str) -> None:
    """Raise ``Halted`` if a halt of ``halts`` is that of the project ``project_key`` names (:func:`for_work`'s
    rule): a lease claimed in a halted project is work started in it, whoever claims it."""
    for row in halts:
        if from_key(row["scope"]).holds_project(project_key):
            raise _refusal(row)


def refuse_leaving(tx: Tx, session_id: str, before: Row, after: Row) -> None:
    """Refuse a profile change that would take the session out of a halt or its pause; nothing otherwise.

    ``before`` and ``after`` are its ``sessions`` row as it is and as the
    change would leave it (its declared ``machine`` and ``project``, which
    scopes match). Raises ``Halted`` (423, the halt's record) if a standing
    halt covers ``before`` but not ``after``, ``Paused`` if the scope of the
    session's pause does; a change that stays inside (or only adds a
    declaration) goes through. Without this check a halted session could
    re-declare its project, which ``PUT /profile`` lets through as
    :attr:`Exempt.PRESENCE`, and write again.
    """
    for row in standing(tx):
        scope = from_key(row["scope"])
        if scope.covers(session_id, before) and not scope.covers(session_id, after):
            raise _refusal(row)
    paused = pause.render(before)
    if paused is not None and not from_key(str(paused["scope"] or "fleet")).covers(session_id, after):
        pause.refuse_if_paused(session_id, before)


def _refusal(row: Row) -> Halted:
    halt = render(row)
    assert halt is not None
    scope = from_key(row["scope"])
    lift = "`coord resume`" if scope.kind == "fleet" else f"`coord resume --{scope.kind} {scope.name}`"
    who = "an admin" if row["by_admin"] else f"an admin or a person's session of machine {scope.name}"
    subject = "the fleet is" if scope.kind == "fleet" else f"{scope.words} is"
    return Halted(f"{subject} halted by {halt['halted_by']} since {halt['halted_at']}: {halt['reason']} "
                  f"({who} lifts it with {lift})", halt=halt)


def set_halt(tx: Tx, actor: Actor, reason: str, now: float, scope: Scope | None = None,
             refresh: bool = False) -> dict[str, Any]:
    """Halt ``scope`` (default: the fleet); see the module docstring for who may.

    An admin's halt of a scope a session halted takes that halt over: it
    becomes the admin's (``halted_by``, ``reason``; ``halted_at`` stays when
    the scope fell, which is what the pause after the resume counts from),
    so only an admin lifts it; its one ``halt.set`` event names
    ``took_over_from``. Otherwise the session that squatted its machine's
    halt could keep the admin from setting one there and lift it at will.

    ``refresh`` (seed 004: running its halt again rewrote the HALT file with
    the new reason): when the scope is halted already, whoever may lift that
    halt (:func:`resume`'s rule) replaces its ``reason``; who halted it
    (``halted_by``) and ``halted_at`` stay, except that an admin's refresh of a
    session's halt takes it over as above. The answer carries
    ``refreshed: true`` and ``refreshed_by``, its one ``halt.set`` event
    ``refreshed`` and ``previous_reason`` (its ``session_id`` is who
    refreshed). The caller runs it as :attr:`Exempt.REFRESH` (the halt being
    refreshed covers it), so a refresh that finds no halt to refresh is
    refused here as the hub refuses any write of a halted or
    paused session, before it sets a new one.

    Raises ``Forbidden`` (403) for a scope the actor may not halt,
    ``Invalid`` for a blank reason, ``Conflict`` if the scope already is
    halted (by an admin, or the actor is none; with ``refresh``: by a halt
    the actor may not lift, :func:`_may_lift`), ``Halted`` or ``Paused``
    (423) for a ``refresh`` that would set a new halt, or finds one it may
    not lift, while the actor may not write (as its second halt was).
    """
    scope = scope or FLEET
    may_act_on(actor, scope, "halt")
    if not reason.strip():
        raise Invalid("a halt needs a reason")
    standing_one = tx.halts.get(scope.key)
    if refresh and standing_one is not None and _may_lift(actor, scope, standing_one):
        return _refresh(tx, actor, scope, standing_one, reason, now)
    if refresh:  # a new halt, or a halt it may not lift: the write the exemption let past the hub's own checks
        _refuse_as_the_hub_would(tx, actor)
    if standing_one is not None and (standing_one["by_admin"] or not actor.is_admin):
        raise Conflict(f"{scope.words} is already halted", halt=render(standing_one))
    row: Row = {"scope": scope.key, "halted_by": actor.session_id, "reason": reason,
                "halted_at": now if standing_one is None else standing_one["halted_at"],
                "by_admin": int(actor.is_admin)}
    tx.halts.put(row)
    took_over = {} if standing_one is None else {"took_over_from": standing_one["halted_by"]}
    emit(tx, "halt.set", now, session_id=actor.session_id, reason=reason, scope=scope.label, **took_over)
    halt = render(row)
    assert halt is not None
    return halt


def _may_lift(actor: Actor, scope: Scope, standing_one: Row) -> bool:
    """Whether ``actor`` may lift ``standing_one``, the halt of ``scope`` (:func:`resume`'s rule), so refresh it.

    An orchestrator worker or host may pull the brake, not lift it nor rewrite why it stands: its refresh is
    then refused as its second halt was before ``refresh`` (423 while the halt covers it, else 409), not with
    :func:`~coordhub.core.scope.may_act_on`'s 403, which ``cross-agent-halt`` reports as a failed halt."""
    try:
        _check_may_lift(actor, scope, standing_one)
    except Forbidden:
        return False
    return True


def _check_may_lift(actor: Actor, scope: Scope, row: Row | None) -> None:
    """Raise ``Forbidden`` unless ``actor`` may lift ``row``, the halt of ``scope`` (None: none stands): a scope
    it may resume (:func:`~coordhub.core.scope.may_act_on`), and an admin's halt only if it is an admin."""
    may_act_on(actor, scope, "resume")
    if row is not None and row["by_admin"] and not actor.is_admin:
        raise Forbidden(f"the halt of {scope.words} was set by {row['halted_by']}, an admin: an admin lifts it",
                        scope=scope.label)


def _refresh(tx: Tx, actor: Actor, scope: Scope, standing_one: Row, reason: str, now: float) -> dict[str, Any]:
    """Replace the reason of the standing halt ``standing_one`` of ``scope``: :func:`set_halt`; the caller checked
    :func:`_may_lift`.

    Who halted stays its author: a peer of the machine that may lift a session's halt only says anew why it
    stands (it was shown as the halt's author, as if it had stopped the machine). An admin refreshing a session's
    halt takes it over (``halted_by`` the admin, ``by_admin``), as an admin's halt of that scope does: else the
    session could lift what the admin asserted. Who refreshed is in the answer (``refreshed_by``) and the event.
    """
    took_over = actor.is_admin and not standing_one["by_admin"]
    row: Row = {**standing_one, "reason": reason, "by_admin": int(actor.is_admin or bool(standing_one["by_admin"])),
                "halted_by": actor.session_id if took_over else standing_one["halted_by"]}
    tx.halts.put(row)
    emit(tx, "halt.set", now, session_id=actor.session_id, reason=reason, scope=scope.label, refreshed=True,
         previous_reason=standing_one["reason"], **({"took_over_from": standing_one["halted_by"]} if took_over else {}))
    halt = render(row)
    assert halt is not None
    return {**halt, "refreshed": True, "refreshed_by": actor.session_id}


def _refuse_as_the_hub_would(tx: Tx, actor: Actor) -> None:
    """Raise ``Halted`` or ``Paused`` (423) as :meth:`coordhub.core.hub.Hub.mutate` refuses a write that is not
    exempt: a standing fleet halt, one that covers the actor, or the actor's pause."""
    halts = standing(tx)
    refuse_fleet(halts)
    me = tx.sessions.get(actor.session_id)
    if me is not None:
        refuse_in_scope(halts, actor.session_id, me)
        pause.refuse_if_paused(actor.session_id, me)


def resume(tx: Tx, actor: Actor, now: float, scope: Scope | None = None, engage_all: bool = False) -> dict[str, Any]:
    """Lift the halt of ``scope`` (default: the fleet); resuming a scope that is not halted lifts nothing.

    The sessions that were active under the halt are paused
    (:func:`coordhub.core.pause.pause_after`), unless ``engage_all``, which
    instead clears every pause in the scope, of this halt or an earlier one.
    Answers ``{"halted": false, "scope", "resumed_by", "was": <halt or None>,
    "paused": [ids], "engaged": [ids]}``. Raises ``Forbidden`` for a scope
    the actor may not resume, or a session's own machine halted by an admin.
    """
    scope = scope or FLEET
    row = tx.halts.get(scope.key)
    _check_may_lift(actor, scope, row)
    paused: list[str] = []
    if row is not None:
        tx.halts.clear(scope.key)
        emit(tx, "halt.lifted", now, session_id=actor.session_id, scope=scope.label, engage_all=engage_all)
        if not engage_all:
            paused = pause.pause_after(tx, scope, row["halted_at"], actor, now)
    engaged = pause.engage_all(tx, scope, actor, now) if engage_all else []
    return {"halted": False, "scope": scope.label, "resumed_by": actor.session_id, "was": render(row),
            "paused": paused, "engaged": engaged}
