"""The merge queue: per (repo, target branch), fair FIFO; each branch rebased at the tip, gated, merged once.

Seed 003 merged by hand, smallest diff first, with no gate, and its queue
was filled only by ``coord resume``; Gas Town's newest-first refinery
starved old merge requests for 44 h. Here (research orchestrator.md §5):

* An **entry** is one time an assignment's branch entered the queue of its
  (repo, ``default_branch``): :func:`enqueue` (``coord merge <id>``, the
  pipeline's merge stage, or ``merge.auto_queue`` for a done, pushed branch).
  ``seq`` is its FIFO position, kept across retries and fix rounds.
* A **run** takes the oldest queued entry of a queue with nothing running
  (the oldest head across queues first), plus up to ``merge.batch - 1`` entries
  queued right behind it (Bors), and hands them to a host (:func:`claim`): a
  ``coord agent`` serving the repo, with capability ``github`` when the repo
  has ``github:`` (workers never get GitHub credentials). The host rebases
  (or squashes, or merges: ``method``) onto the current target, runs the gate
  at the tip, waits for the PR's CI checks on GitHub, and lands it.
* **What lands is what passed** (issue 12: nothing merges that did not pass on
  its final commit): when a run starts, each entry is pinned to the commit its
  gates passed on (:func:`gated`: the automated test and review runs of its
  last fix round, which must all name one commit), and the host stacks exactly
  that commit. A branch pushed to after its gates (``origin/<branch>`` is not
  the pinned commit) is refused by the host (``moved``); gates that passed on
  different commits are refused by the hub before any host sees the entry.
  Either way the gates run again on the branch as it is now
  (:func:`~coordhub.core.mergereports.refuse_moved`).
* A report classifies the outcome (:func:`~coordhub.core.mergereports.report`):
  ``landing`` (the tip about to land, recorded **before** the push:
  write-ahead), ``merged``;
  ``conflict`` → a conflict-fix worker on that branch (at most
  ``merge.conflict_fixes``), ``red`` → a fix worker with the gate's output (at
  most ``merge.red_fixes``; a red batch is bisected first), ``policy``
  (branch protection, a required review) → ``needs_input`` with the reason,
  ``retry`` (the target moved) → queued again, ``moved`` (the branch is not at
  its pinned commit) → its gates again
  (:func:`~coordhub.core.mergereports.refuse_moved`).
* At most ``merge.max_per_tick`` entries land (or run) per ``tick_seconds``.
  A halt of the fleet or the host's machine stops new runs; a project halt
  stops runs into that repo. A run that never reports (beyond the gate's and
  the checks' timeouts plus 10 minutes) is taken back like a lost host's.
* ``depends_on``: an entry waits while an upstream repo has an earlier entry
  in the queue, so upstream lands first (:mod:`coordhub.core.repodeps`).

Nothing merges twice and no branch is lost across a kill -9 of the hub or the
host: entries are rows changed in one transaction each; a run whose host went
away goes back to the queue with its recorded tip, and the next run first asks
git whether the target already contains that tip (or the branch) and then
only records the merge. Branches are deleted (``merge.delete_branch``) only
after the merge is recorded.

An entry's states are a table (:data:`~coordhub.core.mergeentries.TRANSITIONS`);
every change goes through :func:`~coordhub.core.mergeentries.transition`,
which emits ``merge.<state>``.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from coordhub.core import assignments, coordinator, hosts, repodeps, stages
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.core.mergeentries import State, transition
from coordhub.core.mergereports import refuse_moved
from coordhub.core.orchestrator_config import MERGE_METHODS, Config
from coordhub.core.scope import project_of
from coordhub.errors import Conflict, Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx

_PIPELINE_BUSY = ("fix", "test", "review", "approval")  # stages in which a fixed branch is still being checked
RUN_MARGIN_SECONDS = 600.0  # beyond the gate's and the checks' timeouts, before a silent run is taken back
# stages in which a branch has not passed its gates: it enters no queue (contract §2.11), by hand or auto_queue
_UNPASSED = (*_PIPELINE_BUSY, "needs_input")


class NotMergeable(Conflict):
    """The assignment cannot enter the queue (409): not done, or its branch was never pushed."""

    code = "not_mergeable"


# ---- entering the queue --------------------------------------------------------------------------------

def enqueue(tx: Tx, assignment_id: str, now: float, *, by: str | None, method: str | None = None) -> tuple[Row, bool]:
    """Enter a done assignment's pushed branch into its queue; ``(entry, created)``.

    Idempotent: an assignment with a live entry gets that entry back
    (``created`` false). ``NotMergeable`` (409) unless the assignment is
    ``done`` with its branch pushed, and past its pipeline's gates (not in
    stage test, review, approval, fix or needs_input); ``Invalid`` for an
    unknown ``method``.
    """
    config = coordinator.require(tx)
    a = assignments.get_row(tx, assignment_id)
    live = tx.merge_entries.live_for(a["id"])
    if live is not None and live["state"] == "fixing" and a["state"] == "done" and a["pushed"]:
        return transition(tx, live, State.QUEUED, now, by=by, tip=None, batch_cap=None, reason=None), False
    if live is not None:
        return live, False
    if a["state"] != "done" or not a["pushed"]:
        raise NotMergeable(f"assignment {a['id']} is {a['state']}" + ("" if a["pushed"] else ", its branch not "
                           "pushed") + "; only a done assignment with a pushed branch enters the merge queue",
                           state=a["state"])
    if a["stage"] in _UNPASSED:
        raise NotMergeable(f"assignment {a['id']} is in stage {a['stage']}: it has not passed its pipeline's gates "
                           "(a person may record them: coord test --passed, coord accept)", state=a["state"])
    method = method or config.merge.method
    if method not in MERGE_METHODS:
        raise Invalid(f"method must be one of {', '.join(MERGE_METHODS)}", field="method")
    repo = config.repo(a["repo"])
    row: Row = {"id": _new_id(tx), "seq": tx.merge_entries.next_seq(), "assignment_id": a["id"], "repo": a["repo"],
                "target": repo.default_branch if repo else "main", "branch": a["branch"], "issue": a["issue"],
                "title": a["title"], "method": method, "state": State.QUEUED.value, "attempt": 0, "machine": None,
                "host_incarnation": None, "batch_id": None, "batch_cap": None, "gated_sha": None, "tip": None,
                "merged_sha": None,
                "pr_number": None, "pr_url": None, "conflict_fixes": 0, "red_fixes": 0, "fix_attempt": None,
                "briefing": "", "reason": None, "evidence": None, "created_by": by or "hub",
                "created_at": now, "started_at": None, "ended_at": None, "updated_at": now}
    # briefing "": the column is a relic (migration 0034); nothing reads an entry's copy of the assignment's text
    tx.merge_entries.add(row)
    emit(tx, "merge.queued", now, session_id=by, project_key=row["repo"], subject_id=row["id"], entry_id=row["id"],
         assignment_id=a["id"], repo=row["repo"], target=row["target"], branch=row["branch"], issue=row["issue"],
         state="queued", reason=None, merged_sha=None, machine=None)
    return row, True


def _on_merge_stage(tx: Tx, row: Row, now: float) -> None:
    """The pipeline's seam (``stages.MERGE_ENTRY_HOOKS``): a branch that passed its gates enters the queue; one
    whose entry waited for a fix worker of the pipeline goes back to its old place. A branch that cannot enter
    (never pushed) is an event ``merge.refused``, not an error in the pipeline's transaction."""
    try:
        enqueue(tx, row["id"], now, by=None)
    except NotMergeable as exc:
        emit(tx, "merge.refused", now, session_id=None, project_key=row["repo"], subject_id=row["id"],
             assignment_id=row["id"], reason=str(exc))


