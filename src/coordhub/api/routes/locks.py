"""Leases, under seed 001's ``/api/coord/locks`` paths."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.routes.common import (
    CALLER_QUERY,
    READ_ERRORS,
    WRITE_ERRORS,
    hub,
    mutate,
    query,
    query_charged,
)
from coordhub.api.schemas import (
    ClaimOut,
    ConflictsOut,
    FenceCheckOut,
    LeaseOut,
    Line,
    LockClaim,
    LockRenew,
    LongLine,
    ReleaseAllOut,
    ReleaseOut,
    Strict,
    Subject,
)
from coordhub.core import fences, halt, leasequeries, leases
from coordhub.core.calls import Call
from coordhub.errors import Invalid
from coordhub.headers import NEXT_AFTER_FENCE_HEADER
from coordhub.store.base import Ahead
from coordhub.store.tx import Tx

router = APIRouter(prefix="/api/coord/locks", tags=["locks"])


@router.post("", status_code=201, response_model=ClaimOut, responses=responses(*WRITE_ERRORS, 409))
async def claim(body: LockClaim, request: Request, session_id: str | None = CALLER_QUERY,
                who: Caller = Depends(caller)) -> JSONResponse:
    """Claim a lease. 409 names the live holder of an overlapping lease; success carries a ``fence``.

    Claiming a resource the caller already holds renews that lease (same id and fence, ``renewed: true``).
    """
    actor = await who.act((body.session_id, "session_id"), (session_id, "session_id"))
    return await mutate(request, actor, Call(
        "leases.claim", actor, project_key=body.project_key, resource=body.resource, description=body.description,
        ttl_hours=body.ttl_hours), status=201,
        ahead=lambda: Ahead.of(scans=(leases.claim_scan(body.project_key, body.resource),)),  # parsed if read ahead
        charge=who)




@router.get("", response_model=list[LeaseOut], responses=responses(*READ_ERRORS))
async def list_live(request: Request, project_key: str | None = None, resource: str | None = None,
                    session_id: str | None = None, after_fence: int = Query(0, ge=0, le=2**62),
                    limit: int = Query(leasequeries.PAGE, ge=1, le=leasequeries.PAGE),
                    who: Caller = Depends(caller)) -> JSONResponse:
    """Live leases, oldest grant first; ``resource`` narrows to leases overlapping it (seed 001's conflict check).

    At most ``limit`` leases (≤ 500) and about 4 MiB per answer (at least one). When more follow, the
    ``Coord-Next-After-Fence`` header carries the fence to page on with (``after_fence=``).
    """
    holder = await who.session(session_id)
    out, after = await query_charged(
        request, lambda tx, now: leasequeries.page(tx, now, project_key, resource, holder, after_fence=after_fence,
                                             limit=limit), who)
    return JSONResponse(out, headers={NEXT_AFTER_FENCE_HEADER: str(after)} if after is not None else None)


@router.delete("", response_model=ReleaseAllOut, responses=responses(*WRITE_ERRORS))
async def release_all(request: Request, session_id: str | None = None, release_all: bool = False,
                      who: Caller = Depends(caller)) -> JSONResponse:
    """Release every lease of a session (seed 001 session clean-up: ``?session_id=&release_all=true``)."""
    if not release_all:
        raise Invalid("add release_all=true to release every lease of the session", field="release_all")
    admin = who.token_actor if who.token_actor is not None and who.token_actor.is_admin else None
    # An admin may clear another session's leases; anyone else only their own.
    actor = admin or await who.act((session_id, "session_id"))
    target = await who.session(session_id) or actor.session_id
    return await mutate(request, actor, lambda tx, now: leases.release_all(tx, actor, target, now),
                        during_halt=halt.Exempt.RELEASE)


@router.get("/check", response_model=FenceCheckOut, responses=responses(*READ_ERRORS))
async def check(request: Request, fence: int = Query(ge=1, le=2**62), resource: str | None = None,
                project_key: str | None = None, who: Caller = Depends(caller)) -> JSONResponse:
    """Is ``fence`` still the live grant (covering ``resource``)? For anything about to act as holder."""
    # Off the loop: matching ``resource`` against a glob lease costs what the glob and the text decide.
    return await query(request, lambda tx, now: fences.check_fence(tx, fence, now, resource, project_key),
                       off_loop=True, charge=who)


@router.get("/conflicts", response_model=ConflictsOut, responses=responses(*READ_ERRORS))
async def conflicts(request: Request, project_key: str, resource: str, session_id: str | None = None,
                    who: Caller = Depends(caller)) -> JSONResponse:
    """What an edit of ``resource`` would collide with: others' overlapping live leases, the caller's own, the
    halt that covers the caller or else the project's halt (``halt``, :func:`~coordhub.core.halt.for_work`) and
    the caller's pause (``paused``).

    One round trip for the edit hook and the git guard. Each list holds at most 500 leases (the oldest);
    ``leases_more`` / ``own_more`` say one was cut (``GET /locks?resource=`` pages through all). ``leases`` is
    empty only when no other session holds an overlapping live lease: the caller's own never crowd it out.
    """
    me = await who.viewer(session_id, "session_id")

    def op(tx: Tx, now: float) -> dict[str, Any]:
        (others, others_after), (own, own_after) = leasequeries.conflicts(tx, now, project_key, resource, me)
        stop = halt.for_work(tx, me, project_key)
        return {"leases": others, "own": own, "halt": stop["halt"], "paused": stop["paused"],
                "leases_more": others_after is not None, "own_more": own_after is not None}

    return await query(request, op, off_loop=True, charge=who)


class ConflictsQuery(Strict):
    """``POST /api/coord/locks/conflicts``: what an edit of several resources would collide with."""

    project_key: Line
    resources: list[LongLine] = Field(
        min_length=1, max_length=leasequeries.MAX_CONFLICT_RESOURCES,
        description=f"1 to {leasequeries.MAX_CONFLICT_RESOURCES} resources (paths, globs or names), each at most 1024 "
                    "characters.")
    session_id: Line | None = Field(None, description="Whose view (with auth: the caller's own, or any for an "
                                                      "admin).")


class ConflictsOfOut(ConflictsOut):
    """What an edit of several resources would collide with."""

    overlaps: list[list[str]] = Field(description="For each resource sent, in order: the ids of the leases in "
                                                  "``leases`` that overlap it.")


@router.post("/conflicts", response_model=ConflictsOfOut, responses=responses(*READ_ERRORS, 415))
async def conflicts_of(body: ConflictsQuery, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """``GET /locks/conflicts`` for up to 100 resources at once, plus ``overlaps``: which of ``leases`` overlaps
    each resource. For the git guard: one round trip per 100 changed paths, whatever the project holds.

    A lease overlapping several resources is listed once; the lists are cut as the GET cuts them, and all checks
    share one work budget (sound: past it, "overlaps"). 422 names a resource that is no valid resource by index.
    """
    me = await who.viewer(body.session_id, "session_id")

    def op(tx: Tx, now: float) -> dict[str, Any]:
        (others, others_after), (own, own_after), overlaps = leasequeries.conflicts_of(
            tx, now, body.project_key, body.resources, me)
        stop = halt.for_work(tx, me, body.project_key)
        return {"leases": others, "own": own, "halt": stop["halt"], "paused": stop["paused"],
                "leases_more": others_after is not None, "own_more": own_after is not None, "overlaps": overlaps}

    return await query(request, op, off_loop=True, charge=who)


@router.get("/{lease_id}", response_model=LeaseOut, responses=responses(*READ_ERRORS, 404))
async def get(lease_id: uuid.UUID, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """One lease in any state."""
    return await query(request, lambda tx, now: leasequeries.get(tx, str(lease_id), now))


@router.delete("/{lease_id}", response_model=ReleaseOut, responses=responses(*WRITE_ERRORS, 404))
async def release(lease_id: uuid.UUID, request: Request, session_id: str | None = None, force: bool = False,
                  reason: Subject | None = None, who: Caller = Depends(caller)) -> JSONResponse:
    """Release a lease (holder; anyone for a stale no-expiry lease, seed 001); ``force=true``: admin force-release.

    A non-holder's release of a live lease that is not stale answers 403 with ``stale_in_seconds``. A lease that
    had already ended answers 200 unchanged with ``already: true``, whoever asks (an ended lease is no one's).
    """
    actor = await who.act((session_id, "session_id"))
    ahead = Ahead(leases=(str(lease_id),))
    if force:
        return await mutate(request, actor, Call("leases.revoke", actor, lease_id=str(lease_id)),
                            during_halt=halt.Exempt.RELEASE, ahead=ahead)
    stale_after = hub(request).stale_after_hours
    return await mutate(request, actor, Call(
        "leases.release", actor, lease_id=str(lease_id), stale_after_hours=stale_after, reason=reason),
        during_halt=halt.Exempt.RELEASE, ahead=ahead)


@router.post("/{lease_id}/renew", response_model=LeaseOut, responses=responses(*WRITE_ERRORS, 404, 409))
async def renew(lease_id: uuid.UUID, request: Request, body: LockRenew | None = None,
                session_id: str | None = CALLER_QUERY, who: Caller = Depends(caller)) -> JSONResponse:
    """Extend a live lease (holder only); 409 ``stale_fence`` when it already ended.

    No body (as seed 001's clients send a call that carries nothing) renews by the lease's own TTL, as
    ``{}`` does; the caller may be named in the query, as on every seed 001 write.
    """
    actor = await who.act((body.session_id if body else None, "session_id"), (session_id, "session_id"))
    return await mutate(request, actor, Call("leases.renew", actor, lease_id=str(lease_id),
                                             ttl_hours=body.ttl_hours if body else None),
                        ahead=Ahead(leases=(str(lease_id),)))
