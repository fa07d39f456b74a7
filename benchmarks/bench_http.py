"""HTTP benchmark of a coordhub hub: lease claim+release cycles/s and message sends/s.

N simulated agents (default 64) run concurrently in one asyncio loop, each with
its own ``httpx2.AsyncClient`` (one kept-alive connection) and its own session
token, for ``--duration`` seconds per scenario:

* ``lease``: each agent claims its own resource in one shared project and
  releases it (uncontended), over and over; one op = claim + release;
* ``message``: each agent sends direct messages to the next agent.

For each scenario it reports ops, ops/s, p50/p95/p99 latency in ms and errors,
plus the CPU seconds the hub and this driver spent (both share the machine).
By default it starts its own hub (``python -m coordhub serve --log-level
warning`` on a temp data dir, SQLite unless ``--database-url``), reports the
durability level the hub declares on ``GET /health``, and the hub's RSS at
the end. ``--url`` and ``--token`` (an admin token, to mint the agents'
tokens) point it at a running hub instead.

Design targets (DESIGN.md §6, 2 cores, loopback, durable commits, 64 clients):
claim+release ≥ 2,000 cycles/s with p99 ≤ 25 ms; message send ≥ 3,000/s with
p99 ≤ 25 ms. A Python driver on the same cores takes a large share of the
CPU, so absolute numbers understate the hub; compare runs made the same way.

    python benchmarks/bench_http.py                       # 64 clients, 10 s per scenario, SQLite FULL
    python benchmarks/bench_http.py --clients 16 --duration 5 --json
    python benchmarks/bench_http.py --database-url postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

TARGETS = {"lease claim+release": "≥ 2,000 cycles/s, p99 ≤ 25 ms @ 64 clients",
           "message send": "≥ 3,000/s, p99 ≤ 25 ms @ 64 clients"}


# ---- the hub under test ---------------------------------------------------------------------------

@dataclass
class Hub:
    """The hub being measured; ``proc`` is set only when this script started it."""

    url: str
    admin_token: str
    proc: subprocess.Popen[bytes] | None = None
    workdir: tempfile.TemporaryDirectory[str] | None = None

    def rss_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) of the hub process in KiB, read from /proc; empty if not ours."""
        if self.proc is None:
            return {}
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
        return fields

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the hub process has used (0 when it is not ours)."""
        if self.proc is None:
            return 0.0
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        utime, stime = stat.rsplit(")", 1)[1].split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Stop the hub this script started (SIGTERM, then SIGKILL after 20 s) and remove its data."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.workdir is not None:
            self.workdir.cleanup()


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_hub(database_url: str | None, sqlite_synchronous: str | None) -> Hub:
    """Start ``coord serve`` on a free port and a temp data dir; return once /health answers."""
    workdir = tempfile.TemporaryDirectory(prefix="coord-bench-")
    port = free_port()
    cmd = [sys.executable, "-m", "coordhub", "serve", "--log-level", "warning", "--port", str(port),
           "--data-dir", workdir.name]
    if database_url:
        cmd += ["--database-url", database_url]
    if sqlite_synchronous:
        cmd += ["--sqlite-synchronous", sqlite_synchronous]
    log = open(Path(workdir.name) / "hub.log", "wb")
    with log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    hub = Hub(f"http://127.0.0.1:{port}", "", proc, workdir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = (Path(workdir.name) / "hub.log").read_text()
            hub.stop()
            raise SystemExit(f"bench: the hub exited {proc.returncode}:\n{text}")
        try:
            if httpx2.get(hub.url + "/health", timeout=1.0).status_code == 200:
                hub.admin_token = (Path(workdir.name) / "admin.token").read_text().strip()
                return hub
        except httpx2.TransportError:
            pass
        time.sleep(0.05)
    hub.stop()
    raise SystemExit("bench: the hub did not answer /health within 30 s")


def mint_tokens(hub: Hub, run_id: str, n: int) -> list[tuple[str, str]]:
    """Create one session token per agent through the admin API: [(session id, token)]."""
    agents = []
    with httpx2.Client(base_url=hub.url, headers={"Authorization": f"Bearer {hub.admin_token}"},
                       timeout=30.0) as c:
        for i in range(n):
            session = f"BENCH-{run_id}/agent{i:03d}"
            r = c.post("/api/coord/tokens", json={"name": session})
            if r.status_code != 201:
                raise SystemExit(f"bench: cannot create a token for {session}: {r.status_code} {r.text}")
            agents.append((session, r.json()["token"]))
    return agents


# ---- measuring ------------------------------------------------------------------------------------

@dataclass
class Series:
    """Latencies (seconds) and errors of one kind of operation."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        """Count an error; keep the first few for the report."""
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(what[:300])

    def summary(self, seconds: float) -> dict[str, Any]:
        """ops, ops/s and p50/p95/p99 in ms (nearest rank), errors."""
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000, 2) if lat else None

        return {"ops": len(lat), "ops_per_s": round(len(lat) / seconds, 1), "p50_ms": pct(50),
                "p95_ms": pct(95), "p99_ms": pct(99), "errors": self.errors, "error_samples": self.error_samples}


@dataclass
class Agent:
    """One simulated agent: its session, its own client, and what it should do next."""

    index: int
    session: str
    client: httpx2.AsyncClient
    peer: str  # the session it messages
    project: str
    n: int = 0


Op = Callable[[Agent, dict[str, Series]], Awaitable[None]]


async def timed(series: Series, call: Awaitable[httpx2.Response], expect: int) -> httpx2.Response | None:
    """Await one request, record its latency if it answered ``expect``, else count an error."""
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


async def lease_cycle(agent: Agent, out: dict[str, Series]) -> None:
    """Claim the agent's own resource, then release it; the cycle counts only if both succeed."""
    t0 = time.perf_counter()
    claim = await timed(out["claim"], agent.client.post("/api/coord/locks", json={
        "project_key": agent.project, "resource": f"agents/{agent.index}/work.py", "description": "bench",
        "ttl_hours": 0.1}), 201)
    if claim is None:
        return
    release = await timed(out["release"], agent.client.delete(f"/api/coord/locks/{claim.json()['id']}"), 200)
    if release is not None:
        out["cycle"].latencies.append(time.perf_counter() - t0)