stages.MERGE_ENTRY_HOOKS.append(_on_merge_stage)


def _new_id(tx: Tx) -> str:
    while True:
        candidate = secrets.token_hex(4)
        if tx.merge_entries.get(candidate) is None:
            return candidate


# ---- moving entries forward without a host ---------------------------------------------------------------

def advance(tx: Tx, config: Config, now: float, up_since: float | None = None) -> dict[str, list[str]]:
    """One pass over the queue: runs whose host went away, fix workers that ended, ``auto_queue``.

    Returns ``{requeued, fixed, needs_input, entered}`` (entry ids).
    Idempotent: a second pass finds nothing to do.
    """
    done: dict[str, list[str]] = {"requeued": [], "fixed": [], "needs_input": [], "entered": []}
    window = hosts.stale_after(config)
    deadline = config.merge.gate_timeout_seconds + config.merge.checks_timeout_seconds + RUN_MARGIN_SECONDS
    for row in tx.merge_entries.in_states(("running",)):
        host = tx.hosts.get(row["machine"]) if row["machine"] else None
        gone = (host is None or host["incarnation"] != row["host_incarnation"]
                or now - max(host["last_heartbeat"], up_since or 0.0) > window)
        if not gone and row["started_at"] is not None and now - row["started_at"] > deadline:
            transition(tx, row, State.QUEUED, now, by=None, batch_id=None,
                       reason=f"the run on {row['machine']} did not report within {deadline:g} s (gate and checks "
                              "timeouts); queued again, its tip checked first")
            done["requeued"].append(row["id"])
            continue
        if gone:
            why = hosts.departure(host, row["machine"], row["host_incarnation"], now)
            transition(tx, row, State.QUEUED, now, by=None, batch_id=None,
                       reason=f"{why}, during the merge run (tip {(row['tip'] or 'none')[:12]} is checked before "
                              "anything lands again)")
            done["requeued"].append(row["id"])
    for row in tx.merge_entries.in_states(("fixing",)):
        a = tx.assignments.get(row["assignment_id"])
        if a is None or a["state"] in assignments.LIVE:
            continue
        if a["stage"] in _PIPELINE_BUSY:  # the pipeline's fix loop and gates decide; entering merge re-queues it
            continue
        if a["stage"] == stages.Stage.NEEDS_INPUT.value:  # the fixed branch failed a gate again: a human decides
            transition(tx, row, State.NEEDS_INPUT, now, by=None,
                       reason=f"the pipeline stopped after the fix: {a['stage_reason'] or 'needs input'}")
            done["needs_input"].append(row["id"])
            continue
        if a["stage"] == stages.Stage.MERGE.value and a["state"] == "done":
            transition(tx, row, State.QUEUED, now, by=None, tip=None, batch_cap=None, reason=None)
            done["fixed"].append(row["id"])
            continue
        if a["state"] == "done" and a["attempt"] > (row["fix_attempt"] or 0) and a["pushed"]:
            transition(tx, row, State.QUEUED, now, by=None, tip=None, batch_cap=None, reason=None)
            done["fixed"].append(row["id"])
        else:
            transition(tx, row, State.NEEDS_INPUT, now, by=None,
                       reason=f"the fix worker ended {a['state']}: {a['reason'] or 'no reason given'}")
            done["needs_input"].append(row["id"])
    if config.merge.auto_queue:
        for a in tx.merge_entries.unentered_done(skip_stages=_UNPASSED):  # its gates decide (stage merge enters)
            row, _ = enqueue(tx, a["id"], now, by=None)
            done["entered"].append(row["id"])
    return done


