"""Retention: what the hub keeps, for how long, and the pruner that removes the rest (issue 14 point 4).

What may go, and when (each period in hours; 0 keeps that kind forever):

- **events** older than ``events_hours``, as a prefix of the log (every id up
  to a bound, recorded as ``events_pruned_through``), never past what a live
  cursor needs (below);
- **messages** older than ``messages_hours`` that nobody needs any more: a
  direct message once its recipient read it (and acked it, when an ack was
  required, or it was dead-lettered); a broadcast once every live session
  but its sender read it and no receipt of it is left unacked. Its receipts
  go with it. An unread or unacked message is never removed. An imported
  message (``coord import redis``) is as old as its import, not its original
  time (:mod:`coordhub.core.imports`);
- **leases** that ended (released, expired, revoked) more than
  ``leases_hours`` ago; a live lease never;
- **idempotency records** older than ``idempotency_hours`` (a retry with the
  same key after that runs again: keep it longer than any client queues
  writes offline);
- **assignments** of the orchestrator that ended (done, failed, cancelled)
  more than ``assignments_hours`` ago, with their attempts and relayed logs
  (issue 11 left them forever); queued, running, stuck and needs-input ones
  never.

Conversations and their turns are never pruned: they are the signed record
of what projects agreed, and small.

**What a live cursor needs.** A session is *live* when the hub saw it act
within ``cursor_hold_hours``. Events newer than the lowest of these cursors are
kept, however old:

- the notification cursor (``notify_cursor``, moved by
  ``POST /notifications/ack``) of every live session that has one (> 0);
- the position at which a live session's last event stream (SSE) ended
  (``stream_cursor``, recorded when a stream closes, so a client that
  reconnects with ``Last-Event-ID`` finds the events it missed);
- the position of every event stream open on this hub process now
  (:class:`StreamCursors`).

No cursor holds an event for ever: one older than ``events_hours`` plus
``cursor_max_hold_hours`` goes whatever cursor still needs it (0: no such
bound). Being live costs a session one heartbeat a day, so without this one
token acking once and then only heartbeating kept the whole log from its
cursor on (review: the disk grew without bound). A consumer that keeps up
never notices; one that fell that far behind is told of the gap like any
other reader below.

Long-polls and ``coord agent`` wake-ups need no history (they wait for the
next event in memory and then re-read their messages or assignments), and
hooks follow receipts, not the log, so unread messages cover them.

A reader whose cursor is below ``events_pruned_through`` may have lost events:
it is told so (an SSE ``gap`` event, ``gap`` in notifications, a
``Coord-Gap`` header on ``/audit``) rather than silently skipped forward.

Every batch is one unit of work on the single writer (at most ``batch`` rows
of one kind, chosen through an index or the primary key), so a batch is
removed entirely or not at all, and it holds the writer for a few
milliseconds at most (the pruner records how long each took).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from coordhub.store.tx import Tx

log = logging.getLogger("coordhub.retention")

PRUNED_THROUGH = "events_pruned_through"  # hub_meta key: every event with id <= this may have been removed
HOUR = 3600.0
RECLAIM_BATCHES = 1000  # most reclaim units per pass (64 pages each: 256 MB of 4 KiB pages)


class Policy(NamedTuple):
    """How long each kind is kept, in hours (0: forever), and how the pruner works.

    ``batch`` is the most rows one unit of work removes; ``pause`` the
    seconds between two batches, so other writes queue in between.
    """

    events_hours: float = 168.0
    messages_hours: float = 720.0
    leases_hours: float = 168.0
    idempotency_hours: float = 168.0
    assignments_hours: float = 720.0
    cursor_hold_hours: float = 24.0
    cursor_max_hold_hours: float = 24.0
    batch: int = 200
    pause: float = 0.005

    def before(self, hours: float, now: float) -> float | None:
        """The creation time before which a kind kept ``hours`` may go; None when kept forever (``hours`` 0)."""
        return now - hours * HOUR if hours > 0 else None


class StreamCursors:
    """The positions of the event streams open on this hub process. Use from the event loop's thread only."""

    def __init__(self) -> None:
        self._open: dict[int, int] = {}
        self._next = 0

    def open(self, position: int) -> int:
        """Register a stream at ``position``; return its handle."""
        self._next += 1
        self._open[self._next] = position
        return self._next

    def move(self, handle: int, position: int) -> None:
        """Record that a stream has sent everything up to ``position``."""
        if handle in self._open:
            self._open[handle] = position

    def close(self, handle: int) -> None:
        """Forget a stream (idempotent)."""
        self._open.pop(handle, None)

    def floor(self) -> int | None:
        """The lowest position of an open stream, None when none is open."""
        return min(self._open.values()) if self._open else None


