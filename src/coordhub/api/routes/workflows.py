"""Workflows and work items (seed 001)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi import APIRouter, Depends, Query, Request

from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.routes.common import CALLER_QUERY, READ_ERRORS, WRITE_ERRORS, hub, mutate, paged, query
from coordhub.api.schemas import (
    WorkflowCreate,
    WorkflowDetailOut,
    WorkflowOut,
    WorkflowPatch,
    WorkItemCreate,
    WorkItemOut,
    WorkItemPatch,
    dump,
)
from coordhub.core import workflows
from coordhub.core.identity import Actor
from coordhub.store.tx import Tx

router = APIRouter(prefix="/api/coord", tags=["workflows"])


@router.post("/workflows", status_code=201, response_model=WorkflowOut, responses=responses(*WRITE_ERRORS))
async def create(body: WorkflowCreate, request: Request, session_id: str | None = CALLER_QUERY,
                 who: Caller = Depends(caller)) -> JSONResponse:
    """Create a workflow (statuses: planning, active, blocked, completed, cancelled)."""
    actor = await who.act((body.created_by, "created_by"), (body.session_id, "session_id"), (session_id, "session_id"))
    return await mutate(request, actor, lambda tx, now: workflows.create(
        tx, actor, project_key=body.project_key, name=body.name, description=body.description,
        status=body.status, now=now), status=201)


@router.get("/workflows", response_model=list[WorkflowOut], responses=responses(*READ_ERRORS))
async def find(request: Request, project_key: str | None = None, status: str | None = None,
               cursor: str | None = Query(None, max_length=2048),
               brief: bool = Query(False, description="Leave out long text: each description is null."),
               who: Caller = Depends(caller)) -> JSONResponse:
    """Workflows, optionally of one project and status, oldest first.

    At most 1000 and about 4 MiB of their text per answer (at least one); when more follow, the
    ``Coord-Next-Cursor`` header carries the ``cursor=`` to ask again with. ``brief``: each ``description`` is
    null.
    """
    return paged(await hub(request).query_off_loop(lambda tx, now: workflows.page(
        tx, project_key=project_key, status=status, cursor=cursor, brief=brief)))


@router.get("/workflows/{workflow_id}", response_model=WorkflowDetailOut, responses=responses(*READ_ERRORS, 404))
async def get(workflow_id: uuid.UUID, request: Request, cursor: str | None = Query(None, max_length=2048),
              brief: bool = Query(False, description="Leave out long text: each description is null."),
              who: Caller = Depends(caller)) -> JSONResponse:
    """A workflow with its work items, highest priority first.

    At most 1000 items and about 4 MiB of their text per answer (at least one); when more follow, the
    ``Coord-Next-Cursor`` header carries the ``cursor=`` that answers the workflow with the next ones.
    ``brief``: the workflow's and each item's ``description`` is null.
    """
    return paged(await hub(request).query_off_loop(
        lambda tx, now: workflows.get_workflow(tx, str(workflow_id), cursor, brief)))


@router.patch("/workflows/{workflow_id}", response_model=WorkflowOut, responses=responses(*WRITE_ERRORS, 404))
async def patch(workflow_id: uuid.UUID, body: WorkflowPatch, request: Request,
                session_id: str | None = CALLER_QUERY, who: Caller = Depends(caller)) -> JSONResponse:
    """Change a workflow's status."""
    actor = await who.act((body.updated_by, "updated_by"), (body.session_id, "session_id"), (session_id, "session_id"))
    return await mutate(request, actor, lambda tx, now: workflows.set_workflow_status(
        tx, actor, str(workflow_id), body.status, now))


async def _item_writer(request: Request, who: Caller, owner: Callable[[Tx], str],
                       *claims: tuple[str | None, str]) -> Actor:
    """Who adds or updates a work item: the caller, as :meth:`~coordhub.api.auth.Caller.act` has it from
    ``claims``; on a ``--no-auth`` hub a request that names nobody acts as ``owner`` (the workflow's creator).

    Seed 001's work-item calls (``POST /work-items``, ``PATCH /work-items/{id}``) carry no session, on a
    network where the seed's server asked for no token; its workflow names the one session there is,
    ``created_by``. With tokens nothing changes: the token is the actor. 404 when the workflow or item is unknown.
    """
    if not who.names_nobody(*claims):
        return await who.act(*claims)
    named = await hub(request).query(lambda tx, now: owner(tx))
    return await who.act((named, "created_by"))


@router.post("/work-items", status_code=201, response_model=WorkItemOut, responses=responses(*WRITE_ERRORS, 404))
async def add_item(body: WorkItemCreate, request: Request, session_id: str | None = None,
                   who: Caller = Depends(caller)) -> JSONResponse:
    """Add a work item (statuses: pending, in_progress, blocked, completed, cancelled).

    The caller is named (without a token) by ``created_by``, ``session_id`` in the body or the query (seed 001's
    rule for every request), or the ``X-Coord-Session`` header; one that names nobody (seed 001's own call) acts
    as the workflow's creator."""
    actor = await _item_writer(request, who, lambda tx: workflows.owner(tx, body.workflow_id),
                               (body.created_by, "created_by"), (body.session_id, "session_id"),
                               (session_id, "session_id"))
    return await mutate(request, actor, lambda tx, now: workflows.add_item(
        tx, actor, workflow_id=body.workflow_id, title=body.title, project_key=body.project_key,
        description=body.description, status=body.status, priority=body.priority, assigned_to=body.assigned_to,
        now=now), status=201)


@router.get("/work-items/{item_id}", response_model=WorkItemOut, responses=responses(*READ_ERRORS, 404))
async def get_item(item_id: uuid.UUID, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """One work item."""
    return await query(request, lambda tx, now: workflows.get_item(tx, str(item_id)))


@router.patch("/work-items/{item_id}", response_model=WorkItemOut, responses=responses(*WRITE_ERRORS, 404, 409))
async def patch_item(item_id: uuid.UUID, body: WorkItemPatch, request: Request, session_id: str | None = None,
                     who: Caller = Depends(caller)) -> JSONResponse:
    """Update a work item; with ``fence`` the update is refused (409) unless that lease is still yours.

    The caller is named (without a token) as for adding one: ``updated_by``, ``session_id`` (body or query), and
    naming nobody acts as the creator of the item's workflow."""
    actor = await _item_writer(request, who, lambda tx: workflows.item_owner(tx, str(item_id)),
                               (body.updated_by, "updated_by"), (body.session_id, "session_id"),
                               (session_id, "session_id"))
    changes = dump(body, exclude=("updated_by", "session_id", "fence"))
    return await mutate(request, actor, lambda tx, now: workflows.update_item(
        tx, actor, str(item_id), changes, fence=body.fence, now=now))
