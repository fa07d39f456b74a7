"""The dashboard's lease list past the hub's page of 500 leases (its own hub: 520 leases would crowd the other
dashboard tests' views)."""

from __future__ import annotations

from typing import Any

import httpx2

from tests.web.conftest import AGENT, OVERSEER, Fleet, event_barrier, open_page


def test_the_leases_view_lists_every_page(browser: Any, fleet: Fleet) -> None:
    # it read GET /locks once: the hub's first 500 leases, and nothing said more followed
    with httpx2.Client(base_url=fleet.hub.url, headers=fleet.headers(AGENT), timeout=30) as http:
        for i in range(520):
            r = http.post("/api/coord/locks", json={"project_key": "web", "resource": f"gen/f{i}.py"})
            assert r.status_code == 201, r.text
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "leases")
    page.wait_for_selector("text=520 of 520 live leases", timeout=20_000)
    page.fill("input[name=resource]", "gen/f519.py")
    page.wait_for_selector("td:has-text('gen/f519.py')")
    assert page.errors == []


def test_a_components_history_shows_its_newest_changes(browser: Any, fleet: Fleet) -> None:
    # the view read one /audit answer from the window's start: the oldest 1,000 changes, so once a window held more
    # a component changed since showed "No recent history"
    with httpx2.Client(base_url=fleet.hub.url, headers=fleet.headers(AGENT), timeout=30) as http:
        for i in range(1001):
            r = http.put("/api/coord/components", json={"project_key": "web", "component": "busy",
                                                        "state": "building", "version": f"1.0.{i}"})
            assert r.status_code == 200, r.text
        r = http.put("/api/coord/components", json={"project_key": "web", "component": "late", "state": "deployed",
                                                    "version": "9.9.9"})
        assert r.status_code == 200, r.text
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "work")
    page.click("button:has-text('late')")
    page.wait_for_selector("ol.history li:has-text('9.9.9')", timeout=20_000)
    page.click("button:has-text('late')")
    page.click("button:has-text('busy')")
    page.wait_for_selector("ol.history li:has-text('1.0.1000')", timeout=20_000)
    # a change made while the view is open arrives by reading on from the last one kept
    with httpx2.Client(base_url=fleet.hub.url, headers=fleet.headers(AGENT), timeout=30) as http:
        r = http.put("/api/coord/components", json={"project_key": "web", "component": "busy", "state": "deployed",
                                                    "version": "2.0.0"})
        assert r.status_code == 200, r.text
    page.wait_for_selector("ol.history li:has-text('2.0.0')", timeout=20_000)
    assert page.locator("ol.history li").count() == 999  # of the newest 1,000 changes, all but late's are busy's
    assert page.errors == []


def test_the_todo_list_shows_the_newest_page_and_pages_to_older_ones(browser: Any, fleet: Fleet) -> None:
    # it read every page (up to 25 of 500 todos) on each todo event, to show the first 500 and count the rest; then
    # it read one page, but the hub's first: the oldest 500, so every todo added after the 500th was out of sight
    with httpx2.Client(base_url=fleet.hub.url, headers=fleet.headers(AGENT), timeout=30) as http:
        for i in range(501):
            r = http.post("/api/coord/todos", json={"text": f"chore {i:03d}", "project_key": "web"})
            assert r.status_code == 201, r.text
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "fleet")
    reads: list[str] = []
    page.on("request", lambda req: reads.append(req.url) if "/api/coord/todos" in req.url else None)
    page.click("nav a[href='#/work']")
    page.wait_for_selector("text=The newest 500 shown; older ones follow.", timeout=20_000)
    assert page.locator("li", has_text="chore 500").count() == 1 and page.locator("text=chore 000").count() == 0
    assert page.locator("ul.list li").first.inner_text().find("chore 500") >= 0  # newest first
    assert len(reads) == 1, reads
    page.click("button:has-text('Show older')")
    page.wait_for_selector("li:has-text('chore 000')", timeout=20_000)
    assert page.locator("text=older ones follow").count() == 0
    # a new todo shows at the top at once, the older page still shown
    fleet.call("POST", "/api/coord/todos", AGENT, expect=201, json={"text": "chore new", "project_key": "web"})
    page.wait_for_selector("li:has-text('chore new')", timeout=10_000)
    assert page.locator("li", has_text="chore 000").count() == 1
    assert page.errors == []


