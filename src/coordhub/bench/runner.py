"""Running scenarios end to end: a fresh hub per scenario, the ceiling, and the report."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from coordhub.bench import scenarios
from coordhub.bench.driver import Tick
from coordhub.bench.target import Target, start, start_ceiling

TARGETS = {
    "lease": "≥ 2,000 cycles/s, p99 ≤ 25 ms @ 64 clients",
    "message": "≥ 3,000 sends/s, p99 ≤ 25 ms @ 64 clients",
    "lease-contended": "(no target; correctness under contention)",
    "broadcast": "one write, ≤ 10 ms, 10,000 sessions",
    "inbox": "p50 ≤ 5 ms with 1,000,000 stored messages",
    "push": "p50 ≤ 5 ms, p99 ≤ 30 ms, 1,000 subscribers; ≤ 150 MB RSS",
    "soak": "500 agents, 10 min: 0 errors, 0 lost messages",
}
WITH_CEILING = ("lease", "message")


@dataclass
class Options:
    """How to run: against which hub, how hard, how long."""

    clients: int | None = None
    duration: float | None = None
    url: str | None = None
    token: str | None = None
    database_url: str | None = None
    sqlite_synchronous: str | None = None
    ceiling: bool = True
    messages: int = 1_000_000
    subscribers: int = 1000
    sessions: int = 10_000


def _defaults(name: str, o: Options) -> tuple[int, float]:
    if name == "soak":
        return o.clients or 500, o.duration or 600.0
    return o.clients or 64, o.duration or 10.0


def _hub_args(o: Options) -> list[str]:
    args = ["--database-url", o.database_url] if o.database_url else []
    return args + (["--sqlite-synchronous", o.sqlite_synchronous] if o.sqlite_synchronous else [])


def _scenario(name: str, o: Options) -> scenarios.Scenario:
    return {
        "lease": scenarios.lease, "lease-contended": scenarios.lease_contended, "message": scenarios.message,
        "broadcast": lambda ctx: scenarios.broadcast(ctx, sessions=o.sessions),
        "inbox": scenarios.inbox, "push": lambda ctx: scenarios.push(ctx, subscribers=o.subscribers),
        "soak": scenarios.soak,
    }[name]


def _open(name: str, o: Options, run_id: str, tick: Tick) -> Target:
    if o.url:
        if name == "inbox":
            raise SystemExit("bench: the inbox scenario fills its own hub first; run it without --url")
        return Target(o.url.rstrip("/"), o.token or "")
    if name != "inbox":
        return start(_hub_args(o))
    folder = Path(tempfile.mkdtemp(prefix="coord-bench-inbox-"))
    scenarios.populate_inbox(o.database_url or f"sqlite:///{folder / 'coord.db'}", run_id, o.messages, tick=tick)
    return start(_hub_args(o), data_dir=folder)


def run(names: list[str], o: Options, progress: Callable[[str], Tick]) -> dict[str, Any]:
    """Run each scenario on a fresh hub (and, for lease and message, on the ceiling); return the report."""
    results: dict[str, Any] = {}
    for name in names:
        run_id = uuid.uuid4().hex[:8]
        clients, duration = _defaults(name, o)
        target = _open(name, o, run_id, progress(f"{name}: filling the store"))
        try:
            health = httpx2.get(target.url + "/health", timeout=10).json()
            ctx = scenarios.Context(target, clients, duration, progress(name), run_id)
            result: dict[str, Any] = asyncio.run(_scenario(name, o)(ctx))
            result.update(backend=health.get("backend"), durability=health.get("durability"),
                          clients=clients, duration=duration, rss_mib=target.rss_mib(),
                          peak_rss_mib=target.peak_rss_mib(), target=TARGETS[name])
        finally:
            target.stop()
        if o.ceiling and name in WITH_CEILING:
            result["ceiling"] = _ceiling(name, o, clients, duration, progress(f"{name}: ceiling"))
            ratio = result["headline"]["ops_per_s"] / max(result["ceiling"]["headline"]["ops_per_s"], 0.001)
            result["ratio_to_ceiling"] = round(ratio, 2)
        results[name] = result
    return results


def _ceiling(name: str, o: Options, clients: int, duration: float, tick: Tick) -> dict[str, Any]:
    target = start_ceiling()
    try:
        ctx = scenarios.Context(target, clients, duration, tick, uuid.uuid4().hex[:8])
        return asyncio.run(_scenario(name, o)(ctx))
    finally:
        target.stop()
