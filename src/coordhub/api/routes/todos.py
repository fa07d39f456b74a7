"""Fleet todos (seed 000) under ``/api/coord/todos``."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request

from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.routes.common import CALLER_QUERY, READ_ERRORS, WRITE_ERRORS, hub, mutate, paged, query, queued_at
from coordhub.api.schemas import TodoAdd, TodoDone, TodoDoneOut, TodoOut
from coordhub.core import todos
from coordhub.core.identity import main_session
from coordhub.errors import Invalid

router = APIRouter(prefix="/api/coord/todos", tags=["todos"])


def _one(a: str | None, b: str | None, names: str) -> str | None:
    if a is not None and b is not None and a != b:
        raise Invalid(f"{names} are the same field; send one of them")
    return a if a is not None else b


@router.post("", status_code=201, response_model=TodoOut, responses=responses(*WRITE_ERRORS, 404))
async def add(body: TodoAdd, request: Request, session_id: str | None = CALLER_QUERY,
              who: Caller = Depends(caller)) -> JSONResponse:
    """Create a pending todo (``created_by`` is the caller; ``created_by_machine`` defaults to its machine).

    On a ``--no-auth`` hub a request that names no session (no ``created_by``, ``session_id`` or
    ``X-Coord-Session``) but a ``created_by_machine`` M acts as seed 000's session of M, ``M/claude-main``: the
    seed's script sends only ``created_by_user`` and ``created_by_machine``. With a token nothing changes.
    """
    claims: tuple[tuple[str | None, str], ...] = ((body.created_by, "created_by"), (body.session_id, "session_id"),
                                                  (session_id, "session_id"))
    if body.created_by_machine is not None and who.names_nobody(*claims):
        claims = ((main_session(body.created_by_machine), "created_by_machine"),)
    actor = await who.act(*claims)
    project = _one(body.project_key, body.project, "project_key and project")
    parent = _one(body.parent_id, body.parent, "parent_id and parent")
    first_tried = queued_at(request)
    return await mutate(request, actor, lambda tx, now: todos.add(
        tx, actor, text=body.text, user=body.user, project_key=project, parent_id=parent, source=body.source,
        auto=body.auto, created_by_user=body.created_by_user, created_by_machine=body.created_by_machine,
        queued_at=first_tried, now=now), status=201)


@router.get("", response_model=list[TodoOut], responses=responses(*READ_ERRORS))
async def find(request: Request, user: str | None = None, project_key: str | None = None,
               status: str = Query("pending", description="pending, done or all"),
               cursor: str | None = Query(None, max_length=2048),
               brief: bool = Query(False, description="Leave out long text: each source is null."),
               order: str = Query("oldest", max_length=16, description="oldest (first) or newest (first)"),
               who: Caller = Depends(caller)) -> JSONResponse:
    """Todos by user, project and status (default: pending), oldest first (``order=newest``: newest first).

    At most 500 and about 4 MiB of their text per answer (at least one); when more follow, the
    ``Coord-Next-Cursor`` header carries the ``cursor=`` to ask again with. ``brief``: each ``source`` is null.
    """
    return paged(await hub(request).query_off_loop(lambda tx, now: todos.page(
        tx, user=user, project_key=project_key, status=status, cursor=cursor, brief=brief, order=order)))


@router.get("/{todo_id}", response_model=TodoOut, responses=responses(*READ_ERRORS, 404))
async def get(todo_id: uuid.UUID, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """One todo."""
    return await query(request, lambda tx, now: todos.get(tx, str(todo_id)))


@router.post("/{todo_id}/done", response_model=TodoDoneOut, responses=responses(*WRITE_ERRORS, 404))
async def done(todo_id: uuid.UUID, request: Request, body: TodoDone | None = None,
               session_id: str | None = CALLER_QUERY, who: Caller = Depends(caller)) -> JSONResponse:
    """Mark a todo done (sets ``completed_by`` to the caller); one already done answers 200 unchanged with
    ``already: true``."""
    actor = await who.act((body.completed_by if body else None, "completed_by"),
                          (body.session_id if body else None, "session_id"), (session_id, "session_id"))
    return await mutate(request, actor, lambda tx, now: todos.done(tx, actor, str(todo_id), now))
