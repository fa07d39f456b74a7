"""Every standing halt on the dashboard, live, each resumable (docs/dashboard.md; DESIGN.md contract point 8).

Debian's Chromium against a real ``coord serve`` of this module's own (its
halts would stop the writes of other modules' tests). Each test leaves no halt
standing.
"""

from __future__ import annotations

import time
from typing import Any

from tests.web.conftest import AGENT, OVERSEER, Fleet, open_page

HOSTILE = "<img src=x onerror=alert(1)>"


def _halts(fleet: Fleet, session: str = OVERSEER) -> dict[str, dict[str, Any]]:
    """The standing halts by scope, as ``GET /halt`` answers ``session``."""
    return {h["scope"]: h for h in fleet.call("GET", "/api/coord/halt", session, 200).json()["halts"]}


def _row(page: Any, scope: str) -> Any:
    """The halt banner's line for the halt of ``scope``."""
    return page.locator(".banner.halt p", has_text=f"HALTED ({scope})")


def _accept_into(page: Any) -> list[str]:
    """Accept every confirmation ``page`` asks, keeping its text."""
    dialogs: list[str] = []

    def confirm(d: Any) -> None:
        dialogs.append(d.message)
        d.accept()

    page.on("dialog", confirm)
    return dialogs


def test_a_project_and_a_machine_halt_made_by_rest_appear_live_and_resume_from_the_page(
        browser: Any, fleet: Fleet) -> None:
    project = f"web-{time.time_ns()}"
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "fleet")
    watcher = open_page(browser, fleet.hub.url, fleet.token("m2/agent"), "fleet")
    dialogs = _accept_into(page)

    fleet.call("POST", "/api/coord/halt", OVERSEER, 201, json={"reason": f"bad migration {HOSTILE}",
                                                                 "scope": f"project:{project}"})
    row = _row(page, f"project:{project}")
    row.wait_for(timeout=2000)  # live: no reload
    seen = _row(watcher, f"project:{project}")
    seen.wait_for(timeout=2000)  # everyone watching sees it
    assert f"bad migration {HOSTILE}" in seen.inner_text() and OVERSEER in seen.inner_text()
    assert watcher.locator("img[src=x]").count() == 0  # the reason is text, never HTML
    assert watcher.locator("button", has_text="Resume").count() == 0  # resume is an admin's control
    # a session's own machine halt is a standing halt too
    fleet.call("POST", "/api/coord/halt", AGENT, 201, json={"reason": "m1 disk full", "scope": "machine:m1"})
    _row(page, "machine:m1").wait_for(timeout=2000)
    assert page.locator(".banner.halt p").count() == 2
    assert page.locator("button", has_text="Halt fleet").count() == 1  # no fleet halt: the form stays

    row.locator("button", has_text=f"Resume project:{project}").click(timeout=5000)
    row.wait_for(state="detached", timeout=5000)
    seen.wait_for(state="detached", timeout=2000)
    assert dialogs == [f"Resume project:{project}? Halted by {OVERSEER}: bad migration {HOSTILE}"]
    assert list(_halts(fleet)) == ["machine:m1"]  # gone on the hub, the other one still stands

    _row(page, "machine:m1").locator("button", has_text="Resume machine:m1").click(timeout=5000)
    page.wait_for_selector(".banner.halt", state="detached", timeout=5000)
    watcher.wait_for_selector(".banner.halt", state="detached", timeout=2000)
    assert _halts(fleet) == {}
    fleet.call("POST", "/api/coord/todos", AGENT, 201, json={"text": "write after both resumes"})
    assert page.errors == [] and watcher.errors == []


