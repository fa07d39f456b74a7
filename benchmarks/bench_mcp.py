"""MCP benchmark of a coordhub hub: ``tools/call`` per second over streamable HTTP at ``/mcp``.

N simulated agents (default 32) run concurrently in one asyncio loop, each
with its own official-SDK ``mcp.Client`` over its own ``httpx2.AsyncClient``
(its own session token), for ``--duration`` seconds per scenario:

* ``list_leases``: a cheap read tool, over and over;
* ``send_message``: each agent sends direct messages to the next agent.

Each call is one HTTP POST to ``/mcp`` (stateless, JSON response), which the
hub answers by calling its own REST API in-process as the caller. Reported per
scenario: calls, calls/s, p50/p95/p99 latency in ms, errors (a tool error
counts), and the CPU seconds the hub and this driver spent; both share the
machine, and the SDK client is not light, so the driver's CPU is the first
thing to look at when the numbers are low. By default it starts its own hub
(``python -m coordhub serve --rate-limit 0``, SQLite FULL, on a temp data
dir: the load is the point, not the per-token limit); ``--url`` and
``--token`` (an admin token) measure a running hub instead, whose rate limit
(100 requests/s per token by default) then applies to each agent.

Design target (DESIGN.md §6, 2 cores, loopback): MCP tools/call ≥ 800/s.

    python benchmarks/bench_mcp.py                         # 32 clients, 10 s per scenario
    python benchmarks/bench_mcp.py --clients 8 --duration 5 --mode auto --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from coordhub.bench.stats import Series
from coordhub.bench.target import Target, mint_tokens, start

TARGET = "MCP tools/call ≥ 800/s"


@dataclass
class Agent:
    """One simulated agent: its session, its MCP client, and whom it messages."""

    session: str
    client: Client
    peer: str
    n: int = 0


Op = Callable[[Agent, Series], Awaitable[None]]


async def timed_call(series: Series, agent: Agent, tool: str, arguments: dict[str, Any]) -> None:
    """One ``tools/call``; its latency if it succeeded, else an error."""
    t0 = time.perf_counter()
    try:
        result = await agent.client.call_tool(tool, arguments)
    except Exception as exc:  # a protocol or transport failure: count it, keep going
        series.fail(f"{type(exc).__name__}: {exc}")
        return
    if result.is_error:
        block = result.content[0] if result.content else None
        series.fail(block.text if isinstance(block, TextContent) else "is_error")
        return
    series.latencies.append(time.perf_counter() - t0)


async def list_leases(agent: Agent, out: Series) -> None:
    """The cheap read."""
    await timed_call(out, agent, "list_leases", {"session_id": agent.session})


async def send_message(agent: Agent, out: Series) -> None:
    """A direct message to the agent's peer."""
    agent.n += 1
    await timed_call(out, agent, "send_message", {"to": agent.peer, "subject": f"bench {agent.n}", "body": "x" * 200})


SCENARIOS: dict[str, Op] = {"list_leases": list_leases, "send_message": send_message}


async def run_scenario(agents: list[Agent], op: Op, duration: float, hub: Target) -> dict[str, Any]:
    """Warm every agent up with one call, then let all run ``op`` for ``duration`` s; summarise."""
    await asyncio.gather(*(op(a, Series()) for a in agents))
    out = Series()
    hub_cpu0, driver_cpu0 = hub.cpu_seconds(), time.process_time()
    t0 = time.perf_counter()
    end = t0 + duration

    async def loop(agent: Agent) -> None:
        while time.perf_counter() < end:
            await op(agent, out)

    await asyncio.gather(*(loop(a) for a in agents))
    seconds = time.perf_counter() - t0
    result = out.summary(seconds)
    result["seconds"] = round(seconds, 2)
    hub_cpu1 = hub.cpu_seconds()
    result["hub_cpu_s"] = None if hub_cpu0 is None or hub_cpu1 is None else round(hub_cpu1 - hub_cpu0, 2)
    result["driver_cpu_s"] = round(time.process_time() - driver_cpu0, 2)
    return result


