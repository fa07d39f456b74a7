"""Instructions per operation, counted by valgrind's callgrind: the cost measure the shared machine cannot blur.

Throughput on two shared cores moves by ±10–15 % between runs (issue 15's
ratios moved by ±0.1 between rounds), which hides any change worth a few per
cent. Callgrind counts the instructions a process executes: the same count
for the same code and inputs whatever else the machine does (seen here: one
change's A/B repeated within ±1 %). So ``--driver callgrind`` starts the hub
(and the ceiling, :mod:`coordhub.bench.ceiling`) under callgrind with
counting off, warms it up, then counts exactly ``ops`` operations sent one at
a time over one keep-alive connection, and reports thousands of instructions
per operation and their ratio.

What it counts and what it does not: every instruction the server process
runs in user space (the event loop, the writer thread, SQLite, libc), none of
the kernel's (socket writes, ``fsync``), and one client at a time, so each
write is its own commit (under load, group commit shares one among many):
a ratio here is a cost ratio per operation, not a throughput ratio. It takes
~20 s per server to start (the interpreter runs under valgrind).

Operations: ``message`` (a direct send, ``POST /api/coord/messages``),
``lease`` (a claim of a new file and its release: one cycle), and ``mcp``
(``list_leases`` and ``send_message`` as MCP ``tools/call`` and as the same
REST request, hub only: the issue's MCP/REST ratio).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2

from coordhub.bench.target import Target, mint_tokens, start, start_ceiling
from coordhub.bench.wrk import MCP_HEADERS

SCENARIOS = ("message", "lease", "mcp")
Agents = list[tuple[str, str]]  # (session id, token): the first acts, the second is written to
WARM = 20  # operations before counting starts: first calls build caches, prepared statements, /mcp's SDK
START_TIMEOUT = 600.0  # seconds for a server to answer /health under valgrind (~20 s here; slower machines exist)


class CallgrindMissing(RuntimeError):
    """valgrind (with ``callgrind_control``) is not on PATH."""


def available() -> tuple[str, str]:
    """The paths of ``valgrind`` and ``callgrind_control``; :class:`CallgrindMissing` (saying how to get them)."""
    valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
    if valgrind is None or control is None:
        raise CallgrindMissing("valgrind is not installed: on Debian or Ubuntu, `sudo apt-get install valgrind` "
                               "(the bench installs nothing itself)")
    return valgrind, control


class Counter:
    """A server running under callgrind, counting nothing until :meth:`per_op` counts some operations."""

    def __init__(self, target: Target, control: str, dumps: Path) -> None:
        self.target = target
        self.control = control
        self.dumps = dumps

    def per_op(self, op: Callable[[int], None], ops: int) -> float:
        """Thousands of instructions the server runs per call of ``op`` (``ops`` calls counted; :data:`WARM` run
        first, and a few more with counting on, so that switching it on is not counted)."""
        pid = str(self.target.proc.pid) if self.target.proc is not None else ""
        for i in range(WARM):
            op(-100 - i)
        self._control("--instr=on", pid)
        try:
            for i in range(3):
                op(-1 - i)
            self._control("--zero", pid)
            for i in range(ops):
                op(i)
            before = set(self.dumps.iterdir())
            self._control("--dump=counted", pid)
        finally:
            self._control("--instr=off", pid)
        total = sum(_total(path) for path in set(self.dumps.iterdir()) - before)
        return round(total / ops / 1000, 1)

    def _control(self, *args: str) -> None:
        subprocess.run([self.control, *args], check=True, capture_output=True, timeout=120)


@contextmanager
def counting(ceiling: bool, hub_args: list[str]) -> Iterator[Counter]:
    """The hub (started with ``hub_args``) or the ceiling, under callgrind with counting off."""
    valgrind, control = available()
    dumps = Path(tempfile.mkdtemp(prefix="coord-callgrind-"))
    try:
        prefix = [valgrind, "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={dumps}/cg.%p"]
        target = start_ceiling(prefix, START_TIMEOUT) if ceiling else start(hub_args, prefix=prefix,
                                                                            timeout=START_TIMEOUT)
        try:
            yield Counter(target, control, dumps)
        finally:
            target.stop()
    finally:
        shutil.rmtree(dumps, ignore_errors=True)


def measure(name: str, hub_args: list[str], ops: int, with_ceiling: bool, tick: Callable[[float], None]) -> dict[
        str, Any]:
    """``name``'s instructions per operation on a fresh hub (and on the ceiling for message and lease)."""
    if name == "mcp":
        return _mcp(hub_args, ops, tick)
    with counting(False, hub_args) as hub, httpx2.Client(base_url=hub.target.url, timeout=120) as http:
        health = http.get("/health").json()
        hub_k = hub.per_op(_op(name, http, agents(hub.target)), ops)
    tick(0.5)
    ceiling_k = None
    if with_ceiling:
        with counting(True, []) as ceiling, httpx2.Client(base_url=ceiling.target.url, timeout=120) as http:
            ceiling_k = ceiling.per_op(_op(name, http, agents(ceiling.target)), ops)
    tick(1.0)
    return {"headline": _headline(ops), "driver": "callgrind", "kinstr_per_op": {"hub": hub_k, "ceiling": ceiling_k},
            "ratio_to_ceiling": None if ceiling_k is None else round(ceiling_k / hub_k, 3),
            "backend": health.get("backend"), "durability": health.get("durability"), "clients": 1,
            "duration": None, "peak_rss_mib": None}


