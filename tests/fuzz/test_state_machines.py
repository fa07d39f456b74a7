"""Hypothesis state machines for leases (contract §2.3, §2.4) and message receipts (§2.6).

Each machine drives the core through a :class:`Hub` on a fresh store and a
:class:`ManualClock`, keeps a small model of what the contract promises, and
checks the store against the model after every step. The models are written
from the contract, not from the code: lease overlap comes from a hand-written
table over a fixed set of resources (not from ``coordhub.core.paths``), and
message state is one record per (recipient, message).
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule, run_state_machine_as_test

from coordhub.clock import ManualClock
from coordhub.core import fences, leasequeries, leases, messages, presence
from coordhub.core.hub import Hub
from coordhub.core.identity import Actor
from coordhub.errors import Forbidden, LeaseConflict, NotFound, StaleFence
from coordhub.store import Store
from coordhub.store.sqlite import SQLiteStore
from tests.conftest import _empty_pg

A, B, C = Actor("A/claude-main"), Actor("B/claude-main"), Actor("C/claude-main")
SESSIONS = (A, B, C)
ADMIN = Actor("OPS/admin", is_admin=True)
StoreFactory = Callable[[], Store]


@pytest.fixture
def new_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """Opens an empty store of the backend under test for each hypothesis example, closing the one before."""
    opened: list[Store] = []

    def make() -> Store:
        if opened:
            opened.pop().close()
        if backend == "postgres":
            from coordhub.store import open_store

            url = request.getfixturevalue("pg_url")
            _empty_pg(url)
            store = open_store(url)
        else:  # durability is not under test here; NORMAL keeps each example cheap
            store = SQLiteStore(Path(tempfile.mkdtemp(dir=tmp_path)) / "coord.db", synchronous="NORMAL")
        store.open()
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()


LONG = pytest.param(20, marks=[pytest.mark.slow, pytest.mark.timeout(1800)])  # minutes, past the suite's timeout


@pytest.fixture(params=[1, LONG], ids=["short", "long"])
def length(request: pytest.FixtureRequest) -> int:
    """How many times the usual number of examples to run (the long run is ``-m slow``)."""
    return int(request.param)


def run(machine: type[RuleBasedStateMachine], backend: str, examples: int, steps: int) -> None:
    """Run a machine; fewer examples on PostgreSQL, where emptying the database per example costs more."""
    n = examples if backend == "sqlite" else max(5, examples // 4)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=n, stateful_step_count=steps, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


# ---- leases ------------------------------------------------------------------------------------

RESOURCES = ("src/", "src/api/", "src/api/x.py", "Src/Api/X.py", "src/**/*.py", "srcx/a.py", "docs/*.md",
             "docs/readme.md", "deploy:staging")
# Which pairs share a file, worked out by hand from the contract (§2.4 and docs/api.md): a path holds its
# subtree, a glob holds whatever it can match, comparison ignores case, a scheme name holds only itself.
_SHARED = [
    ("src/", "src/api/"), ("src/", "src/api/x.py"), ("src/", "Src/Api/X.py"), ("src/", "src/**/*.py"),
    ("src/api/", "src/api/x.py"), ("src/api/", "Src/Api/X.py"), ("src/api/", "src/**/*.py"),
    ("src/api/x.py", "Src/Api/X.py"), ("src/api/x.py", "src/**/*.py"), ("Src/Api/X.py", "src/**/*.py"),
    ("docs/*.md", "docs/readme.md"),
]
OVERLAP = {frozenset(p) for p in _SHARED} | {frozenset((r,)) for r in RESOURCES}
# Which spellings name the same resource (case is folded): a holder's claim of one renews its lease on the other.
SAME = {frozenset(("src/api/x.py", "Src/Api/X.py"))} | {frozenset((r,)) for r in RESOURCES}
STALE_AFTER = 2 * 3600.0  # the hub's default stale_after_hours (seed 001's two hours)
HOLDERS = (A, B)  # two sessions are enough to contend, and meet more often than three
PROJECTS = ("p", "p", "q")  # mostly one project, so claims meet; leases of another never conflict
TTL_HOURS = (0.0, 0.5, 1.0, 2.0)  # 0: never expires (seed 001)
STEPS_SECONDS = (60.0, 1800.0, 3600.0, 7200.0)  # land exactly on expiry instants too


def overlaps(a: str, b: str) -> bool:
    return frozenset((a, b)) in OVERLAP


def same(a: str, b: str) -> bool:
    return frozenset((a, b)) in SAME


@dataclass
class LeaseModel:
    """What the contract says about one grant."""

    id: str
    session: str
    project: str
    resource: str
    fence: int
    ttl_hours: float
    expires_at: float | None
    ended: str | None = None  # "released", "revoked", "stale_takeover" or "expired" once it ended
    taker: str | None = None  # who took it over as stale

    def live(self, now: float) -> bool:
        return self.ended is None and (self.expires_at is None or self.expires_at > now)

    def state(self, now: float) -> str:
        if self.ended is not None:
            return self.ended
        return "active" if self.live(now) else "expired"


class LeaseMachine(RuleBasedStateMachine):
    """Claims, re-claims, releases, stale takeovers, renewals, force-releases, heartbeats and time passing.

    Checked against :class:`LeaseModel`; ``last_active`` is when each session last had a write
    applied (a refused one rolls back, so it does not count), which decides staleness.
    """

    new_store: StoreFactory

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.hub = Hub(self.new_store(), self.clock)
        self.model: dict[str, LeaseModel] = {}
        self.max_fence = 0
        self.last_active: dict[str, float] = {}

    granted = Bundle("granted")

    def op(self, actor: Actor, fn: Callable[..., Any]) -> Any:
        body = self.hub.mutate_sync(actor, fn).body
        self.last_active[actor.session_id] = self.now  # only a write that was applied shows activity
        return body

    def stale(self, m: LeaseModel) -> bool:
        """Seed 001's rule as the contract states it: no expiry, and the holder idle for the threshold."""
        return m.live(self.now) and m.expires_at is None and self.now - self.last_active[m.session] >= STALE_AFTER

    def row(self, lease_id: str) -> dict[str, Any]:
        return dict(self.hub.query_sync(lambda tx, now: leasequeries.get(tx, lease_id, now)))

    @property
    def now(self) -> float:
        return self.clock.now()

    @rule(target=granted, who=st.sampled_from(HOLDERS), project=st.sampled_from(PROJECTS),
          resource=st.sampled_from(RESOURCES), ttl=st.sampled_from(TTL_HOURS))
    def claim(self, who: Actor, project: str, resource: str, ttl: float) -> Any:
        return self._claim(who, project, resource, ttl)

    @rule(target=granted, lease_id=granted, ttl=st.sampled_from(TTL_HOURS), data=st.data())
    def contend(self, lease_id: str, ttl: float, data: st.DataObject) -> Any:
        """The other session claims something the table says overlaps a granted lease (live or not)."""
        m = self.model[lease_id]
        other = B if m.session == A.session_id else A
        resource = data.draw(st.sampled_from([r for r in RESOURCES if overlaps(r, m.resource)]))
        return self._claim(other, m.project, resource, ttl)

    @rule(target=granted, lease_id=granted, ttl=st.sampled_from(TTL_HOURS), data=st.data())
    def reclaim(self, lease_id: str, ttl: float, data: st.DataObject) -> Any:
        """The holder claims its lease's resource again, possibly spelled otherwise (live or not)."""
        m = self.model[lease_id]
        resource = data.draw(st.sampled_from([r for r in RESOURCES if same(r, m.resource)]))
        return self._claim(next(a for a in HOLDERS if a.session_id == m.session), m.project, resource, ttl)

    def _claim(self, who: Actor, project: str, resource: str, ttl: float) -> Any:
        mine = sorted((m for m in self.model.values() if m.project == project and m.live(self.now)
                       and m.session == who.session_id and same(m.resource, resource)), key=lambda m: m.fence)
        if mine:  # the holder's second claim renews the lease it has: same id, same fence, new TTL
            got = self.op(who, lambda tx, now: leases.claim(tx, who, project_key=project, resource=resource,
                                                             description=None, ttl_hours=ttl, now=now))
            m = mine[0]
            assert got["renewed"] is True and (got["id"], got["fence"]) == (m.id, m.fence), (got, m)
            m.ttl_hours, m.expires_at = ttl, None if ttl == 0 else self.now + ttl * 3600
            return multiple()  # nothing new granted
        holders = {m.session for m in self.model.values() if m.project == project and m.live(self.now)
                   and m.session != who.session_id and overlaps(m.resource, resource)}
        try:
            got = self.op(who, lambda tx, now: leases.claim(tx, who, project_key=project, resource=resource,
                                                             description=None, ttl_hours=ttl, now=now))
        except LeaseConflict as exc:
            assert holders, f"{who.session_id} refused {project}:{resource} though nobody else holds an overlap"
            assert exc.details["holder"] in holders
            return multiple()  # nothing granted
        assert not holders, f"{who.session_id} granted {project}:{resource} while {holders} hold an overlap"
        assert got["fence"] > self.max_fence, "fences must strictly increase"
        assert got["session_id"] == who.session_id and got["state"] == "active" and got["renewed"] is False
        self.max_fence = got["fence"]
        expires = None if ttl == 0 else self.now + ttl * 3600
        self.model[got["id"]] = LeaseModel(got["id"], who.session_id, project, resource, got["fence"], ttl, expires)
        return got["id"]

    @rule(who=st.sampled_from(HOLDERS), lease_id=granted)
    def release(self, who: Actor, lease_id: str) -> None:
        m = self.model[lease_id]
        before = self.row(lease_id)
        if who.session_id != m.session:
            ended, stale = not m.live(self.now), self.stale(m)
            try:
                got = self.op(who, lambda tx, now: leases.release(tx, who, lease_id, now))
            except Forbidden:
                assert not (ended or stale), f"{who.session_id} refused a stale takeover, or an ended lease: {m}"
                assert self.row(lease_id) == before, "a refused release changed the lease"
                return
            if ended:  # no one's: answered as it stands, changed in nothing
                assert got["already"] is True and got["state"] == m.state(self.now), got
                assert self.row(lease_id) == before, "a release of an ended lease changed it"
                return
            assert stale, f"{who.session_id} released a lease of {m.session} that is not stale: {m}"
            m.ended, m.taker = "stale_takeover", who.session_id
            assert (got["state"], got["released_by"]) == ("stale_takeover", m.taker), got
            return
        got = self.op(who, lambda tx, now: leases.release(tx, who, lease_id, now))
        if m.live(self.now):
            m.ended = "released"
        elif m.ended is None:
            m.ended = "expired"
        assert got["state"] == m.state(self.now)

    @rule(lease_id=granted, idle=st.sampled_from((STALE_AFTER - 60, STALE_AFTER)))
    def holder_goes_silent(self, lease_id: str, idle: float) -> None:
        """Nobody acts for about the stale threshold, then the other session tries seed 001's release."""
        self.clock.advance(idle)
        m = self.model[lease_id]
        self.release(B if m.session == A.session_id else A, lease_id)

    @rule(who=st.sampled_from(HOLDERS), lease_id=granted, ttl=st.sampled_from((None, *TTL_HOURS)))
    def renew(self, who: Actor, lease_id: str, ttl: float | None) -> None:
        m = self.model[lease_id]
        before = self.row(lease_id)
        expected: type[Exception] | None = (Forbidden if who.session_id != m.session else
                                            None if m.live(self.now) else StaleFence)
        try:
            got = self.op(who, lambda tx, now: leases.renew(tx, who, lease_id, ttl, now))
        except (Forbidden, StaleFence) as exc:
            assert isinstance(exc, expected or ()), f"renew by {who.session_id} of {m}: {exc!r}"
            assert self.row(lease_id) == before, "a refused renewal changed the lease"
            return
        assert expected is None, f"renew by {who.session_id} of {m} should raise {expected}"
        hours = m.ttl_hours if ttl is None else ttl
        m.ttl_hours = hours
        m.expires_at = None if hours == 0 else self.now + hours * 3600
        assert got["fence"] == m.fence, "renewal keeps the fence"

    @rule(lease_id=granted)
    def force_release(self, lease_id: str) -> None:
        m = self.model[lease_id]
        got = self.op(ADMIN, lambda tx, now: leases.revoke(tx, ADMIN, lease_id, now))
        if m.live(self.now):
            m.ended = "revoked"
        elif m.ended is None:  # it ran out on its own, whether or not the sweeper has recorded that yet
            m.ended = "expired"
        assert got["state"] == m.state(self.now)

    @rule(who=st.sampled_from(HOLDERS))
    def heartbeat(self, who: Actor) -> None:
        """A presence heartbeat is activity: it keeps the session's no-expiry leases from going stale."""
        self.op(who, lambda tx, now: presence.heartbeat(tx, who, None, now))

    @rule(seconds=st.sampled_from(STEPS_SECONDS), sweep=st.booleans())
    def advance(self, seconds: float, sweep: bool) -> None:
        self.clock.advance(seconds)
        if sweep:
            self.hub.sweep_sync()

    @invariant()
    def live_leases_match_the_model(self) -> None:
        live = self.hub.query_sync(lambda tx, now: leasequeries.live(tx, now))
        assert {x["id"] for x in live} == {i for i, m in self.model.items() if m.live(self.now)}
        for x, y in itertools.combinations(live, 2):  # at most one live holder per overlapping set
            assert not (x["project_key"] == y["project_key"] and x["session_id"] != y["session_id"]
                        and overlaps(x["resource"], y["resource"])), (x, y)

    @invariant()
    def every_lease_has_its_state_and_fence(self) -> None:
        def look(tx: Any, now: float) -> list[tuple[dict[str, Any], dict[str, Any]]]:
            return [(leasequeries.get(tx, m.id, now), fences.check_fence(tx, m.fence, now))
                    for m in self.model.values()]

        for m, (got, check) in zip(self.model.values(), self.hub.query_sync(look), strict=True):
            assert (got["state"], got["fence"], got["session_id"]) == (m.state(self.now), m.fence, m.session), m
            assert check["current"] == m.live(self.now), (m, check)  # a stale fence is never current


