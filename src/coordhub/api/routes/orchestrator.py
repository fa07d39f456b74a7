"""The orchestrator under ``/api/coord/orchestrator``: hosts (register, heartbeat, next), assignments, config.

Host endpoints act for ``<machine>/agent`` and are allowed while halted (a
halt stops dispatch itself: ``next`` answers no assignment). Ending an
attempt retires its worker's token, so those answers also clear the
authenticator's cache: the token stops working at once on this hub process.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request

from coordhub.api import longpoll
from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.orchestrator_schemas import (
    AssignCreate,
    AssignmentOut,
    AssignmentReport,
    AssignResume,
    AssignRetry,
    ConfigOut,
    FleetOut,
    HeartbeatOut,
    HostHeartbeat,
    HostNext,
    HostRegister,
    LogAppend,
    LogOut,
    LogSizeOut,
    NextOut,
    ReconcileOut,
    RegisterOut,
    UnpauseOut,
)
from coordhub.api.routes.common import READ_ERRORS, WRITE_ERRORS, mutate, query
from coordhub.clock import parse_iso
from coordhub.core import (
    assignmentcontrol,
    assignments,
    coordinator,
    dispatch,
    fleet,
    hostreports,
    hosts,
    leases,
    reconcile,
    stages,
)
from coordhub.core.halt import Exempt
from coordhub.errors import Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx

router = APIRouter(prefix="/api/coord/orchestrator", tags=["orchestrator"])
# events after which `next` looks again, with an issue lease's end (wakes_next)
WAKE_KINDS = ("assignment.", "halt.", "orchestrator.", "host.")
LEASE_ENDS = frozenset(("lease.released", "lease.expired", "lease.revoked", f"lease.{leases.STALE_TAKEOVER}"))


def wakes_next(row: Row) -> bool:
    """Whether the event ``row`` is an issue lease's end, which can make an assignment a host waits for runnable
    (dispatch step 3, :func:`coordhub.store.tables.orchestrator.issue_lease_name`); ``next`` then looks again.

    A file lease's end never can, and lease events come by the thousand a second under load: each waking every
    waiting host for a look was a wake storm. A grant or a renewal only holds work back. An event whose payload
    cannot be read counts as an issue lease's (a wasted look, never a missed wake).
    """
    if row["kind"] not in LEASE_ENDS:
        return False
    payload = row["payload"]
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            return True
    resource = payload.get("resource") if isinstance(payload, dict) else None
    return not isinstance(resource, str) or resource.lstrip().startswith("issue:")


def _forget_tokens(request: Request, response: JSONResponse) -> JSONResponse:
    """Drop cached tokens after a write that may have retired a worker's (see the module docstring)."""
    request.app.state.auth.invalidate()
    return response


# ---- hosts ---------------------------------------------------------------------------------

@router.post("/hosts/register", response_model=RegisterOut, responses=responses(*WRITE_ERRORS, 409))
async def register(body: HostRegister, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """A machine's ``coord agent`` starts: a new incarnation; answers timing and the active config.

    409 ``not_configured`` before ``coord config apply``; 422 for a machine or repos the config does not have.
    """
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: hosts.register(
        tx, actor, now, machine=body.machine, capabilities=body.capabilities, repos=body.repos, slots=body.slots,
        agent_version=body.agent_version, problems=body.problems, recovered=body.recovered),
        during_halt=Exempt.ORCHESTRATOR)


