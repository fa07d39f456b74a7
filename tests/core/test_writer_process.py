"""The writer process's link (:mod:`coordhub.writer_process`), both ends in one event loop on one database.

A "serving" hub whose ``remote`` is a :class:`WriterLink` and a "writer" hub
behind a :class:`WriterServer` on a Unix socket, each with its own store on
the backend under test: calls cross the socket and run every rule of
``Hub.mutate`` there (the acting session, halts, idempotency); errors come
back as what they are, details and all; a batch's events reach the serving
hub's bus before its answer; what is not a call, and every call while the
link is down, runs on the serving hub's own writer; a write whose answer is
lost with the link fails with ``Unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import pickle
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from coordhub import writer_process
from coordhub.api.app import create_app
from coordhub.clock import ManualClock
from coordhub.core import addressing, automata, calls, halt, leasequeries, leases, scope, tokens, turns
from coordhub.core.addressing import UnknownDestination
from coordhub.core.calls import Call
from coordhub.core.hub import Hub, Outcome
from coordhub.core.idempotency import IdempotentRequest
from coordhub.core.identity import Actor
from coordhub.core.presence import StaleIncarnation
from coordhub.errors import Halted, LeaseConflict, Unauthorized, Unavailable, WriterLost
from coordhub.store.base import Ahead, Store
from coordhub.store.tx import Tx
from coordhub.writer_process import WriterLink, WriterServer
from coordhub.writer_wire import PROTOCOL, decode, encode
from tests.conversations.conftest import org

ALICE, BOB = Actor("M/alice"), Actor("M/bob")
ADMIN = Actor("M/admin", is_admin=True)


def _claim(actor: Actor, resource: str = "src/a.py") -> Call:
    return Call("leases.claim", actor, project_key="p", resource=resource, description=None, ttl_hours=1.0)


async def _claimed(hub: Hub, actor: Actor, resource: str = "src/a.py", **rules: Any) -> Outcome:
    """A claim as the route makes it: with the leases it decides on named (read ahead on PostgreSQL)."""
    return await hub.mutate(actor, _claim(actor, resource), status=201,
                            ahead=lambda: Ahead.of(scans=(leases.claim_scan("p", resource),)), **rules)


class Pair:
    """The serving hub, its link, and a way to stop and start the writer hub's server."""

    def __init__(self, serving: Hub, writer: Hub, path: Path) -> None:
        self.serving, self.writer, self.path = serving, writer, path
        self.link = WriterLink(path)
        serving.remote = self.link
        self.server: WriterServer | None = None
        self._stop = threading.Event()
        self._serving: threading.Thread | None = None
        self.units = {"serving": 0, "writer": 0}  # units each hub's writer committed
        serving.store.set_batch_observer(lambda n, _s: self._count("serving", n))
        self.link.on_batch = lambda n, _s: self._count("writer", n)  # as the writer process reports its batches

    def _count(self, writer: str, units: int) -> None:
        self.units[writer] += units

    async def start_server(self, *, linked: bool = True) -> None:
        self._stop = threading.Event()
        self.server = WriterServer(self.writer)
        self._serving = threading.Thread(target=self.server.serve, args=(self.path, self._stop))
        self._serving.start()
        if linked:
            await self.connected(self.link.connections + 1)

    async def stop_server(self) -> None:
        self._stop.set()
        assert self._serving is not None
        await asyncio.to_thread(self._serving.join)
        for _ in range(200):
            if not self.link.ready:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the link did not notice the writer going away")

    async def reported(self, units: int) -> None:
        """Wait until the writer process has reported batches of ``units`` units in all."""
        for _ in range(500):
            if self.units["writer"] >= units:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the writer process reported {self.units['writer']} units, not {units}")

    async def connected(self, connections: int) -> None:
        for _ in range(500):
            if self.link.ready and self.link.connections >= connections:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the link did not connect: {self.link.as_dict()}")


@asynccontextmanager
async def _pair(store_factory: Callable[[], Store], tmp_path: Path) -> AsyncIterator[Pair]:
    clock = ManualClock()
    pair = Pair(Hub(store_factory(), clock), Hub(store_factory(), clock), tmp_path / "writer.sock")
    await pair.start_server(linked=False)  # the link connects once start_bus starts it
    await pair.serving.start_bus()
    try:
        await pair.connected(1)
        yield pair
    finally:
        pair.serving.stop_bus()
        if not pair._stop.is_set():
            await pair.stop_server()


@pytest.fixture(autouse=True)
def _quick_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_process, "REPORT_SECONDS", 0.02)  # the batches reports, within a test's patience


def _run(store_factory: Callable[[], Store], tmp_path: Path, body: Callable[[Pair], Any]) -> None:
    async def main() -> None:
        async with _pair(store_factory, tmp_path) as pair:
            await body(pair)

    asyncio.run(main())


