"""The dashboard's lease list past the hub's page of 500 leases (its own hub: 520 leases would crowd the other
dashboard tests' views)."""

from __future__ import annotations

from typing import Any

import httpx2

from tests.web.conftest import AGENT, OVERSEER, Fleet, open_page


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
