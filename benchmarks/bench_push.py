"""Push latency benchmark: send → SSE receipt with many subscribers, and the hub's memory meanwhile.

Opens ``--subscribers`` (default 1,000) Server-Sent-Event streams on
``/api/coord/events``, each as its own session, then sends ``--messages``
broadcasts, one every ``--interval`` seconds. Latency is measured per
(subscriber, message) from just before the sender's POST to the moment the
subscriber has the event: what an agent waiting on the stream experiences.
Reports p50/p95/p99/max, receipts missing, and the hub's RSS with every
stream open (DESIGN.md §6: p50 ≤ 5 ms, p99 ≤ 30 ms; ≤ 150 MB with 1,000 SSE
clients). All subscribers live in this one Python process on the same two
cores as the hub, so latencies include the driver's own scheduling.

    python benchmarks/bench_push.py                     # 1,000 subscribers, 30 broadcasts
    python benchmarks/bench_push.py --subscribers 200 --messages 50 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

import httpx2

from bench_http import Hub, mint_tokens, start_hub


async def subscribe(client: httpx2.AsyncClient, token: str, connected: asyncio.Event, counter: list[int],
                    total: int, sent: dict[str, float], lat: list[float]) -> None:
    """Hold one SSE stream; record the latency of each broadcast it receives."""
    headers = {"Authorization": f"Bearer {token}"}
    async with client.stream("GET", "/api/coord/events", params={"kinds": "message.sent"}, headers=headers) as r:
        async for line in r.aiter_lines():
            if line.startswith(": connected"):
                counter[0] += 1
                if counter[0] == total:
                    connected.set()
            elif line.startswith("data: "):
                now = time.monotonic()
                subject = json.loads(line[6:])["payload"]["subject"]
                if subject in sent:
                    lat.append(now - sent[subject])


async def run(hub: Hub, n: int, messages: int, interval: float) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    tokens = [t for _, t in await asyncio.to_thread(mint_tokens, hub, run_id, n + 1)]
    sender, subs = tokens[0], tokens[1:]
    limits = httpx2.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    sent: dict[str, float] = {}
    lat: list[float] = []
    connected, counter = asyncio.Event(), [0]
    async with httpx2.AsyncClient(base_url=hub.url, limits=limits, timeout=httpx2.Timeout(30, read=None)) as client:
        tasks = [asyncio.create_task(subscribe(client, t, connected, counter, n, sent, lat)) for t in subs]
        t0 = time.monotonic()
        await asyncio.wait_for(connected.wait(), 120)
        connect_s = time.monotonic() - t0
        rss_open = hub.rss_kib()
        for i in range(messages):
            subject = f"bench-{run_id}-{i}"
            sent[subject] = time.monotonic()
            r = await client.post("/api/coord/messages", json={"subject": subject, "body": "x"},
                                  headers={"Authorization": f"Bearer {sender}"})
            r.raise_for_status()
            await asyncio.sleep(interval)
        await asyncio.sleep(2.0)  # let stragglers arrive
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    ms = sorted(x * 1000 for x in lat)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(p * len(ms)))], 2) if ms else float("nan")

    return {"subscribers": n, "messages": messages, "receipts": len(ms), "missing": n * messages - len(ms),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": round(ms[-1], 2) if ms else None,
            "mean_ms": round(statistics.fmean(ms), 2) if ms else None, "connect_all_s": round(connect_s, 2),
            "hub_rss_mib_all_open": round(rss_open.get("VmRSS", 0) / 1024, 1),
            "hub_peak_rss_mib": round(hub.rss_kib().get("VmHWM", 0) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between broadcasts")
    parser.add_argument("--url", help="measure the hub at this URL instead of starting one")
    parser.add_argument("--token", help="admin token of the hub at --url")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    hub = Hub(args.url, args.token or "") if args.url else start_hub(None, None)
    try:
        result = asyncio.run(run(hub, args.subscribers, args.messages, args.interval))
    finally:
        hub.stop()
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    print("targets (DESIGN.md §6): push p50 ≤ 5 ms, p99 ≤ 30 ms with 1,000 subscribers; hub ≤ 150 MB RSS")


if __name__ == "__main__":
    main()
