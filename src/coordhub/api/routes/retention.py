"""What the hub keeps and what its pruner did: ``GET /api/coord/retention`` (admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.routes.common import READ_ERRORS, query
from coordhub.api.schemas import RetentionOut
from coordhub.core import retention
from coordhub.core.identity import require_admin
from coordhub.store.tx import Tx

router = APIRouter(prefix="/api/coord", tags=["admin"])


@router.get("/retention", response_model=RetentionOut, responses=responses(*READ_ERRORS))
async def overview(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """The retention policy (hours, 0 = forever), the pruned bound of the event log, and this process's pruner
    progress: rows removed per kind, batches, and how long batches held the writer (ms). Admin token only."""
    if who.token_actor is not None:
        require_admin(who.token_actor, "the retention overview")
    pruner: retention.Pruner = request.app.state.pruner

    def read(tx: Tx, now: float) -> dict[str, Any]:
        return {"policy": pruner.policy._asdict(), "events_pruned_through": retention.pruned_through(tx),
                "pruner": pruner.stats.summary()}

    return await query(request, read)
