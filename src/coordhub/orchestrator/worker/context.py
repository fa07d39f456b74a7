"""What the workers of one host share (:class:`Context` and its :class:`Limits`), and :class:`EndEarly`.

The host builds one :class:`Context` and hands it to every worker. It replaces
``limits`` when the hub's configuration changes, so a worker reads
``ctx.limits`` each time it needs one, never a copy taken at its start.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from coordhub.client.settings import ClientSettings
from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.hoststate import HostState
from coordhub.orchestrator.link import HubLink
from coordhub.orchestrator.outcome import Verdict

RAW_LOG_BYTES = 512 << 20  # the most claude's stdout (the raw log) may hold on the host's disk
STDERR_LOG_BYTES = 64 << 20  # the same for its stderr


@dataclass(frozen=True)
class Limits:
    """The host's watchdogs and pacing, in seconds (``budget_margin``: a factor of the budget), and the bounds of
    a worker's output files on disk, in bytes (``raw_log_bytes``, ``stderr_log_bytes``: past one the host ends
    the attempt, :class:`~.supervisor.Supervisor`)."""

    wall_clock: float = 3600.0
    first_output: float = 300.0
    silence: float = 900.0
    linger: float = 30.0
    stop_grace: float = 10.0
    budget_margin: float = 1.1
    report_every: float = 2.0
    log_every: float = 1.0
    tick: float = 0.2
    raw_log_bytes: int = RAW_LOG_BYTES
    stderr_log_bytes: int = STDERR_LOG_BYTES


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


class EndEarly(Exception):
    """The worker ends before (or without) running claude; ``verdict`` is what gets reported."""

    def __init__(self, state: str | None, reason: str) -> None:
        super().__init__(reason)
        self.verdict = Verdict(state, reason)
