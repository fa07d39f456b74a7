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
   ``result``. A paused worker (fleet halt: SIGSTOP) does not age.
4. **Finish.** :func:`~coordhub.orchestrator.outcome.decide` gives the state;
   work is saved before anything is removed (a ``wip`` commit on the branch, or
   a ``refs/coordhub/wip/…`` commit beside a finished branch); a done branch is
   pushed; a stuck or needs-input worktree is kept (``parked``) for
   ``resume-stuck``, any other is removed; the file leases are released; the
   final report is delivered — kept in the host's state file and sent again
   until the hub has it.

A report the hub answers with 409 (the attempt is no longer current: the hub
re-queued it, or it was stopped) stops the worker at once: a dead attempt
never keeps working beside a newer one.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordhub.client import Unreachable
from coordhub.client.settings import ClientSettings
from coordhub.hooks import install as hook_install
from coordhub.hooks.settings import MAX_HALT_WAIT
from coordhub.orchestrator import worktree
from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.environment import worker_env
from coordhub.orchestrator.hoststate import HostState, process_alive, start_ticks
from coordhub.orchestrator.link import LOG_CHUNK, Busy, HubLink, LogGap, Refused, Stale, WorkerLink
from coordhub.orchestrator.outcome import Ending, Verdict, decide
from coordhub.orchestrator.streamjson import Parser, Telemetry

log = logging.getLogger("coordhub.agent")

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """The host's watchdogs and pacing, in seconds (``budget_margin``: a factor of the budget)."""

    wall_clock: float = 3600.0
    first_output: float = 300.0
    silence: float = 900.0
    linger: float = 30.0
    stop_grace: float = 10.0
    budget_margin: float = 1.1
    report_every: float = 2.0
    log_every: float = 1.0
    tick: float = 0.2


@dataclass
class Context:
    """What every worker of a host shares: the hub, the state file, where things go, the limits."""

    machine: str
    link: HubLink
    state: HostState
    hub_settings: ClientSettings
    repos: dict[str, Path]
    worktrees: Path
    workers_dir: Path
    limits: Limits = field(default_factory=Limits)
    claude: str = "claude"
    host_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    pass_env: tuple[str, ...] = ()
    session_locks: dict[str, threading.Lock] = field(default_factory=dict)
    locks_guard: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def session_lock(self, session_id: str) -> threading.Lock:
        """The lock serialising runs of one Claude session (two resumes must never interleave a transcript)."""
        with self.locks_guard:
            return self.session_locks.setdefault(session_id, threading.Lock())

    def worker_settings(self, d: Dispatch) -> ClientSettings:
        """Client settings acting as the worker's own session (its token, the host's hub and queue file)."""
        return self.hub_settings._replace(token=d.worker_token, session=d.worker_session, token_source="dispatch",
                                          admin_hub_id=None)


MAX_NOTES, MAX_NOTE_CHARS = 50, 500  # freshness notes in a report (the hub refuses more: AssignmentReport)


class EndEarly(Exception):
    """The worker ends before (or without) running claude; ``verdict`` is what gets reported."""

    def __init__(self, state: str | None, reason: str) -> None:
        super().__init__(reason)
        self.verdict = Verdict(state, reason)