# ---- what a host gets ------------------------------------------------------------------------------------

def _serves(host: Row, config: Config, repo: str) -> bool:
    """Whether ``host`` may run merges of ``repo``: it registered the repo, and has ``github`` for a GitHub repo."""
    r = config.repo(repo)
    if repo not in json.loads(host["repos"]):
        return False
    return not (r is not None and r.github and "github" not in json.loads(host["capabilities"]))


def plan(tx: Tx, config: Config, host: Row | None, now: float) -> tuple[list[Row], float | None, str]:
    """The entries the next run takes (for ``host``; None: any host), when to look again, and why not now."""
    if host is not None and hosts.stopping(host):  # it shuts down: it starts no run it could not finish
        return [], None, "this host is stopping"
    m = config.merge
    rows = tx.merge_entries.in_states(("queued", "running", "fixing"))
    running = [r for r in rows if r["state"] == "running"]
    budget = m.max_per_tick
    if m.tick_seconds > 0:
        budget -= tx.merge_entries.landed_since(now - m.tick_seconds) + len(running)
        if budget <= 0:
            return [], now + min(m.tick_seconds, 5.0), f"max_per_tick ({m.max_per_tick} per {m.tick_seconds:g} s)"
    busy = {(r["repo"], r["target"]) for r in running}
    halted = hosts.halted_projects(tx)  # a project halt stops merges into that repo
    queues: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        if r["state"] == "queued":
            queues.setdefault((r["repo"], r["target"]), []).append(r)
    why = "the queue is empty" if not queues else "nothing this host can run"
    for key, entries in sorted(queues.items(), key=lambda kv: kv[1][0]["seq"]):
        head = entries[0]
        if key in busy or project_of(head["repo"]) in halted:
            continue
        ups = set(repodeps.upstream(config, head["repo"]))
        if any(r["repo"] in ups and r["seq"] < head["seq"] for r in rows):
            why = f"{head['repo']} waits for an upstream repo's earlier entry"
            continue
        if host is not None and not _serves(host, config, head["repo"]):
            continue
        cap = min(m.batch, head["batch_cap"] or m.batch, budget)  # on GitHub too: one gate, PRs land in order
        return _consecutive(entries, cap), None, ""
    return [], None, why


