"""The host's local record of its workers, so a restarted ``coord agent`` finds what the last one left.

One JSON file per machine, ``<state dir>/agent/<machine>/workers.json``
(0600 in a 0700 directory: it holds worker tokens), replaced atomically on
every change (temp file, fsync, rename: seed 003's agent shared one temp
name between threads and lost writes). Shape::

    {"machine": "laptop", "workers": {"<assignment id>": {<record>}, …}}

A record says what the host needs to recover the worker without the hub:
``attempt``, ``repo``/``repo_path``, ``worktree``, ``branch``, ``base``,
``session_id``, the process (``pid``, ``pgid``, ``start_ticks`` — the
kernel's start time, so a recycled pid is never taken for the worker), the
raw and human logs with their offsets, the parser's telemetry snapshot,
``phase`` (``preparing``, ``running``, ``finishing``, ``parked`` — a
stuck/needs-input worktree kept for ``resume-stuck``) and ``pending`` (a
final report not yet delivered).

The host directory is also the host's lock: :meth:`HostState.lock` holds an
``flock`` for the process's life, so a second ``coord agent`` for the same
machine on this box refuses to start instead of fighting over workers.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import threading
from pathlib import Path
from typing import Any

from coordhub.client import project

FILE = "workers.json"


class AlreadyRunning(Exception):
    """Another ``coord agent`` for this machine holds the host directory."""


class HostState:
    """The workers file of one machine (thread-safe)."""

    def __init__(self, directory: Path, machine: str) -> None:
        self.dir = project.private_dir(directory)
        self.path = self.dir / FILE
        self.machine = machine
        self._mutex = threading.Lock()
        self._lock_fd: int | None = None
        data = project.read_json_object(self.path)
        workers = data.get("workers")
        self._workers: dict[str, dict[str, Any]] = workers if isinstance(workers, dict) else {}

    def lock(self) -> None:
        """Take the host directory for this process; ``AlreadyRunning`` when another process has it."""
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(f"another coord agent for machine {self.machine!r} is running on this box "
                                 f"(it holds {self.dir})") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        """Let the host directory go (at exit)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def workers(self) -> dict[str, dict[str, Any]]:
        """A deep copy of every record, by assignment id."""
        with self._mutex:
            return copy.deepcopy(self._workers)

    def get(self, assignment: str) -> dict[str, Any] | None:
        """A copy of one record, or None."""
        with self._mutex:
            rec = self._workers.get(assignment)
            return copy.deepcopy(rec) if rec is not None else None

    def put(self, assignment: str, **fields: Any) -> None:
        """Create or update a record (the given fields only) and write the file."""
        with self._mutex:
            self._workers.setdefault(assignment, {}).update(copy.deepcopy(fields))
            self._write()

    def drop(self, assignment: str) -> None:
        """Forget a record (the worker is over and its report delivered)."""
        with self._mutex:
            if self._workers.pop(assignment, None) is not None:
                self._write()

    def _write(self) -> None:
        project.write_private(self.path, json.dumps({"machine": self.machine, "workers": self._workers},
                                                    indent=1, sort_keys=True))


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), or None if gone.

    With the pid it identifies a process for good: a pid reused after the
    worker died has another start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing one
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, ticks: int | None) -> bool:
    """Whether the process ``pid`` that started at ``ticks`` still runs (not a zombie, not a recycled pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):
        return False
    return ticks is None or start_ticks(pid) == ticks


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` still exists (zombies of ours included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
