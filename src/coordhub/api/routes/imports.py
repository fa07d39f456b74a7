"""Imports from other coordination systems (admin): ``POST /api/coord/imports/seed002``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.import_schemas import ImportBatch, ImportOut, Invalid
from coordhub.api.routes.common import WRITE_ERRORS, mutate
from coordhub.core import imports

router = APIRouter(prefix="/api/coord/imports", tags=["imports"])


@router.post("/seed002", response_model=ImportOut, responses=responses(*WRITE_ERRORS))
async def seed002(body: ImportBatch, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Write a batch of seed 002's records (admin; what ``coord import redis`` sends), in one transaction.

    Each item is written at most once however often it is sent (``already``);
    an item that cannot be written, or whose values the schema refuses, is
    ``skipped`` with the reason and the rest of the batch is still written.
    """
    actor = await who.act()
    items = [{"kind": item.kind, "ref": item.ref, "invalid": item.reason} if isinstance(item, Invalid)
             else item.model_dump() for item in body.items]
    return await mutate(request, actor, lambda tx, now: imports.apply(tx, actor, body.source, items, now))
