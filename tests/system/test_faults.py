"""Faults under load: the hub killed, a holder frozen, the database stopped, the hub gone while clients write.

* ``kill -9`` of the hub while writers and lease contenders run, again and
  again (3 rounds in CI, 20 in the slow run): nothing acknowledged is lost,
  no two sessions hold overlapping leases after a restart, and the recorded
  lease history passes the checks of ``tests/system/history.py`` across all
  rounds (contract §2.3, §2.6, §2.9).
* A holder process frozen with SIGSTOP past its lease's TTL: another
  session takes the lease with a higher fence; thawed with SIGCONT, the old
  holder's fenced writes are refused as ``stale_fence`` and change nothing
  (contract §2.3).
* PostgreSQL stopped while writer threads run: every answer is a success or
  503 with ``Retry-After``, never another 5xx; the same hub process recovers
  when PostgreSQL is back, and every write answered 2xx is there (seed 001).
* The hub killed while several ``coord`` CLI processes write: what they
  reported as sent or queued is applied exactly once after ``coord sync``
  (contract §2.5, seed 001 softfail).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.api import test_pg_outage as outage
from tests.conftest import LiveHub, free_port
from tests.coordcli import Coord, Result, git_init, isolated_env
from tests.system import test_crash as crash
from tests.system.history import (
    RESOURCES,
    Attempt,
    Kind,
    Recorder,
    Retry,
    Violation,
    check_answers,
    check_conflicts,
    check_fences,
    check_idempotency,
    check_live_leases,
    check_mutual_exclusion,
    leases_of,
    operations,
)
from tests.system.test_history import live_leases, whole_inbox

# Fixtures reused by name: the private PostgreSQL cluster and a hub on it, and the backend's serve flags.
cluster, pg, pg_hub, hub_args = outage.cluster, outage.pg, outage.pg_hub, crash.hub_args
eventually, describe = outage.eventually, outage.describe


def _report(violations: list[Violation]) -> str:
    return "\n".join(f"{v.check}: {v.detail}" for v in violations[:30])


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- kill -9 under load ------------------------------------------------------------------------

CONTENDERS = 4
CONTENDED = "crash-contended"


class Contender(threading.Thread):
    """Claims a random resource of :data:`RESOURCES` (no TTL) and releases it, over and over, until the hub dies."""

    def __init__(self, rec: Recorder, seed: int) -> None:
        super().__init__(name=f"contender-{rec.worker}", daemon=True)
        self.rec, self.rng = rec, random.Random(seed)

    def run(self) -> None:
        lease: str | None = None
        try:
            while True:
                if lease is None:
                    resource = self.rng.choice(RESOURCES)
                    [a] = self.rec.request(Kind.CLAIM, "POST", "/api/coord/locks", retry=Retry.KEY,
                                           args={"resource": resource, "ttl_hours": 0},
                                           body={"project_key": CONTENDED, "resource": resource, "ttl_hours": 0})
                    lease = a.body["id"] if a.ok else None
                else:
                    [a] = self.rec.request(Kind.RELEASE, "DELETE", f"/api/coord/locks/{lease}", retry=Retry.KEY,
                                           args={"lease_id": lease})
                    lease = None
                if a.status is None:
                    return  # the hub is gone
        finally:
            self.rec.close()


@dataclass
class CrashRun:
    """The data dir, tokens and the lease history shared by every kill/restart round."""

    data_dir: Path
    args: tuple[str, ...]
    writer_tokens: dict[str, str]
    contender_tokens: dict[str, str]
    history: list[Attempt] = field(default_factory=list)

    def contenders(self, hub: LiveHub, round_no: int) -> list[Contender]:
        return [Contender(Recorder(hub.url, token, session, worker=f"{session}@{round_no}", timeout=30.0),
                          seed=round_no * 100 + i)
                for i, (session, token) in enumerate(self.contender_tokens.items())]


def assert_leases_survived(hub: LiveHub, history: list[Attempt]) -> list[dict[str, Any]]:
    """After a restart: one holder per overlapping set; acknowledged leases live unless a release was sent.

    A lease answered 201 with no release attempted must be live with its
    fence and holder; one whose release was answered 200 must not be.
    Returns the live leases.
    """
    live = {x["id"]: x for x in live_leases(hub, CONTENDED)}
    assert check_live_leases(live.values()) == [], _report(check_live_leases(live.values()))
    for lease in leases_of(history).values():
        if not lease.ends:
            got = live.get(lease.id)
            assert got is not None and (got["fence"], got["session_id"]) == (lease.fence, lease.session), \
                f"acknowledged lease {lease.id} (fence {lease.fence}) lost: {got}"
        elif any(op.ok for op in lease.ends):
            assert lease.id not in live, f"lease {lease.id} was released (200) yet is live after the restart"
    return list(live.values())


def clear_contended(hub: LiveHub, live: list[dict[str, Any]], round_no: int, history: list[Attempt]) -> None:
    """Force-release every live contended lease (recorded), so the next round starts from a free board."""
    rec = Recorder(hub.url, hub.admin_token, "admin", worker=f"admin@{round_no}")
    try:
        for x in live:
            [a] = rec.request(Kind.FORCE, "DELETE", f"/api/coord/locks/{x['id']}", params={"force": "true"},
                              retry=Retry.KEY, args={"lease_id": x["id"]})
            assert a.status == 200, a
    finally:
        rec.close()
        history += rec.history


def crash_rounds(run: CrashRun, rounds: int) -> None:
    """``rounds`` × (burst with contention → kill -9 → restart → check everything acknowledged so far)."""
    hub = crash.start_hub(run.data_dir, run.args)
    try:
        recipient = hub.token(crash.RECIPIENT)
        run.writer_tokens = {f"CRASH-W{i}/claude-main": hub.token(f"CRASH-W{i}/claude-main")
                             for i in range(crash.WRITERS)}
        run.contender_tokens = {f"CRASH-C{i}/claude-main": hub.token(f"CRASH-C{i}/claude-main")
                                for i in range(CONTENDERS)}
        acked = crash.Acked()
        for round_no in range(1, rounds + 1):
            contenders = run.contenders(hub, round_no)
            for c in contenders:
                c.start()
            crash.burst_then_kill(hub, run.writer_tokens, round_no, acked)
            for c in contenders:
                c.join(timeout=60)
                assert not c.is_alive(), "a contender did not notice the kill"
                run.history += c.rec.history
            hub = crash.start_hub(run.data_dir, run.args)
            crash.assert_all_acked_present(hub, recipient, acked)
            crash.assert_next_fence_above(hub, next(iter(run.writer_tokens.values())), acked)
            live = assert_leases_survived(hub, run.history)
            violations = check_history_across_crashes(run.history)
            assert violations == [], f"round {round_no}:\n{_report(violations)}"
            clear_contended(hub, live, round_no, run.history)
    finally:
        hub.stop()


def check_history_across_crashes(history: list[Attempt]) -> list[Violation]:
    """The lease checks that hold across crashes (answers may be lost; a lost answer is an unknown outcome)."""
    return (check_answers(history, unanswered_ok=True) + check_mutual_exclusion(history) + check_fences(history)
            + check_conflicts(history) + check_idempotency(history))


def _assert_contention_happened(history: list[Attempt], rounds: int) -> None:
    grants = leases_of(history)
    assert len(grants) >= 5 * rounds, f"only {len(grants)} grants in {rounds} rounds"
    assert any(a.code == "lease_conflict" for a in history), "the contenders never conflicted"
    assert any(op.unknown for op in operations(history)), "no request was cut off by a kill"


def test_kill_9_under_load_loses_nothing_and_never_double_grants(tmp_path: Path, hub_args: tuple[str, ...]) -> None:
    """Two rounds of kill -9 under load, on SQLite and on PostgreSQL (the second on what the first left; twenty
    rounds under ``-m slow``)."""
    run = CrashRun(tmp_path / "hub", hub_args, {}, {})
    crash_rounds(run, rounds=2)
    _assert_contention_happened(run.history, 2)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_kill_9_under_load_twenty_times(tmp_path: Path, hub_args: tuple[str, ...]) -> None:
    """Twenty rounds of kill -9 under load on the same data."""
    run = CrashRun(tmp_path / "hub", hub_args, {}, {})
    crash_rounds(run, rounds=20)
    _assert_contention_happened(run.history, 20)
    print(f"kill -9 rounds: 20, lease attempts {len(run.history)}, grants {len(leases_of(run.history))}, "
          f"cut off by a kill {sum(1 for op in operations(run.history) if op.unknown)}")


# ---- a frozen holder -------------------------------------------------------------------------

HOLDER_TTL_HOURS = 0.001  # 3.6 s

HOLDER = r"""
import json, sys, httpx2
url, token, project, component, item, ttl = sys.argv[1:7]
c = httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0)
lease = c.post("/api/coord/locks", json={"project_key": project, "resource": f"component:{component}",
                                         "description": "deploying v1", "ttl_hours": float(ttl)}).json()
