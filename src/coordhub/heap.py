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
freezing, and the hub's reclaimer thread unfreezes everything and runs one
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

The heap's growth is read as ``sys.getallocatedblocks()`` (pymalloc's blocks
in use: every object of up to 512 bytes; tens of microseconds to read), not
as ``gc.get_freeze_count()``, which walks the whole frozen list: 18-26 ms with
the 160,000-196,000 objects a serving hub holds frozen, paid with the
interpreter stopped after every young collection (issue 15, measured).
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator

GC_THRESHOLDS = (20_000, 20, 20)  # CPython's are (700, 10, 10): see settle_heap; the Pacer moves the first
YOUNG_PAUSE_TARGET = 0.005  # seconds of CPU a young collection should stay under (issue 15's bound: 10 ms)
LOWEST_FIRST_THRESHOLD = 1_000
FREEZE_SLACK = 500_000  # blocks the heap may grow by after a full collection before the next one
RECLAIM_CHECK_SECONDS = 1.0


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
    swinging. ``adjustments`` counts the changes; ``clock`` is the CPU clock
    (seconds).
    """

    def __init__(self, target: float = YOUNG_PAUSE_TARGET, low: int = LOWEST_FIRST_THRESHOLD,
                 high: int = GC_THRESHOLDS[0], clock: Callable[[], float] = time.thread_time) -> None:
        self.target = target
        self.low = low
        self.high = high
        self.clock = clock
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
        if took > self.target and first > self.low:
            first = max(self.low, first // 2)
        elif took < self.target / 4 and first < self.high:
            first = min(self.high, first + first // 4)
        else:
            return
        gc.set_threshold(first, second, third)
        self.adjustments += 1


def _reclaim_forever(freezer: Freezer) -> None:
    # A thread, not the event loop's task: settle_heap runs before the loop exists, and a full collection
    # stops every thread alike. It never waits on a lock a collection could interrupt (no Event): it polls.
    while True:
        time.sleep(RECLAIM_CHECK_SECONDS)
        if freezer.due:
            freezer.reclaim()


@contextlib.contextmanager
def absorbing() -> Iterator[None]:
    """Around a load after start-up (``/mcp``'s SDK, on a worker thread): no automatic collection while it runs,
    and what it built counted as start-up's heap once it is done.

    Each young collection during the load would walk its newest objects
    (measured: 15 collections, the longest 8.7-10.8 ms of CPU, while the SDK
    loaded); afterwards they would all still be young, and the load's growth
    would count toward the freezer's slack as if requests had leaked it (a
    full collection of the old kind, for nothing). So collections pause, and
    then everything is frozen and the installed :class:`Freezer`'s baseline
    moves up by what the heap grew meanwhile; a freezer the load made due is
    no longer due. Reference counting frees as ever in between; the garbage
    cycles made meanwhile (the load's own, measured: ~11,000 objects for the
    SDK, and any a request on the loop made) are frozen with the rest and not
    counted toward the slack: kept until a later reclaim, once per process.
    Collecting them at the end instead would walk the whole load (the pause
    this avoids). Enter it on the event loop's thread; collections come back
    on whatever the body raises (on only if they were on at entry). Does
    nothing in a process where :func:`settle_heap` did not run.
    """
    freezer = next((c for c in gc.callbacks if isinstance(c, Freezer)), None)
    if freezer is None:
        yield
        return
    before, enabled = sys.getallocatedblocks(), gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        now = sys.getallocatedblocks()
        freezer.baseline = min(now, freezer.baseline + max(0, now - before))
        if freezer.due and now - freezer.baseline <= freezer.slack:
            freezer.due = False
        if not freezer.due:
            gc.freeze()
        if enabled:
            gc.enable()


def settle_heap(slack: int = FREEZE_SLACK) -> Freezer:
    """Freeze start-up's heap, raise the first threshold, install a :class:`Pacer`, a :class:`Freezer` and its
    reclaimer thread.

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
    gc.callbacks.insert(0, Pacer())  # first: it times the collection alone
    threading.Thread(target=_reclaim_forever, args=(freezer,), name="coord-gc-reclaim", daemon=True).start()
    return freezer
