"""What every route shares: running a core operation as a mutation or a query."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Query, Request

from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller
from coordhub.api.headers import header
from coordhub.clock import parse_iso
from coordhub.core.automata import Meter
from coordhub.core.halt import Exempt
from coordhub.core.hub import Hub, Operation
from coordhub.core.idempotency import IdempotentRequest
from coordhub.core.identity import Actor
from coordhub.errors import Invalid
from coordhub.headers import IDEMPOTENCY_HEADER, NEXT_CURSOR_HEADER, QUEUED_AT_HEADER, REPLAY_HEADER
from coordhub.store.base import Ahead

T = TypeVar("T")


# Error codes each kind of route can answer, for the OpenAPI document.
# Seed 001: "Pass `session_id` in the request body or as a query parameter to identify the calling session". A route
# that names its caller in a body field takes this too: the actor on a --no-auth hub (after the body's), and with a
# token it must name the token's session (403), like every field that names the caller (review).
CALLER_QUERY = Query(None, description="The calling session, as seed 001 allows it in the query (after the body's "
                     "field on a --no-auth hub); with a token it must be the token's own session (else 403).")
READ_ERRORS = (400, 401, 403, 413, 422, 429, 503)
WRITE_ERRORS = (400, 401, 403, 413, 415, 422, 423, 429, 503)


def hub(request: Request) -> Hub:
    """The hub this app serves."""
    result: Hub = request.app.state.hub
    return result


async def mutate(request: Request, actor: Actor, op: Operation, *, status: int = 200,
                 during_halt: Exempt | None = None, ahead: Ahead | Callable[[], Ahead] | None = None,
                 charge: Caller | None = None) -> JSONResponse:
    """Run ``op`` as a mutation of ``actor``, honouring the request's ``Idempotency-Key``.

    ``ahead``: rows ``op`` will look up (:meth:`~coordhub.core.hub.Hub.mutate`). ``charge``: the caller whose
    rate limit pays for ``op``'s overlap work (:meth:`Caller.charge_work`), whether it succeeded or raised.
    """
    idem = await idempotent(request)
    h = hub(request)
    out = await _charged(charge, lambda meter: h.mutate(actor, op, status=status, idem=idem,
                                                         during_halt=during_halt, ahead=ahead, meter=meter))
    headers = {REPLAY_HEADER: "true"} if out.replayed else None
    return JSONResponse(out.body, status_code=out.status, headers=headers)


async def idempotent(request: Request) -> IdempotentRequest | None:
    """The request under its ``Idempotency-Key``, None when it names none."""
    key = header(request.scope, IDEMPOTENCY_HEADER)
    if key is None:
        return None
    target = request.url.path + ("?" + request.url.query if request.url.query else "")
    return IdempotentRequest.of(key, request.method, target, await request.body())


def queued_at(request: Request) -> float | None:
    """When the client first tried this write, from ``X-Coord-Queued-At`` (ISO 8601), else None.

    Sent by a client replaying its softfail queue (seed 001), so the record
    keeps its original time as ``queued_at`` beside ``created_at``. A value
    that does not parse is refused (422); one later than the hub's clock is
    taken as the hub's time by the core (clients' clocks drift).
    """
    value = header(request.scope, QUEUED_AT_HEADER)
    if value is None:
        return None
    try:
        return parse_iso(value[:64])
    except (ValueError, OverflowError):
        raise Invalid(f"{QUEUED_AT_HEADER} must be an ISO 8601 time such as 2026-01-31T09:30:00Z, "
                      f"not {value[:64]!r}", field=QUEUED_AT_HEADER) from None


async def query(request: Request, op: Any, *, off_loop: bool = False, charge: Caller | None = None) -> JSONResponse:
    """Run a read-only ``op(tx, now)`` and answer its result as JSON.

    ``off_loop`` runs it on a reader thread: for reads whose cost the request
    decides (overlap checks), so that they never stall the event loop.
    ``charge`` (off the loop only): as :func:`mutate`'s.
    """
    h = hub(request)
    if not off_loop:
        return JSONResponse(await h.query(op))
    return JSONResponse(await query_charged(request, op, charge))


async def query_charged(request: Request, op: Callable[[Any, float], T], charge: Caller | None) -> T:
    """``op(tx, now)`` on a reader thread, its overlap work charged to ``charge``'s rate limit (None: to nobody),
    whether it succeeded or raised."""
    h = hub(request)
    return await _charged(charge, lambda meter: h.query_off_loop(op, meter))


async def _charged(charge: Caller | None, run: Callable[[Meter | None], Awaitable[T]]) -> T:
    """``run(meter)``, and then, whether it succeeded or raised, its overlap work charged to ``charge``'s rate
    limit (:meth:`Caller.charge_work`); with no ``charge``, ``run(None)``: nothing counted."""
    if charge is None:
        return await run(None)
    meter = Meter()
    try:
        return await run(meter)
    finally:
        charge.charge_work(meter)


def paged(page: tuple[Any, Any], header: str = NEXT_CURSOR_HEADER) -> JSONResponse:
    """A list answer (or object) that may continue: ``page`` is it and where the next answer starts (None: it does
    not), which ``header`` carries."""
    body, after = page
    return JSONResponse(body, headers={header: str(after)} if after is not None else None)