def test_halt_a_project_from_the_page_and_the_fleet_halt_still_works_beside_it(browser: Any, fleet: Fleet) -> None:
    project = f"proj-{time.time_ns()}"
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "fleet")
    dialogs = _accept_into(page)

    page.select_option("#halt-scope", "project", timeout=5000)
    page.click("button:has-text('Halt project')")  # no name, no reason: the browser's required checks stop it
    assert _halts(fleet) == {}
    page.fill("#halt-target", project)
    page.fill("#halt-reason", "schema change in flight")
    page.click("button:has-text('Halt project')")
    _row(page, f"project:{project}").wait_for(timeout=5000)
    assert dialogs[-1].startswith(f"Halt project {project}? ") and dialogs[-1].endswith(
        "\nReason: schema change in flight")
    got = _halts(fleet)[f"project:{project}"]
    assert (got["halted_by"], got["reason"]) == (OVERSEER, "schema change in flight")
    # a lease in that project is work in it: refused while the halt stands
    r = fleet.call("POST", "/api/coord/locks", AGENT, json={"project_key": project, "resource": "a.py"})
    assert r.status_code == 423, r.text

    # the fleet halt beside it: the form halts the fleet, both show, the fleet's resume lifts only the fleet's
    assert page.locator("#halt-scope").input_value() == "fleet"  # the form went back to the fleet
    page.fill("#halt-reason", "everything stops")
    page.click("button:has-text('Halt fleet')")
    _row(page, "fleet").wait_for(timeout=5000)
    assert dialogs[-1].startswith("Halt the whole fleet? ")
    assert set(_halts(fleet)) == {"fleet", f"project:{project}"}
    assert page.locator("#halt-reason").count() == 0  # a halt under the fleet's would be refused: no form
    fleet.call("POST", "/api/coord/todos", AGENT, 423, json={"text": "write during the fleet halt"})
    page.click("button:has-text('Resume fleet')")
    _row(page, "fleet").wait_for(state="detached", timeout=5000)
    assert list(_halts(fleet)) == [f"project:{project}"]
    fleet.call("POST", "/api/coord/todos", AGENT, 201, json={"text": "write after the fleet resume"})

    page.click(f"button:has-text('Resume project:{project}')")
    page.wait_for_selector(".banner.halt", state="detached", timeout=5000)
    assert _halts(fleet) == {}
    fleet.call("POST", "/api/coord/locks", AGENT, 201, json={"project_key": project, "resource": "a.py"})
    # a name no session can declare is the hub's 422, shown beside the form; nothing is halted
    page.select_option("#halt-scope", "project")
    page.fill("#halt-target", "coord.hub")
    page.fill("#halt-reason", "dotted")
    page.click("button:has-text('Halt project')")
    page.locator(".haltctl .error").wait_for(timeout=5000)
    assert _halts(fleet) == {}
    assert page.errors == []


def test_a_session_paused_by_a_resume_sees_its_pause_and_re_engages_from_the_page(
        browser: Any, fleet: Fleet) -> None:
    project = f"pause-{time.time_ns()}"
    worker = "m3/claude"  # not "<m>/agent": the orchestrator's hosts are never paused
    fleet.call("PUT", "/api/coord/conversations/profile", worker, 200, json={"project": project})
    fleet.call("POST", "/api/coord/presence/register", worker, 200, json={"client": "cli"})
    page = open_page(browser, fleet.hub.url, fleet.token(worker), "fleet")
    fleet.call("POST", "/api/coord/halt", OVERSEER, 201, json={"reason": "look first", "scope": f"project:{project}"})
    row = _row(page, f"project:{project}")
    row.wait_for(timeout=2000)
    assert "covers you" in row.inner_text()
    lifted = fleet.call("POST", "/api/coord/resume", OVERSEER, 200, json={"scope": f"project:{project}"}).json()
    assert lifted["paused"] == [worker]
    paused = page.locator(".banner.paused")
    paused.wait_for(timeout=2000)  # the resume paused it: shown live, not only the halt's end
    assert row.count() == 0 and f"project:{project}" in paused.inner_text()
    fleet.call("POST", "/api/coord/todos", worker, 423, json={"text": "write while paused"})
    paused.locator("button", has_text="Re-engage").click()
    paused.wait_for(state="detached", timeout=5000)
    assert fleet.call("GET", "/api/coord/halt", worker, 200).json()["paused"] is None
    fleet.call("POST", "/api/coord/todos", worker, 201, json={"text": "write after engaging"})
    assert page.errors == []
