"""The ``dispatch`` scenario: assign → dispatched latency with 50 assignments queued (issue 11, DESIGN §6).

The hub's share of "assign → worker process started" (target: p50 ≤ 1 s with
50 queued): from the moment ``POST /orchestrator/assignments`` is sent until
a host that long-polls ``next`` holds the dispatch (the worker token, the
issue lease and the attempt are taken in that call). Two hosts run in
threads, each one long-poll at a time, as ``coord agent`` does; no worker is
started, so what is measured is the hub. Two phases:

* ``burst``: 50 assignments queued at once while both hosts wait; each
  one's latency includes waiting behind the ones queued before it (the hub
  dispatches one per ``next`` call: the queue drains at the dispatch rate);
* ``deep``: 50 assignments sit queued for a machine with no host (every
  dispatch decision scans past them), and ``runs`` assignments are then
  queued one at a time, each measured until a host holds it.

Percentiles are nearest-rank, in ms.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx2

from coordhub.bench.driver import Tick
from coordhub.bench.stats import Series
from coordhub.bench.target import start

QUEUED = 50
API = "/api/coord/orchestrator"
MACHINES = ("bench1", "bench2")
IDLE = "bench-idle"  # a machine of the config whose host never connects: its queue only costs scans


def _config() -> dict[str, Any]:
    return {"repos": [{"name": "bench"}],
            "machines": [{"name": m, "repos": ["bench"]} for m in (*MACHINES, IDLE)],
            "concurrency": {"max_workers": 1000, "stagger_seconds": 0, "heartbeat_seconds": 5, "stale_threshold": 60}}


class _Host(threading.Thread):
    """One host: long-polls ``next`` and records when each assignment arrived; reports it done at once."""

    def __init__(self, url: str, machine: str, token: str, got: dict[str, float], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.machine, self.got, self.stop = url, machine, got, stop
        self.headers = {"Authorization": f"Bearer {token}"}
        r = httpx2.post(url + API + "/hosts/register", headers=self.headers, timeout=30,
                        json={"machine": machine, "slots": 64, "repos": {"bench": "/src/bench"}})
        r.raise_for_status()
        self.incarnation = r.json()["host_incarnation"]
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx2.Client(base_url=self.url + API, headers=self.headers, timeout=30) as c:
            while not self.stop.is_set():
                r = c.post("/hosts/next", json={"machine": self.machine, "host_incarnation": self.incarnation,
                                                "wait": 2})
                if r.status_code != 200:
                    self.errors.append(f"{r.status_code} {r.text[:200]}")
                    time.sleep(0.5)
                    continue
                job = r.json()["assignment"]
                if job is None:
                    continue
                self.got[job["id"]] = time.perf_counter()
                done = c.post(f"/assignments/{job['id']}/report", json={"attempt": job["attempt"], "state": "done"})
                if done.status_code != 200:
                    self.errors.append(f"report {done.status_code} {done.text[:200]}")


def _assign(c: httpx2.Client, issue: int, **target: Any) -> tuple[str | None, float, str | None]:
    sent = time.perf_counter()
    r = c.post(API + "/assignments", json={"repo": "bench", "issue": issue, **(target or {"any": True})})
    if r.status_code != 201:
        return None, sent, f"{r.status_code} {r.text[:200]}"
    return str(r.json()["id"]), sent, None


def _await(got: dict[str, float], ids: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(i not in got for i in ids):
        time.sleep(0.005)


def dispatch(hub_args: list[str], runs: int, progress: Callable[[str], Tick]) -> dict[str, Any]:
    """Both phases on a fresh hub; the headline is the ``deep`` phase (one assignment with 50 queued ahead)."""
    target = start(hub_args)
    stop = threading.Event()
    hosts: list[_Host] = []
    try:
        admin = {"Authorization": f"Bearer {target.admin_token}"}
        health = httpx2.get(target.url + "/health", timeout=10).json()
        httpx2.put(target.url + API + "/config", json=_config(), headers=admin, timeout=30).raise_for_status()
        tokens = {m: httpx2.post(target.url + "/api/coord/tokens", json={"name": f"{m}/agent"}, headers=admin,
                                 timeout=30).json()["token"] for m in MACHINES}
        user = httpx2.post(target.url + "/api/coord/tokens", json={"name": "bench/coordinator"}, headers=admin,
                           timeout=30).json()["token"]
        got: dict[str, float] = {}
        hosts = [_Host(target.url, m, tokens[m], got, stop) for m in MACHINES]
        for h in hosts:
            h.start()
        time.sleep(0.5)  # both hosts are waiting in `next`
        burst, deep, tick = Series(), Series(), progress("dispatch")
        with httpx2.Client(base_url=target.url, headers={"Authorization": f"Bearer {user}"}, timeout=30) as c:
            sent: dict[str, float] = {}
            for n in range(QUEUED):
                aid, at, err = _assign(c, n + 1)
                if aid is None:
                    burst.fail(err or "?")
                else:
                    sent[aid] = at
            _await(got, list(sent))
            for aid, at in sent.items():
                if aid in got:
                    burst.latencies.append(got[aid] - at)
                else:
                    burst.fail(f"{aid} never dispatched")
            tick(0.3)
            for n in range(QUEUED):  # these wait for a host that never comes: every decision scans past them
                _assign(c, 1000 + n, machine=IDLE)
            t0 = time.perf_counter()
            for n in range(runs):
                aid, at, err = _assign(c, 2000 + n)
                if aid is None:
                    deep.fail(err or "?")
                    continue
                _await(got, [aid], 30.0)
                if aid in got:
                    deep.latencies.append(got[aid] - at)
                else:
                    deep.fail(f"{aid} never dispatched")
                tick(0.3 + 0.7 * (n + 1) / runs)
            seconds = time.perf_counter() - t0
        errors = [e for h in hosts for e in h.errors]
        headline = deep.summary(seconds)
        headline["errors"] += len(errors)
        headline["error_samples"] = (headline["error_samples"] + errors)[:3]
        return {"headline": headline, "headline_is": f"assign → dispatched with {QUEUED} queued ahead",
                "burst": burst.summary(0.0), "queued": QUEUED, "rss_mib": target.rss_mib(),
                "peak_rss_mib": target.peak_rss_mib(), "hub_log": target.log_problems(),
                "backend": health.get("backend"), "durability": health.get("durability")}
    finally:
        stop.set()
        for h in hosts:
            h.join(timeout=5)
        target.stop()
