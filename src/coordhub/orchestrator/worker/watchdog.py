"""The watchdogs of a running claude, and the clock they read: a paused worker does not age.

Each watchdog ends the worker with its reason: wall clock, first output,
output silence (``tool_progress`` heartbeats count as output), a process
that lingers after its ``result``, and cost (the host's own estimate beside
the CLI's ``--max-budget-usd``, as limits are known to be passed). A
dispatch's own limits win over the host's :class:`~.context.Limits`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.streamjson import Telemetry
from coordhub.orchestrator.worker.context import Limits


@dataclass
class Clock:
    """When things happened to one run of claude, in ``time.time()`` seconds; time paused by a halt kept apart.

    ``paused_since`` is set while the process group is stopped (SIGSTOP);
    ``paused_total`` sums the pauses that ended.
    """

    started_at: float = 0.0
    first_output_at: float | None = None
    last_output_at: float = 0.0
    result_at: float | None = None
    paused_since: float | None = None
    paused_total: float = 0.0

    @property
    def paused(self) -> bool:
        """Whether the run is paused now."""
        return self.paused_since is not None

    def start(self, now: float) -> None:
        """claude started at ``now`` (which also starts the silence count)."""
        self.started_at = self.last_output_at = now

    def output(self, now: float) -> None:
        """claude wrote something at ``now``."""
        if self.first_output_at is None:
            self.first_output_at = now
        self.last_output_at = now

    def pause(self, now: float) -> None:
        """The process group was stopped at ``now``."""
        self.paused_since = now

    def resume(self, now: float) -> None:
        """The pause ends at ``now``: it counts neither as run time nor as silence."""
        assert self.paused_since is not None
        self.paused_total += now - self.paused_since
        # shifted before the pause is over: a watchdog that sees the run unpaused sees the shifted time
        self.last_output_at += now - self.paused_since
        self.paused_since = None

    def restore(self, rec: dict[str, Any], output_seen: bool) -> None:
        """Time a run a previous host process started (its record's ``started_at``); any output counts as new."""
        self.started_at = float(rec.get("started_at") or time.time())
        self.last_output_at = time.time()
        self.first_output_at = time.time() if output_seen else None


def watchdog(clock: Clock, now: float, d: Dispatch, limits: Limits, telemetry: Telemetry) -> tuple[str, str] | None:
    """The watchdog that ends the run at ``now``, as ``(reason, detail)``, or None while all are quiet.

    ``reason`` is one of :data:`~coordhub.orchestrator.outcome.WATCHDOGS` or
    ``linger``; the first that fires wins, in that order: wall clock (paused
    time not counted), first output, linger after the result, silence, cost.
    The caller skips a paused run.
    """
    ran = now - clock.started_at - clock.paused_total
    wall = d.wall_clock_seconds or limits.wall_clock
    if ran > wall:
        return "wall_clock", f"ran {ran:.0f} s, over the {wall:g} s limit"
    if clock.first_output_at is None and ran > (d.first_output_seconds or limits.first_output):
        return "first_output", (f"no output in {ran:.0f} s (limit "
                                f"{d.first_output_seconds or limits.first_output:g} s)")
    if clock.result_at is not None and now - clock.result_at > limits.linger:
        return "linger", f"{now - clock.result_at:.0f} s after its result"
    if clock.result_at is None and clock.first_output_at is not None and \
            now - clock.last_output_at > (d.silence_seconds or limits.silence):
        return "silence", (f"no output for {now - clock.last_output_at:.0f} s (limit "
                           f"{d.silence_seconds or limits.silence:g} s; tool_progress heartbeats count)")
    if clock.result_at is None and d.budget_usd and telemetry.cost_usd > d.budget_usd * limits.budget_margin:
        what = "estimated " if telemetry.cost_estimated else ""
        return "budget", f"{what}cost ${telemetry.cost_usd:.2f} over the ${d.budget_usd:g} budget"
    return None
