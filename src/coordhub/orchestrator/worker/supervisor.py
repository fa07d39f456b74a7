"""Watching a running claude: its output read as it comes, the watchdogs, the reports paced.

Every :attr:`~.context.Limits.tick` the supervisor reads what claude added to
the raw log (parsed incrementally by :mod:`~coordhub.orchestrator.streamjson`
into telemetry and human log lines), runs the :mod:`~.watchdog`, sends a due
running report and relays the human log. It stops when the process has
ended, then reaps what claude left in its process group.

claude's stdout and stderr go straight to files (so it outlives a restart of
the host), which nothing else bounds: a worker, or a tool of its, printing
without end would fill the host's disk. So every tick the supervisor also
checks their sizes (the open files, so a log removed by its path still
counts); past :attr:`~.context.Limits.raw_log_bytes` or
:attr:`~.context.Limits.stderr_log_bytes` it ends the attempt
(:data:`OUTPUT_LIMIT`): SIGTERM, then SIGKILL after the stop grace, or a tick
after the SIGTERM when the file is past its bound by another eighth (at disk
speed a grace lets gigabytes through). The human log made of it is held to
the raw log's bound too (a line ``x`` becomes ``HH:MM:SS [text] x``, nine
times its size): the raw log is parsed no further than either bound, so the
read stays bounded in time as well as in memory.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import IO, Any

from coordhub.orchestrator import worktree
from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.outcome import OUTPUT_LIMIT
from coordhub.orchestrator.streamjson import Parser, Telemetry
from coordhub.orchestrator.worker.context import Context
from coordhub.orchestrator.worker.process import ClaudeProcess
from coordhub.orchestrator.worker.reports import HumanLog, Reports
from coordhub.orchestrator.worker.watchdog import Clock, watchdog

READ_CHUNK = 1 << 20  # bytes of the raw log read at a time
HARD_SLACK = 8  # past bound + bound/HARD_SLACK bytes, a group being ended gets SIGKILL without the grace


class Supervisor:
    """Supervises one run of claude; holds what it learned: ``telemetry``, and ``raw_offset``, bytes of the
    raw log (``raw_path``) read so far. ``err_path`` is claude's stderr, whose size is bounded too."""

    def __init__(self, ctx: Context, d: Dispatch, process: ClaudeProcess, clock: Clock, reports: Reports,
                 human: HumanLog, raw_path: Path, err_path: Path) -> None:
        self.ctx, self.d, self.process, self.clock, self.reports, self.human = ctx, d, process, clock, reports, human
        self.telemetry = Telemetry()
        self.parser = Parser(self.telemetry, secrets=self._secrets())
        self.raw_path = raw_path
        self.err_path = err_path
        self.raw_offset = 0

    def _secrets(self) -> tuple[str, ...]:
        """What the parser masks besides token-shaped strings: the worker's own token."""
        return (self.d.worker_token,) if self.d.worker_token else ()

    def supervise(self, wt: worktree.Worktree | None) -> None:
        """Watch claude until its process has ended and its output is read; then SIGKILL what is left of the
        group and let the Claude session go. ``wt`` is named by the first running report."""
        limits = self.ctx.limits
        # a re-attached run's stderr may be gone: what it holds is then unknown, counted from 0
        self.err_path.parent.mkdir(parents=True, exist_ok=True)
        self.err_path.touch()
        with open(self.raw_path, "rb") as raw, open(self.err_path, "rb") as err:
            raw.seek(self.raw_offset)
            while True:
                alive = self.process.alive()
                self._read(raw)
                now = time.time()
                if not alive:
                    break
                self._bound(raw, err)
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
        """Parse what claude added to the raw log, while the raw log read and the human log are within
        :attr:`~.context.Limits.raw_log_bytes` (a flood written faster than it is parsed would never let this
        return)."""
        bound = self.ctx.limits.raw_log_bytes
        while (left := bound - self.raw_offset) > 0 and self.human.size() <= bound:
            chunk = raw.read(min(READ_CHUNK, left))
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

    def _bound(self, raw: IO[bytes], err: IO[bytes]) -> None:
        """End claude when its stdout (``raw``), its stderr (``err``) or the human log made of its stdout passed
        its bound (the first named is the reason); SIGKILL its group, without the grace, when one is past its bound
        by :data:`HARD_SLACK` more a tick or more after the SIGTERM (whatever it was sent for): claude had its
        chance to stop printing."""
        limits = self.ctx.limits
        ending = self.process.kill_sent is not None
        for what, name, size, bound in (
                ("claude's stdout", raw.name, os.fstat(raw.fileno()).st_size, limits.raw_log_bytes),
                ("claude's stderr", err.name, os.fstat(err.fileno()).st_size, limits.stderr_log_bytes),
                ("the human log", self.human.path, self.human.size(), limits.raw_log_bytes)):
            if size <= bound:
                continue
            self.process.kill(OUTPUT_LIMIT, f"output over {bound} bytes on {what} ({Path(name).name}: {size} bytes)")
            if ending and size > bound + bound // HARD_SLACK:
                self.process.signal(signal.SIGKILL)

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