def _mcp(hub_args: list[str], ops: int, tick: Callable[[float], None]) -> dict[str, Any]:
    per: dict[str, dict[str, float]] = {}
    with counting(False, hub_args) as hub, httpx2.Client(base_url=hub.target.url, timeout=120) as http:
        health = http.get("/health").json()
        acting = agents(hub.target)
        for i, (tool, way) in enumerate((("list_leases", "mcp"), ("list_leases", "rest"),
                                         ("send_message", "mcp"), ("send_message", "rest"))):
            per.setdefault(tool, {})[way] = hub.per_op(_tool_op(tool, way, http, acting), ops)
            tick((i + 1) / 4)
    ratio = {tool: round(k["mcp"] / k["rest"], 3) for tool, k in per.items()}
    return {"headline": _headline(ops), "driver": "callgrind", "kinstr_per_call": per,
            "instruction_ratio_mcp_to_rest": ratio, "backend": health.get("backend"),
            "durability": health.get("durability"), "clients": 1, "duration": None, "peak_rss_mib": None}


def _headline(ops: int) -> dict[str, Any]:
    # the bench's common shape; a failed operation raises instead of counting as an error
    return {"ops": ops, "ops_per_s": None, "p50_ms": None, "p95_ms": None, "p99_ms": None, "errors": 0,
            "error_samples": []}


def agents(target: Target) -> Agents:
    """Two sessions of ``target`` with their tokens (:func:`~coordhub.bench.target.mint_tokens`)."""
    return asyncio.run(mint_tokens(target, "bench-callgrind", 2))


def _op(name: str, http: httpx2.Client, acting: Agents) -> Callable[[int], None]:
    """One operation of ``name`` by the first agent; raises ``RuntimeError`` on an unexpected answer."""
    auth = {"Authorization": f"Bearer {acting[0][1]}"}
    to = acting[1][0]
    stamp = time.monotonic_ns()  # a fresh hub's files; the ceiling keeps state across its runs

    def message(i: int) -> None:
        _ok(http.post("/api/coord/messages", headers=auth,
                      json={"to_session": to, "subject": f"counted {i}", "body": "from the callgrind driver"}))

    def lease(i: int) -> None:
        claimed = _ok(http.post("/api/coord/locks", headers=auth, json={
            "project_key": "bench-callgrind", "resource": f"src/{stamp}/f{i}.py", "description": "callgrind",
            "ttl_hours": 1}))
        _ok(http.delete(f"/api/coord/locks/{claimed['id']}", headers=auth))

    return message if name == "message" else lease


def _tool_op(tool: str, way: str, http: httpx2.Client, acting: Agents) -> Callable[[int], None]:
    """One ``tool`` call by the first agent, over MCP (``way="mcp"``) or as its REST request."""
    (me, token), (to, _) = acting
    auth = {"Authorization": f"Bearer {token}"}

    def call(i: int) -> None:
        if way == "rest":
            if tool == "list_leases":
                _ok(http.get("/api/coord/locks", params={"session_id": me}, headers=auth))
            else:
                _ok(http.post("/api/coord/messages", headers=auth, json={"to_session": to, "subject": f"s {i}"}))
            return
        arguments = {"session_id": me} if tool == "list_leases" else {"to": to, "subject": f"s {i}"}
        answer = _ok(http.post("/mcp", headers={**auth, **MCP_HEADERS}, json={
            "jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}))
        if not isinstance(answer, dict) or answer.get("result", {}).get("isError") is not False:
            raise RuntimeError(f"bench: MCP {tool} failed: {str(answer)[:300]}")

    return call


def _ok(r: httpx2.Response) -> Any:
    if r.status_code >= 300:
        raise RuntimeError(f"bench: {r.request.method} {r.request.url.path} answered {r.status_code}: {r.text[:300]}")
    return r.json()


def _total(dump: Path) -> int:
    """The instruction total of one callgrind dump (its ``totals:`` or ``summary:`` line)."""
    with dump.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    return 0
