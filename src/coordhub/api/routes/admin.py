"""Status, halt and resume, tokens, and health."""

from __future__ import annotations

import contextlib
import resource
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from coordhub import __version__, jsonbytes
from coordhub.api import metrics
from coordhub.api.admin_schemas import EngageOut, HealthOut, TokenCreate, TokenOut, TokenRevokeOut
from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.routes.common import READ_ERRORS, WRITE_ERRORS, hub, mutate, query
from coordhub.api.schemas import HaltOut, HaltSet, HaltsOut, Line, ResumeIn, ResumeOut, StatusOut
from coordhub.clock import isoformat
from coordhub.core import halt, killswitch, pause, scope, status, tokens
from coordhub.core.hub import WithStatus
from coordhub.core.identity import require_admin
from coordhub.errors import Unavailable
from coordhub.store.tx import Tx

router = APIRouter(tags=["admin"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut,
            "description": "The database is unreachable: status degraded, database disconnected."}})
async def health(request: Request) -> JSONResponse:
    """Liveness and database reachability (seed 001); needs no token.

    Cheap by design (see :mod:`coordhub.api.health`): the database state is
    at most a second old. ``fd_limit`` is the process's descriptor limit and
    ``max_connections`` the connections it accepts at once (null in-process).
    ``auth`` says whether the hub needs tokens and ``hub_id`` which hub it is
    (kept in the database, so every process serving one database answers the
    same; ``coord serve`` reads it at start): a client sends an admin token it
    found on disk only to the hub whose id was written beside it.
    ``idempotency_retention_hours`` is how long the hub remembers an
    Idempotency-Key (null: forever), so a client does not replay a queued
    write older than that.
    """
    h = hub(request)
    ok = await request.app.state.db_probe.reachable()
    if ok:
        with contextlib.suppress(Unavailable):
            await h.known_id()
    body = {"status": "ok" if ok else "degraded", "database": "connected" if ok else "disconnected",
            "backend": h.store.name, "durability": h.store.durability, "version": __version__,
            "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            "max_connections": request.app.state.max_connections,
            "auth": not request.app.state.auth.no_auth, "hub_id": h.hub_id,
            "idempotency_retention_hours": request.app.state.pruner.policy.idempotency_hours or None,
            "worker": getattr(request.app.state, "worker", None)}
    if h.listener is not None:
        listen = h.listener.state.as_dict()
        body["listen"] = {**listen, "since": isoformat(listen["since"])}
    if h.remote is not None:
        body["writer_process"] = h.remote.as_dict()
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Prometheus text exposition."},
    **responses(*READ_ERRORS)})
async def prometheus_metrics(request: Request, who: Caller = Depends(caller)) -> Response:
    """This hub process's Prometheus metrics (admin token; see :mod:`coordhub.api.metrics` and docs/scaling.md).

    ``coord serve --metrics-address HOST:PORT`` serves the same without a token on a separate listener.
    """
    if who.token_actor is not None:
        require_admin(who.token_actor, "reading metrics")
    await metrics.refresh_db_gauges(request.app)
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/coord/status", response_model=StatusOut, responses=responses(*READ_ERRORS))
async def overview(request: Request, project_key: str | None = None, session_id: str | None = None,
                   who: Caller = Depends(caller)) -> Response:
    """Snapshot: live leases, recent components, active workflows, your unread count, any halt.

    Read and encoded on a reader thread, never on the event loop: the answer
    may run to a few MiB (:mod:`coordhub.core.status`), and a client polling
    it must not stall every other request the process serves (review: one
    token's polling took ``/health`` from 1 ms to 0.5 s).
    """
    viewer = await who.viewer(session_id, "session_id")
    body = await hub(request).query_off_loop(
        lambda tx, now: jsonbytes.dumps(status.overview(tx, viewer, now, project_key)))
    return Response(body, media_type=JSONResponse.media_type)


