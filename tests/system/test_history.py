"""Randomized concurrent histories from several OS processes, checked by ``tests/system/history.py``.

Worker processes (spawned, one session and one token each) run random
operations against one real ``coord serve`` for a while: claims on a small
set of overlapping resources with TTLs of one or two seconds (so leases
expire while the run goes on), renews, releases, abandoned leases left to
expire, message sends (direct and broadcast), inbox reads and acks, acks by a
non-recipient, and idempotent retries of every kind of write (sent again
after the answer, or raced from two threads at once with one key). An admin
process force-releases live leases. Every request is recorded with its
inputs, its answer and clock readings around it; afterwards the hub's event
log and every session's whole inbox are read back, and the history checker
looks for a broken guarantee: overlapping holders, a fence out of order,
a key applied twice, an acknowledged message missing, an ack in the wrong
place. The checker itself is tested first, on hand-made bad histories.

The CI subset runs a few seconds on SQLite and on PostgreSQL; the slow run
(``-m slow``) makes at least 10,000 operations and prints a one-line summary.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from tests.system.history import (
    CLOCK,
    RESOURCES,
    Attempt,
    Kind,
    Recorder,
    Retry,
    Violation,
    check_all,
    check_conflicts,
    check_delivery,
    check_fences,
    check_idempotency,
    check_lease_lifetimes,
    check_live_leases,
    check_mutual_exclusion,
    check_unread,
    overlaps,
    summary,
)

if TYPE_CHECKING:  # imported lazily: every spawned worker imports this module, and conftest is heavy
    from tests.conftest import LiveHub

TTLS = (0.0002, 0.0004)  # hours: 0.72 s and 1.44 s, so leases expire during the run


@dataclass(frozen=True)
class Plan:
    """How much load: ``workers`` sessions for ``seconds`` each, or until each made ``ops`` operations."""

    workers: int
    seconds: float | None = None
    ops: int | None = None
    seed: int = 0

    def more(self, started: float, done: int) -> bool:
        """Whether a worker that started at ``started`` and made ``done`` operations goes on."""
        if self.ops is not None:
            return done < self.ops
        assert self.seconds is not None
        return time.monotonic() - started < self.seconds


# ---- the worker processes ------------------------------------------------------------------------

def _lease_view(body: Any) -> Any:
    return [{"id": x["id"], "session_id": x["session_id"], "resource": x["resource"]} for x in body]


def _inbox_view(body: Any) -> Any:
    return [{"id": m["id"], "from_session": m["from_session"], "broadcast": m["broadcast"]} for m in body]


@dataclass
class Held:
    """A lease the worker believes it holds: its TTL, and when the worker will act near its expiry."""

    resource: str
    ttl_hours: float
    act_at: float  # CLOCK time: renew it or let it go, somewhere around its expiry
    keep: bool  # long work: never released at random, only renewed or let go around its expiry


class Session:
    """One worker session's random walk over the API; everything it sends is recorded by ``rec``."""

    def __init__(self, rec: Recorder, rng: random.Random, peers: list[str], project: str) -> None:
        self.rec, self.rng, self.peers, self.project = rec, rng, peers, project
        self.held: dict[str, Held] = {}
        self.inbox: list[dict[str, Any]] = []
        self.sent_direct: list[str] = []
        self.sent = 0

    def retry(self) -> Retry:
        """How to send the next write: mostly with a key, a fifth of those retried, half of them raced."""
        x = self.rng.random()
        return Retry.NONE if x < 0.3 else Retry.AGAIN if x < 0.42 else Retry.RACE if x < 0.52 else Retry.KEY

    def hold(self, lease_id: str, resource: str, ttl: float, t0: float) -> None:
        """Remember a grant or renew invoked at ``t0``; act on it from 40 ms before to 20 ms after its expiry."""
        keep = self.held[lease_id].keep if lease_id in self.held else self.rng.random() < 0.25
        self.held[lease_id] = Held(resource, ttl, t0 + ttl * 3600.0 + self.rng.uniform(-0.04, 0.02), keep)

    def step(self) -> None:
        """One random operation; a lease near its expiry is renewed or let go first."""
        due = [i for i, h in self.held.items() if h.act_at <= CLOCK()]
        x = self.rng.random()
        if due:
            if x < 0.5:
                self.renew(due[0])  # races the expiry: answered just before it, or refused just after
            else:
                self.held.pop(due[0])  # left to expire: someone else may take it right then
        elif x < 0.03 and (short := sorted(i for i, h in self.held.items() if not h.keep)):
            self.renew(self.rng.choice(short))
        elif x < 0.16 and (short := sorted(i for i, h in self.held.items() if not h.keep)):
            self.release(self.rng.choice(short))
        elif x < 0.45:
            self.claim()
        elif x < 0.65:
            self.send()
        elif x < 0.88:
            self.read_and_ack()
        elif x < 0.90 and self.sent_direct:
            self.ack(self.rng.choice(self.sent_direct), expect_refusal=True)
        else:
            time.sleep(self.rng.uniform(0.0, 0.05))  # hold what is held a little longer

    def claim(self) -> None:
        # Mostly a resource clear of the worker's own leases: a session's own leases never conflict, so a
        # worker that keeps claiming inside what it holds would keep the others out for the whole run.
        mine = [h.resource for h in self.held.values()]
        clear = [r for r in RESOURCES if not any(overlaps(r, m) for m in mine)]
        resource = self.rng.choice(clear if clear and self.rng.random() < 0.9 else RESOURCES)
        ttl = self.rng.choice(TTLS)
        attempts = self.rec.request(Kind.CLAIM, "POST", "/api/coord/locks", retry=self.retry(),
                                    args={"resource": resource, "ttl_hours": ttl},
                                    body={"project_key": self.project, "resource": resource, "ttl_hours": ttl,
                                          "description": self.rec.worker})
        for a in attempts:
            if a.ok:
                self.hold(a.body["id"], resource, ttl, min(x.t0 for x in attempts))

    def renew(self, lease_id: str) -> None:
        held = self.held[lease_id]
        ttl = held.ttl_hours
        attempts = self.rec.request(Kind.RENEW, "POST", f"/api/coord/locks/{lease_id}/renew", retry=self.retry(),
                                    args={"lease_id": lease_id, "ttl_hours": ttl}, body={"ttl_hours": ttl})
        if any(a.ok for a in attempts):
            self.hold(lease_id, held.resource, ttl, min(x.t0 for x in attempts))
        else:
            self.held.pop(lease_id)

    def release(self, lease_id: str) -> None:
        self.rec.request(Kind.RELEASE, "DELETE", f"/api/coord/locks/{lease_id}", retry=self.retry(),
                         args={"lease_id": lease_id})
        self.held.pop(lease_id)

    def send(self) -> None:
        self.sent += 1
        to = self.rng.choice(self.peers) if self.rng.random() < 0.7 else None
        subject = f"{self.rec.worker} #{self.sent}"
        text = f"{uuid.uuid4().hex} " * self.rng.randint(0, 3)
        attempts = self.rec.request(Kind.SEND, "POST", "/api/coord/messages", retry=self.retry(),
                                    args={"to": to, "subject": subject, "body": text},
                                    body={"to_session": to, "subject": subject, "body": text,
                                          "project_key": self.project})
        ok = [a for a in attempts if a.ok]
        if ok and to is not None:
            self.sent_direct.append(ok[0].body["id"])

    def read_and_ack(self) -> None:
        [a] = self.rec.request(Kind.READ, "GET", "/api/coord/messages", params={"unread_only": "true", "limit": 20},
                               args={}, keep=_inbox_view)
        if a.ok:
            self.inbox = a.body
        if self.inbox and self.rng.random() < 0.8:
            m = self.inbox.pop(self.rng.randrange(len(self.inbox)))
            self.ack(m["id"], expect_refusal=False)

    def ack(self, message_id: str, expect_refusal: bool) -> None:
        self.rec.request(Kind.ACK, "POST", f"/api/coord/messages/{message_id}/ack", retry=self.retry(),
                         args={"message_id": message_id, "expect_refusal": expect_refusal})


