"""Messages: seed 001's ``/api/coord/messages`` plus ack and unread count."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from coordhub.api import streams
from coordhub.api.answers import JSONResponse
from coordhub.api.auth import SIGNED_OUT, Caller, caller
from coordhub.api.errors import responses
from coordhub.api.message_schemas import (
    MessageMarkedOut,
    MessageOut,
    MessageRef,
    MessageSend,
    UnreadCountOut,
    Unshown,
    UnshownOut,
)
from coordhub.api.routes.common import CALLER_QUERY, READ_ERRORS, WRITE_ERRORS, hub, mutate, paged, query, queued_at
from coordhub.core import conversations, messages, paging, tokens
from coordhub.core.bus import EventBus
from coordhub.core.calls import Call
from coordhub.core.halt import Exempt
from coordhub.core.identity import Actor, main_session, same_session
from coordhub.core.seed002 import SEED_ID_PREFIX
from coordhub.errors import Invalid, Unauthorized
from coordhub.headers import NEXT_AFTER_SEQ_HEADER, NEXT_BEFORE_SEQ_HEADER, SESSION_HEADER
from coordhub.store.base import Ahead
from coordhub.store.tx import Tx

router = APIRouter(prefix="/api/coord/messages", tags=["messages"])
MAX_WAIT_SECONDS = 60.0
NEWS = ("message.sent", "message.redelivered")  # event kinds that can bring a session an unread message
# Seed 001 names an inbox's owner to_session (GET /messages?to_session=…&unread_only=true), so its users ask the
# unread count and the wait that way too; ignored, the parameter answered for the caller's own inbox (review).
OWNER_ALIAS = Query(None, description="The same as session_id, as seed 001's inbox names its owner; given both, "
                                      "they must name one session (else 422).")


@router.post("", status_code=201, response_model=MessageOut, responses=responses(*WRITE_ERRORS, 404))
async def send(body: MessageSend, request: Request, session_id: str | None = CALLER_QUERY,
               who: Caller = Depends(caller)) -> JSONResponse:
    """Send a message; ``to_session`` omitted, null or ``ALL_SESSIONS`` broadcasts to the fleet."""
    actor = await who.act((body.from_session, "from_session"), (body.session_id, "session_id"),
                          (session_id, "session_id"))
    first_tried = queued_at(request)
    return await mutate(request, actor, Call(
        "messages.send", actor, to_session=body.to_session, to_machine=body.to_machine, subject=body.subject,
        body=body.body, project_key=body.project_key, thread_id=body.thread_id, reply_to=body.reply_to,
        importance=body.importance, message_type=body.message_type, requires_ack=body.requires_ack,
        ack_wait_seconds=body.ack_wait_seconds, max_deliveries=body.max_deliveries, escalate_to=body.escalate_to,
        to_incarnation=body.to_incarnation, queued_at=first_tried), status=201,
        ahead=Ahead.of(sessions=(body.to_session, body.escalate_to, *_machine_keys(body.to_machine)),
                       quotas=(actor.session_id,)))


def _machine_keys(machine: str | None) -> tuple[str, ...]:
    """The sessions a send to ``machine`` looks up (:func:`~coordhub.core.identity.machine_recipient`), to read
    ahead with the batch; none for a send without one."""
    return () if machine is None else (main_session(machine), machine)


async def _viewer(who: Caller, *claims: tuple[str | None, str]) -> str:
    """The session whose inbox a read shows (:meth:`~coordhub.api.auth.Caller.viewer`'s rules), named by the first
    given of ``claims``, ``(value, query parameter)`` pairs; 422 when two given name different sessions, or when
    none is given on a --no-auth hub without the session header."""
    named = [(v, f) for v, f in claims if v is not None]
    for other, other_field in named[1:]:
        if not same_session(other, named[0][0]):
            raise Invalid(f"{other_field} {other!r} and {named[0][1]} {named[0][0]!r} name different sessions",
                          field=other_field)
    claimed, field = named[0] if named else (None, claims[0][1])
    viewer = await who.viewer(claimed, field)
    if viewer is None:
        fields = " or ".join(f"{f}=MACHINE/name" for _, f in claims)
        raise Invalid(f"name the session whose inbox to read: {fields}", field=field)
    return viewer


@router.get("", response_model=list[MessageOut], responses=responses(*READ_ERRORS))
async def inbox(request: Request, to_session: str | None = None, unread_only: bool = False,
                session_id: str | None = Query(None, description=(
                    "The same as to_session: seed 001 names the calling session so on every call; given both, "
                    "they must name one session (else 422).")),
                thread_id: str | None = Query(None, min_length=1, max_length=200, description=(
                    "List this thread instead of the inbox: its messages the session sent, was sent or that were "
                    "broadcast, oldest first (page with after_seq; not with unread_only or before_seq).")),
                limit: int = Query(100, ge=1, le=messages.MAX_INBOX),
                before_seq: int | None = Query(None, ge=1, le=2**62),
                after_seq: int = Query(0, ge=0, le=2**62),
                who: Caller = Depends(caller)) -> JSONResponse:
    """A session's inbox (seed 001): ``unread_only=true`` gives unread direct messages and broadcasts.

    The session is named by ``to_session`` or ``session_id`` (seed 001's name for the caller on every call; it was
    ignored here, so a token read its own inbox under another's name, and a --no-auth hub refused it).

    Unread ones come oldest first (``seq`` above ``after_seq``), all of them newest first (``seq`` below
    ``before_seq``). ``thread_id`` lists that thread as the session may read it, oldest first (``seq`` above
    ``after_seq``); an unknown thread is ``[]``. At most ``limit`` messages and about 4 MiB of their text per
    answer (at least one); when more follow, ``Coord-Next-After-Seq`` (unread, thread) or
    ``Coord-Next-Before-Seq`` (all) carries the seq to ask again with. Reading marks nothing read. 422 for
    ``thread_id`` with ``unread_only=true`` or ``before_seq``.
    """
    viewer = await _viewer(who, (to_session, "to_session"), (session_id, "session_id"))
    h = hub(request)  # up to 500 rows and 4 MiB of their text, unread or not: off the loop (bodies of 512 KiB)
    if thread_id is not None:
        if unread_only or before_seq is not None:
            raise Invalid("thread_id lists a thread oldest first: page it with after_seq, without "
                          + ("unread_only" if unread_only else "before_seq"),
                          field="unread_only" if unread_only else "before_seq")
        return paged(await h.query_off_loop(lambda tx, now: messages.thread_page(
            tx, viewer, thread_id, limit=limit, after_seq=after_seq)), NEXT_AFTER_SEQ_HEADER)
    page = await h.query_off_loop(lambda tx, now: messages.inbox_page(
        tx, viewer, unread_only=unread_only, limit=limit, before_seq=before_seq, after_seq=after_seq))
    return paged(page, NEXT_AFTER_SEQ_HEADER if unread_only else NEXT_BEFORE_SEQ_HEADER)


@router.get("/unread-count", response_model=UnreadCountOut, responses=responses(*READ_ERRORS))
async def unread_count(request: Request, session_id: str | None = None, to_session: str | None = OWNER_ALIAS,
                       who: Caller = Depends(caller)) -> JSONResponse:
    """How many messages a session has not read (``session_id``, or seed 001's ``to_session``)."""
    viewer = await _viewer(who, (session_id, "session_id"), (to_session, "to_session"))
    return await query(request, lambda tx, now: {"session_id": viewer,
                                                 "unread": messages.unread_count(tx, viewer)})


@router.get("/wait", response_model=list[MessageOut], responses=responses(*READ_ERRORS))
async def wait(request: Request, timeout: float = Query(30.0, ge=0, le=MAX_WAIT_SECONDS),
               after_seq: int = Query(0, ge=0, le=2**62), session_id: str | None = None,
               to_session: str | None = OWNER_ALIAS, who: Caller = Depends(caller)) -> JSONResponse:
    """Long-poll: answer as soon as the caller has an unread message with ``seq > after_seq``, else ``[]``.

    At most 100 messages and about 4 MiB of their text (at least one); ``Coord-Next-After-Seq`` says more follow.

    A wait (``timeout`` > 0) holds one of the session's ``streams_per_token`` slots (429 ``too_many_streams``).
    After waiting it answers only while its credential is live: a token revoked (or a dashboard signed out)
    meanwhile gets 401, not the messages sent since (review: a wait delivered them after the revocation).
    """
    viewer = await _viewer(who, (session_id, "session_id"), (to_session, "to_session"))
    h = hub(request)
    bus = h.bus
    assert bus is not None
    deadline = time.monotonic() + timeout
    credential = await streams.credential(request, who) if timeout > 0 else None
    async with streams.slots(request).hold(streams.key(who, request)) if timeout > 0 else contextlib.nullcontext():
        waited = False
        while True:
            cursor = bus.last_id  # before the query: nothing committed after it can be missed
            if waited and credential is not None and credential.still is not None and not await credential.still():
                raise Unauthorized(SIGNED_OUT if credential.web is not None else tokens.REVOKED)
            page = await h.query_off_loop(lambda tx, now: messages.inbox_page(tx, viewer, unread_only=True,
                                                                               after_seq=after_seq))
            if page[0] or not await _message_for(request, bus, viewer, cursor, deadline):
                return paged(page, NEXT_AFTER_SEQ_HEADER)
            waited = True


async def _message_for(request: Request, bus: EventBus, viewer: str, cursor: int, deadline: float) -> bool:
    """Wait until an event that may bring ``viewer`` a message is published; False at the deadline, or when the
    process begins to shut down (:func:`~coordhub.api.streams.until_event`)."""
    while (left := deadline - time.monotonic()) > 0:
        if not await streams.until_event(request, bus, cursor, left):
            return False
        new = bus.since(cursor)
        if new is None:
            return True
        cursor = bus.last_id
        if any(r["kind"] in NEWS and r["target"] in (viewer, "*") for r in new):
            return True
    return False


@router.post("/unshown", response_model=UnshownOut, responses=responses(*WRITE_ERRORS))
async def unshown(request: Request, body: Unshown | None = None, who: Caller = Depends(caller)) -> JSONResponse:
    """The caller's unread messages not yet shown to its agent, oldest first, now marked shown (hooks use it).

    Pending conversation turns to the caller's address that its agent has not
    been shown come in the same answer (``turns``, ``turns_more``), sharing
    ``limit`` and the answer's bound after the messages, so a hook asks once. About 4 MiB of text (encoded
    bytes) at most, at least one message or, with none, one turn; ``more`` counts the messages left unshown,
    and while any are left no turns come; ``turns_more`` counts the turns left unshown.
    """
    actor = await who.act()
    limit = body.limit if body else 5

    def op(tx: Tx, now: float) -> dict[str, Any]:
        out = messages.unshown(tx, actor, limit, now)
        room = 0 if out["more"] else limit - len(out["messages"])  # messages cut for size: turns wait too
        spent = sum(paging.size(m, messages.TEXT) for m in out["messages"])
        turns = conversations.unshown(tx, actor, room, now, paging.PAGE_BYTES - spent, first=not out["messages"])
        return {**out, "turns": turns["turns"], "turns_more": turns["more"]}

    # Not a Call: it marks shown what it answers, so its answer must not be lost on a link (see core/calls.py).
    return await mutate(request, actor, op, during_halt=Exempt.SEEN)


def _typed(request: Request) -> dict[str, str]:
    """``{"shown": …}``: the seed-002 id the path named the message by (:data:`MessageRef`), for a 404 to name it as
    the caller wrote it, not by the hub id it maps to; ``{}`` for a hub id."""
    typed = str(request.path_params.get("message_id", ""))
    return {"shown": typed} if typed.startswith(SEED_ID_PREFIX) else {}


async def _reader(request: Request, who: Caller, message_id: uuid.UUID, session_id: str | None) -> Actor:
    """Who marks a message read or acks it: the caller, or on a no-auth hub with no session named, its recipient."""
    if not who.names_nobody((session_id, "session_id")):
        return await who.act((session_id, "session_id"))
    to = await hub(request).query(lambda tx, now: messages.recipient_of(tx, str(message_id), **_typed(request)))
    if to is None:
        raise Invalid("this message is a broadcast: name the session that read it with session_id=MACHINE/name "
                      f"or the {SESSION_HEADER} header", field="session_id")
    return await who.act((to, "session_id"))


@router.get("/{message_id}", response_model=MessageOut, responses=responses(*READ_ERRORS, 404))
async def get(message_id: MessageRef, request: Request, session_id: str | None = None,
              who: Caller = Depends(caller)) -> JSONResponse:
    """One message the caller sent, received, or that was broadcast."""
    viewer = await _viewer(who, (session_id, "session_id"))
    actor = who.token_actor or Actor(viewer, is_admin=True)
    return await query(request, lambda tx, now: messages.get(tx, actor, str(message_id), **_typed(request)))


@router.put("/{message_id}/read", response_model=MessageMarkedOut, responses=responses(*WRITE_ERRORS, 404))
async def mark_read(message_id: MessageRef, request: Request, session_id: str | None = None,
                    who: Caller = Depends(caller)) -> JSONResponse:
    """Mark a message read for the caller only (a broadcast stays unread for everyone else); ``already: true``
    when the caller had read it before (nothing changed).

    On a ``--no-auth`` hub a request that names no session (seed 001's own
    call) acts as the message's recipient; only a broadcast needs one named.
    """
    actor = await _reader(request, who, message_id, session_id)
    return await mutate(request, actor, Call("messages.mark_read", actor, message_id=str(message_id),
                                             **_typed(request)),
                        during_halt=Exempt.SEEN)


@router.post("/{message_id}/ack", response_model=MessageMarkedOut, responses=responses(*WRITE_ERRORS, 404))
async def ack(message_id: MessageRef, request: Request, session_id: str | None = None,
              who: Caller = Depends(caller)) -> JSONResponse:
    """Acknowledge a message (marks it read too); acking twice is harmless, the second answered with ``already:
    true``. No-auth: as ``PUT …/read``."""
    actor = await _reader(request, who, message_id, session_id)
    return await mutate(request, actor, Call("messages.ack", actor, message_id=str(message_id), **_typed(request)),
                        during_halt=Exempt.SEEN)
