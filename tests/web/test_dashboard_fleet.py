"""The Fleet view reads the sessions it shows, and only on the events that change them (its own hub: it registers
and ends sessions)."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import OVERSEER, Fleet, event_barrier, open_page


def test_the_fleet_view_reads_the_online_sessions_and_only_on_events_that_change_them(
        browser: Any, fleet: Fleet) -> None:
    # it read GET /presence without a bound (every session that ever registered: each orchestrator worker is one)
    # with /conversations/addresses, on every presence, session and token event (each worker attempt mints a token)
    for name in ("m1/busy", "m1/gone"):
        fleet.call("POST", "/api/coord/presence/register", name, expect=200, json={"client": "claude-code"})
    fleet.call("POST", "/api/coord/presence/deregister", "m1/gone", expect=200, json={})
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "fleet")
    page.locator("tr", has_text="m1/busy").wait_for(timeout=10_000)
    assert page.locator("tr", has_text="m1/gone").count() == 0  # offline: not read, not shown
    assert page.locator("p.count", has_text="1 online sessions").count() == 1
    reads: list[str] = []
    page.on("request", lambda req: reads.append(req.url.split("/api/coord", 1)[1]) if "/api/coord/" in req.url and
            "/events" not in req.url and "/halt" not in req.url and "/resume" not in req.url else None)
    fleet.call("POST", "/api/coord/tokens", OVERSEER, expect=201, json={"name": "m1/worker-1"})
    event_barrier(page, fleet, "fleet-barrier-1")
    assert reads == []  # a token changes no row
    fleet.call("PUT", "/api/coord/conversations/profile", "m1/busy", expect=200,
               json={"machine": "m1", "project": "shop"})
    page.locator("tr", has_text="m1/busy").locator("td:text-is('shop')").wait_for(timeout=10_000)
    assert reads == ["/conversations/addresses"]  # its project, not the sessions again
    reads.clear()
    fleet.call("POST", "/api/coord/presence/register", "m1/new", expect=200, json={"client": "claude-code"})
    page.locator("tr", has_text="m1/new").wait_for(timeout=10_000)
    assert reads == ["/presence?state=live"]
    page.check("input[name=offline]")
    page.locator("tr", has_text="m1/gone").locator(".badge.offline").wait_for(timeout=10_000)
    assert reads[-1] == "/presence"
    assert page.errors == []


def test_the_fleet_view_names_the_lease_holders_it_does_not_list(browser: Any, fleet: Fleet) -> None:
    # with only online sessions listed, a session that went offline holding a lease (which blocks whoever needs it)
    # was nowhere on the view
    fleet.call("POST", "/api/coord/presence/register", "m2/crashed", expect=200, json={"client": "claude-code"})
    fleet.call("POST", "/api/coord/locks", "m2/crashed", expect=201,
               json={"project_key": "web", "resource": "src/x.py"})
    fleet.call("POST", "/api/coord/presence/deregister", "m2/crashed", expect=200, json={})
    # a REST script (seed 001's clients) holds one and never registers presence
    fleet.call("POST", "/api/coord/locks", "m3/script", expect=201, json={"project_key": "web", "resource": "db:"})
    # an orchestrator worker registers no presence either: its host keeps its issue lease while it runs. It was
    # named in the warning as a holder gone missing, which sent a team lead looking for a crash that was none
    worker = _dispatch_a_worker(fleet)
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "fleet")
    banner = page.locator(".banner.unlisted", has_text="m2/crashed (1)")
    banner.wait_for(timeout=10_000)
    assert banner.inner_text() == ("Holding leases but not online (offline, or never registered presence): "
                                   "m2/crashed (1), m3/script (1)")
    workers = page.locator("p.workers")
    assert workers.inner_text().startswith("Orchestrator workers holding leases") and f"{worker} (1)" in \
        workers.inner_text()
    page.check("input[name=offline]")
    page.locator("tr", has_text="m2/crashed").locator("td", has_text="1: src/x.py").wait_for(timeout=10_000)
    # listed now, offline; what is still not listed never registered (it vanished from the view with the box ticked)
    page.locator(".banner.unlisted", has_text="Holding leases, never registered presence: m3/script (1)").wait_for(
        timeout=10_000)
    assert "m2/crashed" not in page.locator(".banner.unlisted").inner_text() and workers.count() == 1
    assert page.errors == []


def _dispatch_a_worker(fleet: Fleet) -> str:
    """Dispatch one assignment to a registered host ``m4/agent``; the worker's session (it holds the issue lease)."""
    from tests.orchestrator.conftest import config

    fleet.call("PUT", "/api/coord/orchestrator/config", OVERSEER, expect=200, json=config(
        machines=[{"name": "m4", "capabilities": ["python"], "repos": ["api"]}],
        repos=[{"name": "api", "github": "acme/api"}]))
    reg = fleet.call("POST", "/api/coord/orchestrator/hosts/register", "m4/agent", expect=200, json={
        "machine": "m4", "capabilities": ["python"], "repos": {"api": "/src/api"}, "slots": 1}).json()
    fleet.call("POST", "/api/coord/orchestrator/assignments", OVERSEER, expect=201,
               json={"any": True, "repo": "api", "issue": 7, "title": "Fix the cart"})
    job = fleet.call("POST", "/api/coord/orchestrator/hosts/next", "m4/agent", expect=200, json={
        "machine": "m4", "host_incarnation": reg["host_incarnation"], "wait": 0}).json()["assignment"]
    return str(job["worker_session"])
