"""The default tool set: messages, leases, todos, work items, components, conversations, presence, status, engage.

Each tool is one REST call (two for ``reply`` and ``read_message``) made as
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

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from coordhub.client.wire import NEXT_AFTER, NEXT_AFTER_FENCE, NEXT_AFTER_SEQ, NEXT_BEFORE_SEQ
from coordhub.core.identity import is_broadcast
from coordhub.core.vocab import Importance, PresenceState, ReleaseStatus, TodoFilter, TurnType
from coordhub.mcp.bounds import LISTED_BODY, RESULT_CHARS, bounded, cut, left_out, listed, size, within
from coordhub.mcp.connect import (
    call_numbered_page,
    call_object,
    call_page,
    conversation_slug,
    drop_none,
    hub_resource,
    me,
    record_id,
    retry_key,
    unexpected,
)
from coordhub.mcp.pages import COMPONENTS, PRESENCE, TODOS, WORK_ITEMS, Cursor, paged_answer, read_cursor

API = "/api/coord"
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
    found, following = await call_numbered_page(ctx, f"{API}/messages", {
        "unread_only": unread_only, "limit": limit, "after_seq": after_seq, "before_seq": before_seq},
        NEXT_AFTER_SEQ if unread_only else NEXT_BEFORE_SEQ)
    return messages_listed(found, following is not None, "inbox with after_seq=" if unread_only
                           else "inbox with unread_only=false and before_seq=")


async def get_thread(
    ctx: Context,
    thread_id: Annotated[str, Field(min_length=1, max_length=200, description="A message's thread_id (a thread a "
                                    "reply started: the id of the message it answered).")],
    limit: Annotated[int, Field(ge=1, le=500)] = 20,
    after_seq: Annotated[int | None, Field(ge=0, le=2**62, description="Only messages with a higher seq.")] = None,
) -> dict[str, Any]:
    """A thread's messages you sent, were sent or that were broadcast, oldest first. Marks nothing read."""
    found, following = await call_numbered_page(ctx, f"{API}/messages", {
        "thread_id": thread_id, "limit": limit, "after_seq": after_seq}, NEXT_AFTER_SEQ)
    return messages_listed(found, following is not None, "get_thread with the same thread_id and after_seq=")


def messages_listed(found: list[Any], more: bool, read_on: str) -> dict[str, Any]:
    """``found`` (one page of the hub's messages, in its order) :func:`listed`, as many as take
    :data:`RESULT_CHARS` (:func:`within`: at least one), with their ``count``; when some were left out, or the
    hub said ``more`` follow its page (``Coord-Next-After-Seq``, ``Coord-Next-Before-Seq``), a ``note`` saying
    so and how to read on: ``read_on`` followed by the ``seq`` of the last message answered.

    The tools that list messages (``inbox``, ``get_thread``, ``wait_for_messages``) mark
    nothing read or shown, so a message left out is still there for the next
    call: unread ones and a thread's come oldest first and history newest first, so the rest
    are those past the last one answered. A hub answer with no ``seq`` to
    name says to read (or ack) these and call again.
    """
    messages = within(listed(found))
    answer: dict[str, Any] = {"messages": messages, "count": len(messages)}
    if len(messages) < len(found):
        why = (f"{len(found) - len(messages)} more messages were left out (a call answers about {RESULT_CHARS:,} "
               "characters; none was marked read)")
    elif messages and more:
        why = "More messages follow (none was marked read)"
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


async def ack_message(ctx: Context, message_id: str) -> dict[str, Any]:
    """Acknowledge a message (also marks it read)."""
    return bounded(await call_object(ctx, "POST", f"{API}/messages/{record_id(message_id, 'message_id')}/ack"))


async def wait_for_messages(
    ctx: Context,
    timeout: Annotated[float, Field(ge=0, le=60, description="Seconds.")] = 30,
    after_seq: Annotated[int | None, Field(ge=0, le=2**62, description="Only messages with a higher seq.")] = None,
) -> dict[str, Any]:
    """Wait until you have unread messages; returns them (bodies cut as by inbox), or none at the timeout."""
    # the hub's wait marks nothing read or shown: messages this answer leaves out are still unread for the next call
    found, following = await call_numbered_page(ctx, f"{API}/messages/wait", {
        "timeout": timeout, "after_seq": after_seq}, NEXT_AFTER_SEQ, timeout=timeout + 15)
    return messages_listed(found, following is not None, "wait_for_messages with timeout=0 and after_seq=")


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


async def list_leases(
    ctx: Context,
    project_key: Project = None,
    resource: Annotated[str | None, Field(description="Only leases overlapping it.")] = None,
    session_id: Annotated[str | None, Field(description="Only this holder's.")] = None,
    after_fence: Annotated[int, Field(ge=0, le=2**62, description="A previous answer's next_after_fence.")] = 0,
) -> dict[str, Any]:
    """Live leases, oldest first, about 50,000 characters a call; next_after_fence (null: that was all) reads on."""
    found, following = await call_numbered_page(ctx, f"{API}/locks", {
        "project_key": project_key, "resource": None if resource is None else hub_resource(ctx, resource),
        "session_id": session_id, "after_fence": after_fence or None, "limit": LEASES_PER_CALL}, NEXT_AFTER_FENCE)
    # a lease's description may hold 4,096 characters, so 100 of them made one result of 461,935 characters: a
    # call answers about RESULT_CHARS of them, and the fence of the last one answered reads on (fence order)
    leases = within(found[:LEASES_PER_CALL])
    more = bool(leases) and (len(leases) < len(found) or following is not None)
    answer: dict[str, Any] = {"leases": leases, "count": len(leases),
                              "next_after_fence": leases[-1]["fence"] if more else None}
    if more:
        answer["note"] = (f"More leases follow (a call answers at most {LEASES_PER_CALL} and about "
                          f"{RESULT_CHARS:,} characters): call list_leases with the same arguments and "
                          f"after_fence={answer['next_after_fence']} to read on.")
    return answer


