"""The ``claude`` process of one attempt: its command line and environment, its start, the host's signals.

Step 2 of a worker (:mod:`coordhub.orchestrator.worker`): claude runs in the
worktree, in its own session and process group (so one signal reaches the
tools it started too), its stdout appended to the raw log on the host.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from coordhub.core.assignments import MAX_FILES_LIKELY_BYTES
from coordhub.hooks.settings import MAX_HALT_WAIT
from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.environment import worker_env
from coordhub.orchestrator.hoststate import process_alive, start_ticks
from coordhub.orchestrator.smoke import stdin_of
from coordhub.orchestrator.worker.context import Context, EndEarly
from coordhub.orchestrator.worker.reports import HumanLog
from coordhub.orchestrator.worker.watchdog import Clock


def environment(ctx: Context, d: Dispatch) -> dict[str, str]:
    """claude's environment: the host's allowlisted variables plus the worker's identity (``COORD_*``)."""
    identity = {"COORD_URL": ctx.hub_settings.url, "COORD_SESSION": d.worker_session,
                "COORD_PROJECT": d.repo, "COORD_ASSIGNMENT": d.id,
                # an edit caught between a halt and this host's SIGSTOP waits for the resume (hooks/edits.py)
                "COORD_HOOK_HALT_WAIT": f"{MAX_HALT_WAIT:g}"}
    if d.worker_token:
        identity["COORD_TOKEN"] = d.worker_token
    return worker_env(ctx.host_env, identity, ctx.pass_env)


def argv(d: Dispatch, claude: str, session_id: str, settings_file: Path) -> list[str]:
    """The ``claude`` command line.

    A new session's prompt goes on stdin (:func:`stdin_prompt`): any user of
    the machine may read a command line. A resumed one's guidance stays an
    argument, right after ``-p`` (the CLI's tool-list options are variadic
    and would swallow it later): piping a resume's guidance once hung the CLI
    (docs/orchestrator.md).
    """
    cmd = [claude, "-p", *([prompt(d)] if d.resume else []), "--output-format", "stream-json", "--verbose"]
    cmd += ["--resume", session_id] if d.resume else ["--session-id", session_id]
    if d.model:
        cmd += ["--model", d.model]
    cmd += ["--permission-mode", d.permission_mode]
    if d.allowed_tools:
        cmd += ["--allowedTools", ",".join(d.allowed_tools)]
    denied = ["AskUserQuestion", "Bash(git push *)", *(t for t in d.disallowed_tools
                                                        if t not in ("AskUserQuestion", "Bash(git push *)"))]
    cmd += ["--disallowedTools", ",".join(denied)]
    cmd += ["--append-system-prompt", system_prompt(d), "--settings", str(settings_file)]
    if d.budget_usd:
        cmd += ["--max-budget-usd", f"{d.budget_usd:g}"]
    if d.max_turns:
        cmd += ["--max-turns", str(d.max_turns)]
    return cmd


def stdin_prompt(d: Dispatch) -> str | None:
    """What claude reads on stdin: a new session's prompt; None (nothing) for a resume, whose guidance is in argv."""
    return None if d.resume else prompt(d)


def prompt(d: Dispatch) -> str:
    """The prompt: the issue and its briefing, or the coordinator's guidance for a resumed session."""
    if d.resume:
        return f"Guidance from the coordinator for assignment {d.id} (issue #{d.issue}):\n\n{d.resume.guidance}"
    title = f": {d.title}" if d.title else ""
    return f"Issue #{d.issue} of {d.repo}{title}.\n\n{d.briefing}".rstrip() + "\n"


def system_prompt(d: Dispatch) -> str:
    """What is appended to claude's system prompt: the worker's rules (one worktree, commit, STATUS/STUCK lines)."""
    files = _listed(d.files_likely) or "none named"
    return (
        f"You are a headless worker started by coordhub's `coord agent` for assignment {d.id}: issue #{d.issue} "
        f"of {d.repo}, on branch {d.branch} in this git worktree. Work only in this worktree. Commit your work "
        "with git before you finish; the host pushes the branch (do not push, do not open pull requests). "
        "Report progress on lines starting with `STATUS: `. If you cannot go on, write a line `STUCK: <why>` "
        "and stop. If you need a decision, end your final message with the question. "
        f"Files leased for you: {files}. An edit refused by a hook names the session that holds the file: "
        "do not work around it; say STUCK.")


def _listed(files: Sequence[str], budget: int = MAX_FILES_LIKELY_BYTES) -> str:
    """``files`` joined by commas, cut to about ``budget`` UTF-8 bytes with the count left out named: the list goes
    into one argument of claude's command line, and Linux refuses any argument over 128 KiB (``E2BIG``), which
    would fail every attempt of the assignment (a hub before the 16 KiB bound took up to 200 KiB)."""
    shown: list[str] = []
    used = 0
    for name in files:
        used += len(name.encode()) + 2
        if used > budget:
            return ", ".join(shown) + f" and {len(files) - len(shown)} more"
        shown.append(name)
    return ", ".join(shown)


