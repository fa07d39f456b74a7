"""A real hub under attack: started with resource limits, watched from outside.

:class:`Hub` is a ``coord serve`` subprocess (optionally under a descriptor
limit, as ``ulimit -n`` would set it); :class:`HealthWatch` asks ``/health`` on
a fresh connection every few tenths of a second while an attack runs, so an
attack that fills the accept queue or the descriptor table shows up; RSS and
open descriptors are read from ``/proc``. Bounds asserted on them are
generous (an answer within seconds, memory in hundreds of MiB): the machine
is shared and noisy, and the attacks these tests replay took minutes and
gigabytes before the fixes.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import LiveHub

HEALTH_TIMEOUT = 5.0  # seconds: "answered at all", not a latency target


class Hub(LiveHub):
    """``coord serve`` with ``nofile`` as its soft and hard descriptor limit (None: inherited)."""

    def __init__(self, data_dir: Path, args: tuple[str, ...] = (), nofile: int | None = None) -> None:
        super().__init__(data_dir, args=args)
        self.nofile = nofile

    def start(self, wait: bool = True) -> Hub:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "coordhub", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir),
               "--sweep-seconds", "0.5", "--rate-limit", "0", *self.args]
        nofile = self.nofile

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, preexec_fn=limit)
        if wait:
            self.wait_ready()
        return self

    def _status(self, key: str) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == key:
                return int(value.split()[0])
        return 0

    def rss_mib(self) -> float:
        """Resident memory now, MiB."""
        return self._status("VmRSS") / 1024

    def peak_rss_mib(self) -> float:
        """Peak resident memory so far, MiB."""
        return self._status("VmHWM") / 1024

    def open_fds(self) -> int:
        """Descriptors the hub holds now."""
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


class HealthWatch:
    """Samples ``GET /health`` on a new connection every ``every`` seconds in a thread, plus the hub's RSS."""

    def __init__(self, hub: Hub, every: float = 0.25) -> None:
        self.hub = hub
        self.every = every
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.peak_rss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=HEALTH_TIMEOUT + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                r = httpx2.get(self.hub.url + "/health", timeout=HEALTH_TIMEOUT)
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    self.latencies.append(time.monotonic() - start)
            except httpx2.HTTPError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self.peak_rss = max(self.peak_rss, self.hub.rss_mib())
            self._stop.wait(max(0.0, self.every - (time.monotonic() - start)))

    def assert_answered(self) -> None:
        """Every sample answered 200 within :data:`HEALTH_TIMEOUT`, and there were samples."""
        assert not self.failures, (len(self.failures), self.failures[:5], self.hub.log.read_text()[-2000:])
        assert self.latencies, "no /health sample completed"

    def summary(self) -> str:
        """Samples, worst and median latency (ms) and peak RSS, for the test log and docs/benchmarks.md."""
        ms = sorted(x * 1000 for x in self.latencies)
        mid = ms[len(ms) // 2] if ms else float("nan")
        return (f"/health: {len(ms)} samples, p50 {mid:.1f} ms, max {ms[-1] if ms else float('nan'):.1f} ms, "
                f"{len(self.failures)} failures; peak RSS {self.peak_rss:.0f} MiB")


@pytest.fixture
def start_hub(tmp_path: Path) -> Iterator[Callable[..., Hub]]:
    """Start hubs with ``start_hub(args=…, nofile=…)``; all are stopped after the test."""
    started: list[Hub] = []

    def make(args: tuple[str, ...] = (), nofile: int | None = None) -> Hub:
        h = Hub(tmp_path / f"hub{len(started)}", args=args, nofile=nofile).start()
        started.append(h)
        return h

    yield make
    for h in started:
        h.stop()
