"""Seed 002's MCP tools, by their names and arguments, over the hub's REST API.

What changed from seed 002, on purpose:

* The sender, acker and presence role are the caller's session (its token),
  never an argument. ``role`` must name the caller; anything else is an MCP
  error, where seed 002 let any session register or heartbeat as another.
* Failures are MCP errors (``is_error``) with ``<code>: <message>``, not
  ``{"success": false}`` results; successes still carry ``success: true``.
* ``coord_check_messages`` reads an inbox (the caller's by default; another's
  only with an admin token, else the hub's 403): with no ``to_instance``, the
  caller's direct messages and the broadcasts (seed 002 gave every
  instance's); naming an instance, its direct messages only, as seed 002's
  per-instance inbox held no broadcast; ``to_instance="all"``, the broadcasts
  only.
  ``from_instance``, ``msg_type`` and ``pending_only`` filter at most
  :data:`~coordhub.core.seed002.INBOX_PAGE` messages of that inbox per call, one hub page (the hub has no
  such filters, and a call that looked through many pages cost the hub many
  requests for one charged to the rate limit). When more of the inbox is
  left, ``next_before_seq`` says where: the agent passes it back as
  ``before_seq`` to look further down, one page per call.
* Ack state is per recipient (seed 002 had one flag per message), and an ack
  ``comment`` is delivered to the sender as a reply (the hub keeps no ack
  comment).
* Message ids: an imported message (``coord import redis``) is shown by its
  seed id (``msg-1a2b3c4d``), and either id is accepted.
* Notifications are a cursor over the hub's event log, not a destructive
  pop: reading twice returns the same events until ``ack=true`` advances the
  cursor past what was returned.
* Retries: ``coord_publish_message``, ``coord_ack_message`` (its comment) and
  ``coord_register_presence`` take an ``idempotency_key``
  (:func:`coordhub.mcp.connect.retry_key`); the others' writes only set a
  mark that a repeat leaves as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from coordhub.client.wire import NEXT_BEFORE_SEQ
from coordhub.core.identity import same_session, unknown_recipient_warning
from coordhub.core.seed002 import (
    BROADCAST,
    INBOX_PAGE,
    addressed,
    display_id,
    hub_message_id,
    matches,
    seed_message,
    seed_notification,
    seed_presence,
    unknown_message,
)
from coordhub.mcp.bounds import RESULT_CHARS, size
from coordhub.mcp.connect import call_numbered_page, call_object, call_page, drop_none, me, retry_key
from coordhub.mcp.tools import API, RetryKeyArg, recipient

# Seed 002's MessageType enum at its last commit (26 values; the README lists the first 8 kinds).
MessageType = Literal[
    "READY_FOR_REVIEW", "REVIEW_COMPLETE", "REVIEW_FAILED", "CONTRACT_CHANGE_PROPOSED", "CONTRACT_REVIEW_NEEDED",
    "CONTRACT_FEEDBACK", "CONTRACT_APPROVED", "CONTRACT_REJECTED", "META_CHANGE_REQUEST", "META_CHANGE_COMPLETE",
    "INTERFACE_UPDATE", "BLOCKING_ISSUE", "GENERAL", "STATUS_UPDATE", "HEARTBEAT", "NOTIFICATION",
    "DEVOPS_STARTED", "DEVOPS_STEP_UPDATE", "DEVOPS_COMPLETE", "DEVOPS_FAILED", "SESSION_START", "SESSION_END",
    "SWARM_STARTED", "SWARM_REVIEWER_COMPLETE", "SWARM_COMPLETE", "SWARM_FAILED",
]
Limit = Annotated[int, Field(ge=1, le=1000)]


async def _as_self(ctx: Context, role: str) -> str:
    """The caller's session, if ``role`` names it; ``ToolError`` otherwise."""
    session = await me(ctx)
    if not same_session(role, session):
        raise ToolError(f"forbidden: role {role!r} is not you: this session is {session!r}; "
                        "identity comes from the token, not from arguments")
    return session


