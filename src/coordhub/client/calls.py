"""The client's calls for the fleet's messages, todos, leases, components, halts and tokens (docs/api.md).

:class:`FleetCalls` is a base of :class:`coordhub.client.client.CoordClient`: every method is one request
through the client's :meth:`~coordhub.client.client.CoordClient.call`, so it shares the client's identity,
retries and softfail queue; writes whose effect is wanted now, or whose answer is needed, pass ``queue=False``
(an unreachable hub then raises :class:`~coordhub.client.outcomes.Unreachable`).
"""

from __future__ import annotations

from typing import Any

from coordhub import ids
from coordhub.client.conversations import ConversationCalls
from coordhub.client.downgrade import MESSAGES, downgraded
from coordhub.client.outcomes import BadArgument, HubError, Listed, Unreachable
from coordhub.client.wire import NEXT_CURSOR

MAX_ROWS = 10_000  # todos, components or sessions one listing reads at most (20 pages of todos, 10 of the others)


def record_id(value: str, name: str) -> str:
    """``value`` as the hub spells a record id (:func:`coordhub.ids.canonical`) when it spells one; else
    :class:`~coordhub.client.outcomes.BadArgument` naming ``name`` and the value, before anything is sent.

    Messages, todos and leases are named by UUIDs and their routes take nothing else (422). Checked here, where
    every call that puts one in a path passes, because such a write is queued when the hub cannot be reached: a
    malformed id (``coord todo done 12``) was reported as queued (exit 0) and refused only at its replay, when
    nobody was watching.
    """
    if not ids.spells_id(value):
        raise BadArgument(f"{name} {value[:80]!r} is not an id: ids are UUIDs such as {ids.EXAMPLE}; nothing was "
                          "sent or queued")
    return ids.canonical(value)


