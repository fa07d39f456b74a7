"""The reconciler: moves assignments forward when their host is gone (issue 11 point 8).

Seed 003 moved its board only when a human ran ``coord resume``; here the
hub runs a pass every ``--sweep-seconds`` in ``coord serve`` (and on demand,
``coord reconcile``). One pass, one transaction:

* a host silent for ``stale_threshold`` heartbeats is marked gone (once):
  **stopped** (event ``host.stopped``, reason ``host_stopped: …``) when its
  last heartbeat said it is stopping (a clean stop, :func:`coordhub.core.hosts.stopping`),
  **stale** (event ``host.stale``, reason ``host_stale: …``) when it vanished
  without saying so; every assignment it was still running (dispatched or
  running) is given up as **lost**: its worker's token and leases end, and it
  is re-queued with backoff ``backoff_base × 2^(attempt-1)``, or failed
  after ``max_retries`` (:func:`coordhub.core.assignments.requeue`); with
  ``auto_reassign`` another machine may take it;
* stuck and needs-input assignments stay where they are: resuming them needs
  the worktree on that machine;
* the pipeline moves on (:func:`coordhub.core.stages.sweep`): a done work or
  fix attempt still in its stage advances, and the smoke tests and reviews of
  a stale or restarted host are queued again (the key ``pipeline`` of the
  answer lists them, present only when there was something to do);
* the merge queue moves on (:func:`coordhub.core.mergequeue.advance`): runs
  whose host went away go back to the queue, entries whose fix worker ended
  are queued again or wait for a human, ``merge.auto_queue`` enters done work (the key
  ``merge``, present only when there was something to do);
* the GitHub audit trail reads the new events (:func:`coordhub.core.ghtrail.collect`).

A hub that was down saw no heartbeats either: ``up_since`` (when this hub
process started serving) is counted as a heartbeat of every host, so a
restarted hub gives hosts a full stale window to reach it again before it
re-queues anything (kill -9 of the hub must not make work run twice).

A late report of a lost attempt is refused (409 ``stale_attempt``), and the
host, if it comes back, is told to cancel it in its heartbeat answer. What a
restarted host did not re-attach is handled in its first heartbeat
(:mod:`coordhub.core.hosts`). Idempotent: a second pass finds nothing to do.
"""

from __future__ import annotations

from typing import Any

from coordhub.clock import isoformat
from coordhub.core import assignments, coordinator, ghtrail, hosts, mergequeue, stages
from coordhub.core.events import emit
from coordhub.store.tx import Tx


def run(tx: Tx, now: float, up_since: float | None = None) -> dict[str, Any]:
    """One reconciliation pass at ``now``; return ``{stale_hosts, stopped_hosts, requeued, failed}`` (machine names
    and ids; a host is listed in the pass that first finds it gone), plus ``pipeline`` and ``merge`` when the
    pipeline's sweep or the merge queue's pass did something.

    ``up_since``: when this hub process started serving (see the module docstring); None counts no grace.
    """
    done: dict[str, Any] = {"stale_hosts": [], "stopped_hosts": [], "requeued": [], "failed": []}
    config = coordinator.active(tx)
    if config is None:
        return done
    window = hosts.stale_after(config)
    for host in tx.hosts.all():
        if now - max(host["last_heartbeat"], up_since or 0.0) <= window:
            continue
        name = host["machine"]
        # A host whose last word was that it stops (SIGTERM) is not a crash: an operator reading the event, the
        # pass's answer or an assignment's reason must tell it from one that vanished (seed-003 user run).
        # ``stale_since`` marks both as handled: the column means "gone", whatever the cause.
        clean = hosts.stopping(host)
        if host["stale_since"] is None:
            tx.hosts.set(name, {"stale_since": now})
            emit(tx, "host.stopped" if clean else "host.stale", now, session_id=None, subject_id=name,
                 machine=name, incarnation=host["incarnation"], last_heartbeat=isoformat(host["last_heartbeat"]))
            done["stopped_hosts" if clean else "stale_hosts"].append(name)
        why = hosts.silence(host, now)
        for row in tx.assignments.on_machine(name, assignments.ACTIVE):
            new = assignments.lose(tx, row, config, now, why)
            done["requeued" if new["state"] == "queued" else "failed"].append(row["id"])
    swept = stages.sweep(tx, now)  # after the hosts: a stale host's stage runs are handled in the same pass
    if any(swept.values()):
        done["pipeline"] = swept
    merged = mergequeue.advance(tx, config, now, up_since)
    if any(merged.values()):
        done["merge"] = merged
    ghtrail.collect(tx, now)  # what it queued shows in `coord notify` and each assignment's trail
    return done
