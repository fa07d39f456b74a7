"""The client's calls for seed 004's typed conversations (issue 9; docs/api.md, "Conversations").

:class:`ConversationCalls` is a base of :class:`coordhub.client.client.CoordClient`: every method is one
request through the client's :meth:`~coordhub.client.client.CoordClient.call`, so it shares the client's
identity, retries and softfail queue (writes that need their answer at once pass ``queue=False``).
"""

from __future__ import annotations

from typing import Any

from coordhub.client.outcomes import BadArgument
from coordhub.client.wire import NEXT_AFTER, whole_number
from coordhub.core.orgturn import check_conversation_id
from coordhub.errors import Invalid

CONVERSATIONS = "/api/coord/conversations"
PAGE = 1000  # turns the hub answers per page at most (coordhub.core.conversations.MAX_PAGE)
INBOX_MOST = 10_000  # pending turns one conversation_inbox() reads at most, by default


class ConversationCalls:
    """Profile, keys, turns and conversations of the hub's ``/api/coord/conversations`` routes."""

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
             idempotency_key: str | None = None, queue: bool = True, fields: dict[str, str] | None = None) -> Any:
        """One request to the hub (:meth:`coordhub.client.client.CoordClient.call` does it)."""
        raise NotImplementedError

    def profile(self) -> Any:
        """This session's conversation address and tools: ``{"session_id","machine","project","address","tools"}``."""
        return self.call("GET", f"{CONVERSATIONS}/profile")

    def set_profile(self, machine: str | None = None, project: str | None = None,
                    tools: list[str] | None = None) -> Any:
        """Declare this session's machine, project and/or tools (omitted ones keep their value). Never queued."""
        body = {k: v for k, v in (("machine", machine), ("project", project), ("tools", tools)) if v is not None}
        return self.call("PUT", f"{CONVERSATIONS}/profile", body=body, queue=False)

    def addresses(self) -> Any:
        """Every declared address with its sessions (and their presence) and pending count."""
        return self.call("GET", f"{CONVERSATIONS}/addresses")

    def add_key(self, armored: str, proof: str) -> Any:
        """Register an armored OpenPGP public key for this session; ``{"session_id","fingerprint","created_at"}``.

        ``proof``: a detached armored signature by the key over
        :func:`coordhub.core.signingkeys.proof_statement` of this hub, this session and the key."""
        return self.call("POST", f"{CONVERSATIONS}/keys", body={"armored": armored, "proof": proof}, queue=False)

    def keys(self, session_id: str | None = None) -> Any:
        """The public keys registered for ``session_id`` (default: this session)."""
        return self.call("GET", f"{CONVERSATIONS}/keys", params={"of": session_id})

    def delete_key(self, fingerprint: str) -> Any:
        """Remove one of this session's keys."""
        return self.call("DELETE", f"{CONVERSATIONS}/keys/{fingerprint}", queue=False)

    def send_turn(self, to: str, content: str | None = None, *, signature: str | None = None,
                  expect_sequence: int | None = None, queue: bool = True, idempotency_key: str | None = None,
                  **fields: Any) -> Any:
        """Send a turn: the file form (``content``, optional ``signature``/``expect_sequence``) or the field form.

        Field form: ``conversation_id``, ``type``, ``body`` and optionally
        ``title``, ``requires_tools``, ``release_status``,
        ``protocol_version``. Both forms take ``from_machine`` and
        ``from_project``. The answer is the turn with its ``decision``
        (``dedup`` for an identical retry). ``queue=False`` when the caller needs
        the decision now (a signed send waits for its sequence).
        """
        body: dict[str, Any] = {"to": to, **{k: v for k, v in fields.items() if v is not None}}
        for key, value in (("content", content), ("signature", signature), ("expect_sequence", expect_sequence)):
            if value is not None:
                body[key] = value
        return self.call("POST", f"{CONVERSATIONS}/turns", body=body, queue=queue, idempotency_key=idempotency_key)

    def turns(self, to_machine: str | None = None, after: int = 0, limit: int = 1000) -> Any:
        """Accepted turns addressed to projects on ``to_machine`` (default: this session's), ``id > after``, oldest
        first, at most ``limit`` (≤ 1000): what ``coord conv sync`` pages through."""
        return self.call("GET", f"{CONVERSATIONS}/turns", params={"to_machine": to_machine, "after": after,
                                                                   "limit": limit})

    def turn(self, turn_id: int) -> Any:
        """One turn this session may see."""
        return self.call("GET", f"{CONVERSATIONS}/turns/{turn_id}")

    def conversations(self, state: str | None = None, project: str | None = None) -> Any:
        """Conversations, optionally only ``open``/``released`` ones or one project's."""
        return self.call("GET", CONVERSATIONS, params={"state": state, "project": project})

    def conversation(self, conversation_id: str, limit: int | None = None) -> Any:
        """One conversation with its first page of turns, at most ``limit`` of them (``HubError`` 404 when unknown
        or this session takes no part in it)."""
        return self.call("GET", f"{CONVERSATIONS}/{conversation_id}", params={"limit": limit})

    def conversation_turns(self, conversation_id: str) -> list[Any]:
        """Every turn of a conversation this session may read (accepted ones and its own refused ones), oldest
        first, read page after page (:data:`PAGE` turns and about 4 MiB of text a page, ``next_after`` naming the
        next page). ``HubError`` 404 when the conversation is unknown or this session takes no part in it."""
        turns: list[Any] = []
        after = 0
        while True:
            page = self.call("GET", f"{CONVERSATIONS}/{conversation_id}", params={"after": after or None,
                                                                                 "limit": PAGE})
            found = page.get("turns") if isinstance(page, dict) else None
            if not isinstance(found, list):
                return turns
            turns += found
            following = page.get("next_after")  # a JSON number, null on the last page
            if not found or type(following) is not int or following <= after:
                return turns
            after = following

    def next_sequence(self, conversation_id: str) -> Any:
        """``{"conversation_id", "next_sequence"}``: the sequence the conversation's next accepted turn gets."""
        return self.call("GET", f"{CONVERSATIONS}/{conversation_id}/next-sequence")

    def release_conversation(self, conversation_id: str, to: str | None = None, release_status: str | None = None,
                             body: str | None = None) -> Any:
        """Send the ``release`` turn that ends the pending state of a conversation's turns (seed 004).

        :class:`~coordhub.client.outcomes.BadArgument`, before anything is sent or queued, for a
        ``conversation_id`` the hub refuses whatever the conversation (not a slug, or a route's name:
        :func:`coordhub.core.orgturn.check_conversation_id`): this write is queued when the hub is unreachable."""
        try:
            check_conversation_id(conversation_id)
        except Invalid as exc:
            raise BadArgument(exc.message + "; nothing was sent or queued") from None
        fields = {k: v for k, v in (("to", to), ("release_status", release_status), ("body", body)) if v is not None}
        return self.call("POST", f"{CONVERSATIONS}/{conversation_id}/release", body=fields)

    def conversation_inbox(self, address: str | None = None, *, most: int = INBOX_MOST) -> Any:
        """Pending turns for ``address`` (default: this session's declared address), oldest first: every one, up to
        ``most``, read page after page (the hub answers at most :data:`PAGE` turns and about 4 MiB of text a page,
        and names the next page's ``after`` in ``Coord-Next-After``; a hub without it answers one page)."""
        turns: list[Any] = []
        after = 0
        while True:
            fields: dict[str, str] = {}
            page = self.call("GET", f"{CONVERSATIONS}/inbox", params={"address": address, "after": after or None,
                                                                     "limit": PAGE}, fields=fields)
            if not isinstance(page, list):
                return page
            turns += page
            following = whole_number(fields.get(NEXT_AFTER))
            if not page or following is None or following <= after or len(turns) >= most:
                return turns
            after = following

    def conversation_status(self, machine: str | None = None) -> Any:
        """Seed 004's ``cross-agent-status --json`` shape for the projects of ``machine`` (default: this session's)."""
        return self.call("GET", f"{CONVERSATIONS}/status", params={"machine": machine})
