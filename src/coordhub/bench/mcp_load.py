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

A call that raises or answers ``isError`` counts as an error. The SDK client
is not light: the driver's CPU (``driver_cpu_s``) is the first thing to look
at when the numbers are low. ``import mcp`` happens here, inside the
scenario, so ``coord --help`` does not pay for it.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from typing import Any

from coordhub.bench.driver import Agent, close, make_agents, phase, run_for
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
                                  phase(ctx.tick, 0, 2))
            sends = await run_for(agents, _send_message, ("send_message",), ctx.duration, ctx.target,
                                  phase(ctx.tick, 1, 2))
    finally:
        await close(agents)
    return {"headline": reads["list_leases"], "headline_is": "list_leases calls/s", "list_leases": reads,
            "send_message": sends, "mode": "legacy"}