def session_worker(url: str, token: str, session: str, peers: list[str], project: str, plan: Plan, index: int,
                   out_path: str, start: Any) -> None:
    """Body of one worker process: wait for all, run the plan, write the recorded attempts to ``out_path``."""
    rng = random.Random(plan.seed * 1000 + index)
    rec = Recorder(url, token, session, worker=f"w{index}")
    try:
        rec.clients[0].get("/health").raise_for_status()  # connections open before the start line
        rec.clients[1].get("/health").raise_for_status()
        start.wait(timeout=120)
        me = Session(rec, rng, [p for p in peers if p != session], project)
        started = time.monotonic()
        while plan.more(started, rec.op):
            me.step()
    finally:
        rec.close()
    Path(out_path).write_text(json.dumps([asdict(a) for a in rec.history]))


def admin_worker(url: str, token: str, project: str, seed: int, out_path: str, start: Any, stop: Any) -> None:
    """Body of the admin process: until ``stop`` is set, force-release a random live lease now and then."""
    rng = random.Random(seed)
    rec = Recorder(url, token, "admin", worker="admin")
    try:
        start.wait(timeout=120)
        while not stop.is_set():
            [listing] = rec.request(Kind.READ, "GET", "/api/coord/locks", params={"project_key": project}, args={},
                                    keep=_lease_view)
            if listing.ok and listing.body:
                lease_id = rng.choice(listing.body)["id"]
                retry = rng.choice((Retry.NONE, Retry.KEY, Retry.AGAIN, Retry.RACE))
                rec.request(Kind.FORCE, "DELETE", f"/api/coord/locks/{lease_id}", params={"force": "true"},
                            retry=retry, args={"lease_id": lease_id})
            stop.wait(rng.uniform(0.1, 0.6))
    finally:
        rec.close()
    Path(out_path).write_text(json.dumps([asdict(a) for a in rec.history]))


