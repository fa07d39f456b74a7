"""An in-process stand-in for the hub's orchestrator host endpoints, speaking the contract's shapes.

It replaces :class:`coordhub.orchestrator.link.HubLink` (same methods, same
exceptions) so host and worker tests run without a hub process: a FIFO queue
of assignments, attempts (a report of another attempt raises ``Stale``, the
409 ``stale_attempt`` of the contract), the character-offset log relay with
``log_gap`` (contract A6), and heartbeat answers whose ``paused``,
``paused_assignments`` and ``cancel`` a test sets. File leases still go to a
real hub when a test gives one (the worker's own token).
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from coordhub.client import Unreachable
from coordhub.orchestrator.link import LogGap, Refused, Stale


@dataclass
class Assignment:
    id: str
    payload: dict[str, Any]
    state: str = "queued"
    attempt: int = 0
    reports: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""
    machine: str | None = None


class FakeHub:
    """The host endpoints of the contract, in memory. Thread-safe."""

    def __init__(self, config: dict[str, Any] | None = None, machine: str = "m1") -> None:
        self.machine = machine
        self.cfg = config or {}
        self.lock = threading.Lock()
        self.assignments: dict[str, Assignment] = {}
        self.queue: list[str] = []
        self.incarnation = 0
        self.registrations: list[dict[str, Any]] = []
        self.heartbeats: list[dict[str, Any]] = []
        self.paused = False
        self.paused_assignments: set[str] = set()
        self.cancel: set[str] = set()
        self.down = False
        self.refuse_telemetry = False  # answer 422 to any report carrying telemetry (a hub that cannot take it)
        self.running_log: list[tuple[float, str, str]] = []  # (time, id, "start"|"end")
        self.run_reports: list[tuple[str, dict[str, Any]]] = []  # (stage run id, body), as sent
        self.stale_runs: set[str] = set()  # stage runs over on the hub: their reports are refused as stale
        self.stage_runs: list[dict[str, Any]] = []  # runs `next_run` hands out, once each (a test adds them)
        self.merge_runs: list[dict[str, Any]] = []  # the same for `merge_next`
        self.merge_reports: list[dict[str, Any]] = []
        self.arrived = threading.Condition(self.lock)

    # -- what tests do --------------------------------------------------------------

    def add(self, aid: str, **payload: Any) -> Assignment:
        """Queue an assignment with a dispatch payload (id, attempt and worker session filled in at dispatch)."""
        with self.lock:
            a = Assignment(aid, payload)
            self.assignments[aid] = a
            self.queue.append(aid)
            return a

    def dispatched(self, aid: str, attempt: int = 1, **payload: Any) -> Assignment:
        """An assignment already handed to this machine (attempt ``attempt``), e.g. before the host died."""
        with self.lock:
            a = Assignment(aid, payload, state="running", attempt=attempt, machine=self.machine)
            self.assignments[aid] = a
            return a

    def requeue(self, aid: str, **changes: Any) -> None:
        with self.lock:
            a = self.assignments[aid]
            a.payload.update(changes)
            a.state = "queued"
            self.queue.append(aid)

    def final(self, aid: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for the final report of an assignment's current attempt (one with a reason); return it."""
        deadline = time.time() + timeout
        with self.arrived:
            while True:
                a = self.assignments[aid]
                done = [r for r in a.reports if r.get("attempt") == a.attempt and "reason" in r]
                if done:
                    return done[-1]
                left = deadline - time.time()
                assert left > 0, f"no final report for {aid}: {a.reports}"
                self.arrived.wait(left)

    def telemetry(self, aid: str) -> list[dict[str, Any]]:
        return [r["telemetry"] for r in self.assignments[aid].reports if r.get("telemetry")]

    # -- the HubLink interface ----------------------------------------------------------

    def _check(self) -> None:
        if self.down:
            raise Unreachable("fake hub is down")

    def config(self) -> dict[str, Any]:
        self._check()
        return {"version": 1, "config": copy.deepcopy(self.cfg)}

    def register(self, capabilities: list[str], repos: dict[str, str], slots: int, version: str,
                 recovered: list[dict[str, Any]], problems: list[str]) -> dict[str, Any]:
        self._check()
        with self.lock:
            self.incarnation += 1
            self.registrations.append({"capabilities": capabilities, "repos": repos, "slots": slots,
                                       "recovered": recovered, "problems": problems})
            return {"machine": self.machine, "host_incarnation": self.incarnation, "heartbeat_seconds": 0.3,
                    "config": self.cfg}

    def heartbeat(self, incarnation: int, free_slots: int, running: list[str], stopping: bool = False,
                  role: str = "heartbeat") -> dict[str, Any]:
        self._check()
        with self.lock:
            self.heartbeats.append({"incarnation": incarnation, "free_slots": free_slots, "running": list(running),
                                    **({"stopping": True} if stopping else {})})
            if incarnation != self.incarnation:
                raise Stale(409, "stale_incarnation", "not the current incarnation")
            cancel = sorted(self.cancel & set(running))
            paused = sorted(self.paused_assignments & set(running)) if not self.paused else list(running)
            return {"ok": True, "paused": self.paused, "paused_assignments": paused, "cancel": cancel,
                    "heartbeat_seconds": 0.3}

    def next_run(self, incarnation: int, wait: float) -> dict[str, Any] | None:
        """A run a test put in :attr:`stage_runs`, else none after a short wait (the pipeline's rules are tested
        against the real hub)."""
        self._check()
        with self.lock:
            if self.stage_runs:
                return self.stage_runs.pop(0)
        time.sleep(min(wait, 0.3))
        return None

    def next(self, incarnation: int, wait: float) -> dict[str, Any] | None:
        self._check()
        deadline = time.time() + min(wait, 0.3)
        while True:
            with self.lock:
                if self.queue and not self.paused:
                    aid = self.queue.pop(0)
                    a = self.assignments[aid]
                    a.attempt += 1
                    a.state = "dispatched"
                    a.machine = self.machine
                    self.running_log.append((time.time(), aid, "start"))
                    return {"id": aid, "attempt": a.attempt, "worker_session": f"{self.machine}/worker-{aid}",
                            **a.payload}
            if time.time() >= deadline:
                return None
            time.sleep(0.02)

    def report_run(self, run_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Record a stage run's report (a host runs one only when a test calls ``runs.execute`` itself)."""
        self._check()
        with self.lock:
            if run_id in self.stale_runs:  # as the hub's StaleRun (core.stageruns) answers
                raise Stale(409, "stale_attempt", f"stage run {run_id} attempt {body.get('attempt')} is over")
            self.run_reports.append((run_id, dict(body)))
        return {"id": run_id, **body}

    def merge_next(self, incarnation: int, wait: float) -> dict[str, Any] | None:
        """A run a test put in :attr:`merge_runs`, else none after a short wait, as a long-poll (the merge queue's
        rules are tested against the real hub)."""
        self._check()
        with self.lock:
            if self.merge_runs:
                return self.merge_runs.pop(0)
        time.sleep(min(wait, 0.3))
        return None

    def github_next(self, incarnation: int) -> list[dict[str, Any]]:
        return []

    def github_report(self, incarnation: int, body: dict[str, Any]) -> dict[str, Any]:
        raise Stale(409, "not_found", "the fake hub queues no posts")

    def merge_report(self, incarnation: int, body: dict[str, Any]) -> dict[str, Any]:
        """Record the report of a run from :attr:`merge_runs`."""
        self._check()
        with self.lock:
            self.merge_reports.append(dict(body))
        return {"outcome": body["outcome"], "entries": []}

    def report(self, assignment: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        with self.arrived:
            a = self.assignments.get(assignment)
            if a is None:
                raise Refused(404, "not_found", f"no assignment {assignment}")
            if body.get("attempt") != a.attempt:
                raise Stale(409, "stale_attempt", f"attempt {body.get('attempt')} is not {a.attempt}")
            if self.refuse_telemetry and "telemetry" in body:
                raise Refused(422, "invalid", "telemetry: not taken")
            a.reports.append(copy.deepcopy(body))
            state = body.get("state")
            if state == "running" and a.state == "dispatched":
                a.state = "running"
            elif a.state == "cancelled":
                pass  # as the hub: a report after a stop keeps the cancel
            elif state in ("done", "failed", "stuck", "needs_input"):
                if a.state in ("dispatched", "running"):
                    self.running_log.append((time.time(), assignment, "end"))
                a.state = state
            elif "reason" in body and state is None and a.state in ("dispatched", "running"):
                a.state = "cancelled"
                self.running_log.append((time.time(), assignment, "end"))
            self.arrived.notify_all()
            return {"id": a.id, "state": a.state, "attempt": a.attempt}

    def log(self, assignment: str, attempt: int, offset: int, text: str) -> int:
        self._check()
        with self.lock:
            a = self.assignments[assignment]
            if attempt != a.attempt:
                raise Stale(409, "stale_attempt", "not the current attempt")
            size = len(a.log)
            if offset > size:
                raise LogGap(409, "log_gap", f"holds {size}", size)
            a.log += text[size - offset:]
            return len(a.log)

    def assignment(self, assignment: str) -> dict[str, Any]:
        self._check()
        with self.lock:
            a = self.assignments.get(assignment)
            if a is None:
                raise Refused(404, "not_found", f"no assignment {assignment}")
            return {"id": a.id, "state": a.state, "attempt": a.attempt}

    def close(self) -> None:
        pass
