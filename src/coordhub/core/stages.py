"""The pipeline: what happens to an assignment after its worker's ``done`` (issue 12 points 1 and 4).

Each assignment moves through stages, a table in one place
(:data:`TRANSITIONS`); every change goes through :func:`move`, inside the
caller's transaction, and emits ``stage.<stage>``::

    work -> test -> review -> [approval] -> merge -> merged
              \\        \\          \\          \\
               +--------+----------+----------+--> fix -> (the gates again, from the first)
                                                      \\-> needs_input (after max_fix_rounds)

``passed`` ends the pipeline of a repo whose stages leave out ``merge``. The
stages of a repo are ``repos[].stages`` or ``pipeline.stages`` (see
:func:`gates`). The assignment's own state (``queued … done``) is the work
stage's; a fix worker is the same assignment queued again (a new attempt on
the same branch, the model one step up ``models.escalation``, the findings
added to its briefing), and its ``done`` runs the gates again from the first
(the fix changed the branch), automatically up to the stage that failed.

Who advances: the hub, in the transaction that records what happened — a
host's ``done`` report (:func:`after_report`), a smoke test's or review's
verdict (:func:`report_run`), a human's verdict — and the reconciler's
:func:`sweep` catches anything left behind (seed 003 needed ``coord resume``).

**The merge seam** (the merge queue, issue 12 points 5–6, builds on it):

* a branch that passed its gates enters stage ``merge`` (``stage_at`` is
  when: the queue is :func:`merge_queue`, FIFO by ``stage_at``), with the
  event ``stage.merge``; every function in :data:`MERGE_ENTRY_HOOKS` is then
  called as ``hook(tx, row, now)`` in the same transaction;
* the queue reports back with :func:`merged` (→ ``merged``) or
  :func:`merge_failed` (a red gate or a conflict → the fix loop, whose
  ``done`` runs the gates again, then re-enters ``merge``; a policy refusal →
  ``needs_input``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from coordhub.core import assignments, coordinator, messages, session_close, stageruns
from coordhub.core.assignments import State
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.core.orchestrator_config import Config, escalate
from coordhub.core.stageruns import smoke_command
from coordhub.errors import Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx

SYSTEM_SENDER = "coordhub/pipeline"
MAX_FINDINGS_CHARS = 16_000  # of a failed stage's evidence carried into a fix worker's briefing


class Stage(enum.StrEnum):
    """An assignment's pipeline stage."""

    WORK = "work"
    TEST = "test"
    REVIEW = "review"
    APPROVAL = "approval"
    FIX = "fix"
    MERGE = "merge"
    MERGED = "merged"
    PASSED = "passed"
    NEEDS_INPUT = "needs_input"


G = Stage
_GATES = frozenset({G.TEST, G.REVIEW, G.APPROVAL, G.MERGE, G.PASSED})
TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    G.WORK: _GATES | {G.NEEDS_INPUT},
    G.TEST: _GATES | {G.FIX, G.NEEDS_INPUT},
    G.REVIEW: _GATES | {G.FIX, G.NEEDS_INPUT},
    G.APPROVAL: _GATES | {G.FIX, G.NEEDS_INPUT},
    G.FIX: _GATES | {G.NEEDS_INPUT},
    G.MERGE: frozenset({G.MERGED, G.FIX, G.NEEDS_INPUT, G.TEST, G.REVIEW}),
    G.PASSED: _GATES | {G.FIX, G.MERGED},  # merged: entered the queue by hand (`coord merge ID`) and landed
    G.NEEDS_INPUT: _GATES | {G.FIX},
    G.MERGED: frozenset(),
}
FIXABLE = (G.TEST, G.REVIEW, G.APPROVAL, G.PASSED, G.NEEDS_INPUT, G.MERGE)  # where `coord fix` may start
MergeHook = Callable[[Tx, Row, float], None]
MERGE_ENTRY_HOOKS: list[MergeHook] = []  # the merge queue registers itself here (see the module docstring)