# ---- the parent ------------------------------------------------------------------------------------

@dataclass
class Run:
    """A finished run: the history and what was read back from the hub afterwards."""

    history: list[Attempt]
    inboxes: dict[str, dict[str, dict[str, Any]]]
    unread: dict[str, list[dict[str, Any]]]
    unread_counts: dict[str, int]
    granted: list[dict[str, Any]]
    expired: int
    live: list[dict[str, Any]]


def run_history(hub: LiveHub, tmp_path: Path, plan: Plan) -> Run:
    """Run ``plan`` against ``hub`` from spawned processes; return the history and the hub's final state."""
    run_id = uuid.uuid4().hex[:8]
    project = f"history-{run_id}"
    sessions = [f"H{run_id}-W{i}/claude-main" for i in range(plan.workers)]
    tokens = {s: hub.token(s) for s in sessions}
    ctx = multiprocessing.get_context("spawn")
    start, stop = ctx.Barrier(plan.workers + 2), ctx.Event()
    outs = [tmp_path / f"worker{i}.json" for i in range(plan.workers)] + [tmp_path / "admin.json"]
    procs = [ctx.Process(target=session_worker, name=f"history-w{i}",
                         args=(hub.url, tokens[s], s, sessions, project, plan, i, str(outs[i]), start))
             for i, s in enumerate(sessions)]
    admin = ctx.Process(target=admin_worker, name="history-admin",
                        args=(hub.url, hub.admin_token, project, plan.seed, str(outs[-1]), start, stop))
    try:
        for p in [*procs, admin]:
            p.start()
        start.wait(timeout=120)
        for p in procs:
            p.join()
        stop.set()
        admin.join(timeout=60)
    finally:
        for p in [*procs, admin]:
            if p.is_alive():
                p.kill()
                p.join()
    assert [p.exitcode for p in [*procs, admin]] == [0] * (plan.workers + 1)
    history = [Attempt(**a) for out in outs for a in json.loads(out.read_text())]
    events = audit(hub, project)
    views = {s: unread_view(hub, tokens[s]) for s in sessions}
    return Run(history, {s: whole_inbox(hub, tokens[s]) for s in sessions},
               {s: v[0] for s, v in views.items()}, {s: v[1] for s, v in views.items()},
               [e for e in events if e["kind"] == "lease.granted"],
               sum(1 for e in events if e["kind"] == "lease.expired"), live_leases(hub, project))


