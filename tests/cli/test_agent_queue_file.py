"""``coord agent`` with a softfail queue file that cannot be used exits 1 with the file's problem, as every other
command does (f4e1753): its first call to the hub drains the queue, and the ``QueueUnusable`` it raised was taken
for a credential error (exit 6, documented as a missing or refused credential)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.coordcli import isolated_env


def test_agent_with_an_unusable_queue_file_exits_1_naming_it(tmp_path: Path) -> None:
    queue = tmp_path / "queue.jsonl"
    os.symlink("/dev/zero", queue)  # not a regular file of this user's: never read
    p = subprocess.run([sys.executable, "-m", "coordhub", "--url", "http://127.0.0.1:1", "--token", "t0k3n",
                        "--queue-file", str(queue), "agent", "--machine", "m1", "--state-dir",
                        str(tmp_path / "state")], capture_output=True, text=True, env=isolated_env(tmp_path),
                       cwd=tmp_path, timeout=120)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert str(queue) in p.stderr and "softfail queue" in p.stderr
