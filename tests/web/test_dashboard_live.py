"""Views kept current while the page stays open: a lease granted shows in full, a session that went quiet turns idle."""

from __future__ import annotations

import sqlite3
from typing import Any

from tests.web.conftest import AGENT, OVERSEER, Fleet, event_barrier, open_page


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


def test_a_session_that_stops_heartbeating_turns_idle_on_the_open_fleet_view(browser: Any, fleet: Fleet) -> None:
    # a state follows from the time since the last heartbeat, and heartbeats are no events: the view read the
    # list on events only, so a session that went quiet showed "active" (with "3 min ago" beside it) for good
    quiet, other = "m7/quiet", "m7/other"
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "fleet")
    fleet.call("POST", "/api/coord/presence/register", quiet, expect=200, json={"client": "claude-code"})
    page.locator("tr", has_text=quiet).wait_for(timeout=10_000)
    # its last heartbeat 110 s back (the hub's idle tier starts past 120 s), then an event that makes the view read
    db = sqlite3.connect(fleet.hub.data_dir / "coord.db", timeout=30, isolation_level=None)
    try:
        db.execute("UPDATE sessions SET last_heartbeat = last_heartbeat - 110 WHERE session_id = ?", (quiet,))
    finally:
        db.close()
    fleet.call("POST", "/api/coord/presence/register", other, expect=200, json={"client": "claude-code"})
    page.locator("tr", has_text=other).wait_for(timeout=10_000)
    row = page.locator("tr", has_text=quiet)
    assert row.locator(".badge.active").count() == 1
    row.locator(".badge.idle").wait_for(timeout=30_000)  # no event: the view read again as the tier passed
    # the view times that read by the tiers the hub tells with the web session, not a copy of them: a hub with other
    # tiers (its answer rewritten here, as a hub with changed ones would answer) changes when the view reads again
    due = ("async () => (await import('/static/js/views/fleet.js'))"
           ".nextTier([{state: 'active', seconds_since_heartbeat: 30}])")
    assert page.evaluate(due) == (120 - 30) * 1000 + 500

    def other_tiers(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        assert body["presence_seconds"] == {"active": 120, "idle": 300, "stale": 900}
        route.fulfill(response=answer, json={**body, "presence_seconds": {"active": 60, "idle": 90, "stale": 120}})

    page.route("**/api/coord/web/session", other_tiers)
    page.reload()
    page.wait_for_selector(".stream.live", timeout=10_000)
    assert page.evaluate(due) == (60 - 30) * 1000 + 500
    assert page.errors == []


def test_the_next_session_signed_in_on_the_page_sees_neither_the_last_ones_events_nor_its_stale_leases(
        browser: Any, fleet: Fleet) -> None:
    # sign-out kept the stream's recent events and the lease list in the page: a non-admin signing in next, without
    # a reload, found the admin's events in the events view (a direct message's subject between two others among
    # them), and a lease granted while nobody was signed in never showed
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "leases")
    page.wait_for_selector("text=live leases")
    fleet.call("POST", "/api/coord/messages", AGENT, expect=201,
               json={"to_session": "m2/agent", "subject": "between two others", "body": "b"})
    page.click("nav a[href='#/events']")
    page.wait_for_selector("text=subject: between two others")  # the admin sees it
    page.click("button:has-text('Sign out')")
    page.wait_for_selector("input[name=secret]")
    fleet.call("POST", "/api/coord/locks", AGENT, expect=201,
               json={"project_key": "web", "resource": "src/while_out.py", "description": "granted while signed out"})
    page.fill("input[name=secret]", fleet.token("m3/agent"))
    page.click("button[type=submit]")
    page.wait_for_selector(".stream.live", timeout=10_000)
    page.wait_for_selector("td[data-event-id]")
    page.wait_for_selector("text=web.signed_in")
    assert page.locator("text=between two others").count() == 0
    page.click("nav a[href='#/leases']")
    page.wait_for_selector("td:text-is('src/while_out.py')", timeout=10_000)
    assert page.errors == []


def test_an_admins_inbox_is_not_read_again_for_other_sessions_messages(browser: Any, fleet: Fleet) -> None:
    # an admin's stream carries every session's message events, and each one read the whole inbox again (200
    # messages, up to about 4 MiB), though a message between two other sessions cannot change it
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "messages")
    page.wait_for_selector("h2#messages-h")
    page.wait_for_selector(".state.loading", state="detached")
    reads: list[str] = []
    page.on("request", lambda req: reads.append(req.url) if "/api/coord/messages?" in req.url else None)
    for i in range(5):
        fleet.call("POST", "/api/coord/messages", AGENT, expect=201,
                   json={"to_session": "m2/agent", "subject": f"not for the overseer {i}", "body": "b"})
    event_barrier(page, fleet, "inbox-barrier")
    assert reads == []
    fleet.call("POST", "/api/coord/messages", AGENT, expect=201,
               json={"to_session": OVERSEER, "subject": "for the overseer", "body": "b"})
    page.wait_for_selector("text=for the overseer", timeout=10_000)  # its own messages still arrive live
    assert page.errors == []


def test_an_open_conversation_is_read_again_only_for_its_own_turns(browser: Any, fleet: Fleet) -> None:
    # every conversation event (any conversation's turn, anyone's profile) read the open conversation's page of turns
    # (up to about 4 MiB) and the list again
    for session, machine, project in ((AGENT, "m1", "web"), ("m2/agent", "m2", "api")):
        fleet.call("PUT", "/api/coord/conversations/profile", session, expect=200,
                   json={"machine": machine, "project": project})
    for cid in ("watched", "elsewhere"):
        fleet.call("POST", "/api/coord/conversations/turns", AGENT, expect=201,
                   json={"to": "m2.api", "conversation_id": cid, "type": "request", "title": cid, "body": "b"})
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "conversations")
    page.click("button:has-text('watched')")
    page.wait_for_selector("pre.body >> text=b")
    reads: list[str] = []
    page.on("request", lambda req: reads.append(req.url) if "/api/coord/conversations/watched" in req.url else None)
    fleet.call("POST", "/api/coord/conversations/turns", "m2/agent", expect=201,
               json={"to": "m1.web", "conversation_id": "elsewhere", "type": "progress", "body": "later"})
    event_barrier(page, fleet, "conversation-barrier")
    assert reads == []
    fleet.call("POST", "/api/coord/conversations/turns", "m2/agent", expect=201,
               json={"to": "m1.web", "conversation_id": "watched", "type": "progress", "body": "on it"})
    page.wait_for_selector("pre.body >> text=on it", timeout=10_000)  # its own turns still arrive live
    assert page.errors == []