def whole_inbox(hub: LiveHub, token: str) -> dict[str, dict[str, Any]]:
    """Every message of the token's session, read or not, paged by ``before_seq``: id → message."""
    found: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"unread_only": "false", "limit": 500}
    with httpx2.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0) as c:
        while True:
            r = c.get("/api/coord/messages", params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            found.update({m["id"]: m for m in page})
            if len(page) < 500:
                return found
            params["before_seq"] = min(m["seq"] for m in page)


def unread_view(hub: LiveHub, token: str) -> tuple[list[dict[str, Any]], int]:
    """The token's session's unread list (``unread_only=true``, the first 500) and its ``unread-count``."""
    with httpx2.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0) as c:
        listed = c.get("/api/coord/messages", params={"unread_only": "true", "limit": 500})
        counted = c.get("/api/coord/messages/unread-count")
    assert (listed.status_code, counted.status_code) == (200, 200), (listed.text, counted.text)
    return listed.json(), int(counted.json()["unread"])


def _read(c: httpx2.Client, path: str, params: dict[str, Any]) -> httpx2.Response:
    """``GET path``, asked again while a load balancer in front has no hub up (502/503: a cluster test's
    restarts may still be under way when the workload ends), for at most 60 s."""
    deadline = time.monotonic() + 60.0
    while True:
        r = c.get(path, params=params)
        if r.status_code not in (502, 503) or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def audit(hub: LiveHub, project: str) -> list[dict[str, Any]]:
    """The hub's ``lease.*`` events of ``project``, in event-id (commit) order."""
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"kinds": "lease.", "project_key": project, "limit": 1000, "after": 0}
    with httpx2.Client(base_url=hub.url, headers={"Authorization": f"Bearer {hub.admin_token}"}, timeout=60.0) as c:
        while True:
            r = _read(c, "/api/coord/audit", params)
            assert r.status_code == 200, r.text
            page = r.json()
            out += page
            if not page:
                return out
            params["after"] = page[-1]["id"]


def live_leases(hub: LiveHub, project: str) -> list[dict[str, Any]]:
    """The leases of ``project`` the hub lists as live now."""
    with httpx2.Client(base_url=hub.url, headers={"Authorization": f"Bearer {hub.admin_token}"}, timeout=60.0) as c:
        r = _read(c, "/api/coord/locks", {"project_key": project})
    assert r.status_code == 200, r.text
    result: list[dict[str, Any]] = r.json()
    return result


def check_run(run: Run) -> tuple[list[Violation], dict[str, int]]:
    """Every check on the run, and its summary."""
    violations = check_all(run.history, inboxes=run.inboxes, granted_events=run.granted)
    violations += check_unread(run.inboxes, run.unread, run.unread_counts)
    violations += check_live_leases(run.live)
    return violations, summary(run.history, violations, run.expired)


def assert_clean_and_meaningful(run: Run, minimum_ops: int) -> dict[str, int]:
    """No violation, and every kind of event the checks are about happened (else the run proves little)."""
    violations, counts = check_run(run)
    assert violations == [], "\n".join(f"{v.check}: {v.detail}" for v in violations[:30])
    assert counts["ops"] >= minimum_ops, counts
    for what in ("grants", "conflicts", "expiries", "renews", "force_releases", "replays", "messages", "acks"):
        assert counts[what] > 0, f"no {what} in the run: {counts}"
    return counts


def one_line(counts: dict[str, int]) -> str:
    """The summary as one line, e.g. for the docs."""
    return "history run: " + ", ".join(f"{v} {k.replace('_', '-')}" for k, v in counts.items())


# ---- the checker catches what it should (hand-made histories) ----------------------------------

def _at(worker: str, op: int, kind: Kind, t0: float, t1: float, status: int, answer: Any, key: str | None = None,
        replayed: bool = False, **args: Any) -> Attempt:
    return Attempt(worker, f"{worker}/claude-main", op, kind, key, t0, t1, status, replayed, answer, args)


