"""The dashboard in a real browser (issue 13): Debian's Chromium against a real ``coord serve``.

One hub and one browser serve the module; each test opens its own browser
context (its own cookies). The restart test has a hub of its own.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coordhub.core import messages, websessions
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.store.sqlite import SQLiteStore
from tests.conftest import LiveHub, free_port
from tests.web.conftest import AGENT, OVERSEER, Fleet, open_page, start_hub

HOSTILE = "<img src=x onerror=alert(1)>"


def test_sign_in_and_a_message_appears_live_without_reload(browser: Any, fleet: Fleet) -> None:
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "messages")
    page.wait_for_selector("h2#messages-h")
    assert page.locator(".identity").inner_text().startswith(OVERSEER)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    subject = f"live check {time.time()}"
    fleet.call("POST", "/api/coord/messages", AGENT, 201,
               json={"subject": subject, "body": "b", "to_session": OVERSEER})
    sent = time.monotonic()
    page.wait_for_selector(f"text={subject}", timeout=1000)  # the issue's bound: within a second
    assert time.monotonic() - sent < 1.0
    assert navigations == []  # no reload
    # the unread dot and its column have names a screen reader says (an aria-label on a plain span is ignored)
    assert page.locator("tr", has_text=subject).get_by_role("img", name="unread").count() == 1
    assert page.get_by_role("columnheader", name="Unread").count() == 1
    # the token is nowhere the page can reach: not in the DOM, URL, storage, or a script-readable cookie
    token = fleet.token(OVERSEER)
    assert token not in page.content() and token not in page.url
    assert page.evaluate("document.cookie") == ""
    assert token not in page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
    cookies = page.context.cookies()
    named = websessions.cookie_name(f"127.0.0.1:{fleet.hub.port}")  # coord_web_PORT: one name per hub of a host
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [(named, True, "Strict")]

    # read, ack and reply in its thread from the page
    asks = fleet.call("POST", "/api/coord/messages", AGENT, 201, json={
        "subject": f"please ack {time.time()}", "body": "b", "to_session": OVERSEER, "requires_ack": True}).json()
    page.click(f"button.msg-subject:has-text('{asks['subject']}')")
    ack = page.get_by_role("button", name="Ack", exact=True)
    ack.click()
    ack.wait_for(state="detached")
    got = fleet.call("GET", f"/api/coord/messages/{asks['id']}", OVERSEER, 200).json()
    assert got["acked_at"] is not None and got["read"] is True
    page.click("button:has-text('Reply in thread')")
    page.fill("textarea[name=body]", "on it")
    page.click("form.compose button[type=submit]")
    page.wait_for_selector("text=Sent “Re: please ack")
    reply = [m for m in fleet.call("GET", "/api/coord/messages", AGENT, 200, params={"to_session": AGENT}).json()
             if m["reply_to"] == asks["id"]]
    assert len(reply) == 1 and reply[0]["thread_id"] == asks["id"] and reply[0]["to_session"] == AGENT
    # the open message's thread shows the reply just sent, live: the page's own side of the exchange, which its
    # inbox never holds (the thread was built from the inbox and showed the asking message alone)
    thread = page.locator("ol.thread li")
    thread.filter(has_text="Re: please ack").wait_for(timeout=10_000)
    assert thread.count() == 2 and f"{OVERSEER} → {AGENT}" in thread.nth(1).inner_text()
    # each entry's toggle names what it opens (every one read just "Body" to a screen reader)
    page.get_by_label(f"Body of {OVERSEER}’s Re: {asks['subject']}", exact=True).click()
    assert thread.nth(1).locator("pre.body").inner_text() == "on it"

    # sign out: back to the form, and the cookie the browser had is dead on the hub
    cookie = cookies[0]["value"]
    page.click("button:has-text('Sign out')")
    page.wait_for_selector("input[name=secret]")
    r = httpx2.get(fleet.hub.url + "/api/coord/whoami", cookies={named: cookie})
    assert r.status_code == 401
    assert page.errors == []


def test_compose_a_broadcast_from_the_page_and_two_sessions_read_it(browser: Any, fleet: Fleet) -> None:
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "messages")
    subject = f"fleet notice {time.time()}"
    recipient = page.get_by_label("Session", exact=True)
    assert recipient.is_enabled()
    page.check("input[name=mode][value=broadcast]")
    assert recipient.is_disabled()  # a broadcast has no recipient: the field is off, its label stays
    page.check("input[name=mode][value=direct]")
    assert recipient.is_enabled()
    page.check("input[name=mode][value=broadcast]")
    assert recipient.is_disabled()
    page.fill("input[name=subject]", subject)
    page.fill("textarea[name=body]", "stop pushing to main for ten minutes")
    page.select_option("select[name=importance]", "high")
    page.check("input[name=ack]")
    page.click("form.compose button[type=submit]")
    page.wait_for_selector(f"text=Sent “{subject}”")
    assert recipient.is_enabled()  # the form is reset to a direct message
    for reader in ("m2/agent", "m3/agent"):
        inbox = fleet.call("GET", "/api/coord/messages", reader, 200,
                           params={"to_session": reader, "unread_only": "true"}).json()
        mine = [m for m in inbox if m["subject"] == subject]
        assert len(mine) == 1, inbox
        m = mine[0]
        assert (m["from_session"], m["broadcast"], m["importance"], m["requires_ack"]) == (OVERSEER, True, "high", True)
    assert page.errors == []


def test_admin_force_releases_a_lease_and_a_non_admin_has_no_such_control(browser: Any, fleet: Fleet) -> None:
    resource = f"src/force-{time.time_ns()}.py"
    lease = fleet.call("POST", "/api/coord/locks", AGENT, 201, json={"project_key": "web", "resource": resource}).json()
    viewer = open_page(browser, fleet.hub.url, fleet.token("m2/agent"), "leases")
    viewer.wait_for_selector(f"text={resource}")
    assert viewer.locator("button", has_text="Force-release").count() == 0
    assert viewer.locator("th", has_text="Admin").count() == 0

    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "leases")
    page.fill("input[name=resource]", resource)
    row = page.locator("tr", has_text=resource)
    dialogs: list[str] = []

    def confirm(d: Any) -> None:
        dialogs.append(d.message)
        d.accept()

    page.on("dialog", confirm)
    row.locator("button", has_text="Force-release").click()
    page.wait_for_selector(f"text={resource}", state="detached", timeout=5000)
    assert len(dialogs) == 1 and AGENT in dialogs[0] and resource in dialogs[0]  # the confirmation names the holder
    ended = fleet.call("GET", f"/api/coord/locks/{lease['id']}", AGENT, 200).json()
    assert ended["state"] == "revoked" and ended["released_by"] == OVERSEER
    # and the API refuses a non-admin whatever the page shows
    other = fleet.call("POST", "/api/coord/locks", AGENT, 201, json={"project_key": "web", "resource": resource}).json()
    r = fleet.call("DELETE", f"/api/coord/locks/{other['id']}", "m2/agent", params={"force": "true"})
    assert r.status_code == 403
    assert page.errors == [] and viewer.errors == []


def test_halt_from_the_page_refuses_writes_then_resume(browser: Any, fleet: Fleet) -> None:
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "fleet")
    watcher = open_page(browser, fleet.hub.url, fleet.token("m2/agent"), "fleet")
    assert watcher.locator("button", has_text="Halt fleet").count() == 0  # admin-only control
    page.on("dialog", lambda d: d.accept())
    page.click("button:has-text('Halt fleet')")  # no reason: the browser's required check stops it
    assert fleet.call("GET", "/api/coord/halt", AGENT, 200).json()["halted"] is False
    page.fill("#halt-reason", "bad deploy <b>rollback</b>")
    page.click("button:has-text('Halt fleet')")
    page.wait_for_selector(".banner.halt")
    watcher.wait_for_selector(".banner.halt", timeout=2000)  # everyone watching sees it live
    assert "bad deploy <b>rollback</b>" in watcher.locator(".banner.halt").inner_text()
    r = fleet.call("POST", "/api/coord/todos", AGENT, json={"text": "write during halt"})
    assert r.status_code == 423, r.text
    page.click("button:has-text('Resume fleet')")
    page.wait_for_selector(".banner.halt", state="detached")
    watcher.wait_for_selector(".banner.halt", state="detached", timeout=2000)
    fleet.call("POST", "/api/coord/todos", AGENT, 201, json={"text": "write after resume"})
    assert page.errors == [] and watcher.errors == []


def test_hostile_text_renders_as_text(browser: Any, fleet: Fleet) -> None:
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "messages")
    alerts: list[str] = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    body = "<script>alert(2)</script><a href='javascript:alert(3)'>x</a>"
    fleet.call("POST", "/api/coord/messages", AGENT, 201,
               json={"subject": HOSTILE, "body": body, "to_session": OVERSEER})
    fleet.call("POST", "/api/coord/locks", AGENT, 201,
               json={"project_key": "web", "resource": f"x{time.time_ns()}", "description": HOSTILE})
    link = page.locator("button.msg-subject", has_text=HOSTILE).first
    link.wait_for()
    link.click()
    assert page.locator("pre.body").inner_text() == body
    page.goto(fleet.hub.url + "/#/leases")
    page.wait_for_selector(f"td:has-text('{HOSTILE}')")
    page.goto(fleet.hub.url + "/#/events")
    page.wait_for_selector("td[data-event-id]")
    time.sleep(0.3)
    assert page.locator("img[src=x]").count() == 0 and page.locator("a[href^=javascript]").count() == 0
    assert page.evaluate("document.scripts.length") == 1  # app.js alone (its imports are modules, not elements)
    assert alerts == [] and page.errors == []


class _Attacker(http.server.BaseHTTPRequestHandler):
    """A page on another origin (same host, other port: same-site, so SameSite alone would not stop it)."""

    target = ""

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        # the classic JSON-by-text/plain form: a cross-origin "simple" request that needs no preflight
        action = f"{self.target}/api/coord/messages"
        page = "<p>another origin</p>" if self.path != "/" else (
                f"<form id=f method=POST enctype=text/plain action='{action}'>"
                "<input name='{\"subject\":\"csrf-pwned\",\"body\":\"x\",\"to_session\":\"m2/agent\",\"x\":\"' "
                "value='\"}'></form><script>document.getElementById('f').submit()</script>")
        data = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def attacker(fleet: Fleet) -> Iterator[str]:
    handler = type("Attacker", (_Attacker,), {"target": fleet.hub.url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_cross_origin_form_post_with_the_victims_cookie_is_refused(browser: Any, fleet: Fleet,
                                                                     attacker: str) -> None:
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "messages")
    evil = page.context.new_page()  # the same browser, signed in: its cookie would go along
    with evil.expect_response(lambda r: r.url.endswith("/api/coord/messages") and r.request.method == "POST") as got:
        evil.goto(attacker)
    response = got.value
    assert response.status == 403, response.text()
    assert "cross-origin" in response.text()
    # a fetch from that origin with credentials fares no better (no-cors: sent, but the answer is unreadable)
    evil.goto(attacker + "blank")
    status = evil.evaluate("""async (url) => (await fetch(url + '/api/coord/todos', {method: 'POST',
        credentials: 'include', mode: 'no-cors', body: '{"text":"csrf-todo"}'})).type""", fleet.hub.url)
    assert status == "opaque"
    inbox = fleet.call("GET", "/api/coord/messages", "m2/agent", 200, params={"to_session": "m2/agent"}).json()
    assert not [m for m in inbox if m["subject"] == "csrf-pwned"]
    todos = fleet.call("GET", "/api/coord/todos", OVERSEER, 200, params={"status": "all"}).json()
    assert not [t for t in todos if t["text"] == "csrf-todo"]


class _DevServer(http.server.BaseHTTPRequestHandler):
    """An agent's dev server on another port of the hub's host: it keeps the Cookie header the browser sends it."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.seen.append(self.headers.get("Cookie") or "")
        data = b"<h1>my dev server</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_server_on_another_port_gets_the_cookie_but_cannot_use_it(browser: Any, fleet: Fleet) -> None:
    """Review (HIGH): cookies ignore ports, so a dev server on the hub's host receives ``coord_web_PORT``.

    The cookie alone must be worth nothing: the web session's secret lives in the hub origin's localStorage,
    which that server cannot read. A reload keeps the page signed in and streaming; sign-out clears the secret.
    """
    handler = type("DevServer", (_DevServer,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "events")
        dev = page.context.new_page()  # the user visits the dev server in the same browser
        dev.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        named = websessions.cookie_name(f"127.0.0.1:{fleet.hub.port}")
        assert handler.seen and f"{named}=" in handler.seen[0]  # the browser did send it the cookie
        stolen = {"Cookie": handler.seen[0]}
        url = fleet.hub.url + "/api/coord"
        me = httpx2.get(url + "/web/session", headers=stolen).json()
        assert me["signed_in"] is False and "csrf_token" not in me  # the cookie alone reads no secret
        forged = {**stolen, "Origin": fleet.hub.url}
        r = httpx2.post(url + "/tokens", headers=forged, json={"name": "ops/backdoor", "admin": True})
        assert r.status_code == 401, r.text
        assert httpx2.post(url + "/halt", headers=forged, json={"reason": "pwned"}).status_code == 401
        assert httpx2.get(url + "/whoami", headers=stolen).status_code == 401
        halts = fleet.call("GET", "/api/coord/halt", OVERSEER, 200).json()
        assert not halts.get("halts")
        names = [t["name"] for t in fleet.call("GET", "/api/coord/tokens", OVERSEER, 200).json()]
        assert "ops/backdoor" not in names
        # the page itself still works with its secret, which survives a reload; sign-out clears it
        page.bring_to_front()
        secret = page.evaluate("localStorage.getItem('coord.web.secret')")
        assert secret and len(secret) >= 40
        page.reload()
        page.wait_for_selector(".stream.live", timeout=10_000)
        assert page.locator(".identity").inner_text().startswith(OVERSEER)
        subject = f"after reload {time.time()}"
        fleet.call("POST", "/api/coord/messages", AGENT, 201, json={"subject": subject, "body": "b"})
        page.wait_for_selector(f"text=subject: {subject}", timeout=5000)  # the stream carries the secret too
        page.click("button:has-text('Sign out')")
        page.wait_for_selector("input[name=secret]")
        assert page.evaluate("localStorage.getItem('coord.web.secret')") is None
        assert page.errors == []
    finally:
        server.shutdown()
        server.server_close()


def test_a_no_auth_hub_says_so_and_the_page_acts_as_the_named_session(browser: Any, tmp_path: Path) -> None:
    hub = start_hub(LiveHub(tmp_path / "open", args=("--no-auth",)))
    try:
        ctx = browser.new_context(viewport={"width": 1200, "height": 760})
        page = ctx.new_page()
        page.goto(hub.url + "/#/messages")
        assert "--no-auth" in page.locator(".banner.danger").inner_text()
        page.fill("input[name=secret]", OVERSEER)
        page.click("button[type=submit]")
        page.wait_for_selector(".stream.live")
        assert "--no-auth" in page.locator(".banner.danger").inner_text()  # on every view, not only at the door
        page.fill("input[name=to]", AGENT)
        page.fill("input[name=subject]", "from an open hub")
        page.click("form.compose button[type=submit]")
        page.wait_for_selector("text=Sent “from an open hub”")
        inbox = httpx2.get(hub.url + "/api/coord/messages", params={"to_session": AGENT},
                           headers={"X-Coord-Session": AGENT}).json()
        assert [(m["from_session"], m["subject"]) for m in inbox] == [(OVERSEER, "from an open hub")]
        ctx.close()
    finally:
        hub.stop(9)


def test_the_stream_reconnects_after_a_hub_restart_and_shows_what_it_missed(browser: Any, tmp_path: Path) -> None:
    hub = start_hub(LiveHub(tmp_path / "hub"))
    try:
        admin = hub.admin_token
        agent = {"Authorization": f"Bearer {hub.token(AGENT)}"}
        page = open_page(browser, hub.url, admin, "events")
        httpx2.post(hub.url + "/api/coord/messages", headers=agent, json={"subject": "before restart", "body": "b"})
        page.wait_for_selector("text=subject: before restart")
        hub.stop(9)  # a crash: the stream drops mid-flight
        page.wait_for_selector(".stream.reconnecting", timeout=10_000)
        # while the page is cut off, another writer on the same database records events it has not seen
        store = SQLiteStore(hub.data_dir / "coord.db")
        store.open()
        try:
            offline = Hub(store)
            for i in range(3):
                offline.mutate_sync(Actor(AGENT), lambda tx, now, i=i: messages.send(
                    tx, Actor(AGENT), to_session=None, subject=f"missed {i}", body="b", now=now))
        finally:
            store.close()
        start_hub(hub)  # the page's hub is back on its port
        page.wait_for_selector(".stream.live", timeout=15_000)
        for i in range(3):
            page.wait_for_selector(f"text=subject: missed {i}", timeout=5000)
        httpx2.post(hub.url + "/api/coord/messages", headers=agent, json={"subject": "after restart", "body": "b"})
        page.wait_for_selector("text=subject: after restart", timeout=2000)
        ids = [int(x) for x in page.locator("td[data-event-id]").all_inner_texts()]
        assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids))  # nothing twice, newest first
        assert page.errors == []
    finally:
        hub.stop(9)


