"""Operations named, with plain-data arguments: what another process can run for a front end.

A front end usually hands :meth:`coordhub.core.hub.Hub.mutate` a closure. The
hottest writes (a send, a claim, a release, a renewal, an unverified
conversation turn) and the routine ones every agent makes (presence,
marking read, acks) are instead a :class:`Call`:
a name from :data:`OPERATIONS` and the keyword arguments of that core function,
all plain data (strings, numbers, :class:`Actor`). A write whose answer
carries state it also changes, so that a lost answer loses that state, stays a
closure: the hooks' ``POST /messages/unshown`` marks what it returns shown,
and its callers never retry (a lost answer would never be injected); it runs
where it arrives. A call runs
exactly as the closure would (``call(tx, now)``), and it can also cross a
process boundary: under ``coord serve --workers N`` the serving processes ship
their calls to one writer process (:mod:`coordhub.writer_process`), whose
batches are then not split between processes taking turns at the database's
writer lock (issue 15, "serving processes in front of one writer").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from coordhub.core import leases, messages, presence
from coordhub.core.identity import Actor
from coordhub.store.tx import Tx


def _send_turn(tx: Tx, actor: Actor, *, now: float, draft: dict[str, Any]) -> Any:
    """:func:`coordhub.core.conversations.send_unverified` (imported here: conversations imports the hub, which
    imports this module)."""
    from coordhub.core import conversations

    return conversations.send_unverified(tx, actor, now=now, draft=draft)


#: Every operation a :class:`Call` may name: ``name -> fn(tx, actor, *, now, **arguments)``.
OPERATIONS: dict[str, Callable[..., Any]] = {
    "conversations.send": _send_turn,
    "messages.send": messages.send,
    "messages.mark_read": messages.mark_read,
    "messages.ack": messages.ack,
    "presence.register": presence.register,
    "presence.heartbeat": presence.heartbeat,
    "presence.deregister": presence.deregister,
    "leases.claim": leases.claim,
    "leases.release": leases.release,
    "leases.revoke": leases.revoke,
    "leases.renew": leases.renew,
}


class Call:
    """``OPERATIONS[name](tx, actor, now=now, **arguments)`` as an operation ``op(tx, now)``.

    ``arguments`` must be plain data: strings, numbers, None, booleans, and
    lists and dicts of them (they cross to the writer process as :meth:`plain`). Raises ``KeyError`` at
    construction for a name not in :data:`OPERATIONS`: only those may run in
    another process.
    """

    __slots__ = ("name", "actor", "arguments", "_fn")

    def __init__(self, name: str, actor: Actor, **arguments: Any) -> None:
        self._fn = OPERATIONS[name]
        self.name = name
        self.actor = actor
        self.arguments = arguments

    def __call__(self, tx: Tx, now: float) -> Any:
        return self._fn(tx, self.actor, now=now, **self.arguments)

    def plain(self) -> tuple[str, str, bool, int | None, dict[str, Any]]:
        """``(name, session id, is admin, token epoch, arguments)``: the call as plain data (:meth:`from_plain`
        inverts)."""
        return self.name, self.actor.session_id, self.actor.is_admin, self.actor.token_epoch, self.arguments

    @classmethod
    def from_plain(cls, plain: tuple[str, str, bool, int | None, dict[str, Any]]) -> Self:
        """The call :meth:`plain` gave; ``KeyError`` for a name not in :data:`OPERATIONS`."""
        name, session_id, is_admin, token_epoch, arguments = plain
        return cls(name, Actor(session_id, is_admin=is_admin, token_epoch=token_epoch), **arguments)

    def __repr__(self) -> str:
        return f"Call({self.name!r}, {self.actor!r}, {', '.join(f'{k}={v!r}' for k, v in self.arguments.items())})"