class InvalidStage(assignments.InvalidTransition):
    """The assignment's stage does not allow this (409); details give ``stage`` and ``state``."""

    code = "invalid_stage"


# ---- configuration ------------------------------------------------------------------------

def gates(config: Config, repo_name: str) -> list[Stage]:
    """The stages after ``work`` for a repo, in order, ending with ``merge`` or ``passed``.

    ``test`` only with a command to run; ``review`` only when
    ``reviews.enabled``; ``approval`` when ``require_approval`` (the repo's,
    else ``reviews.require_approval``).
    """
    repo = config.repo(repo_name)
    wanted = repo.stages if repo is not None and repo.stages is not None else config.pipeline.stages
    out: list[Stage] = []
    if "test" in wanted and smoke_command(config, repo):
        out.append(G.TEST)
    if "review" in wanted and config.reviews.enabled:
        out.append(G.REVIEW)
    approval = repo.require_approval if repo is not None and repo.require_approval is not None \
        else config.reviews.require_approval
    if approval:
        out.append(G.APPROVAL)
    out.append(G.MERGE if "merge" in wanted else G.PASSED)
    return out


# ---- the one way a stage changes ------------------------------------------------------------

def move(tx: Tx, row: Row, to: Stage, now: float, *, by: str | None, reason: str | None = None,
         **changes: Any) -> Row:
    """Move an assignment to stage ``to`` (checked against :data:`TRANSITIONS`), emit ``stage.<to>``.

    Entering ``merge`` calls the :data:`MERGE_ENTRY_HOOKS`. Raises
    ``InvalidStage`` (409) when the table does not allow it; returns the row.
    """
    current = Stage(row["stage"])
    if to not in TRANSITIONS[current]:
        raise InvalidStage(f"assignment {row['id']} is in stage {current.value}; it cannot go to {to.value}",
                           stage=current.value, state=row["state"])
    changes = {**changes, "stage": to.value, "stage_at": now, "stage_reason": reason, "updated_at": now}
    tx.assignments.set(row["id"], changes)
    new = {**row, **changes}
    emit(tx, f"stage.{to.value}", now, session_id=by, project_key=new["repo"], subject_id=new["id"],
         assignment_id=new["id"], repo=new["repo"], issue=new["issue"], branch=new["branch"], stage=to.value,
         previous=current.value, reason=reason, fix_round=new["fix_round"])
    if to is G.MERGE:
        for hook in MERGE_ENTRY_HOOKS:
            hook(tx, new, now)
    return new


def render(row: Row) -> dict[str, Any]:
    """The pipeline fields of an assignment (also part of every assignment's JSON)."""
    return {"stage": row["stage"], "stage_reason": row["stage_reason"], "fix_round": row["fix_round"],
            "fix_stage": row["fix_stage"]}


def view(tx: Tx, assignment_id: str) -> dict[str, Any]:
    """``GET …/assignments/{id}/stages``: the stage, the planned gates and every stage run, oldest first."""
    row = assignments.get_row(tx, assignment_id)
    config = coordinator.active(tx)
    planned = [g.value for g in gates(config, row["repo"])] if config else []
    return {"assignment_id": row["id"], "state": row["state"], **render(row), "gates": planned,
            "runs": [stageruns.render(r) for r in tx.stage_runs.of(row["id"])]}


# ---- advancing ------------------------------------------------------------------------------

def _enter(tx: Tx, config: Config, row: Row, stage: Stage, now: float, *, by: str | None, auto: bool,
           reason: str | None = None) -> Row:
    """Enter a gate; a test or review is queued at once when ``auto`` (else it waits for `coord test`)."""
    row = move(tx, row, stage, now, by=by, reason=reason)
    if stage in (G.TEST, G.REVIEW) and auto:
        run = stageruns.queue(tx, config, row, stage.value, now, by=by)
        if run["state"] == "error":
            return stop_for_input(tx, config, row, now, f"{stage.value} cannot run: {run['reason']}", by=by)
    return row


