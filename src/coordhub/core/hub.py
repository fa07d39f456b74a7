"""The core's one entry point for front ends.

Front ends (HTTP, MCP, tests) hand the hub an *operation*: a function
``op(tx, now) -> body`` built from the core modules. The hub wraps it in the
rules every mutation shares and runs the lot as one unit of work (one
transaction):

1. an ``Idempotency-Key`` seen before returns its first response, untouched;
2. while a halt covers the acting session (the fleet's, or one of its
   machine or project), or the session is paused after a resume, the
   mutation is refused with 423 unless it names its row of
   :class:`coordhub.core.halt.Exempt` (``during_halt``); a lease claim or renewal in
   a halted project is refused whoever makes it (:func:`coordhub.core.halt.for_work`);
3. the acting session is recorded as seen (under its first spelling; an
   actor spelled otherwise lost a race to name a new session first: 409, retry);
4. the operation runs with ``now`` read from the hub's clock *inside* the
   transaction, so expiry decisions use the time the write is applied;
5. the response is stored under the idempotency key.

Rules 2 and 3 cost two statements: one reads every standing halt (usually
none; once per write batch), and the statement that records the session as
seen returns what the scope and pause checks need (declared machine and
project, pause). On PostgreSQL that statement travels with the operation's
first one (``Executor.expect``), and the checks run before its answer is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeVar

from coordhub.clock import Clock, SystemClock
from coordhub.core import halt, idempotency, leases, messages, pause, tokens
from coordhub.core.automata import Meter
from coordhub.core.bus import RING_BYTES, EventBus
from coordhub.core.calls import Call
from coordhub.core.idempotency import IdempotentRequest
from coordhub.core.identity import Actor
from coordhub.core.retention import StreamCursors
from coordhub.errors import Conflict, Unauthorized
from coordhub.store.base import Ahead, ReadsAhead, Row, Store
from coordhub.store.tx import Tx

T = TypeVar("T")
Operation = Callable[[Tx, float], Any]


class WithStatus(NamedTuple):
    """What an operation returns when its HTTP status depends on what it did (e.g. 201 new, 200 a duplicate)."""

    status: int
    body: Any


class Outcome(NamedTuple):
    """A mutation's answer: HTTP status, JSON body, and whether it was an idempotent replay."""

    status: int
    body: Any
    replayed: bool = False


class RemoteWriter(Protocol):
    """A writer in another process that runs :class:`~coordhub.core.calls.Call` mutations for this hub.

    Implemented by :class:`coordhub.writer_process.WriterLink`. While not
    :attr:`ready` (not yet connected, or its process restarting), calls run on
    this hub's own writer: both take the database's writer lock, so either way
    the writes are serialised.
    """

    #: Called with each of its batches (units, seconds its commit took), as the store's batch observer is.
    on_batch: Callable[[int, float], None] | None

    @property
    def ready(self) -> bool:
        """True while connected: calls go there."""

    def start(self, publish: Callable[[int, list[Row]], None]) -> None:
        """Connect (and reconnect) from the running loop; hand the events it commits to ``publish(after, rows)``
        (:meth:`Hub.feed_commits`)."""

    def stop(self) -> None:
        """Disconnect; calls run locally from now on."""

    def as_dict(self) -> dict[str, Any]:
        """``connected``, ``connections`` made, ``calls`` answered, its ``pid`` (for ``/health``)."""

    async def mutate(self, actor: Actor, call: Call, status: int, idem: IdempotentRequest | None,
                     during_halt: halt.Exempt | None, ahead: Ahead | None, meter: Meter | None = None) -> Outcome:
        """Run :meth:`Hub.mutate` there; raise what it raised, ``Unavailable`` when the link broke meanwhile.

        Adds the overlap steps the call spent there to ``meter``, whether it succeeded or raised."""


