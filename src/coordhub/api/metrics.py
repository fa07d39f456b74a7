"""Prometheus metrics of one hub process (issue 14 point 5), through the ``prometheus_client`` library.

Where they are served: ``GET /metrics`` on the hub's own address, for an
admin token only (the numbers tell who is busy); or, with
``--metrics-address HOST:PORT``, on a separate listener without a token, meant
for a private network or loopback where the scraper runs (docs/scaling.md).

What is measured, and what it costs:

* per route template, method and status class: one histogram
  (``coord_http_request_seconds``; its ``_count`` is the request rate),
  recorded by :meth:`HubMetrics.observe_answer`, which the app's one ASGI layer
  (:class:`~coordhub.api.door.Door`) calls for every request that reached a
  route. Per request it costs two ``perf_counter`` calls, a dict lookup of the
  route's cached histogram child and one observation (about 5 µs measured;
  ``coord bench`` before and after is in docs/benchmarks.md). Streams (SSE)
  are counted with 0 s: their duration is the client's choice.
* per write batch: its units (``coord_writer_batch_units``) and commit
  latency (``coord_writer_commit_seconds``), from the store's batch observer
  (``writer="own"``) and, under ``--writer-process``, as the writer process
  reports its batches (``writer="process"``). Batches run again after their
  first run, by cause (``coord_writer_runs_again``, this process's writer
  only; read when scraped): a unit failing after it wrote, or a statement
  prepared before a schema change, costs its batch another run.
* per published event page: the lag from the write's time to this hub's bus
  (``coord_event_publish_lag_seconds``), by source: ``local`` (this process's
  commits) or ``remote`` (another hub's, announced by NOTIFY: the cross-hub lag).
* per garbage collection of the process: how long it held the interpreter
  (``coord_gc_pause_seconds`` by generation, and the longest so far in
  ``coord_gc_pause_longest_seconds``), timed by :data:`GC_PAUSES`, a
  ``gc.callbacks`` probe that ``coord serve`` installs once start-up is settled
  (two ``perf_counter`` calls and a bisect per collection, nothing per request).
* read when scraped, never on the request path: live leases, queued and
  running assignments (one query each, at most every :data:`DB_GAUGE_SECONDS`),
  SSE streams and long-polls held, SSE streams dropped to catch-up, rate-limit refusals, LISTEN state.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.types import Scope

from coordhub.core.hub import Hub
from coordhub.errors import Unavailable

log = logging.getLogger("coordhub.api")

DB_GAUGE_SECONDS = 5.0  # the database-derived gauges are at most this old
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
GC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
GC_GENERATIONS = 3  # CPython's generations 0, 1 and 2 (2: a full collection)
UNMATCHED = "unmatched"  # the route label of a request no route took (404, 405)
MCP = "/mcp"  # the MCP mount has no route template of its own
STREAMS = frozenset({"/api/coord/events", MCP})  # GETs that stream (SSE): counted, not timed
# The method label's values: the client chooses the method, and each new one would be a histogram child kept
# for the life of the process, so any other (WebDAV's PROPFIND, …; any token with h11) is counted as "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"


class HubMetrics:
    """The process's metrics in a registry of its own (several apps may live in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # One histogram carries both rate and latency (its _count by status class is the request rate): one
        # observation per request is the whole hot-path cost.
        self.requests = RequestTimes()
        r.register(self.requests)
        # writer="own": observed on the writer's thread (observe_batch); writer="process": on the event loop's
        # thread, as the writer process reports its batches (observe_writer_process_batch)
        self.batch_units = OneThread("coord_writer_batch_units", "Units of work per write batch (group commit), by "
                                     "writer: own (this process's) or process (the writer process's).",
                                     BATCH_BUCKETS, ("writer",))
        self.commit_seconds = OneThread("coord_writer_commit_seconds", "Latency of each write batch's COMMIT, by "
                                        "writer: own or process.", LATENCY_BUCKETS, ("writer",))
        # Observed on the event loop's thread (Hub._publish)
        self.publish_lag = OneThread("coord_event_publish_lag_seconds", "From an event's write time to its "
                                     "publication on this hub's bus; source=remote is another hub's commit "
                                     "(cross-hub notify lag).", LAG_BUCKETS, ("source",))
        for histogram in (self.batch_units, self.commit_seconds, self.publish_lag):
            r.register(histogram)
        self._units, self._commits = self.batch_units.child("own"), self.commit_seconds.child("own")
        self._process_units = self.batch_units.child("process")
        self._process_commits = self.commit_seconds.child("process")
        self._lag = {source: self.publish_lag.child(source) for source in ("local", "remote")}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count and time one answered request (a stream with ``seconds`` 0)."""
        self.requests.count(route, method, status, seconds)

    def observe_answer(self, scope: Scope, status: int, started: float) -> None:
        """Count and time one answered HTTP request by its route template (the scope's ``route``, which the router
        or the hot routes set), from ``started`` (``time.perf_counter()``) to now; a stream counts with 0 s."""
        route = scope.get("route")
        if route is not None:
            template = route.path
        else:
            template = MCP if scope["path"].startswith(MCP) else UNMATCHED
        method = scope["method"] if scope["method"] in METHODS else OTHER_METHOD
        stream = method == "GET" and template in STREAMS
        self.observe_request(template, method, status, 0.0 if stream else time.perf_counter() - started)

    def observe_batch(self, units: int, commit_seconds: float) -> None:
        """One committed write batch (called on the writer thread)."""
        self.batch_units.observe(self._units, units)
        self.commit_seconds.observe(self._commits, commit_seconds)

    def observe_writer_process_batch(self, units: int, commit_seconds: float) -> None:
        """One batch the writer process committed, as it reported it (called on the event loop's thread; under
        ``--workers N`` every serving process hears of every batch)."""
        self.batch_units.observe(self._process_units, units)
        self.commit_seconds.observe(self._process_commits, commit_seconds)

    def observe_lag(self, source: str, seconds: float) -> None:
        """Lag of one published event page (``source``: local or remote)."""
        self.publish_lag.observe(self._lag[source], max(0.0, seconds))


def cumulative(bounds: tuple[float, ...], counts: Sequence[float]) -> list[tuple[str, float]]:
    """Per-bucket ``counts`` (one per bound, then the overflow) as the cumulative ``(le, count)`` pairs a
    ``HistogramMetricFamily`` takes, ending with ``+Inf``."""
    total: float = 0
    out = []
    for bound, n in zip((*bounds, float("inf")), counts, strict=True):
        total += n
        le: str = floatToGoString(bound)  # type: ignore[no-untyped-call]  # "1.0", "+Inf": as the library's own
        out.append((le, total))
    return out


class OneThread(Collector):
    """A histogram observed from one thread only: a child is a plain list of bucket counts and a sum, no lock.

    The library's ``Histogram.observe`` takes a mutex per increment (two per
    observation); for the request histogram that was ~5 % of a hot request's
    CPU, and a write batch paid three such observations (issue 15). Which
    thread observes is the owner's rule: the event loop's for request times
    and publish lag, the writer's for batches. Exposed through the library's
    ``HistogramMetricFamily`` when scraped; a scrape from another thread reads
    the lists as they are (the count is the sum of the buckets read, so the
    two always agree).
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> None:
        self.name, self.documentation = name, documentation
        self.buckets, self.label_names = tuple(buckets), tuple(labels)
        self._children: dict[tuple[str, ...], list[float]] = {}  # label values -> bucket counts, then the sum

    def child(self, *values: str) -> list[float]:
        """The counts of the child with these label values (made at first use); hand it to :meth:`observe`."""
        found = self._children.get(values)
        if found is None:
            found = self._children[values] = [0.0] * (len(self.buckets) + 2)
        return found

    def observe(self, child: list[float], value: float) -> None:
        """Count ``value`` into ``child`` (from :meth:`child`)."""
        child[bisect.bisect_left(self.buckets, value)] += 1
        child[-1] += value

    def collect(self) -> Iterator[Any]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values, child in list(self._children.items()):
            family.add_metric(values, cumulative(self.buckets, child[:-1]), child[-1])
        yield family