def _auto(config: Config, stage: Stage) -> bool:
    """Whether entering ``stage`` in the normal flow starts its run (seed 003's auto_queue / auto_dispatch)."""
    if stage is G.TEST:
        return config.smoke_tests.auto_queue
    return stage is G.REVIEW and config.reviews.auto_dispatch


def _rechecking(plan: list[Stage], row: Row, stage: Stage) -> bool:
    """Whether ``stage`` is one a fix sent the branch back through: at or before the stage that failed.

    Those gates run automatically whatever ``auto_queue`` / ``auto_dispatch``
    say (the fix loop is automatic, and the failed stage is among them).
    """
    failed = Stage(row["fix_stage"]) if row["fix_round"] and row["fix_stage"] else None
    if failed is None or stage not in plan:
        return False
    return failed not in plan or plan.index(stage) <= plan.index(failed)


def _after(tx: Tx, config: Config, row: Row, done: Stage | None, now: float, *, by: str | None,
           reason: str | None = None) -> Row:
    """Go to the gate after ``done`` (None: the first gate)."""
    plan = gates(config, row["repo"])
    nxt = plan[0] if done is None or done not in plan else plan[min(plan.index(done) + 1, len(plan) - 1)]
    auto = _auto(config, nxt) or _rechecking(plan, row, nxt)
    return _enter(tx, config, row, nxt, now, by=by, auto=auto, reason=reason)


def after_report(tx: Tx, assignment: dict[str, Any], now: float, by: str | None = None) -> dict[str, Any]:
    """After a host's report: a ``done`` work or fix attempt moves the pipeline on; return the assignment JSON.

    Work → the first gate. A fix → the first gate too, not only the stage
    that failed: a done fix always committed (``outcome`` rule 8), so the
    branch is new code, and a test that passed before the fix says nothing
    about it (issue 12: nothing merges that did not pass on its final commit;
    a review's requested change can break the tests). The gates up to the
    failed one run automatically (:func:`_rechecking`).
    """
    if assignment.get("state") != State.DONE.value:
        return assignment
    row = assignments.get_row(tx, assignment["id"])
    if row["stage"] not in (G.WORK, G.FIX):
        return assignment
    config = coordinator.require(tx)
    reason = f"fix round {row['fix_round']} done" if row["stage"] == G.FIX else None
    row = _after(tx, config, row, None, now, by=by, reason=reason)
    return {**assignment, **render(row)}


def report_run(tx: Tx, actor: Actor, run_id: str, attempt: int, now: float, **report: Any) -> dict[str, Any]:
    """A host's report on a stage run (:func:`coordhub.core.stageruns.report`), then the pipeline moves on."""
    run = stageruns.report(tx, actor, run_id, attempt, now, **report)
    if run["state"] in stageruns.ENDED:
        on_verdict(tx, run, now, by=actor.session_id)
    return stageruns.render(tx.stage_runs.get(run["id"]) or run)


def on_verdict(tx: Tx, run: Row, now: float, *, by: str | None) -> None:
    """A run ended: passed → the next gate; failed → the fix loop; error → ``needs_input`` with the reason."""
    row = assignments.get_row(tx, run["assignment_id"])
    if row["stage"] != run["stage"] or run["state"] == "cancelled":
        return  # moved on meanwhile (a human's verdict, a fix by hand): this run decides nothing
    config = coordinator.require(tx)
    stage = Stage(run["stage"])
    if run["state"] == "passed":
        _after(tx, config, row, stage, now, by=by)
    elif run["state"] == "failed":
        fail_gate(tx, config, row, stage, stageruns.evidence(run), now, by=by)
    else:
        stop_for_input(tx, config, row, now, f"{stage.value} could not run: {run['reason'] or 'error'}", by=by)


# ---- the fix loop ----------------------------------------------------------------------------

def fail_gate(tx: Tx, config: Config, row: Row, stage: Stage, findings: str, now: float, *,
              by: str | None) -> Row:
    """A gate failed: a fix worker, or ``needs_input`` once ``pipeline.max_fix_rounds`` fixes were tried."""
    limit = config.pipeline.max_fix_rounds
    if row["fix_round"] >= limit:
        first = findings.strip().splitlines()[0][:300] if findings.strip() else ""
        return stop_for_input(tx, config, row, now, f"{stage.value} failed after {row['fix_round']} fix round(s) "
                              f"(pipeline.max_fix_rounds {limit}): {first}", by=by)
    return dispatch_fix(tx, config, row, stage, findings, now, by=by)


