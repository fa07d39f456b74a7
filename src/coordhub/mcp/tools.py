"""The default tool set: messages, leases, todos, work items, components, conversations, presence, status, engage.

Each tool is one REST call (two for ``reply`` and ``read_message``; a list
answered to the end of the hub's page asks for the next item too) made as
the caller; the sender, holder or author is always the caller's session,
never an argument. Descriptions are kept short on purpose: the whole
``tools/list`` of this set must stay well under 5,000 tokens of an agent's
context. Every result is a JSON object (lists are wrapped, e.g.
``{"messages": [...]}``). Id arguments are checked before a path is built
from them (:func:`coordhub.mcp.connect.record_id`). A tool that creates or
changes a record takes ``idempotency_key`` (:data:`RetryKeyArg`); the tools
whose write only sets a mark a repeat leaves as it is (``read_message``,
``ack_message``, ``engage``) take none.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
import pydantic_core
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from coordhub.clock import parse_iso
from coordhub.core import paging
from coordhub.core.identity import is_broadcast
from coordhub.mcp.connect import (
    call_list,
    call_object,
    conversation_slug,
    drop_none,
    hub_resource,
    me,
    record_id,
    retry_key,
    unexpected,
)
from coordhub.store.tables.records import Components, Key, Todos, WorkItems

API = "/api/coord"
Importance = Literal["low", "normal", "high", "urgent"]
ItemStatus = Literal["pending", "in_progress", "blocked", "completed", "cancelled"]
Project = Annotated[str | None, Field(description="Project key; omit for all.")]
Fence = Annotated[int | None, Field(description="Fence of your lease naming what you write (component:<name>, "
                                                  "work-item:<id>, workflow:<id>): refused unless still current.")]
RetryKeyArg = Annotated[str | None, Field(description="Any unique string; a retry with the same key has no second "
                                                        "effect.")]


def recipient(to: str) -> str | None:
    """The REST ``to_session`` for a tool's ``to``: ``None`` (broadcast) for ``all`` (seed 002),
    ``ALL_SESSIONS`` (seed 000) or any other broadcast word, in any case."""
    return None if is_broadcast(to) else to


# ---- messages ------------------------------------------------------------------------

async def send_message(
    ctx: Context,
    to: Annotated[str, Field(description="Recipient session id, or 'all' to broadcast.")],
    subject: str,
    body: str = "",
    message_type: str | None = None,
    requires_ack: bool = False,
    importance: Importance = "normal",
    thread_id: str | None = None,
    project_key: str | None = None,
    idempotency_key: RetryKeyArg = None,
) -> dict[str, Any]:
    """Send a message from your session."""
    return bounded(await call_object(ctx, "POST", f"{API}/messages", body=drop_none({
        "to_session": recipient(to), "subject": subject, "body": body, "message_type": message_type,
        "requires_ack": requires_ack, "importance": importance, "thread_id": thread_id,
        "project_key": project_key}), key=retry_key(ctx, "send_message", idempotency_key)))


async def reply(ctx: Context, message_id: str, body: str, subject: str | None = None,
                requires_ack: bool = False, idempotency_key: RetryKeyArg = None) -> dict[str, Any]:
    """Reply to a message: goes to its sender, in its thread."""
    message_id = record_id(message_id, "message_id")
    key = retry_key(ctx, "reply", idempotency_key)
    original = await call_object(ctx, "GET", f"{API}/messages/{message_id}")
    title = original["subject"] if original["subject"].startswith("Re: ") else f"Re: {original['subject']}"
    return bounded(await call_object(ctx, "POST", f"{API}/messages", body=drop_none({
        "to_session": original["from_session"], "subject": subject or title[:500], "body": body,
        "reply_to": message_id, "requires_ack": requires_ack, "project_key": original.get("project_key")}), key=key))


LISTED_BODY = 4000  # characters of each body a list of messages answers (the hook injects 4,000 in all)


def listed(items: list[Any], fields: tuple[str, ...] = ("body",), limit: int = LISTED_BODY) -> list[Any]:
    """``items`` (the hub's answer) each :func:`cut`: every one of their ``fields`` longer than ``limit`` characters
    cut to it.

    A body may hold 512 KiB (the hub's bound), so twenty of them, written by
    any session to yours, would put 10 MiB into your context in one call and
    push everything else out of it; ``read_message`` answers one whole.
    """
    return [cut(item, fields, limit) for item in items]


def cut(item: Any, fields: tuple[str, ...], limit: int) -> Any:
    """``item`` with each text of its ``fields`` longer than ``limit`` characters cut to its first ``limit``, the
    item then marked ``<field>_truncated: true`` with the text's whole length in ``<field>_chars``; ``item``
    itself when nothing is cut (or it is not an object)."""
    if not isinstance(item, dict):
        return item
    for field in fields:
        text = item.get(field)
        if isinstance(text, str) and len(text) > limit:
            item = {**item, field: text[:limit], f"{field}_truncated": True, f"{field}_chars": len(text)}
    return item


def left_out(item: dict[str, Any], fields: tuple[str, ...]) -> int:
    """How many characters :func:`cut` left out of ``item``'s ``fields``."""
    return sum(item[f"{field}_chars"] - len(item[field]) for field in fields if item.get(f"{field}_truncated"))


RESULT_CHARS = 50_000
"""About the most characters of records one call of a tool that lists (``inbox``, ``wait_for_messages``,
``conv_inbox``, ``conv_show``, ``list_leases``, ``list_todos``, ``list_components``, ``get_workflow``) answers (at
least one record a call, cut if it is larger).

The hub's pages hold about 4 MiB, and a tool result goes whole into the
agent's context. By its documented defaults Claude Code puts a result of more
than 50,000 characters in a file instead, and holds one to 25,000 tokens
(``MAX_MCP_OUTPUT_TOKENS``; older versions refuse a larger one), so a call
answers about that much and says where to read on. Counted as the records
take in the result's text block, in UTF-8 (:func:`size`), at least their
characters; the answer's other keys (a count, a note) add a few hundred.
"""


def size(value: Any) -> int:
    """The length in UTF-8 bytes of ``value`` as the text block of a result shows it as one record of a list (what
    :data:`RESULT_CHARS` counts): its JSON indented by two, each line four spaces deeper, after a comma and a line
    break (:meth:`coordhub.mcp.server.CoordTool.text`).

    A message has some 25 short fields, so its indentation alone is about 250
    characters: counted as compact JSON, eleven messages made a result of 52,619
    characters for a budget of 50,000.
    """
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except TypeError:  # orjson.JSONEncodeError: an integer past 64 bits, as CoordTool.text falls back
        text = pydantic_core.to_json(value, fallback=str, indent=2)
    return len(text) + 4 * (text.count(b"\n") + 1) + 2


def within(items: list[Any], budget: int = RESULT_CHARS) -> list[Any]:
    """The first of ``items`` whose :func:`size` adds up to at most ``budget``; at least one (``[]`` for none)."""
    total = 0
    for n, item in enumerate(items):
        total += size(item)
        if total > budget and n:
            return items[:n]
    return items


MESSAGE_BODY = 524_288  # the hub's bound of a message body, in characters (coordhub.api.schemas.Text)


async def inbox(
    ctx: Context,
    unread_only: bool = True,
    limit: Annotated[int, Field(ge=1, le=500)] = 20,
    after_seq: Annotated[int | None, Field(ge=0, le=2**62, description="Unread: only messages with a higher seq.")]
    = None,
    before_seq: Annotated[int | None, Field(ge=1, le=2**62, description="All: only messages with a lower seq.")]
    = None,
) -> dict[str, Any]:
    """Your messages: unread ones oldest first, or all newest first. Does not mark them read. Long bodies are cut."""
    found = await call_list(ctx, "GET", f"{API}/messages", params={
        "unread_only": unread_only, "limit": limit, "after_seq": after_seq, "before_seq": before_seq})
    return messages_listed(found, limit, "inbox with after_seq=" if unread_only else "inbox with unread_only=false "
                                                                                       "and before_seq=")


WAIT_PAGE = 100  # messages the hub's GET /messages/wait answers at most (coordhub.api.routes.messages.wait)
# The hub also ends a page of messages early once about 4 MiB of their text is in it (coordhub.core.paging.PAGE_BYTES,
# at least one message), and says so only in a header that does not reach a tool: an answer short of its limit
# holding more than this may have been cut there.
HUB_CUT_HINT = 2 << 20


def messages_listed(found: list[Any], limit: int, read_on: str) -> dict[str, Any]:
    """``found`` (the hub's list of at most ``limit`` messages, in its order) :func:`listed`, as many as take
    :data:`RESULT_CHARS` (:func:`within`: at least one), with their ``count``; when some were left out, or the
    hub's page may have ended early (:data:`HUB_CUT_HINT`), a ``note`` saying so and how to read on: ``read_on``
    followed by the ``seq`` of the last message answered.

    The tools that list messages (``inbox``, ``wait_for_messages``) mark
    nothing read or shown, so a message left out is still there for the next
    call: unread ones come oldest first and history newest first, so the rest
    are those past the last one answered. A hub answer with no ``seq`` to
    name says to read (or ack) these and call again.
    """
    messages = within(listed(found))
    answer: dict[str, Any] = {"messages": messages, "count": len(messages)}
    if len(messages) < len(found):
        why = (f"{len(found) - len(messages)} more messages were left out (a call answers about {RESULT_CHARS:,} "
               "characters; none was marked read)")
    elif messages and len(found) < limit and sum(size(m) for m in found) > HUB_CUT_HINT:
        why = ("The hub may have ended its answer at its bound of about 4 MiB of message text, so more messages may "
               "follow (none was marked read)")
    else:
        return answer
    last = messages[-1].get("seq") if isinstance(messages[-1], dict) else None
    how = f"call {read_on}{last} to read on" if isinstance(last, int) else "read or ack these and call again"
    answer["note"] = f"{why}: {how}."
    return answer


async def read_message(ctx: Context, message_id: str) -> dict[str, Any]:
    """One message; marks it read for you."""
    message_id = record_id(message_id, "message_id")
    message = await call_object(ctx, "GET", f"{API}/messages/{message_id}")
    session = await me(ctx)
    addressed = message["to_session"] == session or (message["broadcast"] and message["from_session"] != session)
    if addressed and not message["read"]:  # a message you sent has no read state of yours to set
        message = await call_object(ctx, "PUT", f"{API}/messages/{message_id}/read")
    return bounded(message)


def bounded(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` as the hub answered it, its body whole up to :data:`MESSAGE_BODY` characters, the hub's own
    bound (every message a hub accepted), and :func:`cut` to it past that, with a ``note`` saying so.

    A hub answering more (a hostile or broken one) would otherwise put any
    amount into the agent's context in one call: every tool answering one
    message (``read_message``, ``ack_message``, ``send_message``, ``reply``)
    answers it through this.
    """
    kept: dict[str, Any] = cut(message, ("body",), MESSAGE_BODY)
    if kept is not message:
        kept["note"] = (f"The hub answered a body of {kept['body_chars']:,} characters, past its own bound of "
                        f"{MESSAGE_BODY:,} for a message: the first {MESSAGE_BODY:,} are shown.")
    return kept


async def ack_message(ctx: Context, message_id: str) -> dict[str, Any]:
    """Acknowledge a message (also marks it read)."""
    return bounded(await call_object(ctx, "POST", f"{API}/messages/{record_id(message_id, 'message_id')}/ack"))


async def wait_for_messages(
    ctx: Context,
    timeout: Annotated[float, Field(ge=0, le=60, description="Seconds.")] = 30,
    after_seq: Annotated[int | None, Field(description="Only messages with a higher seq.")] = None,
) -> dict[str, Any]:
    """Wait until you have unread messages; returns them (bodies cut as by inbox), or none at the timeout."""
    # the hub's wait marks nothing read or shown: messages this answer leaves out are still unread for the next call
    found = await call_list(ctx, "GET", f"{API}/messages/wait", params={"timeout": timeout, "after_seq": after_seq},
                            timeout=timeout + 15)
    return messages_listed(found, WAIT_PAGE, "wait_for_messages with timeout=0 and after_seq=")


# ---- leases --------------------------------------------------------------------------

async def claim_lease(
    ctx: Context,
    project_key: str,
    resource: Annotated[str, Field(description="Path (src/api/), glob (src/**/*.py) or name (deploy:staging).")],
    description: str | None = None,
    ttl_hours: Annotated[float, Field(ge=0, description="0 = never expires.")] = 2.0,
    idempotency_key: RetryKeyArg = None,
) -> dict[str, Any]:
    """Lease a resource before changing it. Returns the lease and its fence; lease_conflict names the holder."""
    return await call_object(ctx, "POST", f"{API}/locks", body=drop_none({
        "project_key": project_key, "resource": hub_resource(ctx, resource), "description": description,
        "ttl_hours": ttl_hours}), key=retry_key(ctx, "claim_lease", idempotency_key))


async def renew_lease(ctx: Context, lease_id: str,
                      ttl_hours: Annotated[float | None, Field(ge=0, description="Default: its TTL.")] = None,
                      idempotency_key: RetryKeyArg = None) -> dict[str, Any]:
    """Extend your live lease from now."""
    return await call_object(ctx, "POST", f"{API}/locks/{record_id(lease_id, 'lease_id')}/renew",
                             body=drop_none({"ttl_hours": ttl_hours}),
                             key=retry_key(ctx, "renew_lease", idempotency_key))


async def release_lease(ctx: Context, lease_id: str, idempotency_key: RetryKeyArg = None) -> dict[str, Any]:
    """Release your lease."""
    return await call_object(ctx, "DELETE", f"{API}/locks/{record_id(lease_id, 'lease_id')}",
                             key=retry_key(ctx, "release_lease", idempotency_key))


LEASES_PER_CALL = 100  # leases one list_leases answers at most: ~30 KB of an agent's context
# The hub ends a page early once about 4 MiB of leases (its estimate: 400 + resource + description characters
# each, coordhub.core.leases.PAGE_BYTES) are in it; an answer this large may have been cut there.
_CUT_HINT = 2 << 20


async def list_leases(
    ctx: Context,
    project_key: Project = None,
    resource: Annotated[str | None, Field(description="Only leases overlapping it.")] = None,
    session_id: Annotated[str | None, Field(description="Only this holder's.")] = None,
    after_fence: Annotated[int, Field(ge=0, description="A previous answer's next_after_fence.")] = 0,
) -> dict[str, Any]:
    """Live leases, oldest first, about 50,000 characters a call; next_after_fence (null: that was all) reads on."""
    found = await call_list(ctx, "GET", f"{API}/locks", params={
        "project_key": project_key, "resource": None if resource is None else hub_resource(ctx, resource),
        "session_id": session_id, "after_fence": after_fence or None, "limit": LEASES_PER_CALL + 1})
    # One more than answered tells whether more follow (the hub's page header does not reach a tool); a lease's
    # description may hold 4,096 characters, so 100 of them made one result of 461,935 characters: a call answers
    # about RESULT_CHARS of them, and the fence of the last one answered reads on (the list is in fence order)
    leases = within(found[:LEASES_PER_CALL])
    more = len(leases) < len(found) or (bool(found) and sum(
        400 + len(x["resource"]) + len(x.get("description") or "") for x in found) >= _CUT_HINT)
    answer: dict[str, Any] = {"leases": leases, "count": len(leases),
                              "next_after_fence": leases[-1]["fence"] if more else None}
    if more:
        answer["note"] = (f"More leases follow (a call answers at most {LEASES_PER_CALL} and about "
                          f"{RESULT_CHARS:,} characters): call list_leases with the same arguments and "
                          f"after_fence={answer['next_after_fence']} to read on.")
    return answer


async def check_fence(ctx: Context, fence: int, resource: str | None = None,
                      project_key: str | None = None) -> dict[str, Any]:
    """Is this fence still the live lease covering resource? Ask before acting on an old lease."""
    return await call_object(ctx, "GET", f"{API}/locks/check", params={
        "fence": fence, "resource": None if resource is None else hub_resource(ctx, resource),
        "project_key": project_key})


# ---- lists the hub pages by cursor ---------------------------------------------------

@dataclass(frozen=True)
class HubOrder:
    """One of the hub's lists paged by an opaque cursor (:func:`coordhub.core.paging.page`), as a tool reads on in
    it.

    The hub's cursor of its next answer is sent only in a header (``Coord-Next-Cursor``), which does not reach a
    tool (the client answers bodies), and holds an item's ``key`` columns, whose times an answer shows to the
    microsecond while the hub orders by the stored float: so a tool's ``cursor`` names the next item to answer
    and a place in the list a little before it (:func:`before`), and the next call reads from that place and
    answers from that item on, found by its ``identity``. ``key``: the list's order, the store table's (column,
    type, descending; each column shows under its own name, a float as an RFC 3339 time). ``limit`` and
    ``text``: the most items one hub answer holds and the fields its budget counts
    (:func:`coordhub.core.paging.size`); ``cut``: the long free text a listing cuts to :data:`LISTED_BODY`
    characters (:func:`listed`).
    """

    key: Key
    identity: tuple[str, ...]
    limit: int
    text: tuple[str, ...]
    cut: tuple[str, ...]


TODOS = HubOrder(Todos.key, ("id",), 500, ("text", "source"), ("text", "source"))  # coordhub.core.todos
COMPONENTS = HubOrder(Components.key, ("project_key", "component"), 1000,  # coordhub.core.components
                      ("component", "state", "version", "notes"), ("notes",))
WORK_ITEMS = HubOrder(WorkItems.key, ("id",), 1000, ("title", "description"), ("description",))  # core.workflows
# The hub ends an answer once its next item's text would pass about PAGE_BYTES (coordhub.core.paging.take); an item
# holds at most MAX_ROW_TEXT characters, each at most 6 bytes encoded (an escaped control character): only an
# answer holding more than this may have been ended there.
HUB_PAGE_CUT = paging.PAGE_BYTES - 6 * paging.MAX_ROW_TEXT - 2 * paging.ROW_BYTES
Cursor = Annotated[str | None, Field(max_length=4096, description="A previous answer's next_cursor, to read on.")]
Fetch = Callable[[str | None, bool], Awaitable[list[Any]]]  # a hub answer of a list from a cursor, brief or not


async def paged_answer(order: HubOrder, found: list[Any], first: list[Any] | None, fetch: Fetch, records: str,
                       call: str, budget: int = RESULT_CHARS) -> dict[str, Any]:
    """``{records: [...], "count": n, "next_cursor": c}``: the items of ``found`` (the hub's answer read from a
    tool's ``cursor``) from the one ``first`` names (:func:`start`), :func:`listed` (their ``order.cut``), as many
    as take ``budget`` (:func:`within`: at least one); when more follow, ``next_cursor`` names the next
    (:func:`next_cursor`; else null) and a closing ``note`` says to call ``call`` with the same arguments and it.

    When ``found`` is answered to its end and the hub may have ended it at its bound (:func:`may_be_cut`),
    ``fetch`` reads the next item (:func:`following`). ``ToolError`` (``unexpected_answer``) for items whose key
    the hub did not answer as it does.
    """
    rest = found[start(order, found, first):]
    items = within(listed(rest, order.cut), budget)
    answer: dict[str, Any] = {records: items, "count": len(items), "next_cursor": None}
    try:
        after = rest[len(items)] if len(items) < len(rest) else None
        if after is None and items and may_be_cut(order, found):
            after = await following(order, fetch, items[-1])
        if after is None:
            return answer
        answer["next_cursor"] = next_cursor(order, after)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        raise ToolError(f"unexpected_answer: the hub answered {records} whose order cannot be read on") from None
    answer["note"] = (f"More {records.replace('_', ' ')} follow (a call answers about {RESULT_CHARS:,} characters): "
                      f"call {call} with the same arguments and cursor={answer['next_cursor']} to read on.")
    return answer


def start(order: HubOrder, found: list[Any], first: list[Any] | None) -> int:
    """Where in ``found`` the item whose ``identity`` is ``first`` is; 0 when ``first`` is None or not in ``found``
    (changed since it was named, e.g. a component set again, which moves it to the front: ``found`` then starts
    where it was, so an item of its microsecond answered before may come again; none is left out)."""
    at = None if first is None else position(order, found, first)
    return 0 if at is None else at


def position(order: HubOrder, found: list[Any], identity: list[Any]) -> int | None:
    """Where in ``found`` the item whose ``order.identity`` fields hold ``identity`` is; None if it is not there."""
    for n, item in enumerate(found):
        if isinstance(item, dict) and [item.get(field) for field in order.identity] == identity:
            return n
    return None


def may_be_cut(order: HubOrder, found: list[Any]) -> bool:
    """Whether the hub may have ended ``found``, its answer, at its bound: it holds ``order.limit`` items, or so
    much of their text (as the hub counts it, :func:`coordhub.core.paging.size`) that the next could have passed
    the budget (:data:`HUB_PAGE_CUT`)."""
    text = sum(paging.size(item, order.text) for item in found if isinstance(item, dict))
    return len(found) >= order.limit or text > HUB_PAGE_CUT


async def following(order: HubOrder, fetch: Fetch, last: dict[str, Any]) -> dict[str, Any] | None:
    """The item after ``last`` (its long text left out), None when the list ends with it: read from a *brief*
    answer of the hub from :func:`before` it, which holds up to ``order.limit`` items whatever their text.
    ``ToolError`` (``unreadable``) when that answer ends at ``last`` and may have been cut there: more items than
    one answer holds share ``last``'s microsecond. Should ``last`` have changed since (and so not be in that
    answer), the first item of it is the next: as for :func:`start`, one of ``last``'s microsecond may come
    again."""
    brief = await fetch(hub_cursor(order, before(order, last)), True)
    at = position(order, brief, [last[field] for field in order.identity])
    n = 0 if at is None else at + 1
    if n < len(brief):
        return dict(brief[n])
    if n == len(brief) and not may_be_cut(order, brief):
        return None
    raise ToolError("unreadable: more items than one hub answer holds share the time of the last one answered; "
                    "read on outside MCP, with the hub's Coord-Next-Cursor header")


def next_cursor(order: HubOrder, item: dict[str, Any]) -> str:
    """The ``cursor`` that reads on from ``item``: URL-safe base64 of the JSON of a place before it in the list
    (:func:`before`) and its identity."""
    text = orjson.dumps([before(order, item), [item[field] for field in order.identity]])
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def before(order: HubOrder, item: dict[str, Any]) -> list[Any]:
    """The ``key`` values of a place in the list before ``item`` and after every item before its microsecond: its
    columns up to its first time as it shows them, that time (RFC 3339, rounded to the microsecond) moved past
    the rounding, a microsecond and two floats, back in the list's order, and the (string) columns after it at
    their least, ``""``."""
    values: list[Any] = []
    for column, kind, descending in order.key:
        if kind is float:
            at = parse_iso(item[column])
            step = 1e-6 + 2 * math.ulp(at)
            return [*values, at + step if descending else at - step, *[""] * (len(order.key) - len(values) - 1)]
        values.append(item[column])
    return values


def hub_cursor(order: HubOrder, place: list[Any]) -> str:
    """The hub's cursor of the place in the list whose ``key`` columns hold ``place``
    (:func:`coordhub.core.paging.cursor`)."""
    return paging.cursor(dict(zip([column for column, _, _ in order.key], place, strict=True)), order.key)


def read_cursor(order: HubOrder, cursor: str | None) -> tuple[str | None, list[Any] | None]:
    """The hub's cursor and the identity of the next item to answer that a tool's ``cursor`` holds
    (:func:`next_cursor`); ``(None, None)`` for None. ``ToolError`` (``invalid``) for another text."""
    if cursor is None:
        return None, None
    try:
        place, first = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(place, list) and len(place) == len(order.key) and isinstance(first, list)
                and len(first) == len(order.identity)):
            raise ValueError("not this list's cursor")
    except (ValueError, TypeError, binascii.Error):
        raise ToolError("invalid: cursor: not a next_cursor of this tool's answers, as given") from None
    return hub_cursor(order, place), first


# ---- todos ---------------------------------------------------------------------------

async def add_todo(ctx: Context, text: str, project_key: str | None = None, parent_id: str | None = None,
                   user: str | None = None, idempotency_key: RetryKeyArg = None) -> dict[str, Any]:
    """Add a todo."""
    return await call_object(ctx, "POST", f"{API}/todos", body=drop_none({
        "text": text, "project_key": project_key, "parent_id": parent_id, "user": user}),
        key=retry_key(ctx, "add_todo", idempotency_key))


async def list_todos(ctx: Context, project_key: Project = None,
                     status: Literal["pending", "done", "all"] = "pending",
                     user: str | None = None, cursor: Cursor = None) -> dict[str, Any]:
    """Todos, oldest first, text and source cut (about 50,000 characters a call); next_cursor reads on."""
    # a todo's source may hold 512 KiB and its text 64 KiB: the hub's answer of 10 made one result of 3,923,659
    # characters; GET /api/coord/todos/{id} answers one whole
    async def fetch(after: str | None, brief: bool = False) -> list[Any]:
        return await call_list(ctx, "GET", f"{API}/todos", params={
            "project_key": project_key, "status": status, "user": user, "cursor": after, "brief": brief or None})

    place, first = read_cursor(TODOS, cursor)
    return await paged_answer(TODOS, await fetch(place), first, fetch, "todos", "list_todos")


async def complete_todo(ctx: Context, todo_id: str, idempotency_key: RetryKeyArg = None) -> dict[str, Any]:
    """Mark a todo done."""
    return await call_object(ctx, "POST", f"{API}/todos/{record_id(todo_id, 'todo_id')}/done",
                             key=retry_key(ctx, "complete_todo", idempotency_key))


# ---- workflows and work items --------------------------------------------------------

async def get_workflow(ctx: Context, workflow_id: str, cursor: Cursor = None) -> dict[str, Any]:
    """A workflow with its work items, highest priority first, descriptions cut; next_cursor reads on."""
    # the workflow's and each item's description may hold 512 KiB: the hub's answer of one with 10 items made one
    # result of 4,503,966 characters; GET /api/coord/work-items/{id} answers an item whole
    path = f"{API}/workflows/{record_id(workflow_id, 'workflow_id')}"

    async def fetch(after: str | None, brief: bool = False) -> list[Any]:
        return work_items(await call_object(ctx, "GET", path, params={"cursor": after, "brief": brief or None}), path)

    place, first = read_cursor(WORK_ITEMS, cursor)
    found = await call_object(ctx, "GET", path, params={"cursor": place})
    workflow: dict[str, Any] = cut({key: value for key, value in found.items() if key != "work_items"},
                                   ("description",), LISTED_BODY)
    return workflow | await paged_answer(WORK_ITEMS, work_items(found, path), first, fetch, "work_items",
                                         "get_workflow", RESULT_CHARS - size(workflow))


def work_items(workflow: dict[str, Any], path: str) -> list[Any]:
    """The ``work_items`` of the hub's answer of a workflow; ``ToolError`` (``unexpected_answer``) if it has none."""
    items = workflow.get("work_items")
    if not isinstance(items, list):
        raise unexpected(items, "a list of work_items", "GET", path)
    return items


async def update_work_item(
    ctx: Context,
    item_id: str,
    status: ItemStatus | None = None,
    title: str | None = None,
    description: str | None = None,
    priority: int | None = None,
    assigned_to: str | None = None,
    fence: Fence = None,
    idempotency_key: RetryKeyArg = None,
) -> dict[str, Any]:
    """Change a work item; only the fields given."""
    return await call_object(ctx, "PATCH", f"{API}/work-items/{record_id(item_id, 'item_id')}", body=drop_none({
        "status": status, "title": title, "description": description, "priority": priority,
        "assigned_to": assigned_to, "fence": fence}), key=retry_key(ctx, "update_work_item", idempotency_key))


# ---- components ----------------------------------------------------------------------

async def set_component(
    ctx: Context,
    project_key: str,
    component: str,
    state: Annotated[str, Field(description="building, built, deploying, deployed, degraded or unknown.")],
    version: str | None = None,
    notes: str | None = None,
    fence: Fence = None,
    idempotency_key: RetryKeyArg = None,
) -> dict[str, Any]:
    """Record a component's deploy state."""
    return await call_object(ctx, "PUT", f"{API}/components", body=drop_none({
        "project_key": project_key, "component": component, "state": state, "version": version,
        "notes": notes, "fence": fence}), key=retry_key(ctx, "set_component", idempotency_key))


async def list_components(ctx: Context, project_key: Project = None, cursor: Cursor = None) -> dict[str, Any]:
    """Components and their states, most recently updated first, notes cut; next_cursor reads on."""
    # a component's notes may hold 512 KiB: the hub's answer of 10 made one result of 4,002,238 characters;
    # GET /api/coord/components answers them whole
    async def fetch(after: str | None, brief: bool = False) -> list[Any]:
        return await call_list(ctx, "GET", f"{API}/components", params={
            "project_key": project_key, "cursor": after, "brief": brief or None})

    place, first = read_cursor(COMPONENTS, cursor)
    return await paged_answer(COMPONENTS, await fetch(place), first, fetch, "components", "list_components")


# ---- conversations (seed 004) --------------------------------------------------------

TurnType = Literal["request", "progress", "query", "pushback", "complete", "release", "escalate"]
TURN_TEXTS = ("body", "content")  # a turn's long texts: its body, and its seed-004 file (frontmatter and body)
TURN_TEXT = 20_000  # characters conv_show keeps of a turn's body and of its content when the turn alone is too large


async def conv_send(
    ctx: Context,
    to: Annotated[str, Field(description="<machine>.<project>; local.<project> is your machine.")],
    conversation_id: Annotated[str, Field(description="Slug, e.g. prep-fixup; a new one starts a conversation.")],
    type: TurnType,
    body: str,
    title: str | None = None,
    requires_tools: list[str] | None = None,
    idempotency_key: RetryKeyArg = None,
) -> dict[str, Any]:
    """Send a conversation turn; the hub numbers it and answers its decision (process, dedup, query, reject)."""
    return await call_object(ctx, "POST", f"{API}/conversations/turns", body=drop_none({
        "to": to, "conversation_id": conversation_id, "type": type, "body": body, "title": title,
        "requires_tools": requires_tools}), key=retry_key(ctx, "conv_send", idempotency_key))


async def conv_inbox(ctx: Context, limit: Annotated[int, Field(ge=1, le=1000)] = 20,
                     after: Annotated[int, Field(ge=0, le=2**62)] = 0) -> dict[str, Any]:
    """Turns pending for your address (not yet released), oldest first, bodies cut; more: after=next_after."""
    # the hub's page holds at most ``limit`` turns and about 4 MiB of text; an empty page is the end. Each turn's
    # body and content (its file, the body again) are cut as inbox cuts bodies, and the call answers about
    # RESULT_CHARS of them: conv_show answers the turns whole
    found = await call_list(ctx, "GET", f"{API}/conversations/inbox", params={"limit": limit, "after": after or None})
    turns = within(listed(found, TURN_TEXTS))
    last = turns[-1].get("id") if turns and isinstance(turns[-1], dict) else None
    answer: dict[str, Any] = {"turns": turns, "count": len(turns),
                              "next_after": last if isinstance(last, int) else after}
    if len(turns) < len(found):
        answer["note"] = (f"More turns are pending (a call answers about {RESULT_CHARS:,} characters): call "
                          f"conv_inbox with after={answer['next_after']} to read on.")
    return answer


async def conv_show(
    ctx: Context,
    conversation_id: str,
    after: Annotated[int, Field(ge=0, le=2**62, description="Only turns with a higher id: the answer's next_after, "
                                                              "to read the next page.")] = 0,
) -> dict[str, Any]:
    """A conversation and its turns (about 50,000 characters a call); when next_after is not null, read on with it."""
    slug = conversation_slug(conversation_id, shown=True)
    found = await call_object(ctx, "GET", f"{API}/conversations/{slug}", params={"after": after or None})
    turns = found.get("turns")
    return shown_turns(found, turns, slug) if isinstance(turns, list) and turns else found


def shown_turns(found: dict[str, Any], turns: list[Any], slug: str) -> dict[str, Any]:
    """``found`` (the hub's page of a conversation) with as many of its ``turns`` as take :data:`RESULT_CHARS`, and
    its ``next_after`` the ``after`` of the first left out (None: none follows), then a ``note`` saying how to read
    on when some follow: the last line of the result.

    A first turn larger than the budget alone is answered with its body and its content each cut to
    :data:`TURN_TEXT` characters (:func:`cut`); the note then says how many characters were left out and how
    to read it whole: the hub's page of that one turn (``coord conv show`` prints the first page).
    """
    shown = within(turns)
    notes: list[str] = []
    first = shown[0]
    if len(shown) == 1 and isinstance(first, dict) and size(first) > RESULT_CHARS:
        shown = [cut(first, TURN_TEXTS, TURN_TEXT)]
        turn_id = first.get("id")
        whole = (f"GET {API}/conversations/{slug}?after={turn_id - 1}&limit=1"
                 if isinstance(turn_id, int) else f"GET {API}/conversations/{slug}")
        notes.append(f"Turn {turn_id} is cut to {TURN_TEXT:,} characters of its body and of its content: "
                     f"{left_out(shown[0], TURN_TEXTS):,} characters left out; read it whole outside MCP: {whole} "
                     f"(`coord conv show {slug} --json` prints the first page of turns whole).")
    last = shown[-1].get("id") if isinstance(shown[-1], dict) else None
    next_after = last if len(shown) < len(turns) and isinstance(last, int) else found.get("next_after")
    if next_after is not None:
        notes.append(f"More turns follow: call conv_show with after={next_after} to read on.")
    answer = {key: value for key, value in found.items() if key not in ("turns", "next_after")}
    answer |= {"turns": shown, "next_after": next_after}
    if notes:
        answer["note"] = " ".join(notes)
    return answer


async def conv_release(
    ctx: Context,
    conversation_id: str,
    release_status: Literal["complete", "cancelled", "withdrawn-after-pushback",
                            "abandoned-after-escalation"] = "complete",
    body: str | None = None,
    idempotency_key: RetryKeyArg = None,
) -> dict[str, Any]:
    """Release a conversation: none of its turns stays pending."""
    return await call_object(ctx, "POST", f"{API}/conversations/{conversation_slug(conversation_id)}/release",
                             body=drop_none({"release_status": release_status, "body": body}),
                             key=retry_key(ctx, "conv_release", idempotency_key))


# ---- presence and status -------------------------------------------------------------

async def presence(ctx: Context,
                   state: Literal["active", "idle", "stale", "offline"] | None = None) -> dict[str, Any]:
    """Sessions and their presence."""
    found = await call_list(ctx, "GET", f"{API}/presence", params={"state": state})
    return {"sessions": found, "count": len(found)}


async def status(ctx: Context, project_key: Project = None) -> dict[str, Any]:
    """Fleet snapshot: halt, live leases, components, active workflows, your session and unread count."""
    return await call_object(ctx, "GET", f"{API}/status", params={"project_key": project_key})


async def engage(ctx: Context) -> dict[str, Any]:
    """After a halt is lifted your writes answer 'paused' until you re-engage: call this only when your user says so."""
    return await call_object(ctx, "POST", f"{API}/engage")


READ_ONLY = {"inbox", "wait_for_messages", "list_leases", "check_fence", "list_todos", "get_workflow",
             "list_components", "presence", "status", "conv_inbox", "conv_show"}

DEFAULT = (send_message, reply, inbox, read_message, ack_message, wait_for_messages,
           claim_lease, renew_lease, release_lease, list_leases, check_fence,
           add_todo, list_todos, complete_todo, get_workflow, update_work_item,
           set_component, list_components, conv_send, conv_inbox, conv_show, conv_release, presence, status,
           engage)
