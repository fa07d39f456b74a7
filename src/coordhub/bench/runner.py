"""Running scenarios end to end: a fresh hub per scenario, the ceiling, and the report."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from coordhub.bench import cli_load, dispatch, hook_load, instructions, lease_scale, mcp_load, push_raw, scenarios, wrk
from coordhub.bench.driver import Tick
from coordhub.bench.target import Target, mint_tokens, start, start_ceiling, writer_between
from coordhub.headers import NEXT_AFTER_FENCE_HEADER

TARGETS = {
    "lease": "≥ 2,000 cycles/s, p99 ≤ 25 ms @ 64 clients",
    "lease-contended": "(no target; correctness under contention)",
    "message": "≥ 3,000 sends/s, p99 ≤ 25 ms @ 64 clients",
    "turn": "≥ 2,000 turns/s at 64 clients, sequences gapless under races",
    "broadcast": "one write, ≤ 10 ms, 10,000 sessions",
    "inbox": "p50 ≤ 5 ms with 1,000,000 stored messages",
    "push": "p50 ≤ 5 ms, p99 ≤ 30 ms, 1,000 subscribers; ≤ 150 MB RSS",
    "mcp": "MCP tools/call ≥ 800/s (headline: the read tool list_leases)",
    "hook": f"coord-hook pre-tool-use p50 ≤ {hook_load.TARGET_P50_MS:g} ms incl. interpreter start (free file)",
    "soak": "500 agents, 10 min: 0 errors, 0 lost messages",
    "cli": "p50 vs python -c pass: coord --version ≤ 3×, coord msg inbox / coord lock list ≤ 6×",
    "lease-scale": "claim p50 ≤ 5 ms, p99 ≤ 20 ms; conflict check p50 ≤ 3 ms; at 100,000 leases and 10,000 globs",
    "dispatch": "orchestrator: assign → dispatched p50 ≤ 1 s with 50 queued (hub overhead)",
    "cross-hub push": "p50 ≤ 10 ms, p99 ≤ 50 ms (3 hubs on one PostgreSQL; sent via hub A, streamed from B and C)",
}
WITH_CEILING = ("lease", "message", "turn", "mcp", "push")


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
    runs: int = 50
    driver: str = "python"
    hubs: int = 1
    workers: int = 1  # serving processes per started hub (coord serve --workers)
    rounds: int = 1  # wrk-driven lease and message: rounds, each on a fresh hub and ceiling (the median reported)
    writer_process: bool = False  # and one writer process in front of the database (coord serve --writer-process)


def _defaults(name: str, o: Options) -> tuple[int, float]:
    """(clients, seconds per phase) of a scenario: soak 500 × 600 s; inbox one client (its target is a latency,
    not a queue); mcp 32 SDK clients; the rest 64 × 10 s."""
    default = {"soak": (500, 600.0), "inbox": (1, 10.0), "mcp": (32, 10.0), "hook": (1, 0.0),
               "cli": (1, 0.0)}.get(name, (64, 10.0))
    return o.clients or default[0], o.duration or default[1]


def _hub_args(o: Options) -> list[str]:
    # the per-token rate limit (100 requests/s by default) would measure itself, not the hub: off
    args = ["--rate-limit", "0"] + (["--database-url", o.database_url] if o.database_url else [])
    args += ["--workers", str(o.workers)] if o.workers > 1 else []
    args += ["--writer-process"] if o.writer_process else []
    return args + (["--sqlite-synchronous", o.sqlite_synchronous] if o.sqlite_synchronous else [])


def _scenario(name: str, o: Options) -> scenarios.Scenario:
    return {
        "lease": scenarios.lease, "lease-contended": scenarios.lease_contended, "message": scenarios.message,
        "turn": scenarios.turn,
        "broadcast": lambda ctx: scenarios.broadcast(ctx, sessions=o.sessions),
        "inbox": scenarios.inbox,
        "push": (lambda ctx: push_raw.push_raw(ctx, subscribers=o.subscribers)) if o.driver == "wrk"
        else (lambda ctx: scenarios.push(ctx, subscribers=o.subscribers)),
        "mcp": mcp_load.mcp, "hook": lambda ctx: hook_load.hook(ctx, runs=o.runs),
        "cli": lambda ctx: cli_load.cli(ctx, runs=o.runs), "soak": scenarios.soak,
    }[name]


def _open(name: str, o: Options, run_id: str, progress: Callable[[str], Tick]) -> tuple[Target, dict[str, Any]]:
    """The hub to measure, and what preparing it took (the inbox scenario fills its store first)."""
    if o.url:
        if name == "inbox":
            raise SystemExit("bench: the inbox scenario fills its own hub first; run it without --url")
        return Target(o.url.rstrip("/"), o.token or ""), {}
    if name != "inbox":
        return start(_hub_args(o)), {}
    folder = tempfile.TemporaryDirectory(prefix="coord-bench-inbox-")
    try:
        t0 = time.perf_counter()
        stored = scenarios.populate_inbox(o.database_url or f"sqlite:///{Path(folder.name) / 'coord.db'}", run_id,
                                          o.messages, tick=progress(f"{name}: filling the store"))
        fill = {"stored_messages": stored, "fill_seconds": round(time.perf_counter() - t0, 1)}
        target = start(_hub_args(o), data_dir=Path(folder.name))
    except BaseException:
        folder.cleanup()
        raise
    target.workdir = folder  # removed with the hub
    return target, fill


def run(names: list[str], o: Options, progress: Callable[[str], Tick]) -> dict[str, Any]:
    """Run each scenario on a fresh hub (and, for lease, message and mcp, on the ceiling); return the report."""
    results: dict[str, Any] = {}
    for name in names:
        if name == "lease-scale":  # fills and starts a hub per size itself
            scaled = lease_scale.lease_scale(_hub_args(o), o.database_url, o.runs, progress)
            results[name] = {**scaled, "backend": "sqlite", "durability": "sqlite WAL synchronous=FULL",
                             "clients": 1, "duration": None, "target": TARGETS[name]}
            continue
        if name == "dispatch":  # starts its own hub and two host threads
            measured = dispatch.dispatch(_hub_args(o), o.runs, progress)
            results[name] = {**measured, "clients": 2, "duration": None, "target": TARGETS[name]}
            continue
        if o.driver == "callgrind":  # starts its own hub and ceiling under valgrind
            measured = instructions.measure(name, _hub_args(o), o.runs, o.ceiling, progress(f"{name} (callgrind)"))
            results[name] = {**measured, "target": TARGETS[name]}
            continue
        run_id = uuid.uuid4().hex[:8]
        clients, duration = _defaults(name, o)
        if name == "push" and o.hubs > 1:
            results[name] = _push_across_hubs(o, clients, duration, run_id, progress)
            continue
        if o.driver == "wrk" and name == "mcp":
            results[name] = _mcp_with_wrk(o, clients, duration, run_id, progress)
            continue
        if o.driver == "wrk" and name in wrk.SCENARIOS:
            results[name] = _with_wrk(name, o, clients, duration, run_id, progress)
            continue
        target, prepared = _open(name, o, run_id, progress)
        try:
            health = httpx2.get(target.url + "/health", timeout=10).json()
            ctx = scenarios.Context(target, clients, duration, progress(name), run_id)
            result: dict[str, Any] = asyncio.run(_scenario(name, o)(ctx))
            result.update(prepared)
            result.update(backend=health.get("backend"), durability=health.get("durability"), clients=clients,
                          duration=None if name in ("hook", "cli") else duration, rss_mib=target.rss_mib(),
                          peak_rss_mib=target.peak_rss_mib(), hub_log=target.log_problems(), target=TARGETS[name],
                          gc=target.gc_pauses())
        finally:
            target.stop()
        if o.ceiling and name in WITH_CEILING:
            result["ceiling"] = _ceiling(name, o, clients, duration, progress(f"{name}: ceiling"))
            result["ratio_to_ceiling"] = _ratio(result)
        results[name] = result
    return results


def _push_across_hubs(o: Options, clients: int, duration: float, run_id: str,
                      progress: Callable[[str], Tick]) -> dict[str, Any]:
    """``push`` with ``o.hubs`` hub processes on one PostgreSQL database: sent through the first, streamed from
    the others (issue 14: an event written through hub A reaches a subscriber on hub B)."""
    if not (o.database_url or "").startswith(("postgresql://", "postgres://")):
        raise SystemExit("bench: push --hubs N needs --database-url postgresql://… (hubs share one database)")
    hubs: list[Target] = []
    try:
        for _ in range(o.hubs):
            hubs.append(start(_hub_args(o)))
        health = httpx2.get(hubs[0].url + "/health", timeout=10).json()
        ctx = scenarios.Context(hubs[0], clients, duration, progress(f"push ({o.hubs} hubs)"), run_id)
        result: dict[str, Any] = asyncio.run(scenarios.push(ctx, subscribers=o.subscribers,
                                                            subscribe_urls=[h.url for h in hubs[1:]]))
        result.update(backend=health.get("backend"), durability=health.get("durability"), clients=clients,
                      duration=duration, rss_mib=hubs[1].rss_mib(), hub_log=hubs[1].log_problems(),
                      target=TARGETS["cross-hub push"])
        return result
    finally:
        for h in hubs:
            h.stop()


def _wrk_once(target: Target, name: str, clients: int, duration: float, run_id: str) -> dict[str, Any]:
    agents = asyncio.run(mint_tokens(target, f"wrk-{run_id}", max(clients, 8)))
    if name == "turn":
        _declare_addresses(target, agents)
    return _wrk_pass(target, name, agents, clients, duration)


def _declare_addresses(target: Target, agents: list[tuple[str, str]]) -> None:
    """Each agent declares its conversation address (:func:`wrk.profile`) before wrk sends turns to them."""
    with httpx2.Client(base_url=target.url, timeout=30) as client:
        for k, (session_id, token) in enumerate(agents):
            machine, project = wrk.profile(session_id, k)
            r = client.put("/api/coord/conversations/profile", json={"machine": machine, "project": project},
                           headers={"Authorization": f"Bearer {token}"})
            if r.status_code != 200:
                raise SystemExit(f"bench: cannot declare {session_id}'s address: {r.status_code} {r.text[:300]}")


def _wrk_pass(target: Target, name: str, agents: list[tuple[str, str]], clients: int,
              duration: float) -> dict[str, Any]:
    """One wrk run of ``name`` (a scenario or an ``mcp`` kind) with these agents; the report with hub CPU and,
    on a hub, its write batches during the run (``writer``: :func:`~coordhub.bench.target.writer_between`)."""
    hub = target.admin_token != "ceiling"  # the ceiling has no writer and no /metrics
    # Two readings of one process's /metrics: under --workers N each scrape reaches whichever worker accepts it
    batches0 = _writer_reading(target) if hub and target.serving == 1 else None  # outside the CPU window
    cpu0 = target.cpu_seconds()
    report = wrk.run(target.url, name, agents, clients, duration)
    cpu1 = target.cpu_seconds()
    batches1 = _writer_reading(target) if batches0 is not None else None
    errors = report["non_2xx"] + report["socket_errors"]
    headline = {"ops": report["requests"] // (2 if name == "lease" else 1), "ops_per_s": report["ops_per_s"],
                "p50_ms": report["p50_ms"], "p95_ms": None, "p99_ms": report["p99_ms"], "errors": errors,
                "error_samples": []}
    hub_cpu = None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2)
    per_request_us = (round(hub_cpu / max(report["requests"], 1) * 1e6, 1) if hub_cpu is not None else None)
    if name == "lease" and hub:  # every cycle released: only the last claims live on
        report["live_leases_after"] = _live_leases(target, wrk.PROJECT)
    return {"headline": headline, "wrk": report, "hub_cpu_s": hub_cpu, "hub_cpu_us_per_request": per_request_us,
            "seconds": duration, "writer": writer_between(batches0, batches1)}


def _live_leases(target: Target, project_key: str) -> int | None:
    """How many live leases ``project_key`` holds, every page of ``GET /locks`` counted (500 a page); None when
    the hub does not answer 200."""
    count, params = 0, {"project_key": project_key}
    while True:
        r = httpx2.get(target.url + "/api/coord/locks", params=params, timeout=30,
                       headers={"Authorization": f"Bearer {target.admin_token}"})
        if r.status_code != 200:
            return None
        count += len(r.json())
        following = r.headers.get(NEXT_AFTER_FENCE_HEADER, "")
        if not following.isdigit():
            return count
        params["after_fence"] = following


def _writer_reading(target: Target) -> dict[str, dict[str, float]] | None:
    """The hub's write batches so far (:meth:`Target.writer_totals`), with every batch committed before the call:
    a writer process reports its batches once a second, so the reading waits for its next report."""
    if target.writer_process:
        from coordhub.writer_process import REPORT_SECONDS  # only when a writer process runs

        time.sleep(REPORT_SECONDS + 0.25)
    return target.writer_totals()


def _with_wrk(name: str, o: Options, clients: int, duration: float, run_id: str,
              progress: Callable[[str], Tick]) -> dict[str, Any]:
    """A REST scenario driven by wrk on a fresh hub and then on the ceiling (:mod:`coordhub.bench.wrk`),
    ``o.rounds`` times.

    With several rounds each has its own hub and ceiling, and the report is
    the round whose ratio to the ceiling (ops/s without a ceiling) is the
    median (the upper one of an even count), with every round's figures under
    ``rounds`` and their spread under ``ratio_range``: on shared cores one
    round's ratio moves by ±0.1 with whatever else runs.
    """
    wrk.available()
    tick = progress(f"{name} (wrk)" + (f" × {o.rounds}" if o.rounds > 1 else ""))
    rounds = []
    for i in range(o.rounds):
        def part(done: float, i: int = i) -> None:
            tick((i + done) / o.rounds)

        rounds.append(_wrk_round(name, o, clients, duration, run_id, part))
    if len(rounds) == 1:
        return rounds[0]

    def rank(r: dict[str, Any]) -> float:
        return float(r["ratio_to_ceiling"] if o.ceiling else r["headline"]["ops_per_s"])

    result = dict(sorted(rounds, key=rank)[len(rounds) // 2])
    result["rounds"] = [{"ops_per_s": r["headline"]["ops_per_s"], "p99_ms": r["headline"]["p99_ms"],
                         "hub_cpu_us_per_request": r["hub_cpu_us_per_request"],
                         "ceiling_ops_per_s": r["ceiling"]["headline"]["ops_per_s"] if "ceiling" in r else None,
                         "ratio_to_ceiling": r.get("ratio_to_ceiling"), "writer": r.get("writer")} for r in rounds]
    if o.ceiling:
        ratios = [r["ratio_to_ceiling"] for r in rounds]
        result["ratio_range"] = [min(ratios), max(ratios)]
    return result


def _wrk_round(name: str, o: Options, clients: int, duration: float, run_id: str, tick: Tick) -> dict[str, Any]:
    """One round of :func:`_with_wrk`: a fresh hub, then (with ``o.ceiling``) a fresh ceiling, and the ratio."""
    target, _ = _open(name, o, run_id, lambda label: tick)
    try:
        health = httpx2.get(target.url + "/health", timeout=10).json()
        result = _wrk_once(target, name, clients, duration, run_id)
        result.update(backend=health.get("backend"), durability=health.get("durability"), clients=clients,
                      duration=duration, rss_mib=target.rss_mib(), peak_rss_mib=target.peak_rss_mib(),
                      hub_log=target.log_problems(), target=TARGETS[name], driver="wrk", gc=target.gc_pauses())
    finally:
        target.stop()
    tick(0.5)
    if o.ceiling:
        ceiling = start_ceiling()
        try:
            result["ceiling"] = _wrk_once(ceiling, name, clients, duration, run_id)
        finally:
            ceiling.stop()
        ratio = result["headline"]["ops_per_s"] / max(result["ceiling"]["headline"]["ops_per_s"], 0.001)
        result["ratio_to_ceiling"] = round(ratio, 2)
    tick(1.0)
    return result


MCP_OPS = (("list_leases", "list"), ("send_message", "send"))


def _mcp_with_wrk(o: Options, clients: int, duration: float, run_id: str,
                  progress: Callable[[str], Tick]) -> dict[str, Any]:
    """``mcp`` driven by wrk: each tool as an MCP ``tools/call`` and as the same REST request, one after the other
    on one fresh hub; hub CPU per request of each and their ratio (issue 15: at most 1.5). No ceiling run."""
    wrk.available()
    tick = progress("mcp (wrk)")
    target, _ = _open("mcp", o, run_id, progress)
    try:
        health = httpx2.get(target.url + "/health", timeout=10).json()
        agents = asyncio.run(mint_tokens(target, f"wrk-{run_id}", max(clients, 8)))
        _first_calls_succeed(target, agents)
        passes: dict[str, Any] = {}
        for i, kind in enumerate(wrk.MCP_KINDS):
            passes[kind] = _wrk_pass(target, kind, agents, clients, duration)
            tick((i + 1) / len(wrk.MCP_KINDS))
        rss, peak, problems, gc = target.rss_mib(), target.peak_rss_mib(), target.log_problems(), target.gc_pauses()
    finally:
        target.stop()
    cpu = {tool: {"mcp": passes[f"mcp-{op}"]["hub_cpu_us_per_request"],
                  "rest": passes[f"rest-{op}"]["hub_cpu_us_per_request"]} for tool, op in MCP_OPS}
    ratio = {tool: None if c["mcp"] is None or not c["rest"] else round(c["mcp"] / c["rest"], 2)
             for tool, c in cpu.items()}
    return {"headline": passes["mcp-list"]["headline"], "headline_is": "list_leases calls/s over MCP",
            "passes": passes, "hub_cpu_us_per_call": cpu, "cpu_ratio_mcp_to_rest": ratio, "mode": "legacy",
            "backend": health.get("backend"), "durability": health.get("durability"), "clients": clients,
            "duration": duration, "rss_mib": rss, "peak_rss_mib": peak, "hub_log": problems,
            "target": TARGETS["mcp"], "driver": "wrk", "gc": gc}


def _first_calls_succeed(target: Target, agents: list[tuple[str, str]]) -> None:
    """One MCP call of each tool the wrk passes make (wrk counts an ``isError`` answer as a success)."""
    session, token = agents[0]
    headers = {**wrk.MCP_HEADERS, "Authorization": f"Bearer {token}"}
    for tool, arguments in (("list_leases", {"session_id": session}),
                            ("send_message", {"to": agents[1][0], "subject": "wrk check"})):
        r = httpx2.post(target.url + "/mcp", headers=headers, timeout=30, json={
            "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
        result = r.json().get("result", {}) if r.status_code == 200 else {}
        if not result or result.get("isError"):
            raise SystemExit(f"bench: MCP {tool} failed before the wrk run: {r.status_code} {r.text[:300]}")


def _ratio(result: dict[str, Any]) -> float | None:
    """Hub ÷ ceiling: ops/s over ops/s; for push (a latency) the ceiling's p50 over the hub's, so that here too 1.0
    is "as fast as the stack allows" and lower is slower."""
    hub, ceiling = result["headline"], result["ceiling"]["headline"]
    if hub["ops_per_s"] is None:
        if not hub["p50_ms"] or ceiling["p50_ms"] is None:
            return None
        return round(float(ceiling["p50_ms"] / hub["p50_ms"]), 2)
    return round(float(hub["ops_per_s"] / max(ceiling["ops_per_s"], 0.001)), 2)


def _ceiling(name: str, o: Options, clients: int, duration: float, tick: Tick) -> dict[str, Any]:
    target = start_ceiling()
    try:
        ctx = scenarios.Context(target, clients, duration, tick, uuid.uuid4().hex[:8])
        return asyncio.run(_scenario(name, o)(ctx))
    finally:
        target.stop()