def _populate(fleet: Fleet) -> None:
    """A small fleet doing things: presence, leases, messages in a thread, work, a conversation, an orchestrator."""
    from tests.orchestrator.conftest import config

    for name in ("laptop/claude-main", "server/claude-main", "server/codex"):
        fleet.call("POST", "/api/coord/presence/register", name, 200, json={"client": "claude-code"})
        fleet.call("PUT", "/api/coord/conversations/profile", name, 200,
                   json={"machine": name.split("/")[0], "project": "api" if name != "server/codex" else "docs"})
    for name, resource in (("laptop/claude-main", "src/auth/"), ("server/claude-main", "deploy:staging"),
                           ("server/codex", "docs/**/*.md")):
        fleet.call("POST", "/api/coord/locks", name, 201,
                   json={"project_key": "api", "resource": resource, "description": "refactor", "ttl_hours": 1})
    first = fleet.call("POST", "/api/coord/messages", "laptop/claude-main", 201, json={
        "subject": "Ready for review: auth refactor", "body": "Branch issue-42; tests pass.",
        "importance": "high", "requires_ack": True, "message_type": "READY_FOR_REVIEW"}).json()
    fleet.call("POST", "/api/coord/messages", "server/codex", 201, json={
        "subject": "Re: Ready for review: auth refactor", "body": "Looks good.", "to_session": OVERSEER,
        "thread_id": first["id"], "reply_to": first["id"]})
    fleet.call("POST", "/api/coord/todos", "laptop/claude-main", 201, json={"text": "Rotate the staging keys",
                                                                            "project_key": "api"})
    wf = fleet.call("POST", "/api/coord/workflows", OVERSEER, 201, json={"project_key": "api", "name": "Release 2.1",
                                                                         "status": "active"}).json()
    fleet.call("POST", "/api/coord/work-items", OVERSEER, 201, json={
        "workflow_id": wf["id"], "title": "Changelog", "status": "in_progress", "assigned_to": "server/codex"})
    for state in ("building", "deployed"):
        fleet.call("PUT", "/api/coord/components", "server/claude-main", 200,
                   json={"project_key": "api", "component": "gateway", "state": state, "version": "2.1.0"})
    fleet.call("POST", "/api/coord/conversations/turns", "laptop/claude-main", 201, json={
        "to": "server.api", "conversation_id": "auth-handoff", "type": "request", "title": "Hand over the auth work",
        "body": "* Request\nPlease take over =src/auth/= after 17:00."})
    fleet.call("PUT", "/api/coord/orchestrator/config", OVERSEER, 200, json=config(
        smoke_tests={"auto_queue": True, "timeout_seconds": 600}, reviews={"enabled": True},
        merge={"auto_queue": True}, concurrency={"max_workers": 3}))
    host = fleet.headers("laptop/agent")
    reg = httpx2.post(fleet.hub.url + "/api/coord/orchestrator/hosts/register", headers=host, json={
        "machine": "laptop", "capabilities": ["python"], "repos": {"api": "/src/api", "lib": "/src/lib"}, "slots": 3})
    assert reg.status_code == 200, reg.text
    incarnation = reg.json()["host_incarnation"]
    _pipeline(fleet, host, incarnation)
    for issue, title in ((42, "Fix token refresh"), (43, "Flaky login test"), (44, "Docs for scopes")):
        fleet.call("POST", "/api/coord/orchestrator/assignments", OVERSEER, 201,
                   json={"any": True, "repo": "api", "issue": issue, "title": title})
    jobs = []
    for _ in range(2):
        r = httpx2.post(fleet.hub.url + "/api/coord/orchestrator/hosts/next", headers=host,
                        json={"machine": "laptop", "host_incarnation": incarnation, "wait": 0})
        jobs.append(r.json()["assignment"])
    report = fleet.hub.url + "/api/coord/orchestrator/assignments/{}/report"
    httpx2.post(report.format(jobs[0]["id"]), headers=host, json={"attempt": jobs[0]["attempt"], "state": "running",
                "host_incarnation": incarnation,
                "telemetry": {"cost_usd": 0.42, "turns": 9, "last_tool": "Edit", "last_file": "src/auth/refresh.py"}})
    httpx2.post(report.format(jobs[1]["id"]), headers=host, json={"attempt": jobs[1]["attempt"],
                "host_incarnation": incarnation,
                "state": "needs_input", "reason": "Which test database should the login test use?"})
    httpx2.post(fleet.hub.url + f"/api/coord/orchestrator/assignments/{jobs[0]['id']}/log", headers=host,
                json={"attempt": jobs[0]["attempt"], "offset": 0,
                      "text": "Reading src/auth/refresh.py\nRunning tests\n"})


