"""Component deploy states (seed 001)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.routes.common import CALLER_QUERY, READ_ERRORS, WRITE_ERRORS, hub, mutate, paged
from coordhub.api.schemas import ComponentOut, ComponentSet, ComponentState, Line
from coordhub.core import components

router = APIRouter(prefix="/api/coord/components", tags=["components"])


async def _set(request: Request, who: Caller, project_key: str, component: str, body: ComponentState,
               session_id: str | None) -> JSONResponse:
    actor = await who.act((body.updated_by, "updated_by"), (body.session_id, "session_id"), (session_id, "session_id"))
    return await mutate(request, actor, lambda tx, now: components.set_state(
        tx, actor, project_key=project_key, component=component, state=body.state,
        version=body.version if "version" in body.model_fields_set else components.KEEP,
        notes=body.notes if "notes" in body.model_fields_set else components.KEEP, fence=body.fence, now=now))


@router.put("", response_model=ComponentOut, responses=responses(*WRITE_ERRORS, 409))
async def upsert(body: ComponentSet, request: Request, session_id: str | None = CALLER_QUERY,
                 who: Caller = Depends(caller)) -> JSONResponse:
    """Record a component's state (seed 001 body form). States by convention: building, built,
    deploying, deployed, degraded, unknown."""
    return await _set(request, who, body.project_key, body.component, body, session_id)


@router.put("/{project_key}/{component}", response_model=ComponentOut, responses=responses(*WRITE_ERRORS, 409))
async def upsert_path(project_key: Line, component: Line, body: ComponentState, request: Request,
                      session_id: str | None = CALLER_QUERY, who: Caller = Depends(caller)) -> JSONResponse:
    """Record a component's state (path form, as seed 001's softfail queue example writes it)."""
    return await _set(request, who, project_key, component, body, session_id)


@router.get("", response_model=list[ComponentOut], responses=responses(*READ_ERRORS))
async def find(request: Request, project_key: str | None = None, cursor: str | None = Query(None, max_length=2048),
               brief: bool = Query(False, description="Leave out long text: each notes is null."),
               who: Caller = Depends(caller)) -> JSONResponse:
    """Component states, most recently updated first.

    At most 1000 and about 4 MiB of their text per answer (at least one); when more follow, the
    ``Coord-Next-Cursor`` header carries the ``cursor=`` to ask again with. ``brief``: each ``notes`` is null.
    """
    return paged(await hub(request).query_off_loop(lambda tx, now: components.page(tx, project_key, cursor, brief)))