def test_leases_follow_the_model(new_store: StoreFactory, backend: str, length: int) -> None:
    machine = type("Leases", (LeaseMachine,), {"new_store": staticmethod(new_store)})
    run(machine, backend, examples=80 * length, steps=30)


def test_force_release_of_an_expired_lease_leaves_it_expired(hub: Hub, clock: ManualClock) -> None:
    """Found by the machine above: the state of a lease that ran out must not depend on when the sweeper ran."""
    lease = hub.mutate_sync(A, lambda tx, now: leases.claim(tx, A, project_key="p", resource="x", description=None,
                                                            ttl_hours=1, now=now)).body
    clock.advance(3600)
    assert hub.query_sync(lambda tx, now: leasequeries.get(tx, lease["id"], now))["state"] == "expired"
    got = hub.mutate_sync(ADMIN, lambda tx, now: leases.revoke(tx, ADMIN, lease["id"], now)).body
    assert got["state"] == "expired"


# ---- message receipts --------------------------------------------------------------------------

ACK_WAIT = 60.0
MAX_DELIVERIES = 2
SESSION_IDS = tuple(s.session_id for s in SESSIONS)


@dataclass
class Receipt:
    """One recipient's view of one message."""

    read: bool = False
    acked: bool = False
    shown: bool = False
    deliveries: int = 1
    deadline: float | None = None
    dead: bool = False


