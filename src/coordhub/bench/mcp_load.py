"""The ``mcp`` scenario: ``tools/call`` per second over streamable HTTP at ``/mcp``.

Each simulated agent holds one official-SDK ``mcp.Client`` (legacy mode: the
``initialize`` handshake once, then one HTTP POST per call; the hub's ``/mcp``
is stateless with JSON responses) over its own connection and session token.
Two phases of ``duration`` seconds each:

* ``list_leases``: a cheap read tool, over and over. **The headline**: it
  measures the MCP layer itself (SDK transport, tool dispatch, the in-process
  REST call) with the least store work behind it, which is what "MCP
  tools/call ≥ 800/s" asks about;
* ``send_message``: a direct message to the next agent, one durable write
  per call (reported beside it; the ``message`` scenario measures sends over
  plain HTTP).

Each MCP phase is followed by the same operation over plain REST
(``GET /api/coord/locks?session_id=…``, ``POST /api/coord/messages``) by
the same agents on the same hub, and the report gives the hub's CPU per call
of each (from ``/proc``, so only when the bench started the hub) and their
ratio, ``cpu_ratio_mcp_to_rest`` (issue 15: an MCP call should cost at most
1.5× the REST request). Hub CPU per call does not depend much on how fast
the driver is; the calls per second do.

A call that raises or answers ``isError`` counts as an error. The SDK client
is not light: the driver's CPU (``driver_cpu_s``) is the first thing to look
at when the numbers are low. ``import mcp`` happens here, inside the
scenario, so ``coord --help`` does not pay for it.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from typing import Any

from coordhub.bench.driver import Agent, close, make_agents, phase, run_for, timed
from coordhub.bench.scenarios import Context
from coordhub.bench.stats import Series
from coordhub.bench.target import mint_tokens


async def _call(series: Series, agent: Agent, tool: str, arguments: dict[str, Any]) -> None:
    """One ``tools/call``; its latency if it succeeded, else an error."""
    from mcp.types import TextContent

    t0 = time.perf_counter()
    try:
        result = await agent.state["mcp"].call_tool(tool, arguments)
    except Exception as exc:  # a protocol or transport failure: count it, keep going
        series.fail(f"{type(exc).__name__}: {exc}")
        return
    if result.is_error:
        block = result.content[0] if result.content else None
        series.fail(block.text if isinstance(block, TextContent) else "is_error")
        return
    series.latencies.append(time.perf_counter() - t0)


async def _list_leases(agent: Agent, out: dict[str, Series]) -> None:
    await _call(out["list_leases"], agent, "list_leases", {"session_id": agent.session})


async def _send_message(agent: Agent, out: dict[str, Series]) -> None:
    agent.n += 1
    await _call(out["send_message"], agent, "send_message",
                {"to": agent.peer, "subject": f"bench {agent.n}", "body": "x" * 200})


async def _rest_list_leases(agent: Agent, out: dict[str, Series]) -> None:
    await timed(out["list_leases"], agent.client.get("/api/coord/locks", params={"session_id": agent.session}), 200)


async def _rest_send_message(agent: Agent, out: dict[str, Series]) -> None:
    agent.n += 1
    await timed(out["send_message"], agent.client.post("/api/coord/messages", json={
        "to_session": agent.peer, "subject": f"bench {agent.n}", "body": "x" * 200}), 201)


def cpu_per_call_us(phase_result: dict[str, Any], name: str) -> float | None:
    """Hub CPU per successful call of a phase, in µs; None when the hub's CPU is unknown or nothing succeeded."""
    ops = phase_result[name]["ops"]
    cpu = phase_result.get("hub_cpu_s")
    return None if cpu is None or not ops else round(cpu / ops * 1e6, 1)


async def mcp(ctx: Context) -> dict[str, Any]:
    """``clients`` SDK clients call ``list_leases`` (headline, calls/s), then ``send_message``."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    tokens = await mint_tokens(ctx.target, f"MCP-{ctx.run_id}", ctx.clients)
    agents = make_agents(ctx.target, tokens, f"bench-{ctx.run_id}-mcp")
    try:
        async with AsyncExitStack() as stack:
            for a in agents:  # one at a time: each client's task group must close in the task that opened it
                a.state["mcp"] = await stack.enter_async_context(
                    Client(streamable_http_client(ctx.target.url + "/mcp", http_client=a.client), mode="legacy"))
            reads = await run_for(agents, _list_leases, ("list_leases",), ctx.duration, ctx.target,
                                  phase(ctx.tick, 0, 4))
            rest_reads = await run_for(agents, _rest_list_leases, ("list_leases",), ctx.duration, ctx.target,
                                       phase(ctx.tick, 1, 4))
            sends = await run_for(agents, _send_message, ("send_message",), ctx.duration, ctx.target,
                                  phase(ctx.tick, 2, 4))
            rest_sends = await run_for(agents, _rest_send_message, ("send_message",), ctx.duration, ctx.target,
                                       phase(ctx.tick, 3, 4))
    finally:
        await close(agents)
    cpu = {name: {"mcp": cpu_per_call_us(m, name), "rest": cpu_per_call_us(r, name)}
           for name, m, r in (("list_leases", reads, rest_reads), ("send_message", sends, rest_sends))}
    ratio = {name: None if c["mcp"] is None or not c["rest"] else round(c["mcp"] / c["rest"], 2)
             for name, c in cpu.items()}
    return {"headline": reads["list_leases"], "headline_is": "list_leases calls/s", "list_leases": reads,
            "send_message": sends, "rest": {"list_leases": rest_reads, "send_message": rest_sends},
            "hub_cpu_us_per_call": cpu, "cpu_ratio_mcp_to_rest": ratio, "mode": "legacy"}
