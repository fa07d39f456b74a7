"""The pipeline under ``/api/coord/orchestrator``: stage runs for hosts, verdicts, fixes, approval, the summary.

Hosts long-poll ``hosts/next-run`` for smoke tests and reviews (beside
``hosts/next`` for workers) and report on them; users queue a test or a
review, record a verdict, dispatch a fix, pass the approval gate, read an
assignment's stages, and close the session (``coord done``). The rules are
:mod:`coordhub.core.stages` and :mod:`coordhub.core.stageruns`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from coordhub.api import longpoll
from coordhub.api.answers import JSONResponse
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.orchestrator_schemas import AssignmentOut
from coordhub.api.pipeline_schemas import (
    DoneOut,
    FixRequest,
    HostNextRun,
    NextRunOut,
    RunReport,
    StageRunOut,
    StagesOut,
    SummaryOut,
    TestVerdict,
)
from coordhub.api.routes.common import READ_ERRORS, WRITE_ERRORS, mutate, query
from coordhub.core import session_close, stageruns, stages
from coordhub.core.halt import Exempt
from coordhub.store.tx import Tx

router = APIRouter(prefix="/api/coord/orchestrator", tags=["orchestrator"])
WAKE_KINDS = ("stage_run.", "stage.", "assignment.", "halt.", "orchestrator.", "host.")


@router.post("/hosts/next-run", response_model=NextRunOut, responses=responses(*WRITE_ERRORS, 409))
async def next_run(body: HostNextRun, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Long-poll for the next smoke test or review this host may run; the hub dispatches it in this call."""
    actor = await who.act()

    def look(tx: Tx, now: float) -> tuple[bool, float | None]:
        return stageruns.look(tx, actor, now, machine=body.machine, incarnation=body.host_incarnation) is not None, None

    return await longpoll.poll(request, who, actor, body.wait, "run", look, lambda tx, now: stageruns.next_for(
        tx, actor, now, machine=body.machine, incarnation=body.host_incarnation), WAKE_KINDS)


@router.post("/stage-runs/{run_id}/report", response_model=StageRunOut, responses=responses(*WRITE_ERRORS, 404, 409))
async def report_run(run_id: str, body: RunReport, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """The host reports on a run; a final report moves the pipeline on. 409 ``stale_attempt`` when not current,
    ``stale_incarnation`` from a host incarnation that is not the machine's current one or not the run's."""
    actor = await who.act()
    findings = [f.model_dump() for f in body.findings] if body.findings is not None else None
    return await mutate(request, actor, lambda tx, now: stages.report_run(
        tx, actor, run_id, body.attempt, now, incarnation=body.host_incarnation, state=body.state,
        exit_code=body.exit_code,
        output_tail=body.output_tail, commit=body.commit, verdict=body.verdict, summary=body.summary,
        findings=findings, reason=body.reason, cost_usd=body.cost_usd), during_halt=Exempt.ORCHESTRATOR)


@router.get("/stage-runs/{run_id}", response_model=StageRunOut, responses=responses(*READ_ERRORS, 404))
async def get_run(run_id: str, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """One stage run with its evidence."""
    return await query(request, lambda tx, now: stageruns.render(stageruns.get_row(tx, run_id)))


@router.get("/assignments/{assignment_id}/stages", response_model=StagesOut, responses=responses(*READ_ERRORS, 404))
async def get_stages(assignment_id: str, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """An assignment's stage, the gates planned for its repo, and every smoke test and review, oldest first."""
    return await query(request, lambda tx, now: stages.view(tx, assignment_id))


@router.post("/assignments/{assignment_id}/test", response_model=StageRunOut,
             responses=responses(*WRITE_ERRORS, 404, 409))
async def test(assignment_id: str, request: Request, body: TestVerdict | None = None,
               who: Caller = Depends(caller)) -> JSONResponse:
    """Run the smoke test now on a capable host (no body), or record a human's verdict (``verdict``)."""
    actor = await who.act()
    verdict = body.verdict if body else None
    if verdict is None:
        return await mutate(request, actor, lambda tx, now: stages.run_now(tx, actor, assignment_id, "test", now))
    reason = body.reason if body else None
    return await mutate(request, actor, lambda tx, now: stages.manual_verdict(
        tx, actor, assignment_id, verdict == "passed", reason, now))


@router.post("/assignments/{assignment_id}/review", response_model=StageRunOut,
             responses=responses(*WRITE_ERRORS, 404, 409))
async def review(assignment_id: str, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Run an adversarial review of the branch now (another machine when possible)."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: stages.run_now(tx, actor, assignment_id, "review", now))


@router.post("/assignments/{assignment_id}/fix", response_model=AssignmentOut,
             responses=responses(*WRITE_ERRORS, 404, 409))
async def fix(assignment_id: str, request: Request, body: FixRequest | None = None,
              who: Caller = Depends(caller)) -> JSONResponse:
    """Dispatch a fix worker on the branch with the last failure's findings (and ``guidance``), model escalated."""
    actor = await who.act()
    guidance = body.guidance if body else None
    return await mutate(request, actor, lambda tx, now: stages.fix_by_hand(tx, actor, assignment_id, guidance, now))


@router.post("/assignments/{assignment_id}/accept", response_model=AssignmentOut,
             responses=responses(*WRITE_ERRORS, 404, 409))
async def accept(assignment_id: str, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Pass the human approval gate (``require_approval``): the branch moves on to merge."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: stages.accept(tx, actor, assignment_id, now))


@router.get("/summary", response_model=SummaryOut, responses=responses(*READ_ERRORS))
async def summary(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """What ran, passed and merged since the last ``coord done``, and the cost per model and machine.

    Read on a reader thread: it counts every assignment, attempt and stage run since then (ended ones are kept
    for ``retain_assignments_hours``), however many that is."""
    return await query(request, lambda tx, now: session_close.summary(
        tx, tx.orchestrator.get()["session_since"], now), off_loop=True)


@router.post("/done", response_model=DoneOut, responses=responses(*WRITE_ERRORS, 409))
async def done(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Close the session: run ``hooks.on_session_end`` and answer the summary (seed 003 ``coord done``)."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: session_close.done(tx, actor, now))
