"""Conversations (issue 9, seed 004): ``/api/coord/conversations`` — profiles, keys, turns, inbox, status.

Signatures are checked before the write's transaction, on a worker thread
(``gpg`` takes milliseconds and must not hold the event loop or the single
writer), and only for a turn the write would not refuse for another reason
(:func:`coordhub.core.conversations.screen`); the transaction then records
the verdict with the turn.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from coordhub import openpgp
from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.conversation_schemas import (
    AddressOut,
    ConversationDetailOut,
    ConversationOut,
    KeyAdd,
    KeyOut,
    NextSequenceOut,
    ProfileOut,
    ProfileSet,
    StatusOut,
    TurnOut,
    TurnRelease,
    TurnSend,
)
from coordhub.api.errors import responses
from coordhub.api.routes.common import READ_ERRORS, WRITE_ERRORS, hub, idempotent, mutate, paged, query
from coordhub.core import addressing, conversations, halt, signingkeys
from coordhub.core.calls import Call
from coordhub.core.halt import Exempt
from coordhub.core.identity import Actor
from coordhub.core.turns import Draft, draft
from coordhub.errors import Invalid
from coordhub.headers import NEXT_AFTER_HEADER
from coordhub.store.tx import Tx

router = APIRouter(prefix="/api/coord/conversations", tags=["conversations"])


async def _actor(who: Caller) -> Actor:
    return await who.act()


@router.get("/profile", response_model=ProfileOut, responses=responses(*READ_ERRORS))
async def get_profile(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Your conversation address (`<machine>.<project>`) and declared tools."""
    actor = await _actor(who)
    return await query(request, lambda tx, now: addressing.profile(tx, actor))