class ClaudeProcess:
    """claude's process group: started here (:meth:`spawn`) or recorded by a previous host process (:meth:`restore`).

    ``pid`` is claude's and ``pgid`` its group's (the same number: claude leads
    a new session); ``ticks`` is its start time, so a recycled pid is never
    taken for it. ``exit_code`` is known only for a child of this host
    process, once it ended (None otherwise). While claude runs, the process
    holds ``session_lock``, the lock of its Claude session
    (:meth:`Context.session_lock`), until :meth:`release_session`.

    The host's signals (:meth:`pause`, :meth:`unpause`, :meth:`kill`) may come
    from any thread; each is noted in the human log, and a pause is kept
    apart on ``clock``. ``kill_reason``/``kill_detail`` say why the host
    ended it (the first reason given), ``kill_sent`` when it sent SIGTERM.
    """

    def __init__(self, clock: Clock, human: HumanLog) -> None:
        self.clock, self.human = clock, human
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.pgid: int | None = None
        self.ticks: int | None = None
        self.exit_code: int | None = None
        self.session_lock: threading.Lock | None = None
        self.kill_reason: str | None = None
        self.kill_detail = ""
        self.kill_sent: float | None = None
        self._sig_lock = threading.Lock()

    def spawn(self, argv: list[str], cwd: Path, env: Mapping[str, str], stdout: Path, stderr: Path,
              session: threading.Lock, session_id: str, stdin_text: str | None = None) -> int:
        """Start ``argv`` in a new session, output appended to the files ``stdout`` and ``stderr``, ``stdin_text``
        on its stdin (:func:`~coordhub.orchestrator.smoke.stdin_of`).

        Returns the size ``stdout`` had: where this run's output begins. Waits
        up to 60 s for ``session`` (the lock of Claude session ``session_id``):
        ``EndEarly`` ``session_busy`` when another run of it does not end,
        ``claude_missing`` when ``argv[0]`` cannot be run (the lock is let go).
        """
        if not session.acquire(timeout=60):
            raise EndEarly("failed", f"session_busy: another run of session {session_id} did not end")
        self.session_lock = session
        stdin = stdin_of(stdin_text)
        with open(stdout, "ab") as out, open(stderr, "ab") as err:
            offset = out.tell()
            try:
                self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin,
                                             stdout=out, stderr=err, start_new_session=True)
            except OSError as exc:
                self.release_session()
                raise EndEarly("failed", f"claude_missing: cannot run {argv[0]}: {exc.strerror}") from None
            finally:
                if not isinstance(stdin, int):
                    stdin.close()
        self.pid = self.pgid = self.proc.pid
        self.ticks = start_ticks(self.pid)
        return offset

    def release_session(self) -> None:
        """Let the Claude session's lock go (a next run of the session may start); nothing if not held."""
        if self.session_lock is not None:
            self.session_lock.release()
            self.session_lock = None

    def restore(self, rec: dict[str, Any]) -> None:
        """Take the process a previous host process recorded (``pid``, ``pgid``, ``start_ticks``; any may be None)."""
        self.pid, self.pgid, self.ticks = rec.get("pid"), rec.get("pgid"), rec.get("start_ticks")

    def alive(self) -> bool:
        """Whether claude still runs; for a child of ours, its exit status is kept in ``exit_code`` once it ended."""
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return True
            self.exit_code = code
            return False
        return self.pid is not None and process_alive(self.pid, self.ticks)

    def signal(self, sig: int) -> bool:
        """Send ``sig`` to the whole process group; False when there is none (not started, gone, not ours)."""
        if self.pgid is None:
            return False
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def pause(self) -> bool:
        """SIGSTOP the process group (a halt), unless it is not running or being ended; its clock stops.

        Returns whether this call stopped it: False when it was paused already, has no process yet (one being
        re-attached after a restart, until it is taken over) or is being ended."""
        with self._sig_lock:
            if not self.clock.paused and self.pgid is not None and self.kill_sent is None:
                if self.signal(signal.SIGSTOP):
                    self.clock.pause(time.time())
                    self.human.write(["[halt] paused (SIGSTOP)"])
                    return True
            return False

    def unpause(self) -> None:
        """SIGCONT a paused process group; the paused time counts neither as run time nor as silence."""
        with self._sig_lock:
            if self.clock.paused:
                self.signal(signal.SIGCONT)
                self.clock.resume(time.time())
                self.human.write(["[halt] resumed (SIGCONT)"])

    def kill(self, reason: str, detail: str) -> None:
        """End claude with SIGTERM, once (the caller sends SIGKILL after the grace); the first reason is kept."""
        with self._sig_lock:
            if self.kill_reason is None:
                self.kill_reason, self.kill_detail = reason, detail
            if self.kill_sent is not None or self.pgid is None:
                return
            self.human.write([f"[kill] {reason}: {detail}"])
            if self.clock.paused:
                self.signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.signal(signal.SIGTERM)
            self.kill_sent = time.time()


def tail(path: Path, limit: int = 300) -> str:
    """The last ``limit`` characters of a file (claude's stderr), whitespace collapsed; ``""`` if unreadable."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return " ".join(text.split())[-limit:]