async def coord_publish_message(
    ctx: Context,
    msg_type: MessageType,
    subject: str,
    description: str,
    to_instance: Annotated[str, Field(description="Recipient instance, or 'all'.")] = "orchestrator",
    requires_ack: bool = True,
    idempotency_key: RetryKeyArg = None,
) -> dict[str, Any]:
    """Publish a message to another instance (from yours); recipient_known false: the hub never saw it."""
    m = await call_object(ctx, "POST", f"{API}/messages", body={
        "to_session": recipient(to_instance), "subject": subject, "body": description, "message_type": msg_type,
        "requires_ack": requires_ack}, key=retry_key(ctx, "coord_publish_message", idempotency_key))
    out = {"success": True, "message_id": m["id"], "type": m["message_type"], "from": m["from_session"],
           "to": BROADCAST if m["broadcast"] else m["to_session"], "timestamp": m["created_at"],
           "requires_ack": m["requires_ack"], "recipient_known": m.get("recipient_known")}
    if m.get("recipient_known") is False:
        out["warning"] = unknown_recipient_warning(m["to_session"], m.get("did_you_mean") or [])
    return out


async def coord_check_messages(
    ctx: Context,
    to_instance: Annotated[str | None, Field(description="Whose inbox, broadcasts left out (default: yours with "
                                                     "the broadcasts); 'all': broadcasts only.")]
    = None,
    from_instance: str | None = None,
    msg_type: MessageType | None = None,
    pending_only: Annotated[bool, Field(description="Only ones needing an ack not yet given.")] = False,
    limit: Limit = 100,
    before_seq: Annotated[int | None, Field(ge=1, le=2**62, description=(
        "Look below this seq: a previous answer's next_before_seq."))] = None,
) -> dict[str, Any]:
    """Query messages with filters, newest first; looks at 500 inbox messages a call, then gives next_before_seq."""
    broadcasts = to_instance is not None and recipient(to_instance) is None
    owner = None if broadcasts else to_instance
    viewer = owner or await me(ctx)
    filtered = to_instance is not None or from_instance is not None or msg_type is not None or pending_only
    asked = INBOX_PAGE if filtered else min(limit, INBOX_PAGE)
    page, following = await call_numbered_page(ctx, f"{API}/messages", {
        "to_session": owner, "limit": asked, "before_seq": before_seq}, NEXT_BEFORE_SEQ)
    found, last = _matching(page, limit, lambda m: matches(m, from_instance, msg_type, pending_only)
                            and addressed(m, to_instance))
    more = last < len(page) or following is not None
    after = page[last - 1]["seq"] if more and last else None
    out: dict[str, Any] = {"success": True, "count": len(found), "messages": [seed_message(m, viewer) for m in found],
                           "scanned": last, "next_before_seq": after}
    if after is not None:
        out["more"] = (f"looked through {last} inbox messages, down to seq {after}; "
                       f"call again with before_seq={after} to look further")
    return out


def _matching(page: list[dict[str, Any]], limit: int,
              keep: Callable[[dict[str, Any]], bool]) -> tuple[list[dict[str, Any]], int]:
    """The first ``limit`` messages of ``page`` that ``keep`` keeps, and how many of ``page`` were looked at."""
    found: list[dict[str, Any]] = []
    for i, m in enumerate(page):
        if keep(m):
            found.append(m)
            if len(found) == limit:
                return found, i + 1
    return found, len(page)


async def coord_ack_message(ctx: Context,
                            message_id: Annotated[str, Field(description="A hub id, or an imported message's "
                                                                         "seed id (msg-…).")],
                            comment: Annotated[str | None, Field(description="Sent to the sender as a reply.")]
                            = None, idempotency_key: RetryKeyArg = None) -> dict[str, Any]:
    """Acknowledge a message."""
    key = retry_key(ctx, "coord_ack_message", idempotency_key) if comment else None  # an ack alone is idempotent
    try:
        m = await call_object(ctx, "POST", f"{API}/messages/{hub_message_id(message_id)}/ack")
    except ToolError as err:  # a seed id's 404 named the UUID it maps to, which the agent never gave
        text = unknown_message(message_id, "coord_check_messages") if str(err).startswith("not_found:") \
            else None
        if text is None:
            raise
        raise ToolError(f"not_found: {text}") from None
    session = await me(ctx)
    out: dict[str, Any] = {"success": True, "message_id": display_id(m), "acknowledged_by": session}
    if comment and m["from_session"] != session:
        sent = await call_object(ctx, "POST", f"{API}/messages", body=drop_none({
            "to_session": m["from_session"], "subject": f"Re: {m['subject']}"[:500], "body": comment,
            "reply_to": m["id"]}), key=key, step="comment")
        out["comment_message_id"] = sent["id"]
    return out