@router.put("/profile", response_model=ProfileOut, responses=responses(*WRITE_ERRORS))
async def set_profile(body: ProfileSet, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Declare your machine, project and/or tools (omitted ones keep their value)."""
    actor = await _actor(who)
    return await mutate(request, actor, lambda tx, now: addressing.set_profile(
        tx, actor, machine=body.machine, project=body.project, tools=body.tools, now=now),
        during_halt=Exempt.PRESENCE)


@router.get("/addresses", response_model=list[AddressOut], responses=responses(*READ_ERRORS))
async def addresses(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Every declared address with its sessions (and their presence) and pending count (null for another
    machine's address unless admin)."""
    actor = await _actor(who)
    # off the loop: the pending counts walk every accepted turn ever sent to a declared address, and the
    # dashboard's Fleet and Conversations views read this again on every presence and conversation event
    return await query(request, lambda tx, now: addressing.addresses(tx, actor, now), off_loop=True)


@router.post("/keys", status_code=201, response_model=KeyOut, responses=responses(*WRITE_ERRORS, 409))
async def add_key(body: KeyAdd, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Register an armored OpenPGP public key: your signed turns are verified against your keys.

    ``proof``: a detached signature by the key over the statement naming this hub, your session and the key
    (:func:`coordhub.core.signingkeys.proof_statement`); 422 with the ``statement`` to sign when it is missing
    or wrong. 409 ``key_taken``: another session registered this key (a key belongs to one session). 422 with
    ``bound`` for a key outside the key bounds (:func:`coordhub.openpgp.key_fault`), before ``gpg`` runs."""
    actor = await _actor(who)
    try:
        fingerprint = await asyncio.to_thread(openpgp.fingerprint, body.armored)
    except openpgp.BadKey as exc:  # refused before gpg runs when it passes a bound (named in ``bound``)
        bound = {} if exc.bound is None else {"bound": exc.bound, "limit": exc.limit}
        raise Invalid(str(exc), field="armored", **bound) from None
    hub_id = await request.app.state.hub.known_id()
    await asyncio.to_thread(signingkeys.check_proof, str(hub_id), actor.session_id, body.armored, fingerprint,
                            body.proof)
    return await mutate(request, actor, lambda tx, now: signingkeys.add_key(
        tx, actor, body.armored, fingerprint, now), status=201)


@router.get("/keys", response_model=list[KeyOut], responses=responses(*READ_ERRORS))
async def keys(request: Request, of: str | None = None, who: Caller = Depends(caller)) -> JSONResponse:
    """A session's registered public keys (``?of=SESSION``, default: yours); public keys are readable by every
    session, so a receiver can verify a turn without trusting the hub. (Not ``session_id``: that name only ever
    repeats the caller's own id.)"""
    actor = await _actor(who)
    whose = actor.session_id if of is None else of
    return await query(request, lambda tx, now: signingkeys.keys(tx, whose))


@router.delete("/keys/{fingerprint}", responses=responses(*WRITE_ERRORS, 404))
async def delete_key(fingerprint: str, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Remove one of your keys."""
    actor = await _actor(who)
    return await mutate(request, actor, lambda tx, now: signingkeys.delete_key(tx, actor, fingerprint, now),
                        during_halt=Exempt.RELEASE)


async def _send(request: Request, actor: Actor, d: Draft) -> JSONResponse:
    verdict = None
    if d.signature is not None:
        signature = d.signature
        idem = await idempotent(request)
        h = hub(request)

        def keys_unless_refused(tx: Tx, now: float) -> list[str]:
            # A turn the write would refuse anyway is refused before gpg runs: gpg costs milliseconds of CPU (up to
            # its timeout for a hostile file), and a refused turn is neither recorded nor charged to the day's
            # bound, so one token could otherwise buy gpg runs for nothing. gpg stays off the writer, so these
            # checks read a snapshot here and the write's transaction makes them again; one the snapshot let
            # through still costs a gpg run, never a wrong answer.
            if not h.screen(tx, actor, idem):
                return []  # a replay answers what the first request got: no verdict is read, so no gpg runs
            conversations.screen(tx, actor, d, now)
            return signingkeys.armored_keys(tx, actor.session_id)

        found = await h.query(keys_unless_refused)
        if found:
            verdict = await asyncio.to_thread(openpgp.verify, d.content.encode("utf-8"), signature, found)
    if verdict is None:  # plain data: under --writer-process it runs there, as a send does
        return await mutate(request, actor, Call("conversations.send", actor, draft=d.plain()))
    return await mutate(request, actor, lambda tx, now: conversations.send(tx, actor, d, verdict, now))


@router.post("/turns", status_code=201, response_model=TurnOut, responses=responses(*WRITE_ERRORS, 404, 409),
             openapi_extra={"responses": {"200": {"description": "An identical retry: the first turn, "
                                                                 "decision dedup."}}})
async def send(body: TurnSend, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Send a turn; the hub decides it (process, dedup, query, reject) and assigns its sequence.

    201 for a recorded turn, 200 for an identical retry (the first turn, ``decision: dedup``); 422
    ``unknown_destination`` lists the known addresses; 409 ``sequence_taken`` answers ``expect_sequence``, and a
    signed file whose ``#+SEQUENCE`` is not the one the hub assigns; 404 for an existing conversation you take no
    part in; 409 ``conversation_full`` and 429 ``turn_quota`` name the bound a turn would pass.
    """
    actor = await _actor(who)
    title = body.title
    if body.content is None and title is None and body.conversation_id is not None:
        # a field-form turn naming no title takes its conversation's (it took the id: review, seed-004 user run)
        cid = body.conversation_id
        title = await hub(request).query(lambda tx, now: conversations.title(tx, actor, cid))
    d = draft(
        to=body.to, content=body.content, signature=body.signature, expect_sequence=body.expect_sequence,
        from_machine=body.from_machine, from_project=body.from_project, conversation_id=body.conversation_id,
        type=body.type, title=title, body=body.body, requires_tools=body.requires_tools,
        release_status=body.release_status, protocol_version=body.protocol_version, now=hub(request).clock.now())
    return await _send(request, actor, d)


@router.get("/turns", response_model=list[TurnOut], responses=responses(*READ_ERRORS))
async def turns(request: Request, to_machine: str | None = None, after: int = Query(0, ge=0, le=2**62),
                limit: int = Query(500, ge=1, le=conversations.MAX_PAGE),
                who: Caller = Depends(caller)) -> JSONResponse:
    """Accepted turns to any project on a machine (default: yours) with ``id > after``, oldest first (sync).

    At most ``limit`` turns and about 4 MiB of their text per answer (at least one); when more follow,
    ``Coord-Next-After`` carries the ``after`` to ask again with."""
    actor = await _actor(who)
    return paged(await hub(request).query_off_loop(
        lambda tx, now: conversations.for_machine(tx, actor, to_machine, after, limit)), NEXT_AFTER_HEADER)


@router.get("/turns/{turn_id}", response_model=TurnOut, responses=responses(*READ_ERRORS, 404))
async def get_turn(turn_id: Annotated[int, Path(ge=1, le=2**62)], request: Request,
                   who: Caller = Depends(caller)) -> JSONResponse:
    """One turn you wrote, or of a conversation your address takes part in."""
    actor = await _actor(who)
    return await query(request, lambda tx, now: conversations.turn(tx, actor, turn_id))


@router.get("/inbox", response_model=list[TurnOut], responses=responses(*READ_ERRORS))
async def inbox(request: Request, address: str | None = None, after: int = Query(0, ge=0, le=2**62),
                limit: int = Query(100, ge=1, le=conversations.MAX_PAGE),
                who: Caller = Depends(caller)) -> JSONResponse:
    """Pending turns to your address with ``id > after``, oldest first (pending: no release followed it in its
    conversation). At most ``limit`` and about 4 MiB of their text per answer (at least one); when more follow,
    ``Coord-Next-After`` carries the ``after`` to ask again with."""
    actor = await _actor(who)
    return paged(await hub(request).query_off_loop(
        lambda tx, now: conversations.inbox(tx, actor, address, limit, after)), NEXT_AFTER_HEADER)


@router.get("/status", response_model=StatusOut, responses=responses(*READ_ERRORS))
async def status(request: Request, machine: str | None = None, who: Caller = Depends(caller)) -> JSONResponse:
    """Seed 004's ``cross-agent-status``: pending count and newest pending turn per project on a machine.

    ``halt_active``: a halt covers the caller (the fleet's, its machine's or its project's).
    """
    actor = await _actor(who)
    # off the loop, as /addresses: its pending counts walk every accepted turn ever sent to the machine's
    # addresses (turns are never pruned, and any session may send 20,000 a day to any address) and it reads every
    # session that declared an address; a session may ask it of its own machine (an admin of any) as often as its
    # rate allows
    return await query(request, lambda tx, now: conversations.status(
        tx, actor, machine, now, halt_active=halt.for_session(tx, actor.session_id)["halt"] is not None),
        off_loop=True)


@router.get("", response_model=list[ConversationOut], responses=responses(*READ_ERRORS))
async def listing(request: Request, state: str | None = None, project: str | None = None,
                  limit: int = Query(100, ge=1, le=conversations.MAX_PAGE),
                  who: Caller = Depends(caller)) -> JSONResponse:
    """Conversations your address takes part in (every one for an admin), most recently updated first."""
    actor = await _actor(who)
    return await query(request, lambda tx, now: conversations.listing(
        tx, actor, state=state, project=project, limit=limit), off_loop=True)


@router.get("/{conversation_id}", response_model=ConversationDetailOut, responses=responses(*READ_ERRORS, 404))
async def show(conversation_id: str, request: Request, after: int = Query(0, ge=0, le=2**62),
               limit: int = Query(conversations.SHOW_PAGE, ge=1, le=conversations.MAX_PAGE),
               who: Caller = Depends(caller)) -> JSONResponse:
    """A conversation you take part in and one page of its turns (accepted ones and your own refused ones, in the
    order they were recorded) with ``id > after``: at most ``limit`` and about 4 MiB of text (at least one turn).
    ``next_after`` is the ``after`` of the next page, null on the last."""
    actor = await _actor(who)
    return await query(request, lambda tx, now: conversations.show(tx, actor, conversation_id, after=after,
                                                                   limit=limit), off_loop=True)


@router.get("/{conversation_id}/next-sequence", response_model=NextSequenceOut,
            responses=responses(*READ_ERRORS, 404))
async def next_sequence(conversation_id: str, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """The sequence the next accepted turn gets (a signing sender writes it into its file, then sends); 1 for a
    new conversation, and 1 for one you take no part in (as for an unused id: a read says nothing of which ids
    exist; sending into it is 404)."""
    actor = await _actor(who)
    return await query(request, lambda tx, now: {
        "conversation_id": conversation_id, "next_sequence": conversations.next_sequence(tx, actor, conversation_id)})


@router.post("/{conversation_id}/release", status_code=201, response_model=TurnOut,
             responses=responses(*WRITE_ERRORS, 404))
async def release(conversation_id: str, body: TurnRelease, request: Request,
                  who: Caller = Depends(caller)) -> JSONResponse:
    """Release a conversation: a ``release`` turn, after which none of its earlier turns is pending.

    A conversation already released answers the release that did it (200, ``decision: dedup``)."""
    actor = await _actor(who)
    h = hub(request)
    d = await h.query(lambda tx, now: conversations.release_draft(
        tx, actor, conversation_id, to=body.to, release_status=body.release_status, body=body.body, now=now))
    return await _send(request, actor, d)