@router.get("/api/coord/halt", response_model=HaltsOut, responses=responses(*READ_ERRORS))
async def get_halt(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """The fleet halt (or ``halted: false``), every standing halt (``halts``, each with ``applies``), your pause."""
    me = await who.viewer(None, "session_id")
    return await query(request, lambda tx, now: halt.overview(tx, me))


@router.post("/api/coord/halt", status_code=201, response_model=HaltOut, responses=responses(*WRITE_ERRORS, 409),
             openapi_extra={"responses": {"200": {"description": "With `refresh`: the halt that stood, with the "
                                                                 "new reason (`refreshed: true`)."}}})
async def set_halt(body: HaltSet, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Halt a scope: the fleet (admin), a project (admin) or a machine (admin, or a session of that machine).

    Until resumed, every mutating call of a session in the scope answers 423, except the exempt ones.
    The orchestrator's workers in the scope pause; with ``kill`` they stop and their assignments re-queue.
    With ``refresh``, a halt standing in the scope gets the new reason (200) instead of a 409.
    """
    actor = await who.act()
    where = scope.parse(body.scope)

    def run(tx: Tx, now: float) -> Any:
        standing = halt.set_halt(tx, actor, body.reason, now, where, refresh=body.refresh)
        if body.kill:
            standing = {**standing, "killed": killswitch.kill(tx, where, now, actor=actor, reason=body.reason)}
        return WithStatus(200, standing) if standing.get("refreshed") else standing

    return await mutate(request, actor, run, status=201,
                        during_halt=halt.Exempt.REFRESH if body.refresh else None)


@router.post("/api/coord/resume", response_model=ResumeOut, responses=responses(400, 401, 403, 413, 422, 429, 503))
async def resume(request: Request, body: ResumeIn | None = None, who: Caller = Depends(caller)) -> JSONResponse:
    """Lift the halt of a scope (same rights as halting it); allowed while halted.

    Sessions active under the halt are paused until they engage, unless ``engage_all``.
    """
    actor = await who.act()
    # stored=True: a project halt an older hub stored under a name sessions cannot declare is lifted by that name
    where, engage_all = (scope.parse(body.scope, stored=True), body.engage_all) if body is not None else \
        (scope.FLEET, False)
    return await mutate(request, actor, lambda tx, now: halt.resume(tx, actor, now, where, engage_all),
                        during_halt=halt.Exempt.RESUME)


@router.post("/api/coord/engage", response_model=EngageOut, responses=responses(400, 401, 403, 413, 422, 429, 503))
async def engage(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Re-engage the caller's own session after a resume paused it; allowed while halted or paused."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: pause.engage(tx, actor, now), during_halt=halt.Exempt.ENGAGE)


@router.post("/api/coord/tokens", status_code=201, response_model=TokenOut, responses=responses(*WRITE_ERRORS))
async def create_token(body: TokenCreate, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Create a token acting as session ``name`` (admin). The token appears only in this response."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: tokens.create(tx, actor, body.name, body.admin, now),
                        status=201)


@router.get("/api/coord/tokens", response_model=list[TokenOut], responses=responses(*READ_ERRORS))
async def list_tokens(request: Request, include_revoked: bool = False,
                      who: Caller = Depends(caller)) -> JSONResponse:
    """Token records, without the tokens (admin)."""
    actor = await who.act()
    # off the loop: every token ever minted with include_revoked (each orchestrator worker's attempt mints one)
    return await query(request, lambda tx, now: tokens.find(tx, actor, include_revoked), off_loop=True)


@router.delete("/api/coord/tokens/{name:path}", response_model=TokenRevokeOut,
               responses=responses(*WRITE_ERRORS, 404, 409))
async def revoke_token(name: Line, request: Request, keep_leases: bool = False,
                       who: Caller = Depends(caller)) -> JSONResponse:
    """Revoke every token of a session (admin) and end its live leases (``revoked``) unless ``keep_leases=true``.

    Refused if it would leave no admin token. Allowed while halted: an incident is when one revokes.
    """
    actor = await who.act()
    response = await mutate(request, actor, lambda tx, now: tokens.revoke(tx, actor, name, now,
                                                                         keep_leases=keep_leases),
                            during_halt=halt.Exempt.REVOKE_TOKEN)
    request.app.state.auth.invalidate()
    return response