def _consecutive(entries: list[Row], cap: int) -> list[Row]:
    """The head and the entries right behind it, at most ``cap`` (a capped entry limits the batch it joins)."""
    out: list[Row] = []
    for r in entries:
        limit = min(cap, r["batch_cap"] or cap)
        if len(out) >= limit:
            break
        out.append(r)
        cap = limit
    return out


def claim(tx: Tx, actor: Actor, now: float, *, machine: str, incarnation: int) -> dict[str, Any] | None:
    """Start the next run on ``machine``'s host; its job (see :func:`job`), or None.

    Counts as a heartbeat of the host. Raises as
    :func:`coordhub.core.hosts.current` does, and ``NotConfigured``.
    """
    config = coordinator.require(tx)
    host = hosts.current(tx, actor, config, machine, incarnation)
    tx.hosts.set(host["machine"], {"last_heartbeat": now})
    advance(tx, config, now)
    while True:  # each pass that refuses an entry takes it out of the queue: this ends
        entries, _, _ = plan(tx, config, host, now)
        if not entries:
            return None
        pins = [gated(tx, config, r["assignment_id"]) for r in entries]
        refused = [(r, why) for r, (_, why) in zip(entries, pins, strict=True) if why is not None]
        if not refused:
            break
        for r, why in refused:  # never handed to a host: no gate passed on what it would merge
            refuse_moved(tx, r, why, now, by=actor.session_id)
    batch_id = secrets.token_hex(6)
    started = [transition(tx, r, State.RUNNING, now, by=actor.session_id, attempt=r["attempt"] + 1,
                          machine=host["machine"], host_incarnation=host["incarnation"], batch_id=batch_id,
                          gated_sha=sha, started_at=now, reason=None)
               for r, (sha, _) in zip(entries, pins, strict=True)]
    return job(config, started)


