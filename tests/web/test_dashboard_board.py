"""The Orchestrator view's counts of what runs (its own hub: an orchestrator config would change the other tests'
board)."""

from __future__ import annotations

from typing import Any

import httpx2

from tests.web.conftest import OVERSEER, Fleet, open_page

ORCH = "/api/coord/orchestrator"


def _host_call(fleet: Fleet, path: str, body: dict[str, Any]) -> Any:
    r = httpx2.post(fleet.hub.url + ORCH + path, headers=fleet.headers("laptop/agent"), json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_running_column_counts_a_machines_stage_runs_too(browser: Any, fleet: Fleet) -> None:
    # it showed the machine's assignments holding a slot: a machine busy with a smoke test said "0 running"
    # beside "0 free of 1"; and it showed no stage run at all
    from tests.orchestrator.conftest import config

    fleet.call("PUT", f"{ORCH}/config", OVERSEER, 200,
               json=config(smoke_tests={"auto_queue": True, "timeout_seconds": 30}))
    reg = _host_call(fleet, "/hosts/register", {"machine": "laptop", "capabilities": ["python"],
                                                "repos": {"api": "/src/api", "lib": "/src/lib"}, "slots": 1})
    host = {"machine": "laptop", "host_incarnation": reg["host_incarnation"]}
    fleet.call("POST", f"{ORCH}/assignments", OVERSEER, 201, json={"any": True, "repo": "api", "issue": 7})
    job = _host_call(fleet, "/hosts/next", {**host, "wait": 0})["assignment"]
    _host_call(fleet, f"/assignments/{job['id']}/report",
               {"attempt": job["attempt"], "host_incarnation": host["host_incarnation"], "state": "done",
                "pushed": True, "changed_files": ["src/a.py"]})
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "board")
    # the done assignment waits on its smoke test: the board showed neither the run nor the stage
    page.locator("tr", has_text="api#7").locator("td", has_text="→ test").wait_for(timeout=10_000)
    page.locator("tr", has_text="api#7").filter(has_text="queued").wait_for(timeout=10_000)
    row = page.locator("tr", has_text="laptop").filter(has_text="free of")
    row.locator("td", has_text="1 free of 1").wait_for(timeout=10_000)
    run = _host_call(fleet, "/hosts/next-run", {**host, "wait": 0})["run"]
    assert run is not None and run["stage"] == "test"
    machine = fleet.call("GET", f"{ORCH}/status", OVERSEER, 200).json()["machines"][0]
    assert (machine["running"], machine["busy_slots"], machine["free_slots"]) == (0, 1, 0)
    # live: the board read nothing on stage run events, and counted the machine's assignments alone
    row.locator("td", has_text="0 free of 1").wait_for(timeout=10_000)
    cell = row.locator("td").nth(3)
    assert cell.inner_text() == "1"
    assert cell.get_attribute("title") == "0 workers, 1 test/review run, 0 merges"
    assert page.locator("p.count", has_text="1 running (0 workers, 1 test/review run, 0 merges)").count() == 1
    page.locator("tr", has_text="api#7").filter(has_text="dispatched").wait_for(timeout=10_000)
    assert page.errors == []
