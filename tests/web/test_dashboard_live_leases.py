"""The lease view kept current from lease events alone: a lease granted while the page is open shows in full."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import AGENT, OVERSEER, Fleet, open_page


def test_a_lease_granted_while_the_page_is_open_shows_its_description(browser: Any, fleet: Fleet) -> None:
    # the view builds the row from the lease.granted event; the event carried no description, so a live
    # grant showed an empty Description cell until a reload
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "leases")
    page.wait_for_selector("text=No live leases.")
    fleet.call("POST", "/api/coord/locks", AGENT, expect=201,
               json={"project_key": "web", "resource": "src/live.py", "description": "<b>migrating</b> the schema"})
    row = page.locator("tr", has_text="src/live.py")
    row.wait_for(timeout=10_000)
    page.wait_for_selector("td:text-is('<b>migrating</b> the schema')", timeout=10_000)  # as text, not markup
    assert page.errors == []
