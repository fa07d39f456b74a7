"""The fleet halt switch (contract §2.8).

A halt is a durable record of who halted, why and when. While it stands every
mutating call that changes shared work (messages sent, leases, todos, work
items, components, tokens) is refused with 423 and the record; reads show it.
Resume, and the bookkeeping that keeps agents informed while they stand still
(presence heartbeats, marking messages shown, read or acked, notification
cursors, audit events), still go through. It survives restarts because it is a
row like any other.
"""

from __future__ import annotations

from typing import Any

from coordhub.clock import isoformat
from coordhub.core.events import emit
from coordhub.core.identity import Actor, require_admin
from coordhub.errors import Conflict, Halted, Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx

FLEET = "*"


def render(row: Row | None) -> dict[str, Any] | None:
    """The JSON form of a halt record, or None when not halted."""
    if row is None:
        return None
    return {"halted": True, "halted_by": row["halted_by"], "reason": row["reason"],
            "halted_at": isoformat(row["halted_at"])}


def current(tx: Tx) -> dict[str, Any] | None:
    """The standing fleet halt, or None."""
    return render(tx.halts.get(FLEET))


def refuse_if_halted(tx: Tx) -> None:
    """Raise ``Halted`` (423) with who, why and when if the fleet is halted."""
    halt = current(tx)
    if halt is not None:
        raise Halted(
            f"the fleet is halted by {halt['halted_by']} since {halt['halted_at']}: {halt['reason']} "
            "(an admin lifts it with `coord resume`)",
            halt=halt,
        )


def set_halt(tx: Tx, actor: Actor, reason: str, now: float) -> dict[str, Any]:
    """Halt the fleet (admin only); raise ``Conflict`` if it already is halted."""
    require_admin(actor, "halt")
    if not reason.strip():
        raise Invalid("a halt needs a reason")
    if tx.halts.get(FLEET) is not None:
        raise Conflict("the fleet is already halted", halt=current(tx))
    row: Row = {"scope": FLEET, "halted_by": actor.session_id, "reason": reason, "halted_at": now}
    tx.halts.put(row)
    emit(tx, "halt.set", now, session_id=actor.session_id, reason=reason)
    halt = render(row)
    assert halt is not None
    return halt


def resume(tx: Tx, actor: Actor, now: float) -> dict[str, Any]:
    """Lift the fleet halt (admin only); resuming a fleet that is not halted is a no-op."""
    require_admin(actor, "resume")
    was = current(tx)
    if tx.halts.clear(FLEET):
        emit(tx, "halt.lifted", now, session_id=actor.session_id)
    return {"halted": False, "resumed_by": actor.session_id, "was": was}
