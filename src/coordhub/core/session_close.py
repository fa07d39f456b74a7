"""Closing a session and a round: the built-in hooks and the summary (issue 12 point 8; seed 003 ``coord done``).

``hooks.on_session_end`` run at ``coord done``; ``hooks.on_round_complete``
run once each time the queue drains (no assignment live, no stage run live,
something happened since the last drain), found by the reconciler's pass.
Hooks are built-in names (:data:`HOOKS`), never shell commands taken from a
request: ``summary_report`` is this module's; the merge queue may add its own
(``close_merged_issues``) by registering in :data:`HOOKS`. A name no module
registered is reported as ``skipped``, not an error: a config written for a
newer hub still runs.

The summary covers what happened since the last ``coord done`` (all time
before the first): assignments by state and pipeline stage, stage runs by
stage and result, what merged, and the cost of every attempt per model and
per machine (reviews' cost per machine too).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import assignments, coordinator
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.store.tx import Tx

Hook = Callable[[Tx, float, float | None], dict[str, Any]]


def summary(tx: Tx, since: float | None, now: float) -> dict[str, Any]:
    """``{since, until, assignments, runs, merged, cost}`` over ``[since, now]`` (``since`` None: everything)."""
    start = since + 1e-6 if since is not None else 0.0  # what happened after the last `coord done`
    rows = tx.assignments.updated_since(start)
    attempts = tx.attempts.since(start)
    runs = tx.stage_runs.ended_since(start)
    by_model: dict[str, float] = defaultdict(float)
    by_machine: dict[str, float] = defaultdict(float)
    for a in attempts:
        by_model[a["model"]] += a["cost_usd"]
        by_machine[a["machine"]] += a["cost_usd"]
    for r in runs:
        if r["cost_usd"]:
            by_model[r["model"] or "?"] += r["cost_usd"]
            by_machine[r["machine"] or "?"] += r["cost_usd"]
    run_counts: dict[str, Counter[str]] = defaultdict(Counter)
    for r in runs:
        run_counts[r["stage"]][r["state"]] += 1
    return {
        "since": isoformat(since), "until": isoformat(now),
        "assignments": {"total": len(rows), "by_state": dict(Counter(r["state"] for r in rows)),
                        "by_stage": dict(Counter(r["stage"] for r in rows)), "attempts": len(attempts),
                        "fix_rounds": sum(r["fix_round"] for r in rows)},
        "runs": {stage: dict(c) for stage, c in sorted(run_counts.items())},
        "merged": [{"id": r["id"], "repo": r["repo"], "issue": r["issue"], "branch": r["branch"]}
                   for r in rows if r["stage"] == "merged"],
        "cost": {"total_usd": round(sum(by_model.values()), 6),
                 "by_model": {k: round(v, 6) for k, v in sorted(by_model.items())},
                 "by_machine": {k: round(v, 6) for k, v in sorted(by_machine.items())}},
    }


def _summary_report(tx: Tx, now: float, since: float | None) -> dict[str, Any]:
    return {"summary": summary(tx, since, now)}


HOOKS: dict[str, Hook] = {"summary_report": _summary_report}


def run_hooks(tx: Tx, names: list[str], now: float, since: float | None, *, event: str,
              by: str | None) -> list[dict[str, Any]]:
    """Run the named built-in hooks in order; one ``{hook, status, result?}`` each; event ``<event>``."""
    out: list[dict[str, Any]] = []
    for name in names:
        hook = HOOKS.get(name)
        if hook is None:
            out.append({"hook": name, "status": "skipped", "reason": "no such built-in hook on this hub"})
            continue
        out.append({"hook": name, "status": "ran", "result": hook(tx, now, since)})
    emit(tx, event, now, session_id=by, hooks=[h["hook"] for h in out],
         summary=summary(tx, since, now))
    return out


def done(tx: Tx, actor: Actor, now: float) -> dict[str, Any]:
    """``coord done``: run ``hooks.on_session_end``, answer ``{hooks, summary}``, start a new session window."""
    assignments.may_direct(actor)  # a person's or an admin's verb, never a worker's or a host's
    config = coordinator.require(tx)
    since = tx.orchestrator.get()["session_since"]
    ran = run_hooks(tx, config.hooks.on_session_end, now, since, event="orchestrator.session_end",
                    by=actor.session_id)
    result = {"hooks": ran, "summary": summary(tx, since, now)}
    tx.orchestrator.set({"session_since": now})
    return result


def round_complete(tx: Tx, now: float) -> list[dict[str, Any]] | None:
    """Run ``hooks.on_round_complete`` when the queue has drained since the last time; the hooks' results or None."""
    config = coordinator.active(tx)
    if config is None or not config.hooks.on_round_complete or tx.stage_runs.live_count() \
            or tx.assignments.find(("queued", "dispatched", "running"), limit=1):
        return None
    last = tx.orchestrator.get()["round_completed_at"]
    if not tx.assignments.any_updated_since((last or 0.0) + 1e-6):  # nothing happened since the last drain
        return None
    tx.orchestrator.set({"round_completed_at": now})
    return run_hooks(tx, config.hooks.on_round_complete, now, last, event="orchestrator.round_complete", by=None)
