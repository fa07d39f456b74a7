"""The event log: Server-Sent Events, JSON pages, client-reported events, notifications."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Send

from coordhub.api import fanout, streams, wire
from coordhub.api.auth import Caller, caller
from coordhub.api.errors import responses
from coordhub.api.routes.common import READ_ERRORS, WRITE_ERRORS, hub, mutate, query
from coordhub.api.schemas import ClientEvent, EventOut, NotificationsAck, NotificationsOut
from coordhub.core import events, notifications, projects, retention
from coordhub.core.halt import Exempt
from coordhub.core.hub import Hub
from coordhub.errors import Invalid
from coordhub.headers import CURSOR_HEADER, GAP_HEADER, NEXT_AFTER_HEADER
from coordhub.store.base import Row
from coordhub.store.tx import Tx

router = APIRouter(prefix="/api/coord", tags=["events"])
PING_SECONDS = 15.0  # SSE keep-alive comment interval
PAGE = 1000  # events per catch-up read
PAGE_BYTES = 1024 * 1024  # payload bytes per catch-up read (at least one event)
CHUNK_BYTES = 64 * 1024  # SSE frames joined into one write
SCAN_IDS = 100_000  # event ids one filtered catch-up read looks through, from the first event after its cursor
AUDIT_BYTES = 4 * 1024 * 1024  # payload bytes one /audit answer carries (at least one event)
AUDIT_SCAN_IDS = 100_000  # event ids one filtered /audit answer looks through, from the first event after `after`
AUDIT_SCAN_ROWS = 20_000  # matching rows one /audit answer reads, at most (some may be the parties' own)
MAX_KINDS = 32  # kind prefixes in one filter


def _kinds(kinds: str | None) -> tuple[str, ...]:
    """The kind prefixes of a ``kinds=`` filter (comma-separated; at most :data:`MAX_KINDS`, else ``Invalid``)."""
    found = tuple(k.strip() for k in kinds.split(",") if k.strip()) if kinds else ()
    if len(found) > MAX_KINDS:
        raise Invalid(f"kinds names {len(found)} prefixes; at most {MAX_KINDS}", field="kinds")
    return found


MAX_EVENT_ID = 2**62  # the bound ``?after=`` has too


def _start(request: Request, after: int | None, default: int) -> int:
    """Where a stream starts: after ``Last-Event-ID`` (ASCII digits, at most :data:`MAX_EVENT_ID`), else ``after``,
    else ``default``; ``Invalid`` (422) for any other header value (``str.isdigit`` would take "²", which ``int``
    then refuses)."""
    header = request.headers.get("Last-Event-ID")
    if header is not None:
        value = header.strip()
        if not (value.isascii() and value.isdigit() and len(value) <= 19 and int(value) <= MAX_EVENT_ID):
            raise Invalid(f"Last-Event-ID {header[:40]!r} is not an event id (0 to {MAX_EVENT_ID})",
                          field="Last-Event-ID")
        return int(value)
    return default if after is None else after


def _sse(row: Row) -> bytes:
    """The event as an SSE frame (UTF-8), rendered once per event however many subscribers send it."""
    return fanout.cached(row, _render)


def _render(row: Row) -> bytes:
    data = json.dumps(events.render(row), separators=(",", ":"))
    return f"id: {row['id']}\nevent: {row['kind']}\ndata: {data}\n\n".encode()


def _chunks(frames: Iterable[bytes]) -> Iterator[bytes]:
    """``frames`` joined into writes of about :data:`CHUNK_BYTES` each."""
    chunk: list[bytes] = []
    size = 0
    for frame in frames:
        chunk.append(frame)
        size += len(frame)
        if size >= CHUNK_BYTES:
            yield b"".join(chunk)
            chunk, size = [], 0
    if chunk:
        yield b"".join(chunk)


def _kept(rows: list[Row], keep: Callable[[Row], bool]) -> Iterator[bytes]:
    return (_sse(row) for row in rows if keep(row))


def _catch_up(cursor: int, keep: events.Filter,
              checkpoints: bool = False) -> Callable[[Tx, float], tuple[int, list[bytes]]]:
    """A read of the next page after ``cursor`` from the store, rendered on the reader thread (off the loop):
    the cursor it read through and the frames to send.

    Bounded as one ``/audit`` answer is: at most :data:`PAGE` rows and about
    :data:`PAGE_BYTES` reach Python, and with a kinds/project filter the
    database skips the rows that do not match and looks through at most
    :data:`SCAN_IDS` ids. A read that keeps nothing answers a ``: scanned
    through ID`` comment, so the stream writes once per read: a filter that
    matches little costs one bounded read per write, paced by the client's
    reading (flow control), not the whole log in one go. With
    ``checkpoints``, a read whose frames end before the id it read through
    (it kept nothing, or dropped its last rows) ends with a checkpoint
    (:func:`_checkpoint`), so a resume starts there, not at the last event
    sent. Empty frames and an unchanged cursor when nothing follows ``cursor``.
    """
    kinds, project_key = keep.asked[0], keep.asked[1]

    def page(tx: Tx, now: float) -> tuple[int, list[bytes]]:
        gap = retention.gap(tx, cursor)
        if gap is not None:  # pruned past this cursor: say so, then go on from the pruned bound
            return gap["pruned_through"], [retention.gap_frame(gap).encode()]
        through: int | None = None  # unfiltered: every row read is a candidate, PAGE bounds the read
        if kinds or project_key is not None:
            # Event ids increase strictly in commit order, so every id up to ``last`` (read first) is committed
            # and readable now: moving the cursor to the window's end skips only rows the filter drops anyway.
            last = tx.events.last_id()
            first = tx.events.first_after(cursor)
            if first is None or first > last:
                return cursor, []
            through = min(first - 1 + SCAN_IDS, last)  # from the first event: a pruned gap costs no window
        rows = tx.events.page(cursor, PAGE, PAGE_BYTES, kinds=kinds, project_key=project_key, through_id=through)
        after = rows[-1]["id"] if rows else (cursor if through is None else through)
        kept = [row for row in rows if keep(row)]
        frames = [_sse(row) for row in kept]
        if checkpoints and after > (kept[-1]["id"] if kept else cursor):
            frames.append(_checkpoint(after))
        elif not frames and after > cursor:
            # A comment, not an ``id:`` line, unless the client asked for checkpoints: an older Python client
            # takes every frame with an id for an event whose data is a JSON object (and stops on one without).
            frames = [f": scanned through {after}\n\n".encode()]
        return after, list(_chunks(frames))

    return page


def _checkpoint(through: int) -> bytes:
    """A checkpoint frame: an ``id:`` line with no ``data:``, so no event (WHATWG HTML, server-sent events:
    "If the data buffer is an empty string, ... return"), but its id becomes the client's last event id, the
    ``Last-Event-ID`` it resumes with; every event up to ``through`` that the stream keeps was sent before it."""
    return f": scanned through {through}\nid: {through}\n\n".encode()


def make_fanout() -> fanout.Fanout:
    """The live-stream fan-out of one app (``create_app`` makes it; its lifespan feeds it from the bus)."""
    return fanout.Fanout(_render, PING_SECONDS)


def _stream(h: Hub, fan: fanout.Fanout, cursor: int, keep: events.Filter, viewer: str,
            credential: streams.Credential | None, checkpoints: bool,
            turns: tuple[streams.ReadTurns, str]) -> Callable[[Send, wire.Wire | None], Awaitable[None]]:
    """The SSE body: catch up in pages of bounded bytes (from the ring, else the store), then follow live.

    Live, the fan-out (:mod:`coordhub.api.fanout`) writes the frames itself
    while this task is parked (straight to the transport ``through`` a wire
    when the server gives one), and drops a stream that falls behind back to
    catching up by its cursor; this task sends what the fan-out queued or
    could not finish. Its position is registered with the hub's stream
    cursors while it runs, and recorded as ``viewer``'s stream cursor when
    it ends, so the pruner keeps what this stream and its resume need
    (``coordhub.core.retention``).

    The stream ends with its ``credential`` (revoked, signed out) and past
    its lifetime (:mod:`coordhub.api.fanout`): the response then ends cleanly
    (a comment naming why, then the end of the chunked body), so a client
    reconnects with ``Last-Event-ID`` and authenticates again.

    With ``checkpoints`` (the client asked, ``?checkpoints=1``), the stream
    also sends checkpoint frames (:func:`_checkpoint`): after a catch-up read
    whose last ids it filtered out, and with each keep-alive while live
    (:meth:`coordhub.api.fanout.Subscriber.keepalive`).

    ``turns``: the app's :class:`~coordhub.api.streams.ReadTurns` and this stream's key (its session): its store
    reads take turns with the other streams of that session (one page at a time per session).
    """
    gate, gate_key = turns

    async def body(send: Send, through: wire.Wire | None) -> None:
        bus = h.bus
        assert bus is not None

        async def write(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        handle = h.stream_cursors.open(cursor)
        cred = credential or streams.Credential()
        sub = fan.join(keep, cursor, send, through, session=cred.session, web=cred.web, lifetime=cred.lifetime,
                       checkpoints=checkpoints)
        try:
            if cred.still is not None and not await cred.still():  # ended between authentication and joining
                sub.end(fanout.REVOKED)
            await write(b"retry: 2000\n: connected\n\n")
            while not sub.dead:
                if sub.inflight is not None:  # a write the fan-out began: it finishes before anything else
                    await sub.inflight
                    sub.inflight = None
                    continue
                h.stream_cursors.move(handle, sub.sent)
                if sub.behind:
                    rows = bus.since(sub.sent)
                    if rows is None:  # fell behind the in-memory ring: catch up from the store
                        async with gate.turn(gate_key):  # one store read at a time per session
                            sub.sent, chunks = await h.query_off_loop(_catch_up(sub.sent, keep, checkpoints))
                        for chunk in chunks:
                            if sub.dead:  # ended meanwhile: what the store read past that is not sent
                                break
                            await write(chunk)
                        continue
                    if rows:
                        rows = rows[:PAGE]
                        sub.sent = rows[-1]["id"]
                        for chunk in _chunks(_kept(rows, keep)):
                            if sub.dead:
                                break
                            await write(chunk)
                        continue
                    sub.go_live()  # at the ring's newest event, nothing awaited since reading it
                frames = sub.take()
                if frames:
                    for chunk in _chunks(frames):
                        await write(chunk)
                    sub.idle_since = time.monotonic()
                    continue
                if sub.ping:
                    sub.ping = False
                    sub.idle_since = time.monotonic()
                    await write(sub.keepalive())
                    continue
                await sub.wait()
            if sub.ended is not None:  # the hub ended it (not the connection): end the response cleanly
                if sub.inflight is not None:
                    await sub.inflight
                    sub.inflight = None
                await send({"type": "http.response.body", "body": f": end: {sub.ended}\n\n".encode(),
                            "more_body": False})
        finally:
            fan.leave(sub)
            if sub.inflight is not None:
                sub.inflight.cancel()
            h.stream_cursors.close(handle)
            if viewer:
                _record_end(h, viewer, sub.sent)

    return body


def _record_end(h: Hub, viewer: str, cursor: int) -> None:
    """Record where a stream ended, without waiting (it runs as the stream is torn down)."""
    future = h.store.submit_write(lambda tx: retention.record_stream_end(tx, viewer, cursor, h.clock.now()))
    future.add_done_callback(lambda f: f.cancelled() or f.exception())  # a store outage only loses a hint


@router.get("/events", response_class=StreamingResponse, responses={
    200: {"content": {"text/event-stream": {}}, "description": "A stream of events: `id`, `event` (kind), "
          "`data` (the event as JSON)."}, **responses(*READ_ERRORS)})
async def stream(request: Request, after: int | None = Query(None, ge=0, le=MAX_EVENT_ID), kinds: str | None = None,
                 project_key: str | None = None, to_session: str | None = None, session_id: str | None = None,
                 checkpoints: bool = False, who: Caller = Depends(caller)) -> Response:
    """Follow the event log live; resume with ``Last-Event-ID`` or ``?after=`` (default: from now on).

    Each session may hold ``streams_per_token`` streams and long-polls at once (429 ``too_many_streams``).
    The stream ends (cleanly: the chunked body ends after a ``: end: WHY`` comment) when its token is revoked
    (``revoked``), its web session signed out (``signed_out``), after ``stream_max_seconds``
    (``lifetime``), and when the hub process shuts down (``shutdown``): reconnect with ``Last-Event-ID``,
    which authenticates again. The response's ``X-Coord-Cursor`` header is the id the stream starts after: a
    client that has had no event yet resumes from it, not from "now" (which would skip what came between).

    ``?checkpoints=1`` asks for checkpoint frames: an ``id:`` with no ``data:``
    where the stream passed over ids its filter drops (after such a catch-up
    read, and with each keep-alive while live). Per the SSE spec such a frame
    is no event but sets the last event id, so a reconnect resumes past what
    was already looked through, not from the last event delivered. Asked for,
    not always sent: older clients (the Python client before this parameter)
    take every frame with an id for an event and stop on one without data.
    A query parameter, not a header: EventSource cannot send headers.
    """
    h = hub(request)
    assert h.bus is not None
    cursor = _start(request, after, h.bus.last_id)
    viewer, admin = _viewer(who)
    prefixes = _kinds(kinds)
    to_session, session_id = await who.session(to_session), await who.session(session_id)

    keep = events.Filter(viewer, admin, prefixes, project_key, to_session, session_id)
    credential = await streams.credential(request, who)  # before the slot: nothing may fail between it and its owner
    release = await streams.slots(request).acquire(streams.key(who, request))
    body = _stream(h, request.app.state.fanout, cursor, keep, viewer, credential, checkpoints,
                   (streams.catch_up_turns(request), streams.key(who, request)))
    return streams.LiveStream(body, release, media_type="text/event-stream",
                              headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                                       CURSOR_HEADER: str(cursor)}, farewell=b": end: shutdown\n\n")


def _viewer(who: Caller) -> tuple[str, bool]:
    if who.token_actor is None:  # --no-auth: a trusted network sees everything
        return who.header_session or "", True
    return who.token_actor.session_id, who.token_actor.is_admin


@router.get("/audit", response_model=list[EventOut], responses=responses(*READ_ERRORS))
async def audit(request: Request, after: int = Query(0, ge=0, le=MAX_EVENT_ID), limit: int = Query(100, ge=1, le=PAGE),
                kinds: str | None = None, project_key: str | None = None,
                session_prefix: str | None = Query(None, max_length=200),
                who: Caller = Depends(caller)) -> JSONResponse:
    """The event log as JSON, oldest first after ``after`` (what the caller may see).

    At most ``limit`` events and about 4 MiB of payload per answer (at least
    one event), reading at most :data:`AUDIT_SCAN_ROWS` rows (the caller's
    own visibility filter runs on those). ``session_prefix`` keeps the events
    done by a session whose id starts with it, ignoring case (``host-a/``: a
    machine's sessions). With a ``kinds``/``project_key``/``session_prefix``
    filter, one answer also looks at most :data:`AUDIT_SCAN_IDS` ids, from the
    first event after ``after`` (so ids pruned away cost nothing), so a filter
    that matches little costs a bounded scan, not the whole log; without a
    filter there is no id window (the row budget bounds the work, and an
    answer is empty only at the end of the log). While more may follow, the
    ``Coord-Next-After`` header carries the id to page on after (absent: the
    answer reached the end of the log); it may run ahead of the last event
    answered. When events after ``after`` were pruned, the ``Coord-Gap``
    header carries the pruned bound (the answer starts after it).
    """
    viewer, admin = _viewer(who)
    prefixes = _kinds(kinds)
    project_key = projects.fold(project_key)  # as events store it

    def page(tx: Any, now: float) -> tuple[list[dict[str, Any]], int | None]:
        out: list[dict[str, Any]] = []
        cursor, size, scanned = after, 0, 0
        through: int | None = None  # unfiltered: no id window (every row read is a candidate)
        if prefixes or project_key is not None or session_prefix is not None:
            first = tx.events.first_after(after)
            if first is None:
                return out, None  # no event after ``after``
            through = min(first - 1 + AUDIT_SCAN_IDS, MAX_EVENT_ID)  # a pruned gap costs no window
        while len(out) < limit and size < AUDIT_BYTES and scanned < AUDIT_SCAN_ROWS:
            rows = tx.events.page(cursor, min(PAGE, AUDIT_SCAN_ROWS - scanned), AUDIT_BYTES - size,
                                  kinds=prefixes, project_key=project_key, through_id=through,
                                  session_prefix=session_prefix)
            if not rows:
                if through is None:
                    return out, None  # the log ends here
                cursor = through  # nothing matches up to the window's end
                break
            for r in rows:
                cursor = r["id"]
                scanned += 1
                if events.visible(r, viewer, admin):
                    out.append(events.render(r))
                    size += len(r["payload"])
                    if len(out) == limit or size >= AUDIT_BYTES:
                        break
        return out, (cursor if cursor < tx.events.last_id() else None)

    def with_gap(tx: Any, now: float) -> tuple[tuple[list[dict[str, Any]], int | None], dict[str, int] | None]:
        return page(tx, now), retention.gap(tx, after)

    (out, next_after), gap = await hub(request).query_off_loop(with_gap)
    headers = {}
    if gap is not None:
        headers[GAP_HEADER] = str(gap["pruned_through"])
    if next_after is not None:
        headers[NEXT_AFTER_HEADER] = str(next_after)
    return JSONResponse(out, headers=headers)


@router.post("/events", status_code=201, response_model=EventOut, responses=responses(*WRITE_ERRORS))
async def record(body: ClientEvent, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Record a client-side event (kinds ``guard.*`` and ``hook.*``), e.g. a git guard bypass.

    ``detail`` is capped (``event_detail_bytes``, 422 over it) and each
    session has a quota of events per minute (``event_quota``, 429 over it).
    """
    actor = await who.act()
    events.check_detail(body.detail, request.app.state.limits.event_detail_bytes)
    request.app.state.event_quota.check(actor.session_id, what="client events")

    def op(tx: Any, now: float) -> dict[str, Any]:
        event_id = events.emit(tx, body.kind, now, session_id=actor.session_id, project_key=body.project_key,
                               detail=body.detail)
        return events.render(tx.events.after(event_id - 1, 1)[0])

    return await mutate(request, actor, op, status=201, during_halt=Exempt.CLIENT_EVENT)


@router.get("/notifications", response_model=NotificationsOut, responses=responses(*READ_ERRORS))
async def pending(request: Request, limit: int = Query(100, ge=1, le=notifications.MAX_LIMIT),
                  session_id: str | None = None, who: Caller = Depends(caller)) -> JSONResponse:
    """The caller's events after its notification cursor (seed 002's notifications); reading never destroys."""
    viewer = await who.viewer(session_id, "session_id")
    if viewer is None:
        raise Invalid("name the session: session_id=MACHINE/name", field="session_id")
    return await query(request, lambda tx, now: notifications.pending(tx, viewer, limit))


@router.post("/notifications/ack", response_model=dict[str, int], responses=responses(*WRITE_ERRORS))
async def ack(body: NotificationsAck, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """Advance the caller's notification cursor to ``up_to``."""
    actor = await who.act()
    return await mutate(request, actor, lambda tx, now: notifications.ack(tx, actor, body.up_to, now),
                        during_halt=Exempt.SEEN)
