"""The GitHub audit trail and pull requests under ``/api/coord/orchestrator``: ``coord pr``, ``coord notify``,
an assignment's trail, and the host endpoints a ``coord agent`` with capability ``github`` posts through
(see ``coordhub.core.ghtrail``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.orchestrator_schemas import Incarnation, Name
from coordhub.api.routes.common import READ_ERRORS, WRITE_ERRORS, mutate, query
from coordhub.api.schemas import Out, Strict
from coordhub.core import ghtrail
from coordhub.core.halt import Exempt

router = APIRouter(prefix="/api/coord/orchestrator", tags=["orchestrator"])


class PrRequest(Strict):
    """``POST …/assignments/{id}/pr``."""

    review: bool = Field(True, description="false: `coord pr --no-review`.")


class PostsNext(Strict):
    """``POST …/github/next``: a host with capability ``github`` asks for posts to make."""

    machine: Name
    host_incarnation: Incarnation
    limit: int = Field(10, ge=1, le=50)


class PostReport(Strict):
    """``POST …/github/report``: a post was made (``ok``, its ``url``) or failed (``error``)."""

    machine: Name
    host_incarnation: Incarnation
    key: Annotated[str, Field(min_length=1, max_length=200)]
    ok: bool
    url: Annotated[str, Field(max_length=500)] | None = None
    error: Annotated[str, Field(max_length=2000)] | None = None


class PostOut(Out):
    """One audit-trail post."""

    key: str
    state: str
    kind: str


class PostsOut(Out):
    """``{posts: [...]}``."""

    posts: list[dict[str, Any]]


class NotifyOut(Out):
    """``{made, pending}``."""

    made: int
    pending: list[dict[str, Any]]


@router.post("/assignments/{assignment_id}/pr", response_model=PostOut, responses=responses(*WRITE_ERRORS, 404, 409))
async def pr(assignment_id: str, request: Request, body: PrRequest | None = None,
             who: Caller = Depends(caller)) -> JSONResponse:
    """``coord pr``: queue opening the PR of a done assignment's pushed branch (a host with capability ``github``
    opens it); 409 ``not_on_github`` for a repo without ``github:``, or when not done and pushed."""
    actor = await who.act()
    review = body.review if body else True
    return await mutate(request, actor, lambda tx, now: ghtrail.request_pr(tx, actor, assignment_id, now, review))


@router.get("/assignments/{assignment_id}/trail", response_model=PostsOut, responses=responses(*READ_ERRORS, 404))
async def trail(assignment_id: str, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """The audit trail of one assignment: every post (comment, PR, close), its state and URL."""
    return await query(request, lambda tx, now: {"posts": ghtrail.of_assignment(tx, assignment_id)})


@router.post("/notify", response_model=NotifyOut, responses=responses(*WRITE_ERRORS))
async def notify(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """``coord notify``: make the posts the new events call for now; answer them and what waits for a host."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: ghtrail.notify(tx, now), during_halt=Exempt.ORCHESTRATOR)


@router.post("/github/next", response_model=PostsOut, responses=responses(*WRITE_ERRORS, 409))
async def posts_next(body: PostsNext, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Host only (capability ``github``): posts to make now, marked as taken by this host."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: {"posts": ghtrail.claim(
        tx, actor, now, machine=body.machine, incarnation=body.host_incarnation, limit=body.limit)},
        during_halt=Exempt.ORCHESTRATOR)


@router.post("/github/report", response_model=PostOut, responses=responses(*WRITE_ERRORS, 409))
async def post_report(body: PostReport, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Host only: a post was made (its URL) or failed (pending again; failed after 5 tries)."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: ghtrail.report(
        tx, actor, now, machine=body.machine, incarnation=body.host_incarnation, key=body.key, ok=body.ok,
        url=body.url, error=body.error), during_halt=Exempt.ORCHESTRATOR)