def _grant(worker: str, op: int, t0: float, resource: str, lease_id: str, fence: int, ttl: float = 0.01,
           key: str | None = None, replayed: bool = False) -> Attempt:
    body = {"id": lease_id, "fence": fence, "resource": resource, "session_id": f"{worker}/claude-main",
            "expires_in_seconds": round(ttl * 3600, 3)}
    return _at(worker, op, Kind.CLAIM, t0, t0 + 0.1, 201, body, key, replayed, resource=resource, ttl_hours=ttl)


def _release(worker: str, op: int, t0: float, lease_id: str, state: str = "released") -> Attempt:
    return _at(worker, op, Kind.RELEASE, t0, t0 + 0.1, 200, {"id": lease_id, "state": state}, lease_id=lease_id)


def _sent(worker: str, op: int, t0: float, mid: str, to: str | None, subject: str, key: str | None = None,
          replayed: bool = False) -> Attempt:
    return _at(worker, op, Kind.SEND, t0, t0 + 0.1, 201, {"id": mid}, key, replayed, to=to, subject=subject,
               body="x")


def _msg(mid: str, sender: str, to: str | None, subject: str, acked: bool = False, seq: int = 0) -> dict[str, Any]:
    return {"id": mid, "seq": seq, "from_session": f"{sender}/claude-main", "to_session": to or "ALL_SESSIONS",
            "broadcast": to is None, "subject": subject, "body": "x", "read": acked,
            "acked_at": "2026-01-01T00:00:00Z" if acked else None}


def _checks(violations: list[Violation]) -> set[str]:
    return {v.check for v in violations}


GOOD = [
    _grant("A", 1, 0.0, "src/", "L1", 1), _release("A", 2, 1.0, "L1"),
    _grant("B", 1, 1.5, "src/a.py", "L2", 3, key="k1"), _grant("B", 1, 1.55, "src/a.py", "L2", 3, key="k1",
                                                                 replayed=True),
    _grant("C", 1, 0.5, "docs/", "L3", 2, ttl=0.0003),  # disjoint from src/: may overlap in time
    _grant("A", 3, 3.0, "docs/{a,b}.md", "L4", 4),  # after L3 expired (0.6 + 1.08 s)
    _sent("A", 4, 4.0, "M1", "B/claude-main", "hello"),
    _at("B", 2, Kind.ACK, 5.0, 5.1, 200, {"id": "M1"}, message_id="M1"),
]
GOOD_INBOXES = {"A/claude-main": {}, "B/claude-main": {"M1": _msg("M1", "A", "B/claude-main", "hello", acked=True)}}


def test_checker_passes_a_correct_history() -> None:
    assert check_all(GOOD, inboxes=GOOD_INBOXES) == []


def test_checker_finds_overlapping_holders() -> None:
    # B is granted src/a.py while A certainly still holds src/ (released only at 1.0).
    bad = [*GOOD, _grant("B", 9, 0.5, "src/a.py", "L9", 9)]
    found = check_mutual_exclusion(bad)
    assert len(found) == 1 and "L1" in found[0].detail and "L9" in found[0].detail, found
    # a grant while the other lease had expired, or on a disjoint resource, is fine
    assert check_mutual_exclusion([*GOOD, _grant("B", 9, 2.0, "deploy:x", "L9", 9),
                                   _grant("D", 9, 2.0, "docs/", "L10", 10, ttl=0.0003)]) == []


def test_checker_finds_a_decreasing_or_repeated_fence() -> None:
    # L5 was answered (at 6.1) before L6 was invoked (at 7.0), yet L6's fence is smaller.
    decreasing = [*GOOD, _grant("C", 5, 6.0, "deploy:x", "L5", 50), _grant("D", 5, 7.0, "deploy:y", "L6", 40)]
    assert _checks(check_fences(decreasing)) == {"fences"}
    repeated = [*GOOD, _grant("C", 5, 6.0, "deploy:x", "L5", 2)]
    assert "fence 2 granted to 2 leases" in check_fences(repeated)[0].detail
    events = [{"subject_id": "L1", "payload": {"fence": 1}}, {"subject_id": "L2", "payload": {"fence": 1}}]
    assert len(check_fences(GOOD, events)) == 2  # not growing in commit order; L2's fence misreported
    # concurrent grants may take fences in either order
    assert check_fences([*GOOD, _grant("C", 5, 6.0, "deploy:x", "L5", 60),
                         _grant("D", 5, 6.05, "deploy:y", "L6", 59)]) == []


