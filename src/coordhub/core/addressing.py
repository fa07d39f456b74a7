"""Seed 004's addressing: ``<machine>.<project>`` names, each session's declared profile, the address directory.

A session declares its machine and project (:func:`set_profile`, or the
``from_*`` fields of a send); a turn to an address reaches every session that
declared it, waits while none is online, and is refused at send when no
session ever declared it (:class:`UnknownDestination`, the seed's exit 2).
``local.<project>`` is the sender's own machine. On a hub with auth a session
whose id names a machine (``MACHINE/name``) can only declare that machine.
A profile also lists the tools the session declared, which seed 004's
``REQUIRES_TOOLS`` check reads (:mod:`coordhub.core.conversations`).
"""

from __future__ import annotations

import json
from typing import Any

from coordhub.core import halt, orgturn, presence
from coordhub.core.events import emit
from coordhub.core.identity import ADDRESS_PART, Actor, machine_of
from coordhub.errors import Forbidden, Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx

NAME = ADDRESS_PART
LOCAL = "local"           # seed 004: local.<project> is this machine


class UnknownDestination(Invalid):
    """A turn's address was never declared by any session (422; ``known`` lists the addresses that were)."""

    code = "unknown_destination"


def name(value: str, field: str) -> str:
    """A machine or project name in lower case; ``Invalid`` unless it is ``[a-z0-9][a-z0-9_-]{0,63}``."""
    folded = value.strip().lower()
    if not NAME.fullmatch(folded):
        raise Invalid(f"{field} {value[:80]!r} is not a name (letters, digits, _ and -; no dots; at most 64)",
                      field=field)
    return folded


def split_address(value: str, field: str = "to") -> tuple[str, str]:
    """``(machine, project)`` of ``<machine>.<project>``; ``Invalid`` when malformed."""
    machine, dot, project = value.strip().partition(".")
    if not dot:
        raise Invalid(f"destination must be <machine>.<project>; got {value[:140]!r}", field=field)
    return name(machine, field), name(project, field)


def tools_of(row: Row | None) -> list[str]:
    """The tools a session's profile row declares (none for no row)."""
    raw = row.get("tools") if row else None
    return list(json.loads(raw)) if raw else []


def render_profile(row: Row | None, session_id: str) -> dict[str, Any]:
    """A session's conversation profile: its address and declared tools.

    ``tools_declared`` says whether the session ever declared a list (``[]`` included): ``tools`` is ``[]`` both
    for a session that declared none and for one that never declared, and only a declaration makes the hub check
    a turn's ``REQUIRES_TOOLS`` at the address (:mod:`coordhub.core.conversations`).
    """
    machine = row.get("machine") if row else None
    project = row.get("project") if row else None
    return {"session_id": session_id, "machine": machine, "project": project,
            "address": f"{machine}.{project}" if machine and project else None, "tools": tools_of(row),
            "tools_declared": row is not None and row.get("tools") is not None}


def profile(tx: Tx, actor: Actor) -> dict[str, Any]:
    """The actor's profile (nulls and no tools when it declared nothing)."""
    return render_profile(tx.sessions.get(actor.session_id), actor.session_id)


def set_profile(tx: Tx, actor: Actor, *, machine: str | None = None, project: str | None = None,
                tools: list[str] | None = None, now: float) -> dict[str, Any]:
    """Declare the actor's machine, project and/or tools; omitted ones keep their value.

    A session may declare only the machine its id names (``MACHINE/name``),
    so one token cannot take another machine's turns (403); a session whose
    id names no machine (seed 002's ``backend``) cannot declare one, since
    nothing would bind it to a machine. Admins (and ``--no-auth`` callers) may
    declare any machine. A change of machine or project that would take the
    session out of a standing halt or its pause is refused as the halt refuses
    writes (423, :func:`coordhub.core.halt.refuse_leaving`). A new address
    restarts the session's shown-turns cursor (:func:`coordhub.core.conversations.unshown`).
    """
    row, new_machine, new_project = declared(tx, actor, machine=machine, project=project, tools=tools)
    new_tools = json.dumps(list(dict.fromkeys(tools))) if tools is not None else row.get("tools")
    if (new_machine, new_project, new_tools) != (row.get("machine"), row.get("project"), row.get("tools")):
        # The shown-turns cursor counts turns to the old address: kept, it would hide every pending turn to the
        # new one older than the last shown there. From 0, the hooks show them all (at least once, as promised).
        moved = (new_machine, new_project) != (row.get("machine"), row.get("project"))
        tx.conversations.set_profile(actor.session_id, new_machine, new_project, new_tools, restart_shown=moved)
        emit(tx, "conversation.profile", now, session_id=actor.session_id, machine=new_machine,
             project=new_project, tools=json.loads(new_tools) if new_tools else [])
    return profile(tx, actor)


