"""Simulated agents: one HTTP connection and one session token each, run against a clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

from coordhub.bench.stats import Series
from coordhub.bench.target import Target


@dataclass
class Agent:
    """One simulated agent: its session, its own client, a peer to message, a counter."""

    index: int
    session: str
    client: httpx2.AsyncClient
    peer: str
    project: str
    n: int = 0
    state: dict[str, Any] = field(default_factory=dict)


Op = Callable[[Agent, dict[str, Series]], Awaitable[None]]
Tick = Callable[[float], None]  # progress: fraction done, 0..1


def phase(tick: Tick, k: int, n: int) -> Tick:
    """The progress of phase ``k`` (from 0) of ``n`` equal phases, as a part of the whole bar."""
    return lambda done: tick((k + done) / n)


async def timed(series: Series, call: Awaitable[httpx2.Response], expect: int) -> httpx2.Response | None:
    """Await one request; record its latency if it answered ``expect``, else count an error."""
    t0 = time.perf_counter()
    try:
        r = await call
    except httpx2.HTTPError as exc:
        series.fail(f"{type(exc).__name__}: {exc}")
        return None
    if r.status_code != expect:
        series.fail(f"{r.status_code} {r.text}")
        return None
    series.latencies.append(time.perf_counter() - t0)
    return r


def make_agents(target: Target, tokens: list[tuple[str, str]], project: str) -> list[Agent]:
    """Agents over the tokens, each messaging the next one."""
    return [Agent(i, session, httpx2.AsyncClient(base_url=target.url, headers={"Authorization": f"Bearer {tok}"},
                                                timeout=60.0, limits=httpx2.Limits(max_connections=1)),
                  tokens[(i + 1) % len(tokens)][0], project)
            for i, (session, tok) in enumerate(tokens)]


async def close(agents: list[Agent]) -> None:
    """Close every agent's connection."""
    await asyncio.gather(*(a.client.aclose() for a in agents))


async def run_for(agents: list[Agent], op: Op, series: tuple[str, ...], duration: float, target: Target,
                  tick: Tick) -> dict[str, Any]:
    """Warm every agent up with one op, then run ``op`` on all of them for ``duration`` seconds; summarise."""
    warm = {name: Series() for name in series}
    await asyncio.gather(*(op(a, warm) for a in agents))
    out = {name: Series() for name in series}
    cpu0, driver0 = target.cpu_seconds(), time.process_time()
    t0 = time.perf_counter()
    end = t0 + duration

    async def loop(agent: Agent) -> None:
        while time.perf_counter() < end:
            await op(agent, out)

    async def progress() -> None:
        while time.perf_counter() < end:
            tick(min(1.0, (time.perf_counter() - t0) / duration))
            await asyncio.sleep(0.25)

    ticker = asyncio.create_task(progress())
    await asyncio.gather(*(loop(a) for a in agents))
    ticker.cancel()
    tick(1.0)
    seconds = time.perf_counter() - t0
    cpu1 = target.cpu_seconds()
    result: dict[str, Any] = {name: s.summary(seconds) for name, s in out.items()}
    result["seconds"] = round(seconds, 2)
    result["hub_cpu_s"] = None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2)
    result["driver_cpu_s"] = round(time.process_time() - driver0, 2)
    return result
