"""The push scenario with the raw-socket receiver (:mod:`coordhub.bench.sse_receiver`) in its own process.

Same measure as ``scenarios.push`` — latency from a broadcast's POST to each
subscriber having the event — without an HTTP library or JSON decoding on
either side, and with receiving and sending in two processes, so the figure
is the hub's, not the driver's queue. The POST is written by hand on a
keep-alive connection (:func:`broadcast`) and its time taken just before its
bytes go to the kernel; the receiver waits :data:`SETTLE` once woken before it
reads, so that it does not take a core from the hub mid-sweep.

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
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from coordhub.bench.scenarios import Context
from coordhub.bench.sse_receiver import spawn
from coordhub.bench.stats import percentile
from coordhub.bench.target import mint_tokens

SETTLE = 0.02  # seconds the receiver waits, once woken, before reading (sse_receiver.spawn); broadcasts: 0.2 s apart


async def push_raw(ctx: Context, subscribers: int = 1000, sends: int = 30, interval: float = 0.2) -> dict[str, Any]:
    """``subscribers`` raw SSE streams, ``sends`` broadcasts ``interval`` s apart; the push report."""
    tokens = await mint_tokens(ctx.target, f"PUSH-{ctx.run_id}", subscribers + 1, concurrency=32)
    receiver = spawn(ctx.target.url, [t for _, t in tokens[1:]], settle=SETTLE)
    assert receiver.stdin is not None and receiver.stdout is not None
    try:
        t0 = time.monotonic()
        ready = await asyncio.to_thread(receiver.stdout.readline)
        if not ready.startswith("ready "):
            raise SystemExit(f"bench: the SSE receiver did not start: {ready!r}")
        connect_s = time.monotonic() - t0
        rss_open, pss_open = ctx.target.rss_mib(), ctx.target.pss_mib()
        cpu0 = ctx.target.cpu_seconds()
        subjects = [f"push-{ctx.run_id}-{i}" for i in range(sends)]
        sent, answered = await asyncio.to_thread(broadcast, ctx.target.url, tokens[0][1], subjects, interval,
                                                 ctx.tick)
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
            "stream_errors": report["failed"], "rss_mib_all_open": rss_open,
            "pss_mib_all_open": pss_open}


def broadcast(url: str, token: str, subjects: Sequence[str], interval: float,
              tick: Callable[[float], None] | None = None) -> tuple[dict[str, float], list[float]]:
    """POST one broadcast per subject, ``interval`` s apart, on one keep-alive connection; when each was sent
    (``time.monotonic()`` just before its bytes went to the kernel, by subject) and each POST's round trip (ms).

    The requests are written by hand and the answers read raw, so that the
    send time is the request's and not an HTTP client's: building a request
    with ``httpx2`` took ~0.9 ms (p50) on a two-core machine before its first
    byte reached the hub's socket, all of which the latency counted.
    ``RuntimeError`` when the hub refuses one or answers in a shape read here
    does not take (not a ``Content-Length`` body).
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sent: dict[str, float] = {}
    answered: list[float] = []
    with socket.create_connection((host, port), timeout=60) as sock, sock.makefile("rb") as reader:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i, subject in enumerate(subjects):
            body = json.dumps({"subject": subject, "body": "x"}).encode()
            request = (f"POST /api/coord/messages HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}"
                       f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
            sent[subject] = time.monotonic()
            sock.sendall(request)
            status, answer = _answer(reader)
            answered.append((time.monotonic() - sent[subject]) * 1000)
            if status >= 300:
                raise RuntimeError(f"bench: the broadcast was refused: {status} {answer[:200]!r}")
            if tick is not None:
                tick((i + 1) / len(subjects))
            time.sleep(interval)
    return sent, answered


def _answer(reader: Any) -> tuple[int, bytes]:
    """One HTTP/1.1 answer with a ``Content-Length`` body from ``reader`` (a binary file of the socket)."""
    status_line = reader.readline()
    if not status_line.startswith(b"HTTP/1.1 "):
        raise RuntimeError(f"bench: not an HTTP answer: {status_line[:100]!r}")
    length = None
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise RuntimeError("bench: an answer without Content-Length")
    return int(status_line.split()[1]), reader.read(length)


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