item_lease = c.post("/api/coord/locks", json={"project_key": project, "resource": f"work-item:{item}",
                                              "ttl_hours": float(ttl)}).json()
fence = lease["fence"]
first = c.put("/api/coord/components", json={"project_key": project, "component": component, "state": "deploying",
                                             "version": "1", "fence": fence})
print(json.dumps({"lease": lease, "first_write": first.status_code}), flush=True)
sys.stdin.readline()  # the deploy's work; the test freezes the process here (SIGSTOP) and thaws it later
answers = {
    "component": c.put("/api/coord/components", json={"project_key": project, "component": component,
                                                      "state": "deployed", "version": "1", "fence": fence}),
    "work_item": c.patch(f"/api/coord/work-items/{item}", json={"status": "completed",
                                                                "fence": item_lease["fence"]}),
    "renew": c.post(f"/api/coord/locks/{lease['id']}/renew", json={}),
}
check = c.get("/api/coord/locks/check", params={"fence": fence})
print(json.dumps({k: [r.status_code, r.json()] for k, r in {**answers, "check": check}.items()}), flush=True)
"""


def process_state(pid: int) -> str:
    """The one-letter state of a process from /proc (``T`` = stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def _freeze_and_take_over(holder: subprocess.Popen[str], http: httpx2.Client, b_token: str, project: str,
                          component: str, item_id: str) -> tuple[dict[str, Any], int, int, Any, dict[str, Any]]:
    """Freeze the holder once it holds the lease; B takes it over and writes; thaw the holder.

    Returns A's lease, A's and B's fences, the state after B's writes, and
    the answers the thawed holder got.
    """
    assert holder.stdout is not None and holder.stdin is not None
    started = json.loads(holder.stdout.readline())
    lease, old = started["lease"], started["lease"]["fence"]
    assert started["first_write"] == 200, "the holder's write while live must pass"

    holder.send_signal(signal.SIGSTOP)
    eventually(lambda: process_state(holder.pid), lambda s: s == "T", "the holder is stopped")
    holder.stdin.write("go\n")  # read only once it runs again
    holder.stdin.flush()

    # B waits, as an agent would, until the hub lets the frozen holder's leases go (the hub's clock decides);
    # a fence guards a component or a work item only through a lease naming it.
    def take(resource: str) -> httpx2.Response:
        return eventually(lambda: http.post("/api/coord/locks", headers=_auth(b_token), json={
            "project_key": project, "resource": resource, "description": "deploying v2", "ttl_hours": 0.1}),
            lambda r: r.status_code != 409, "B gets the lease once A's expired", timeout=60)

    claim, item_claim = take(f"component:{component}"), take(f"work-item:{item_id}")
    assert (claim.status_code, item_claim.status_code) == (201, 201), (describe(claim), describe(item_claim))
    new = claim.json()["fence"]
    assert new > old
    assert process_state(holder.pid) == "T", "the holder must still be frozen"
    b_comp = http.put("/api/coord/components", headers=_auth(b_token), json={
        "project_key": project, "component": component, "state": "deploying", "version": "2", "fence": new})
    b_item = http.patch(f"/api/coord/work-items/{item_id}", headers=_auth(b_token),
                        json={"status": "in_progress", "fence": item_claim.json()["fence"]})
    assert (b_comp.status_code, b_item.status_code) == (200, 200), (b_comp.text, b_item.text)
    before = (http.get("/api/coord/components", headers=_auth(b_token), params={"project_key": project}).json(),
              http.get(f"/api/coord/work-items/{item_id}", headers=_auth(b_token)).json())

    holder.send_signal(signal.SIGCONT)
    answers: dict[str, Any] = json.loads(holder.stdout.readline())
    return lease, old, new, before, answers


def test_frozen_holder_past_its_ttl_is_fenced_out(live_hub: LiveHub) -> None:
    """A holder SIGSTOPped past its TTL loses the lease to B; thawed, its writes with the old fence are refused."""
    project, component = "frozen", "staging-api"
    a_token, b_token = live_hub.token("FROZEN-A/claude-main"), live_hub.token("FROZEN-B/claude-main")
    with httpx2.Client(base_url=live_hub.url, timeout=60.0) as http:
        wf = http.post("/api/coord/workflows", headers=_auth(a_token), json={"project_key": project, "name": "ship"})
        item = http.post("/api/coord/work-items", headers=_auth(a_token),
                         json={"workflow_id": wf.json()["id"], "title": "deploy staging"})
        assert (wf.status_code, item.status_code) == (201, 201), (wf.text, item.text)
        with subprocess.Popen(
                [sys.executable, "-c", HOLDER, live_hub.url, a_token, project, component, item.json()["id"],
                 str(HOLDER_TTL_HOURS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
            try:
                lease, old, new, before, answers = _freeze_and_take_over(holder, http, b_token, project, component,
                                                                         item.json()["id"])
                assert holder.wait(timeout=60) == 0
            finally:
                if holder.poll() is None:
                    holder.send_signal(signal.SIGCONT)
                    holder.kill()

        for what in ("component", "work_item", "renew"):
            status, body = answers[what]
            assert (status, body["error"]["code"]) == (409, "stale_fence"), (what, answers[what])
        status, check = answers["check"]
        assert status == 200 and check["current"] is False and check["lease"]["id"] == lease["id"], check
        assert check["lease"]["state"] == "expired", check
        after = (http.get("/api/coord/components", headers=_auth(b_token), params={"project_key": project}).json(),
                 http.get(f"/api/coord/work-items/{item.json()['id']}", headers=_auth(b_token)).json())
        assert after == before, "a refused stale write changed something"
        [comp] = after[0]
        assert (comp["state"], comp["version"], comp["updated_by"]) == ("deploying", "2", "FROZEN-B/claude-main")
        assert after[1]["status"] == "in_progress"
        current = http.get("/api/coord/locks/check", headers=_auth(b_token), params={"fence": new}).json()
        assert current["current"] is True, current


# ---- PostgreSQL stopped mid-load ------------------------------------------------------------

@dataclass
class Answer:
    """One request of a writer thread during the outage test."""

    kind: str
    tag: str
    status: int | None
    retry_after: str | None
    code: str | None
    body: Any


class PgWriter(threading.Thread):
    """Sends a message, adds a todo, claims and releases a lease, reads the inbox; records every answer."""

    def __init__(self, url: str, token: str, name: str, project: str) -> None:
        super().__init__(name=f"pg-writer-{name}", daemon=True)
        self.url, self.token, self.tag, self.project = url, token, name, project
        self.answers: list[Answer] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def since(self, n: int, ok: bool) -> int:
        """How many answers after the first ``n`` were successes (``ok``) or 503s (not ``ok``)."""
        with self.lock:
            return sum(1 for a in self.answers[n:] if (a.status is not None and a.status < 300) == ok
                       and (ok or a.status == 503))

    def run(self) -> None:
        with httpx2.Client(base_url=self.url, headers=_auth(self.token), timeout=60.0) as c:
            n = 0
            while not self.stop.is_set():
                n += 1
                tag = f"{self.tag} #{n}"
                self.call(c, "send", tag, "POST", "/api/coord/messages",
                          json={"to_session": outage.B, "subject": tag, "body": "mid-load"})
                self.call(c, "todo", tag, "POST", "/api/coord/todos", json={"text": tag, "project_key": self.project})
                claim = self.call(c, "claim", tag, "POST", "/api/coord/locks", json={
                    "project_key": self.project, "resource": f"{self.tag}/{n}.py", "ttl_hours": 0.01})
                if claim.status == 201:
                    self.call(c, "release", claim.body["id"], "DELETE", f"/api/coord/locks/{claim.body['id']}")
                self.call(c, "read", tag, "GET", "/api/coord/messages", params={"unread_only": "true", "limit": 5})

    def call(self, c: httpx2.Client, kind: str, tag: str, method: str, path: str, **kw: Any) -> Answer:
        try:
            r = c.request(method, path, **kw)
        except httpx2.TransportError as exc:
            a = Answer(kind, tag, None, None, None, repr(exc))
        else:
            try:
                body = r.json()
            except ValueError:
                body = {"raw": r.text[:500]}
            error = body.get("error") if isinstance(body, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            a = Answer(kind, tag, r.status_code, r.headers.get("Retry-After"), code, body)
        with self.lock:
            self.answers.append(a)
        return a


def _all_writers(writers: list[PgWriter], marks: list[int], ok: bool, at_least: int) -> Callable[[], bool]:
    return lambda: all(w.since(m, ok) >= at_least for w, m in zip(writers, marks, strict=True))


def _wait(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    eventually(cond, bool, what, timeout=timeout)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_stopped_mid_load_answers_503_then_recovers(pg: outage.PrivateCluster, pg_hub: outage.PgHub,
                                                             mode: str) -> None:
    h, project = pg_hub, f"midload-{mode}"
    assert h.hub.proc is not None
    pid = h.hub.proc.pid
    writers = [PgWriter(h.hub.url, h.tokens["a"], f"w{i}", project) for i in range(4)]
    for w in writers:
        w.start()
    try:
        _wait(_all_writers(writers, [0] * 4, ok=True, at_least=10), "writes succeed before the outage")
        pg.stop(mode)
        marks = [len(w.answers) for w in writers]
        _wait(_all_writers(writers, marks, ok=False, at_least=5), "503s while PostgreSQL is down")
        pg.start()
        marks = [len(w.answers) for w in writers]
        _wait(_all_writers(writers, marks, ok=True, at_least=10), "writes succeed again", timeout=90)
    finally:
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(timeout=60)
    assert h.hub.proc is not None and h.hub.proc.poll() is None and h.hub.proc.pid == pid, "the hub was restarted"

    answers = [a for w in writers for a in w.answers]
    wrong = [a for a in answers if not ((a.status is not None and a.status < 300) or
                                        (a.status == 503 and a.retry_after == "1"
                                         and a.code == "database_unavailable"))]
    assert wrong == [], f"{len(wrong)} answers neither 2xx nor 503 + Retry-After, e.g. {wrong[:5]}"
    assert sum(1 for a in answers if a.status == 503) >= 20

    ok = [a for a in answers if a.status is not None and a.status < 300]
    inbox = {m["subject"] for m in whole_inbox(h.hub, h.tokens["b"]).values()}
    lost = [a.tag for a in ok if a.kind == "send" and a.tag not in inbox]
    assert lost == [], f"messages answered 201 are missing: {lost}"
    todos = h.http.get("/api/coord/todos", headers=h.headers("a"),
                       params={"project_key": project, "status": "all"}).json()
    texts = Counter(t["text"] for t in todos)
    assert [a.tag for a in ok if a.kind == "todo" and texts[a.tag] != 1] == [], "todos answered 201 missing"
    released = {a.tag for a in ok if a.kind == "release"}
    for a in ok:
        if a.kind == "claim":
            lease = h.http.get(f"/api/coord/locks/{a.body['id']}", headers=h.headers("a")).json()
            assert lease["fence"] == a.body["fence"], lease
            assert lease["state"] == ("released" if a.body["id"] in released else "active"), lease
    assert "Traceback" not in h.hub.log.read_text(errors="replace")


# ---- the hub gone while CLI processes write --------------------------------------------------

QUEUE_DIRS = 3
DRIVERS_PER_DIR = 2  # two processes in one working directory share its queue file


@dataclass
class Write:
    """One ``coord`` write and what the CLI said about it."""

    kind: str
    text: str
    result: Result

    @property
    def outcome(self) -> str:
        out = self.result.out
        if self.result.code != 0:
            return "failed"
        return "queued" if "queued" in out else "sent" if out.startswith(("added todo", "sent ")) else "unclear"


class CliDriver(threading.Thread):
    """Runs ``coord todo add`` and ``coord msg send`` one after another until stopped."""

    def __init__(self, coord: Coord, name: str, project: str, to: str) -> None:
        super().__init__(name=f"cli-{name}", daemon=True)
        self.coord, self.tag, self.project, self.to = coord, name, project, to
        self.writes: list[Write] = []
        self.stop = threading.Event()

    def count(self, outcome: str, since: int = 0) -> int:
        return sum(1 for w in self.writes[since:] if w.outcome == outcome)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            text = f"{self.tag} #{n} {uuid.uuid4().hex[:6]}"
            if n % 2:
                self.writes.append(Write("todo", text, self.coord("todo", "add", text, "--project", self.project)))
            else:
                self.writes.append(Write("msg", text, self.coord("msg", "send", self.to, text, "x")))


@dataclass
class QueueScene:
    """A hub on a fixed port that is killed and restarted, and the CLI drivers writing to it."""

    tmp_path: Path
    port: int = field(default_factory=free_port)
    hub: LiveHub | None = None

    def start(self) -> LiveHub:
        self.hub = LiveHub(self.tmp_path / "hub", port=self.port).start()
        return self.hub

    def kill(self) -> None:
        assert self.hub is not None
        assert self.hub.stop(signal.SIGKILL) == -signal.SIGKILL
        self.hub = None


def _until(cond: Callable[[], bool], what: str, drivers: list[CliDriver]) -> None:
    def check() -> bool:
        assert all(d.is_alive() for d in drivers), "a CLI driver died"
        return cond()

    eventually(check, bool, what, timeout=90)


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[QueueScene]:
    s = QueueScene(tmp_path)
    try:
        yield s
    finally:
        if s.hub is not None:
            s.hub.stop()


def test_writes_while_the_hub_is_killed_are_applied_exactly_once_after_sync(scene: QueueScene,
                                                                             tmp_path: Path) -> None:
    """Six CLI processes in three working dirs write while the hub is killed and restarted; then `coord sync`.

    The drivers of the last dir stop while the hub is down, so only `coord
    sync` drains their queue; the others keep writing after the restart, so
    their next command drains it first.
    """
    hub = scene.start()
    project, to = "queue-under-kill", "QUEUE-INBOX/claude-main"
    inbox_token = hub.token(to)
    env = isolated_env(tmp_path)
    coords = []
    for i in range(QUEUE_DIRS):
        work = git_init(tmp_path / f"work{i}")  # each dir its own project, so its own queue at its root
        coords.append(Coord(work, env, hub.url, hub.token(f"QUEUE-{i}/claude-main")))
    drivers = [CliDriver(coords[i], f"q{i}.{j}", project, to)
               for i in range(QUEUE_DIRS) for j in range(DRIVERS_PER_DIR)]
    resumed, idle = drivers[:-DRIVERS_PER_DIR], drivers[-DRIVERS_PER_DIR:]
    for d in drivers:
        d.start()
    try:
        _until(lambda: all(d.count("sent") >= 1 for d in drivers), "every driver sent before the kill", drivers)
        scene.kill()
        marks = [len(d.writes) for d in drivers]
        _until(lambda: all(d.count("queued", m) >= 2 for d, m in zip(drivers, marks, strict=True)),
               "every driver queued writes while the hub was down", drivers)
        _stop(idle)
        hub = scene.start()
        marks = [len(d.writes) for d in resumed]
        _until(lambda: all(d.count("sent", m) >= 1 for d, m in zip(resumed, marks, strict=True)),
               "the other drivers send again after the restart", resumed)
    finally:
        _stop(drivers)

    left = [len(read_queue(c.cwd)) for c in coords]
    assert left[-1] >= 2 * DRIVERS_PER_DIR, "the idle dir's queue must still be full"
    for coord, n in zip(coords, left, strict=True):
        synced = coord("sync")
        assert synced.code == 0 and synced.out.startswith(f"sent {n} queued write(s)"), synced
        assert read_queue(coord.cwd) == [] and not (coord.cwd / ".claude" / "coord-queue.rejected.jsonl").exists()

    writes = [w for d in drivers for w in d.writes]
    assert {w.outcome for w in writes} <= {"sent", "queued"}, [str(w.result) for w in writes
                                                               if w.outcome not in ("sent", "queued")]
    todos = httpx2.get(f"{hub.url}/api/coord/todos", headers=_auth(inbox_token),
                       params={"project_key": project, "status": "all"}).json()
    inbox = whole_inbox(hub, inbox_token)
    applied = Counter([t["text"] for t in todos] + [m["subject"] for m in inbox.values()])
    wrong = {w.text: applied[w.text] for w in writes if applied[w.text] != 1}
    assert wrong == {}, f"writes not applied exactly once (text → times): {wrong}"
    assert sum(applied.values()) == len(writes), "something was applied that no CLI wrote"


def _stop(drivers: list[CliDriver]) -> None:
    for d in drivers:
        d.stop.set()
    for d in drivers:
        d.join(timeout=120)
        assert not d.is_alive(), f"{d.name} did not stop"


def read_queue(work: Path) -> list[str]:
    """The lines of the softfail queue of the working dir ``work`` (none if there is no file)."""
    queue = work / ".claude" / "coord-queue.jsonl"
    return [line for line in queue.read_text(encoding="utf-8").splitlines() if line.strip()] if queue.exists() else []
