"""What every route shares: running a core operation as a mutation or a query."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from coordhub.core.halt import Exempt
from coordhub.core.hub import Hub, Operation
from coordhub.core.idempotency import IdempotentRequest
from coordhub.core.identity import Actor

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"

# Error codes each kind of route can answer, for the OpenAPI document.
READ_ERRORS = (400, 401, 403, 413, 422, 429, 503)
WRITE_ERRORS = (400, 401, 403, 413, 422, 423, 429, 503)


def hub(request: Request) -> Hub:
    """The hub this app serves."""
    result: Hub = request.app.state.hub
    return result


async def mutate(request: Request, actor: Actor, op: Operation, *, status: int = 200,
                 during_halt: Exempt | None = None) -> JSONResponse:
    """Run ``op`` as a mutation of ``actor``, honouring the request's ``Idempotency-Key``."""
    idem = None
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None:
        target = request.url.path + ("?" + request.url.query if request.url.query else "")
        idem = IdempotentRequest.of(key, request.method, target, await request.body())
    out = await hub(request).mutate(actor, op, status=status, idem=idem, during_halt=during_halt)
    headers = {REPLAY_HEADER: "true"} if out.replayed else None
    return JSONResponse(out.body, status_code=out.status, headers=headers)


async def query(request: Request, op: Any) -> JSONResponse:
    """Run a read-only ``op(tx, now)`` and answer its result as JSON."""
    return JSONResponse(await hub(request).query(op))