def test_the_work_view_reads_a_workflow_again_only_for_its_own_items(browser: Any, fleet: Fleet) -> None:
    # every work item event, of any workflow, read the whole workflow list (up to 25 pages) and the open workflow's
    # items again, though an item's change leaves the workflow rows as they were
    ids = [fleet.call("POST", "/api/coord/workflows", AGENT, expect=201,
                      json={"project_key": "web", "name": f"plan {n}"}).json()["id"] for n in ("open", "other")]
    item = fleet.call("POST", "/api/coord/work-items", AGENT, expect=201,
                      json={"workflow_id": ids[0], "title": "first step"}).json()
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "work")
    page.click("button:has-text('plan open')")
    page.wait_for_selector("td:text-is('first step')")
    reads: list[str] = []
    page.on("request", lambda req: reads.append(req.url) if "/api/coord/workflows" in req.url else None)
    other = fleet.call("POST", "/api/coord/work-items", AGENT, expect=201,
                       json={"workflow_id": ids[1], "title": "elsewhere"}).json()
    fleet.call("PATCH", f"/api/coord/work-items/{other['id']}", AGENT, expect=200, json={"status": "in_progress"})
    event_barrier(page, fleet, "work-barrier")
    assert reads == []
    fleet.call("PATCH", f"/api/coord/work-items/{item['id']}", AGENT, expect=200, json={"status": "completed"})
    page.locator("tr", has_text="first step").locator(".badge.completed").wait_for(timeout=10_000)
    fleet.call("POST", "/api/coord/work-items", AGENT, expect=201, json={"workflow_id": ids[0], "title": "second step"})
    page.wait_for_selector("td:text-is('second step')", timeout=10_000)
    assert all(f"/workflows/{ids[0]}?" in url for url in reads), reads  # its items, not the list
    assert page.errors == []


def test_the_events_filters_ask_the_hub_past_the_loaded_page(browser: Any, fleet: Fleet) -> None:
    # the filters searched the events the page had loaded (the newest 500 at opening, and what the stream brought):
    # an older match showed "No event matches the filters"
    fleet.call("POST", "/api/coord/todos", "m9/old", expect=201, json={"text": "long ago", "project_key": "attic"})
    with httpx2.Client(base_url=fleet.hub.url, headers=fleet.headers("m8/filler"), timeout=30) as http:
        for i in range(600):  # its own session: a session holds at most 1,000 leases, and AGENT holds 520
            r = http.post("/api/coord/locks", json={"project_key": "web", "resource": f"evt/f{i}.py"})
            assert r.status_code == 201, r.text
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "events")
    page.wait_for_selector("td[data-event-id]")
    assert page.locator("td", has_text="m9/old").count() == 0  # not among the newest 500
    reads: list[str] = []
    page.on("request", lambda req: reads.append(req.url) if "/api/coord/audit" in req.url else None)
    page.fill("input[name=session]", "M9/")  # a machine's sessions, ignoring case
    page.locator("tr", has_text="todo.added").locator("td:text-is('m9/old')").wait_for(timeout=10_000)
    assert page.locator("td[data-event-id]").count() == 1
    page.wait_for_selector("text=1 matching events: the whole log searched.")
    assert reads and all("session_prefix=M9%2F" in url for url in reads), reads
    page.fill("input[name=session]", "")
    page.fill("input[name=project]", "ATTIC")
    page.locator("td:text-is('attic')").wait_for(timeout=10_000)
    # a live event that matches joins the answer
    fleet.call("POST", "/api/coord/todos", "m9/new", expect=201, json={"text": "just now", "project_key": "attic"})
    page.locator("td:text-is('m9/new')").wait_for(timeout=10_000)
    assert page.locator("td[data-event-id]").count() == 2
    assert page.errors == []