def gap(tx: Tx, cursor: int) -> dict[str, int] | None:
    """``{"after": cursor, "pruned_through": N}`` when events after ``cursor`` may have been pruned, else None."""
    through = pruned_through(tx)
    return {"after": cursor, "pruned_through": through} if cursor < through else None


def pruned_through(tx: Tx) -> int:
    """The highest event id the pruner may have removed (0: none)."""
    value = tx.meta.get(PRUNED_THROUGH)
    return int(value) if value else 0


def record_stream_end(tx: Tx, session_id: str, position: int, now: float) -> None:
    """Remember where a session's event stream ended, so its resume keeps its events (see the module doc)."""
    tx.retention.set_stream_cursor(session_id, position, now)


def gap_frame(gap: dict[str, int]) -> str:
    """The SSE ``gap`` event telling a stream that events after its cursor were pruned; its ``id`` is the
    pruned bound, so a client resuming from it is not told twice."""
    data = json.dumps({"kind": "gap", **gap, "message": f"events {gap['after'] + 1} to {gap['pruned_through']} "
                       "were removed by retention before this stream read them; some may have matched it"},
                      separators=(",", ":"))
    return f"id: {gap['pruned_through']}\nevent: gap\ndata: {data}\n\n"


class Stats:
    """What the pruner did in its last pass and since the start: rows removed per kind, batches, and how long
    each batch held the writer (milliseconds)."""

    def __init__(self) -> None:
        self.removed: dict[str, int] = {}
        self.batches = 0
        self.batch_ms: list[float] = []  # the last pass's batches
        self.max_batch_ms = 0.0
        self.max_ms_by_kind: dict[str, float] = {}
        self.passes = 0
        self.last_pass_at: float | None = None

    def summary(self) -> dict[str, Any]:
        """A JSON-ready view: removed per kind, batches, passes, the last pass's p50 and the worst batch in ms."""
        ms = sorted(self.batch_ms)
        return {"removed": dict(self.removed), "batches": self.batches, "passes": self.passes,
                "last_pass_batches": len(ms), "last_pass_p50_ms": round(ms[len(ms) // 2], 3) if ms else None,
                "max_batch_ms": round(self.max_batch_ms, 3),
                "max_batch_ms_by_kind": {k: round(v, 3) for k, v in self.max_ms_by_kind.items()},
                "last_pass_at": self.last_pass_at}


Writer = Callable[[Callable[[Tx], Any]], Any]  # awaitable: the store's write


class Pruner:
    """Removes what is past retention, batch by batch; :meth:`run_pass` is one sweep over every kind."""

    def __init__(self, policy: Policy, streams: StreamCursors | None = None) -> None:
        self.policy = policy
        self.streams = streams or StreamCursors()
        self.stats = Stats()

    async def run_pass(self, store: Any, now: Callable[[], float]) -> dict[str, int]:
        """Prune every kind once through ``store`` (its ``write``/``read``); return rows removed per kind.

        ``now`` is the hub's clock. Raises ``Unavailable`` when the database is
        down (what was removed so far stays removed: each batch committed).
        """
        p, t = self.policy, now()
        self.stats.batch_ms = []
        done: dict[str, int] = {}
        live_since = t - p.cursor_hold_hours * HOUR if p.cursor_hold_hours > 0 else 0.0
        events_before = p.before(p.events_hours, t)
        if events_before is not None:
            floor = await store.read(lambda tx: self._event_floor(tx, live_since))
            held_before = p.before(p.events_hours + p.cursor_max_hold_hours, t) if p.cursor_max_hold_hours > 0 \
                else None
            done["events"] = await self._drain(store, lambda tx: self._events(tx, events_before, floor, held_before),
                                               "events")
        messages_before = p.before(p.messages_hours, t)
        if messages_before is not None:
            done["messages"] = await self._messages(store, messages_before, live_since)
        for kind, hours, prune in (("leases", p.leases_hours, "prune_leases"),
                                   ("idempotency", p.idempotency_hours, "prune_idempotency"),
                                   ("assignments", p.assignments_hours, "prune_assignments")):
            before = p.before(hours, t)
            if before is not None:
                done[kind] = await self._drain(store, self._simple(prune, before), kind)
        if any(done.values()):
            await self._reclaim(store)
        for kind, n in done.items():
            self.stats.removed[kind] = self.stats.removed.get(kind, 0) + n
        self.stats.passes += 1
        self.stats.last_pass_at = t
        if any(done.values()):
            log.info("pruned %s in %d batches (worst %.1f ms)", ", ".join(f"{n} {k}" for k, n in done.items() if n),
                     len(self.stats.batch_ms), max(self.stats.batch_ms, default=0.0))
        return done

    def _event_floor(self, tx: Tx, live_since: float) -> int:
        held = [f for f in (tx.retention.notify_floor(live_since), tx.retention.stream_floor(live_since),
                            self.streams.floor()) if f is not None]
        return min(held) if held else tx.events.last_id()

    def _events(self, tx: Tx, before: float, floor: int, held_before: float | None) -> int:
        """Prune one batch of the log's prefix: events created before ``before`` up to the cursors' ``floor``, and
        those created before ``held_before`` whatever the floor (the cursors' hold has run out)."""
        upto = tx.retention.event_prefix(before, floor, self.policy.batch)
        if held_before is not None:
            upto = max(upto, tx.retention.event_prefix(held_before, tx.events.last_id(), self.policy.batch))
        if not upto:
            return 0
        removed = tx.retention.prune_events(upto)
        if upto > pruned_through(tx):
            tx.meta.put(PRUNED_THROUGH, str(upto))
        return removed

    def _simple(self, method: str, before: float) -> Callable[[Tx], int]:
        def unit(tx: Tx) -> int:
            n: int = getattr(tx.retention, method)(before, self.policy.batch)
            return n
        return unit

    async def _messages(self, store: Any, before: float, live_since: float) -> int:
        after, total = 0, 0
        while True:
            def unit(tx: Tx, after: int = after) -> tuple[int, int | None]:
                seqs = tx.retention.message_window(after, before, self.policy.batch)
                return tx.retention.prune_messages(seqs, live_since), (seqs[-1] if seqs else None)

            removed, last = await self._timed(store, unit, "messages")
            total += int(removed)
            if last is None:
                return total
            after = int(last)
            await asyncio.sleep(self.policy.pause)

    async def _reclaim(self, store: Any) -> None:
        """Return freed pages to the file system where the backend needs it done (SQLite), a few per batch."""
        unit = store.reclaim_unit()
        if unit is None:
            return
        for _ in range(RECLAIM_BATCHES):
            if not await self._timed(store, unit, "reclaim"):  # 0 pages left
                break
            await asyncio.sleep(self.policy.pause)
        await asyncio.to_thread(store.checkpoint)

    async def _drain(self, store: Any, unit: Callable[[Tx], int], kind: str) -> int:
        """Run ``unit`` until it removes fewer than a batch; return the total removed."""
        total = 0
        while True:
            removed: int = await self._timed(store, unit, kind)
            total += removed
            if removed < self.policy.batch or removed == 0:
                return total
            await asyncio.sleep(self.policy.pause)

    async def _timed(self, store: Any, unit: Callable[[Tx], Any], kind: str) -> Any:
        spent: list[float] = []

        def timed(tx: Tx) -> Any:
            t0 = time.perf_counter()
            try:
                return unit(tx)
            finally:
                spent.append((time.perf_counter() - t0) * 1000)

        result = await store.write(timed)
        self.stats.batches += 1
        if spent:
            self.stats.batch_ms.append(spent[0])
            self.stats.max_batch_ms = max(self.stats.max_batch_ms, spent[0])
            self.stats.max_ms_by_kind[kind] = max(self.stats.max_ms_by_kind.get(kind, 0.0), spent[0])
        return result
