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
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "fleet")
    page.locator(".banner.unlisted", has_text="m2/crashed (1)").wait_for(timeout=10_000)
    page.check("input[name=offline]")
    page.locator("tr", has_text="m2/crashed").locator("td", has_text="1: src/x.py").wait_for(timeout=10_000)
    assert page.locator(".banner.unlisted").count() == 0
    assert page.errors == []