def test_calls_run_in_the_writer_with_every_rule_of_a_write(store_factory: Callable[[], Store],
                                                             tmp_path: Path) -> None:
    async def body(pair: Pair) -> None:
        hub, link = pair.serving, pair.link
        assert hub.bus is not None
        before = hub.bus.last_id
        granted = await _claimed(hub, ALICE)
        assert granted.status == 201 and granted.body["session_id"] == ALICE.session_id and link.calls == 1
        assert link.as_dict()["pid"] == os.getpid()  # its hello named it (both ends are this process here)
        # its event was sent before its answer: on the bus already, with no poll and no announcement between
        assert [e["kind"] for e in hub.bus.since(before) or []] == ["lease.granted"]
        # the writer hub made it (as it reports, within REPORT_SECONDS): the serving hub's own writer committed nothing
        await pair.reported(1)
        assert pair.units == {"serving": 0, "writer": 1}

        with pytest.raises(LeaseConflict) as conflict:
            await _claimed(hub, BOB)
        assert conflict.value.details["holder"] == ALICE.session_id
        assert conflict.value.details["lease_id"] == granted.body["id"]

        idem = IdempotentRequest.of("k-1", "POST", "/api/coord/locks", b"{}")
        first = await _claimed(hub, BOB, "src/b.py", idem=idem)
        again = await _claimed(hub, BOB, "src/b.py", idem=idem)
        assert again == Outcome(201, first.body, replayed=True)

        await hub.mutate(ADMIN, lambda tx, now: halt.set_halt(tx, ADMIN, "stop", now))
        assert link.calls == 4  # the halt is no call: it ran on the serving hub's own writer
        with pytest.raises(Halted):
            await _claimed(hub, ALICE, "src/c.py")
        released = await hub.mutate(ALICE, Call("leases.release", ALICE, lease_id=granted.body["id"]),
                                    during_halt=halt.Exempt.RELEASE)
        assert released.body["state"] == "released" and link.calls == 6

    _run(store_factory, tmp_path, body)


def test_a_project_halt_refuses_claims_and_renewals_there_in_the_writer_process_too(
        store_factory: Callable[[], Store], tmp_path: Path) -> None:
    """A project's halt refuses a claim or a renewal in that project whoever makes it (core.hub), also when the
    call crosses to the writer process (``coord serve --workers N``): there it runs wrapped, and the rule once
    looked for a bare :class:`Call` and so let both through. A claim elsewhere and a release go on."""
    async def body(pair: Pair) -> None:
        hub, link = pair.serving, pair.link
        held = await _claimed(hub, ALICE)
        await hub.mutate(ADMIN, lambda tx, now: halt.set_halt(tx, ADMIN, "stop p", now, scope.parse("project:p")))
        with pytest.raises(Halted) as refused:
            await _claimed(hub, BOB, "src/b.py")
        assert refused.value.details["halt"]["scope"] == "project:p"
        with pytest.raises(Halted):
            await hub.mutate(ALICE, Call("leases.renew", ALICE, lease_id=held.body["id"], ttl_hours=None))
        elsewhere = await hub.mutate(BOB, Call("leases.claim", BOB, project_key="q", resource="src/b.py",
                                               description=None, ttl_hours=1.0), status=201)
        assert elsewhere.status == 201
        released = await hub.mutate(ALICE, Call("leases.release", ALICE, lease_id=held.body["id"]),
                                    during_halt=halt.Exempt.RELEASE)
        assert released.body["state"] == "released"
        assert link.calls == 5  # every call ran (or was refused) there; only the halt, no call, ran here

    _run(store_factory, tmp_path, body)


def test_a_call_carries_its_token_and_the_writer_process_refuses_it_once_revoked(
        store_factory: Callable[[], Store], tmp_path: Path) -> None:
    """The actor's token epoch crosses the link with the call, so the write checks it in the writer process's
    transaction: once the token is revoked, the call is refused there."""
    async def body(pair: Pair) -> None:
        hub, link = pair.serving, pair.link
        minted = await hub.store.write(lambda tx: tokens.mint(tx, "M/carol", 1.0, purpose="test"))
        carol = await hub.store.read(lambda tx: tokens.authenticate(tx, minted))
        assert carol is not None and carol.token_epoch == 0
        assert Call.from_plain(_claim(carol).plain()).actor.token_epoch == 0
        assert (await _claimed(hub, carol)).status == 201 and link.calls == 1
        await hub.store.write(lambda tx: tokens.retire(tx, "M/carol", 2.0, reason="test"))
        with pytest.raises(Unauthorized):
            await _claimed(hub, carol, "src/other.py")
        assert link.calls == 2  # refused there, not here

    _run(store_factory, tmp_path, body)


def test_a_calls_overlap_work_comes_back_with_its_answer_or_its_error(store_factory: Callable[[], Store],
                                                                         tmp_path: Path) -> None:
    """The steps a claim's overlap checks spent in the writer process reach the serving process's meter (the rate
    limit charges them: :meth:`coordhub.api.auth.Caller.charge_work`), for a grant and for a 409 alike."""
    async def body(pair: Pair) -> None:
        hub = pair.serving
        for i in range(20):
            assert (await _claimed(hub, ALICE, f"src/m{i}/deep/er/file_{i}.py")).status == 201
        literal = automata.Meter()
        assert (await _claimed(hub, BOB, "docs/a.md", meter=literal)).status == 201
        granted, refused = automata.Meter(), automata.Meter()
        assert (await _claimed(hub, BOB, "src/**/*.md", meter=granted)).status == 201
        with pytest.raises(LeaseConflict):
            await _claimed(hub, BOB, "**/*[e]*.py", meter=refused)
        assert literal.steps == 0 and granted.steps > 0 and refused.steps > 0, (granted.steps, refused.steps)
        assert pair.link.calls == 23  # all there

    _run(store_factory, tmp_path, body)