@router.post("/hosts/heartbeat", response_model=HeartbeatOut, responses=responses(*WRITE_ERRORS, 409))
async def heartbeat(body: HostHeartbeat, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """The host is alive; answers what to cancel and whether a halt pauses its workers.

    409 ``stale_incarnation`` when a newer agent registered for the machine (this one should exit).
    """
    actor = await who.act()
    response = await mutate(request, actor, lambda tx, now: hosts.heartbeat(
        tx, actor, now, machine=body.machine, incarnation=body.host_incarnation, free_slots=body.free_slots,
        running=body.running, stopping=body.stopping), during_halt=Exempt.ORCHESTRATOR)
    return _forget_tokens(request, response)


@router.post("/hosts/next", response_model=NextOut, responses=responses(*WRITE_ERRORS, 409))
async def next_assignment(body: HostNext, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Long-poll for the next assignment; the hub dispatches in this call (see ``coordhub.core.dispatch``).

    The answer carries the worker's token once; an ``Idempotency-Key`` is ignored (the answer is never
    stored). A wait holds one of the session's ``streams_per_token`` slots.
    """
    actor = await who.act()

    def look(tx: Tx, now: float) -> tuple[bool, float | None]:
        plan = dispatch.look(tx, actor, now, machine=body.machine, incarnation=body.host_incarnation)
        return plan.row is not None, plan.wake_at

    return await longpoll.poll(request, who, actor, body.wait, "assignment", look, lambda tx, now: dispatch.next_for(
        tx, actor, now, machine=body.machine, incarnation=body.host_incarnation), WAKE_KINDS, wakes_next)


@router.post("/assignments/{assignment_id}/report", response_model=AssignmentOut,
             responses=responses(*WRITE_ERRORS, 404, 409))
async def report(assignment_id: str, body: AssignmentReport, request: Request,
                 who: Caller = Depends(caller)) -> JSONResponse:
    """The host reports on an attempt; 409 ``stale_attempt`` (ignored) for one that is not current or was lost,
    ``stale_incarnation`` from a host incarnation that is not the machine's current one."""
    actor = await who.act()
    telemetry = body.telemetry.model_dump(exclude_none=True) if body.telemetry else {}
    until = telemetry.get("rate_limited_until")
    if isinstance(until, str):
        try:
            telemetry["rate_limited_until"] = parse_iso(until[:64])
        except (ValueError, OverflowError):
            raise Invalid(f"telemetry.rate_limited_until {until[:64]!r} is neither epoch seconds nor ISO 8601",
                          field="telemetry.rate_limited_until") from None
    if isinstance(telemetry.get("permission_denials"), list):
        telemetry["permission_denials"] = len(telemetry["permission_denials"])
    response = await mutate(request, actor, lambda tx, now: stages.after_report(tx, hostreports.report(
        tx, actor, assignment_id, body.attempt, now, incarnation=body.host_incarnation, state=body.state,
        reason=body.reason, telemetry=telemetry,
        worktree=body.worktree, branch=body.branch, pushed=body.pushed, wip_commit=body.wip_commit,
        changed_files=body.changed_files, freshness=body.freshness), now, by=actor.session_id),
        during_halt=Exempt.ORCHESTRATOR)
    return _forget_tokens(request, response)


@router.post("/assignments/{assignment_id}/log", response_model=LogSizeOut,
             responses=responses(*WRITE_ERRORS, 404, 409))
async def append_log(assignment_id: str, body: LogAppend, request: Request,
                     who: Caller = Depends(caller)) -> JSONResponse:
    """Append the host's filtered log at a character offset; 409 ``log_gap`` (with ``size``) past the end."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: hostreports.append_log(
        tx, actor, assignment_id, body.attempt, body.offset, body.text, now), during_halt=Exempt.ORCHESTRATOR)


# ---- users -------------------------------------------------------------------------------

@router.post("/assignments", status_code=201, response_model=AssignmentOut, responses=responses(*WRITE_ERRORS, 409))
async def create(body: AssignCreate, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Queue an issue for a worker: 201 ``queued`` (200 with ``dry_run: true``, nothing written).

    409 ``already_assigned`` when the issue has a live assignment, ``not_configured`` before a config;
    422 for an unknown machine or repo, or a briefing over 64 KiB.
    """
    actor = await who.act()

    def op(tx: Tx, now: float) -> Any:
        return assignments.create(tx, actor, now, machine=body.machine, repo=body.repo, issue=body.issue,
                                  model=body.model, labels=body.labels, title=body.title, briefing=body.briefing,
                                  files_likely=body.files_likely, requires=body.requires,
                                  budget_usd=body.budget_usd, wall_clock_seconds=body.wall_clock_seconds,
                                  dry_run=body.dry_run)

    if body.dry_run:
        return await query(request, op)
    return await mutate(request, actor, op, status=201)


@router.get("/assignments", response_model=list[AssignmentOut], responses=responses(*READ_ERRORS))
async def find(request: Request, state: str | None = None, machine: str | None = None, repo: str | None = None,
               limit: int = Query(200, ge=1, le=1000), who: Caller = Depends(caller)) -> JSONResponse:
    """Assignments, newest first; ``?state=`` (a state, ``live`` or ``active``), ``?machine=``, ``?repo=``."""
    # On a reader thread: up to 1,000 rows, each with a briefing of up to 64 KiB read to be measured (review: eight
    # clients listing 486 such rows held the event loop, /health answered in 0.9 s).
    return await query(request, lambda tx, now: assignments.find(tx, state, machine, repo, limit), off_loop=True)


@router.get("/assignments/{assignment_id}", response_model=AssignmentOut, responses=responses(*READ_ERRORS, 404))
async def get(assignment_id: str, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """One assignment with its briefing and ``attempts``."""
    return await query(request, lambda tx, now: assignments.get(tx, assignment_id))


@router.post("/assignments/{assignment_id}/stop", response_model=AssignmentOut,
             responses=responses(*WRITE_ERRORS, 404, 409))
async def stop(assignment_id: str, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Cancel a live assignment (its host stops the worker on its next heartbeat). Allowed while halted."""
    actor = await who.act()
    response = await mutate(request, actor, lambda tx, now: assignmentcontrol.stop(tx, actor, assignment_id, now),
                            during_halt=Exempt.ORCHESTRATOR)
    return _forget_tokens(request, response)


@router.post("/assignments/{assignment_id}/retry", response_model=AssignmentOut,
             responses=responses(*WRITE_ERRORS, 404, 409))
async def retry(assignment_id: str, request: Request, body: AssignRetry | None = None,
                who: Caller = Depends(caller)) -> JSONResponse:
    """Queue a failed, cancelled, stuck or needs-input assignment again: another machine when possible, the model
    one step up ``models.escalation`` after a failure (a stopped one keeps its model) unless ``model`` is given."""
    actor = await who.act()
    model = body.model if body else None
    return await mutate(request, actor, lambda tx, now: assignmentcontrol.retry(tx, actor, assignment_id, now, model))


@router.post("/assignments/{assignment_id}/resume-stuck", response_model=AssignmentOut,
             responses=responses(*WRITE_ERRORS, 404, 409))
async def resume_stuck(assignment_id: str, body: AssignResume, request: Request,
                       who: Caller = Depends(caller)) -> JSONResponse:
    """Resume a stuck or needs-input worker's Claude session with guidance, on the same machine and worktree."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: assignmentcontrol.resume_stuck(
        tx, actor, assignment_id, body.guidance, now))


@router.get("/assignments/{assignment_id}/log", response_model=LogOut, responses=responses(*READ_ERRORS, 404))
async def read_log(assignment_id: str, request: Request, offset: int = Query(0, ge=0, le=2**62),
                   who: Caller = Depends(caller)) -> JSONResponse:
    """The relayed log from a character ``offset`` (at most 256 Ki characters per call; ``truncated`` when the
    older part was dropped: the hub keeps the newest ~1 MiB)."""
    return await query(request, lambda tx, now: hostreports.read_log(tx, assignment_id, offset))


@router.get("/status", response_model=FleetOut, responses=responses(*READ_ERRORS))
async def status(request: Request, machine: str | None = None, who: Caller = Depends(caller)) -> JSONResponse:
    """Machines and their slots, the queue, assignments, a rate-limit pause, costs per machine and per day."""
    return await query(request, lambda tx, now: fleet.overview(tx, now, machine), off_loop=True)  # as find's


@router.get("/config", response_model=ConfigOut, responses=responses(*READ_ERRORS))
async def get_config(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """The active coordinator.yml (as JSON, defaults filled in) and its version; ``config`` null before any."""
    return await query(request, lambda tx, now: coordinator.render(tx))


@router.put("/config", response_model=ConfigOut, responses=responses(*WRITE_ERRORS))
async def put_config(request: Request, body: dict[str, Any] = Body(...),
                     who: Caller = Depends(caller)) -> JSONResponse:
    """Apply a coordinator.yml, parsed to JSON (admin); 422 lists every problem with its key path."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: coordinator.apply(tx, actor, body, now))


@router.delete("/pause", response_model=UnpauseOut, responses=responses(*WRITE_ERRORS))
async def unpause(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Lift the fleet-wide dispatch pause a rate-limit report set (admin); ``was``: the pause lifted, or null."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: coordinator.unpause(tx, actor, now),
                        during_halt=Exempt.ORCHESTRATOR)


@router.post("/reconcile", response_model=ReconcileOut, responses=responses(*WRITE_ERRORS))
async def reconcile_now(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Run a reconciliation pass now (``coord serve`` runs one every ``--sweep-seconds``)."""
    actor = await who.act()
    since = request.app.state.up_since
    response = await mutate(request, actor, lambda tx, now: reconcile.run(tx, now, since),
                            during_halt=Exempt.ORCHESTRATOR)
    return _forget_tokens(request, response)