def fix_briefing(row: Row, stage: Stage, findings: str, guidance: str | None) -> str:
    """What a fix worker is told beside the original briefing: the failed stage's evidence and any guidance."""
    text = findings.strip()
    if len(text) > MAX_FINDINGS_CHARS:
        text = "[…]\n" + text[-MAX_FINDINGS_CHARS:]
    parts = [f"## Fix round {row['fix_round'] + 1}: the {stage.value} stage failed on branch {row['branch']}",
             "Fix the problems below on this same branch and commit; the checks run again when you finish."]
    if text:
        parts.append(f"### Findings\n{text}")
    if guidance:
        parts.append(f"### Guidance from the coordinator\n{guidance.strip()}")
    return "\n\n".join(parts)


def dispatch_fix(tx: Tx, config: Config, row: Row, stage: Stage, findings: str, now: float, *, by: str | None,
                 guidance: str | None = None) -> Row:
    """Queue a fix worker: the same assignment again, on its branch, the model one step up the ladder.

    ``needs_input`` instead when the issue has another live assignment now.
    """
    other = tx.assignments.live_for_issue(row["repo"], row["issue"])
    if other is not None and other["id"] != row["id"]:
        return stop_for_input(tx, config, row, now, f"cannot fix: {row['repo']}#{row['issue']} has assignment "
                              f"{other['id']} ({other['state']}) now", by=by)
    for live in [tx.stage_runs.live_of(row["id"])]:
        if live is not None:
            stageruns.cancel(tx, live, now, reason="a fix worker was dispatched", by=by)
    text = fix_briefing(row, stage, findings, guidance)
    assignments.check_guidance(text)
    model, source = escalate(config.models, row["model"])
    row = assignments.transition(tx, row, State.QUEUED, now, by=by, model=model, model_source=source,
                                 guidance=text, resume_session=None, reason=None, not_before=None, ended_at=None,
                                 queued_at=now, result=None, worktree=None, started_at=None)
    return move(tx, row, G.FIX, now, by=by, reason=f"{stage.value} failed; fix round {row['fix_round'] + 1} with "
                f"{model}", fix_round=row["fix_round"] + 1, fix_stage=stage.value)


def stop_for_input(tx: Tx, config: Config, row: Row, now: float, reason: str, *, by: str | None) -> Row:
    """Stop at ``needs_input`` with ``reason``; tell ``pipeline.escalation_session`` (a message) when set."""
    row = move(tx, row, G.NEEDS_INPUT, now, by=by, reason=reason)
    to = config.pipeline.escalation_session
    if to:
        messages.send(tx, Actor(SYSTEM_SENDER, is_admin=True), to_session=to,
                      subject=f"needs input: {row['repo']}#{row['issue']} (assignment {row['id']})"[:500],
                      body=f"Assignment {row['id']} ({row['repo']}#{row['issue']}, branch {row['branch']}) stopped "
                           f"in its pipeline: {reason}\n\nDecide: `coord fix {row['id']} --guidance \"…\"`, "
                           f"`coord test --passed {row['id']}`, or `coord stop`.",
                      project_key=row["repo"], importance="high", message_type="NEEDS_INPUT", now=now)
    return row


# ---- what humans do --------------------------------------------------------------------------

def _done_row(tx: Tx, assignment_id: str, what: str, allowed: tuple[Stage, ...]) -> Row:
    row = assignments.get_row(tx, assignment_id)
    if row["state"] != State.DONE.value or Stage(row["stage"]) not in allowed:
        raise InvalidStage(f"cannot {what} assignment {row['id']}: it is {row['state']} in stage {row['stage']} "
                           f"(needs done, in stage {', '.join(s.value for s in allowed)})",
                           stage=row["stage"], state=row["state"])
    return row