def test_an_agents_routine_writes_cross_too(store_factory: Callable[[], Store], tmp_path: Path) -> None:
    """Presence, marking read and acks run in the writer, with their rules (a stale incarnation's heartbeat refused
    there), and answer as they would here."""
    async def body(pair: Pair) -> None:
        hub, link = pair.serving, pair.link

        async def call(actor: Actor, name: str, **arguments: Any) -> Any:
            before = link.calls
            done = await hub.mutate(actor, Call(name, actor, **arguments))
            assert link.calls == before + 1, name  # answered by the writer process
            return done.body

        first = await call(ALICE, "presence.register", client="claude-code", client_session="c-1", cwd="/w")
        assert first["incarnation"] == 1 and first["client"] == "claude-code"
        again = await call(ALICE, "presence.register", client=None, client_session=None, cwd=None)
        assert again["incarnation"] == 2
        with pytest.raises(StaleIncarnation):
            await hub.mutate(ALICE, Call("presence.heartbeat", ALICE, incarnation=1))
        assert (await call(ALICE, "presence.heartbeat", incarnation=2))["state"] == "active"
        sent = (await hub.mutate(BOB, Call("messages.send", BOB, to_session=ALICE.session_id, subject="hi",
                                           body="b", requires_ack=True), status=201)).body
        assert (await call(ALICE, "messages.mark_read", message_id=sent["id"]))["read_at"] is not None
        assert (await call(ALICE, "messages.ack", message_id=sent["id"]))["acked_at"] is not None
        ended = await call(ALICE, "presence.deregister", incarnation=2, release_leases=True)
        assert ended["state"] == "offline"
        for actor, project in ((ALICE, "pa"), (BOB, "pb")):
            await hub.mutate(actor, lambda tx, now, a=actor, p=project: addressing.set_profile(
                tx, a, machine="m", project=p, now=now))
        declared = pair.units["serving"]  # a declaration is no call: it ran here
        d = turns.draft(to="m.pa", conversation_id="c-1", type="request", body="please", now=0.0)
        turn = (await hub.mutate(BOB, Call("conversations.send", BOB, draft=d.plain()))).body
        assert (turn["sequence"], turn["decision"], turn["from"]) == (1, "process", "m.pb")
        again = await hub.mutate(BOB, Call("conversations.send", BOB, draft=d.plain()))  # the same file: a dedup
        assert (again.status, again.body["id"], again.body["decision"]) == (200, turn["id"], "dedup")
        with pytest.raises(UnknownDestination):  # its checks run there and come back whole
            await hub.mutate(BOB, Call("conversations.send", BOB, draft=turns.draft(
                to="nowhere.p", conversation_id="c-2", type="request", body="x", now=0.0).plain()))
        assert pair.units["serving"] == declared  # none of the calls ran on the serving hub's own writer

    _run(store_factory, tmp_path, body)


