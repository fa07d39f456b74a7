"""The benchmark scenarios. Each takes a :class:`Context` and returns a JSON-able result.

A result has ``headline`` (the one number DESIGN.md §6 sets a target for:
``ops_per_s`` and/or latency percentiles), ``series`` (per kind of request),
and whatever else the scenario measures (hub RSS, missing receipts, …).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx2

from coordhub.bench import wrk
from coordhub.bench.driver import Agent, Op, Tick, close, make_agents, phase, run_for, timed
from coordhub.bench.stats import Series, percentile
from coordhub.bench.target import Target, mint_tokens


@dataclass
class Context:
    """What a scenario runs against and for how long."""

    target: Target
    clients: int
    duration: float
    tick: Tick
    run_id: str


Scenario = Callable[[Context], Coroutine[Any, Any, dict[str, Any]]]


Phase = tuple[Op, tuple[str, ...]]  # what each agent does, and the series it records


async def _with_agents(ctx: Context, n: int, phases: list[Phase], project: str) -> list[dict[str, Any]]:
    """``n`` agents with fresh tokens run each phase (op, series names) for ``ctx.duration``; one result each."""
    tokens = await mint_tokens(ctx.target, f"BENCH-{ctx.run_id}-{project}", n)
    agents = make_agents(ctx.target, tokens, f"bench-{ctx.run_id}-{project}")
    try:
        return [await run_for(agents, op, series, ctx.duration, ctx.target, phase(ctx.tick, k, len(phases)))
                for k, (op, series) in enumerate(phases)]
    finally:
        await close(agents)


# ---- leases ---------------------------------------------------------------------------------------

async def _lease_cycle(agent: Agent, out: dict[str, Series]) -> None:
    t0 = time.perf_counter()
    claim = await timed(out["claim"], agent.client.post("/api/coord/locks", json={
        "project_key": agent.project, "resource": f"agents/{agent.index}/work.py", "description": "bench",
        "ttl_hours": 0.1}), 201)
    if claim is None:
        return
    if await timed(out["release"], agent.client.delete(f"/api/coord/locks/{claim.json()['id']}"), 200):
        out["cycle"].latencies.append(time.perf_counter() - t0)


async def lease(ctx: Context) -> dict[str, Any]:
    """Each agent claims and releases its own file, over and over (uncontended): cycles/s."""
    [r] = await _with_agents(ctx, ctx.clients, [(_lease_cycle, ("cycle", "claim", "release"))], "lease")
    return {"headline": r["cycle"], **r}


async def _contended(agent: Agent, out: dict[str, Series]) -> None:
    resource = f"shared/{random.randrange(8)}.py"
    t0 = time.perf_counter()
    try:
        r = await agent.client.post("/api/coord/locks", json={"project_key": agent.project, "resource": resource,
                                                              "ttl_hours": 0.1})
    except httpx2.HTTPError as exc:
        out["attempt"].fail(str(exc))
        return
    if r.status_code == 409:
        out["attempt"].latencies.append(time.perf_counter() - t0)
        return
    if r.status_code != 201:
        out["attempt"].fail(f"{r.status_code} {r.text}")
        return
    out["attempt"].latencies.append(time.perf_counter() - t0)
    out["grant"].latencies.append(time.perf_counter() - t0)
    await timed(out["release"], agent.client.delete(f"/api/coord/locks/{r.json()['id']}"), 200)


async def lease_contended(ctx: Context) -> dict[str, Any]:
    """All agents fight over 8 files: claim attempts/s (a 409 is a correct answer), grants, releases."""
    [r] = await _with_agents(ctx, ctx.clients, [(_contended, ("attempt", "grant", "release"))], "contended")
    return {"headline": r["attempt"], **r}


# ---- messages -------------------------------------------------------------------------------------

async def _send(agent: Agent, out: dict[str, Series]) -> None:
    agent.n += 1
    await timed(out["send"], agent.client.post("/api/coord/messages", json={
        "to_session": agent.peer, "subject": f"bench {agent.n}", "body": "x" * 200}), 201)


async def _send_and_read(agent: Agent, out: dict[str, Series]) -> None:
    await _send(agent, out)
    await timed(out["inbox"], agent.client.get("/api/coord/messages", params={
        "to_session": agent.session, "unread_only": "true", "limit": "20"}), 200)


async def message(ctx: Context) -> dict[str, Any]:
    """Each agent sends direct messages to the next: sends only (the headline, sends/s), then, for as long
    again, a send followed by a fetch of its own unread inbox (``with_inbox``)."""
    sends, mixed = await _with_agents(ctx, ctx.clients, [(_send, ("send",)), (_send_and_read, ("send", "inbox"))],
                                      "message")
    return {"headline": sends["send"], **sends, "with_inbox": mixed}


# ---- conversations ---------------------------------------------------------------------------------

async def _declare(agent: Agent, out: dict[str, Series]) -> None:
    if agent.state.get("declared"):
        return
    machine, project = wrk.profile(agent.session, agent.index)
    r = await agent.client.put("/api/coord/conversations/profile", json={"machine": machine, "project": project})
    if r.status_code != 200:
        raise SystemExit(f"bench: cannot declare {agent.session}'s address: {r.status_code} {r.text}")
    agent.state["declared"] = machine


async def _turn(agent: Agent, out: dict[str, Series]) -> None:
    await _declare(agent, out)
    agent.n += 1
    peer = (agent.index + 1) % agent.state.setdefault("agents", 1)
    await timed(out["turn"], agent.client.post("/api/coord/conversations/turns", json={
        "to": ".".join(wrk.profile(agent.session, peer)),  # every agent's session has the one machine
        # a new conversation every 5,000 turns: one holds at most MAX_TURNS_PER_CONVERSATION (10,000)
        "conversation_id": f"bench-{agent.index}-{agent.n // 5000}",
        "type": "progress", "title": "bench", "body": f"turn {agent.n} " + "x" * 200}), 201)


async def turn(ctx: Context) -> dict[str, Any]:
    """Each agent sends conversation turns (field form, 200-byte bodies) to the next agent's address, in its own
    conversation: turns/s (issue 9; every turn is decided, numbered and stored with its event)."""
    async def op(agent: Agent, out: dict[str, Series]) -> None:
        agent.state["agents"] = ctx.clients
        await _turn(agent, out)

    [r] = await _with_agents(ctx, ctx.clients, [(op, ("turn",))], "turn")
    return {"headline": r["turn"], **r}


async def broadcast(ctx: Context, sessions: int = 10_000, sends: int = 200) -> dict[str, Any]:
    """With ``sessions`` registered sessions, time broadcast sends one at a time (one write each)."""
    tokens = await mint_tokens(ctx.target, f"FLEET-{ctx.run_id}", sessions, concurrency=32)
    sem = asyncio.Semaphore(32)
    async with httpx2.AsyncClient(base_url=ctx.target.url, timeout=60.0) as c:

        registered = Series()

        async def register(token: str) -> None:
            async with sem:
                await timed(registered, c.post("/api/coord/presence/register", json={"client": "bench"},
                                               headers={"Authorization": f"Bearer {token}"}), 200)

        await asyncio.gather(*(register(t) for _, t in tokens))
        sender = {"Authorization": f"Bearer {tokens[0][1]}"}
        send, unread = Series(), Series()
        t0 = time.perf_counter()
        for i in range(sends):
            await timed(send, c.post("/api/coord/messages", json={"subject": f"fleet {i}", "body": "all"},
                                     headers=sender), 201)
            reader = {"Authorization": f"Bearer {random.choice(tokens[1:])[1]}"}
            await timed(unread, c.get("/api/coord/messages", params={"unread_only": "true", "limit": "5"},
                                      headers=reader), 200)
            ctx.tick((i + 1) / sends)
        seconds = time.perf_counter() - t0
    headline = send.summary(seconds)
    headline["errors"] += registered.errors  # a session that did not register would make this less than 10,000
    headline["error_samples"] += registered.error_samples
    return {"headline": headline, "sessions": sessions, "registered": len(registered.latencies),
            "send": send.summary(seconds), "inbox_after": unread.summary(seconds)}


# ---- push -----------------------------------------------------------------------------------------

async def push(ctx: Context, subscribers: int = 1000, sends: int = 30, interval: float = 0.2,
               subscribe_urls: list[str] | None = None) -> dict[str, Any]:
    """``subscribers`` SSE streams; latency from before a broadcast's POST to each subscriber having it.

    With ``subscribe_urls`` (other hub processes on the same PostgreSQL database) the streams are spread
    over those hubs round-robin while every broadcast is sent through ``ctx.target``: cross-hub push.
    """
    tokens = await mint_tokens(ctx.target, f"PUSH-{ctx.run_id}", subscribers + 1, concurrency=32)
    sent: dict[str, float] = {}
    lat: list[float] = []
    first: dict[str, float] = {}  # per broadcast, the earliest receipt: the hub's part, before the driver's queue
    ready, count, streams = asyncio.Event(), [0], Series()

    def settled() -> None:
        count[0] += 1
        if count[0] == subscribers:
            ready.set()

    async def follow(client: httpx2.AsyncClient, token: str, where: str) -> None:
        connected = False
        try:
            async with client.stream("GET", where + "/api/coord/events", params={"kinds": "message.sent"},
                                     headers={"Authorization": f"Bearer {token}"}) as r:
                if r.status_code != 200:
                    streams.fail(f"{r.status_code} {(await r.aread()).decode()[:200]}")
                async for line in r.aiter_lines():
                    if line.startswith(": connected"):
                        connected = True
                        settled()
                    elif line.startswith("data: "):
                        now = time.monotonic()
                        subject = json.loads(line[6:])["payload"]["subject"]
                        if subject in sent:
                            lat.append(now - sent[subject])
                            first.setdefault(subject, now - sent[subject])
        except httpx2.HTTPError as exc:
            streams.fail(f"{type(exc).__name__}: {exc}")
        finally:
            if not connected:
                settled()  # counted as settled, so the others need not wait for it

    limits = httpx2.Limits(max_connections=subscribers + 10, max_keepalive_connections=subscribers + 10)
    async with httpx2.AsyncClient(base_url=ctx.target.url, limits=limits, timeout=httpx2.Timeout(60, read=None)) as c:
        urls = subscribe_urls or [ctx.target.url]
        tasks = [asyncio.create_task(follow(c, t, urls[i % len(urls)])) for i, (_, t) in enumerate(tokens[1:])]
        t0 = time.monotonic()
        await asyncio.wait_for(ready.wait(), 300)
        connect_s = time.monotonic() - t0
        rss_open, pss_open = ctx.target.rss_mib(), ctx.target.pss_mib()
        cpu0, driver0 = ctx.target.cpu_seconds(), time.process_time()
        for i in range(sends):
            subject = f"push-{ctx.run_id}-{i}"
            sent[subject] = time.monotonic()
            r = await c.post(ctx.target.url + "/api/coord/messages", json={"subject": subject, "body": "x"},
                             headers={"Authorization": f"Bearer {tokens[0][1]}"})
            r.raise_for_status()
            ctx.tick((i + 1) / sends)
            await asyncio.sleep(interval)
        await asyncio.sleep(2.0)
        cpu1, driver_cpu = ctx.target.cpu_seconds(), round(time.process_time() - driver0, 2)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    ms = sorted(x * 1000 for x in lat)

    def p(q: float) -> float | None:
        v = percentile(ms, q)
        return None if v is None else round(v, 2)

    summary: dict[str, Any] = {"ops": len(ms), "ops_per_s": None, "p50_ms": p(50), "p95_ms": p(95), "p99_ms": p(99),
               "errors": subscribers * sends - len(ms), "error_samples": streams.error_samples}
    firsts = sorted(x * 1000 for x in first.values())
    return {"headline": summary, "subscribers": subscribers, "broadcasts": sends, "hubs": 1 + len(subscribe_urls or []),
            "first_receipt_p50_ms": None if not firsts else round(firsts[len(firsts) // 2], 2),
            "hub_cpu_s": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2), "driver_cpu_s": driver_cpu,
            "seconds": round(sends * interval + 2.0, 1),
            "missing": subscribers * sends - len(ms), "max_ms": round(ms[-1], 2) if ms else None,
            "mean_ms": round(sum(ms) / len(ms), 2) if ms else None, "connect_all_s": round(connect_s, 2),
            "stream_errors": streams.errors, "rss_mib_all_open": rss_open,
            "pss_mib_all_open": pss_open}


# ---- inbox with a large history ------------------------------------------------------------------

def populate_inbox(database_url: str, run_id: str, total: int, sessions: int = 1000, unread: int = 5,
                   tick: Tick = lambda _: None) -> int:
    """Fill a store with ``total`` direct messages spread over ``sessions``, all read but ``unread`` each.

    Goes through the store's own unit-of-work interface (no SQL here); returns how many it stored.
    """
    from coordhub.store import open_store
    from coordhub.store.tx import Tx

    per = max(unread, total // sessions)
    store = open_store(database_url)
    store.open()
    now = time.time()

    def chunk(first: int, last: int) -> Callable[[Tx], None]:
        def unit(tx: Tx) -> None:
            for k in range(first, last):
                session, nth = f"INBOX-{run_id}/agent{k % sessions:05d}", k // sessions
                seq = tx.messages.add({"id": f"{run_id}-{k}", "from_session": "BENCH/sender", "to_session": session,
                                       "subject": f"history {k}", "body": "x" * 100, "importance": "normal",
                                       "requires_ack": 0, "created_at": now})
                tx.messages.add_receipt(session, seq, None)
                if nth < per - unread:
                    tx.messages.mark_read(session, seq, now)
        return unit

    try:
        step = 5000
        for first in range(0, per * sessions, step):
            store.write_sync(chunk(first, min(first + step, per * sessions)))
            tick(min(1.0, (first + step) / (per * sessions)))
    finally:
        store.close()
    return per * sessions


async def _fetch_unread(agent: Agent, out: dict[str, Series]) -> None:
    r = await timed(out["inbox"], agent.client.get("/api/coord/messages", params={
        "to_session": agent.session, "unread_only": "true", "limit": "100"}), 200)
    if r is not None and len(r.json()) != agent.state["unread"]:
        out["inbox"].fail(f"expected {agent.state['unread']} unread, got {len(r.json())}")


async def inbox(ctx: Context, unread: int = 5) -> dict[str, Any]:
    """Unread-inbox fetches of sessions whose history the hub was filled with beforehand (see populate_inbox),
    then, as a yardstick, of as many new sessions with the same ``unread`` messages and no history."""
    tokens = await mint_tokens(ctx.target, f"INBOX-{ctx.run_id}", ctx.clients)
    fresh = await mint_tokens(ctx.target, f"FRESH-{ctx.run_id}", ctx.clients + 1)
    agents = make_agents(ctx.target, tokens, "inbox")
    newcomers = make_agents(ctx.target, fresh[:-1], "inbox")
    for a in agents + newcomers:
        a.state["unread"] = unread
    try:
        async with httpx2.AsyncClient(base_url=ctx.target.url, timeout=60.0,
                                      headers={"Authorization": f"Bearer {fresh[-1][1]}"}) as sender:
            for a in newcomers:
                for i in range(unread):
                    r = await sender.post("/api/coord/messages", json={"to_session": a.session,
                                                                       "subject": f"fresh {i}", "body": "x" * 100})
                    r.raise_for_status()
        history = await run_for(agents, _fetch_unread, ("inbox",), ctx.duration, ctx.target, phase(ctx.tick, 0, 2))
        baseline = await run_for(newcomers, _fetch_unread, ("inbox",), ctx.duration, ctx.target,
                                 phase(ctx.tick, 1, 2))
    finally:
        await close(agents + newcomers)
    return {"headline": history["inbox"], **history, "no_history": baseline}


# ---- soak -----------------------------------------------------------------------------------------

WEIGHTS = (("heartbeat", 30), ("send", 15), ("read", 15), ("ack", 5), ("lease", 20), ("work_item", 15))


async def _soak_step(agent: Agent, out: dict[str, Series]) -> None:
    kind = random.choices([k for k, _ in WEIGHTS], [w for _, w in WEIGHTS])[0]
    c, s = agent.client, out[kind]
    if kind == "heartbeat":
        await timed(s, c.post("/api/coord/presence/heartbeat", json={}), 200)
    elif kind == "send":
        peer = random.choice(agent.state["peers"])
        r = await timed(s, c.post("/api/coord/messages", json={
            "to_session": peer, "subject": f"soak {agent.session}", "body": "work update",
            "requires_ack": random.random() < 0.2}), 201)
        if r is not None:
            agent.state["sent"].setdefault(peer, set()).add(r.json()["id"])
    elif kind in ("read", "ack"):
        r = await timed(s, c.get("/api/coord/messages", params={"unread_only": "true", "limit": "5"}), 200)
        for m in (r.json() if r is not None else [])[:2]:
            # A real agent acks what asks for an ack once it has read it; one that only marks it read leaves
            # it for redelivery (at-least-once), kept until acked or dead-lettered, and the hub's storage grows
            # by what such agents leave behind (docs/retention.md).
            verb = ("put", f"/api/coord/messages/{m['id']}/read") if kind == "read" and not m["requires_ack"] else (
                "post", f"/api/coord/messages/{m['id']}/ack")
            if await timed(s, getattr(c, verb[0])(verb[1]), 200) is not None:
                agent.state["read"].add(m["id"])  # delivered: retention may remove it from history from now on
    elif kind == "lease":
        r = await timed(s, c.post("/api/coord/locks", json={"project_key": agent.project,
                                                            "resource": f"soak/{agent.index}.py", "ttl_hours": 0.05}),
                        201)
        if r is not None:
            lease_id = r.json()["id"]
            await timed(s, c.post(f"/api/coord/locks/{lease_id}/renew", json={}), 200)
            await timed(s, c.delete(f"/api/coord/locks/{lease_id}"), 200)
    else:
        status = random.choice(("pending", "in_progress", "blocked", "completed"))
        await timed(s, c.patch(f"/api/coord/work-items/{agent.state['item']}", json={"status": status}), 200)


async def _setup_soak(agents: list[Agent]) -> Series:
    """Register every agent and give each a work item in one workflow; the setup requests' series."""
    sessions = [a.session for a in agents]
    setup_series = Series()
    wf = await timed(setup_series, agents[0].client.post("/api/coord/workflows", json={
        "project_key": agents[0].project, "name": "soak"}), 201)
    if wf is None:
        raise SystemExit(f"bench: cannot create the soak workflow: {setup_series.error_samples}")

    async def setup(a: Agent) -> None:
        a.state.update(peers=[s for s in random.sample(sessions, min(8, len(sessions))) if s != a.session], sent={},
                       read=set())
        await timed(setup_series, a.client.post("/api/coord/presence/register", json={"client": "bench"}), 200)
        item = await timed(setup_series, a.client.post("/api/coord/work-items", json={
            "workflow_id": wf.json()["id"], "title": a.session}), 201)
        a.state["item"] = item.json()["id"] if item is not None else "missing"

    sem = asyncio.Semaphore(32)

    async def limited(a: Agent) -> None:
        async with sem:
            await setup(a)

    await asyncio.gather(*(limited(a) for a in agents))
    return setup_series