async def check_fence(ctx: Context, fence: Annotated[int, Field(ge=1, le=2**62)], resource: str | None = None,
                      project_key: str | None = None) -> dict[str, Any]:
    """Is this fence still the live lease covering resource? Ask before acting on an old lease."""
    return await call_object(ctx, "GET", f"{API}/locks/check", params={
        "fence": fence, "resource": None if resource is None else hub_resource(ctx, resource),
        "project_key": project_key})


# ---- todos ---------------------------------------------------------------------------

async def add_todo(ctx: Context, text: str, project_key: str | None = None, parent_id: str | None = None,
                   user: str | None = None, idempotency_key: RetryKeyArg = None) -> dict[str, Any]:
    """Add a todo."""
    return await call_object(ctx, "POST", f"{API}/todos", body=drop_none({
        "text": text, "project_key": project_key, "parent_id": parent_id, "user": user}),
        key=retry_key(ctx, "add_todo", idempotency_key))


async def list_todos(ctx: Context, project_key: Project = None,
                     status: TodoFilter = "pending",
                     user: str | None = None, cursor: Cursor = None) -> dict[str, Any]:
    """Todos, oldest first, text and source cut (about 50,000 characters a call); next_cursor reads on."""
    # a todo's source may hold 512 KiB and its text 64 KiB: the hub's answer of 10 made one result of 3,923,659
    # characters; GET /api/coord/todos/{id} answers one whole
    place = read_cursor(TODOS, cursor)
    found, after = await call_page(ctx, f"{API}/todos", {
        "project_key": project_key, "status": status, "user": user, "cursor": place.cursor}, list)
    return paged_answer(TODOS, place, found, after)


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
    place = read_cursor(WORK_ITEMS, cursor)
    found, after = await call_page(ctx, path, {"cursor": place.cursor}, dict)
    workflow: dict[str, Any] = cut({key: value for key, value in found.items() if key != "work_items"},
                                   ("description",), LISTED_BODY)
    return workflow | paged_answer(WORK_ITEMS, place, work_items(found, path), after, RESULT_CHARS - size(workflow))


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
    place = read_cursor(COMPONENTS, cursor)
    found, after = await call_page(ctx, f"{API}/components", {"project_key": project_key, "cursor": place.cursor},
                                   list)
    return paged_answer(COMPONENTS, place, found, after)


# ---- conversations (seed 004) --------------------------------------------------------

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
    # the hub's page holds at most ``limit`` turns and about 4 MiB of text, and its Coord-Next-After header says
    # more follow; an empty page is the end. Each turn's body and content (its file, the body again) are cut as
    # inbox cuts bodies, and the call answers about RESULT_CHARS of them: conv_show answers the turns whole
    found, following = await call_numbered_page(ctx, f"{API}/conversations/inbox", {
        "limit": limit, "after": after or None}, NEXT_AFTER)
    turns = within(listed(found, TURN_TEXTS))
    last = turns[-1].get("id") if turns and isinstance(turns[-1], dict) else None
    answer: dict[str, Any] = {"turns": turns, "count": len(turns),
                              "next_after": last if isinstance(last, int) else after}
    if len(turns) < len(found):
        answer["note"] = (f"More turns are pending (a call answers about {RESULT_CHARS:,} characters): call "
                          f"conv_inbox with after={answer['next_after']} to read on.")
    elif turns and following is not None:
        answer["note"] = f"More turns are pending: call conv_inbox with after={answer['next_after']} to read on."
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
    release_status: ReleaseStatus = "complete",
    body: str | None = None,
    idempotency_key: RetryKeyArg = None,
) -> dict[str, Any]:
    """Release a conversation: none of its turns stays pending."""
    return await call_object(ctx, "POST", f"{API}/conversations/{conversation_slug(conversation_id)}/release",
                             body=drop_none({"release_status": release_status, "body": body}),
                             key=retry_key(ctx, "conv_release", idempotency_key))


# ---- presence and status -------------------------------------------------------------

async def presence(ctx: Context, state: PresenceState | None = None, cursor: Cursor = None) -> dict[str, Any]:
    """Sessions and their presence, by id (about 50,000 characters a call); next_cursor reads on."""
    # the hub answers 1,000 sessions a page (every orchestrator worker is a session): this read the first page
    # alone, whole, and said nothing of the rest
    place = read_cursor(PRESENCE, cursor)
    found, after = await call_page(ctx, f"{API}/presence", {"state": state, "cursor": place.cursor}, list)
    return paged_answer(PRESENCE, place, found, after)


async def status(ctx: Context, project_key: Project = None) -> dict[str, Any]:
    """Fleet snapshot: halt, live leases, components, active workflows, your session and unread count."""
    return await call_object(ctx, "GET", f"{API}/status", params={"project_key": project_key})


async def engage(ctx: Context) -> dict[str, Any]:
    """After a halt is lifted your writes answer 'paused' until you re-engage: call this only when your user says so."""
    return await call_object(ctx, "POST", f"{API}/engage")


READ_ONLY = {"inbox", "get_thread", "wait_for_messages", "list_leases", "check_fence", "list_todos", "get_workflow",
             "list_components", "presence", "status", "conv_inbox", "conv_show"}

DEFAULT = (send_message, reply, inbox, get_thread, read_message, ack_message, wait_for_messages,
           claim_lease, renew_lease, release_lease, list_leases, check_fence,
           add_todo, list_todos, complete_todo, get_workflow, update_work_item,
           set_component, list_components, conv_send, conv_inbox, conv_show, conv_release, presence, status,
           engage)