def test_a_lease_first_seen_in_a_reclaim_dates_from_the_claim_whose_answer_was_lost() -> None:
    """C's claim of deploy:x gets no answer (its hub died) but was granted, fence 5; D is granted fence 6
    afterwards; C claims again and is told it holds the lease (renewed). The lease may exist since C's first
    claim, so fence 5 < 6 is no violation; and it overlaps D's lease from then on, which is one."""
    lost = _at("C", 5, Kind.CLAIM, 6.0, 6.2, None, None, resource="deploy:x", ttl_hours=0.01)  # type: ignore[arg-type]
    reclaim = _at("C", 6, Kind.CLAIM, 6.5, 6.6, 201, {"id": "L5", "fence": 5, "resource": "deploy:x",
                                                     "session_id": "C/claude-main", "expires_in_seconds": 36.0,
                                                     "renewed": True}, resource="deploy:x", ttl_hours=0.01)
    other = _grant("D", 5, 6.3, "deploy:y", "L6", 6)
    assert check_fences([*GOOD, lost, other, reclaim]) == []
    assert check_fences([*GOOD, other, reclaim]) != []  # without the lost claim, fence 5 came after 6
    clash = _grant("D", 6, 6.3, "deploy:x", "L7", 7)
    assert check_all([*GOOD, lost, clash, reclaim], inboxes=GOOD_INBOXES) != []


def test_checker_finds_a_double_effect() -> None:
    # one key, two fresh successes with different lease ids
    twice = [*GOOD, _grant("C", 5, 6.0, "deploy:x", "L5", 5, key="kk"), _grant("C", 5, 6.0, "deploy:x", "L6", 6,
                                                                               key="kk")]
    assert {v.check for v in check_idempotency(twice)} == {"idempotency"}
    assert len(check_idempotency(twice)) == 2  # different answers, and applied twice
    # a replayed send whose second copy reached the inbox
    sent_twice = [*GOOD, _sent("A", 5, 6.0, "M2", None, "once", key="km"),
                  _sent("A", 5, 6.05, "M2", None, "once", key="km", replayed=True)]
    inboxes = {**GOOD_INBOXES, "B/claude-main": {**GOOD_INBOXES["B/claude-main"],
                                                 "M2": _msg("M2", "A", None, "once"),
                                                 "M3": _msg("M3", "A", None, "once")}}
    assert check_idempotency(sent_twice) == []
    found = check_delivery(sent_twice, inboxes)
    assert len(found) == 1 and "nobody was told was sent" in found[0].detail and "M3" in found[0].detail


def test_checker_finds_a_lost_message_and_a_misplaced_ack() -> None:
    lost = [*GOOD, _sent("B", 5, 6.0, "M4", None, "to all")]  # broadcast: A must have it, and does not
    found = check_delivery(lost, GOOD_INBOXES)
    assert len(found) == 1 and "M4" in found[0].detail and "A/claude-main" in found[0].detail, found
    unacked = {**GOOD_INBOXES, "B/claude-main": {"M1": _msg("M1", "A", "B/claude-main", "hello")}}
    assert "acked M1 (200)" in check_delivery(GOOD, unacked)[0].detail
    leaked = {"A/claude-main": {"M5": _msg("M5", "B", None, "b", acked=True)},
              "B/claude-main": GOOD_INBOXES["B/claude-main"]}
    assert any("never acked" in v.detail for v in check_delivery([*GOOD, _sent("B", 5, 6.0, "M5", None, "b")],
                                                                 leaked))