class Hub:
    """Runs operations against a store on a clock; see the module docstring for the rules."""

    def __init__(self, store: Store, clock: Clock | None = None, *, escalation_session: str | None = None,
                 stale_after_hours: float = leases.STALE_AFTER_HOURS) -> None:
        self.store = store
        # A store whose database keeps the time (PostgreSQL) lends its clock, so hubs sharing it cannot disagree.
        self.clock: Clock = clock or store.clock or SystemClock()
        self.escalation_session = escalation_session
        #: Holder inactivity after which a no-expiry lease may be taken over (seed 001; 0 = never).
        self.stale_after_hours = leases.check_stale_after(stale_after_hours)
        self.bus: EventBus | None = None
        self.listener: Any = None  # the store's announcement listener while the bus runs (None: SQLite)
        self._following: asyncio.Future[None] | None = None
        #: Called with ("local" | "remote", seconds from an event's write time to its publication here): metrics.
        self.lag_observer: Callable[[str, float], None] | None = None
        self._follow_again = False
        self.hub_id: str | None = None  # read from the store (hub_meta) by the first /health or at start
        #: Positions of the event streams open on this process: the pruner keeps what they still need.
        self.stream_cursors = StreamCursors()
        #: The writer process a :class:`~coordhub.core.calls.Call` goes to while it is ready (``--workers``).
        self.remote: RemoteWriter | None = None

    async def known_id(self) -> str | None:
        """This hub's id (``hub_meta``), read from the store the first time and kept (``coord serve`` reads it at
        start; an app built in-process does not). Raises what :meth:`query` raises (``Unavailable``)."""
        if self.hub_id is None:
            self.hub_id = await self.query(lambda tx, now: tx.meta.get("hub_id"))
        return self.hub_id

    async def start_bus(self, ring_bytes: int = RING_BYTES) -> EventBus:
        """Create the event bus (its ring holding about ``ring_bytes``) and feed it from every commit.

        Two feeds: this process's own commits (the writer's after-commit
        hook), and, on a store shared by several hub processes, the others'
        commits as the store announces them (PostgreSQL ``LISTEN``/``NOTIFY``,
        :mod:`coordhub.store.announce`): an announcement makes the hub read the
        log after its cursor. :meth:`follow_log` on a timer
        (:meth:`follow_interval`) is the fallback. With a :attr:`remote`
        writer, a third: the events its batches committed, which it sends
        before their answers. Call from the serving event loop.
        """
        loop = asyncio.get_running_loop()
        first = await self.query(lambda tx, now: tx.events.last_id())
        bus = EventBus(first, max_bytes=ring_bytes)
        self.feed_commits(first, lambda _after, rows: loop.call_soon_threadsafe(self._publish, rows, "local"))

        def announced(origin: str | None, high_water: int | None) -> None:  # on the listening thread
            if origin is not None and origin == self.store.origin:
                return  # our own commit: the feed above has it already
            try:
                loop.call_soon_threadsafe(self._announced, high_water)
            except RuntimeError:  # the serving loop closed before the listener stopped: nobody is left to tell
                if not loop.is_closed():
                    raise

        self.bus = bus
        self.listener = self.store.listen(announced)
        if self.remote is not None:
            self.remote.start(self._publish_remote)
        return bus

    def _publish_remote(self, after_id: int, rows: list[Row]) -> None:
        """Publish what the remote writer committed: the events after ``after_id``.

        Only when the bus holds ``after_id`` already: else events between
        (committed here or by other processes while the writer process was
        starting) are not yet published, and publishing these first would skip
        them. Then the log is read in order instead, from the bus's last id.
        """
        bus = self.bus
        if bus is None:
            return
        if after_id > bus.last_id:
            self._announced(None)
            return
        self._publish(rows, "local")

    def feed_commits(self, after_id: int, deliver: Callable[[int, list[Row]], object]) -> None:
        """Call ``deliver(after, rows)`` on the writer thread after each commit with the events logged since.

        ``rows``: every event with id > ``after``, ascending and without gaps
        (read in the batch's own transaction, under the writer lock, so other
        processes' earlier commits are among them); ``after`` is ``after_id``
        the first time, then the last id delivered. ``deliver`` must not block.
        """
        fed = [after_id]
        committed: list[list[Row]] = []  # what read() found in the batch, once it committed

        def read(tx: Tx) -> None:  # in the batch's transaction: its events come back with the COMMIT
            committed.clear()
            tx.events.after_then(fed[0], 10_000, committed.append)

        def feed(tx: Tx) -> None:
            rows = committed.pop() if committed else tx.events.after(fed[0], 10_000)
            if rows:
                after, fed[0] = fed[0], rows[-1]["id"]
                deliver(after, rows)

        self.store.set_after_commit(feed, read)

    def stop_bus(self) -> None:
        """Stop feeding the bus (and stop listening for other processes' commits, and the remote writer)."""
        self.store.set_after_commit(None)
        if self.remote is not None:
            self.remote.stop()
        if self.listener is not None:
            self.listener.stop()
            self.listener = None

    def _publish(self, rows: list[Row], source: str) -> None:
        """Publish on the bus; report the newest new event's lag (write time → now) as ``local`` or ``remote``."""
        assert self.bus is not None
        fresh = self.bus.publish(rows)
        observe = self.lag_observer
        if fresh and observe is not None:
            observe(source, self.clock.now() - float(fresh[-1]["created_at"]))

    def follow_interval(self) -> float:
        """Seconds between fallback polls of the log: 1 without announcements, 10 (a safety net) with them."""
        listener = self.listener
        return 10.0 if listener is not None and listener.state.connected else 1.0

    def _announced(self, high_water: int | None) -> None:
        """Another process committed up to ``high_water`` (None: unknown, catch up): read the log (coalesced)."""
        bus = self.bus
        if bus is None or (high_water is not None and high_water <= bus.last_id):
            return
        if self._following is not None and not self._following.done():
            self._follow_again = True  # the running read goes round once more
            return
        self._following = asyncio.ensure_future(self._follow_announced())

    async def _follow_announced(self) -> None:
        while True:
            self._follow_again = False
            try:
                await self.follow_log()
            except Exception:  # the database went away: the fallback poll and the next announcement retry
                return
            if not self._follow_again:
                return

    async def follow_log(self) -> None:
        """Publish events committed by other hub processes sharing the database (every batch up to the log's end)."""
        bus = self.bus
        assert bus is not None
        while True:
            rows = await self.query(lambda tx, now: tx.events.after(bus.last_id, 10_000))
            self._publish(rows, "remote")
            if len(rows) < 10_000:
                return

    def _unit(self, actor: Actor, op: Operation, status: int, idem: IdempotentRequest | None,
              during_halt: halt.Exempt | None, meter: Meter | None = None) -> Callable[[Tx], Outcome]:
        def unit(tx: Tx) -> Outcome:
            now = self.clock.now()
            if idem is not None:
                stored = idempotency.replay(tx, actor.session_id, idem)
                if stored is not None:
                    if actor.token_epoch is not None:
                        # A replay writes nothing, but its answer is still the session's: not for a token
                        # revoked since (read only for replays; a first run compares it in `check` below).
                        acting = tx.sessions.get(actor.session_id)
                        if acting is not None and acting["token_epoch"] > actor.token_epoch:
                            raise Unauthorized(tokens.REVOKED)
                    return Outcome(*stored, replayed=True)
            halts = halt.standing(tx) if during_halt is None else []
            halt.refuse_fleet(halts)
            if halts and isinstance(op, Call):
                _refuse_work_in_halted_project(tx, op, halts)

            def check(acting: Row) -> None:
                _admit(actor, acting, halts, during_halt)

            # The check may run only when the operation's first statement comes back (PostgreSQL: one round trip
            # for both); it still decides first, and what the operation did meanwhile is rolled back with it.
            seen = tx.sessions.act_then(actor.session_id, now, check)
            if meter is None:
                body = op(tx, now)
            else:
                meter.steps = 0  # a batch run again without a lost unit runs this again: its caller pays one run
                with meter:
                    body = op(tx, now)
            code = status
            if isinstance(body, WithStatus):
                code, body = body
            if idem is not None:
                idempotency.remember(tx, actor.session_id, idem, code, body, now)
            if seen is not None:  # the sender's last_seen, written once nothing can refuse the unit any more
                seen()
            return Outcome(code, body)

        return unit

    async def mutate(self, actor: Actor, op: Operation, *, status: int = 200,
                     idem: IdempotentRequest | None = None, during_halt: halt.Exempt | None = None,
                     ahead: Ahead | Callable[[], Ahead] | None = None, meter: Meter | None = None) -> Outcome:
        """Run a mutation as ``actor``; return its :class:`Outcome`.

        ``meter`` gets the overlap steps the operation spent (:class:`~coordhub.core.automata.Meter`), also when
        it raises: for a front end that charges a request by its work.

        ``ahead``: rows the operation will look up, such as a send's recipient,
        the lease a release ends or the leases a claim could collide with; the store may read them ahead
        (:class:`~coordhub.store.base.ReadsAhead`). A callable is called only by a store that reads ahead
        (``Store.reads_ahead``): what costs work to name (a claim's parsed scan) costs nothing on SQLite.
        Such a store is also given the actor's session (its row answers the check every write makes).

        Raises the ``CoordError`` the operation raised (nothing of it is
        kept), ``Halted`` while a halt covers the actor and ``Paused`` while
        it is paused (unless ``during_halt`` names the exemption this write
        falls under), ``IdempotencyKeyReused`` for a key
        reused with another request, ``Unavailable`` when the database is down.
        """
        remote = self.remote
        if remote is not None and remote.ready and isinstance(op, Call) and op.actor == actor:
            named = None if ahead is None or not self.store.reads_ahead else ahead if isinstance(ahead, Ahead) \
                else ahead()
            return await remote.mutate(actor, op, status, idem, during_halt, named, meter)
        result: Outcome = await self.store.write(self.unit_of_work(actor, op, status, idem, during_halt, ahead,
                                                                   meter))
        return result

    def unit_of_work(self, actor: Actor, op: Operation, status: int, idem: IdempotentRequest | None,
                     during_halt: halt.Exempt | None, ahead: Ahead | Callable[[], Ahead] | None,
                    meter: Meter | None = None) -> Callable[[Tx], Any]:
        """What :meth:`mutate` hands the store's writer: ``op`` under the rules, returning an :class:`Outcome`
        (its overlap steps added to ``meter``).

        For a store that reads ahead, wrapped in :class:`ReadsAhead` with the
        rows ``ahead`` names plus the actor's session.
        """
        unit = self._unit(actor, op, status, idem, during_halt, meter)
        if not self.store.reads_ahead:
            return unit
        # The sender is named too: its row read ahead answers the check every write makes (Sessions.act_then).
        named = Ahead() if ahead is None else ahead if isinstance(ahead, Ahead) else ahead()
        return ReadsAhead(unit, named._replace(sessions=(actor.session_id, *named.sessions)))

    def screen(self, tx: Tx, actor: Actor, idem: IdempotentRequest | None = None,
               during_halt: halt.Exempt | None = None) -> bool:
        """Raise what the rules of a mutation (the module docstring) would refuse it with now; read only.

        False when an idempotent replay would answer it (its operation would not run), True otherwise. For a
        front end's checks before costly work the operation needs (a signed turn's ``gpg``): the mutation
        still applies the rules itself.
        """
        if idem is not None and idempotency.replay(tx, actor.session_id, idem) is not None:
            return False
        halts = halt.standing(tx) if during_halt is None else []
        halt.refuse_fleet(halts)
        acting = tx.sessions.get(actor.session_id)
        if acting is not None:  # a session the hub has not seen has nothing to refuse it
            _admit(actor, acting, halts, during_halt)
        return True

    def mutate_sync(self, actor: Actor, op: Operation, *, status: int = 200,
                    idem: IdempotentRequest | None = None, during_halt: halt.Exempt | None = None) -> Outcome:
        """Blocking form of :meth:`mutate`."""
        return self.store.write_sync(self._unit(actor, op, status, idem, during_halt))

    async def query(self, op: Callable[[Tx, float], T]) -> T:
        """Run a read-only operation on a consistent snapshot."""
        return await self.store.read(lambda tx: op(tx, self.clock.now()))

    async def query_off_loop(self, op: Callable[[Tx, float], T], meter: Meter | None = None) -> T:
        """Like :meth:`query`, but always on a reader thread: for reads that may be large or slow.

        A backend may run :meth:`query` on the event loop itself (SQLite does,
        as its small indexed reads are cheaper than a thread hop); a catch-up
        page of the event log is not small, and must not stall other requests.
        Overlap checks of a resource against live leases go here too: their
        cost depends on the request, and even bounded they must not hold up
        every other request the loop serves (issue 8). ``meter`` gets their steps, as :meth:`mutate`'s does.
        """
        def run(tx: Tx) -> T:
            if meter is None:
                return op(tx, self.clock.now())
            with meter:
                return op(tx, self.clock.now())

        return await asyncio.wrap_future(self.store.submit_read(run))

    def query_sync(self, op: Callable[[Tx, float], T]) -> T:
        """Blocking form of :meth:`query`."""
        return self.store.read_sync(lambda tx: op(tx, self.clock.now()))

    def _sweep_unit(self, tx: Tx) -> dict[str, int]:
        now = self.clock.now()
        return {"expired_leases": leases.expire_due(tx, now),
                **messages.process_ack_deadlines(tx, now, self.escalation_session)}

    async def sweep(self) -> dict[str, int]:
        """Record expired leases, redeliver or dead-letter unacked messages (old records go to the pruner).

        Returns the counts (``expired_leases``, ``redelivered``, ``dead_lettered``).
        """
        return await self.store.write(self._sweep_unit)

    def sweep_sync(self) -> dict[str, int]:
        """Blocking form of :meth:`sweep`."""
        return self.store.write_sync(self._sweep_unit)