@dataclass
class MessageModel:
    """One message and the receipt of each session that has one."""

    id: str
    seq: int
    sender: str
    to: str | None  # None: broadcast
    requires_ack: bool
    receipts: dict[str, Receipt] = field(default_factory=dict)

    def recipients(self) -> tuple[str, ...]:
        """Whose inbox it is in: the addressee, or every session but the sender for a broadcast."""
        return (self.to,) if self.to is not None else tuple(s for s in SESSION_IDS if s != self.sender)


class ReceiptMachine(RuleBasedStateMachine):
    """Sends, reads, acks, the hook's "take unshown", and sweeps with redelivery and dead letters."""

    new_store: StoreFactory

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.hub = Hub(self.new_store(), self.clock)
        self.model: dict[str, MessageModel] = {}
        self.count = 0

    sent = Bundle("sent")

    def op(self, actor: Actor, fn: Callable[..., Any]) -> Any:
        return self.hub.mutate_sync(actor, fn).body

    def receipt(self, session: str, m: MessageModel) -> Receipt:
        return m.receipts.setdefault(session, Receipt())

    def visible(self, session: str, m: MessageModel) -> bool:
        return m.to is None or session in (m.to, m.sender)

    def add(self, got: dict[str, Any], sender: str, to: str | None, requires_ack: bool) -> MessageModel:
        m = MessageModel(got["id"], got["seq"], sender, to, requires_ack)
        for r in m.recipients():
            m.receipts[r] = Receipt(deadline=self.clock.now() + ACK_WAIT if requires_ack and to is not None
                                    else None)
        self.model[m.id] = m
        return m

    @rule(target=sent, sender=st.sampled_from(SESSIONS), to=st.sampled_from((None, *SESSIONS)),
          requires_ack=st.booleans())
    def send(self, sender: Actor, to: Actor | None, requires_ack: bool) -> str:
        self.count += 1
        subject, to_session = f"m{self.count}", None if to is None else to.session_id
        got = self.op(sender, lambda tx, now: messages.send(
            tx, sender, to_session=to_session, subject=subject, body="", requires_ack=requires_ack,
            ack_wait_seconds=ACK_WAIT, max_deliveries=MAX_DELIVERIES, now=now))
        assert got["broadcast"] == (to is None) and got["from_session"] == sender.session_id
        return self.add(got, sender.session_id, to_session, requires_ack).id

    def _refused(self, who: Actor, m: MessageModel, verb: Callable[..., Any]) -> bool:
        """Call a read/ack as ``who``; True when it was (rightly) refused."""
        if not self.visible(who.session_id, m):
            with pytest.raises(NotFound):
                self.op(who, lambda tx, now: verb(tx, who, m.id, now))
            return True
        if m.to is not None and m.to != who.session_id:  # the sender of a direct message
            with pytest.raises(Forbidden):
                self.op(who, lambda tx, now: verb(tx, who, m.id, now))
            return True
        return False

    @rule(who=st.sampled_from(SESSIONS), message_id=sent)
    def read(self, who: Actor, message_id: str) -> None:
        m = self.model[message_id]
        if not self._refused(who, m, messages.mark_read):
            got = self.op(who, lambda tx, now: messages.mark_read(tx, who, m.id, now))
            self.receipt(who.session_id, m).read = True
            assert got["read"]

    @rule(who=st.sampled_from(SESSIONS), message_id=sent)
    def ack(self, who: Actor, message_id: str) -> None:
        m = self.model[message_id]
        if not self._refused(who, m, messages.ack):
            got = self.op(who, lambda tx, now: messages.ack(tx, who, m.id, now))
            r = self.receipt(who.session_id, m)
            r.read = r.acked = True
            assert got["read"] and got["acked_at"] is not None

    @rule(who=st.sampled_from(SESSIONS), limit=st.integers(1, 4))
    def take_unshown(self, who: Actor, limit: int) -> None:
        waiting = [m for m in sorted(self.model.values(), key=lambda m: m.seq)
                   if who.session_id in m.recipients() and not m.receipts[who.session_id].read
                   and not m.receipts[who.session_id].shown]
        got = self.op(who, lambda tx, now: messages.unshown(tx, who, limit, now))
        assert [x["id"] for x in got["messages"]] == [m.id for m in waiting[:limit]], "unshown: wrong messages"
        assert got["more"] == len(waiting[limit:])
        for m in waiting[:limit]:
            m.receipts[who.session_id].shown = True

    @rule(seconds=st.sampled_from((30.0, 60.0, 61.0, 150.0)))
    def advance_and_sweep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        now = self.clock.now()
        redelivered = dead = 0
        told: list[MessageModel] = []
        for m in list(self.model.values()):
            for r in m.receipts.values():
                if r.deadline is None or r.deadline > now or r.acked or r.dead:
                    continue
                if r.deliveries < MAX_DELIVERIES:
                    r.read = r.shown = False
                    r.deliveries += 1
                    r.deadline = now + ACK_WAIT
                    redelivered += 1
                else:
                    r.dead = True
                    dead += 1
                    told.append(m)
        counts = self.hub.sweep_sync()
        assert (counts["redelivered"], counts["dead_lettered"]) == (redelivered, dead)
        for m in told:  # the sender is told, by a direct message from the hub naming the lost one
            notes = [x for x in self.history(m.sender) if x["message_type"] == "DEAD_LETTER" and m.id in x["body"]
                     and x["id"] not in self.model]
            assert len(notes) == 1, f"{m.sender} not told (once) that {m.id} was dead-lettered: {notes}"
            self.add(notes[0], messages.SYSTEM_SENDER, m.sender, False)

    def history(self, session: str) -> list[dict[str, Any]]:
        """Every message in a session's inbox, read or not, newest first."""
        return list(self.hub.query_sync(lambda tx, now: messages.inbox(tx, session, unread_only=False, limit=500)))

    def unread(self, session: str) -> list[str]:
        """The model's unread messages of a session, oldest first."""
        return [m.id for m in sorted(self.model.values(), key=lambda m: m.seq)
                if session in m.recipients() and not m.receipts[session].read]

    @invariant()
    def unread_per_recipient_matches_the_model(self) -> None:
        def look(tx: Any, now: float) -> dict[str, tuple[list[str], int]]:
            return {s: ([x["id"] for x in messages.inbox(tx, s, unread_only=True, limit=500)],
                        messages.unread_count(tx, s)) for s in SESSION_IDS}

        for s, (ids, count) in self.hub.query_sync(look).items():
            want = self.unread(s)
            assert ids == want and count == len(want), f"unread of {s}"

    @invariant()
    def receipts_match_the_model(self) -> None:
        views = [(m, s, r) for m in self.model.values() for s, r in m.receipts.items()]

        def look(tx: Any, now: float) -> list[dict[str, Any]]:
            return [messages.get(tx, Actor(s), m.id) for m, s, _ in views]

        for (m, s, r), got in zip(views, self.hub.query_sync(look), strict=True):
            own = m.to is None and s == m.sender and m.requires_ack  # a sender owes its own broadcast no ack
            assert (got["read"], got["acked_at"] is not None, got["deliveries"], got["dead_lettered_at"] is not None
                    ) == (r.read, r.acked or own, r.deliveries, r.dead), (m, s)


def test_message_receipts_follow_the_model(new_store: StoreFactory, backend: str, length: int) -> None:
    machine = type("Receipts", (ReceiptMachine,), {"new_store": staticmethod(new_store)})
    run(machine, backend, examples=60 * length, steps=35)