def test_an_answer_that_is_not_plain_data_fails_its_call_only(store_factory: Callable[[], Store], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A body holding an object the link does not carry (here a ``datetime``) is refused as the writer encodes it:
    that call fails (500, as a bug), the link stays up and the next call crosses. Were it sent, the serving side
    could not decode it and would close the link with every call waiting on it."""
    def beat(tx: Tx, actor: Actor, incarnation: int | None, now: float) -> dict[str, Any]:
        return {"at": dt.datetime.now(dt.UTC)}

    async def body(pair: Pair) -> None:
        hub, link = pair.serving, pair.link
        monkeypatch.setitem(calls.OPERATIONS, "presence.heartbeat", beat)
        with pytest.raises(RuntimeError, match="plain data, not datetime.datetime"):
            await hub.mutate(ALICE, Call("presence.heartbeat", ALICE, incarnation=None))
        assert link.ready and link.connections == 1
        assert (await _claimed(hub, ALICE)).status == 201 and link.calls == 2

    _run(store_factory, tmp_path, body)


def test_calls_run_here_while_the_link_is_down_and_go_there_again_when_it_is_back(
        store_factory: Callable[[], Store], tmp_path: Path) -> None:
    async def body(pair: Pair) -> None:
        hub, link = pair.serving, pair.link
        await pair.stop_server()
        here = await _claimed(hub, ALICE)
        assert here.status == 201 and link.calls == 0 and pair.units == {"serving": 1, "writer": 0}
        await pair.start_server()
        assert link.connections == 2
        there = await _claimed(hub, BOB, "src/b.py")
        assert there.status == 201 and link.calls == 1
        # both writers' leases are one table: the second claim of ALICE's file conflicts, wherever it runs
        with pytest.raises(LeaseConflict):
            await _claimed(hub, BOB)

    _run(store_factory, tmp_path, body)


@pytest.fixture
def stuck(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """A call ``test.stuck`` that holds the writer thread: ``(entered, let_go)``: set once it runs; set to end it."""
    entered, let_go = threading.Event(), threading.Event()

    def hold(tx: Tx, actor: Actor, *, now: float) -> dict[str, Any]:
        entered.set()
        let_go.wait(10)
        return {}

    monkeypatch.setitem(calls.OPERATIONS, "test.stuck", hold)
    return entered, let_go


def test_a_write_whose_answer_is_lost_with_the_link_fails_unavailable(
        store_factory: Callable[[], Store], tmp_path: Path, stuck: tuple[threading.Event, threading.Event]) -> None:
    entered, let_go = stuck

    async def body(pair: Pair) -> None:
        write = asyncio.ensure_future(pair.serving.mutate(ALICE, Call("test.stuck", ALICE)))
        assert await asyncio.to_thread(entered.wait, 10)
        assert pair.server is not None
        for link in list(pair.server.links):  # the writer process dies with the write under way
            link.close()
        with pytest.raises(Unavailable, match="may or may not have been applied"):
            await write
        let_go.set()

    _run(store_factory, tmp_path, body)


def test_calls_of_a_link_that_went_away_do_not_run_later(store_factory: Callable[[], Store], tmp_path: Path,
                                                         stuck: tuple[threading.Event, threading.Event]) -> None:
    """A serving process that dropped its link (its callers were answered 503) must not have the calls it had
    queued there applied afterwards, behind the back of callers that may be retrying them elsewhere."""
    entered, let_go = stuck

    async def body(pair: Pair) -> None:
        hub = pair.serving
        first = asyncio.ensure_future(hub.mutate(ALICE, Call("test.stuck", ALICE)))
        assert await asyncio.to_thread(entered.wait, 10)
        late = asyncio.ensure_future(_claimed(hub, BOB, "src/late.py"))  # queued behind the stuck batch
        await asyncio.sleep(0.2)
        assert pair.link._frames is not None and pair.server is not None
        pair.link._frames.transport.abort()  # the serving process gives up on the link
        for waiting in (first, late):
            with pytest.raises(Unavailable):
                await waiting
        for _ in range(500):  # the writer process has seen the link end
            if not pair.server.links or all(link.gone for link in pair.server.links):
                break
            await asyncio.sleep(0.01)
        let_go.set()
        await pair.connected(2)
        again = await _claimed(hub, ALICE, "src/after.py")  # the writer has run what it had queued by now
        assert again.status == 201
        held = {row["resource"] for row in await hub.query(lambda tx, now: leasequeries.live(tx, now, "p"))}
        assert held == {"src/after.py"}

    _run(store_factory, tmp_path, body)


def test_events_committed_before_the_writer_started_reach_the_bus_in_order(store_factory: Callable[[], Store],
                                                                          tmp_path: Path) -> None:
    """A writer process that starts after events its serving hub has not published yet (committed while it was
    down, and not announced here: SQLite without workers) sends frames that begin after them: the serving hub
    reads the log for them instead of publishing the frame over the gap."""
    async def main() -> None:
        clock = ManualClock()
        pair = Pair(Hub(store_factory(), clock), Hub(store_factory(), clock), tmp_path / "writer.sock")
        hub = pair.serving
        await hub.start_bus()
        assert hub.bus is not None
        before = hub.bus.last_id
        pair.writer.mutate_sync(BOB, _claim(BOB, "src/early.py"), status=201)  # not through the serving hub
        await pair.start_server()
        try:
            await _claimed(hub, ALICE)
            for _ in range(500):
                if len(hub.bus.since(before) or []) >= 2:
                    break
                await asyncio.sleep(0.01)
            got = [(e["kind"], json.loads(e["payload"])["resource"]) for e in hub.bus.since(before) or []]
            assert got == [("lease.granted", "src/early.py"), ("lease.granted", "src/a.py")]
        finally:
            hub.stop_bus()
            await pair.stop_server()

    asyncio.run(main())


def test_a_stop_answers_every_call_the_writer_took_and_runs_none_it_did_not(store_factory: Callable[[], Store],
                                                                           tmp_path: Path) -> None:
    """Stopping the writer process while calls are under way: each call it answered 503 was not applied, and
    each one applied was answered as such (a stop lets the writer answer what it took, then closes)."""
    async def body(pair: Pair) -> None:
        hub = pair.serving
        calls_made = [asyncio.ensure_future(_claimed(hub, Actor(f"M/s{i}"), f"src/f{i}.py")) for i in range(300)]
        await asyncio.sleep(0)  # the calls are on the wire
        await pair.stop_server()
        results = await asyncio.gather(*calls_made, return_exceptions=True)
        held = {row["resource"] for row in await hub.query(lambda tx, now: leasequeries.live(tx, now, "p"))}
        for i, result in enumerate(results):
            if isinstance(result, Unavailable):
                assert f"src/f{i}.py" not in held, i  # told "unavailable", yet applied
            else:
                assert isinstance(result, Outcome) and result.status == 201, result
                assert f"src/f{i}.py" in held
        assert pair.link.calls > 0  # the writer process answered some: the stop found calls under way

    _run(store_factory, tmp_path, body)


def test_a_serving_process_that_stops_reading_never_holds_the_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer thread's sends never wait for the socket; a link whose reader stopped closes itself."""
    monkeypatch.setattr(writer_process, "SEND_SECONDS", 0.5)
    ours, theirs = socket.socketpair()
    link = writer_process._Link(ours)
    frame = encode(("events", 0, [{"id": 1, "pad": "x" * 65_536}]))
    done = threading.Event()

    def writer_thread() -> None:  # as the writer thread sends each batch's events
        for _ in range(200):  # 13 MB: far more than the socket holds
            link.send(frame, at_once=True)
        done.set()

    threading.Thread(target=writer_thread, daemon=True).start()
    assert done.wait(30), "the writer thread waited for a serving process that reads nothing"
    for _ in range(1000):  # the link's own thread gives up after SEND_SECONDS and closes it
        if link._closed:
            break
        time.sleep(0.01)
    assert link._closed
    ours.close()
    theirs.close()


def test_a_writer_that_answers_nothing_is_left_and_writes_run_here(store_factory: Callable[[], Store],
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer process that takes calls and answers none (stopped, wedged): after STALL_SECONDS the calls
    waiting fail 503, the link is dropped, and the next calls run on the serving hub's own writer."""
    monkeypatch.setattr(writer_process, "STALL_SECONDS", 0.5)

    def hello(n: int) -> Any:  # as a writer process that wedged after it took its first link: later ones it
        return ("hello", 4242, PROTOCOL) if n == 1 else None  # does not greet (never ready)

    async def main() -> None:
        path = tmp_path / "mute.sock"
        async with _fake_writer(path, hello) as swallowed, _linked(store_factory, path) as (hub, link):
            for _ in range(500):
                if link.ready:
                    break
                await asyncio.sleep(0.01)
            assert link.ready
            with pytest.raises(Unavailable):
                await asyncio.wait_for(_claimed(hub, ALICE), 30)
            assert swallowed and not link.ready
            here = await _claimed(hub, BOB, "src/b.py")
            assert here.status == 201 and link.calls == 0

    asyncio.run(main())


@asynccontextmanager
async def _fake_writer(path: Path, hello: Callable[[int], Any]) -> AsyncIterator[list[bytes]]:
    """A stand-in writer process on ``path`` that greets its n-th link with ``hello(n)`` (None: not at all), answers
    nothing, and keeps what it is sent (the list yielded)."""
    swallowed: list[bytes] = []
    accepted: list[asyncio.StreamWriter] = []
    handlers: list[asyncio.Task[Any]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        greeting = hello(len(accepted))
        if greeting is not None:
            writer.write(encode(greeting))
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65_536):
                swallowed.append(data)

    server = await asyncio.start_unix_server(serve, str(path))
    try:
        yield swallowed
    finally:
        server.close()
        for writer in accepted:
            writer.close()
        await asyncio.gather(*handlers, return_exceptions=True)
        for writer in accepted:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await server.wait_closed()


@asynccontextmanager
async def _linked(store_factory: Callable[[], Store], path: Path) -> AsyncIterator[tuple[Hub, WriterLink]]:
    """A serving hub whose remote writer is a link to ``path``, its bus started (so the link connects)."""
    hub = Hub(store_factory(), ManualClock())
    link = WriterLink(path)
    hub.remote = link
    await hub.start_bus()
    try:
        yield hub, link
    finally:
        hub.stop_bus()


def test_frames_carry_errors_whole_and_refuse_any_other_global() -> None:
    conflict = LeaseConflict("held", holder="M/alice", lease_id="x", expires_in_seconds=5.0)
    back = decode(encode(("error", 1, conflict))[4:])[2]
    assert type(back) is LeaseConflict and back.details == conflict.details and back.message == "held"
    assert isinstance(decode(encode(Unavailable("gone", retry_after=1))[4:]), Unavailable)
    stale = decode(encode(StaleIncarnation("old", incarnation=3))[4:])  # an error of another coordhub module
    assert type(stale) is StaleIncarnation and stale.details == {"incarnation": 3}
    call = Call.from_plain(decode(encode(_claim(ALICE).plain())[4:]))
    assert call.name == "leases.claim" and call.actor == ALICE and call.arguments["resource"] == "src/a.py"
    with pytest.raises(pickle.UnpicklingError, match="does not carry"):
        decode(pickle.dumps(ALICE))  # plain data only: the request carries the actor as its fields

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, ("true",))

    with pytest.raises(pickle.UnpicklingError, match="does not carry"):
        decode(pickle.dumps(Evil()))
    for other in (Evil(), ALICE, dt.date(2026, 12, 3), halt.Exempt.SEEN):  # refused as they are sent, too
        with pytest.raises(pickle.PicklingError, match="carries plain data"):
            encode({"body": [other]})
    with pytest.raises(KeyError):
        Call("leases.release_all", ALICE, session_id="M/alice")  # not a call that crosses


def test_a_call_runs_as_the_closure_it_names(hub: Hub) -> None:
    got = hub.mutate_sync(ALICE, _claim(ALICE), status=201)
    same = hub.query_sync(lambda tx, now: leasequeries.get(tx, got.body["id"], now))
    assert got.status == 201 and same["session_id"] == ALICE.session_id and same["resource"] == "src/a.py"


class _Recorder:
    """A remote writer that runs each call on the hub's own writer and notes its name: which routes hand over."""

    ready = True

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.names: list[str] = []
        self.on_batch: Callable[[int, float], None] | None = None

    def start(self, publish: Callable[[int, list[Any]], None]) -> None:
        pass  # the hub's own writer feeds the bus: the calls run there

    def stop(self) -> None:
        pass

    def as_dict(self) -> dict[str, Any]:
        return {"connected": True, "connections": 1, "calls": len(self.names), "pid": None}

    async def mutate(self, actor: Actor, call: Call, status: int, idem: IdempotentRequest | None,
                     during_halt: halt.Exempt | None, ahead: Ahead | None,
                     meter: automata.Meter | None = None) -> Outcome:
        self.names.append(call.name)
        done: Outcome = await self.hub.store.write(self.hub.unit_of_work(actor, call, status, idem, during_halt,
                                                                         ahead, meter))
        return done


def test_the_routes_hand_an_agents_writes_over_as_calls(hub: Hub) -> None:
    """Every route of the writes :data:`calls.OPERATIONS` names gives ``Hub.mutate`` a :class:`Call`, so that under
    ``--writer-process`` they run there (a route that went back to a closure would run on its own writer)."""
    recorder = _Recorder(hub)
    hub.remote = recorder
    admin = hub.mutate_sync(ADMIN, lambda tx, now: tokens.ensure_admin(tx, None, now)).body
    with TestClient(create_app(hub, sweep_seconds=0)) as client:
        def token(session: str) -> dict[str, str]:
            r = client.post("/api/coord/tokens", json={"name": session},
                            headers={"Authorization": f"Bearer {admin}"})
            assert r.status_code in (200, 201), r.text
            return {"Authorization": f"Bearer {r.json()['token']}"}

        alice, bob = token(ALICE.session_id), token(BOB.session_id)
        recorder.names.clear()

        def ok(method: str, path: str, who: dict[str, str], body: Any = None) -> Any:
            r = client.request(method, "/api/coord" + path, headers=who, json=body)
            assert r.status_code in (200, 201), (path, r.text)
            return r.json()

        inc = ok("POST", "/presence/register", alice, {"client": "claude-code"})["incarnation"]
        ok("POST", "/presence/heartbeat", alice, {"incarnation": inc})
        sent = ok("POST", "/messages", bob, {"to_session": ALICE.session_id, "subject": "s", "requires_ack": True})
        ok("POST", "/messages/unshown", alice, {"limit": 5})  # not a call: it marks shown what it answers
        ok("PUT", f"/messages/{sent['id']}/read", alice)
        ok("POST", f"/messages/{sent['id']}/ack", alice)
        lease = ok("POST", "/locks", alice, {"project_key": "p", "resource": "src/a.py", "ttl_hours": 1})
        ok("POST", f"/locks/{lease['id']}/renew", alice, {"ttl_hours": 2})
        ok("DELETE", f"/locks/{lease['id']}", alice)
        ok("GET", "/locks", {**alice, "X-Coord-Heartbeat": "1"})  # the CLI's in-band heartbeat
        ok("POST", "/presence/deregister", alice, {"incarnation": inc})
        for who, project in ((alice, "pa"), (bob, "pb")):  # declaring an address is no call
            ok("PUT", "/conversations/profile", who, {"machine": "m", "project": project})
        ok("POST", "/conversations/turns", bob, {"to": "m.pa", "conversation_id": "c-1", "type": "request",
                                                 "body": "please"})
    assert recorder.names == ["presence.register", "presence.heartbeat", "messages.send", "messages.mark_read",
                              "messages.ack", "leases.claim", "leases.renew", "leases.release", "presence.heartbeat",
                              "presence.deregister", "conversations.send"]
    assert set(recorder.names) | {"leases.revoke"} == set(calls.OPERATIONS)


def test_the_hooks_unshown_runs_here_and_the_ack_of_what_it_showed_there(store_factory: Callable[[], Store],
                                                                          tmp_path: Path) -> None:
    """Through the app with a real link: ``POST /messages/unshown`` (a message and a conversation turn) runs on the
    serving process's own writer, since it marks shown what it answers and the hooks never retry (an answer lost
    with the link would never be shown); the ack of what it showed goes to the writer process."""
    path = tmp_path / "writer.sock"
    stop = threading.Event()
    serving = threading.Thread(target=WriterServer(Hub(store_factory())).serve, args=(path, stop))
    serving.start()
    hub = Hub(store_factory())
    link = WriterLink(path)
    hub.remote = link
    admin = hub.mutate_sync(ADMIN, lambda tx, now: tokens.ensure_admin(tx, None, now)).body
    try:
        with TestClient(create_app(hub, sweep_seconds=0)) as client:
            def agent(session: str, machine: str, project: str) -> dict[str, str]:
                r = client.post("/api/coord/tokens", json={"name": session},
                                headers={"Authorization": f"Bearer {admin}"})
                who = {"Authorization": f"Bearer {r.json()['token']}"}
                r = client.put("/api/coord/conversations/profile", json={"machine": machine, "project": project},
                               headers=who)
                assert r.status_code == 200, r.text
                return who

            for _ in range(500):
                if link.ready:
                    break
                time.sleep(0.01)
            assert link.ready
            career, homelab = agent("ratio/career", "ratio", "career"), agent("velox/homelab", "velox", "homelab")
            r = client.post("/api/coord/conversations/turns", json={"to": "velox.homelab", "content": org()},
                            headers=career)
            assert r.status_code == 201, r.text
            sent = client.post("/api/coord/messages", json={"to_session": "velox/homelab", "subject": "hi"},
                               headers=career).json()
            before = link.calls
            r = client.post("/api/coord/messages/unshown", json={"limit": 5}, headers=homelab)
            assert r.status_code == 200, r.text
            assert link.calls == before and link.ready  # answered here
            shown = r.json()
            assert [m["id"] for m in shown["messages"]] == [sent["id"]]
            [turn] = shown["turns"]
            assert turn["conversation_id"] == "prep-fixup" and turn["pending"] is True
            r = client.post(f"/api/coord/messages/{sent['id']}/ack", headers=homelab)
            assert r.status_code == 200 and r.json()["acked_at"] and link.calls == before + 1
    finally:
        stop.set()
        serving.join()


def test_a_lost_answer_says_so_and_leaves_the_database_healthy(hub: Hub) -> None:
    """A write whose answer was lost with the link answers 503 with its own message (it may have been applied;
    retry with the key) and ``Retry-After: 1``, and ``/health`` stays connected: the database was never down."""
    class Lost(_Recorder):
        async def mutate(self, actor: Actor, call: Call, status: int, idem: IdempotentRequest | None,
                         during_halt: halt.Exempt | None, ahead: Ahead | None,
                         meter: automata.Meter | None = None) -> Outcome:
            raise WriterLost()

    hub.remote = Lost(hub)
    admin = hub.mutate_sync(ADMIN, lambda tx, now: tokens.ensure_admin(tx, None, now)).body
    with TestClient(create_app(hub, sweep_seconds=0)) as client:
        token = client.post("/api/coord/tokens", json={"name": ALICE.session_id},
                            headers={"Authorization": f"Bearer {admin}"}).json()["token"]
        r = client.post("/api/coord/messages", json={"to_session": BOB.session_id, "subject": "s"},
                        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k-1"})
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert r.json()["error"]["code"] == "database_unavailable"  # what seed 001's clients retry on
        assert "may or may not have been applied" in r.json()["error"]["message"]
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["database"] == "connected"


def _frame(sock: socket.socket) -> Any:
    """One frame read off a raw link (raises ``TimeoutError`` past the socket's timeout)."""
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    (size,) = struct.unpack("!I", exactly(4))
    return decode(exactly(size))


@contextlib.contextmanager
def _raw_links(store: Store, path: Path) -> Iterator[Callable[[], socket.socket]]:
    """A writer process's server on ``store`` listening at ``path`` (on a thread, stopped on exit); yields a
    function that opens one more raw link to it (5 s timeout; the caller reads its hello)."""
    stop = threading.Event()
    serving = threading.Thread(target=WriterServer(Hub(store)).serve, args=(path, stop))
    serving.start()
    opened: list[socket.socket] = []
    try:
        for _ in range(500):
            if path.exists():
                break
            time.sleep(0.01)

        def link() -> socket.socket:
            sock = socket.socket(socket.AF_UNIX)
            opened.append(sock)
            for _ in range(500):  # the path exists from its bind, a moment before the server listens
                try:
                    sock.connect(str(path))
                    break
                except ConnectionRefusedError:
                    time.sleep(0.01)
            else:
                sock.connect(str(path))
            sock.settimeout(5)
            return sock

        yield link
    finally:
        for sock in opened:
            sock.close()
        stop.set()
        serving.join()


def test_batches_are_reported_only_to_serving_processes_that_said_they_read_them(
        store_factory: Callable[[], Store], tmp_path: Path) -> None:
    """A serving process of before this version (it sends no hello) gets answers and events as it always did and
    no ``batches`` frame, which it would take for the answer of a call; one that says its version gets them."""
    with _raw_links(store_factory(), tmp_path / "writer.sock") as link:
        with link() as sock:
            hello = _frame(sock)
            assert hello[0] == "hello" and hello[2] == PROTOCOL and hello[1] == os.getpid()

            def call(ident: int, resource: str) -> list[Any]:
                sock.sendall(encode((ident, _claim(ALICE, resource).plain(), 201, None, None, None)))
                frames = []
                while True:
                    got = _frame(sock)
                    frames.append(got)
                    if got[0] == "ok":
                        assert got[1] == ident
                        return frames

            assert [f[0] for f in call(1, "src/a.py")] == ["events", "ok"]
            time.sleep(10 * writer_process.REPORT_SECONDS)  # reports went out meanwhile, to those that read them
            assert [f[0] for f in call(2, "src/b.py")] == ["events", "ok"]  # none here: it said no version
            sock.sendall(encode(("hello", PROTOCOL)))
            # the report of call 3's batch: among its own frames when the once-a-second report fell between the
            # batch's commit and its answer (a CI run waited 30 s for a second report that never came: no batch
            # followed), else the next frame; allow for a busy machine (CI runs waited past 2 s, once past 10 s)
            reports = [f for f in call(3, "src/c.py") if f[0] == "batches"]
            if not reports:
                sock.settimeout(30 * writer_process.REPORT_SECONDS)
                reports = [_frame(sock)]
            assert reports[0][0] == "batches" and sum(units for units, _ in reports[0][1]) >= 1


def test_a_call_it_cannot_read_is_answered_and_a_frame_without_an_id_closes_only_its_link(
        store_factory: Callable[[], Store], tmp_path: Path) -> None:
    """A call whose parts do not fit (a serving process of another version: here its rows to read ahead too
    short) is answered ``bug`` and the link goes on; a frame with no call id cannot be answered, so its link is
    closed (logged), and another link is served as before."""
    with _raw_links(store_factory(), tmp_path / "writer.sock") as link:
        with link() as sock:
            assert _frame(sock)[0] == "hello"
            sock.sendall(encode((7, _claim(ALICE, "src/a.py").plain(), 201, None, None, ((),))))
            bug = _frame(sock)
            assert bug[0] == "bug" and bug[1] == 7 and "IndexError" in bug[2]
            sock.sendall(encode((8, _claim(ALICE, "src/b.py").plain(), 201, None, None, None)))
            assert [f[0] for f in (_frame(sock), _frame(sock))] == ["events", "ok"]  # the link went on
            sock.sendall(encode(()))
            with pytest.raises(ConnectionError):
                _frame(sock)
        with link() as other:
            assert _frame(other)[0] == "hello"
            other.sendall(encode((9, _claim(ALICE, "src/c.py").plain(), 201, None, None, None)))
            assert [f[0] for f in (_frame(other), _frame(other))] == ["events", "ok"]


def test_a_writer_process_of_another_version_is_not_sent_calls(store_factory: Callable[[], Store], tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """A writer process that greets in another version of the link (one of before versions says none) is left,
    with one warning: the calls run on the serving hub's own writer."""
    async def main() -> None:
        path = tmp_path / "old.sock"
        async with _fake_writer(path, lambda n: ("hello",)) as swallowed, \
                _linked(store_factory, path) as (hub, link):
            for _ in range(100):
                if swallowed:  # the link said its own hello: it is connected, and has been greeted
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            assert not link.ready and link.pid is None
            here = await _claimed(hub, ALICE)
            assert here.status == 201 and link.calls == 0

    with caplog.at_level(logging.WARNING, logger="coordhub"):
        asyncio.run(main())
    assert [r.message for r in caplog.records].count(
        f"the writer process speaks version None of the link, not {PROTOCOL} (an upgrade under way?); writes run here "
        "until one that speaks it starts") == 1



def test_a_link_accepted_as_the_writer_process_stops_is_not_greeted_nor_waited_for(hub: Hub) -> None:
    """A connection the server accepts in its last turn, after the stop walked the links to shut their reading
    (the race is not reproducible on demand, so the link's thread is run as the server would run it, with the
    stop under way): it is sent no hello and its thread ends at once, though its peer never closes. Before,
    it said hello and read until the peer closed, and the stop's ``server_close`` waited for it."""
    server = WriterServer(hub)
    server._stopping = True
    mine, peer = socket.socketpair()
    with mine, peer:
        peer.settimeout(5)
        serving = threading.Thread(target=server._serve_link, args=(mine,), daemon=True)
        serving.start()
        serving.join(5)
        assert not serving.is_alive()
        assert peer.recv(64) == b""  # the link closed without a word
        assert not server.links


def test_a_link_closed_while_its_thread_waits_to_send_ends_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    """The link's thread, woken by a frame, waits for the send lock while the link is finished and its socket
    closed by its owner (socketserver, after the handler): it ends without sending. It raised ``ValueError``
    (``poll`` of fd -1) in the thread, once in a full run."""
    raised: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    ours, theirs = socket.socketpair()
    link = writer_process._Link(ours)
    with link._sending:  # as finish() holds it while it sends the rest
        link.send(b"frame")  # wakes the link's thread, which then waits for the lock
        for _ in range(500):
            if not link._outbox:  # it took nothing yet: the frame is queued until it holds the lock
                break
            time.sleep(0.002)
        time.sleep(0.05)
        link.close()
        ours.close()
    link._sender.join(5)
    assert not link._sender.is_alive()
    assert raised == []
    theirs.close()
