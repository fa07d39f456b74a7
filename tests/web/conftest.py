"""Browser fixtures: Debian's Chromium driven by Playwright for Python, and one live hub per module.

Never ``playwright install`` (it downloads a browser build): the system
``chromium`` is the executable. Without it the browser tests skip locally and
fail in CI (``CI`` set), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import LiveHub

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
OVERSEER = "ops/overseer"
AGENT = "m1/agent"


def chromium_path() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Fleet:
    """A live hub with an admin overseer and agent sessions, and REST helpers acting as them."""

    hub: LiveHub
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, session: str, admin: bool = False) -> str:
        if session not in self.tokens:
            self.tokens[session] = self.hub.token(session, admin)
        return self.tokens[session]

    def headers(self, session: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(session)}"}

    def call(self, method: str, path: str, session: str, expect: int | None = None, **kw: Any) -> Any:
        r = httpx2.request(method, self.hub.url + path, headers=self.headers(session), timeout=30, **kw)
        if expect is not None:
            assert r.status_code == expect, r.text
        return r


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One ``coord serve`` (SQLite) for the module, with an admin overseer token."""
    hub = start_hub(LiveHub(tmp_path_factory.mktemp("webhub") / "hub"))
    try:
        f = Fleet(hub)
        f.token(OVERSEER, admin=True)
        yield f
    finally:
        hub.stop()


def start_hub(hub: LiveHub) -> LiveHub:
    """Start ``hub`` and wait up to 90 s for it: on a loaded 2-core machine a start can take 20 s and more."""
    hub.start(wait=False)
    try:
        hub.wait_ready(timeout=90)
    except BaseException:
        hub.stop(9)
        raise
    return hub


_contexts: list[Any] = []


@pytest.fixture(autouse=True)
def _close_contexts() -> Iterator[None]:
    """Close the test's browser contexts after it: their event streams end, so a hub stops at once."""
    yield
    while _contexts:
        _contexts.pop().close()


def open_page(browser: Any, url: str, token: str, view: str = "fleet", **context: Any) -> Any:
    """A new browser context signed in with ``token`` on ``url``, showing ``view``; page errors fail the test."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 760}, color_scheme="light", **context)
    _contexts.append(ctx)
    page = ctx.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url + "/#/" + view)
    page.fill("input[name=secret]", token)
    page.click("button[type=submit]")
    page.wait_for_selector(".stream.live", timeout=10_000)
    return page


def event_barrier(page: Any, fleet: Fleet, name: str) -> None:
    """Return once ``page`` has had every event written before this call: an admin's project halt on
    ``project:<name>`` (a project nothing else uses) shows in the halt banner, then is lifted.

    The stream keeps the log's order and a view asks for its read as an event arrives, so after this, any read the
    earlier events caused has been requested: a test can then say that none was.
    """
    scope = f"project:{name}"
    fleet.call("POST", "/api/coord/halt", OVERSEER, expect=201, json={"reason": "barrier", "scope": scope})
    try:
        page.locator(".banner.halt p", has_text=f"HALTED ({scope})").wait_for(timeout=10_000)
    finally:
        fleet.call("POST", "/api/coord/resume", OVERSEER, expect=200, json={"scope": scope})


def screenshot_dir(tmp_path: Path) -> Path:
    """docs/dashboard/ when COORD_WEB_SCREENSHOTS=1 (to refresh the docs' pictures), else a temp dir."""
    if os.environ.get("COORD_WEB_SCREENSHOTS") == "1":
        return Path(__file__).resolve().parents[2] / "docs" / "dashboard"
    return tmp_path