def declared(tx: Tx, actor: Actor, *, machine: str | None = None, project: str | None = None,
             tools: list[str] | None = None) -> tuple[Row, str | None, str | None]:
    """The actor's session row (empty when the hub has not seen it) and the machine and project it would hold after
    :func:`set_profile` declared ``machine``, ``project`` and ``tools`` (omitted ones keep their value); writes
    nothing.

    Raises as :func:`set_profile` does, in its order (422 a bad name, 403 another machine, 422 a bad tool, 423
    leaving a halt).
    """
    row = tx.sessions.get(actor.session_id) or {}
    new_machine = row.get("machine") if machine is None else name(machine, "machine")
    new_project = row.get("project") if project is None else name(project, "project")
    own = machine_of(actor.session_id)
    if new_machine is not None and not actor.is_admin and (own is None or new_machine != own.lower()):
        why = (f"whose machine is {own.lower()!r}" if own is not None else
               "which names no machine: use a token named MACHINE/name (`coord token create "
               f"{new_machine}/{actor.session_id}`)")
        raise Forbidden(f"machine {new_machine!r} is not yours: this token acts as {actor.session_id!r}, {why}",
                        field="machine", acting_as=actor.session_id)
    if tools is not None:
        orgturn.check_tools(tools)
    if (new_machine, new_project) != (row.get("machine"), row.get("project")):
        halt.refuse_leaving(tx, actor.session_id, row, {**row, "machine": new_machine, "project": new_project})
    return row, new_machine, new_project


def sees_pending(tx: Tx, actor: Actor, machine: str | None) -> bool:
    """Whether ``actor`` may see how many turns wait for ``machine``'s addresses: an admin, or a session of that
    machine (its declared one, or ``MACHINE`` of its id ``MACHINE/name``, which is all it may declare on a hub with
    tokens: a session that has not declared yet may ask for its own machine's status by name, ``?machine=``). A
    pending count moves with every turn sent there, which only the sessions of the machine it is addressed to (and
    its author, and admins) see as events, and whose text only that machine reads (``GET …/turns`` of another
    machine is 403): the trust boundary is the machine (docs/conversations.md)."""
    if actor.is_admin:
        return True
    own = (tx.sessions.get(actor.session_id) or {}).get("machine")
    named = machine_of(actor.session_id)
    return machine is not None and machine in (own, named.lower() if named else None)


def addresses(tx: Tx, actor: Actor, now: float) -> list[dict[str, Any]]:
    """Every declared address with its sessions (and their presence) and pending count, sorted by address.

    Every session sees every address and who is behind it (``cross-agent-discover``, the dashboard's fleet);
    ``pending`` is null for an address whose pending turns ``actor`` may not see (:func:`sees_pending`)."""
    by: dict[str, dict[str, Any]] = {}
    for row in tx.conversations.addresses():
        addr = f"{row['machine']}.{row['project']}"
        entry = by.setdefault(addr, {"address": addr, "machine": row["machine"], "project": row["project"],
                                     "sessions": [], "pending": 0})
        entry["sessions"].append({"session_id": row["session_id"], "state": presence.state_of(row, now),
                                  "tools": tools_of(row)})
    shown = {m: sees_pending(tx, actor, m) for m in {e["machine"] for e in by.values()}}
    for entry in by.values():
        if not shown[entry["machine"]]:
            entry["pending"] = None
    for row in tx.conversations.pending_counts([k for k, e in by.items() if e["pending"] is not None]):
        by[row["to_address"]]["pending"] = int(row["pending"])
    return [by[k] for k in sorted(by)]


def known(tx: Tx) -> list[str]:
    """Every declared address, sorted (what :class:`UnknownDestination` lists)."""
    return sorted({f"{r['machine']}.{r['project']}" for r in tx.conversations.addresses()})


def address_of(tx: Tx, session_id: str) -> str | None:
    """The session's declared address, None until it declared both machine and project."""
    address: str | None = render_profile(tx.sessions.get(session_id), session_id)["address"]
    return address