class RequestTimes(OneThread):
    """``coord_http_request_seconds``: request latencies by route template, method and status class, observed on
    the event loop's thread only (:meth:`HubMetrics.observe_answer`)."""

    NAME = "coord_http_request_seconds"
    HELP = ("Time from a request's arrival at the router to its last response byte, by route template, method "
            "and status class; streams (SSE) count with 0 s, their length being the client's choice.")

    def __init__(self) -> None:
        super().__init__(self.NAME, self.HELP, LATENCY_BUCKETS, ("route", "method", "status"))
        self._by_status: dict[tuple[str, str, int], list[float]] = {}

    def count(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request of ``route`` (template), ``method`` and HTTP ``status`` that took ``seconds``."""
        key = (route, method, status // 100)
        child = self._by_status.get(key)
        if child is None:
            child = self._by_status[key] = self.child(route, method, f"{key[2]}xx")
        self.observe(child, seconds)


class GcPauses:
    """A ``gc.callbacks`` probe: how long each garbage collection of this process held the interpreter.

    CPython calls it at the start and the end of every collection, on the
    thread that triggered it and with the GIL held, so every other thread and
    the event loop wait for exactly the time between the two calls; that time
    is recorded per generation into :data:`GC_BUCKETS` counts, a sum and a
    maximum (seconds). That wall-clock time includes any time the OS gave the
    core to another process meanwhile; the collection's own CPU time (the
    thread's) is kept too, as its longest per generation, to tell the two
    apart on a loaded machine. GC is per process, so there is one probe per
    process (:data:`GC_PAUSES`), read by every app's collector when scraped.
    """

    def __init__(self) -> None:
        self.counts: list[list[int]] = []  # per generation, per bucket (not cumulative)
        self.sums: list[float] = []
        self.longest: list[float] = []
        self.longest_cpu: list[float] = []
        self._started = self._started_cpu = 0.0
        self.clear()

    def clear(self) -> None:
        """Forget what was recorded."""
        self.counts = [[0] * (len(GC_BUCKETS) + 1) for _ in range(GC_GENERATIONS)]
        self.sums = [0.0] * GC_GENERATIONS
        self.longest = [0.0] * GC_GENERATIONS
        self.longest_cpu = [0.0] * GC_GENERATIONS

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started_cpu = time.thread_time()
            self._started = time.perf_counter()
            return
        seconds = time.perf_counter() - self._started
        cpu = time.thread_time() - self._started_cpu
        gen = info["generation"]
        self.counts[gen][bisect.bisect_left(GC_BUCKETS, seconds)] += 1
        self.sums[gen] += seconds
        if seconds > self.longest[gen]:
            self.longest[gen] = seconds
        if cpu > self.longest_cpu[gen]:
            self.longest_cpu[gen] = cpu

    def install(self) -> None:
        """Start timing collections (idempotent); what was recorded before is forgotten."""
        self.clear()
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def families(self) -> Iterator[Any]:
        """The Prometheus families: the pause histogram and the longest pause (wall clock, CPU), by generation."""
        pauses = HistogramMetricFamily("coord_gc_pause_seconds", "Garbage-collection pauses of this hub process "
                                       "(the interpreter is held for each), by generation (2 = full), since it "
                                       "started serving.", labels=("generation",))
        longest = GaugeMetricFamily("coord_gc_pause_longest_seconds", "The longest garbage-collection pause of "
                                    "this hub process since it started serving, by generation.",
                                    labels=("generation",))
        longest_cpu = GaugeMetricFamily("coord_gc_pause_longest_cpu_seconds", "The most CPU time one garbage "
                                        "collection of this hub process took since it started serving, by "
                                        "generation (its pause, less any time the core served other processes).",
                                        labels=("generation",))
        for gen in range(GC_GENERATIONS):
            pauses.add_metric((str(gen),), cumulative(GC_BUCKETS, self.counts[gen]), self.sums[gen])
            longest.add_metric((str(gen),), self.longest[gen])
            longest_cpu.add_metric((str(gen),), self.longest_cpu[gen])
        yield pauses
        yield longest
        yield longest_cpu
        # Not gc.get_freeze_count(): it walks every frozen object, ~20 ms in a serving hub, the interpreter stopped.
        yield GaugeMetricFamily("coord_heap_blocks", "Memory blocks of this hub process in use (sys."
                                "getallocatedblocks: every Python object of up to 512 bytes); it should stay level "
                                "under steady load (coordhub.heap.Freezer).",
                                value=sys.getallocatedblocks())
        yield GaugeMetricFamily("coord_gc_young_threshold", "The first garbage-collection threshold of this hub "
                                "process: allocations between young collections (coordhub.heap.Pacer lowers it "
                                "while young collections take longer than 5 ms of CPU).", value=gc.get_threshold()[0])


GC_PAUSES = GcPauses()  # this process's probe; ``coord serve`` installs it (coordhub.heap.settle_heap)


class StateCollector(Collector):
    """Values read when scraped: streams held, rate-limit refusals, LISTEN state, and the database gauges."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.db: dict[str, float] = {}  # refreshed by refresh_db_gauges

    def collect(self) -> Iterator[Any]:
        state = self.app.state
        yield GaugeMetricFamily("coord_streams_open", "SSE streams and long-polls held open now.",
                                value=state.streams.held)
        yield CounterMetricFamily("coord_sse_catch_up_drops", "Live SSE streams whose client read slower than "
                                  "events came, dropped to catching up from the log by cursor.",
                                  value=state.fanout.drops)
        refused = CounterMetricFamily("coord_rate_limit_refusals", "Requests refused with 429 by a rate limit.",
                                      labels=("limit",))
        refused.add_metric(("token",), state.auth.limiter.refusals)
        refused.add_metric(("failed_auth",), state.auth.failures.refusals)
        refused.add_metric(("events",), state.event_quota.refusals)
        yield refused
        hub: Hub = state.hub
        again = CounterMetricFamily("coord_writer_runs_again", "Write batches run again after their first run, by "
                                    "cause: each rolled its work back and did it again (this process's writer).",
                                    labels=("writer", "cause"))
        for cause, n in hub.store.writer_runs_again().items():
            again.add_metric(("own", cause), n)
        yield again
        if hub.listener is not None:
            listen = hub.listener.state
            yield GaugeMetricFamily("coord_listen_connected", "1 while the LISTEN connection for other hubs' "
                                    "commits is up.", value=1.0 if listen.connected else 0.0)
            yield CounterMetricFamily("coord_listen_reconnects", "Times the LISTEN connection came back.",
                                      value=listen.reconnects)
            yield CounterMetricFamily("coord_listen_ignored", "Notifications on the channel that were not ours.",
                                      value=listen.ignored)
        pruner = getattr(state, "pruner", None)
        if pruner is not None:  # retention (coordhub.core.retention): this process's pruner
            pruned = CounterMetricFamily("coord_pruned_rows", "Rows the pruner removed, per kind.", labels=("kind",))
            worst = GaugeMetricFamily("coord_prune_worst_batch_ms", "Longest a pruning batch held the writer, "
                                      "per kind (ms).", labels=("kind",))
            for kind, n in pruner.stats.removed.items():
                pruned.add_metric((kind,), n)
            for kind, ms in pruner.stats.max_ms_by_kind.items():
                worst.add_metric((kind,), ms)
            yield pruned
            yield worst
            yield CounterMetricFamily("coord_prune_batches", "Pruning batches run.", value=pruner.stats.batches)
        yield from GC_PAUSES.families()
        if hub.bus is not None:
            yield GaugeMetricFamily("coord_event_last_id", "Newest event id this hub has published.",
                                    value=hub.bus.last_id)
        for name, help_text in (("coord_leases_live", "Live leases (database)."),
                                ("coord_assignments_queued", "Orchestrator assignments queued (database)."),
                                ("coord_assignments_running", "Assignments dispatched or running (database).")):
            if name in self.db:
                yield GaugeMetricFamily(name, help_text, value=self.db[name])


def install(app: Any) -> HubMetrics:
    """Create the app's metrics and scrape-time collector; return them (``app.state.metrics``)."""
    metrics = HubMetrics()
    collector = StateCollector(app)
    metrics.registry.register(collector)
    app.state.metrics = metrics
    app.state.metrics_state = collector
    return metrics


async def refresh_db_gauges(app: Any) -> None:
    """Read the database gauges now, unless they were read less than :data:`DB_GAUGE_SECONDS` ago."""
    collector: StateCollector = app.state.metrics_state
    if time.monotonic() - collector.db.get("_at", -1e9) < DB_GAUGE_SECONDS:
        return
    hub: Hub = app.state.hub

    def counts(tx: Any, now: float) -> dict[str, float]:
        return {"coord_leases_live": float(tx.leases.count_live(now)),
                "coord_assignments_queued": float(tx.assignments.queued_count()),
                "coord_assignments_running": float(tx.assignments.active_count())}

    with contextlib.suppress(Unavailable):
        collector.db = {**await hub.query_off_loop(counts), "_at": time.monotonic()}


async def refresh_forever(app: Any) -> None:
    """Keep the database gauges fresh for a separate metrics listener (which cannot await a query)."""
    while True:
        try:
            await refresh_db_gauges(app)
        except Exception:
            log.exception("refreshing the metrics' database gauges failed")
        await asyncio.sleep(DB_GAUGE_SECONDS)
