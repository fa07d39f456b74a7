"""The merge gate runs the branch's own code (``make test`` at the tip): it gets a worker's environment, not the host's.

A host with capability ``github`` holds GitHub credentials (``GH_TOKEN``) for
its own ``gh`` calls; the gate's commands are whatever the branch under merge
says (a prompt-injected worker wrote them, or anyone who could push to it).
With the host's environment they could read the token and push to the target
branch directly, past every gate. So the gate gets the allowlist smoke tests
get (``coordhub.orchestrator.environment.worker_env``), and ``gh`` keeps its own.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from coordhub.orchestrator.merging import MergeRunner


def test_the_gate_sees_no_github_or_hub_credential(tmp_path: Path) -> None:
    host_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GH_TOKEN": "ghs_hostsecret",
                "GITHUB_TOKEN": "ghs_hostsecret2", "COORD_TOKEN": "coord_hostsecret", "AWS_SECRET_ACCESS_KEY": "x",
                "LANG": "C.UTF-8"}
    runner = MergeRunner(None, "laptop", lambda: {}, tmp_path, host_env, threading.Event(),  # type: ignore[arg-type]
                         lambda: 1)
    seen = tmp_path / "seen.env"
    assert runner._gate({"batch_id": "c1c2c3c4", "gate_command": f"env > {seen}"}, tmp_path) is None
    env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert "GH_TOKEN" not in env and "GITHUB_TOKEN" not in env and "COORD_TOKEN" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env and env["HOME"] == str(tmp_path)
    assert runner.env["GH_TOKEN"] == "ghs_hostsecret"  # gh itself still has it
