"""One-pass fan-out of committed events to the live SSE streams (issue 15, "fan-out in one pass").

Each open ``GET /api/coord/events`` stream is a :class:`Subscriber` held by
the app's :class:`Fanout`. The fan-out is an event-bus listener: on every
publish it makes **one loop over the subscribers**, and for each one that is
live it filters the new events and writes their SSE frames (each rendered once
per event, shared by every subscriber, see :func:`cached`) to the connection
itself (:meth:`Subscriber.write_now`): straight to the transport through the
stream's :class:`~coordhub.api.wire.Wire` when it has one (uvicorn), else by
running the ASGI ``send`` one step. No task wakes, and no task, timer or queue object is made, per subscriber per
event (the former design had each stream wait on the bus with
``asyncio.wait_for``: a task and a timer per subscriber per event, about 40 µs
of hub CPU per subscriber per event). When the socket is backed up (the
transport paused writing) the wire writes nothing and the frames are queued
for the stream's task, which sends them the ASGI way, waiting for the socket;
an ASGI send that must wait finishes as a task, and the stream's own task
takes over until it is done. Frames that arrive meanwhile are queued for it,
in order.
Keep-alive pings come from one timer for all streams (:meth:`Fanout.tick`).

Streams end with their credentials (review: they outlived sign-out and
revocation, being authenticated once, at open). Each subscriber may name the
session whose token authenticated it and the web session that did; :meth:`Fanout.publish_soon`, called by the bus with
every publish's rows in every hub process, looks for ``token.revoked`` (which
names the session: every token of it is revoked) and ``web.signed_out``
(which carries the web session's key,
:func:`coordhub.core.websessions.key`) and ends the subscribers indexed under
them at once, before the publish's pass: a look at each new row's kind and a
dict lookup, never a cost per subscriber per event. And every subscriber has
a deadline (``until``): the ping timer ends it past that, so a client
reconnects (with ``Last-Event-ID``) and authenticates again; that bounds what
no event announces (a web session's expiry or pruning). An ended subscriber
is marked ``dead`` (the fan-out writes nothing more to it) and ``ended`` (its
stream's task ends the response cleanly).

A subscriber is in one of two modes:

* **live**: the fan-out writes its frames while its stream's task is parked
  with nothing to send, and queues them for that task otherwise (a write in
  flight, a ping due); only one of the two writes at a time, so order holds.
* **behind** (catch-up): nothing is queued for it; its stream reads the log
  itself by its cursor, from the bus's in-memory ring or else from the store,
  and turns live once it has reached the ring's newest event. Every stream
  starts behind (it may resume from ``Last-Event-ID``), and a live one whose
  queue passes :data:`LIVE_FRAMES` frames or :data:`LIVE_BYTES` bytes (its
  client reads slower than events arrive) is dropped back to behind: its queue
  is discarded and its cursor set back to the last frame it was handed, so
  memory per subscriber stays bounded and the frames come again from the log.

Why every subscriber sees every event exactly once, in order: ``sent`` is the
id of the last event the stream has handed to the connection (or skipped by
its filter); ``queued`` (live mode) the id of the last event the fan-out has
considered for it. Both only move forward, and everything happens on the
event loop's thread: the switch to live happens with no ``await`` between the
read that found nothing newer than ``sent`` in the ring and setting
``queued = sent``, so no publish falls between them; a drop back to behind
sets ``queued = sent`` and the catch-up reads strictly after ``sent``. A
direct write moves ``sent`` to ``queued`` only once the frames are handed to
the transport or to ``send``; frames a backed-up wire refused stay queued.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from starlette.types import Send

from coordhub.api import eager, wire
from coordhub.core import events
from coordhub.core.identity import fold
from coordhub.store.base import Row

log = logging.getLogger("coordhub.bus")

LIVE_FRAMES = 1000  # frames queued for one live subscriber before it drops to catch-up
LIVE_BYTES = 1024 * 1024  # bytes of frames queued for one live subscriber before it drops to catch-up
FRAME_KEY = "_sse"  # the ring row's cached frame (rendered once per event)
PING = b": ping\n\n"  # the keep-alive comment
REVOKED, SIGNED_OUT, LIFETIME = "revoked", "signed_out", "lifetime"  # why the hub ended a stream (Subscriber.ended)


def cached(row: Row, render: Callable[[Row], bytes]) -> bytes:
    """``render(row)``, computed once per row and kept on it under :data:`FRAME_KEY` (the ring's rows are shared)."""
    data: bytes | None = row.get(FRAME_KEY)
    if data is None:
        data = row[FRAME_KEY] = render(row)
    return data


class Subscriber:
    """One open event stream's place in the fan-out. Use from the event loop's thread only.

    ``keep(row)`` is its filter (visibility and the stream's query filters);
    when it is an :class:`~coordhub.core.events.Filter`, ``asked`` is its
    shared part (the fan-out decides once per distinct ``asked`` for a
    public event), else None. ``sent`` is its cursor (event id, see the
    module docstring).
    """

    __slots__ = ("keep", "asked", "sent", "queued", "frames", "size", "behind", "ping", "idle_since", "_waiter", "send",
                 "wire", "parked", "inflight", "dead", "ended", "until", "owner", "checkpoints")

    def __init__(self, keep: Callable[[Row], bool], cursor: int, send: Send | None = None,
                 wire: wire.Wire | None = None, checkpoints: bool = False) -> None:
        self.keep = keep
        self.asked = keep.asked if isinstance(keep, events.Filter) else None
        self.send = send  # the connection's ASGI send, for direct writes; None: the stream's task sends everything
        self.wire = wire  # the connection's transport, for direct writes past the ASGI send chain (preferred)
        self.parked = False  # the stream's task waits with nothing to send: the fan-out may write for it
        self.inflight: asyncio.Future[None] | None = None  # a direct write that had to wait for the socket
        self.dead = False  # the connection failed a direct write
        self.sent = cursor
        self.queued = cursor
        self.frames: list[bytes] = []
        self.size = 0
        self.behind = True
        self.ping = False  # the ping timer asks the stream for a keep-alive comment
        self.idle_since = time.monotonic()
        self._waiter: asyncio.Future[None] | None = None
        self.ended: str | None = None  # why the hub ended this stream (REVOKED, SIGNED_OUT, LIFETIME); None: it did not
        self.until = math.inf  # monotonic deadline: the ping timer ends the stream past it
        self.owner: tuple[str | None, str | None] = (None, None)  # (folded session name, web key): Fanout's indexes
        self.checkpoints = checkpoints  # its client asked for checkpoint frames (keepalive)

    def keepalive(self) -> bytes:
        """The keep-alive frame to write now: :data:`PING`, and for a stream that asked for checkpoints also
        ``id: SENT`` (no data: no event, per the SSE spec, but the id a reconnect resumes after).

        ``sent`` counts the events the filter skipped too, and every frame up to it was handed to the connection
        before this one (one writer at a time), so a narrow filter's resume point advances with each ping while
        live, not only with the events it keeps. Formatted once per ping (every ``ping_seconds`` of quiet), never
        per event.
        """
        if not self.checkpoints or self.frames or self.behind:  # an event before ``sent`` still waits to be written
            return PING
        return b": ping\nid: %d\n\n" % self.sent

    def end(self, why: str) -> None:
        """End this stream: the fan-out writes nothing more to it, and its task ends the response (``ended``)."""
        if self.ended is None:
            self.ended = why
        self.dead = True
        self.wake()

    def wake(self) -> None:
        """Resume the stream if it is waiting (cheap when it is not)."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        """Parked until the stream's task has something to do: frames queued, behind, a ping, a write to finish.

        While parked, the fan-out writes this stream's frames itself (:meth:`offer`).
        """
        if self.frames or self.ping or self.behind or self.inflight is not None or self.dead:
            return
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        self.parked = True
        try:
            await waiter
        finally:
            self.parked = False
            self._waiter = None

    def can_write_now(self) -> bool:
        """Whether the fan-out may write for this stream now: parked, nothing in flight, a way to write, alive."""
        return self.parked and self.inflight is None and not self.dead and (
            self.wire is not None or self.send is not None)

    def write_now(self, data: bytes) -> bool:
        """Hand ``data`` to the connection from the fan-out's loop, without waking the stream's task.

        With a wire (:mod:`coordhub.api.wire`), one chunk straight to the
        transport, unless the socket is backed up (False: nothing written,
        the caller leaves ``data`` for the stream's task) or the connection is
        gone (False, and the stream ends). Without one, runs the ASGI ``send``
        one step (:mod:`coordhub.api.eager`): uvicorn writes to the transport at
        once unless the socket's buffer is full (flow control); then the rest
        of that send runs as a task (``inflight``) and the stream's task is
        woken to wait for it before it sends anything else. Returns whether
        ``data`` was handed over. Call only when :meth:`can_write_now`.
        """
        if self.wire is not None:
            done = self.wire.write(wire.chunk(data))
            if done == wire.OPEN:
                self.idle_since = time.monotonic()
                return True
            if done == wire.GONE:
                self.dead = True
            self.wake()  # backed up: the stream's task sends what is queued, waiting for the socket
            return False
        assert self.send is not None
        try:
            done_now, _, pending = eager.start(self.send({"type": "http.response.body", "body": data,
                                                          "more_body": True}))
        except Exception:  # the connection failed: the stream's task ends the stream
            self.dead = True
            self.wake()
            return False
        if done_now:
            self.idle_since = time.monotonic()
            return True
        assert pending is not None
        self.inflight = asyncio.ensure_future(eager.finish(pending))
        self.wake()
        return True

    def go_live(self) -> None:
        """Switch to live mode; call only with ``sent`` at the bus's newest event and no ``await`` since reading it."""
        self.behind = False
        self.queued = self.sent

    def take(self) -> list[bytes]:
        """The queued frames (oldest first), now counted as sent."""
        frames = self.frames
        if frames:
            self.frames, self.size = [], 0
        self.sent = self.queued
        return frames

    def offer(self, rows: list[Row], frame: Callable[[Row], bytes]) -> bool:
        """Queue the frames (``frame(row)``) of the ``rows`` (new events, ascending ids) this subscriber keeps.

        Returns True when this dropped the subscriber to catch-up (its queue passed its bound).
        """
        if self.behind:
            self.wake()  # its stream reads the log itself
            return False
        frames = self.frames
        size = self.size
        queued = self.queued
        for row in rows:
            if row["id"] > queued and self.keep(row):
                data = frame(row)
                frames.append(data)
                size += len(data)
        if rows[-1]["id"] > queued:
            self.queued = rows[-1]["id"]
        if len(frames) > LIVE_FRAMES or size > LIVE_BYTES:  # a slow reader: back to reading the log by cursor
            self.frames, self.size, self.queued, self.behind = [], 0, self.sent, True
            self.wake()
            return True
        self.size = size
        if self.can_write_now():
            # the common case: write now, in this loop over subscribers; no task wakes for it
            if not frames or self.write_now(frames[0] if len(frames) == 1 else b"".join(frames)):
                self.frames, self.size = [], 0
                self.sent = self.queued
            return False
        if frames:
            self.wake()
        return False


class Fanout:
    """The live streams of one app, fed by the event bus in one pass per publish (see the module docstring).

    ``render(row)`` makes an event's SSE frame (bytes); the fan-out caches it
    on the row under :data:`FRAME_KEY` so it is rendered once per event.
    ``ping_seconds`` is the keep-alive interval: a stream with nothing sent
    for that long gets a ping within a third of it more.
    """

    def __init__(self, render: Callable[[Row], bytes], ping_seconds: float) -> None:
        self._render = render
        self.ping_seconds = ping_seconds
        self._subs: dict[Subscriber, None] = {}  # insertion-ordered set
        self._by_session: dict[str, dict[Subscriber, None]] = {}  # folded session name -> its subscribers
        self._by_web: dict[str, dict[Subscriber, None]] = {}  # web key -> the subscribers its cookie authenticated
        self.ended = 0  # streams the hub ended so far: revoked, signed out, past their lifetime (metrics)
        self._timer: asyncio.TimerHandle | None = None
        self.drops = 0  # live subscribers dropped to catch-up so far (metrics)
        self._asked: dict[tuple[object, ...], list[Any]] = {}  # distinct ``asked`` -> [the one object, subscribers]

    def __len__(self) -> int:
        return len(self._subs)

    def __iter__(self) -> Iterator[Subscriber]:
        """The current subscribers, in the order a publish visits them."""
        return iter(list(self._subs))

    def frame(self, row: Row) -> bytes:
        """The event's SSE frame, rendered on first use and cached on the row (:func:`cached`)."""
        return cached(row, self._render)

    def join(self, keep: Callable[[Row], bool], cursor: int, send: Send | None = None,
             wire: wire.Wire | None = None, *, session: str | None = None, web: str | None = None,
             lifetime: float = 0.0, checkpoints: bool = False) -> Subscriber:
        """A new subscriber after event ``cursor`` (behind: its stream catches up first), writing through ``wire``
        when given, else ``send``.

        ``session`` (folded, :func:`coordhub.core.identity.fold`): the session whose token authenticated the
        stream, which a ``token.revoked`` naming it ends; ``web``: the key of the web session whose cookie did
        (:func:`coordhub.core.websessions.key`), which its ``web.signed_out`` ends. ``lifetime`` > 0: end it
        after about that many seconds (up to a tenth less, at random: streams opened together do not all
        reconnect together). ``checkpoints``: its keep-alives carry its cursor (:meth:`Subscriber.keepalive`).
        """
        sub = Subscriber(keep, cursor, send, wire, checkpoints)
        if sub.asked is not None:  # one object per distinct filter, so a publish decides by identity
            held = self._asked.setdefault(sub.asked, [sub.asked, 0])
            held[1] += 1
            sub.asked = held[0]
        self._subs[sub] = None
        sub.owner = (session, web)
        if session is not None:
            self._by_session.setdefault(session, {})[sub] = None
        if web is not None:
            self._by_web.setdefault(web, {})[sub] = None
        if lifetime > 0:
            sub.until = time.monotonic() + lifetime * (1.0 - 0.1 * random.random())
        if self._timer is None:
            self._arm()
        return sub

    def leave(self, sub: Subscriber) -> None:
        """Forget a subscriber (its stream ended)."""
        if sub not in self._subs:  # left already: the filter's count below is taken once
            return
        del self._subs[sub]
        if sub.asked is not None and (held := self._asked.get(sub.asked)) is not None:
            held[1] -= 1
            if not held[1]:
                del self._asked[sub.asked]
        session, web = sub.owner
        for index, key in ((self._by_session, session), (self._by_web, web)):
            if key is not None and (subs := index.get(key)) is not None:
                subs.pop(sub, None)
                if not subs:
                    del index[key]
        if not self._subs and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def publish_soon(self, rows: list[Row]) -> None:
        """Event-bus listener: :meth:`publish` these rows once the batch's answers are written.

        The writer queues a batch's events on the loop just before its
        answers (so that revocations, applied by another bus listener, take
        effect before any answer of the batch is written); resolving the
        answers then queues the handlers' resumptions. The pass is queued
        two hops later (a callback that queues it), so it runs after those
        handlers have written their responses: a sender waits for its
        commit, not for its event to reach every stream (about 14 ms at
        1,000 streams). Should the two arrive in different rounds of the loop,
        the pass would only run first, as it always did. Passes keep the
        publishes' order (the loop runs callbacks first in, first out), and
        a stream that caught up meanwhile by reading the ring has ``queued``
        past these ids already, so the pass skips it: nothing twice.
        """
        for row in rows:  # credentials ended (any hub process's): their streams end first, before this pass
            kind = row["kind"]
            if kind == "token.revoked" or kind == "web.signed_out":
                self._end_credentials(row)
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self._publish_logged, rows)

    def _end_credentials(self, row: Row) -> None:
        """End the streams authenticated by what a ``token.revoked`` or ``web.signed_out`` event ended."""
        try:
            payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        if row["kind"] == "token.revoked":
            name = payload.get("name")
            subs = self._by_session.get(fold(name)) if isinstance(name, str) else None
            why = REVOKED
        else:
            key = payload.get("web")
            subs = self._by_web.get(key) if isinstance(key, str) else None
            why = SIGNED_OUT
        for sub in list(subs or ()):
            if sub.ended is None:
                self.ended += 1
            sub.end(why)

    def _publish_logged(self, rows: list[Row]) -> None:
        try:
            self.publish(rows)
        except Exception:  # as the bus logs a listener's failure when it runs it itself
            log.exception("event bus listener failed")

    def publish(self, rows: list[Row]) -> None:
        """Offer a publish's new rows to every subscriber, in one loop.

        The common case, one new event and a subscriber parked on an open
        wire with nothing queued, is decided here without a call per
        subscriber beyond the write itself: the filter runs once per
        distinct ``asked`` when the event is public, the chunk is framed
        once, and the transport's ``write`` is called directly
        (:meth:`coordhub.api.wire.Wire.clear` checked just before). Anything
        else goes through :meth:`Subscriber.offer`.
        """
        if not rows:
            return
        frame = self.frame
        one = rows[0] if len(rows) == 1 else None
        rid = one["id"] if one is not None else 0
        now = time.monotonic()
        public: bool | None = None  # whether the one event is public; read when first needed
        data: bytes | None = None  # its chunk, framed when first written (an event nobody keeps is not rendered)
        decided: dict[int, bool] = {}  # by id of an interned ``asked``: no tuple hashed or compared per subscriber
        for sub in self._subs:
            through = sub.wire
            if (one is not None and through is not None and sub.parked and not sub.frames and not sub.behind
                    and sub.inflight is None and not sub.dead and sub.queued < rid):
                asked = sub.asked
                if asked is not None and public is None:
                    public = events.public(one)
                if asked is None or not public:
                    kept = sub.keep(one)
                elif (known := decided.get(id(asked))) is not None:  # asked is interned (join)
                    kept = known
                else:
                    kept = decided[id(asked)] = sub.keep(one)
                if not kept:
                    sub.queued = sub.sent = rid
                    continue
                if data is None:
                    data = wire.chunk(frame(one))
                if through.clear() and len(data) <= LIVE_BYTES:  # (else offer: it waits, or applies the bound)
                    through.send(data)
                    sub.queued = sub.sent = rid
                    sub.idle_since = now
                    continue
            if sub.offer(rows, frame):
                self.drops += 1

    def _arm(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.ping_seconds / 3, self.tick)

    def tick(self) -> None:
        """The one ping timer: wake every stream idle for ``ping_seconds`` to send a keep-alive comment."""
        self._timer = None
        now = time.monotonic()
        due = now - self.ping_seconds
        for sub in self._subs:
            if sub.until <= now and sub.ended is None:  # past its lifetime: the client reconnects, authenticated anew
                self.ended += 1
                sub.end(LIFETIME)
                continue
            if sub.idle_since <= due:
                if not (sub.can_write_now() and sub.write_now(sub.keepalive())):
                    sub.ping = True
                    sub.wake()
        if self._subs:
            self._arm()

    def close(self) -> None:
        """Stop the ping timer (the app is shutting down)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
