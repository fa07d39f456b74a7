"""One worker: a headless ``claude -p`` run on one assignment, from leased files to the final report.

The life of a worker (issue 11 points 4–6), each step owned by the host:

1. **Prepare.** The repo must be one this host serves and ``claude`` must be
   on the worker's ``PATH`` (a clear ``failed`` reason otherwise, not a
   traceback). The briefing's ``files_likely`` are leased *as the worker*
   (its own token, project = repo) before anything starts: one held by
   another session fails the attempt with ``files_busy`` — never two workers
   editing one file. Then the git worktree (:mod:`~coordhub.orchestrator.worktree`).
2. **Spawn** ``claude -p <prompt> --output-format stream-json --verbose
   --session-id <uuid> …`` (or ``--resume <id>`` for ``resume-stuck``) in the
   worktree, in its own session and process group, with the allowlisted
   environment (:mod:`~coordhub.orchestrator.environment`) and the hub's hooks
   passed with ``--settings`` (the worker session's edits of files leased by
   others are denied at edit time; its unread messages reach it). The prompt
   comes right after ``-p``: the CLI's tool-list options are variadic and would
   swallow a prompt placed after them. stdout goes to a file on the host (the
   raw log), which the host tails, so a restarted host can re-attach.
3. **Supervise** every :attr:`Limits.tick`: parse new output incrementally
   (:mod:`~coordhub.orchestrator.streamjson`), push compact telemetry (at most
   every ``report_every`` seconds, at once on a change of phase) and the human
   log, and run the watchdogs, each ending the worker with its reason: wall
   clock, first output, output silence (``tool_progress`` heartbeats count as
   output), cost (the CLI's ``--max-budget-usd`` plus the host's own estimate,
   as limits are known to be passed), and a process that lingers after its
   ``result``. A paused worker (fleet halt: SIGSTOP) does not age. The raw log
   and the stderr file are bounded on disk: past :attr:`Limits.raw_log_bytes`
   or :attr:`Limits.stderr_log_bytes` the attempt is ended and ``failed``
   (``output_limit: output over N bytes …``), a re-attached run as well.
4. **Finish.** :func:`~coordhub.orchestrator.outcome.decide` gives the state;
   work is saved before anything is removed (a ``wip`` commit on the branch, or
   a ``refs/coordhub/wip/…`` commit beside a finished branch); the branch is
   pushed (any other than a done one fast-forward only, so a retry elsewhere
   continues it); a stuck or needs-input worktree is kept (``parked``) for
   ``resume-stuck``, any other is removed; the file leases are released; the
   final report is delivered — kept in the host's state file and sent again
   until the hub has it.

A report the hub answers with 409 (the attempt is no longer current: the hub
re-queued it, or it was stopped) stops the worker at once: a dead attempt
never keeps working beside a newer one.

:class:`Worker` runs these steps with its parts, one module each:
:mod:`~.context` (what a host's workers share), :mod:`~.leases`, :mod:`~.work`
(the worktree, opened and saved), :mod:`~.process` (claude's command line,
environment and signals), :mod:`~.supervisor` with its :mod:`~.watchdog`,
:mod:`~.reports` (the human log, the reports to the hub) and :mod:`~.record`.
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coordhub.client import Unreachable
from coordhub.hooks import install as hook_install
from coordhub.orchestrator import worktree
from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.link import Refused, Stale, WorkerLink
from coordhub.orchestrator.outcome import Ending, Verdict, decide
from coordhub.orchestrator.streamjson import Telemetry
from coordhub.orchestrator.worker import process, work
from coordhub.orchestrator.worker.context import Context, EndEarly, Limits
from coordhub.orchestrator.worker.leases import FileLeases
from coordhub.orchestrator.worker.process import ClaudeProcess
from coordhub.orchestrator.worker.record import Record
from coordhub.orchestrator.worker.reports import HumanLog, Reports, final_report
from coordhub.orchestrator.worker.supervisor import Supervisor
from coordhub.orchestrator.worker.watchdog import Clock

__all__ = ["Context", "EndEarly", "Limits", "Worker"]

log = logging.getLogger("coordhub.agent")


class Worker:
    """Runs one :class:`Dispatch` in a thread (:meth:`start`), or takes over one a dead host left (:meth:`reattach`).

    The host's orders (cancel, stop, pause) come from other threads.
    """

    def __init__(self, ctx: Context, d: Dispatch, on_exit: Callable[[Worker], None] | None = None) -> None:
        self.ctx, self.d = ctx, d
        self.dir = ctx.workers_dir / d.id
        self.on_exit = on_exit
        self.thread: threading.Thread | None = None
        self.finished = threading.Event()
        self.wt: worktree.Worktree | None = None
        self.session_id = d.resume.session_id if d.resume else str(uuid.uuid4())
        self.err_path = self.dir / f"stderr.{d.attempt}.log"
        self.record = Record(ctx, d)
        self.human = HumanLog(self.dir / f"human.{d.attempt}.log")
        self.reports = Reports(ctx, d, self.record, self.human)
        self.leases = FileLeases()
        self.clock = Clock()
        self.process = ClaudeProcess(self.clock, self.human)
        self.supervisor = Supervisor(ctx, d, self.process, self.clock, self.reports, self.human,
                                     self.dir / f"stream.{d.attempt}.jsonl", self.err_path)
        self.verdict: Verdict | None = None
        self.env: dict[str, str] = {}
        self.claude: str | None = None

    @property
    def telemetry(self) -> Telemetry:
        """What claude's output said so far (:class:`~coordhub.orchestrator.streamjson.Telemetry`)."""
        return self.supervisor.telemetry

    @property
    def pid(self) -> int | None:
        """claude's pid (None before it started)."""
        return self.process.pid

    @property
    def exit_code(self) -> int | None:
        """claude's exit status, once it ended as a child of this host process (else None)."""
        return self.process.exit_code

    @property
    def kill_reason(self) -> str | None:
        """Why the host ended claude (a watchdog, ``linger``, ``cancelled``, ``host_stopped``,
        ``output_limit``), or None."""
        return self.process.kill_reason

    @property
    def stale(self) -> bool:
        """Whether the hub gave this attempt up: its work is saved on its branch, never pushed or reported."""
        return self.reports.stale

    @stale.setter
    def stale(self, value: bool) -> None:
        self.reports.stale = value

    # -- control from the host ------------------------------------------------------

    def start(self) -> None:
        """Run the whole life in a new thread."""
        self.thread = threading.Thread(target=self._main, name=f"worker-{self.d.id}", daemon=True)
        self.thread.start()

    def reattach(self, record: dict[str, Any]) -> None:
        """Take over the worker a previous host process left (its record), in a new thread: supervise it if it
        still runs and the hub says its attempt is current, else kill what is left and finish it."""
        self.thread = threading.Thread(target=self._main_reattach, args=(record,), name=f"worker-{self.d.id}",
                                       daemon=True)
        self.thread.start()

    def cancel(self, why: str = "stopped on the hub's request") -> None:
        """Stop the worker because the hub cancelled the assignment (no state of its own is reported)."""
        self.process.kill("cancelled", why)

    def stop(self, why: str = "the host was stopped") -> None:
        """Stop the worker because the host is shutting down (reported as failed, work saved)."""
        self.process.kill("host_stopped", why)

    def pause(self) -> bool:
        """Halt: SIGSTOP the worker's process group; its watchdogs stop counting. Whether this call stopped it
        (see :meth:`~coordhub.orchestrator.worker.process.ClaudeProcess.pause`)."""
        return self.process.pause()

    def unpause(self) -> None:
        """Resume after a halt: SIGCONT, and the paused time is not counted by the watchdogs."""
        self.process.unpause()

    @property
    def paused(self) -> bool:
        """Whether a halt paused the worker."""
        return self.clock.paused

    # -- the life ---------------------------------------------------------------------

    def _main(self) -> None:
        try:
            try:
                self._prepare()
                self._spawn()
            except EndEarly as end:
                self._end_early(end.verdict)
                return
            self.supervisor.supervise(self.wt)
            self._finish()
        except Exception as exc:  # a bug or an unexpected OS error: report it, never leave the slot hanging
            log.exception("worker %s: unexpected error", self.d.id)
            self._crash(exc)
        finally:
            self._done()

    def _main_reattach(self, record: dict[str, Any]) -> None:
        try:
            self._restore(record)
            alive = self.process.alive()
            if self.process.pid is None:
                self._end_early(Verdict("failed", "host_restarted: the host stopped before claude started"))
                return
            if not self.stale:
                try:
                    self.reports.send({"attempt": self.d.attempt, "telemetry": self.telemetry.compact()})
                except (Stale, Refused) as exc:
                    self.stale = True
                    self.human.write([f"[recover] the hub no longer runs attempt {self.d.attempt} ({exc})"])
                except Unreachable:
                    pass  # supervise anyway; reports are retried
            if self.stale and alive:
                self.process.kill("cancelled", "the hub moved on while the host was down")
            self.human.write([f"[recover] re-attached to {'running' if alive else 'finished'} claude pid "
                              f"{self.process.pid}"])
            self.supervisor.supervise(self.wt)
            self._finish()
        except Exception as exc:
            log.exception("worker %s: unexpected error after re-attach", self.d.id)
            self._crash(exc)
        finally:
            self._done()

    def _done(self) -> None:
        self.finished.set()
        if self.on_exit is not None:
            self.on_exit(self)

    # -- 1. prepare ---------------------------------------------------------------------

    def _prepare(self) -> None:
        d, ctx = self.d, self.ctx
        self.dir.mkdir(parents=True, exist_ok=True)
        self.record.put(phase="preparing")
        repo = ctx.repos.get(d.repo)
        if repo is None:
            raise EndEarly("failed", f"unknown_repo: machine {ctx.machine} has no path for repo {d.repo!r} "
                                     f"(it serves {', '.join(sorted(ctx.repos)) or 'none'})")
        self.env = process.environment(ctx, d)
        self.claude = shutil.which(ctx.claude, path=self.env.get("PATH"))
        if self.claude is None:
            raise EndEarly("failed", f"claude_missing: {ctx.claude!r} is not found on the worker's PATH on "
                                     f"{ctx.machine} (install Claude Code, or give coord agent --claude PATH)")
        self.leases.take(WorkerLink(ctx.worker_settings(d)), d, ctx.limits, self.record)
        self.wt = work.open_worktree(ctx, d, repo)
        self.record.put(phase="preparing", worktree=str(self.wt.path), branch=self.wt.branch, base=self.wt.base,
                        repo_path=str(repo))
        self.reports.freshness_notes = work.freshness(ctx, d, self.human.write)

    # -- 2. spawn -------------------------------------------------------------------------

    def argv(self, settings_file: Path) -> list[str]:
        """The ``claude`` command line (:func:`~.process.argv`; a new session's prompt goes on stdin)."""
        assert self.claude is not None
        return process.argv(self.d, self.claude, self.session_id, settings_file)

    def _spawn(self) -> None:
        assert self.wt is not None
        settings_file = self.dir / "settings.json"
        settings_file.write_text(hook_install.render(hook_install.with_ours({}, hook_install.hook_command())),
                                 encoding="utf-8")
        sup, proc = self.supervisor, self.process
        sup.raw_offset = proc.spawn(self.argv(settings_file), self.wt.path, self.env, sup.raw_path, self.err_path,
                                    self.ctx.session_lock(self.session_id), self.session_id,
                                    stdin_text=process.stdin_prompt(self.d))
        self.clock.start(time.time())
        self.human.write([f"[start] claude pid {proc.pid} in {self.wt.path} on {self.wt.branch}"
                          + (f" (resuming session {self.session_id[:8]})" if self.d.resume else self._inherited())])
        self.record.put(phase="running", pid=proc.pid, pgid=proc.pgid, start_ticks=proc.ticks,
                        session_id=self.session_id, raw_log=str(sup.raw_path), raw_offset=sup.raw_offset,
                        started_at=self.clock.started_at)

    def _inherited(self) -> str:
        """For a first attempt whose branch origin already had (a team's branch from before the hub, seed 003's
        ``issue-N-*``): what the worker continues, as the human log's ``[start]`` line says it; else nothing.
        Later attempts continue their own branch, as everyone expects."""
        assert self.wt is not None
        if self.d.attempt != 1 or self.wt.remote is None:
            return ""
        ahead = worktree.ahead_of(self.wt, self.d.default_branch)
        count = f": {ahead} commit(s) not on origin/{self.d.default_branch}" if ahead is not None else ""
        return f" (continuing the branch as origin has it{count})"

    # -- 4. finish (3, supervise, is Supervisor.supervise) --------------------------------

    def _finish(self) -> None:
        d, wt = self.d, self.wt
        self.record.put(phase="finishing")
        new = work.new_commits(wt, d) if wt is not None else 0
        ending = Ending(self.process.exit_code, self.process.kill_reason, self.process.kill_detail, new,
                        process.tail(self.err_path))
        verdict = decide(self.telemetry, ending)
        if self.stale:  # the hub gave this attempt up: its work is kept on the branch, never pushed or reported
            verdict = Verdict(verdict.state, f"{verdict.reason} (attempt {d.attempt} given up by the hub; "
                                             "not reported)")
        changed = (work.changed_files(wt, d) if wt is not None and wt.path.exists() and verdict.state == "done"
                   else None)

        def record_pending(saved: work.Saved) -> None:
            # before the worktree goes: a host killed from here on delivers this report after its restart
            # (host.recover) instead of judging the run again without its worktree
            if not self.stale:
                self.record.put(phase="finishing", pending=self.reports.with_freshness(
                    final_report(d, saved, self.telemetry, wt, changed)))

        saved = (work.save(wt, d, verdict, self.stale, self.ctx.machine, before_remove=record_pending)
                 if wt is not None else work.Saved(verdict))
        self.verdict = saved.verdict
        state, reason = saved.verdict.state, saved.verdict.reason
        self.leases.release()
        self.human.write([f"[end] {state or 'stopped'}: {reason}" + (f"; wip {saved.wip[:12]}" if saved.wip else "")
                          + ("; branch pushed" if saved.pushed else "")])
        body = self.reports.with_freshness(final_report(d, saved, self.telemetry, wt, changed))
        self.reports.deliver(body, parked=saved.keep and state in ("stuck", "needs_input"))

    def _end_early(self, verdict: Verdict) -> None:
        """Report an attempt that never ran claude; release what was taken, remove a fresh worktree."""
        self.verdict = verdict
        log.warning("worker %s: %s", self.d.id, verdict.reason)
        self.leases.release()
        parked = bool(self.d.resume and self.wt is not None and not self.stale)
        if self.wt is not None and not parked:
            work.discard(self.wt, self.d, self.ctx.machine)
        self.human.write([f"[end] {verdict.state}: {verdict.reason}"])
        body: dict[str, Any] = {"attempt": self.d.attempt, "state": verdict.state, "reason": verdict.reason}
        self.reports.deliver(self.reports.with_freshness(body), parked=parked)

    def _crash(self, exc: BaseException) -> None:
        """Report a failure of the host's own (``host_error``) and end claude as supervision would have: SIGTERM,
        then, past ``stop_grace``, SIGKILL to its whole group (a claude or tool that ignores SIGTERM ran on)."""
        if self.process.pgid is not None:
            if self.process.alive():
                self.process.signal(signal.SIGTERM)
                deadline = time.monotonic() + self.ctx.limits.stop_grace
                while self.process.alive() and time.monotonic() < deadline:
                    time.sleep(self.ctx.limits.tick)
            self.process.signal(signal.SIGKILL)  # what is left of the group, as supervise ends it
            deadline = time.monotonic() + 1.0
            while self.process.alive() and time.monotonic() < deadline:  # reaped: no zombie left behind
                time.sleep(self.ctx.limits.tick)
        self.leases.release()
        self.verdict = Verdict("failed", f"host_error: {type(exc).__name__}: {exc}")
        self.reports.deliver({"attempt": self.d.attempt, "state": "failed", "reason": self.verdict.reason},
                             parked=False, keep_worktree=True)

    # -- re-attach ------------------------------------------------------------------------

    def _restore(self, rec: dict[str, Any]) -> None:
        """Load what a previous host process recorded (re-attach)."""
        self.wt = work.recorded_worktree(rec, self.ctx, self.d)
        self.session_id = rec.get("session_id") or self.session_id
        self.process.restore(rec)
        self.supervisor.restore(rec)
        self.reports.restore(rec)
        self.leases.restore(rec, self.ctx, self.d)
        self.clock.restore(rec, output_seen=bool(self.supervisor.raw_offset))
        raw = self.supervisor.raw_path
        if not raw.exists():  # supervise() opens it to read
            raw.parent.mkdir(parents=True, exist_ok=True)
            raw.touch()