def _refuse_work_in_halted_project(tx: Tx, op: Call, halts: list[Row]) -> None:
    """Refuse a lease claim or renewal in a project a standing halt names, whoever makes it
    (:func:`coordhub.core.halt.refuse_work_in`): it starts or extends work there. A renewal's project is its
    lease's (read only while a halt stands; an unknown lease is left to the renewal's own 404)."""
    if op.name == "leases.claim":
        halt.refuse_work_in(halts, op.arguments["project_key"])
    elif op.name == "leases.renew" and any(r["scope"].startswith("project:") for r in halts):
        row = tx.leases.get(op.arguments["lease_id"])
        if row is not None:
            halt.refuse_work_in(halts, row["project_key"])


def _admit(actor: Actor, acting: Row, halts: list[Row], during_halt: halt.Exempt | None) -> None:
    """Refuse a mutation by ``actor`` (whose session row is ``acting``) under rules 2 and 3 of the module docstring."""
    spelling = acting["session_id"]
    if spelling != actor.session_id:
        raise Conflict(f"session {actor.session_id!r} is already known as {spelling!r} (ids compare "
                       "case-insensitively); retry the request", session_id=spelling)
    if actor.token_epoch is not None and acting["token_epoch"] > actor.token_epoch:
        # Its tokens were revoked since this one was authenticated, perhaps through another process
        # whose revocation this one's token cache has not heard of yet (Tokens.revoke).
        raise Unauthorized(tokens.REVOKED)
    if during_halt is None:
        halt.refuse_in_scope(halts, spelling, acting)
        pause.refuse_if_paused(spelling, acting)