class FleetCalls(ConversationCalls):
    """Presence, status, messages, todos, leases, components, halts and tokens, one request each."""

    def presence(self, state: str | None = None, most: int = MAX_ROWS) -> Listed:
        """Sessions and their presence states, by id: every page of them up to ``most`` (:meth:`pages`). The hub
        answers 1,000 a page since 6793056; one page was all this read, so ``coord presence`` left out, without a
        word, every session after the 1,000th by id (an orchestrator worker is a session of its own)."""
        return self.pages("/api/coord/presence", most, state=state)

    def status(self, project_key: str | None = None) -> Any:
        """The status overview."""
        return self.call("GET", "/api/coord/status", params={"project_key": project_key})

    def send_message(self, to_session: str | None, subject: str, body: str, **extra: Any) -> Any:
        """Send a message; ``to_session=None`` broadcasts, unless ``extra`` names ``to_machine`` (a machine name:
        the hub sends to its session, see :func:`coordhub.core.identity.machine_recipient`). A hub from before
        ``to_machine`` is asked again with seed 000's session of the machine
        (:func:`~coordhub.client.downgrade.downgraded`), so a newer client still reaches an older hub."""
        request = {"to_session": to_session, "subject": subject, "body": body, **extra}
        try:
            return self.call("POST", MESSAGES, body=request)
        except HubError as err:
            again = downgraded("POST", MESSAGES, request, err)
            if again is None:
                raise
            return self.call("POST", MESSAGES, body=again)

    def inbox(self, unread_only: bool = True, limit: int = 100, fields: dict[str, str] | None = None) -> Any:
        """This session's messages (unread only by default); ``fields`` receives the answer's header fields (the
        next page's ``coord-next-after-seq`` or ``coord-next-before-seq``)."""
        return self.call("GET", "/api/coord/messages",
                         params={"unread_only": str(unread_only).lower(), "limit": limit}, fields=fields)

    def mark_read(self, message_id: str) -> Any:
        """Mark a message read for this session; :class:`~coordhub.client.outcomes.BadArgument` for an id that is no
        id (:func:`record_id`), before anything is sent or queued. So do :meth:`ack`, :meth:`todo_done`,
        :meth:`release` and :meth:`renew`."""
        return self.call("PUT", f"/api/coord/messages/{record_id(message_id, 'message id')}/read")

    def ack(self, message_id: str) -> Any:
        """Acknowledge a message."""
        return self.call("POST", f"/api/coord/messages/{record_id(message_id, 'message id')}/ack")

    def add_todo(self, text: str, **fields: Any) -> Any:
        """Create a todo (seed 000 fields)."""
        return self.call("POST", "/api/coord/todos", body={"text": text, **fields})

    def todos(self, user: str | None = None, project_key: str | None = None, status: str = "pending",
              most: int = MAX_ROWS) -> Listed:
        """Todos, oldest first: every page of them up to ``most`` (:meth:`pages`)."""
        return self.pages("/api/coord/todos", most, user=user, project_key=project_key, status=status)

    def components(self, project_key: str | None = None, most: int = MAX_ROWS) -> Listed:
        """Component states, most recently updated first: every page of them up to ``most`` (:meth:`pages`)."""
        return self.pages("/api/coord/components", most, project_key=project_key)

    def pages(self, path: str, most: int, **params: Any) -> Listed:
        """``GET path`` and the pages after it, one request each, while the hub names a next one
        (``Coord-Next-Cursor``, asked for with ``cursor=``) and fewer than ``most`` rows were read.

        The hub answers 500 todos or 1,000 components (and about 4 MiB) a page; one page was all a listing read,
        so ``coord todo list`` showed the first 500 and said nothing of the rest. ``Listed.more``: stopped with
        pages left. Pages are read one after another, not as one snapshot. Raises as :meth:`call` does, and
        ``Unreachable`` for an answer that is not a list.
        """
        out, cursor = Listed(), None
        while True:
            fields: dict[str, str] = {}
            rows = self.call("GET", path, params={**params, "cursor": cursor}, fields=fields)
            if not isinstance(rows, list):
                raise Unreachable(f"the hub answered {path} with {type(rows).__name__}, not a list")
            out.extend(rows)
            following = fields.get(NEXT_CURSOR)
            if not rows or not following or following == cursor:  # a hub's pages are never empty
                return out
            if len(out) >= most:
                out.more = True
                return out
            cursor = following

    def todo_done(self, todo_id: str) -> Any:
        """Mark a todo done."""
        return self.call("POST", f"/api/coord/todos/{record_id(todo_id, 'todo id')}/done")

    def claim(self, project_key: str, resource: str, description: str | None, ttl_hours: float = 2.0) -> Any:
        """Claim a lease; ``HubError`` with code ``lease_conflict`` names the holder.

        Never queued: a lease that might be granted later is not a lease held
        now, so an unreachable hub raises :class:`~coordhub.client.outcomes.Unreachable`.
        """
        return self.call("POST", "/api/coord/locks", body={"project_key": project_key, "resource": resource,
                                                           "description": description, "ttl_hours": ttl_hours},
                         queue=False)

    def release(self, lease_id: str, force: bool = False, reason: str | None = None) -> Any:
        """Release a lease (``force`` for an admin's force-release); another's stale one is taken over (``reason``)."""
        return self.call("DELETE", f"/api/coord/locks/{record_id(lease_id, 'lease id')}",
                         params={"force": "true" if force else None, "reason": reason})

    def renew(self, lease_id: str, ttl_hours: float | None = None) -> Any:
        """Renew a lease."""
        return self.call("POST", f"/api/coord/locks/{record_id(lease_id, 'lease id')}/renew",
                         body={"ttl_hours": ttl_hours})

    def check_fence(self, fence: int, resource: str | None = None, project_key: str | None = None) -> Any:
        """Whether a fence is still current."""
        return self.call("GET", "/api/coord/locks/check",
                         params={"fence": fence, "resource": resource, "project_key": project_key})

    def set_component(self, project_key: str, component: str, state: str, **fields: Any) -> Any:
        """Record a component's state."""
        return self.call("PUT", "/api/coord/components",
                         body={"project_key": project_key, "component": component, "state": state, **fields})

    def halt(self, reason: str, scope: str | None = None, kill: bool = False, refresh: bool = False) -> Any:
        """Halt ``scope`` (``fleet`` by default, ``machine:<m>``, ``project:<p>``); ``kill`` stops its workers;
        ``refresh``: a halt standing there gets ``reason`` (answered with ``refreshed: true``) instead of a 409.

        Never queued (:class:`~coordhub.client.outcomes.Unreachable` when the hub cannot be reached): a halt is
        asked for to take effect now, and one queued until the user's next command would have stopped nothing
        meanwhile."""
        body: dict[str, Any] = {"reason": reason, **({"scope": scope} if scope else {})}
        if kill:
            body["kill"] = True
        if refresh:
            body["refresh"] = True
        return self.call("POST", "/api/coord/halt", body=body, queue=False)

    def resume(self, scope: str | None = None, engage_all: bool = False) -> Any:
        """Lift the halt of ``scope`` (the fleet by default); ``engage_all`` clears every pause in it. Never
        queued, as :meth:`halt`."""
        body = {**({"scope": scope} if scope else {}), **({"engage_all": True} if engage_all else {})}
        return self.call("POST", "/api/coord/resume", body=body or None, queue=False)

    def engage(self) -> Any:
        """Re-engage this session after a resume paused it (never queued: it must be seen to take effect)."""
        return self.call("POST", "/api/coord/engage", queue=False)

    def create_token(self, name: str, admin: bool = False) -> Any:
        """Create a token (admin); the result's ``token`` is shown only now. Never queued: the hub shows a token
        only in the answer to the request that made it, and a queued request's answer reaches nobody."""
        return self.call("POST", "/api/coord/tokens", body={"name": name, "admin": admin}, queue=False)

    def tokens(self, include_revoked: bool = False) -> Any:
        """Token records (admin)."""
        return self.call("GET", "/api/coord/tokens", params={"include_revoked": str(include_revoked).lower()})

    def revoke_token(self, name: str, keep_leases: bool = False) -> Any:
        """Revoke a session's tokens (admin), ending its leases unless ``keep_leases``. Never queued, as
        :meth:`halt`: a leaked token revoked at the user's next command would have served the thief meanwhile."""
        return self.call("DELETE", f"/api/coord/tokens/{name}",
                         params={"keep_leases": "true" if keep_leases else None}, queue=False)
