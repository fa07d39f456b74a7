"""The dashboard's inbox and work views past the hub's page of about 4 MiB of text (its own hub: 512 KiB texts
would weigh on the other dashboard tests' views)."""

from __future__ import annotations

from typing import Any

import httpx2

from tests.web.conftest import AGENT, OVERSEER, Fleet, open_page

BIG = "x" * 500 * 1024  # seven or eight of these fill one answer


def test_the_inbox_and_work_views_read_past_a_cut_page(browser: Any, fleet: Fleet) -> None:
    # they read one answer each: a cut one hid the rest, and the inbox offered older ones only after 200
    with httpx2.Client(base_url=fleet.hub.url, headers=fleet.headers(AGENT), timeout=60) as http:
        flows = []
        for i in range(10):
            for path, body in (("/api/coord/messages", {"to_session": OVERSEER, "subject": f"long {i:02d}"}),
                               ("/api/coord/workflows", {"project_key": "web", "name": f"flow {i:02d}"}),
                               ("/api/coord/todos", {"text": f"todo {i:02d}", "source": BIG})):
                r = http.post(path, json={"body": BIG, **body} if "messages" in path else
                              {"description": BIG, **body} if "workflows" in path else body)
                assert r.status_code == 201, r.text
                if "workflows" in path:
                    flows.append(r.json()["id"])
            r = http.put("/api/coord/components", json={"project_key": "web", "component": f"comp{i:02d}",
                                                        "state": "deployed", "notes": BIG})
            assert r.status_code == 200, r.text
            r = http.post("/api/coord/work-items", json={"workflow_id": flows[0], "title": f"item {i:02d}",
                                                         "description": BIG})
            assert r.status_code == 201, r.text
        assert "Coord-Next-Before-Seq" in http.get("/api/coord/messages", params={"to_session": OVERSEER},
                                                   headers=fleet.headers(OVERSEER)).headers
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "messages")
    page.wait_for_selector("text=long 09", timeout=20_000)
    assert page.locator("text=long 00").count() == 0  # newest first: the oldest are on the next page
    page.click("button:has-text('Load older')")
    page.wait_for_selector("text=long 00", timeout=20_000)
    assert page.locator("button:has-text('Load older')").count() == 0
    lists: list[str] = []  # the work view's list reads: brief, so none carries the 500 KiB texts it never shows
    page.on("request", lambda req: lists.append(req.url) if any(
        f"/api/coord/{what}" in req.url for what in ("todos", "components", "workflows")) else None)
    page.click("nav a[href='#/work']")
    for name in ("flow 00", "flow 09", "comp00", "comp09", "todo 00", "todo 09"):
        page.wait_for_selector(f"text={name}", timeout=20_000)
    page.click("text=flow 00")
    page.wait_for_selector("text=item 00", timeout=20_000)
    page.wait_for_selector("text=item 09", timeout=20_000)
    assert len(lists) == 4 and all("brief=true" in url for url in lists), lists  # one answer each holds every row
    assert page.errors == []
