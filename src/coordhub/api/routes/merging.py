"""The merge queue under ``/api/coord/orchestrator/merges``: the queue by hand (``coord merge``), and the host
endpoints a ``coord agent`` runs merges through (``next``, ``report``). See ``coordhub.core.mergequeue``.

Host endpoints act for ``<machine>/agent`` and are allowed while halted: a run
that already started reports what it did (a halt stops new runs: ``next``
answers none while the fleet or the machine is halted).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from coordhub.api import longpoll
from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.merge_schemas import (
    MergeDrive,
    MergeDriveOut,
    MergeEntryOut,
    MergeNext,
    MergeNextOut,
    MergeQueueOut,
    MergeReport,
    MergeReportOut,
)
from coordhub.api.routes.common import READ_ERRORS, WRITE_ERRORS, mutate, query
from coordhub.core import mergedrive, mergeentries, mergequeue, mergereports
from coordhub.core.halt import Exempt
from coordhub.core.hosts import halt_over_machine
from coordhub.store.tx import Tx

router = APIRouter(prefix="/api/coord/orchestrator/merges", tags=["orchestrator"])
WAKE_KINDS = ("merge.", "assignment.done", "assignment.failed", "assignment.cancelled", "assignment.stuck",
              "assignment.needs_input", "host.", "halt.", "orchestrator.config")


@router.get("", response_model=MergeQueueOut, responses=responses(*READ_ERRORS))
async def queue(request: Request, repo: str | None = Query(None, max_length=64),
                who: Caller = Depends(caller)) -> JSONResponse:
    """The merge queue: ``queue`` (FIFO per repo and target, with ``position``), ``fixing``, ``needs_input``,
    ``recent`` (the 20 most recently merged or cancelled)."""
    return await query(request, lambda tx, now: mergedrive.overview(tx, repo))


@router.post("", response_model=MergeDriveOut, responses=responses(*WRITE_ERRORS, 404, 409))
async def drive(body: MergeDrive, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """``coord merge``: enter done assignments (``ids``), send ``needs_input`` entries back, put entries first
    (``order``); ``dry_run`` writes nothing. 409 ``not_mergeable`` for an assignment that is not done with a
    pushed branch."""
    actor = await who.act()

    def op(tx: Tx, now: float) -> dict[str, Any]:
        return mergedrive.drive(tx, actor, now, ids=body.ids, repo=body.repo, method=body.method, order=body.order,
                                dry_run=body.dry_run)

    if body.dry_run:
        return await query(request, op)
    return await mutate(request, actor, op)


@router.get("/{entry_id}", response_model=MergeEntryOut, responses=responses(*READ_ERRORS, 404))
async def get(entry_id: str, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """One entry, with its reason and evidence (the gate's command, exit code and output tail)."""
    return await query(request, lambda tx, now: mergeentries.render(mergeentries.get_row(tx, entry_id)))


@router.post("/{entry_id}/cancel", response_model=MergeEntryOut, responses=responses(*WRITE_ERRORS, 404, 409))
async def cancel(entry_id: str, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Take an entry out of the queue (its branch stays); 409 while it is running."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: mergedrive.cancel(tx, actor, entry_id, now))


@router.post("/next", response_model=MergeNextOut, responses=responses(*WRITE_ERRORS, 409))
async def next_run(body: MergeNext, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """A host long-polls for a merge run; the hub starts it in this call (``coordhub.core.mergequeue.claim``).
    Counts as a heartbeat. Nothing while a halt covers the machine."""
    actor = await who.act()

    def look(tx: Tx, now: float) -> tuple[bool, float | None]:
        if halt_over_machine(tx, body.machine) is not None:
            return False, None
        return mergequeue.look(tx, actor, now, machine=body.machine, incarnation=body.host_incarnation)

    return await longpoll.poll(request, who, actor, body.wait, "run", look, lambda tx, now: mergequeue.claim(
        tx, actor, now, machine=body.machine, incarnation=body.host_incarnation), WAKE_KINDS)


@router.post("/report", response_model=MergeReportOut, responses=responses(*WRITE_ERRORS, 409))
async def report(body: MergeReport, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """A host reports on a run: ``landing`` (the tip, before it is pushed), ``merged``, ``conflict`` (the culprit),
    ``red``, ``policy``, ``retry``, ``moved`` (the branch is not at the commit its gates passed on), ``error``.
    409 ``stale_run`` (nothing changes) when the run is not current."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: mergereports.report(
        tx, actor, now, machine=body.machine, incarnation=body.host_incarnation, batch_id=body.batch_id,
        outcome=body.outcome, tip=body.tip, sha=body.sha, culprit=body.culprit, reason=body.reason,
        evidence=body.evidence, pr_number=body.pr_number, pr_url=body.pr_url, only=body.only),
        during_halt=Exempt.ORCHESTRATOR)
