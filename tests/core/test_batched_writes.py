"""The hub's rules hold when writes share a batch and their SQL is held back (issue 15: PostgreSQL round trips).

On PostgreSQL the acting session's row travels with the operation's first
statement, and writes nobody reads wait for a later round trip; on SQLite all
of it runs at once. Both backends must give the same answers.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from coordhub.clock import ManualClock
from coordhub.core import halt, leases, messages, presence, scope
from coordhub.core.automata import Budget, Meter
from coordhub.core.hub import Hub, Operation
from coordhub.core.identity import Actor
from coordhub.errors import CoordError, Invalid, Paused
from coordhub.store import Store
from coordhub.store.base import Ahead
from coordhub.store.tx import Tx

A, B, C = Actor("A/main"), Actor("B/main"), Actor("C/main")


def _batch(hub: Hub, calls: list[tuple[Actor, Operation]], ahead: list[Ahead | None] | None = None) -> list[Any]:
    """Run ``calls`` as mutations in one write batch; each one's body, or its exception's class name.

    ``ahead``: what each call names for reading ahead (``Hub.mutate``'s argument), by position.
    """
    named = ahead or [None] * len(calls)

    async def run() -> list[Any]:
        gate = threading.Event()
        held = hub.store.submit_write(lambda tx: gate.wait(10))  # the next units queue behind it: one batch
        tasks = [asyncio.ensure_future(hub.mutate(actor, op, ahead=names))
                 for (actor, op), names in zip(calls, named, strict=True)]
        await asyncio.sleep(0)  # each task has queued its unit
        gate.set()
        await asyncio.wrap_future(held)
        done = await asyncio.gather(*tasks, return_exceptions=True)
        return [type(d).__name__ if isinstance(d, BaseException) else d.body for d in done]

    return asyncio.run(run())


def _events(store: Store) -> list[dict[str, Any]]:
    return [{**e, "payload": json.loads(e["payload"])} for e in store.read_sync(lambda tx: tx.events.after(0))]


def test_a_refusal_decides_first_even_when_the_operation_errs_or_swallows_it(store: Store, clock: ManualClock) -> None:
    """A paused session is refused (423) before anything its operation does: whether the operation raises its
    own error before any SQL, writes and returns, or catches every ``CoordError`` around its first statement
    and goes on writing (on PostgreSQL the refusal surfaces on that statement). Nothing of theirs is kept."""
    hub = Hub(store, clock)
    hub.mutate_sync(A, lambda tx, now: tx.sessions.pause(A.session_id, "*", now))

    def invalid(tx: Tx, now: float) -> None:
        raise Invalid("the operation's own error")

    def writes(tx: Tx, now: float) -> Any:
        return messages.send(tx, A, to_session=B.session_id, subject="s", body="b", now=now)

    def swallows(tx: Tx, now: float) -> None:
        try:
            tx.meta.get("anything")
        except CoordError:
            pass
        messages.send(tx, A, to_session=B.session_id, subject="after", body="b", now=now)

    ops: list[Callable[[Tx, float], Any]] = [invalid, writes, swallows]
    got = _batch(hub, [(A, op) for op in ops] + [(B, lambda tx, now: messages.send(
        tx, B, to_session=C.session_id, subject="from B", body="b", now=now))])
    assert got[:3] == ["Paused"] * 3 and got[3]["from_session"] == B.session_id, got
    for op in ops:  # alone in their batches too
        try:
            hub.mutate_sync(A, op)
            raise AssertionError("not refused")
        except Paused:
            pass
    assert [e["payload"].get("subject") for e in _events(store) if e["kind"] == "message.sent"] == ["from B"]


def test_fences_seqs_and_event_ids_follow_commit_order_through_failing_units(store: Store,
                                                                            clock: ManualClock) -> None:
    """Claims, sends and releases in shared batches, some refused by the rules (conflicts) and some by the
    database (a deferred write failing after its unit ended): the grants that commit hold strictly increasing
    fences, in the order of their events; message seqs increase with their events' ids; a failed unit leaves
    no lease, message or event behind; fences go on increasing in the next batches."""
    hub = Hub(store, clock)
    hub.mutate_sync(A, lambda tx, now: tx.ex.execute("INSERT INTO hub_meta (key, value) VALUES ('dup', 'v')"))

    def claim(actor: Actor, resource: str) -> Operation:
        return lambda tx, now: leases.claim(tx, actor, project_key="p", resource=resource, description=None,
                                            ttl_hours=1, now=now)

    def claim_then_lost(tx: Tx, now: float) -> Any:
        out = claim(C, "lost.py")(tx, now)
        tx.ex.defer("INSERT INTO hub_meta (key, value) VALUES ('dup', 'v')")  # fails when sent: after the unit
        return out

    def send(actor: Actor, subject: str) -> Operation:
        return lambda tx, now: messages.send(tx, actor, to_session=B.session_id, subject=subject, body="b", now=now)

    calls: list[tuple[Actor, Operation]] = []
    for round_ in range(3):
        calls += [(A, claim(A, f"src/{round_}/")), (B, claim(B, f"src/{round_}/x.py")), (C, claim_then_lost),
                  (B, send(B, f"m{round_}")), (C, claim(C, f"docs/{round_}.md")), (A, send(A, f"n{round_}"))]
    got = _batch(hub, calls)
    assert [type(g).__name__ if not isinstance(g, str) else g for g in got] == \
        ["dict", "LeaseConflict", "UniqueViolation" if store.name == "postgresql" else "IntegrityError",
         "dict", "dict", "dict"] * 3, got
    released = _batch(hub, [(A, lambda tx, now, i=g["id"]: leases.release(tx, A, i, now)) for g in got[0::6]])
    assert [r["state"] for r in released] == ["released"] * 3
    later = [claim(A, f"src/{i}/") for i in range(3)]
    regranted = _batch(hub, [(A, op) for op in later])

    events = _events(store)
    granted = [e["payload"]["fence"] for e in events if e["kind"] == "lease.granted"]
    assert granted == sorted(set(granted)) and len(granted) == 9
    rows = store.read_sync(lambda tx: tx.ex.all("SELECT resource, fence FROM leases ORDER BY fence"))
    assert [r["fence"] for r in rows] == granted
    assert "lost.py" not in {r["resource"] for r in rows}
    assert [g["fence"] for g in regranted] == granted[-3:] and min(granted[-3:]) > max(granted[:-3])
    seqs = [e["payload"]["seq"] for e in events if e["kind"] == "message.sent"]
    assert seqs == sorted(seqs) and len(seqs) == 6
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert not any(e["payload"].get("resource") == "lost.py" for e in events)


def test_a_send_that_names_its_recipient_sees_what_the_batch_did_to_it_first(store: Store,
                                                                            clock: ManualClock) -> None:
    """On PostgreSQL a send's recipient is read with the batch's BEGIN (``ReadsAhead``); earlier units of the
    same batch change that row before the send looks: the recipient acts for the first time (its own upsert,
    on a row addressed before or on none), acts and is rolled back, or registers a new incarnation (another
    write to ``sessions``). Each send answers as it would alone after them, and as SQLite answers."""
    hub = Hub(store, clock)
    g, h, i = Actor("G/main"), Actor("H/main"), Actor("I/main")
    for who in (g, i):  # addressed, never seen: rows with no known_since
        hub.mutate_sync(A, lambda tx, now, who=who: messages.send(tx, A, to_session=who.session_id, subject="hi",
                                                                  body="", now=now))
    hub.mutate_sync(h, lambda tx, now: presence.register(tx, h, now=now))

    def to(who: str) -> Operation:
        return lambda tx, now: messages.send(tx, A, to_session=who, subject="s", body="b", now=now)

    def fails(tx: Tx, now: float) -> None:
        raise Invalid("after acting")

    k = Actor("K/main")  # never seen before

    def case(*calls: tuple[Actor, Operation, str | None]) -> list[Any]:  # one batch, its rows read afresh
        return _batch(hub, [(who, op) for who, op, _ in calls], [Ahead.of(sessions=(n,)) for _, _, n in calls])

    first, acted, known = case((A, to("g/MAIN"), "g/MAIN"), (g, lambda tx, now: None, None),
                               (A, to("g/MAIN"), "g/MAIN"))  # G acts in between: known from then on
    assert (first["recipient_known"], known["recipient_known"], known["to_session"]) == (False, True, "G/main")
    refused, after = case((i, fails, None), (A, to("I/main"), "I/main"))  # I acted, and that was rolled back
    assert (refused, after["recipient_known"]) == ("Invalid", False)
    _, created = case((k, lambda tx, now: None, None), (A, to("k/MAIN"), "k/MAIN"))  # K's first act creates it
    assert (created["recipient_known"], created["to_session"]) == (True, "K/main")
    _, second = case((h, lambda tx, now: presence.register(tx, h, now=now), None), (A, to("H/main"), "H/main"))
    assert second["to_incarnation"] == 2
    new, again = case((A, to("J/new"), "J/new"), (A, to("j/NEW"), "j/NEW"))  # the first addresses it
    assert [m["recipient_known"] for m in (new, again)] == [False, False]
    assert [m["to_session"] for m in (new, again)] == ["J/new", "J/new"]


def _sends_with_a_paused_sender(pause_in_batch: bool) -> tuple[list[tuple[Actor, Operation]], list[int]]:
    """A send by B (counted), then five pairs: a send by the paused A, and a send by B that reads first.

    ``pause_in_batch``: A is paused by the batch's second unit (A's row read ahead is then no longer current),
    else before the batch."""
    runs = [0]

    def counted(tx: Tx, now: float) -> Any:
        runs[0] += 1
        return messages.send(tx, B, to_session=C.session_id, subject="from B", body="b", now=now)

    def from_a(tx: Tx, now: float) -> Any:
        return messages.send(tx, A, to_session=C.session_id, subject="from A", body="b", now=now)

    def again(tx: Tx, now: float) -> Any:  # a read first: a round trip, which the checks waiting travel with
        tx.meta.get("anything")
        return messages.send(tx, B, to_session=C.session_id, subject="again", body="b", now=now)

    calls: list[tuple[Actor, Operation]] = [(B, counted)]
    if pause_in_batch:  # one row by its key: the rows read ahead forget A's, and keep C's (A's sends ask nothing)
        calls.append((C, lambda tx, now: tx.ex.execute(
            "UPDATE sessions SET paused_at = ?, paused_scope = ? WHERE session_id = ?", (now, "*", A.session_id))))
    for _ in range(5):
        calls += [(A, from_a), (B, again)]
    return calls, runs


def test_refusals_found_after_their_units_ended_cost_the_batch_one_more_run(store: Store,
                                                                           clock: ManualClock) -> None:
    """On PostgreSQL a unit's sender check may be answered after the unit ended (here each with the next
    unit's read; the sender's row read ahead no longer answers it: the batch paused the sender); the refused
    units are lost and the batch runs again without them, settling each check at its unit's end: however many
    are refused, another unit of the batch runs at most twice (once on SQLite), and only the refused fail."""
    hub = Hub(store, clock)
    for actor in (A, C):  # known: a send to C reads nothing more (no close matches)
        hub.mutate_sync(actor, lambda tx, now: None)
    calls, runs = _sends_with_a_paused_sender(pause_in_batch=True)
    got = _batch(hub, calls, ahead=[Ahead(sessions=(C.session_id,))] * len(calls))
    assert got[0]["subject"] == "from B" and got[2::2] == ["Paused"] * 5
    assert [g["subject"] for g in got[3::2]] == ["again"] * 5
    assert runs[0] == (2 if store.name == "postgresql" else 1), runs
    sent = [e["payload"]["subject"] for e in _events(store) if e["kind"] == "message.sent"]
    assert sent == ["from B"] + ["again"] * 5


def test_a_unit_run_again_is_charged_its_overlap_work_once(store: Store, clock: ManualClock) -> None:
    """A batch run again without its lost units runs the others twice (PostgreSQL, as above); the overlap steps a
    request is charged for (its :class:`~coordhub.core.automata.Meter`) are one run's, not every run's."""
    hub = Hub(store, clock)
    for actor in (A, C):
        hub.mutate_sync(actor, lambda tx, now: None)
    calls, runs = _sends_with_a_paused_sender(pause_in_batch=True)
    counted = calls[0][1]

    def spends(tx: Tx, now: float) -> Any:
        Budget().spend(5_000)  # as an overlap check of 5,000 steps does
        return counted(tx, now)

    meter = Meter()

    async def run() -> list[Any]:
        gate = threading.Event()
        held = hub.store.submit_write(lambda tx: gate.wait(10))  # the units queue behind it: one batch
        tasks = [asyncio.ensure_future(hub.mutate(B, spends, ahead=Ahead(sessions=(C.session_id,)), meter=meter))]
        tasks += [asyncio.ensure_future(hub.mutate(actor, op, ahead=Ahead(sessions=(C.session_id,))))
                  for actor, op in calls[1:]]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.wrap_future(held)
        return await asyncio.gather(*tasks, return_exceptions=True)

    got = asyncio.run(run())
    assert got[0].body["subject"] == "from B", got
    assert runs[0] == (2 if store.name == "postgresql" else 1), runs
    assert meter.steps == 5_000, meter.steps


def test_a_sender_read_ahead_is_refused_at_once(store: Store, clock: ManualClock) -> None:
    """Every write names its sender for reading ahead: a paused sender whose row was read with the batch's
    BEGIN is refused when its unit starts, before anything it does, and the batch runs once on both backends."""
    hub = Hub(store, clock)
    hub.mutate_sync(A, lambda tx, now: tx.sessions.pause(A.session_id, "*", now))
    hub.mutate_sync(C, lambda tx, now: None)
    calls, runs = _sends_with_a_paused_sender(pause_in_batch=False)
    got = _batch(hub, calls, ahead=[Ahead(sessions=(C.session_id,))] * len(calls))
    assert got[0]["subject"] == "from B" and got[1::2] == ["Paused"] * 5
    assert [g["subject"] for g in got[2::2]] == ["again"] * 5
    assert runs[0] == 1, runs
    sent = [e["payload"]["subject"] for e in _events(store) if e["kind"] == "message.sent"]
    assert sent == ["from B"] + ["again"] * 5


def test_a_release_that_names_its_lease_sees_what_the_batch_did_to_it_first(store: Store, clock: ManualClock) -> None:
    """On PostgreSQL the lease a release names is read with the batch's BEGIN; a release of the same lease
    earlier in the batch, or an admin's revocation of it, ends it first: the later release answers the ended
    lease unchanged and records nothing, as alone (and on SQLite)."""
    hub = Hub(store, clock)
    admin = Actor("ADMIN/ops", is_admin=True)

    def claim(resource: str) -> str:
        out = hub.mutate_sync(A, lambda tx, now: leases.claim(tx, A, project_key="p", resource=resource,
                                                              description=None, ttl_hours=1, now=now))
        return str(out.body["id"])

    def release(lease_id: str) -> tuple[Actor, Operation]:
        return A, lambda tx, now: leases.release(tx, A, lease_id, now)

    first, second = claim("src/a.py"), claim("src/b.py")
    twice = _batch(hub, [release(first), release(first)], [Ahead(leases=(first,))] * 2)
    revoked, after = _batch(hub, [(admin, lambda tx, now: leases.revoke(tx, admin, second, now)), release(second)],
                            [Ahead(leases=(second,))] * 2)
    assert [r["state"] for r in twice] == ["released", "released"]
    assert [r.pop("already") for r in twice] == [False, True] and twice[0] == twice[1]  # the second changed nothing
    assert revoked["state"] == after["state"] == "revoked"
    ended = [e["kind"] for e in _events(store) if e["kind"] in ("lease.released", "lease.revoked")]
    assert ended == ["lease.released", "lease.revoked"]


def test_a_refusal_is_not_decided_by_what_another_refused_unit_did(store: Store, clock: ManualClock) -> None:
    """Two first contacts of one session in two spellings, on a halted machine, share a batch and wait for their
    checks together (PostgreSQL): the first is refused (halted), and the second's refusal must not come from
    the first's upsert, which is rolled back (it would be told the id is "already known" in the other spelling):
    both are halted, as on SQLite, and the session stays unknown."""
    hub = Hub(store, clock)
    admin, first, second = Actor("ops/admin", is_admin=True), Actor("Foo/x"), Actor("foo/x")
    hub.mutate_sync(C, lambda tx, now: None)  # a known recipient: the sends read nothing
    hub.mutate_sync(admin, lambda tx, now: halt.set_halt(tx, admin, "incident", now, scope.parse("machine:foo")))

    def send(actor: Actor) -> Operation:
        return lambda tx, now: messages.send(tx, actor, to_session=C.session_id, subject="s", body="b", now=now)

    got = _batch(hub, [(first, send(first)), (second, send(second))], [Ahead(sessions=(C.session_id,))] * 2)
    assert got == ["Halted", "Halted"], got
    assert store.read_sync(lambda tx: tx.sessions.by_key("foo/x")) is None


def _claim(actor: Actor, resource: str, ttl_hours: float = 1) -> tuple[tuple[Actor, Operation], Ahead]:
    """A claim as its route makes it: the unit, and the leases it names for reading ahead."""
    return ((actor, lambda tx, now: leases.claim(tx, actor, project_key="p", resource=resource, description=None,
                                                 ttl_hours=ttl_hours, now=now)),
            Ahead.of(scans=(leases.claim_scan("p", resource),)))


def _claims(hub: Hub, *named: tuple[tuple[Actor, Operation], Ahead]) -> list[Any]:
    return _batch(hub, [call for call, _ in named], [ahead for _, ahead in named])


def test_a_claim_sees_the_leases_granted_earlier_in_its_batch(store: Store, clock: ManualClock) -> None:
    """On PostgreSQL the leases a claim could collide with are read with the batch's BEGIN; a lease granted
    earlier in the same batch must still stop it: the same file, a file under a directory claimed, a
    directory over a file claimed, a glob over it, the same name. And a second claim of one's own lease in
    the batch renews it. Each answers as it would alone (and as SQLite answers). (One batch a case: a refused
    claim rolls its unit back, and with it every row read ahead.)"""
    hub = Hub(store, clock)
    for first, second in (("src/a.py", "src/a.py"), ("lib/", "lib/x/y.py"), ("doc/x/y.md", "doc"),
                          ("web/app.ts", "web/**/*.ts"), ("name:deploy", "name:deploy")):
        granted, refused = _claims(hub, _claim(A, "other/" + first if first[-1] != "/" else "x" + first),
                                   _claim(B, first), _claim(A, second))[1:]
        assert (granted["renewed"], refused) == (False, "LeaseConflict"), (first, second, granted, refused)
    again = _claims(hub, _claim(B, "tests/t.py"), _claim(B, "tests/t.py"))
    assert [g["renewed"] for g in again] == [False, True] and again[0]["id"] == again[1]["id"]
    live = store.read_sync(lambda tx: tx.leases.live(clock.now(), project_key="p"))
    assert sorted(r["resource"] for r in live if r["session_id"] == B.session_id) == [
        "doc/x/y.md", "lib/", "name:deploy", "src/a.py", "tests/t.py", "web/app.ts"]


def test_a_claim_records_a_lease_that_ran_out_during_its_batch(store: Store, clock: ManualClock) -> None:
    """A claim first records every lease that has run out as expired, whoever holds it. A lease granted
    earlier in the batch that runs out before a later claim of the batch (the clock moves between them) is
    recorded by that claim, though it was not due when the batch read what was due."""
    hub = Hub(store, clock)

    def later(tx: Tx, now: float) -> None:
        clock.advance(10)

    short = _claim(A, "src/short.py", ttl_hours=0.001)  # 3.6 s
    granted, _, other = _claims(hub, short, ((A, later), Ahead()), _claim(B, "lib/other.py"))
    assert other["renewed"] is False
    kinds = [e["kind"] for e in _events(store) if e["subject_id"] == granted["id"]]
    assert kinds == ["lease.granted", "lease.expired"], kinds


def test_a_claim_sees_leases_ended_earlier_in_its_batch(store: Store, clock: ManualClock) -> None:
    """A lease released, revoked or run out earlier in the batch no longer stops a claim read ahead: the claim
    is granted, as alone; one renewed earlier still stops it."""
    hub = Hub(store, clock)
    admin = Actor("ADMIN/ops", is_admin=True)
    ids = {}
    for resource, ttl in (("src/a.py", 1.0), ("src/b.py", 1.0), ("src/c.py", 0.001), ("src/d.py", 1.0)):
        out = hub.mutate_sync(A, lambda tx, now, r=resource, t=ttl: leases.claim(
            tx, A, project_key="p", resource=r, description=None, ttl_hours=t, now=now))
        ids[resource] = out.body["id"]
    clock.advance(10)  # src/c.py has run out (3.6 s), not yet recorded as expired
    release = ((A, lambda tx, now: leases.release(tx, A, ids["src/a.py"], now)), Ahead(leases=(ids["src/a.py"],)))
    revoke = ((admin, lambda tx, now: leases.revoke(tx, admin, ids["src/b.py"], now)),
              Ahead(leases=(ids["src/b.py"],)))
    renew = ((A, lambda tx, now: leases.renew(tx, A, ids["src/d.py"], 2, now)), Ahead(leases=(ids["src/d.py"],)))
    got = _claims(hub, release, _claim(B, "src/a.py"), revoke, _claim(B, "src/b.py"), _claim(B, "src/c.py"),
                  _claim(B, "src/c.py"), renew, _claim(B, "src/d.py"))
    assert [g if isinstance(g, str) else g.get("renewed", g["state"]) for g in got] == [
        "released", False, "revoked", False, False, True, "active", "LeaseConflict"], got
    kinds = [e["kind"] for e in _events(store) if e["subject_id"] == ids["src/c.py"]]
    assert kinds == ["lease.granted", "lease.expired"], kinds


def test_writes_sent_ahead_keep_each_unit_whole(store: Store, clock: ManualClock,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL a batch's held writes go to the server while its later units run (every few statements
    here, so the sending falls inside units and between them). Units that fail in every way still fail alone:
    one that raises after writing (its SAVEPOINT already sent), one that raises with writes sent and not yet
    answered, one whose write fails on the server after it ended, one with a value the driver cannot send. The
    others' messages, leases and events are all kept, in order, and the failed ones leave nothing. Both
    backends answer the same."""
    sent_ahead = [0]
    if store.name == "postgresql":
        from coordhub.store import postgres
        from coordhub.store.pgpipe import Pipe

        monkeypatch.setattr(postgres, "SEND_AHEAD", 3)
        send_ahead = Pipe.send_ahead

        def counted(pipe: Pipe, statements: Any) -> int:
            sent_ahead[0] += 1
            return send_ahead(pipe, statements)

        monkeypatch.setattr(Pipe, "send_ahead", counted)
    hub = Hub(store, clock)
    hub.mutate_sync(A, lambda tx, now: tx.ex.execute("INSERT INTO hub_meta (key, value) VALUES ('dup', 'v')"))

    def send(actor: Actor, subject: str) -> Operation:
        return lambda tx, now: messages.send(tx, actor, to_session=C.session_id, subject=subject, body="b", now=now)

    def raises_after_writing(tx: Tx, now: float) -> Any:
        send(B, "raised")(tx, now)
        send(B, "raised again")(tx, now)
        raise Invalid("after writing")

    def raises_after_sending(tx: Tx, now: float) -> Any:  # its check answered by the read: nothing to settle
        tx.meta.get("anything")
        for i in range(4):
            tx.ex.defer("INSERT INTO hub_meta (key, value) VALUES (?, 'v')", (f"gone{i}",))
        raise Invalid("after its writes went ahead")

    def lost_after_ending(tx: Tx, now: float) -> Any:
        out = send(B, "lost")(tx, now)
        tx.ex.defer("INSERT INTO hub_meta (key, value) VALUES ('dup', 'v')")  # fails on the server, later
        return out

    def unadaptable(tx: Tx, now: float) -> Any:
        out = send(B, "unsendable")(tx, now)
        tx.ex.defer("INSERT INTO hub_meta (key, value) VALUES (?, ?)", ("odd", object()))
        return out

    calls: list[tuple[Actor, Operation]] = []
    for n in range(3):
        calls += [(A, send(A, f"a{n}")), (B, raises_after_writing), (A, lambda tx, now, n=n: leases.claim(
            tx, A, project_key="p", resource=f"src/{n}.py", description=None, ttl_hours=1, now=now)),
            (B, lost_after_ending), (A, send(A, f"b{n}")), (B, unadaptable), (A, send(A, f"c{n}")),
            (B, raises_after_sending)]
    got = _batch(hub, calls)
    kinds = [g if isinstance(g, str) else "ok" for g in got]
    assert kinds[0::8] == kinds[2::8] == kinds[4::8] == kinds[6::8] == ["ok"] * 3, got
    assert kinds[1::8] == kinds[7::8] == ["Invalid"] * 3 and "ok" not in kinds[3::8] + kinds[5::8], got
    if store.name == "postgresql":
        assert sent_ahead[0] >= 3, sent_ahead
    subjects = [e["payload"]["subject"] for e in _events(store) if e["kind"] == "message.sent"]
    assert subjects == [s for n in range(3) for s in (f"a{n}", f"b{n}", f"c{n}")], subjects
    stored = store.read_sync(lambda tx: tx.ex.all("SELECT subject FROM messages ORDER BY seq"))
    assert [r["subject"] for r in stored] == subjects
    fences = [g["fence"] for g in got[2::8]]
    assert fences == sorted(fences) and len(set(fences)) == 3
    kept = store.read_sync(lambda tx: tx.ex.all("SELECT key FROM hub_meta WHERE key = 'odd' OR key LIKE 'gone%'"))
    assert kept == []