def gated(tx: Tx, config: Config, assignment_id: str) -> tuple[str | None, str | None]:
    """The commit an assignment's gates passed on: ``(sha, None)``; ``(None, None)`` when no gate named one;
    ``(None, why)`` when they named different commits (the entry must not merge).

    The gates are the latest passed ``test`` and ``review`` run of each stage in the assignment's current fix
    round (a fix starts a new round, whose gates run again; a later run of a stage replaces an earlier one), of
    the stages its repo has now (a stage since configured away never passes again: counting its old run would
    refuse the entry after every new pass).

    A host reports the commit it checked out; a person's verdict (``coord test --passed``) names none and pins
    nothing, and neither does ``approval``. With no pin the host stacks the branch as it finds it: the merge
    gate is then the only check of that code.
    """
    a = tx.assignments.get(assignment_id)
    if a is None:
        return None, None
    wanted = {g.value for g in stages.gates(config, a["repo"])} & {"test", "review"}
    latest: dict[str, Row] = {}
    for r in tx.stage_runs.of(assignment_id):  # oldest first: the last one of a stage wins
        if r["stage"] in wanted and r["state"] == "passed" and r["round"] == a["fix_round"]:
            latest[r["stage"]] = r
    named = {stage: r["commit_sha"] for stage, r in latest.items() if r["commit_sha"] and not r["manual"]}
    shas = set(named.values())
    if len(shas) > 1:
        return None, ("its gates passed on different commits (" + ", ".join(
            f"{stage} on {sha[:12]}" for stage, sha in sorted(named.items())) + "): the branch moved between them")
    return (shas.pop() if shas else None), None


def look(tx: Tx, actor: Actor, now: float, *, machine: str, incarnation: int) -> tuple[bool, float | None]:
    """Whether :func:`claim` would do something for ``machine``'s host now, and when to look again (read-only)."""
    config = coordinator.require(tx)
    host = hosts.current(tx, actor, config, machine, incarnation)
    entries, wake, _ = plan(tx, config, host, now)
    return bool(entries) or _advance_due(tx, config, now), wake


def _advance_due(tx: Tx, config: Config, now: float) -> bool:
    """Whether :func:`advance` has something to do (cheap: it reads, never writes)."""
    for row in tx.merge_entries.in_states(("fixing",)):
        a = tx.assignments.get(row["assignment_id"])
        if a is not None and a["state"] not in assignments.LIVE:
            return True
    for row in tx.merge_entries.in_states(("running",)):
        host = tx.hosts.get(row["machine"]) if row["machine"] else None
        if host is None or host["incarnation"] != row["host_incarnation"]:
            return True
    return bool(config.merge.auto_queue and tx.merge_entries.unentered_done(1, _UNPASSED))


def job(config: Config, entries: list[Row]) -> dict[str, Any]:
    """What a host needs for one run: the entries in order and the repo's merge settings.

    An entry's ``gated_sha`` is the commit its gates passed on (None: none named one, see :func:`gated`): the
    host merges exactly that commit, and reports ``moved`` when ``origin/<branch>`` is elsewhere.
    """
    head = entries[0]
    repo = config.repo(head["repo"])
    m = config.merge
    gate = m.gate_command
    if gate is None and repo is not None:
        parts = [c for c in (repo.build_command, repo.test_command) if c]
        gate = " && ".join(f"({c})" for c in parts) or None
    return {"batch_id": head["batch_id"], "repo": head["repo"], "target": head["target"], "method": head["method"],
            "github": repo.github if repo else None, "gate_command": gate,
            "gate_timeout_seconds": m.gate_timeout_seconds, "require_checks": m.require_checks,
            "checks_timeout_seconds": m.checks_timeout_seconds, "delete_branch": m.delete_branch,
            "entries": [{"id": r["id"], "assignment_id": r["assignment_id"], "branch": r["branch"],
                         "issue": r["issue"], "title": r["title"], "attempt": r["attempt"], "prior_tip": r["tip"],
                         "gated_sha": r["gated_sha"], "pr_number": r["pr_number"]} for r in entries]}
