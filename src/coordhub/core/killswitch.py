"""``coord halt --kill``: stop the running workers of a halted scope and queue their work again (issue 11 point 9).

A plain halt pauses workers (their hosts SIGSTOP them and SIGCONT them on
resume: Gas Town's estop). ``--kill`` is for the case a pause is not
enough — a runaway worker burning budget, a bad briefing sent to the whole
fleet. In the halt's own transaction every **active** (dispatched or
running) assignment in the scope ends its attempt as ``halted`` and goes
back to the queue:

* the hosts are told to stop those workers in their next heartbeat answer
  (``cancel``: the assignment is no longer active on that machine), and a
  cancelled worker saves its uncommitted work as a ``wip`` commit on its
  branch before its worktree is removed, so nothing is lost;
* the assignment stays on the machine it ran on (that machine's clone holds
  the ``wip`` commit), with no backoff: dispatch waits for the resume anyway;
* a killed attempt keeps its number but never fails the assignment by
  itself (``max_retries`` is checked only when an attempt fails on its own).

Who may: whoever may halt the scope, except the orchestrator's own sessions
(:func:`coordhub.core.assignments.may_direct`). A worker may halt its own
machine (a pause), but ``--kill`` would end every attempt on it: a
prompt-injected worker could stop its siblings' work, which ``stop`` refuses it.

Which assignments a scope covers: the fleet, all; ``machine:<m>``, those
running on ``m``; ``project:<p>``, those of repo ``p`` (a repo is its
assignments' project, as for the pause of :mod:`coordhub.core.hosts`).
"""

from __future__ import annotations

from coordhub.core import assignments
from coordhub.core.assignments import State
from coordhub.core.identity import Actor, fold
from coordhub.core.scope import Scope, project_of
from coordhub.store.base import Row
from coordhub.store.tx import Tx


def _covers(scope: Scope, row: Row) -> bool:
    if scope.kind == "fleet":
        return True
    if scope.kind == "machine":
        return fold(row["ran_on"] or row["machine"] or "") == scope.name
    return project_of(row["repo"]) == project_of(scope.name or "")


def kill(tx: Tx, scope: Scope, now: float, *, actor: Actor, reason: str) -> list[str]:
    """End every active assignment in ``scope`` and re-queue it; return their ids (sorted).

    ``actor``: who halted; ``reason``: the halt's reason (both recorded on
    the attempt and the assignment). Runs inside the halt's transaction, so a
    halt either stops all of them or none. ``Forbidden`` (403) for an
    orchestrator worker or host, which rolls the halt back with it.
    """
    assignments.may_direct(actor)
    by = actor.session_id
    killed = []
    why = f"halted with --kill by {by}: {reason}"
    for row in tx.assignments.active():
        if not _covers(scope, row):
            continue
        assignments.end_attempt(tx, row, "halted", why, now)
        assignments.transition(tx, row, State.QUEUED, now, by=by, reason=why, not_before=now,
                               machine=row["ran_on"] or row["machine"], worker_session=None, lease_id=None, fence=None)
        killed.append(row["id"])
    return sorted(killed)