async def _read_json(client: httpx2.AsyncClient, path: str, params: dict[str, str], tries: int = 5) -> Any:
    """GET ``path`` and return its JSON, trying again after a transport error (a read: safe to repeat).

    After ten minutes of load a keep-alive connection the hub closed may be
    reused once more; that must not cost the whole report.
    """
    for attempt in range(tries):
        try:
            r = await client.get(path, params=params)
            r.raise_for_status()
            return r.json()
        except httpx2.TransportError:
            if attempt == tries - 1:
                raise
            await asyncio.sleep(0.5)


async def _lost(agents: list[Agent]) -> tuple[int, int]:
    """``(lost, read_unacked)``: messages acknowledged to their sender that the recipient neither read nor finds in
    its full history, and messages asking for an ack that their recipient read but never acked.

    A message the recipient read may have been pruned since (retention); one
    it never read must still be there, however old (unread messages are never
    pruned). A read, unacked message is kept for redelivery until acked or
    dead-lettered: what an agent that forgets its acks leaves in storage.
    """
    expected: dict[str, set[str]] = {}
    for a in agents:
        for peer, ids in a.state["sent"].items():
            expected.setdefault(peer, set()).update(ids)
    by_session = {a.session: a for a in agents}
    lost = read_unacked = 0
    for session, ids in expected.items():
        seen: set[str] = set()
        before: int | None = None
        while True:
            params = {"unread_only": "false", "limit": "500", **({"before_seq": str(before)} if before else {})}
            page = await _read_json(by_session[session].client, "/api/coord/messages", params)
            if not page:
                break
            seen.update(m["id"] for m in page)
            read_unacked += sum(1 for m in page if m["requires_ack"] and m["read"] and m["acked_at"] is None
                                and m["dead_lettered_at"] is None)
            before = page[-1]["seq"]
        lost += len(ids - seen - by_session[session].state["read"])
    return lost, read_unacked