async def run_all(hub: Target, tokens: list[tuple[str, str]], duration: float, mode: str) -> dict[str, Any]:
    """Every scenario with one MCP client per agent, kept open across them."""
    async with AsyncExitStack() as stack:
        agents = []
        for i, (session, token) in enumerate(tokens):
            http = await stack.enter_async_context(httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {token}"}, timeout=30.0,
                limits=httpx2.Limits(max_connections=1)))
            client = await stack.enter_async_context(
                Client(streamable_http_client(hub.url + "/mcp", http_client=http), mode=mode))
            agents.append(Agent(session, client, tokens[(i + 1) % len(tokens)][0]))
        return {name: await run_scenario(agents, op, duration, hub) for name, op in SCENARIOS.items()}


def print_table(report: dict[str, Any]) -> None:
    """The human-readable report."""
    print(f"hub {report['url']}  backend {report['backend']}  durability: {report['durability']}")
    print(f"{report['clients']} MCP clients (mode {report['mode']}), {report['duration']} s per scenario, "
          "driver: one Python asyncio process")
    head = f"{'tools/call':<16}{'calls':>9}{'calls/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}"
    print(head)
    print("-" * len(head))
    for name, s in report["results"].items():
        cells = [f"{s[k]:>9}" if s[k] is not None else f"{'-':>9}" for k in ("p50_ms", "p95_ms", "p99_ms")]
        print(f"{name:<16}{s['ops']:>9}{s['ops_per_s']:>10}{''.join(cells)}{s['errors']:>8}")
    for name, s in report["results"].items():
        hub_cpu = "n/a" if s["hub_cpu_s"] is None else f"{s['hub_cpu_s']} s"
        print(f"cpu during {name}: hub {hub_cpu}, driver {s['driver_cpu_s']} s over {s['seconds']} s wall")
        for sample in s["error_samples"]:
            print(f"error sample ({name}): {sample}")
    if report["rss_mib"] is not None:
        print(f"hub RSS at end: {report['rss_mib']} MiB (peak {report['peak_rss_mib']} MiB)")
    print(f"target (DESIGN.md §6): {TARGET}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=32, help="concurrent MCP clients (default 32)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per scenario (default 10)")
    p.add_argument("--mode", choices=("legacy", "auto"), default="legacy",
                   help="MCP protocol mode of the SDK client (default legacy, the initialize handshake)")
    p.add_argument("--url", help="measure the hub at this URL instead of starting one")
    p.add_argument("--token", help="admin token of the hub at --url (mints the agents' tokens)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    if bool(args.url) != bool(args.token):
        p.error("--url and --token go together")
    if args.clients < 2:
        p.error("--clients must be at least 2 (agents message each other)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code (1 if any call failed)."""
    args = parse_args(argv)
    # the hub started here measures load, not the per-token rate limit
    hub = Target(args.url.rstrip("/"), args.token) if args.url else start(["--rate-limit", "0"])
    try:
        health = httpx2.get(hub.url + "/health", timeout=10.0).json()
        probe = httpx2.post(hub.url + "/mcp", json={}, timeout=10.0)
        if probe.status_code == 404:
            raise SystemExit(f"bench: {hub.url} does not serve /mcp (is coordhub.mcp.http.mount wired into "
                             "create_app?)")
        tokens = asyncio.run(mint_tokens(hub, f"BENCH-{uuid.uuid4().hex[:8]}", args.clients))
        results = asyncio.run(run_all(hub, tokens, args.duration, args.mode))
        report = {"url": hub.url, "backend": health.get("backend"), "durability": health.get("durability"),
                  "clients": args.clients, "mode": args.mode, "duration": args.duration, "results": results,
                  "rss_mib": hub.rss_mib(), "peak_rss_mib": hub.peak_rss_mib(), "target": TARGET}
    finally:
        hub.stop()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 1 if any(s["errors"] for s in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
