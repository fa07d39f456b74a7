"""How ``coord serve`` keeps garbage-collection pauses short without letting garbage pile up (issue 15).

CPython's collector walks every tracked object of the generations it
collects. A hub holds many long-lived objects (its modules and models, open
streams and their connections, the event ring, caches), and walking them again
and again made the long pauses: 14 full collections in 10 s under load, up to
271 ms each, and with 1,000 SSE streams open one generation-1 collection took
90–95 ms of CPU (``coord bench``, docs/benchmarks.md).

So :func:`settle_heap` freezes what start-up built, raises the first
threshold, and installs a :class:`Freezer`: after each young collection what
survived it is moved to the permanent generation, so the older generations
stay nearly empty and their collections walk almost nothing.

Frozen objects are still freed by reference counting when they die; what the
collector no longer sees is a reference cycle that was alive when it was
frozen (an exception and its traceback, say, caught in a request that was in
flight during a young collection). Left alone, such cycles would pile up for
the life of the process: a client sending bad requests could grow the hub
without bound. The freezer bounds that: once the heap has grown by
:data:`FREEZE_SLACK` memory blocks since the last full collection it stops
freezing, and the hub's ``coord-gc`` thread unfreezes everything and runs one
full collection (a pause of the old kind, paid once per that much growth,
never under steady load, where the heap stays level), then freezing resumes
from the new level. ``coord_heap_blocks`` and ``coord_gc_pause_seconds``
(generation 2) show both.

What is left of a young collection's pause is the walk over the young
objects that are still alive, and under load those are the requests in
flight: with a first threshold of 20,000 a young collection came every few
seconds and found every live object of every request in flight (64
connections, ~4,000-6,000 objects: 1-3 ms of CPU; 500 agents, ~16,000
objects: 12-15 ms). A smaller threshold alone did not help (at 5,000, the
count CPython keeps is lowered by the frozen objects that die, so
collections came no sooner than a request's lifetime and still found all of
them), unless small enough to come several times within a request's
lifetime (2,000: 4.7 ms of CPU at 500 agents, but 5-10 % more hub CPU per
request at 64 connections, 30 collections a second). So a :class:`Pacer`
moves the first threshold itself: down while a young collection takes more
than :data:`YOUNG_PAUSE_TARGET` seconds of CPU, back up while they take much
less.

The threshold alone still let a young collection find every request in
flight when the objects of older requests die faster than new ones are
made: CPython lowers its allocation count for every tracked object that is
freed, frozen ones included, so the count may take seconds to reach even a
low threshold (500 agents on a slow machine: 10-13 ms of CPU with the
threshold at ~3,000). What a collection walks is what was made since the
last one and is still alive (what survives is frozen), so the hub's
``coord-gc`` thread also collects the young generation every
:attr:`Pacer.period` seconds, a period the Pacer moves by the same rule as
the threshold, between :data:`YOUNG_PERIOD_LOW` and
:data:`YOUNG_PERIOD_HIGH`. Under a light load the period stays long and
costs next to nothing; under hundreds of agents it settles where a
collection walks what a fraction of a second made.

The heap's growth is read as ``sys.getallocatedblocks()`` (pymalloc's blocks
in use: every object of up to 512 bytes; tens of microseconds to read), not
as ``gc.get_freeze_count()``, which walks the whole frozen list: 18-26 ms with
the 160,000-196,000 objects a serving hub holds frozen, paid with the
interpreter stopped after every young collection (issue 15, measured).
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Callable

GC_THRESHOLDS = (20_000, 20, 20)  # CPython's are (700, 10, 10): see settle_heap; the Pacer moves the first
YOUNG_PAUSE_TARGET = 0.005  # seconds of CPU a young collection should stay under (issue 15's bound: 10 ms)
LOWEST_FIRST_THRESHOLD = 1_000
FREEZE_SLACK = 500_000  # blocks the heap may grow by after a full collection before the next one
YOUNG_PERIOD_LOW = 0.025  # seconds: the shortest period of timed young collections
YOUNG_PERIOD_HIGH = 0.2  # the longest, and the longest the coord-gc thread goes without looking at the freezer
YOUNG_MIN = 200  # a timed collection is skipped while fewer allocations than this are counted (an idle hub)


class Freezer:
    """A ``gc.callbacks`` hook: freezes what survives each young collection, up to ``slack`` blocks of growth.

    ``due`` turns True when the heap (``sys.getallocatedblocks()``) has grown
    by more than ``slack`` blocks since :attr:`baseline`; then nothing more is
    frozen until :meth:`reclaim` runs a full collection over everything.
    """

    def __init__(self, slack: int = FREEZE_SLACK) -> None:
        self.slack = slack
        self.baseline = sys.getallocatedblocks()
        self.due = False
        self.reclaims = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase != "stop" or info["generation"] != 0 or self.due:
            return
        gc.freeze()
        if sys.getallocatedblocks() - self.baseline > self.slack:
            self.due = True  # the collector must see the frozen heap again (reclaim); until then, freeze no more

    def reclaim(self) -> int:
        """Unfreeze everything, run a full collection, freeze what is left; the number of objects collected."""
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        self.baseline = sys.getallocatedblocks()
        self.due = False
        self.reclaims += 1
        return collected


class Pacer:
    """A ``gc.callbacks`` hook: keeps young collections near ``target`` seconds of CPU by moving the first threshold.

    After each young collection that took more than ``target`` (the
    collecting thread's CPU time, which a busy machine's preemption does not
    inflate), the first threshold is halved, down to ``low``; after one that
    took less than a quarter of it, it grows by a quarter, up to ``high``. In
    between it stays, so a steady load settles on one threshold instead of
    swinging. :attr:`period` (seconds between the ``coord-gc`` thread's
    timed young collections, see the module docstring) moves by the same
    rule, halved or grown by a quarter between ``period_low`` and
    ``period_high``, starting at the longest. ``adjustments`` counts the
    changes; ``clock`` is the CPU clock (seconds).
    """

    def __init__(self, target: float = YOUNG_PAUSE_TARGET, low: int = LOWEST_FIRST_THRESHOLD,
                 high: int = GC_THRESHOLDS[0], clock: Callable[[], float] = time.thread_time, *,
                 period_low: float = YOUNG_PERIOD_LOW, period_high: float = YOUNG_PERIOD_HIGH) -> None:
        self.target = target
        self.low = low
        self.high = high
        self.clock = clock
        self.period_low = period_low
        self.period_high = period_high
        self.period = period_high
        self.adjustments = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 0:
            return
        if phase == "start":
            self._started = self.clock()
            return
        took = self.clock() - self._started
        first, second, third = gc.get_threshold()
        if took > self.target:
            moved, period = max(self.low, first // 2), max(self.period_low, self.period / 2)
        elif took < self.target / 4:
            moved, period = min(self.high, first + first // 4), min(self.period_high, self.period * 1.25)
        else:
            return
        if period != self.period:
            self.period = period
            self.adjustments += 1
        if moved != first:
            gc.set_threshold(moved, second, third)
            self.adjustments += 1


def _tend_forever(freezer: Freezer, pacer: Pacer) -> None:
    # A thread, not the event loop's task: settle_heap runs before the loop exists, and a collection stops every
    # thread alike. It never waits on a lock a collection could interrupt (no Event): it polls. It ends when its
    # pacer is no longer installed (another settle_heap replaced it, or a test removed it).
    while pacer in gc.callbacks:
        time.sleep(pacer.period)
        tend(freezer)


def tend(freezer: Freezer) -> str | None:
    """One turn of the ``coord-gc`` thread: the full collection when ``freezer`` says it is due, else a young one
    unless fewer than :data:`YOUNG_MIN` allocations are counted. Returns ``"reclaim"``, ``"young"`` or None."""
    if freezer.due:
        freezer.reclaim()
        return "reclaim"
    if gc.get_count()[0] >= YOUNG_MIN:
        gc.collect(0)
        return "young"
    return None


def settle_heap(slack: int = FREEZE_SLACK) -> Freezer:
    """Freeze start-up's heap, raise the first threshold, install a :class:`Pacer`, a :class:`Freezer` and the
    ``coord-gc`` thread (timed young collections, the freezer's full collection).

    Measured under ``coord bench message --driver wrk`` (issue 15): with
    CPython's defaults a hub ran 14 full collections in 10 s, up to 271 ms
    each; a smaller first threshold than 20,000 (2,000 or 10,000) measured
    worse: the 64 requests in flight keep the young generation full, so
    collections came 10 to 100 times as often. From here on every
    collection's pause is timed into the hub's metrics
    (``coord_gc_pause_seconds``, :data:`coordhub.api.metrics.GC_PAUSES`).
    Returns the installed freezer (one per process: a second call replaces
    the first's hook).
    """
    from coordhub.api.metrics import GC_PAUSES

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    GC_PAUSES.install()
    gc.callbacks[:] = [c for c in gc.callbacks if not isinstance(c, (Freezer, Pacer))]
    freezer = Freezer(slack)
    # Before the pause probe: its "stop" is then taken after the freeze, so the pause it times includes it.
    gc.callbacks.insert(gc.callbacks.index(GC_PAUSES) if GC_PAUSES in gc.callbacks else len(gc.callbacks), freezer)
    pacer = Pacer()
    gc.callbacks.insert(0, pacer)  # first: it times the collection alone
    threading.Thread(target=_tend_forever, args=(freezer, pacer), name="coord-gc", daemon=True).start()
    return freezer
