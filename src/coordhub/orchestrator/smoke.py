"""A smoke test on the host: the repo's command on the branch under test, in a fresh worktree (issue 12 point 2).

Seed 003 let a Claude worker run the tests and took *Claude's* exit code for
the verdict, and a name clash hid the smoke command. Here the host runs the
command itself — ``/bin/sh -c <command>`` in a detached worktree of
``origin/<branch>``, in its own process group, with the worker's allowlisted
environment (never the host's token), killed at ``timeout_seconds`` — and
reports the command's own exit code with the tail of its output. The hub
turns the exit code into the verdict.

What it prints comes to the host through a pipe, and the host writes it to
the output file, bounded (:data:`OUTPUT_LIMIT`, :class:`_Capped`): a command
that prints without end until its timeout cannot fill the host's disk. The
files the command writes itself are not limited (no ``RLIMIT_FSIZE``, which
would cap a test suite's own files too).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

TAIL_BYTES = 8000
TIMEOUT_EXIT = 124  # what timeout(1) exits with: the verdict of a test that ran out of time
OUTPUT_LIMIT = 64 << 20  # bytes one output file of a command may take on disk (see _Capped)
# bytes of an output's end kept past the limit: over review.MAX_RESULT_LINE (4 MiB), so a reviewer's last
# result line survives; held in memory until the command ends
OUTPUT_TAIL_KEEP = 8 << 20
DRAIN_SECONDS = 2.0  # how long output is still read after the command's main process exited
READ_BYTES = 1 << 16  # one read from a pipe: a Linux pipe's default capacity


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
                stdin_text: str | None = None, limit: int = OUTPUT_LIMIT, drain: float = DRAIN_SECONDS) -> Outcome:
    """Run ``command`` (a shell line for ``/bin/sh -c``, or an argv) until it exits, ``timeout`` seconds pass, or
    ``stop`` is set.

    ``stdin_text`` is its standard input (:func:`stdin_of`; none by default).
    Output goes to ``out_path`` (stderr too, interleaved, unless ``err_path``), each file at most ``limit``
    bytes plus a marker line (:class:`_Capped`; ``limit`` at least ``2 * TAIL_BYTES``, else ValueError). The
    files are opened as ``open(path, "wb")`` opens them: a new one gets ``0o666 & ~umask``, an existing one
    (the gate's ``mkstemp``, 0600) keeps its mode. A timeout or a stop sends SIGTERM to the process group,
    then SIGKILL after ``grace``; a timeout's exit code is :data:`TIMEOUT_EXIT`. When the command's main
    process has exited, what it left in its group is killed and its output read until the pipes close, for
    at most ``drain`` seconds: a process that left the group (``setsid``) and holds a pipe cannot keep the
    host waiting, and once the host closes its end it writes nowhere.
    """
    if limit < 2 * TAIL_BYTES:
        raise ValueError(f"an output limit of {limit} bytes cannot hold a tail of {TAIL_BYTES}")
    started = time.monotonic()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    args = ["/bin/sh", "-c", command] if isinstance(command, str) else command
    keep = min(OUTPUT_TAIL_KEEP, limit // 2)
    with contextlib.ExitStack() as files:
        sinks = [_Capped(files.enter_context(open(path, "wb", buffering=0)).fileno(), limit, keep)
                 for path in (out_path, err_path) if path is not None]
        stdin = stdin_of(stdin_text)
        try:
            proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE if err_path else subprocess.STDOUT,
                                    start_new_session=True)
        finally:
            if not isinstance(stdin, int):
                stdin.close()
        pipes = [pipe for pipe in (proc.stdout, proc.stderr) if pipe is not None]
        try:
            killed = _follow(proc, {pipe.fileno(): sink for pipe, sink in zip(pipes, sinks, strict=True)}, started,
                             timeout, stop, grace, drain)
        finally:
            if proc.returncode is None:  # the host failed while it ran: nothing of it outlives this call
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            for pipe in pipes:
                pipe.close()
            for sink in sinks:
                sink.close()
    code = TIMEOUT_EXIT if killed == "timeout" else int(proc.returncode)
    text = tail(out_path)
    if killed == "timeout":
        text += f"\n[coordhub] killed after {timeout:g} s (smoke_tests.timeout_seconds)\n"
    return Outcome(code, text[-TAIL_BYTES:], killed, round(time.monotonic() - started, 3))


def _follow(proc: subprocess.Popen[bytes], pipes: dict[int, _Capped], started: float, timeout: float,
            stop: threading.Event, grace: float, drain: float) -> str | None:
    """Copy each pipe (by fd) into its :class:`_Capped` until the command has exited and the pipes are closed
    (or ``drain`` seconds after it exited), killing it on a timeout or a stop (see :func:`run_command`).
    Returns why it was killed: ``"timeout"``, ``"stopped"``, or None.

    One loop both reads and watches the clock, so there is no reader thread to join or to leave behind.
    """
    killed: str | None = None
    sent: float | None = None
    exited: float | None = None
    with selectors.DefaultSelector() as selector:  # epoll: a host with over 1024 open fds is fine
        for fd, sink in pipes.items():
            selector.register(fd, selectors.EVENT_READ, sink)
        while True:
            now = time.monotonic()
            if exited is None and proc.poll() is not None:
                exited = now
                _killpg(proc.pid, signal.SIGKILL)  # what the command left running in its group
            if exited is not None:
                if not selector.get_map() or now - exited > drain:
                    return killed
            elif killed is None and (now - started > timeout or stop.is_set()):
                killed = "timeout" if now - started > timeout else "stopped"
                _killpg(proc.pid, signal.SIGTERM)
                sent = now
            elif sent is not None and now - sent > grace:
                _killpg(proc.pid, signal.SIGKILL)
            if not selector.get_map():  # the command closed its output and runs on
                time.sleep(0.05)
                continue
            for key, _ in selector.select(0.05):
                data = os.read(key.fd, READ_BYTES)
                if data:
                    key.data.write(data)
                else:
                    selector.unregister(key.fd)


class _Capped:
    """One output stream copied into its file (``fd``, open for writing at its start), at most ``limit`` bytes
    of it on disk plus one marker line.

    Up to ``limit`` bytes the file is the stream as it came, written as it
    comes. Past that nothing more is written while the command runs, and
    :meth:`close` cuts the file back to its first ``limit - keep`` bytes and
    appends the marker (how many bytes were left out) and the stream's last
    ``keep`` bytes, held in memory meanwhile (at most ``keep`` bytes and one
    read; none before offset ``limit - keep``, as no earlier byte can be
    among them). So the file's last bytes are the output's last bytes, and
    :func:`tail` reads the true end.

    Why keep going rather than kill the command at the limit: a test suite
    that logs a lot but passes would turn red, and a reviewer would be cut
    off before its result; a command that prints forever still ends at its
    timeout. A write that fails (a full disk) ends the writing, not the run:
    the command's exit code stays the verdict.
    """

    def __init__(self, fd: int, limit: int, keep: int) -> None:
        self.fd, self.limit, self.keep = fd, limit, keep
        self.seen = 0  # bytes of the stream so far
        self.last: deque[bytes] = deque()  # the stream's end, from offset limit - keep on, about keep bytes
        self.held = 0  # bytes in self.last
        self.failed = False

    def write(self, data: bytes) -> None:
        start, self.seen = self.seen, self.seen + len(data)
        if start < self.limit:
            self._put(data[:self.limit - start])
        cut = self.limit - self.keep
        if self.seen > cut:
            part = data[max(0, cut - start):]
            self.last.append(part)
            self.held += len(part)
            while self.held - len(self.last[0]) >= self.keep:
                self.held -= len(self.last.popleft())

    def close(self) -> None:
        """Put the head, the marker and the last ``keep`` bytes in the file when the stream went over."""
        if self.seen <= self.limit or self.failed:
            return
        head = self.limit - self.keep
        marker = (f"\n[coordhub] {self.seen - self.limit} bytes of output left out here: the host keeps the first "
                  f"{head} and the last {self.keep} of an output over {self.limit} bytes\n")
        try:
            os.ftruncate(self.fd, head)
            os.lseek(self.fd, head, os.SEEK_SET)
        except OSError:
            self.failed = True
        self._put(marker.encode())
        self._put(self.last.popleft()[self.held - self.keep:])  # chunk by chunk: no second copy of the end
        for chunk in self.last:
            self._put(chunk)

    def _put(self, data: bytes) -> None:
        if self.failed:
            return
        # unbuffered: the file is the output so far, as when the command wrote to it itself
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            self.failed = True


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
