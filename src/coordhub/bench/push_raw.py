"""The push scenario with the raw-socket receiver (:mod:`coordhub.bench.sse_receiver`) in its own process.

Same measure as ``scenarios.push`` — latency from just before a broadcast's
POST to each subscriber having the event — without an HTTP library or JSON
decoding on the receiving side, and with receiving and sending in two
processes, so the figure is the hub's, not the driver's queue.

"Having the event" is the moment the kernel queued it on the subscriber's
socket (its receive timestamp, see :mod:`coordhub.bench.sse_receiver`): the
headline and ``first_receipt_p50_ms``. The same figures by the receiver's
own clock, when its single process got round to each socket, are under
``receiver_clock`` (what this scenario reported before it read the kernel's
times); their difference is the receiver's delay, not the hub's. Where the
kernel gives no receive times (not Linux), the headline falls back to the
receiver's clock and ``clock`` says so.

Two parts of the latency are reported apart: ``send_p50_ms``, the
broadcast's POST round trip (the write, durable, before the fan-out is
counted on), and ``sweep_p50_ms``, from a broadcast's first receipt to its
last (one pass over every subscriber's socket). Run against the ceiling
(:mod:`coordhub.bench.ceiling`, a bare stream and a send that writes to every
stream in turn) the same figures say what the stack itself costs on this
machine: an event loop that slept for ``interval`` seconds answers its first
request slower than a busy one, on some virtual machines by milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
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
        answered: list[float] = []  # each broadcast's POST round trip (ms)
        async with httpx2.AsyncClient(base_url=ctx.target.url, timeout=60.0,
                                      headers={"Authorization": f"Bearer {tokens[0][1]}"}) as c:
            for i in range(sends):
                subject = f"push-{ctx.run_id}-{i}"
                sent[subject] = time.monotonic()
                r = await c.post("/api/coord/messages", json={"subject": subject, "body": "x"})
                answered.append((time.monotonic() - sent[subject]) * 1000)
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
    user = latencies(report["receipts"], sent)
    kernel = latencies(report["kernel"], sent)
    by_kernel = bool(user["all"]) and len(kernel["all"]) == len(user["all"])
    chosen = kernel if by_kernel else user  # the clock the headline is by
    lat = chosen["all"]
    missing = subscribers * sends - len(user["all"])
    summary = {"ops": len(user["all"]), "ops_per_s": None, "p50_ms": _p(lat, 50), "p95_ms": _p(lat, 95),
               "p99_ms": _p(lat, 99), "errors": missing, "error_samples": report["samples"]}
    return {"headline": summary, "clock": "kernel receive time" if by_kernel else "receiver",
            "subscribers": subscribers, "broadcasts": sends, "hubs": 1, "receiver": "raw",
            "first_receipt_p50_ms": _p(chosen["firsts"], 50),
            "sweep_p50_ms": _p(chosen["sweeps"], 50), "send_p50_ms": _p(sorted(answered), 50),
            "hub_cpu_s": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2), "driver_cpu_s": None,
            "seconds": round(sends * interval + 2.0, 1), "missing": missing,
            "max_ms": round(lat[-1], 2) if lat else None, "mean_ms": round(sum(lat) / len(lat), 2) if lat else None,
            "receiver_clock": _summary(user), "connect_all_s": round(connect_s, 2),
            "stream_errors": report["failed"], "rss_mib_all_open": rss_open}


def latencies(receipts: Mapping[str, Sequence[float | None]], sent: Mapping[str, float]) -> dict[str, list[float]]:
    """Milliseconds from each broadcast's send to each of its receipts (``all``, sorted), to its first receipt of
    all (``firsts``, sorted), and from its first receipt to its last (``sweeps``, sorted: how long the fan-out took
    to reach every subscriber), from ``{subject: [monotonic seconds or None, …]}``; subjects not sent and None times
    are left out."""
    every: list[float] = []
    firsts: list[float] = []
    sweeps: list[float] = []
    for subject, times in receipts.items():
        if subject not in sent:
            continue
        known = [(t - sent[subject]) * 1000 for t in times if t is not None]
        every.extend(known)
        if known:
            firsts.append(min(known))
            sweeps.append(max(known) - min(known))
    return {"all": sorted(every), "firsts": sorted(firsts), "sweeps": sorted(sweeps)}


def _summary(lat: dict[str, list[float]]) -> dict[str, float | None]:
    every = lat["all"]
    return {"p50_ms": _p(every, 50), "p99_ms": _p(every, 99), "max_ms": round(every[-1], 2) if every else None,
            "first_receipt_p50_ms": _p(lat["firsts"], 50)}


def _p(values: list[float], q: float) -> float | None:
    v = percentile(values, q)
    return None if v is None else round(v, 2)