def test_checker_finds_a_hidden_or_consumed_unread_message() -> None:
    inboxes = {"A/claude-main": {"M6": _msg("M6", "A", None, "mine", seq=6),  # its own broadcast: never news
                                 "M7": _msg("M7", "B", None, "b1", seq=7),
                                 "M8": _msg("M8", "B", "A/claude-main", "b2", seq=8),
                                 "M9": _msg("M9", "B", None, "b3", acked=True, seq=9)}}
    unread = {"A/claude-main": [inboxes["A/claude-main"]["M7"], inboxes["A/claude-main"]["M8"]]}
    assert check_unread(inboxes, unread, {"A/claude-main": 2}) == []
    hidden = check_unread(inboxes, {"A/claude-main": unread["A/claude-main"][1:]}, {"A/claude-main": 1})
    assert len(hidden) == 2 and "misses ['M7']" in hidden[1].detail, hidden
    # peeking marked it read: the whole inbox says read, but no ack was sent
    peeked = {"A/claude-main": {"M7": {**_msg("M7", "B", None, "b1", seq=7), "read": True}}}
    assert any("only peeked" in v.detail for v in check_delivery([_sent("B", 1, 0.0, "M7", None, "b1")], peeked))


def test_checker_finds_unjustified_conflicts_and_early_ends() -> None:
    def refused(t0: float, resource: str, lease_id: str, holder: str, fence: int, held: str) -> Attempt:
        err = {"error": {"code": "lease_conflict", "lease_id": lease_id, "holder": f"{holder}/claude-main",
                         "fence": fence, "resource": held}}
        return _at("D", 7, Kind.CLAIM, t0, t0 + 0.1, 409, err, resource=resource, ttl_hours=0.01)

    assert check_conflicts([*GOOD, refused(0.5, "src/*.py", "L1", "A", 1, "src/")]) == []
    assert len(check_conflicts([*GOOD, refused(1.5, "src/*.py", "L1", "A", 1, "src/")])) == 1  # released at 1.1
    assert len(check_conflicts([*GOOD, refused(0.5, "src/*.md", "L2", "B", 3, "src/a.py")])) == 1  # disjoint
    # the hub refused a renew as stale while its lease (36 s TTL) was certainly live
    stale = _at("A", 8, Kind.RENEW, 3.5, 3.6, 409, {"error": {"code": "stale_fence"}}, lease_id="L4",
                ttl_hours=0.01)
    assert _checks(check_lease_lifetimes([*GOOD, stale])) == {"lifetimes"}
    renewed_after_release = _at("A", 8, Kind.RENEW, 2.0, 2.1, 200, {"id": "L1", "fence": 1, "expires_in_seconds": 36},
                                lease_id="L1", ttl_hours=0.01)
    assert len(check_lease_lifetimes([*GOOD, renewed_after_release])) == 1
    shortened = _grant("D", 9, 9.0, "deploy:y", "L9", 9, ttl=0.01)
    shortened.body["expires_in_seconds"] = 30.0  # asked for 36 s
    assert len(check_lease_lifetimes([*GOOD, shortened])) == 1


# ---- live runs -----------------------------------------------------------------------------------------

@pytest.fixture
def any_hub(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveHub]:
    """A running ``coord serve`` on the backend under test (SQLite, or PostgreSQL on the scratch database)."""
    from tests.conftest import LiveHub

    args = ("--database-url", request.getfixturevalue("pg_url")) if backend == "postgres" else ()
    hub = LiveHub(tmp_path / "hub", args=args).start()
    try:
        yield hub
    finally:
        hub.stop()


def test_random_concurrent_history_is_correct(any_hub: LiveHub, tmp_path: Path) -> None:
    """6 processes for 4 s: no violation, and every checked kind of event happened."""
    counts = assert_clean_and_meaningful(run_history(any_hub, tmp_path, Plan(workers=6, seconds=4.0, seed=1)),
                                         minimum_ops=300)
    print(one_line(counts))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_twenty_thousand_operation_history_is_correct(any_hub: LiveHub, tmp_path: Path) -> None:
    """8 processes × 2,500 operations (20,000 in all); prints the one-line summary."""
    counts = assert_clean_and_meaningful(run_history(any_hub, tmp_path, Plan(workers=8, ops=2500, seed=3)),
                                         minimum_ops=20_000)
    print(one_line(counts))
