"""The dashboard under load (issue 13, slow): 1,000 sessions, 10,000 leases, 100 events/s.

Measured in the browser: time to first render of the fleet and lease views
(navigation start to the full count on screen, from ``performance.now()``),
and event-to-DOM latency (the event's ``created_at`` on the hub to the moment
its row is in the page, by a ``MutationObserver``; hub and browser share this
machine's clock), with the page's long tasks while events arrive. Prints the
numbers; asserts the design target (p50 ≤ 100 ms) and that the tab never froze.

    pytest -m slow tests/web/test_dashboard_perf.py -s
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import statistics
import time
from typing import Any

import httpx2
import pytest

from coordhub.clock import parse_iso
from tests.web.conftest import OVERSEER, Fleet, open_page

pytestmark = pytest.mark.slow

SESSIONS = 1000
LEASES = 10_000
RATE = 100  # events per second
SECONDS = 10

OBSERVE = """() => {
  window.__seen = {};
  window.__long = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__long.push(e.duration); })
    .observe({ type: "longtask", buffered: false });
  new MutationObserver((records) => {
    const now = Date.now();
    for (const r of records) for (const n of r.addedNodes) {
      if (n.nodeType !== 1) continue;
      for (const td of n.matches("td[data-event-id]") ? [n] : n.querySelectorAll("td[data-event-id]")) {
        const id = td.dataset.eventId;
        if (!(id in window.__seen)) window.__seen[id] = now;
      }
    }
  }).observe(document.querySelector("main"), { childList: true, subtree: true });
}"""


def in_thread(coro: Any) -> Any:
    """Run a coroutine to its end on a thread of its own (Playwright's sync API holds this thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _load(fleet: Fleet) -> list[str]:
    """SESSIONS tokens, each session present and holding LEASES / SESSIONS leases, 32 requests at a time."""
    gate = asyncio.Semaphore(32)
    admin = fleet.token(OVERSEER)
    async with httpx2.AsyncClient(base_url=fleet.hub.url, timeout=60) as client:
        async def one(token: str, path: str, body: dict[str, Any]) -> Any:
            async with gate:
                r = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
                assert r.status_code in (200, 201), r.text
                return r.json()

        made = await asyncio.gather(*(one(admin, "/api/coord/tokens", {"name": f"m{i % 50}/agent{i}"})
                                      for i in range(SESSIONS)))
        tokens = [m["token"] for m in made]
        await asyncio.gather(*(one(t, "/api/coord/presence/register", {}) for t in tokens))
        per = LEASES // SESSIONS
        await asyncio.gather(*(one(t, "/api/coord/locks", {"project_key": f"p{i % 20}",
                                                            "resource": f"s{i}/f{j}.py", "ttl_hours": 4})
                               for i, t in enumerate(tokens) for j in range(per)))
    return tokens


async def _drive(fleet: Fleet, token: str) -> None:
    """Send RATE messages (broadcasts) a second for SECONDS, paced by the clock, not by the answers."""
    async with httpx2.AsyncClient(base_url=fleet.hub.url, timeout=30,
                                  headers={"Authorization": f"Bearer {token}"}) as client:
        start = time.monotonic()

        async def one(k: int) -> None:
            r = await client.post("/api/coord/messages", json={"subject": f"load {k}", "body": "b"})
            assert r.status_code == 201, r.text

        tasks = []
        for k in range(RATE * SECONDS):
            await asyncio.sleep(max(0.0, start + k / RATE - time.monotonic()))
            tasks.append(asyncio.create_task(one(k)))
        await asyncio.gather(*tasks)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@pytest.mark.timeout(900)
def test_first_render_and_event_latency_at_scale(browser: Any, fleet: Fleet) -> None:
    t0 = time.monotonic()
    tokens = in_thread(_load(fleet))
    print(f"\nloaded {SESSIONS} sessions and {LEASES} leases in {time.monotonic() - t0:.1f} s")

    page = open_page(browser, fleet.hub.url, fleet.token(OVERSEER), "events")
    results: dict[str, float] = {}
    for view, count in (("leases", LEASES), ("fleet", SESSIONS)):
        page.goto(fleet.hub.url + "/static/app.css")  # leave the app, so the next visit is a first render
        page.goto(fleet.hub.url + f"/#/{view}")
        page.wait_for_function("(n) => { const c = document.querySelector('.count'); "
                               "return c !== null && parseInt(c.textContent, 10) >= n; }", arg=count, timeout=60_000)
        results[view] = page.evaluate("performance.now()")
        rows = page.locator("tbody tr").count()
        assert rows < 60, f"{view}: {rows} rows in the DOM; the list is not virtualised"
    # scrolling to the end of 10,000 leases stays cheap
    page.goto(fleet.hub.url + "/#/leases")
    page.wait_for_selector(f"text={LEASES} of {LEASES} live leases")
    scroll = page.evaluate("""async () => { const box = document.querySelector('.vt'); const t = performance.now();
        box.scrollTop = box.scrollHeight; await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
        return performance.now() - t; }""")

    page.goto(fleet.hub.url + "/#/events")
    page.wait_for_selector("td[data-event-id]")
    page.evaluate(OBSERVE)
    last = page.evaluate("Math.max(...Object.keys(window.__seen).map(Number), 0)")
    first_id = int(page.locator("td[data-event-id]").first.inner_text())
    in_thread(_drive(fleet, tokens[0]))
    time.sleep(1.0)  # the last events reach the page
    seen: dict[str, float] = page.evaluate("window.__seen")
    long_tasks: list[float] = page.evaluate("window.__long")
    events: list[dict[str, Any]] = []
    after = max(first_id, last)
    while True:
        page_rows = fleet.call("GET", "/api/coord/audit", OVERSEER, 200,
                               params={"after": after, "limit": 1000, "kinds": "message.sent"}).json()
        if not page_rows:
            break
        events += page_rows
        after = page_rows[-1]["id"]
    assert len(events) == RATE * SECONDS
    latencies = []
    for e in events:
        shown = seen.get(str(e["id"]))
        assert shown is not None, f"event {e['id']} never reached the page"
        latencies.append(shown - parse_iso(e["created_at"]) * 1000)
    p50, p95, p99 = (_pct(latencies, p) for p in (50, 95, 99))
    print(f"first render: leases view {results['leases']:.0f} ms ({LEASES} leases), "
          f"fleet view {results['fleet']:.0f} ms ({SESSIONS} sessions); scroll to the end {scroll:.0f} ms")
    print(f"event→DOM at {RATE}/s for {SECONDS} s ({len(latencies)} events): p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
          f"p99 {p99:.0f} ms, max {max(latencies):.0f} ms, mean {statistics.mean(latencies):.0f} ms; "
          f"long tasks {len(long_tasks)}, longest {max(long_tasks, default=0):.0f} ms")
    assert p50 <= 100, "design target: event visible in an open page, p50 ≤ 100 ms at 100 events/s"
    assert max(long_tasks, default=0) < 1000, "the tab froze for a second or more"
    assert page.errors == []