async def soak(ctx: Context) -> dict[str, Any]:
    """``clients`` agents (500 by default) doing a realistic mix for ``duration`` (600 s): 0 errors, 0 lost."""
    tokens = await mint_tokens(ctx.target, f"SOAK-{ctx.run_id}", ctx.clients, concurrency=32)
    agents = make_agents(ctx.target, tokens, f"soak-{ctx.run_id}")
    curve: list[tuple[float, float | None]] = []
    sampler = asyncio.create_task(_sample_storage(ctx.target, curve))
    try:
        setup = await _setup_soak(agents)
        r = await run_for(agents, _soak_step, tuple(k for k, _ in WEIGHTS), ctx.duration, ctx.target, ctx.tick)
        lost, read_unacked = await _lost(agents)
        pruned = await asyncio.to_thread(_retention, ctx.target)
    finally:
        sampler.cancel()
        await close(agents)
    errors = setup.errors + sum(r[k]["errors"] for k, _ in WEIGHTS)
    ops = sum(r[k]["ops"] for k, _ in WEIGHTS)
    headline = {"ops": ops, "ops_per_s": round(ops / r["seconds"], 1), "p50_ms": None, "p95_ms": None,
                "p99_ms": max((r[k]["p99_ms"] or 0) for k, _ in WEIGHTS), "errors": errors,
                "error_samples": (setup.error_samples + [x for k, _ in WEIGHTS for x in r[k]["error_samples"]])[:3]}
    return {"headline": headline, "lost_messages": lost, "read_unacked": read_unacked, "agents": ctx.clients,
            "setup": setup.summary(1.0),
            "storage_mb": curve, "retention": pruned, **r}


def _retention(target: Target) -> Any:
    """The hub's retention overview (policy and pruner progress), None when it cannot be read."""
    try:
        r = httpx2.get(target.url + "/api/coord/retention", headers={"Authorization": f"Bearer {target.admin_token}"},
                       timeout=10)
    except httpx2.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


STORAGE_EVERY = 10.0  # seconds between two samples of the soak's storage curve


async def _sample_storage(target: Target, curve: list[tuple[float, float | None]]) -> None:
    """Append ``(seconds since the start, MB the hub's SQLite files take)`` every :data:`STORAGE_EVERY` s."""
    t0 = time.perf_counter()
    while True:
        size = target.storage_bytes()
        curve.append((round(time.perf_counter() - t0, 1), None if size is None else round(size / 1e6, 2)))
        await asyncio.sleep(STORAGE_EVERY)
