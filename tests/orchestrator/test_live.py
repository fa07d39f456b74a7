"""Against a real ``coord serve`` (both backends), with real concurrency: hosts in threads, parallel assigns."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2

from coordhub.clock import parse_iso
from tests.conftest import LiveHub
from tests.orchestrator.conftest import ORCH, config


def _admin(hub: LiveHub) -> dict[str, str]:
    return {"Authorization": f"Bearer {hub.admin_token}"}


def _apply(hub: LiveHub, **sections: Any) -> None:
    r = httpx2.put(hub.url + ORCH + "/config", headers=_admin(hub), json=config(**sections))
    assert r.status_code == 200, r.text


def test_two_parallel_assigns_of_one_issue_make_one(live: LiveHub) -> None:
    _apply(live)
    tokens = [{"Authorization": f"Bearer {live.token(f'desk{i}/claude-main')}"} for i in range(8)]
    barrier = threading.Barrier(len(tokens))

    def click(headers: dict[str, str]) -> int:
        barrier.wait()
        r = httpx2.post(live.url + ORCH + "/assignments", headers=headers,
                        json={"any": True, "repo": "api", "issue": 77}, timeout=30)
        return r.status_code

    with ThreadPoolExecutor(len(tokens)) as pool:
        codes = sorted(pool.map(click, tokens))
    assert codes == [201] + [409] * (len(tokens) - 1)
    listed = httpx2.get(live.url + ORCH + "/assignments", headers=_admin(live)).json()
    assert [(a["repo"], a["issue"]) for a in listed] == [("api", 77)]


class Worker(threading.Thread):
    """A host in a thread: long-polls `next`, 'runs' each assignment for a while, reports it done."""

    def __init__(self, hub: LiveHub, machine: str, runs: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url = hub.url + ORCH
        self.machine = machine
        self.runs = runs
        self.stop = stop
        self.headers = {"Authorization": f"Bearer {hub.token(f'{machine}/agent')}"}
        r = httpx2.post(self.url + "/hosts/register", headers=self.headers, json={
            "machine": machine, "slots": 2, "repos": {"api": "/src/api", "lib": "/src/lib"}})
        assert r.status_code == 200, r.text
        self.incarnation = r.json()["host_incarnation"]
        self.done: list[str] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.running: list[str] = []

    def run(self) -> None:
        with httpx2.Client(timeout=20) as http:
            while not self.stop.is_set():
                r = http.post(self.url + "/hosts/next", headers=self.headers, json={
                    "machine": self.machine, "host_incarnation": self.incarnation, "wait": 1})
                if r.status_code != 200:
                    self.errors.append(r.text)
                    return
                job = r.json()["assignment"]
                if job is not None:
                    threading.Thread(target=self.work, args=(job,), daemon=True).start()

    def work(self, job: dict[str, Any]) -> None:
        with self.lock:
            self.running.append(job["id"])
        with httpx2.Client(timeout=20) as http:
            http.post(f"{self.url}/assignments/{job['id']}/report", headers=self.headers,
                      json={"attempt": job["attempt"], "host_incarnation": self.incarnation, "state": "running"})
            time.sleep(self.runs)
            r = http.post(f"{self.url}/assignments/{job['id']}/report", headers=self.headers,
                          json={"attempt": job["attempt"], "host_incarnation": self.incarnation, "state": "done",
                                "telemetry": {"cost_usd": 0.25}})
            if r.status_code != 200:
                self.errors.append(r.text)
        with self.lock:
            self.running.remove(job["id"])
            self.done.append(job["id"])


def test_six_assignments_over_two_real_hosts(live: LiveHub) -> None:
    stagger = 0.3
    _apply(live, concurrency={"max_workers": 2, "stagger_seconds": stagger, "backoff_base": 1})
    user = {"Authorization": f"Bearer {live.token('desk/claude-main')}"}
    ids = []
    for n in range(1, 7):
        r = httpx2.post(live.url + ORCH + "/assignments", headers=user, json={"any": True, "repo": "api", "issue": n})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    stop = threading.Event()
    hosts = [Worker(live, "laptop", 0.8, stop), Worker(live, "server", 0.5, stop)]
    for h in hosts:
        h.start()
    deadline = time.monotonic() + 60
    while sum(len(h.done) for h in hosts) < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for h in hosts:
        h.join(timeout=10)
        assert h.errors == []
    assert sorted(x for h in hosts for x in h.done) == sorted(ids)
    attempts = []
    for assignment_id in ids:
        a = httpx2.get(f"{live.url}{ORCH}/assignments/{assignment_id}", headers=user).json()
        assert a["state"] == "done" and a["attempt"] == 1
        (run,) = a["attempts"]
        attempts.append((parse_iso(run["dispatched_at"]), parse_iso(run["ended_at"]), assignment_id))
    # FIFO: dispatched in the order they were queued
    assert [x[2] for x in sorted(attempts)] == ids
    # never more than max_workers at once (from dispatch to end, as the hub recorded them)
    edges = sorted([(d, 1) for d, _, _ in attempts] + [(e, -1) for _, e, _ in attempts])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    assert peak == 2
    starts = sorted(d for d, _, _ in attempts)
    assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) >= stagger
    status = httpx2.get(live.url + ORCH + "/status", headers=user).json()
    assert status["totals"]["cost_usd"] == 1.5 and status["totals"]["running"] == 0