def _pipeline(fleet: Fleet, host: dict[str, str], incarnation: int) -> None:
    """Two finished assignments in the pipeline (the Orchestrator view's 'Tests, reviews and merges'): api#40 passed
    its smoke test and review and waits in the merge queue; api#41's smoke test runs on the laptop."""
    orch = fleet.hub.url + "/api/coord/orchestrator"
    where = {"machine": "laptop", "host_incarnation": incarnation, "wait": 0}

    def finish(issue: int, title: str) -> None:
        fleet.call("POST", "/api/coord/orchestrator/assignments", OVERSEER, 201,
                   json={"any": True, "repo": "api", "issue": issue, "title": title})
        job = httpx2.post(orch + "/hosts/next", headers=host, json=where).json()["assignment"]
        r = httpx2.post(f"{orch}/assignments/{job['id']}/report", headers=host, json={
            "attempt": job["attempt"], "host_incarnation": incarnation, "state": "done", "pushed": True,
            "changed_files": ["src/auth/limits.py"], "telemetry": {"cost_usd": 0.18, "turns": 6}})
        assert r.status_code == 200, r.text

    def run_next(stage: str, **report: Any) -> None:
        run = httpx2.post(orch + "/hosts/next-run", headers=host, json=where).json()["run"]
        assert run["stage"] == stage, run
        r = httpx2.post(f"{orch}/stage-runs/{run['id']}/report", headers=host,
                        json={"attempt": run["attempt"], "host_incarnation": incarnation, **report})
        assert r.status_code == 200, r.text

    finish(40, "Pin the httpx version")
    run_next("test", state="done", exit_code=0, output_tail="41 passed in 3.2s")
    run_next("review", state="done", verdict="approve", summary="Pinned, with a comment saying why.", findings=[])
    finish(41, "Rate-limit the login endpoint")
    run_next("test", state="running", commit="9f3c2a1")


