"""The push scenario with the raw-socket receiver (:mod:`coordhub.bench.sse_receiver`) in its own process.

Same measure as ``scenarios.push`` — latency from just before a broadcast's
POST to each subscriber having the event — without an HTTP library or JSON
decoding on the receiving side, and with receiving and sending in two
processes, so the figure is the hub's, not the driver's queue.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2

from coordhub.bench.scenarios import Context
from coordhub.bench.sse_receiver import spawn
from coordhub.bench.stats import percentile
from coordhub.bench.target import mint_tokens


async def push_raw(ctx: Context, subscribers: int = 1000, sends: int = 30, interval: float = 0.2) -> dict[str, Any]:
    """``subscribers`` raw SSE streams, ``sends`` broadcasts ``interval`` s apart; the push report."""
    tokens = await mint_tokens(ctx.target, f"PUSH-{ctx.run_id}", subscribers + 1, concurrency=32)
    receiver = spawn(ctx.target.url, [t for _, t in tokens[1:]])
    assert receiver.stdin is not None and receiver.stdout is not None
    try:
        t0 = time.monotonic()
        ready = await asyncio.to_thread(receiver.stdout.readline)
        if not ready.startswith("ready "):
            raise SystemExit(f"bench: the SSE receiver did not start: {ready!r}")
        connect_s = time.monotonic() - t0
        rss_open = ctx.target.rss_mib()
        cpu0 = ctx.target.cpu_seconds()
        sent: dict[str, float] = {}
        async with httpx2.AsyncClient(base_url=ctx.target.url, timeout=60.0,
                                      headers={"Authorization": f"Bearer {tokens[0][1]}"}) as c:
            for i in range(sends):
                subject = f"push-{ctx.run_id}-{i}"
                sent[subject] = time.monotonic()
                r = await c.post("/api/coord/messages", json={"subject": subject, "body": "x"})
                r.raise_for_status()
                ctx.tick((i + 1) / sends)
                await asyncio.sleep(interval)
        await asyncio.sleep(2.0)
        cpu1 = ctx.target.cpu_seconds()
        receiver.stdin.write("end\n")
        receiver.stdin.flush()
        report = json.loads(await asyncio.to_thread(receiver.stdout.readline))
    finally:
        if receiver.poll() is None:
            receiver.kill()
        receiver.wait()
    lat = sorted((t - sent[s]) * 1000 for s, times in report["receipts"].items() if s in sent for t in times)
    firsts = sorted((min(times) - sent[s]) * 1000 for s, times in report["receipts"].items() if s in sent)

    def p(values: list[float], q: float) -> float | None:
        v = percentile(values, q)
        return None if v is None else round(v, 2)

    missing = subscribers * sends - len(lat)
    summary = {"ops": len(lat), "ops_per_s": None, "p50_ms": p(lat, 50), "p95_ms": p(lat, 95), "p99_ms": p(lat, 99),
               "errors": missing, "error_samples": report["samples"]}
    return {"headline": summary, "subscribers": subscribers, "broadcasts": sends, "hubs": 1, "receiver": "raw",
            "first_receipt_p50_ms": p(firsts, 50),
            "hub_cpu_s": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2), "driver_cpu_s": None,
            "seconds": round(sends * interval + 2.0, 1), "missing": missing,
            "max_ms": round(lat[-1], 2) if lat else None, "mean_ms": round(sum(lat) / len(lat), 2) if lat else None,
            "connect_all_s": round(connect_s, 2), "stream_errors": report["failed"], "rss_mib_all_open": rss_open}