_RERUNNABLE = (G.TEST, G.REVIEW, G.APPROVAL, G.PASSED, G.NEEDS_INPUT)


def run_now(tx: Tx, actor: Actor, assignment_id: str, stage: str, now: float) -> dict[str, Any]:
    """``coord test <id>`` / ``coord review <id>``: queue that stage's run now; return the run.

    409 unless the work is done and the pipeline is at a gate (not fixing,
    not merging), or when a run of it is already live; 422 for a test of a
    repo with no command.
    """
    assignments.may_direct(actor)  # a person's or an admin's verb, never a worker's or a host's
    gate = G.TEST if stage == "test" else G.REVIEW
    row = _done_row(tx, assignment_id, f"run the {gate.value} stage of", _RERUNNABLE)
    config = coordinator.require(tx)
    if gate is G.TEST and not smoke_command(config, config.repo(row["repo"])):
        raise Invalid(f"repo {row['repo']} has no build_command, test_command or smoke_tests.default_command",
                      field="assignment_id")
    live = tx.stage_runs.live_of(row["id"])
    if live is not None:
        raise InvalidStage(f"assignment {row['id']} already has a {live['stage']} run {live['id']} "
                           f"({live['state']})", stage=row["stage"], state=row["state"])
    if row["stage"] != gate.value:
        row = move(tx, row, gate, now, by=actor.session_id, reason=f"by {actor.session_id}")
    run = stageruns.queue(tx, config, row, gate.value, now, by=actor.session_id)
    if run["state"] == "error":
        stop_for_input(tx, config, row, now, f"{gate.value} cannot run: {run['reason']}", by=actor.session_id)
    return stageruns.render(run)


def manual_verdict(tx: Tx, actor: Actor, assignment_id: str, passed: bool, reason: str | None,
                   now: float) -> dict[str, Any]:
    """``coord test --passed|--fail <id> [--reason]``: record a human's smoke verdict and move on; return it."""
    assignments.may_direct(actor)  # a person's or an admin's verb, never a worker's or a host's
    row = _done_row(tx, assignment_id, "record a test verdict for", _RERUNNABLE)
    config = coordinator.require(tx)
    live = tx.stage_runs.live_of(row["id"])
    if live is not None:
        stageruns.cancel(tx, live, now, reason=f"a verdict was recorded by {actor.session_id}", by=actor.session_id)
    if row["stage"] != G.TEST:
        row = move(tx, row, G.TEST, now, by=actor.session_id, reason=f"verdict by {actor.session_id}")
    run = stageruns.record_manual(tx, config, row, passed, reason, now, by=actor.session_id)
    on_verdict(tx, run, now, by=actor.session_id)
    return stageruns.render(run)


def fix_by_hand(tx: Tx, actor: Actor, assignment_id: str, guidance: str | None, now: float) -> dict[str, Any]:
    """``coord fix <id> [--guidance]``: a fix worker now, whatever the round count; return the assignment.

    It fixes what the last failed run found; after it the gates run again
    from the first, automatically up to that failed stage (or the first gate
    when none failed).
    """
    assignments.may_direct(actor)  # a person's or an admin's verb, never a worker's or a host's
    if guidance is not None:
        assignments.check_guidance(guidance)
    row = _done_row(tx, assignment_id, "fix", FIXABLE)
    config = coordinator.require(tx)
    failed = [r for r in tx.stage_runs.of(row["id"]) if r["state"] == "failed"]
    if failed:
        stage, findings = Stage(failed[-1]["stage"]), stageruns.evidence(failed[-1])
    else:
        stage, findings = Stage(row["fix_stage"] or gates(config, row["repo"])[0]), ""
    new = dispatch_fix(tx, config, row, stage, findings, now, by=actor.session_id, guidance=guidance)
    return {**assignments.render(new), **render(new)}


