"""``coord merge``: the merge queue shown and driven by hand (issue 12 point 6).

Seed 003's ``coord merge`` opened PRs and merged the smallest first from the
coordinator's machine. Here the hub owns the queue (:mod:`coordhub.core.mergequeue`)
and hosts do the git work; by hand one can

* enter done assignments (``coord merge ID…``; the manual path before, or
  beside, the pipeline's merge stage), and send an entry that waits for a
  human (``needs_input``) back to the queue;
* put entries first, in a given order (``--order``: the only way FIFO is
  overridden, and it is recorded as an event);
* see the queue and what the next run would take (``--dry-run`` writes
  nothing);
* cancel an entry that is not running.
"""

from __future__ import annotations

from typing import Any

from coordhub.core import assignments, coordinator, mergeentries, mergequeue
from coordhub.core.events import emit
from coordhub.core.identity import Actor
from coordhub.core.mergeentries import State
from coordhub.errors import Invalid
from coordhub.store.base import Row
from coordhub.store.tx import Tx

MAX_IDS = 200


def live(tx: Tx, repo: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """``{queue, fixing, needs_input}``: the entries still to merge. ``queue`` (queued and running) in FIFO order,
    each with ``position`` from 1 within its (repo, target) queue."""
    positions: dict[tuple[str, str], int] = {}
    queue = []
    for row in tx.merge_entries.in_states(mergeentries.IN_QUEUE, repo=repo):
        key = (row["repo"], row["target"])
        positions[key] = positions.get(key, 0) + 1
        queue.append({**mergeentries.render(row), "position": positions[key]})
    return {"queue": queue,
            "fixing": [mergeentries.render(r) for r in tx.merge_entries.in_states(("fixing",), repo=repo)],
            "needs_input": [mergeentries.render(r) for r in tx.merge_entries.in_states(("needs_input",), repo=repo)]}


def overview(tx: Tx, repo: str | None = None) -> dict[str, Any]:
    """:func:`live` plus ``recent``: the 20 most recently merged or cancelled entries."""
    return {**live(tx, repo), "recent": [mergeentries.render(r) for r in tx.merge_entries.recent(20, repo)]}


def _resolve(tx: Tx, ident: str) -> tuple[Row | None, Row | None]:
    """``(entry, assignment)`` for an id naming either; ``NotFound`` when it names neither."""
    ident = assignments.check_id(ident)
    entry = tx.merge_entries.get(ident)
    if entry is not None:
        return entry, tx.assignments.get(entry["assignment_id"])
    a = assignments.get_row(tx, ident)
    return tx.merge_entries.live_for(a["id"]), a


def drive(tx: Tx, actor: Actor, now: float, *, ids: list[str], repo: str | None = None, method: str | None = None,
          order: list[str] | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Enter or re-queue ``ids`` (assignment or entry ids), apply ``order``; answer what was done and the queue.

    Answer: ``{dry_run, entered, requeued, unchanged, ordered, next, why, queue…}`` where ``next`` lists
    the entries the next run would take (on any host) and ``why`` says why nothing would run.
    ``NotMergeable`` (409) for an assignment that is not done with a pushed branch, or has not passed its
    pipeline's gates; ``Forbidden`` (403) for an orchestrator worker or host; ``Invalid`` for too many
    ids or an ``order`` naming an entry that is not queued. ``dry_run`` checks everything and writes nothing.
    """
    assignments.may_direct(actor)  # a person's or an admin's: a worker must not push a branch into the queue
    if len(ids) > MAX_IDS or len(order or []) > MAX_IDS:
        raise Invalid(f"at most {MAX_IDS} ids at a time", field="ids")
    config = coordinator.require(tx)
    by = actor.session_id
    done: dict[str, list[str]] = {"entered": [], "requeued": [], "unchanged": []}
    if not dry_run:
        mergequeue.advance(tx, config, now)
    for ident in ids:
        entry, a = _resolve(tx, ident)
        if entry is not None and entry["state"] == "needs_input":
            if not dry_run:
                mergeentries.transition(tx, entry, State.QUEUED, now, by=by, reason=None, batch_cap=None,
                                        method=method or entry["method"])
            done["requeued"].append(entry["id"])
        elif entry is not None:
            done["unchanged"].append(entry["id"])
        elif dry_run:
            assert a is not None
            if a["state"] != "done" or not a["pushed"]:
                raise mergequeue.NotMergeable(f"assignment {a['id']} is {a['state']}; only a done assignment with a "
                                              "pushed branch enters the merge queue", state=a["state"])
            done["entered"].append(a["id"])
        else:
            assert a is not None
            row, _ = mergequeue.enqueue(tx, a["id"], now, by=by, method=method)
            done["entered"].append(row["id"])
    ordered = reorder(tx, order, now, by=by, dry_run=dry_run) if order else []
    entries, _, why = mergequeue.plan(tx, config, None, now)
    return {"dry_run": dry_run, **done, "ordered": ordered, "next": [r["id"] for r in entries], "why": why,
            **overview(tx, repo)}


def reorder(tx: Tx, ids: list[str], now: float, *, by: str | None, dry_run: bool = False) -> list[str]:
    """Put the named queued entries first in their queues, in the given order; return the new order of the touched
    queues (entry ids). The queue positions taken are those the queues already held (``seq`` stays unique)."""
    named: list[Row] = []
    for ident in ids:
        entry, _ = _resolve(tx, ident)
        if entry is None or entry["state"] != "queued":
            raise Invalid(f"{ident} is not a queued merge entry (only queued entries are reordered)", field="order")
        if entry["id"] not in {r["id"] for r in named}:
            named.append(entry)
    keys = {(r["repo"], r["target"]) for r in named}
    pool = [r for r in tx.merge_entries.in_states(("queued",)) if (r["repo"], r["target"]) in keys]
    chosen = {r["id"] for r in named}
    new = named + [r for r in pool if r["id"] not in chosen]
    slots = sorted(r["seq"] for r in pool)
    if not dry_run:
        for i, r in enumerate(new):  # two steps: seq is unique, and the new positions overlap the old ones
            tx.merge_entries.set(r["id"], {"seq": -1 - i})
        for r, seq in zip(new, slots, strict=True):
            tx.merge_entries.set(r["id"], {"seq": seq, "updated_at": now})
        emit(tx, "merge.reordered", now, session_id=by, subject_id=new[0]["id"] if new else None,
             order=[r["id"] for r in new])
    return [r["id"] for r in new]


def cancel(tx: Tx, actor: Actor, entry_id: str, now: float) -> dict[str, Any]:
    """Take an entry out of the queue (its branch stays). ``InvalidTransition`` (409) for a running or ended one."""
    assignments.may_direct(actor)
    row = mergeentries.get_row(tx, entry_id)
    if row["state"] == "running":
        raise assignments.InvalidTransition(f"merge entry {row['id']} is running on {row['machine']}; it can be "
                                            "cancelled once the run reports", state=row["state"])
    return mergeentries.render(mergeentries.transition(tx, row, State.CANCELLED, now, by=actor.session_id,
                                                       ended_at=now, reason=f"cancelled by {actor.session_id}"))
