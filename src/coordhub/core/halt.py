"""The fleet halt switch (contract §2.8).

A halt is a durable record of who halted, why and when. While it stands every
mutating call is refused with 423 and the record, except the writes listed in
:class:`Exempt` — the one table of what a halt lets through and why (front
ends name the row they use; ``docs/api.md`` carries the table, a test
compares). Reads show the halt. It survives restarts because it is a row like
any other.

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
from coordhub.core.events import emit
from coordhub.core.identity import Actor, require_admin
from coordhub.errors import Conflict, Halted, Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx

FLEET = "*"


class Exempt(enum.Enum):
    """A kind of write a standing halt lets through: ``writes`` says which, ``why`` why (see the module docstring).

    :meth:`coordhub.core.hub.Hub.mutate` takes one of these as ``during_halt``;
    every other mutation is refused while halted.
    """

    writes: str
    why: str

    RESUME = ("`POST /resume`", "lifting the halt is what ends it")
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
    BOOTSTRAP = ("the hub's own start-up bookkeeping (minting the first admin token)",
                 "a halted hub must still be administrable after a restart")

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
