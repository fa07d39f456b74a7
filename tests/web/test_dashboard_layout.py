"""The dashboard with text as long as the hub accepts: it wraps or ends in an ellipsis, never widens the page."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import AGENT, OVERSEER, Fleet, open_page

WORD = "unbroken" * 60  # 480 characters without a space: a path, a hash, a pasted URL


def test_one_long_word_in_a_subject_or_todo_never_widens_the_page(browser: Any, fleet: Fleet) -> None:
    fleet.call("POST", "/api/coord/messages", AGENT, expect=201,
               json={"to_session": OVERSEER, "subject": "start " + WORD, "body": WORD})
    fleet.call("POST", "/api/coord/todos", AGENT, expect=201, json={"text": "todo " + WORD, "project_key": "web"})
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "messages")
    subject = page.locator(".msg-subject", has_text="start unbroken")
    subject.wait_for(timeout=10_000)
    # the subject's button is as wide as its cell, so its start shows (a button centres what overflows it)
    box, cell = subject.bounding_box(), subject.locator("xpath=..").bounding_box()
    assert box is not None and cell is not None and box["width"] <= cell["width"] + 1
    # a broadcast says so however long its sender's name: the badge comes first (after the name, the cell cut it off)
    fleet.call("POST", "/api/coord/messages", "m1/" + "x" * 60, expect=201,
               json={"subject": "to everyone", "body": "b"})
    row = page.locator("tr", has_text="to everyone")
    badge = row.locator(".badge.bc")
    badge.wait_for(timeout=10_000)
    box, cell = badge.bounding_box(), badge.locator("xpath=..").bounding_box()
    assert box is not None and cell is not None and box["x"] + box["width"] <= cell["x"] + cell["width"]
    subject.click()
    page.wait_for_selector("article h3")
    width = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    close = page.locator("button[aria-label='Close message']").bounding_box()
    assert close is not None and close["x"] + close["width"] <= width  # the close button stays in view
    page.click("nav a[href='#/work']")
    page.wait_for_selector("text=todo unbroken")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.errors == []
