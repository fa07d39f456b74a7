"""The hub (or ceiling) under test: starting it, minting tokens, reading its CPU and memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
from prometheus_client.parser import text_string_to_metric_families

_WRITER_TOTALS = ("batches", "units", "commit_seconds", "commits_over_10_ms", "runs_again")


def writer_between(before: dict[str, dict[str, float]] | None,
                   after: dict[str, dict[str, float]] | None) -> dict[str, dict[str, float]] | None:
    """The write batches between two :meth:`Target.writer_totals` readings, by writer that committed any:
    ``{writer: {"batches", "units", "units_per_batch", "commit_ms_mean", "commits_over_10_ms", "runs_again"}}`` (the
    mean of each batch's ``COMMIT`` round trip; on PostgreSQL it carries the next batch's ``BEGIN`` when chained;
    ``runs_again``: batches run again after their first run, whatever the cause). None when either reading is
    missing."""
    if before is None or after is None:
        return None
    out: dict[str, dict[str, float]] = {}
    for writer, end in after.items():
        start = before.get(writer, dict.fromkeys(_WRITER_TOTALS, 0.0))
        batches = end["batches"] - start["batches"]
        if batches <= 0:
            continue
        units = end["units"] - start["units"]
        out[writer] = {"batches": int(batches), "units": int(units), "units_per_batch": round(units / batches, 1),
                       "commit_ms_mean": round((end["commit_seconds"] - start["commit_seconds"]) / batches * 1000, 3),
                       "commits_over_10_ms": int(end["commits_over_10_ms"] - start["commits_over_10_ms"]),
                       "runs_again": int(end["runs_again"] - start["runs_again"])}
    return out


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    """A server being measured; ``proc`` is set only when this run started it. ``serving`` is how many processes
    serve its port (``--workers``), ``writer_process`` whether it runs one (``--writer-process``)."""

    url: str
    admin_token: str
    proc: subprocess.Popen[bytes] | None = None
    workdir: tempfile.TemporaryDirectory[str] | None = None
    log: Path | None = None
    serving: int = 1
    writer_process: bool = False

    def log_problems(self, keep: int = 5) -> dict[str, Any] | None:
        """Warnings, errors and tracebacks the server logged so far (count and the first few), None if not ours."""
        if self.log is None or not self.log.exists():
            return None
        bad = [line.strip() for line in self.log.read_text(errors="replace").splitlines()
               if any(word in line for word in ("WARNING", "ERROR", "CRITICAL", "Traceback"))]
        return {"lines": len(bad), "samples": [line[:300] for line in bad[:keep]]}

    def _pids(self) -> list[int]:
        """The process and its descendants alive now (``coord serve --workers N``: the supervisor and its workers)."""
        if self.proc is None:
            return []
        pids, i = [self.proc.pid], 0
        while i < len(pids):
            for task in Path(f"/proc/{pids[i]}/task").glob("*/children"):
                try:
                    pids += [int(p) for p in task.read_text().split()]
                except OSError:  # the process or thread ended meanwhile
                    pass
            i += 1
        return pids

    def _status(self, key: str, file: str = "status") -> int:
        """``key`` of /proc/PID/``file`` (kB; ``status`` or ``smaps_rollup``), summed over the process and its
        descendants."""
        total = 0
        for pid in self._pids():
            try:
                lines = Path(f"/proc/{pid}/{file}").read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                name, _, value = line.partition(":")
                if name == key:
                    total += int(value.split()[0])
        return total

    def rss_mib(self) -> float | None:
        """Resident memory now (MiB) of the process and its descendants, None when it is not ours."""
        return round(self._status("VmRSS") / 1024, 1) if self.proc else None

    def pss_mib(self) -> float | None:
        """Proportional memory now (MiB, ``Pss`` of /proc/PID/smaps_rollup) summed over the process and its
        descendants: each page shared by k of them counts 1/k in each, so the sum is what they hold together.
        Resident sizes double-count shared pages (``coord serve --workers N`` forks its serving processes from one
        parent); None when it is not ours."""
        return round(self._status("Pss", "smaps_rollup") / 1024, 1) if self.proc else None

    def peak_rss_mib(self) -> float | None:
        """Peak resident memory (MiB), summed over the process and its descendants, None when it is not ours."""
        return round(self._status("VmHWM") / 1024, 1) if self.proc else None

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds used so far by the process and its descendants, None when it is not ours."""
        if self.proc is None:
            return None
        total = 0
        for pid in self._pids():
            try:
                utime, stime = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]
            except OSError:
                continue
            total += int(utime) + int(stime)
        return total / 100.0

    def _metrics(self) -> list[Any] | None:
        """The hub's ``/metrics`` as parsed metric families (admin token); None when they cannot be read (no admin
        token, the ceiling, an older hub)."""
        try:
            r = httpx2.get(self.url + "/metrics", headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=10)
        except httpx2.HTTPError:
            return None
        if r.status_code != 200:
            return None
        return list(text_string_to_metric_families(r.text))

    def gc_pauses(self) -> dict[str, Any] | None:
        """The hub's garbage-collection pauses since it started serving, from its ``/metrics`` (admin token).

        ``{"longest_ms", "longest_cpu_ms", "pauses", "over_10_ms", "by_generation": {gen: longest_ms},
        "heap_blocks", "young_threshold"}`` (the last two as the run ended)
        over the generations (``coord_gc_pause_seconds``, ``coord_gc_pause_longest_seconds``, and the CPU time
        of the costliest collection, ``coord_gc_pause_longest_cpu_seconds``); None when the
        metrics cannot be read (no admin token, the ceiling, an older hub).
        """
        families = self._metrics()
        if families is None:
            return None
        longest: dict[str, float] = {}
        cpu: dict[str, float] = {}
        pauses = under = 0.0
        blocks = threshold = None
        for family in families:
            for sample in family.samples:
                if sample.name == "coord_gc_pause_longest_seconds":
                    longest[sample.labels["generation"]] = round(sample.value * 1000, 2)
                elif sample.name == "coord_gc_pause_longest_cpu_seconds":
                    cpu[sample.labels["generation"]] = round(sample.value * 1000, 2)
                elif sample.name == "coord_heap_blocks":
                    blocks = int(sample.value)
                elif sample.name == "coord_gc_young_threshold":
                    threshold = int(sample.value)
                elif sample.name == "coord_gc_pause_seconds_count":
                    pauses += sample.value
                elif sample.name == "coord_gc_pause_seconds_bucket" and float(sample.labels["le"]) == 0.01:
                    under += sample.value
        if not longest:
            return None
        return {"longest_ms": max(longest.values()), "longest_cpu_ms": max(cpu.values(), default=None),
                "pauses": int(pauses), "over_10_ms": int(pauses - under), "by_generation": longest,
                "heap_blocks": blocks, "young_threshold": threshold}

    def writer_totals(self) -> dict[str, dict[str, float]] | None:
        """The hub's write batches so far, by writer (``own``, ``process``), from its ``/metrics``:
        ``{writer: {"batches", "units", "commit_seconds", "commits_over_10_ms", "runs_again"}}`` (cumulative; see
        :func:`writer_between`). None when the metrics cannot be read. Under ``--workers N`` a scrape reaches
        whichever worker accepts it: ``own`` is that worker's writer, ``process`` what that worker heard of the
        writer process's batches."""
        families = self._metrics()
        if families is None:
            return None
        totals: dict[str, dict[str, float]] = {}
        for family in families:
            for sample in family.samples:
                writer = sample.labels.get("writer")
                if writer is None:
                    continue
                entry = totals.setdefault(writer, dict.fromkeys(_WRITER_TOTALS, 0.0))
                if sample.name == "coord_writer_batch_units_count":
                    entry["batches"] = sample.value
                elif sample.name == "coord_writer_batch_units_sum":
                    entry["units"] = sample.value
                elif sample.name == "coord_writer_commit_seconds_sum":
                    entry["commit_seconds"] = sample.value
                elif sample.name == "coord_writer_commit_seconds_count":
                    entry["commits_over_10_ms"] += sample.value
                elif sample.name == "coord_writer_commit_seconds_bucket" and float(sample.labels["le"]) == 0.01:
                    entry["commits_over_10_ms"] -= sample.value
                elif sample.name == "coord_writer_runs_again_total":
                    entry["runs_again"] += sample.value
        return totals

    def storage_bytes(self) -> int | None:
        """Bytes the hub's SQLite database takes now (file, WAL and shared memory), None when it is not ours or
        not SQLite."""
        if self.log is None:
            return None
        db = self.log.parent / "coord.db"
        if not db.exists():
            return None
        return sum(p.stat().st_size for p in (db, db.with_name("coord.db-wal"), db.with_name("coord.db-shm"))
                   if p.exists())

    def stop(self) -> None:
        """Stop the process (if ours) and remove its data dir."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.workdir is not None:
            self.workdir.cleanup()


class NotReady(Exception):
    """A server process exited or did not answer ``/health`` in time; the message says which."""


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float, output: Callable[[], str]) -> None:
    """Block until ``GET url/health`` answers 200 from ``proc``; raise ``NotReady`` (with ``output()``) if not in
    ``timeout`` s.

    A port found free a moment ago (:func:`free_port`) can be taken by another
    server before ``proc`` binds it (a hub under valgrind takes ~20 s to
    start; the test suite starts hubs in parallel). An answer counts only once
    the port's listening socket is held by ``proc`` or one of its children
    (:func:`listens`), so a caller never measures or tests another server;
    ``proc`` then fails to bind and exits, and this raises with its output.
    Shared by ``coord bench`` and the tests that start real hubs.
    """
    deadline = time.monotonic() + timeout
    port = urlsplit(url).port
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NotReady(f"the server exited {proc.returncode}:\n{output()}")
        try:
            if httpx2.get(url + "/health", timeout=1.0).status_code == 200 and (
                    port is None or listens(proc.pid, port) is not False):
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.05)
    raise NotReady(f"the server did not answer /health within {timeout:g} s:\n{output()}")


def listens(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` or a descendant holds a TCP socket listening on ``port`` (IPv4 or IPv6).

    Read from Linux's ``/proc`` (``net/tcp``, ``net/tcp6``: state ``0A`` is
    LISTEN; each process's ``fd`` links name ``socket:[inode]``). None when
    ``/proc`` cannot tell (another system, or nothing listening found in the
    tables at all), so a caller treats the answer as unknown, not as no.
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cells = row.split()
            if len(cells) > 9 and cells[3] == "0A" and int(cells[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cells[9])
    if not inodes:
        return None
    pending, seen = [pid], set()
    while pending:
        p = pending.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with os.scandir(f"/proc/{p}/fd") as fds:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        link = os.readlink(fd.path)
                        if link.startswith("socket:[") and link[8:-1] in inodes:
                            return True
            with os.scandir(f"/proc/{p}/task") as tasks:
                for task in tasks:
                    with contextlib.suppress(OSError):
                        pending.extend(int(c) for c in Path(task.path, "children").read_text().split())
        except OSError:  # the process ended meanwhile
            continue
    return False


def _launch(target: Target, command: Callable[[int], list[str]], timeout: float, tries: int = 3) -> None:
    """Start ``command(port)`` on a free port as ``target``'s process (output to its log) and wait for its
    ``/health``; on a port another server took first, again on another (up to ``tries`` ports). On failure
    stop it (and remove its folder) and exit with the reason; also on Ctrl-C (a server under valgrind takes
    ~20 s to start, a window not to leave it running from)."""
    log = target.log
    assert log is not None
    for attempt in range(tries):
        port = free_port()
        target.url = f"http://127.0.0.1:{port}"
        with open(log, "ab") as out:
            target.proc = subprocess.Popen(command(port), stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_healthy(target.url, target.proc, timeout, log.read_text)
            return
        except NotReady as exc:
            if target.proc.poll() is not None and "already in use" in str(exc) and (
                    attempt + 1 < tries):
                continue  # it exited, leaving its folder for the next try
            target.stop()
            raise SystemExit(f"bench: {exc}") from None
        except BaseException:
            target.stop()
            raise


def start(args: list[str], data_dir: Path | None = None, *, prefix: list[str] | None = None,
          timeout: float = 60.0) -> Target:
    """Start ``python -m coordhub serve`` (extra ``args``) on a free port; return once /health answers.

    ``data_dir`` reuses a prepared data dir (the inbox scenario fills one first);
    by default a temporary one is made and removed afterwards. ``prefix`` runs
    the interpreter under another program (valgrind, for ``--driver
    callgrind``), ``timeout`` is how long it may take to answer (seconds).
    """
    workdir = None if data_dir is not None else tempfile.TemporaryDirectory(prefix="coord-bench-")
    folder = data_dir or Path(workdir.name)  # type: ignore[union-attr]
    target = Target("", "", None, workdir, folder / "hub.log",
                    serving=int(args[args.index("--workers") + 1]) if "--workers" in args else 1,
                    writer_process="--writer-process" in args)
    _launch(target, lambda port: [*(prefix or []), sys.executable, "-m", "coordhub", "serve", "--log-level",
                                  "warning", "--port", str(port), "--data-dir", str(folder), *args], timeout)
    target.admin_token = (folder / "admin.token").read_text().strip()
    return target


def start_ceiling(prefix: list[str] | None = None, timeout: float = 60.0) -> Target:
    """Start the in-memory ceiling server (``coordhub.bench.ceiling``) on a free port (``prefix`` and
    ``timeout`` as for :func:`start`)."""
    workdir = tempfile.TemporaryDirectory(prefix="coord-ceiling-")
    target = Target("", "ceiling", None, workdir, Path(workdir.name) / "ceiling.log")
    _launch(target, lambda port: [*(prefix or []), sys.executable, "-m", "coordhub.bench.ceiling", str(port)],
            timeout)
    return target


async def mint_tokens(target: Target, prefix: str, n: int, concurrency: int = 16) -> list[tuple[str, str]]:
    """Create ``n`` session tokens through the admin API: ``[(session id, token)]`` in order.

    Exits (``SystemExit``) with the hub's answer when it refuses one; the first
    is asked alone, so a refused admin token is told once, not once per agent.
    """
    if target.admin_token == "ceiling":  # the ceiling has no auth: any token is fine
        return [(f"{prefix}/agent{i:05d}", "x") for i in range(n)]
    out: list[tuple[str, str]] = [("", "")] * n
    sem = asyncio.Semaphore(concurrency)
    async with httpx2.AsyncClient(base_url=target.url, timeout=60.0,
                                  headers={"Authorization": f"Bearer {target.admin_token}"}) as c:

        async def one(i: int) -> str | None:
            session = f"{prefix}/agent{i:05d}"
            async with sem:
                r = await c.post("/api/coord/tokens", json={"name": session})
            if r.status_code != 201:
                return f"bench: cannot create a token for {session}: {r.status_code} {r.text}"
            out[i] = (session, r.json()["token"])
            return None

        failure = await one(0) if n else None
        if failure is None:
            failure = next(filter(None, await asyncio.gather(*(one(i) for i in range(1, n)))), None)
        if failure is not None:
            raise SystemExit(failure)
    return out