VIEWS = {"fleet": "laptop/claude-main", "messages": "Ready for review", "conversations": "Hand over the auth work",
         "leases": "deploy:staging", "work": "Release 2.1", "board": "Which test database", "events": "lease.granted"}


def test_every_view_renders_the_fleet_and_is_pictured(browser: Any, fleet: Fleet, tmp_path: Path) -> None:
    from tests.web.conftest import screenshot_dir

    _populate(fleet)
    out = screenshot_dir(tmp_path)
    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "fleet")
    for view, expect in VIEWS.items():
        page.click(f"nav a[href='#/{view}']")  # keyboard-reachable links, not script-only controls
        page.wait_for_selector(f"text={expect}", timeout=5000)
        assert page.locator(".state.error").count() == 0, view
        if view == "messages":
            page.click("button.msg-subject >> nth=1")
            page.wait_for_selector("pre.body")
        elif view == "conversations":  # one conversation's turns, its org-mode text shown as text
            page.click("text=Hand over the auth work")
            page.wait_for_selector("pre.body >> text=Please take over")
            meta = page.locator("ol.turns li p.meta").first.inner_text()
            assert "→ server.api " in meta, meta  # its time apart from the address (it read "server.apinow")
        elif view == "board":  # a smoke test names its work as a merge does (issue and title); the relayed log
            run = page.locator("h3:has-text('Tests, reviews and merges') + div.scroll tr", has_text="api#41")
            assert run.locator("td").first.inner_text() == "api#41 Rate-limit the login endpoint"
            page.click("button[aria-label='Log of api#42']")
            page.wait_for_selector("pre.log >> text=Running tests")
        elif view == "work":
            page.click("text=Release 2.1")
            page.wait_for_selector("text=Changelog")
            page.click("button:has-text('gateway')")
            page.wait_for_selector("ol.history li >> nth=1")  # both states of its history
        page.screenshot(path=str(out / f"{view}.png"))
    # the feed filters by kind prefix, session and project
    page.fill("input[name=kind]", "lease.")
    page.fill("input[name=session]", "SERVER/")  # ignoring case, as the hub folds machine names
    page.wait_for_selector("text=matching events: the whole log searched.")  # the hub answers the filter
    kinds = page.locator("td:nth-child(2)").all_inner_texts()
    sessions = page.locator("td:nth-child(3)").all_inner_texts()
    assert kinds and all(k.startswith("lease.") for k in kinds) and all(x.startswith("server/") for x in sessions)
    # the session a conversation was addressed to releases it from the page (a turn needs the sender's address)
    party = open_page(browser, fleet.hub.url, fleet.token("server/claude-main"), "conversations")
    party.on("dialog", lambda d: d.accept())
    party.click("text=Hand over the auth work")
    party.click("button:has-text('Release')")
    party.wait_for_selector("text=No conversations.")  # the open list empties live
    conv = fleet.call("GET", "/api/coord/conversations/auth-handoff", OVERSEER, 200).json()
    assert conv["state"] == "released"
    page.keyboard.press("Tab")  # the first Tab lands on a focusable control
    assert page.evaluate("document.activeElement.tagName") in ("A", "BUTTON", "INPUT")
    phone = page.context.new_page()
    phone.set_viewport_size({"width": 390, "height": 760})
    phone.goto(fleet.hub.url + "/#/leases")
    phone.wait_for_selector("text=deploy:staging")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 400  # no sideways scrolling on a phone
    phone.screenshot(path=str(out / "phone-leases.png"))
    page.click("nav a[href='#/leases']")
    page.fill("input[name=project]", "API")  # … and project keys
    page.fill("input[name=holder]", "Laptop/")
    page.wait_for_selector("td:text-is('src/auth/')")
    holders = page.locator("td:nth-child(3)").all_inner_texts()
    assert holders and all(h.startswith("laptop/") for h in holders), holders
    page.click("nav a[href='#/fleet']")
    page.fill("input[name=filter]", "LAPTOP")
    page.wait_for_selector("td:text-is('laptop/claude-main')")
    assert page.locator("td:text-is('server/codex')").count() == 0
    assert page.errors == []
