"""Presence (register, heartbeat, deregister, list) and whoami."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.routes.common import READ_ERRORS, WRITE_ERRORS, hub, mutate, paged, query
from coordhub.api.schemas import PresenceBeat, PresenceEnd, PresenceOut, PresenceRegister, WhoamiOut
from coordhub.core import presence
from coordhub.core.calls import Call
from coordhub.core.halt import Exempt

router = APIRouter(prefix="/api/coord", tags=["presence"])


@router.get("/whoami", response_model=WhoamiOut, responses=responses(*READ_ERRORS))
async def whoami(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """The caller's session, whether it is an admin, and its presence."""
    me = await who.viewer(None, "session_id")
    admin = who.token_actor.is_admin if who.token_actor else True
    return await query(request, lambda tx, now: {
        "session_id": me, "admin": admin, "presence": presence.of(tx, me, now) if me else None})


@router.post("/presence/register", response_model=PresenceOut, responses=responses(*WRITE_ERRORS))
async def register(body: PresenceRegister, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Start a new incarnation of the caller (an agent process started)."""
    actor = await who.act((body.session_id, "session_id"))
    return await mutate(request, actor, Call("presence.register", actor, client=body.client,
                                             client_session=body.client_session, cwd=body.cwd),
                        during_halt=Exempt.PRESENCE)


@router.post("/presence/heartbeat", response_model=PresenceOut, responses=responses(*WRITE_ERRORS, 409))
async def heartbeat(body: PresenceBeat, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Keep the caller's presence alive; 409 ``stale_incarnation`` if a newer incarnation registered."""
    actor = await who.act((body.session_id, "session_id"))
    return await mutate(request, actor, Call("presence.heartbeat", actor, incarnation=body.incarnation),
                        during_halt=Exempt.PRESENCE)


@router.post("/presence/deregister", response_model=PresenceOut, responses=responses(*WRITE_ERRORS, 409))
async def deregister(body: PresenceEnd, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """End the caller's incarnation (offline at once), optionally releasing its leases."""
    actor = await who.act((body.session_id, "session_id"))
    return await mutate(request, actor, Call("presence.deregister", actor, incarnation=body.incarnation,
                                             release_leases=body.release_leases), during_halt=Exempt.PRESENCE)


@router.get("/presence", response_model=list[PresenceOut], responses=responses(*READ_ERRORS))
async def find(request: Request, state: str | None = Query(None, max_length=16),
               limit: int = Query(presence.LIMIT, ge=1, le=presence.LIMIT),
               cursor: str | None = Query(None, max_length=2048), who: Caller = Depends(caller)) -> JSONResponse:
    """Sessions that registered presence, by id, with their state (active, idle, stale, offline); ``state`` filters
    (``live``: every state but offline).

    At most ``limit`` (default and most 1,000) per answer; when more may follow, the ``Coord-Next-Cursor`` header
    carries the ``cursor=`` to ask again with.
    """
    # off the loop: the database may walk every session that ever registered (a worker is a session of its own)
    return paged(await hub(request).query_off_loop(
        lambda tx, now: presence.page(tx, now, state, limit, cursor)))