async def coord_get_presence(ctx: Context) -> dict[str, Any]:
    """Check instance presence (sessions by id, as many as about 50,000 characters hold)."""
    # the seed's instances were a handful of roles; a hub's sessions may be thousands (every orchestrator worker
    # is one), so this answers as many as one result holds and says when more follow
    rows, after = await call_page(ctx, f"{API}/presence", {}, list)
    instances: dict[str, Any] = {}
    total = 0
    for row in rows:
        p = seed_presence(row)
        total += size(p) + len(p["instance_id"]) + 8  # the record as a value under its id's key
        if total > RESULT_CHARS and instances:
            break
        instances[p["instance_id"]] = p
    answer: dict[str, Any] = {"success": True, "instances": instances}
    if after is not None or len(instances) < len(rows):
        answer["note"] = (f"{len(instances)} instances shown, and more follow: the presence tool lists every "
                          "session (its next_cursor reads on)")
    return answer


async def coord_get_notifications(
    ctx: Context,
    limit: Limit = 100,
    ack: Annotated[bool, Field(description="Advance past the ones returned; else they come back next time.")]
    = False,
) -> dict[str, Any]:
    """Your pending notifications (events since your cursor), oldest first."""
    page = await call_object(ctx, "GET", f"{API}/notifications", params={"limit": limit})
    events = page["events"][:limit]
    cursor = page["cursor"]
    if ack and events:
        cursor = (await call_object(ctx, "POST", f"{API}/notifications/ack", body={"up_to": events[-1]["id"]}))[
            "cursor"]
    notes = [seed_notification(e) for e in events]
    return {"success": True, "count": len(notes), "notifications": notes, "cursor": cursor}


async def coord_register_presence(
    ctx: Context,
    role: Annotated[str, Field(description="Must be your own session id.")],
    worktree_path: str | None = None,
    session_id: Annotated[str | None, Field(description="Client session id (e.g. Claude Code's).")] = None,
    idempotency_key: RetryKeyArg = None,
) -> dict[str, Any]:
    """Register your presence."""
    await _as_self(ctx, role)
    p = await call_object(ctx, "POST", f"{API}/presence/register", body=drop_none({
        "client": "coord-mcp", "client_session": session_id, "cwd": worktree_path}),
        key=retry_key(ctx, "coord_register_presence", idempotency_key))
    return {"success": True, "role": role, "registered_at": p.get("registered_at") or p.get("last_heartbeat"),
            "worktree_path": worktree_path, "session_id": session_id, "incarnation": p.get("incarnation")}


async def coord_deregister_presence(ctx: Context, role: str) -> dict[str, Any]:
    """Mark yourself offline."""
    await _as_self(ctx, role)
    await call_object(ctx, "POST", f"{API}/presence/deregister", body={})
    return {"success": True, "role": role}


async def coord_heartbeat(ctx: Context, role: str) -> dict[str, Any]:
    """Keep your presence alive."""
    await _as_self(ctx, role)
    p = await call_object(ctx, "POST", f"{API}/presence/heartbeat", body={})
    return {"success": True, "role": role, "last_heartbeat": p.get("last_heartbeat"),
            "incarnation": p.get("incarnation")}


READ_ONLY = {"coord_check_messages", "coord_get_presence"}

SEED002 = (coord_publish_message, coord_check_messages, coord_ack_message, coord_get_presence,
           coord_get_notifications, coord_register_presence, coord_deregister_presence, coord_heartbeat)