class Worker:
    """Runs one :class:`Dispatch` in a thread (:meth:`start`), or takes over one a dead host left (:meth:`reattach`)."""

    def __init__(self, ctx: Context, d: Dispatch, on_exit: Callable[[Worker], None] | None = None) -> None:
        self.ctx, self.d = ctx, d
        self.dir = ctx.workers_dir / d.id
        self.on_exit = on_exit
        self.thread: threading.Thread | None = None
        self.finished = threading.Event()
        self.telemetry = Telemetry()
        self.parser = Parser(self.telemetry)
        self.wt: worktree.Worktree | None = None
        self.session_id = d.resume.session_id if d.resume else str(uuid.uuid4())
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.pgid: int | None = None
        self.ticks: int | None = None
        self.raw_path = self.dir / f"stream.{d.attempt}.jsonl"
        self.err_path = self.dir / f"stderr.{d.attempt}.log"
        self.human_path = self.dir / f"human.{d.attempt}.log"
        self.raw_offset = 0
        self.human_pushed = 0  # bytes of the human log file the hub has
        self.hub_log_size: int | None = None  # characters the hub holds (contract A6); None: not known yet
        self.leases: list[str] = []
        self.link: WorkerLink | None = None
        self.started_at = 0.0
        self.first_output_at: float | None = None
        self.last_output_at = 0.0
        self.result_at: float | None = None
        self.paused_since: float | None = None
        self.paused_total = 0.0
        self.kill_reason: str | None = None
        self.kill_detail = ""
        self.kill_sent: float | None = None
        self.stale = False
        self.running_reported = False
        self.freshness_notes: list[str] = []  # what the freshness check found (_prepare), sent with a report
        self.last_report = 0.0
        self.last_sent: dict[str, Any] | None = None
        self.last_log_push = 0.0
        self.exit_code: int | None = None
        self.verdict: Verdict | None = None
        self.env: dict[str, str] = {}
        self.claude: str | None = None
        self._session_lock: threading.Lock | None = None
        self._sig_lock = threading.Lock()

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
        self._kill("cancelled", why)

    def stop(self, why: str = "the host was stopped") -> None:
        """Stop the worker because the host is shutting down (reported as failed, work saved)."""
        self._kill("host_stopped", why)

    def pause(self) -> None:
        """Halt: SIGSTOP the worker's process group; its watchdogs stop counting."""
        with self._sig_lock:
            if self.paused_since is None and self.pgid is not None and self.kill_sent is None:
                if self._signal(signal.SIGSTOP):
                    self.paused_since = time.time()
                    self._human(["[halt] paused (SIGSTOP)"])

    def unpause(self) -> None:
        """Resume after a halt: SIGCONT, and the paused time is not counted by the watchdogs."""
        with self._sig_lock:
            if self.paused_since is not None:
                self._signal(signal.SIGCONT)
                now = time.time()
                self.paused_total += now - self.paused_since
                self.last_output_at += now - self.paused_since
                self.paused_since = None
                self._human(["[halt] resumed (SIGCONT)"])

    @property
    def paused(self) -> bool:
        return self.paused_since is not None

    # -- the life ---------------------------------------------------------------------

    def _main(self) -> None:
        try:
            try:
                self._prepare()
                self._spawn()
            except EndEarly as end:
                self._end_early(end.verdict)
                return
            self._supervise()
            self._finish()
        except Exception as exc:  # a bug or an unexpected OS error: report it, never leave the slot hanging
            log.exception("worker %s: unexpected error", self.d.id)
            self._crash(exc)
        finally:
            self._done()

    def _main_reattach(self, record: dict[str, Any]) -> None:
        try:
            self._restore(record)
            alive = self.pid is not None and process_alive(self.pid, self.ticks)
            if self.pid is None:
                self._end_early(Verdict("failed", "host_restarted: the host stopped before claude started"))
                return
            if not self.stale:
                try:
                    self._send({"attempt": self.d.attempt, "telemetry": self.telemetry.compact()})
                except (Stale, Refused) as exc:
                    self.stale = True
                    self._human([f"[recover] the hub no longer runs attempt {self.d.attempt} ({exc})"])
                except Unreachable:
                    pass  # supervise anyway; reports are retried
            if self.stale and alive:
                self._kill("cancelled", "the hub moved on while the host was down")
            self._human([f"[recover] re-attached to {'running' if alive else 'finished'} claude pid {self.pid}"])
            self._supervise()
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
        self._record(phase="preparing")
        repo = ctx.repos.get(d.repo)
        if repo is None:
            raise EndEarly("failed", f"unknown_repo: machine {ctx.machine} has no path for repo {d.repo!r} "
                                     f"(it serves {', '.join(sorted(ctx.repos)) or 'none'})")
        self.env = self._env()
        self.claude = shutil.which(ctx.claude, path=self.env.get("PATH"))
        if self.claude is None:
            raise EndEarly("failed", f"claude_missing: {ctx.claude!r} is not found on the worker's PATH on "
                                     f"{ctx.machine} (install Claude Code, or give coord agent --claude PATH)")
        self.link = WorkerLink(ctx.worker_settings(d))
        self._lease_files()
        parked = ctx.state.get(d.id) if d.resume else None
        try:
            if parked and parked.get("worktree") and Path(parked["worktree"]).is_dir():
                self.wt = worktree.Worktree(repo, Path(parked["worktree"]), parked.get("branch") or d.branch,
                                            parked.get("base") or worktree.git(Path(parked["worktree"]),
                                                                                "rev-parse", "HEAD"))
            else:
                path = ctx.worktrees / _safe(d.id)
                self.wt = worktree.create(repo, path, d.branch, d.default_branch, ctx.worktrees)
                if parked and parked.get("base"):
                    self.wt = worktree.Worktree(repo, path, d.branch, parked["base"])
        except worktree.GitError as exc:
            raise EndEarly("failed", f"git: {exc}") from None
        self._record(phase="preparing", worktree=str(self.wt.path), branch=self.wt.branch, base=self.wt.base,
                     repo_path=str(repo))
        notes = []
        for dep, branch in d.depends_on:  # seed 003's freshness check of the repos this one depends on
            dep_path = ctx.repos.get(dep)
            note = worktree.freshness(dep_path, branch, d.auto_pull) if dep_path is not None else \
                "not on this machine"
            notes.append(f"{dep}: {note}")
            self._human([f"[fresh] {dep}: {note}"])
        if d.skip_freshness:
            notes.append("skipped (coord approve --skip-freshness)")
            self._human(["[fresh] skipped (coord approve --skip-freshness)"])
        # reported with the first report (`coord approve` shows stale ones), within the report's limits
        self.freshness_notes = [n[:MAX_NOTE_CHARS] for n in notes][:MAX_NOTES]

    def _lease_files(self) -> None:
        d = self.d
        assert self.link is not None
        ttl = ((d.wall_clock_seconds or self.ctx.limits.wall_clock) + 600) / 3600
        for path in d.files_likely:
            try:
                lease = self.link.lease(d.repo, path, ttl, f"assignment {d.id}: issue #{d.issue} (files_likely)")
            except Busy as busy:
                who = f" held by {busy.holder}" if busy.holder else ""
                raise EndEarly("failed", f"files_busy: {busy.resource}{who}") from None
            except Refused as exc:
                raise EndEarly("failed", f"lease_refused: {path}: {exc}") from None
            except Unreachable as exc:
                raise EndEarly("failed", f"hub_unreachable: could not lease {path}: {exc}") from None
            self.leases.append(str(lease.get("id")))
            self._record(leases=self.leases)

    def _env(self) -> dict[str, str]:
        d = self.d
        identity = {"COORD_URL": self.ctx.hub_settings.url, "COORD_SESSION": d.worker_session,
                    "COORD_PROJECT": d.repo, "COORD_ASSIGNMENT": d.id,
                    # an edit caught between a halt and this host's SIGSTOP waits for the resume (hooks/edits.py)
                    "COORD_HOOK_HALT_WAIT": f"{MAX_HALT_WAIT:g}"}
        if d.worker_token:
            identity["COORD_TOKEN"] = d.worker_token
        return worker_env(self.ctx.host_env, identity, self.ctx.pass_env)

    # -- 2. spawn -------------------------------------------------------------------------

    def argv(self, settings_file: Path) -> list[str]:
        """The ``claude`` command line (the prompt right after ``-p``, see the module docstring)."""
        d = self.d
        assert self.claude is not None
        cmd = [self.claude, "-p", self._prompt(), "--output-format", "stream-json", "--verbose"]
        cmd += ["--resume", self.session_id] if d.resume else ["--session-id", self.session_id]
        if d.model:
            cmd += ["--model", d.model]
        cmd += ["--permission-mode", d.permission_mode]
        if d.allowed_tools:
            cmd += ["--allowedTools", ",".join(d.allowed_tools)]
        denied = ["AskUserQuestion", "Bash(git push *)", *(t for t in d.disallowed_tools
                                                            if t not in ("AskUserQuestion", "Bash(git push *)"))]
        cmd += ["--disallowedTools", ",".join(denied)]
        cmd += ["--append-system-prompt", self._system_prompt(), "--settings", str(settings_file)]
        if d.budget_usd:
            cmd += ["--max-budget-usd", f"{d.budget_usd:g}"]
        if d.max_turns:
            cmd += ["--max-turns", str(d.max_turns)]
        return cmd

    def _prompt(self) -> str:
        d = self.d
        if d.resume:
            return f"Guidance from the coordinator for assignment {d.id} (issue #{d.issue}):\n\n{d.resume.guidance}"
        title = f": {d.title}" if d.title else ""
        return f"Issue #{d.issue} of {d.repo}{title}.\n\n{d.briefing}".rstrip() + "\n"

    def _system_prompt(self) -> str:
        d = self.d
        files = ", ".join(d.files_likely) or "none named"
        return (
            f"You are a headless worker started by coordhub's `coord agent` for assignment {d.id}: issue #{d.issue} "
            f"of {d.repo}, on branch {d.branch} in this git worktree. Work only in this worktree. Commit your work "
            "with git before you finish; the host pushes the branch (do not push, do not open pull requests). "
            "Report progress on lines starting with `STATUS: `. If you cannot go on, write a line `STUCK: <why>` "
            "and stop. If you need a decision, end your final message with the question. "
            f"Files leased for you: {files}. An edit refused by a hook names the session that holds the file: "
            "do not work around it; say STUCK.")

    def _spawn(self) -> None:
        assert self.wt is not None
        settings_file = self.dir / "settings.json"
        settings_file.write_text(hook_install.render(hook_install.with_ours({}, hook_install.hook_command())),
                                 encoding="utf-8")
        lock = self.ctx.session_lock(self.session_id)
        if not lock.acquire(timeout=60):
            raise EndEarly("failed", f"session_busy: another run of session {self.session_id} did not end")
        self._session_lock = lock
        argv = self.argv(settings_file)
        with open(self.raw_path, "ab") as out, open(self.err_path, "ab") as err:
            self.raw_offset = out.tell()
            try:
                self.proc = subprocess.Popen(argv, cwd=self.wt.path, env=self.env, stdin=subprocess.DEVNULL,
                                             stdout=out, stderr=err, start_new_session=True)
            except OSError as exc:
                lock.release()
                self._session_lock = None
                raise EndEarly("failed", f"claude_missing: cannot run {argv[0]}: {exc.strerror}") from None
        self.pid = self.pgid = self.proc.pid
        self.ticks = start_ticks(self.pid)
        self.started_at = self.last_output_at = time.time()
        self._human([f"[start] claude pid {self.pid} in {self.wt.path} on {self.wt.branch}"
                     + (f" (resuming session {self.session_id[:8]})" if self.d.resume else "")])
        self._record(phase="running", pid=self.pid, pgid=self.pgid, start_ticks=self.ticks,
                     session_id=self.session_id, raw_log=str(self.raw_path), raw_offset=self.raw_offset,
                     started_at=self.started_at)

    # -- 3. supervise ------------------------------------------------------------------

    def _alive(self) -> bool:
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return True
            self.exit_code = code
            return False
        return self.pid is not None and process_alive(self.pid, self.ticks)

    def _supervise(self) -> None:
        limits = self.ctx.limits
        with open(self.raw_path, "rb") as raw:
            raw.seek(self.raw_offset)
            while True:
                alive = self._alive()
                self._read(raw)
                now = time.time()
                if not alive:
                    break
                self._watch(now)
                if self.kill_sent is not None and now - self.kill_sent > limits.stop_grace:
                    self._signal(signal.SIGKILL)
                self._maybe_report(now)
                self._maybe_push_log(now)
                time.sleep(limits.tick)
            self._read(raw)
        self._human(self.parser.close())
        if self.pgid is not None:
            self._signal(signal.SIGKILL)  # tool processes claude left behind
        if self._session_lock is not None:
            self._session_lock.release()
            self._session_lock = None

    def _read(self, raw: Any) -> None:
        while True:
            chunk = raw.read(READ_CHUNK)
            if not chunk:
                return
            now = time.time()
            if self.first_output_at is None:
                self.first_output_at = now
            self.last_output_at = now
            self.raw_offset += len(chunk)
            had_result = self.telemetry.result is not None
            limited = self.telemetry.rate_limited_until
            self._human(self.parser.feed(chunk))
            if not had_result and self.telemetry.result is not None:
                self.result_at = now
                self.last_report = 0.0  # report the result at once
            if self.telemetry.rate_limited_until not in (None, limited):
                self.last_report = 0.0  # and a rate limit: the hub pauses dispatch fleet-wide on it

    def _watch(self, now: float) -> None:
        """Run the watchdogs (none while paused)."""
        if self.paused or self.kill_reason is not None:
            return
        limits, d = self.ctx.limits, self.d
        ran = now - self.started_at - self.paused_total
        wall = d.wall_clock_seconds or limits.wall_clock
        if ran > wall:
            self._kill("wall_clock", f"ran {ran:.0f} s, over the {wall:g} s limit")
        elif self.first_output_at is None and ran > (d.first_output_seconds or limits.first_output):
            self._kill("first_output", f"no output in {ran:.0f} s (limit "
                                       f"{d.first_output_seconds or limits.first_output:g} s)")
        elif self.result_at is not None and now - self.result_at > limits.linger:
            self._kill("linger", f"{now - self.result_at:.0f} s after its result")
        elif self.result_at is None and self.first_output_at is not None and \
                now - self.last_output_at > (d.silence_seconds or limits.silence):
            self._kill("silence", f"no output for {now - self.last_output_at:.0f} s (limit "
                                  f"{d.silence_seconds or limits.silence:g} s; tool_progress heartbeats count)")
        elif self.result_at is None and d.budget_usd and self.telemetry.cost_usd > d.budget_usd * limits.budget_margin:
            what = "estimated " if self.telemetry.cost_estimated else ""
            self._kill("budget", f"{what}cost ${self.telemetry.cost_usd:.2f} over the ${d.budget_usd:g} budget")

    def _kill(self, reason: str, detail: str) -> None:
        with self._sig_lock:
            if self.kill_reason is None:
                self.kill_reason, self.kill_detail = reason, detail
            if self.kill_sent is not None or self.pgid is None:
                return
            self._human([f"[kill] {reason}: {detail}"])
            if self.paused_since is not None:
                self._signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self._signal(signal.SIGTERM)
            self.kill_sent = time.time()

    def _signal(self, sig: int) -> bool:
        if self.pgid is None:
            return False
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _maybe_report(self, now: float) -> None:
        if self.stale or now - self.last_report < self.ctx.limits.report_every:
            return
        compact = self.telemetry.compact()
        if self.running_reported and compact == self.last_sent:
            return
        body: dict[str, Any] = {"attempt": self.d.attempt, "telemetry": compact}
        if not self.running_reported:
            assert self.wt is not None
            body.update(state="running", worktree=str(self.wt.path), branch=self.wt.branch,
                        freshness=self.freshness_notes)
        self.last_report = now
        try:
            self._send(body)
        except Unreachable:
            return
        except Refused as exc:
            if isinstance(exc, Stale) or exc.status == 404:  # the attempt is over on the hub: stop working on it
                self.stale = True
                self._kill("cancelled", f"the hub refused a report for attempt {self.d.attempt} ({exc})")
            else:  # a report it cannot take (a bug, a limit) is no reason to kill a working worker
                log.warning("worker %s: telemetry report refused: %s", self.d.id, exc)
                self.last_sent = compact
            return
        self.running_reported = True
        self.last_sent = compact
        self._record(telemetry=self.telemetry.snapshot(), raw_offset=self.raw_offset)

    def _send(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.ctx.link.report(self.d.id, body)

    # -- the human log ------------------------------------------------------------------

    def _human(self, lines: list[str]) -> None:
        if not lines:
            return
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.human_path, "a", encoding="utf-8") as f:
            f.write("".join(f"{stamp} {line}\n".replace("\x00", "") for line in lines))

    def _maybe_push_log(self, now: float, force: bool = False) -> None:
        """Relay new lines of the human log (whole lines, ≤ 64 KiB a request) at the hub's character offset."""
        if self.stale or (not force and now - self.last_log_push < self.ctx.limits.log_every):
            return
        self.last_log_push = now
        for _ in range(64 if force else 4):
            try:
                size = self.human_path.stat().st_size
            except FileNotFoundError:
                return
            if size <= self.human_pushed:
                return
            with open(self.human_path, "rb") as f:
                f.seek(self.human_pushed)
                chunk = f.read(LOG_CHUNK)
            cut = chunk.rfind(b"\n") + 1 or len(chunk)
            text = chunk[:cut].decode("utf-8", errors="replace")
            try:
                if self.hub_log_size is None:
                    # the log is the assignment's, across attempts: learn where the hub's ends (a gap answer says)
                    self.hub_log_size = self.ctx.link.log(self.d.id, self.d.attempt, 1 << 53, "")
                self.hub_log_size = self.ctx.link.log(self.d.id, self.d.attempt, self.hub_log_size, text)
            except LogGap as gap:
                self.hub_log_size = gap.size
                continue
            except (Unreachable, Refused):
                return
            self.human_pushed += cut
            self._record(human_pushed=self.human_pushed, hub_log_size=self.hub_log_size)

    # -- 4. finish ------------------------------------------------------------------------

    def _finish(self) -> None:
        d = self.d
        self._record(phase="finishing")
        new = 0
        if self.wt is not None:
            try:
                new = worktree.new_commits(self.wt)
            except worktree.GitError as exc:
                log.warning("worker %s: cannot count commits: %s", d.id, exc)
        stderr_tail = _tail(self.err_path)
        verdict = decide(self.telemetry, Ending(self.exit_code, self.kill_reason, self.kill_detail, new, stderr_tail))
        state, reason = verdict.state, verdict.reason
        if self.stale:  # the hub gave this attempt up: its work is kept on the branch, never pushed or reported
            reason = f"{reason} (attempt {d.attempt} given up by the hub; not reported)"
        pushed, wip, keep = False, None, False
        changed: list[str] | None = None
        if self.wt is not None and state == "done":
            try:  # what the branch changed routes its smoke test (smoke_tests.capability_rules)
                changed = worktree.changed_files(self.wt, d.default_branch)
            except worktree.GitError as exc:
                log.warning("worker %s: cannot list changed files: %s", d.id, exc)
        if self.wt is not None:
            try:
                if state == "done" and not self.stale:
                    wip = worktree.save_work(self.wt.path, f"wip: leftovers of assignment {d.id} attempt "
                                             f"{d.attempt}", on_branch=False, ref_name=f"{_safe(d.id)}-{d.attempt}",
                                             machine=self.ctx.machine)
                    try:
                        worktree.push(self.wt)
                        pushed = True
                    except worktree.GitError as exc:
                        state, reason = "failed", f"push_failed: {exc}"
                else:
                    wip = worktree.save_work(self.wt.path, f"wip: assignment {d.id} attempt {d.attempt} "
                                             f"({reason.split(':')[0]})", on_branch=True, machine=self.ctx.machine)
                keep = state in ("stuck", "needs_input") and not self.stale
            except worktree.GitError as exc:
                keep = True  # never remove a worktree whose work could not be saved
                reason += f" (work NOT saved: {exc}; worktree kept at {self.wt.path})"
            if not keep:
                try:
                    worktree.remove(self.wt.repo, self.wt.path)
                except worktree.GitError as exc:
                    log.warning("worker %s: cannot remove %s: %s", d.id, self.wt.path, exc)
        self.verdict = Verdict(state, reason)
        self._release_leases()
        self._human([f"[end] {state or 'stopped'}: {reason}" + (f"; wip {wip[:12]}" if wip else "")
                     + ("; branch pushed" if pushed else "")])
        body: dict[str, Any] = {"attempt": d.attempt, "reason": reason, "telemetry": self.telemetry.compact(),
                                "pushed": pushed}
        if state is not None:
            body["state"] = state
        if self.wt is not None:
            body.update(worktree=str(self.wt.path), branch=self.wt.branch)
        if wip:
            body["wip_commit"] = wip
        if changed is not None:
            body["changed_files"] = changed
        if not self.running_reported and self.freshness_notes:  # ended before its first report: still tell
            body["freshness"] = self.freshness_notes
        self._deliver(body, parked=keep and state in ("stuck", "needs_input"))

    def _end_early(self, verdict: Verdict) -> None:
        """Report an attempt that never ran claude; release what was taken, remove a fresh worktree."""
        self.verdict = verdict
        log.warning("worker %s: %s", self.d.id, verdict.reason)
        self._release_leases()
        parked = bool(self.d.resume and self.wt is not None and not self.stale)
        if self.wt is not None and not parked:
            try:
                worktree.save_work(self.wt.path, f"wip: assignment {self.d.id} (claude did not run)",
                                   on_branch=True, machine=self.ctx.machine)
                worktree.remove(self.wt.repo, self.wt.path)
            except worktree.GitError as exc:  # kept, and the record says so: a later restart saves it again
                log.warning("worker %s: worktree %s kept: %s", self.d.id, self.wt.path, exc)
        self._human([f"[end] {verdict.state}: {verdict.reason}"])
        body: dict[str, Any] = {"attempt": self.d.attempt, "state": verdict.state, "reason": verdict.reason}
        if not self.running_reported and self.freshness_notes:  # ended before its first report: still tell
            body["freshness"] = self.freshness_notes
        self._deliver(body, parked=parked)

    def _crash(self, exc: BaseException) -> None:
        if self.pgid is not None and self._alive():
            self._signal(signal.SIGTERM)
        self._release_leases()
        self.verdict = Verdict("failed", f"host_error: {type(exc).__name__}: {exc}")
        self._deliver({"attempt": self.d.attempt, "state": "failed", "reason": self.verdict.reason}, parked=False,
                      keep_worktree=True)

    def _release_leases(self) -> None:
        if self.link is not None:
            for lease_id in self.leases:
                self.link.release(lease_id)
            self.leases = []
            self.link.close()
            self.link = None

    def _deliver(self, body: dict[str, Any], parked: bool, keep_worktree: bool = False) -> None:
        """Send the final report until the hub has it (or says the attempt is stale); keep it in the state file
        meanwhile, so a host that dies now still delivers it after a restart."""
        d = self.d
        self._record(phase="parked" if parked else "finishing", pending=None if self.stale else body)
        delay = 0.5
        while not self.stale:
            try:
                self._send(body)
                break
            except Refused as exc:
                minimal: dict[str, Any] = {k: body[k] for k in ("attempt", "state", "reason") if k in body}
                if isinstance(exc, Stale) or exc.status == 404 or body == minimal:
                    log.info("worker %s: final report not taken: %s", d.id, exc)
                    break
                log.warning("worker %s: final report refused (%s); sending its state and reason alone", d.id, exc)
                body = minimal
            except Unreachable as exc:
                if self.ctx.stopping.is_set():
                    log.warning("worker %s: hub unreachable (%s); the report waits in %s", d.id, exc,
                                self.ctx.state.path)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 15.0)
        self._maybe_push_log(time.time(), force=True)
        if parked:
            self._record(phase="parked", pending=None, pid=None, pgid=None)
        elif keep_worktree:
            self._record(phase="orphaned", pending=None, pid=None, pgid=None)
        else:
            self.ctx.state.drop(d.id)

    # -- state file ------------------------------------------------------------------------

    def _record(self, **fields: Any) -> None:
        self.ctx.state.put(self.d.id, attempt=self.d.attempt, payload=self.d.raw, **fields)

    def _restore(self, rec: dict[str, Any]) -> None:
        """Load what a previous host process recorded (re-attach)."""
        repo = Path(rec["repo_path"]) if rec.get("repo_path") else self.ctx.repos.get(self.d.repo)
        if rec.get("worktree") and repo is not None and rec.get("base"):
            self.wt = worktree.Worktree(repo, Path(rec["worktree"]), rec.get("branch") or self.d.branch, rec["base"])
        self.session_id = rec.get("session_id") or self.session_id
        self.pid, self.pgid, self.ticks = rec.get("pid"), rec.get("pgid"), rec.get("start_ticks")
        if rec.get("raw_log"):
            self.raw_path = Path(rec["raw_log"])
        self.raw_offset = int(rec.get("raw_offset") or 0)
        self.human_pushed = int(rec.get("human_pushed") or 0)
        self.hub_log_size = rec.get("hub_log_size") if isinstance(rec.get("hub_log_size"), int) else None
        if isinstance(rec.get("telemetry"), dict):
            self.telemetry = Telemetry.restore(rec["telemetry"])
            self.parser = Parser(self.telemetry)
        self.leases = [str(x) for x in rec.get("leases") or []]
        if self.leases and self.d.worker_token:
            self.link = WorkerLink(self.ctx.worker_settings(self.d))
        self.started_at = float(rec.get("started_at") or time.time())
        self.last_output_at = time.time()
        self.first_output_at = time.time() if self.raw_offset else None
        self.running_reported = True
        if not self.raw_path.exists():
            self.raw_path.parent.mkdir(parents=True, exist_ok=True)
            self.raw_path.touch()


def _tail(path: Path, limit: int = 300) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return " ".join(text.split())[-limit:]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100]