def test_only_a_unit_that_reached_the_server_while_it_ran_keeps_its_savepoint(
        store: Store, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL a unit whose statements were all still held when it ended sends no SAVEPOINT or RELEASE
    (nothing of it could need undoing); a unit that made a round trip while it ran keeps its savepoint, and when
    it then fails, only its own writes are undone. Both backends keep the same rows."""
    texts: list[str] = []
    if store.name == "postgresql":
        from coordhub.store.pgpipe import Pipe

        run, ahead = Pipe.run, Pipe.send_ahead

        def spied_run(pipe: Pipe, statements: Any) -> Any:
            texts.extend(sql for sql, _ in statements)
            return run(pipe, statements)

        def spied_ahead(pipe: Pipe, statements: Any) -> int:
            texts.extend(sql for sql, _ in statements)
            return ahead(pipe, statements)

        monkeypatch.setattr(Pipe, "run", spied_run)
        monkeypatch.setattr(Pipe, "send_ahead", spied_ahead)
    hub = Hub(store, clock)
    hub.mutate_sync(C, lambda tx, now: None)

    def send(subject: str) -> Operation:
        return lambda tx, now: messages.send(tx, A, to_session=C.session_id, subject=subject, body="b", now=now)

    def reads_writes_fails(tx: Tx, now: float) -> Any:
        send("undone")(tx, now)
        tx.meta.get("anything")  # a round trip: the send's statements reach the server before the failure
        raise Invalid("after a round trip")

    texts.clear()
    got = _batch(hub, [(A, send(f"s{n}")) for n in range(6)], [Ahead(sessions=(C.session_id,))] * 6)
    assert [g["subject"] for g in got] == [f"s{n}" for n in range(6)]
    assert not [t for t in texts if "SAVEPOINT" in t], texts
    texts.clear()
    named = Ahead(sessions=(C.session_id,))
    got = _batch(hub, [(A, send("kept")), (A, send("kept too")), (A, reads_writes_fails)], [named, named, None])
    assert got[2] == "Invalid" and got[0]["subject"] == "kept" and got[1]["subject"] == "kept too", got
    if store.name == "postgresql":
        assert "ROLLBACK TO SAVEPOINT unit" in texts and texts.count("SAVEPOINT unit") == 1, texts
    subjects = [r["subject"] for r in store.read_sync(lambda tx: tx.ex.all("SELECT subject FROM messages "
                                                                          "ORDER BY seq"))]
    assert subjects == [f"s{n}" for n in range(6)] + ["kept", "kept too"], subjects


def test_a_unit_whose_write_sent_ahead_failed_and_which_then_raises_fails_alone(store: Store,
                                                                               clock: ManualClock) -> None:
    """A unit's write fails on the server after it was sent ahead (its own later writes pushed it out), and then
    the unit raises its own error: that unit fails (on PostgreSQL with its own error: the failed write is undone
    with it), the units before and after it keep what they wrote."""
    hub = Hub(store, clock)
    hub.mutate_sync(A, lambda tx, now: tx.ex.execute("INSERT INTO hub_meta (key, value) VALUES ('dup', 'v')"))

    def send(subject: str) -> Operation:
        return lambda tx, now: messages.send(tx, A, to_session=B.session_id, subject=subject, body="b", now=now)

    def fails(tx: Tx, now: float) -> Any:
        tx.meta.get("anything")  # a round trip: no check of the unit is left to settle
        tx.ex.defer("INSERT INTO hub_meta (key, value) VALUES ('dup', 'v')")  # fails on the server
        for i in range(40):  # more than are held before they are sent ahead
            tx.ex.defer("INSERT INTO hub_meta (key, value) VALUES (?, 'v')", (f"x{i}",))
        raise Invalid("the unit's own error")

    got = _batch(hub, [(A, send("before")), (B, fails), (A, send("after"))])
    assert got[0]["subject"] == "before" and got[2]["subject"] == "after", got
    assert got[1] in ("Invalid", "IntegrityError"), got
    rows = store.read_sync(lambda tx: tx.ex.all("SELECT key FROM hub_meta WHERE key LIKE 'x%'"))
    assert rows == []


def test_what_a_unit_names_is_worked_out_only_for_a_store_that_reads_ahead(store: Store, clock: ManualClock,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim names its scan as a callable (parsing the path costs ~3 µs on the serving loop): PostgreSQL calls
    it and hands the writer a ``ReadsAhead``; SQLite, whose reads are local, calls nothing and wraps nothing."""
    hub = Hub(store, clock)
    asked: list[str] = []
    written: list[Any] = []
    write = store.write

    def recording(fn: Any) -> Any:
        written.append(fn)
        return write(fn)

    monkeypatch.setattr(store, "write", recording)

    def scan() -> Ahead:
        asked.append("scan")
        return Ahead.of(scans=(leases.claim_scan("p", "src/a.py"),))

    async def claim() -> Any:
        return await hub.mutate(A, lambda tx, now: leases.claim(tx, A, project_key="p", resource="src/a.py",
                                                                description=None, ttl_hours=1, now=now), ahead=scan)

    out = asyncio.run(claim())
    assert out.body["resource"] == "src/a.py" and out.body["renewed"] is False
    expected = store.name == "postgresql"
    assert store.reads_ahead is expected
    assert asked == (["scan"] if expected else [])
    assert [type(fn).__name__ == "ReadsAhead" for fn in written] == [expected]
