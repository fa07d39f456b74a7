"""A smoke test on the host: the repo's command on the branch under test, in a fresh worktree (issue 12 point 2).

Seed 003 let a Claude worker run the tests and took *Claude's* exit code for
the verdict, and a name clash hid the smoke command. Here the host runs the
command itself — ``/bin/sh -c <command>`` in a detached worktree of
``origin/<branch>``, in its own process group, with the worker's allowlisted
environment (never the host's token), killed at ``timeout_seconds`` — and
reports the command's own exit code with the tail of its output. The hub
turns the exit code into the verdict.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

TAIL_BYTES = 8000
TIMEOUT_EXIT = 124  # what timeout(1) exits with: the verdict of a test that ran out of time


@dataclass(frozen=True)
class Outcome:
    """How a command ended: ``exit_code`` (negative: killed by that signal), the output's tail, why it was killed."""

    exit_code: int
    tail: str
    killed: str | None = None
    seconds: float = 0.0


def tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a file as text (invalid UTF-8 replaced); empty when it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def stdin_of(text: str | None) -> IO[bytes] | int:
    """What a child's stdin is: ``text`` in an unnamed temporary file (read from its start), or nothing
    (``subprocess.DEVNULL``) when None.

    A prompt goes to ``claude -p`` on stdin, not in its argv: any user of the
    machine may read a process's command line (``/proc/<pid>/cmdline``), and
    a prompt carries the issue, the briefing and the diff. A file, not a
    pipe: nothing waits for the child to read it, and it ends at once.
    """
    if text is None:
        return subprocess.DEVNULL
    f = tempfile.TemporaryFile()
    f.write(text.encode("utf-8", errors="replace"))
    f.seek(0)
    return f


def run_command(command: str | list[str], cwd: Path, env: dict[str, str], timeout: float, out_path: Path,
                stop: threading.Event, grace: float = 5.0, err_path: Path | None = None,
                stdin_text: str | None = None) -> Outcome:
    """Run ``command`` (a shell line for ``/bin/sh -c``, or an argv) until it exits, ``timeout`` seconds pass, or
    ``stop`` is set.

    ``stdin_text`` is its standard input (:func:`stdin_of`; none by default).
    Output goes to ``out_path`` (stderr too, interleaved, unless ``err_path``). A timeout or
    a stop sends SIGTERM to the process group, then SIGKILL after ``grace``;
    a timeout's exit code is :data:`TIMEOUT_EXIT`.
    """
    started = time.monotonic()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    args = ["/bin/sh", "-c", command] if isinstance(command, str) else command
    stdin = stdin_of(stdin_text)
    try:
        with open(out_path, "wb") as out, open(err_path or os.devnull, "wb") as err:
            proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=stdin, stdout=out,
                                    stderr=err if err_path else subprocess.STDOUT, start_new_session=True)
    finally:
        if not isinstance(stdin, int):
            stdin.close()
    killed: str | None = None
    sent: float | None = None
    while proc.poll() is None:
        now = time.monotonic()
        if killed is None and (now - started > timeout or stop.is_set()):
            killed = "timeout" if now - started > timeout else "stopped"
            _killpg(proc.pid, signal.SIGTERM)
            sent = now
        elif sent is not None and now - sent > grace:
            _killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.05)
    _killpg(proc.pid, signal.SIGKILL)  # what the command left running in its group
    code = TIMEOUT_EXIT if killed == "timeout" else int(proc.returncode)
    text = tail(out_path)
    if killed == "timeout":
        text += f"\n[coordhub] killed after {timeout:g} s (smoke_tests.timeout_seconds)\n"
    return Outcome(code, text[-TAIL_BYTES:], killed, round(time.monotonic() - started, 3))


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
