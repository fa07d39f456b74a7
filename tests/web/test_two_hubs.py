"""Two hubs on one host, one browser: each dashboard keeps its own sign-in.

Browsers keep cookies by host name, not port, so while every hub named its cookie ``coord_web``, signing in to a
second hub on the same host (a test fleet beside the real one, a tunnel's) replaced the first hub's cookie and
signed that dashboard out. The cookie is now named by the port the browser used (``coord_web_PORT``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import LiveHub
from tests.web.conftest import OVERSEER, Fleet, open_page, start_hub


def test_signing_in_to_a_second_hub_on_the_host_keeps_the_first_signed_in(browser: Any, fleet: Fleet,
                                                                          tmp_path: Path) -> None:
    first = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "events")
    second_hub = start_hub(LiveHub(tmp_path / "second"))
    try:
        second = first.context.new_page()  # the same browser profile: one cookie jar for both hubs
        errors: list[str] = []
        second.on("pageerror", lambda e: errors.append(str(e)))
        second.goto(second_hub.url + "/#/events")
        second.fill("input[name=secret]", second_hub.token("laptop/viewer"))
        second.click("button[type=submit]")
        second.wait_for_selector(".stream.live", timeout=10_000)
        first.reload()  # it asks its hub who it is again, with the cookie the browser now holds for it
        first.wait_for_selector(".stream.live", timeout=10_000)
        assert first.locator("input[name=secret]").count() == 0  # not sent back to the sign-in form
        names = sorted(c["name"] for c in first.context.cookies())
        assert names == sorted([f"coord_web_{fleet.hub.port}", f"coord_web_{second_hub.port}"]), names
        second.reload()
        second.wait_for_selector(".stream.live", timeout=10_000)
        assert first.errors == [] and errors == []
    finally:
        second_hub.stop()
