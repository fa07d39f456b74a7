"""Watching a running claude: its output read as it comes, the watchdogs, the reports paced.

Every :attr:`~.context.Limits.tick` the supervisor reads what claude added to
the raw log (parsed incrementally by :mod:`~coordhub.orchestrator.streamjson`
into telemetry and human log lines), runs the :mod:`~.watchdog`, sends a due
running report and relays the human log. It stops when the process has
ended, then reaps what claude left in its process group.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import IO, Any

from coordhub.orchestrator import worktree
from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.streamjson import Parser, Telemetry
from coordhub.orchestrator.worker.context import Context
from coordhub.orchestrator.worker.process import ClaudeProcess
from coordhub.orchestrator.worker.reports import HumanLog, Reports
from coordhub.orchestrator.worker.watchdog import Clock, watchdog

READ_CHUNK = 1 << 20  # bytes of the raw log read at a time


class Supervisor:
    """Supervises one run of claude; holds what it learned: ``telemetry``, and ``raw_offset``, bytes of the
    raw log (``raw_path``) read so far."""

    def __init__(self, ctx: Context, d: Dispatch, process: ClaudeProcess, clock: Clock, reports: Reports,
                 human: HumanLog, raw_path: Path) -> None:
        self.ctx, self.d, self.process, self.clock, self.reports, self.human = ctx, d, process, clock, reports, human
        self.telemetry = Telemetry()
        self.parser = Parser(self.telemetry, secrets=self._secrets())
        self.raw_path = raw_path
        self.raw_offset = 0

    def _secrets(self) -> tuple[str, ...]:
        """What the parser masks besides token-shaped strings: the worker's own token."""
        return (self.d.worker_token,) if self.d.worker_token else ()

    def supervise(self, wt: worktree.Worktree | None) -> None:
        """Watch claude until its process has ended and its output is read; then SIGKILL what is left of the
        group and let the Claude session go. ``wt`` is named by the first running report."""
        limits = self.ctx.limits
        with open(self.raw_path, "rb") as raw:
            raw.seek(self.raw_offset)
            while True:
                alive = self.process.alive()
                self._read(raw)
                now = time.time()
                if not alive:
                    break
                self._watch(now)
                if self.process.kill_sent is not None and now - self.process.kill_sent > limits.stop_grace:
                    self.process.signal(signal.SIGKILL)
                refused = self.reports.maybe_report(now, self.telemetry, wt, self.raw_offset)
                if refused is not None:
                    self.process.kill("cancelled", refused)
                self.reports.maybe_push_log(now)
                time.sleep(limits.tick)
            self._read(raw)
        self.human.write(self.parser.close())
        if self.process.pgid is not None:
            self.process.signal(signal.SIGKILL)  # tool processes claude left behind
        self.process.release_session()

    def _read(self, raw: IO[bytes]) -> None:
        while True:
            chunk = raw.read(READ_CHUNK)
            if not chunk:
                return
            now = time.time()
            self.clock.output(now)
            self.raw_offset += len(chunk)
            had_result = self.telemetry.result is not None
            limited = self.telemetry.rate_limited_until
            self.human.write(self.parser.feed(chunk))
            if not had_result and self.telemetry.result is not None:
                self.clock.result_at = now
                self.reports.due()  # report the result at once
            if self.telemetry.rate_limited_until not in (None, limited):
                self.reports.due()  # and a rate limit: the hub pauses dispatch fleet-wide on it

    def _watch(self, now: float) -> None:
        """Run the watchdogs (none while paused, nor once the process is being ended)."""
        if self.clock.paused or self.process.kill_reason is not None:
            return
        fired = watchdog(self.clock, now, self.d, self.ctx.limits, self.telemetry)
        if fired is not None:
            self.process.kill(*fired)

    def restore(self, rec: dict[str, Any]) -> None:
        """Read on where a previous host process left off: its raw log, the offset read, the telemetry."""
        if rec.get("raw_log"):
            self.raw_path = Path(rec["raw_log"])
        self.raw_offset = int(rec.get("raw_offset") or 0)
        if isinstance(rec.get("telemetry"), dict):
            self.telemetry = Telemetry.restore(rec["telemetry"])
            self.parser = Parser(self.telemetry, secrets=self._secrets())
