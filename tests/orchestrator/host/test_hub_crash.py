"""kill -9 of the hub while real ``coord agent`` hosts run fake ``claude`` workers: after its restart nothing is
lost and nothing runs twice (issue 11, "Show it")."""

from __future__ import annotations

import signal
import time

import httpx2
import pytest

from tests.orchestrator.host.test_agent_e2e import API, ENDED, Fleet, fleet  # noqa: E402,F401


@pytest.mark.slow
def test_kill_9_of_the_hub_mid_dispatch_loses_nothing_and_runs_nothing_twice(fleet: Fleet) -> None:  # noqa: F811
    fleet.configure(stagger_seconds=0.5)  # a dispatch every half second: the kill lands among them
    agents = [fleet.start("m1"), fleet.start("m2")]
    deadline = time.time() + 60
    while True:  # both hosts up before the kill: one whose first call finds the hub gone exits 3, as it should
        machines = httpx2.get(fleet.hub.url + f"{API}/status", headers=fleet.admin).json()["machines"]
        if {m["machine"]: m["state"] for m in machines} == {"m1": "online", "m2": "online"}:
            break
        assert time.time() < deadline, machines
        time.sleep(0.1)
    ids = [fleet.assign(n, "fake: slow work=2 beat=0.2") for n in range(1, 7)]
    fleet.wait(ids[0], lambda a: a["state"] == "running")
    assert fleet.hub.stop(signal.SIGKILL) == -signal.SIGKILL
    time.sleep(1.0)  # the hosts find the hub gone and keep their workers going
    fleet.hub.start()
    finals = [fleet.wait(aid, lambda a: a["state"] in ENDED, timeout=180) for aid in ids]
    assert [a["state"] for a in finals] == ["done"] * 6, [(a["id"], a["reason"]) for a in finals]
    runs = fleet.runs()
    ran = sorted(r["cwd"].rsplit("/", 1)[-1] for r in runs)
    assert ran == sorted(ids), ran  # every issue's claude ran exactly once
    lost = [a for a in finals if any(t["state"] == "lost" for t in a["attempts"])]
    assert all(len(a["attempts"]) == 2 for a in lost)  # a dispatch whose answer died with the hub: re-run once
    assert sorted(b for b in fleet.repo.remote_branches() if b != "main") == sorted(a["branch"] for a in finals)
    status = httpx2.get(fleet.hub.url + f"{API}/status", headers=fleet.admin).json()
    assert status["totals"]["running"] == 0 and status["totals"]["queued"] == 0
    for agent in agents:
        assert agent.stop() == 0
        assert "Traceback" not in agent.log.read_text()