async def message_send(agent: Agent, out: dict[str, Series]) -> None:
    """Send one direct message to the agent's peer."""
    agent.n += 1
    await timed(out["send"], agent.client.post("/api/coord/messages", json={
        "to_session": agent.peer, "subject": f"bench {agent.n}", "body": "x" * 200}), 201)


async def run_scenario(agents: list[Agent], op: Op, series: tuple[str, ...], duration: float,
                       hub: Hub) -> dict[str, Any]:
    """Warm every agent up with one op, then let all run ``op`` for ``duration`` s; summarise."""
    warm = {name: Series() for name in series}
    await asyncio.gather(*(op(a, warm) for a in agents))
    out = {name: Series() for name in series}
    hub_cpu0, driver_cpu0 = hub.cpu_seconds(), time.process_time()
    t0 = time.perf_counter()
    end = t0 + duration

    async def loop(agent: Agent) -> None:
        while time.perf_counter() < end:
            await op(agent, out)

    await asyncio.gather(*(loop(a) for a in agents))
    seconds = time.perf_counter() - t0
    result: dict[str, Any] = {name: s.summary(seconds) for name, s in out.items()}
    result["seconds"] = round(seconds, 2)
    result["hub_cpu_s"] = round(hub.cpu_seconds() - hub_cpu0, 2) if hub.proc else None
    result["driver_cpu_s"] = round(time.process_time() - driver_cpu0, 2)
    return result


