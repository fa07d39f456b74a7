"""A command against a hung hub takes about its ``--timeout``, a queue drain before it included.

Review: the drain of the softfail queue that runs before a command asked the hub's ``/health`` (how long it keeps
idempotency keys) and replayed the queued write, each with a whole ``--timeout``, before the command's own request
had one more: against a hub that accepts connections and never answers, a read took three times its timeout. The
drain now shares the command's time budget. Real ``coord`` subprocesses against a real listening socket that
never answers; times are checked with generous slack only.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.coordcli import hung_hub, isolated_env

TIMEOUT = 3.0  # seconds: --timeout of every run here (1.8 × of it leaves room for a loaded machine's start-up)
TODO = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def _coord(tmp_path: Path, url: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "coordhub", "--timeout", str(TIMEOUT), *args], cwd=tmp_path,
                       env=isolated_env(tmp_path, COORD_URL=url, COORD_TOKEN="coord_x"), capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    return p, time.monotonic() - started


def _settle(accepted: list[socket.socket], count: int, wait: float = 5.0) -> int:
    """How many connections the server accepted, waiting up to ``wait`` seconds for the accept thread to see
    ``count`` (the runs are over: anything they connected is in the listen queue already)."""
    deadline = time.monotonic() + wait
    while len(accepted) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(accepted)


def test_a_write_after_a_queued_one_takes_one_timeout_and_one_connection(tmp_path: Path) -> None:
    with hung_hub() as (url, accepted):
        first, _ = _coord(tmp_path, url, "todo", "done", TODO)
        assert first.returncode == 0 and "queued" in first.stdout and "(1 pending)" in first.stdout, first
        assert _settle(accepted, 1) == 1
        second, elapsed = _coord(tmp_path, url, "todo", "done", TODO)
        assert second.returncode == 0 and "(2 pending)" in second.stdout, second  # queued behind the first
        assert elapsed < 1.8 * TIMEOUT, (elapsed, second)
        assert _settle(accepted, 3, wait=1.0) == 2, "the drain asked the hung hub more than once"


def test_a_read_after_a_queued_write_takes_one_timeout_and_one_connection(tmp_path: Path) -> None:
    with hung_hub() as (url, accepted):
        first, _ = _coord(tmp_path, url, "todo", "done", TODO)
        assert first.returncode == 0 and "queued" in first.stdout, first
        assert _settle(accepted, 1) == 1
        read, elapsed = _coord(tmp_path, url, "todo", "list")
        assert read.returncode == 3 and "did not answer" in read.stderr, read
        assert elapsed < 1.8 * TIMEOUT, (elapsed, read)
        assert _settle(accepted, 3, wait=1.0) == 2, "the drain and the read asked the hung hub more than once"