def accept(tx: Tx, actor: Actor, assignment_id: str, now: float) -> dict[str, Any]:
    """``coord accept <id>``: a human passes the ``approval`` gate (``require_approval``); return the assignment."""
    assignments.may_direct(actor)  # a person's or an admin's verb, never a worker's or a host's
    row = _done_row(tx, assignment_id, "accept", (G.APPROVAL,))
    config = coordinator.require(tx)
    new = _after(tx, config, row, G.APPROVAL, now, by=actor.session_id)
    return {**assignments.render(new), **render(new)}


# ---- the merge seam --------------------------------------------------------------------------

def merge_queue(tx: Tx, repo: str | None = None) -> list[Row]:
    """Assignments waiting in stage ``merge`` (optionally of one repo), the earliest to enter first (FIFO)."""
    return tx.assignments.in_stage(G.MERGE.value, repo)


def merged(tx: Tx, assignment_id: str, now: float, *, by: str | None, commit: str | None = None) -> Row:
    """The merge queue merged the branch: stage ``merged`` (the reason names ``commit``)."""
    row = assignments.get_row(tx, assignment_id)
    return move(tx, row, G.MERGED, now, by=by, reason=f"merged as {commit}" if commit else "merged")


def merge_failed(tx: Tx, assignment_id: str, now: float, *, kind: str, reason: str, by: str | None,
                 findings: str = "") -> Row:
    """The merge queue could not merge: ``kind`` ``test`` or ``conflict`` → the fix loop (its ``done`` runs the
    gates again, then re-enters ``merge``); ``policy`` (or anything else) → ``needs_input`` with ``reason``."""
    row = assignments.get_row(tx, assignment_id)
    config = coordinator.require(tx)
    if kind in ("test", "conflict"):
        return fail_gate(tx, config, row, G.MERGE, f"{kind}: {reason}\n{findings}".strip(), now, by=by)
    return stop_for_input(tx, config, row, now, f"merge refused ({kind}): {reason}", by=by)


def recheck(tx: Tx, assignment_id: str, now: float, *, reason: str, by: str | None) -> Row:
    """The merge queue refused the branch: it is not at the commit its gates passed on (pushed to after them, or
    they passed on different commits). Back to the first gate, its run queued at once (whatever ``auto_queue``
    says: the code to merge is new to every gate), the gates after it as usual; no fix round is spent (nothing
    failed). ``needs_input`` when the pipeline has no test or review to run again. Returns the assignment."""
    row = assignments.get_row(tx, assignment_id)
    config = coordinator.require(tx)
    first = gates(config, row["repo"])[0]
    if first not in (G.TEST, G.REVIEW):
        return stop_for_input(tx, config, row, now, f"{reason} (no test or review gate to run again)", by=by)
    return _enter(tx, config, row, first, now, by=by, auto=True, reason=reason)


# ---- the reconciler's part --------------------------------------------------------------------

def sweep(tx: Tx, now: float) -> dict[str, Any]:
    """Move on what a report left behind (a done work or fix attempt still in stage work/fix); lost stage runs.

    Then, when the queue has drained, the ``on_round_complete`` hooks
    (:func:`coordhub.core.session_close.round_complete`). Returns
    ``{advanced: [ids], runs_requeued: [ids], runs_failed: [ids], round_complete: [hooks]}``.
    """
    out: dict[str, Any] = {"advanced": [], "runs_requeued": [], "runs_failed": [], "round_complete": []}
    config = coordinator.active(tx)
    if config is None:
        return out
    for stage in (G.WORK, G.FIX):
        # done ones only, asked for as such: every queued assignment is in stage work, with its briefing
        for row in tx.assignments.in_stage(stage.value, state=State.DONE.value):
            if row["state"] == State.DONE.value:
                after_report(tx, assignments.render(row), now)
                out["advanced"].append(row["id"])
    lost = stageruns.reap(tx, now)
    out["runs_requeued"], out["runs_failed"] = lost["requeued"], lost["failed"]
    for run_id in lost["failed"]:
        run = tx.stage_runs.get(run_id)
        if run is not None:
            on_verdict(tx, run, now, by=None)
    out["round_complete"] = session_close.round_complete(tx, now) or []
    return out
