"""The Python client example in docs/cli.md runs as written against a real hub (review: the client had no doc)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import LiveHub
from tests.coordcli import isolated_env

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_the_documented_example_runs(live_hub: LiveHub, tmp_path: Path) -> None:
    [code] = re.findall(r"## The Python client\n.*?```python\n(.*?)```", DOC.read_text(), flags=re.S)
    recipient = live_hub.token("HOWARD-HOME/claude-main")  # known to the hub, so the send finds it
    assert recipient
    env = isolated_env(tmp_path, COORD_URL=live_hub.url, COORD_TOKEN=live_hub.token("DESKTOP-0O8A1RL/claude-main"))
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert "queued" not in run.stdout and "hub down" not in run.stdout, run.stdout
