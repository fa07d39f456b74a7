"""The orchestrator's status view: machines and their slots, the queue, assignments, costs (issue 11 points 3, 7).

What ``coord status`` shows beside the hub's own overview (seed 003's
``status`` listed machines and assignments; here the hub holds the truth,
so the view is one consistent snapshot, not a poll of every agent). Costs
are the attempts' reported ``total_cost_usd`` (the latest ``result`` of each
attempt), totalled per machine for the current UTC day and per UTC day over
the last :data:`COST_DAYS` days.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import assignments, coordinator, dispatch, hosts, mergedrive, stageruns
from coordhub.core.orchestrator_config import Config
from coordhub.errors import Invalid
from coordhub.store.tx import Tx

COST_DAYS = 30
RECENT = 50  # ended assignments shown
QUEUE_SHOWN = 50  # queued assignments shown (the head of the queue); ``totals.queued`` counts them all


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).date().isoformat()


def _check_known(machine: str, configured: list[str], registered: list[str]) -> None:
    """``Invalid`` unless ``machine`` (case-insensitive, as the view filters) is configured or registered."""
    known = sorted({*configured, *registered}, key=str.lower)
    if machine.lower() not in {k.lower() for k in known}:
        raise Invalid(f"unknown machine {machine!r}: the hub knows "
                      + (", ".join(known) if known else "none (no coordinator.yml is applied: `coord config apply`)"),
                      field="machine")


def _stagger_view(tx: Tx, config: Config, now: float) -> dict[str, Any] | None:
    """``{until, seconds}`` while the fleet-wide stagger holds the next dispatch back, else None."""
    until = dispatch.stagger_until(tx, config, now)
    return None if until is None else {"until": isoformat(until), "seconds": config.concurrency.stagger_seconds}


def overview(tx: Tx, now: float, machine: str | None = None) -> dict[str, Any]:
    """``{configured, config_version, machines, queue, stage_runs, merges, assignments, paused, stagger, totals}``,
    optionally for one machine.

    ``machines`` lists every machine of the config (``state`` ``online``,
    ``stale`` or ``never`` when its agent never registered; ``running`` its
    assignments holding a slot, ``busy_slots`` those and its stage runs holding
    one, ``free_slots`` its ``slots`` less ``busy_slots``, never below 0: the
    hub's count, the one dispatch goes by; ``reported_free_slots`` what its
    host said at its last heartbeat or registration); ``queue`` the
    first :data:`QUEUE_SHOWN` queued assignments in dispatch order (``position``
    in the whole queue, from 1; the list form, ``briefing_bytes`` instead of
    the briefing) and ``totals.queued`` how many are queued in all (with a
    machine: pinned to it or to any), so one answer stays small however long
    the queue (a review queued ~2,900 64 KiB briefings and one answer read
    them all: 1 s, 3.3 MB); ``stage_runs``
    the smoke tests and reviews queued or running; ``merges`` the merge
    queue's live entries (:func:`coordhub.core.mergedrive.live`: per repo and
    target, in order with ``position``, then those fixing or waiting for a
    human; with a machine, the running ones only if they run there); ``assignments``
    the live ones that are not queued plus the :data:`RECENT` most recently
    ended; ``stagger`` ``{until, seconds}`` while ``concurrency.stagger_seconds``
    since the last dispatch holds every queued one back (else null). Before
    any config is applied, ``configured`` is false and the lists are empty.

    Raises ``Invalid`` (422, ``field`` ``machine``) naming the known machines
    when ``machine`` is neither in the config nor a registered host: an empty
    view read as "nothing queued there", not as a misspelled name.
    """
    config = coordinator.active(tx)
    host_rows = {h["machine"]: h for h in tx.hosts.all()}
    if machine is not None:
        _check_known(machine, [m.name for m in config.machines] if config else [], list(host_rows))
    version = tx.orchestrator.get()["config_version"]
    empty: dict[str, Any] = {"configured": False, "config_version": version, "machines": [], "queue": [],
                             "assignments": [], "stage_runs": [], "merges": [], "paused": None, "stagger": None,
                             "totals": {"cost_usd": 0.0, "by_day": {}, "running": 0, "queued": 0}}
    if config is None:
        return empty
    today = _day(now)
    by_day: dict[str, float] = defaultdict(float)
    by_machine_today: dict[str, float] = defaultdict(float)
    for a in tx.attempts.costs(now - COST_DAYS * 86_400):
        day = _day(a["dispatched_at"])
        by_day[day] += a["cost_usd"]
        if day == today:
            by_machine_today[a["machine"]] += a["cost_usd"]
    active = tx.assignments.active_by_machine()
    stage_active = tx.stage_runs.active_by_machine()
    machines = []
    for m in config.machines:
        if machine is not None and m.name.lower() != machine.lower():
            continue
        h = host_rows.get(m.name)
        running = active.get(m.name, 0)
        # free slots as dispatch counts them (coordhub.core.dispatch.plan: the host's slots less the assignments
        # and stage runs holding one), not as the host last reported them: that report lags every dispatch and
        # ending by up to a heartbeat, and the board said "2 free of 2" next to "1 running"
        busy = running + stage_active.get(m.name, 0)
        machines.append({
            "machine": m.name, "state": hosts.state_of(h, config, now) if h else "never",
            "slots": h["slots"] if h else 0, "free_slots": max(0, int(h["slots"]) - busy) if h else 0,
            "reported_free_slots": h["free_slots"] if h else 0, "busy_slots": busy, "running": running,
            "incarnation": h["incarnation"] if h else 0, "repos": m.repos, "capabilities": m.capabilities,
            "last_heartbeat": isoformat(h["last_heartbeat"]) if h else None,
            "seconds_since_heartbeat": round(now - h["last_heartbeat"], 3) if h else None,
            "cost_today_usd": round(by_machine_today.get(m.name, 0.0), 6),
            "problems": json.loads(h["problems"]) if h else [], "recovered": json.loads(h["recovered"]) if h else []})
    queue = [{**assignments.render(r, briefing=False), "position": r["position"]}
             for r in tx.assignments.queue_head(QUEUE_SHOWN, machine)]
    # the live ones not queued, asked for as such: reading LIVE and dropping the queued read every briefing
    shown = tx.assignments.find(tuple(s for s in assignments.LIVE if s != "queued"), limit=1000)
    shown += tx.assignments.find(("done", "failed", "cancelled"), limit=RECENT)
    rows = [assignments.render(r, briefing=False) for r in shown
            if machine is None or (r["ran_on"] or r["machine"] or "").lower() == machine.lower()]
    runs = [stageruns.render(r) for r in tx.stage_runs.live()
            if machine is None or (r["machine"] or "").lower() in ("", machine.lower())]
    pending = mergedrive.live(tx)
    merges = [e for e in (*pending["queue"], *pending["fixing"], *pending["needs_input"])
              if machine is None or (e["machine"] or "").lower() == machine.lower() or e["state"] != "running"]
    return {"configured": True, "config_version": version, "machines": machines, "queue": queue,
            "assignments": rows, "stage_runs": runs, "merges": merges, "paused": coordinator.pause_view(tx, now),
            "stagger": _stagger_view(tx, config, now),
            "totals": {"cost_usd": round(tx.attempts.cost_total(), 6),
                       "by_day": {d: round(c, 6) for d, c in sorted(by_day.items())},
                       "running": sum(active.values()), "queued": tx.assignments.queued_count(machine)}}
