"""Request and response bodies of the message endpoints (``/api/coord/messages``): sending, a message as one
session sees it, the unshown feed and the unread count."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Path
from pydantic import BeforeValidator, Field

from coordhub.api.schemas import CallerName, Line, Out, Strict, Subject, Text
from coordhub.core.seed002 import SEED_ID_PREFIX, hub_message_id

SEED_ID_MAX = 200  # the longest source id an import takes (ImportedMessage.id, a Line)


def _seed_ref(value: object) -> object:
    """A seed-002 message id (``msg-1a2b3c4d``, at most :data:`SEED_ID_MAX` characters) as the hub id an import
    gave that message (:func:`~coordhub.core.seed002.hub_message_id`); anything else as given, for the UUID check.

    The hub id is derived from the seed id alone, so the lookup, and who may see the message, are the hub id's:
    a seed id of a message the caller may not see answers 404 as one no message has.
    """
    if isinstance(value, str) and value.startswith(SEED_ID_PREFIX) and len(value) <= SEED_ID_MAX:
        return hub_message_id(value)
    return value


MessageRef = Annotated[uuid.UUID, BeforeValidator(_seed_ref), Path(
    description="The message's hub id (a UUID) or, for a message imported from seed 002, its seed id (msg-…).")]


class MessageSend(Strict):
    """``POST /api/coord/messages``. ``to_session`` (and ``to_machine``) omitted, null or ``ALL_SESSIONS``:
    broadcast."""

    subject: Subject
    body: Text = ""
    to_session: Line | None = None
    to_machine: Line | None = Field(None, description="Instead of to_session: a machine name, as seed 000's CLI "
                                    "takes a bare name: its session MACHINE/claude-main, or, when the hub has never "
                                    "seen that one but knows a session named exactly MACHINE (seed 002's "
                                    "instances), that session. The answer's to_session says which.")
    from_session: Line | None = Field(None, description="Must be the caller's own session (with auth).")
    session_id: CallerName = None
    project_key: Line | None = None
    thread_id: Line | None = None
    reply_to: Line | None = Field(None, description="Id of the message this answers; joins its thread.")
    importance: str = Field("normal", description="low, normal, high or urgent.")
    message_type: Line | None = Field(None, description="Free label; seed 002's types are the documented set.")
    requires_ack: bool = False
    ack_wait_seconds: float | None = Field(None, description="Redeliver if not acked this long (default 300).")
    max_deliveries: int | None = Field(None, description="Dead-letter after this many deliveries (default 3).")
    escalate_to: Line | None = Field(None, description="Session told (with the sender) when it is dead-lettered.")
    to_incarnation: int | None = Field(None, ge=1, le=2**31 - 1, description="Recipient incarnation it is meant for "
                                                                "(default: the recipient's live one).")


class MessageOut(Out):
    """A message as one session sees it (its own read and ack state)."""

    id: str
    seq: int
    from_session: str
    to_session: str
    broadcast: bool
    project_key: str | None
    subject: str
    body: str
    thread_id: str | None
    reply_to: str | None
    importance: str
    message_type: str | None
    requires_ack: bool
    created_at: str
    queued_at: str | None = Field(None, description="When the client first tried this write, if it was "
                                  "replayed from its softfail queue (X-Coord-Queued-At); else null.")
    read: bool
    read_at: str | None
    acked_at: str | None
    to_incarnation: int | None
    earlier_incarnation: bool | None = Field(None, description="In an inbox and /messages/unshown: true when the "
                                             "message was sent while an earlier incarnation of the session was "
                                             "live (it was meant for that process and may no longer apply).")
    delivered_at: str | None
    deliveries: int
    ack_deadline: str | None
    dead_lettered_at: str | None
    updated_at: str = Field(description="Seed 001's field: the latest of its times as this session sees them "
                                        "(sent, read, acked, delivered again, dead-lettered).")
    origin_id: str | None = Field(None, description="The id it had in the system it was imported from (seed "
                                  "002's msg-…), which front ends accept for it; null for messages sent here.")
    recipient_known: bool | None = Field(None, description="In the answer to a send only: false when the hub has "
                                         "never seen the recipient (no token, never acted) — it still gets the "
                                         "message if it comes later; null for a broadcast.")
    did_you_mean: list[str] | None = Field(None, description="With recipient_known false: known session ids "
                                           "that look like the recipient, best first.")


class MessageMarkedOut(MessageOut):
    """A message marked read (``PUT …/read``) or acked (``POST …/ack``) for the caller."""

    already: bool = Field(description="True when the caller had read it (…/read) or acked it (…/ack) before this "
                                      "request: the request changed nothing.")


class Unshown(Strict):
    """``POST /api/coord/messages/unshown``."""

    limit: int = Field(5, ge=1, le=500)


class UnshownOut(Out):
    """Messages (and pending conversation turns) just shown to the agent, and how many more are waiting."""

    messages: list[MessageOut]
    more: int
    turns: list[dict[str, Any]] = Field(default_factory=list, description="Pending conversation turns to your "
                                        "address not shown before (see /api/coord/conversations/turns/{id}).")
    turns_more: int = 0


class UnreadCountOut(Out):
    """How many messages a session has not read."""

    session_id: str | None
    unread: int
