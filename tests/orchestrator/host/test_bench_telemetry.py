"""Benchmark (issue 11, closing note): hub CPU per running worker's telemetry, 20 fake workers streaming.

One real ``coord serve`` (SQLite, durable commits), one ``coord agent`` with 20 slots, 20 fake workers each
making a tool call every 0.5 s for minutes (so telemetry changes all the time and the human log grows). The
hub's CPU time (``/proc/<pid>/stat`` utime + stime) is measured over 30 s with the 20 streaming, and over 10 s
with the host only heartbeating; the difference divided by 20 is the figure. Prints one JSON line; asserts
nothing about time (the machine is shared). Run: ``pytest -m slow -s tests/orchestrator/host/test_bench_telemetry.py``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx2
import pytest

from tests.conftest import LiveHub
from tests.orchestrator.host.conftest import make_repo
from tests.orchestrator.host.test_agent_e2e import API, Fleet

WORKERS = 20


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rate(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.time()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.time() - t0)


@pytest.mark.slow
def test_hub_cpu_per_streaming_worker(tmp_path: Path, claude_bin: Path) -> None:
    hub = LiveHub(tmp_path / "hub").start()
    try:
        fleet = Fleet(hub, tmp_path, claude_bin, make_repo(tmp_path, "app"), ["m1"])
        fleet.configure(max_workers=WORKERS, heartbeat_seconds=5.0, stale_threshold=3)
        agent = fleet.start("m1", "--slots", str(WORKERS))
        assert hub.proc is not None
        time.sleep(5)
        idle = rate(hub.proc.pid, 10)
        ids = [fleet.assign(n, "fake: max_turns turns=1000 step=0.5", machine="m1") for n in range(1, WORKERS + 1)]
        deadline = time.time() + 180
        while sum(fleet.get(a)["state"] == "running" for a in ids) < WORKERS:
            assert time.time() < deadline, "the workers did not all start"
            time.sleep(1)
        time.sleep(3)
        a0, t0 = cpu_seconds(agent.proc.pid), time.time()
        busy = rate(hub.proc.pid, 30)
        agent_cpu = (cpu_seconds(agent.proc.pid) - a0) / (time.time() - t0)
        turns = sum(fleet.get(a)["turns"] or 0 for a in ids)
        result = {"workers": WORKERS, "hub_cpu_idle": round(idle, 4), "hub_cpu_streaming": round(busy, 4),
                  "hub_cpu_per_worker": round((busy - idle) / WORKERS, 5), "agent_cpu": round(agent_cpu, 4),
                  "agent_cpu_per_worker": round(agent_cpu / WORKERS, 5), "turns_reported": turns,
                  "load_average": os.getloadavg()[0]}
        print(json.dumps(result))
        assert busy > 0 and turns > WORKERS
        for a in ids:
            httpx2.post(hub.url + f"{API}/assignments/{a}/stop", headers=fleet.admin)
        assert agent.stop() == 0
    finally:
        hub.stop()