async def run_all(hub: Hub, tokens: list[tuple[str, str]], duration: float, run_id: str) -> dict[str, Any]:
    """Both scenarios with one client per agent, kept open across them."""
    project = f"bench-{run_id}"
    clients = [httpx2.AsyncClient(base_url=hub.url, headers={"Authorization": f"Bearer {token}"},
                                  timeout=30.0, limits=httpx2.Limits(max_connections=1))
               for _, token in tokens]
    agents = [Agent(i, session, clients[i], tokens[(i + 1) % len(tokens)][0], project)
              for i, (session, _) in enumerate(tokens)]
    try:
        leases = await run_scenario(agents, lease_cycle, ("cycle", "claim", "release"), duration, hub)
        messages = await run_scenario(agents, message_send, ("send",), duration, hub)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return {"lease": leases, "message": messages}


# ---- reporting ------------------------------------------------------------------------------------

ROWS = (("lease claim+release", "lease", "cycle"), ("  claim request", "lease", "claim"),
        ("  release request", "lease", "release"), ("message send", "message", "send"))


def print_table(report: dict[str, Any]) -> None:
    """The human-readable report."""
    print(f"hub {report['url']}  backend {report['backend']}  durability: {report['durability']}")
    print(f"{report['clients']} clients, {report['duration']} s per scenario, driver: one Python asyncio process")
    head = f"{'scenario':<22}{'ops':>9}{'ops/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}"
    print(head)
    print("-" * len(head))
    for label, scenario, series in ROWS:
        s = report["results"][scenario][series]
        cells = [f"{s[k]:>9}" if s[k] is not None else f"{'-':>9}" for k in ("p50_ms", "p95_ms", "p99_ms")]
        print(f"{label:<22}{s['ops']:>9}{s['ops_per_s']:>10}{''.join(cells)}{s['errors']:>8}")
    for scenario in ("lease", "message"):
        r = report["results"][scenario]
        hub_cpu = "n/a" if r["hub_cpu_s"] is None else f"{r['hub_cpu_s']} s"
        print(f"cpu during {scenario}: hub {hub_cpu}, driver {r['driver_cpu_s']} s over {r['seconds']} s wall")
    for scenario, series in (("lease", "claim"), ("lease", "release"), ("message", "send")):
        for sample in report["results"][scenario][series]["error_samples"]:
            print(f"error sample ({scenario} {series}): {sample}")
    if report["rss_kib"]:
        print(f"hub RSS at end: {report['rss_kib'].get('VmRSS', 0) / 1024:.1f} MiB "
              f"(peak {report['rss_kib'].get('VmHWM', 0) / 1024:.1f} MiB)")
    print("targets (DESIGN.md §6): " + "; ".join(f"{k} {v}" for k, v in TARGETS.items()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=64, help="concurrent simulated agents (default 64)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per scenario (default 10)")
    p.add_argument("--url", help="measure the hub at this URL instead of starting one")
    p.add_argument("--token", help="admin token of the hub at --url (mints the agents' tokens)")
    p.add_argument("--database-url", help="start the hub on this database (e.g. postgresql://…)")
    p.add_argument("--sqlite-synchronous", choices=("FULL", "NORMAL"), help="start the hub with this level")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    if bool(args.url) != bool(args.token):
        p.error("--url and --token go together")
    if args.url and (args.database_url or args.sqlite_synchronous):
        p.error("--database-url and --sqlite-synchronous apply only to a hub this script starts")
    if args.clients < 2:
        p.error("--clients must be at least 2 (agents message each other)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code (1 if any request failed)."""
    args = parse_args(argv)
    hub = Hub(args.url.rstrip("/"), args.token) if args.url else start_hub(args.database_url,
                                                                             args.sqlite_synchronous)
    try:
        health = httpx2.get(hub.url + "/health", timeout=10.0).json()
        run_id = uuid.uuid4().hex[:8]
        tokens = mint_tokens(hub, run_id, args.clients)
        results = asyncio.run(run_all(hub, tokens, args.duration, run_id))
        report = {"url": hub.url, "backend": health.get("backend"), "durability": health.get("durability"),
                  "clients": args.clients, "duration": args.duration, "results": results,
                  "rss_kib": hub.rss_kib(), "targets": TARGETS}
    finally:
        hub.stop()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    errors = sum(s["errors"] for r in results.values() for k, s in r.items() if isinstance(s, dict))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
