"""The planning brain under ``/api/coord/orchestrator/proposals``: plans stored by ``coord plan``, approved
(``coord approve``) through the path of ``coord assign``, and splits recorded (``coord split``). See
``coordhub.core.proposals``; the Claude session and ``gh`` run on the caller's machine, never in the hub."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.proposal_schemas import (
    ApproveOut,
    PlanOut,
    ProposalOut,
    ProposalsApprove,
    ProposalsCreate,
    SplitRecord,
)
from coordhub.api.routes.common import READ_ERRORS, WRITE_ERRORS, hub, mutate, paged, query
from coordhub.core import proposals
from coordhub.store.tx import Tx

PathId = Annotated[int, Path(ge=1, le=2**62, description="A proposal's id.")]  # a larger one is a 422, not a 500
router = APIRouter(prefix="/api/coord/orchestrator/proposals", tags=["orchestrator"])


@router.post("", status_code=201, response_model=PlanOut, responses=responses(*WRITE_ERRORS, 409))
async def create(body: ProposalsCreate, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Store a plan's proposals as pending (201; 200 with ``dry_run``, nothing written). All or nothing: 422
    naming the first bad proposal; a pending one of the same kind for the same issue is superseded. 403 for a
    worker or host."""
    actor = await who.act()

    def op(tx: Tx, now: float) -> dict[str, Any]:
        return proposals.store(tx, actor, now, body.proposals, dry_run=body.dry_run)

    if body.dry_run:
        return await query(request, op)
    return await mutate(request, actor, op, status=201)


@router.get("", response_model=list[ProposalOut], responses=responses(*READ_ERRORS))
async def find(request: Request, state: str | None = Query(None, max_length=20),
               repo: str | None = Query(None, max_length=64),
               limit: int = Query(200, ge=1, le=proposals.PAGE), cursor: str | None = Query(None, max_length=2048),
               who: Caller = Depends(caller)) -> JSONResponse:
    """Proposals, newest first; ``?state=`` pending, approved, split or superseded; ``?repo=``.

    At most ``limit`` and about 4 MiB of their text per answer (at least one), read on a reader thread; when
    more follow, the ``Coord-Next-Cursor`` header carries the ``cursor=`` to ask again with.
    """
    return paged(await hub(request).query_off_loop(
        lambda tx, now: proposals.find(tx, state, repo, limit, cursor)))


@router.get("/{proposal_id}", response_model=ProposalOut, responses=responses(*READ_ERRORS, 404))
async def get(proposal_id: PathId, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """One proposal."""
    return await query(request, lambda tx, now: proposals.render(proposals.get_row(tx, proposal_id)))


@router.post("/approve", response_model=ApproveOut, responses=responses(*WRITE_ERRORS, 404, 409))
async def approve(body: ProposalsApprove, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Queue assign proposals as ``POST …/assignments`` would, all or nothing; one approved before answers its
    assignment (``already: true``) and queues nothing. 409 ``upstream_in_flight``, ``already_assigned`` or
    ``proposal_closed``; 422 for a split proposal; 403 for a worker or host. ``dry_run`` writes nothing."""
    actor = await who.act()
    mode = "pull" if body.auto_pull else "skip" if body.skip_freshness else None

    def op(tx: Tx, now: float) -> dict[str, Any]:
        return proposals.approve(tx, actor, now, body.ids, freshness=mode, dry_run=body.dry_run)

    if body.dry_run:
        return await query(request, op)
    return await mutate(request, actor, op)


@router.post("/{proposal_id}/split", response_model=ProposalOut, responses=responses(*WRITE_ERRORS, 404, 409))
async def split(proposal_id: PathId, body: SplitRecord, request: Request,
                who: Caller = Depends(caller)) -> JSONResponse:
    """Record the sub-issues ``coord split`` created; ``done`` closes the split once every child has one. 409 when a
    child already has another issue number (create nothing more), or the proposal was superseded."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: proposals.record_split(
        tx, actor, now, proposal_id, [c.model_dump() for c in body.created], done=body.done))
