"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any, NoReturn

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from prometheus_client import start_http_server
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response

from coordhub import __version__
from coordhub.api import door, errors, hotpath, metrics
from coordhub.api.activity import Heartbeats
from coordhub.api.auth import Authenticator, RateLimiter
from coordhub.api.health import DatabaseProbe
from coordhub.api.hotpath import HotRoutes
from coordhub.api.limits import Limits
from coordhub.api.routes import (
    admin,
    components,
    conversations,
    events,
    ghtrail,
    imports,
    locks,
    merging,
    messages,
    orchestrator,
    pipeline,
    presence,
    proposals,
    todos,
    web,
    workflows,
)
from coordhub.api.routes import retention as retention_routes  # `retention` is create_app's policy
from coordhub.api.streams import ReadTurns, StreamSlots
from coordhub.core.hub import Hub
from coordhub.core.retention import Policy, Pruner
from coordhub.errors import Unavailable, first_line
from coordhub.store.ratebuckets import RateBuckets
from coordhub.web import mount as mount_web

log = logging.getLogger("coordhub.api")

# The route modules, in the order the app tries their routes (hot routes first: FastAPI matches in order, and
# most requests are messages and leases).
ROUTE_MODULES = (messages, locks, presence, events, conversations, orchestrator, pipeline, merging, ghtrail,
                 proposals, todos, workflows, components, admin, imports, web, retention_routes)


async def _sweep_forever(hub: Hub, every: float) -> None:
    """Record expired leases every ``every`` seconds (queries never depend on it; records do)."""
    while True:
        await asyncio.sleep(every)
        try:
            await hub.sweep()
        except Unavailable:
            pass
        except Exception:  # keep sweeping; the error is logged for the operator
            log.exception("lease sweep failed")


async def _reconcile_forever(app: FastAPI, hub: Hub, every: float) -> None:
    """Run the orchestrator's reconciler every ``every`` seconds (see ``coordhub.core.reconcile``)."""
    from coordhub.core import reconcile

    while True:
        await asyncio.sleep(every)
        try:
            done = await hub.store.write(lambda tx: reconcile.run(tx, hub.clock.now(), app.state.up_since))
            if done["requeued"] or done["failed"]:
                app.state.auth.invalidate()  # lost attempts' worker tokens were revoked
        except Unavailable:
            pass
        except Exception:
            log.exception("orchestrator reconcile failed")


async def _prune_forever(hub: Hub, pruner: Pruner, every: float) -> None:
    """Remove what is past retention every ``every`` seconds (see ``coordhub.core.retention``)."""
    while True:
        await asyncio.sleep(every)
        try:
            await pruner.run_pass(hub.store, hub.clock.now)
        except Unavailable:
            pass
        except Exception:  # keep pruning; the error is logged for the operator
            log.exception("pruning failed")


async def _follow_forever(hub: Hub) -> None:
    """Pick up events committed by other hub processes on a shared database (and any the feed missed).

    The fallback of the store's announcements (``Hub.follow_interval``): every second while they are
    not coming (SQLite, or a lost LISTEN connection), else every ten as a safety net.
    """
    while True:
        await asyncio.sleep(hub.follow_interval())
        try:
            await hub.follow_log()
        except Unavailable:
            pass
        except Exception:
            log.exception("following the event log failed")


SHARE_SECONDS = 0.25  # how often a hub charges its rate-limit spending to the shared buckets


async def _share_rate_limits(hub: Hub, limiter: RateLimiter, buckets: RateBuckets | None = None) -> None:
    """Charge what each token spent here to the buckets every hub shares, adopt their levels.

    The buckets are ``buckets`` when given (Redis: ``--rate-limit-store``),
    else the database's (PostgreSQL; none on SQLite). Fails open: while they
    cannot take the charge, each hub limits on its own (per process) and says
    so once in its log. Authentication never fails open: it needs the database
    anyway, and never Redis.
    """
    buckets = buckets if buckets is not None else hub.store.rate_buckets()
    if buckets is None or limiter.rate <= 0:
        return
    limiter.share()
    down = False
    try:
        while True:
            await asyncio.sleep(SHARE_SECONDS)
            spent = limiter.take_spent()
            if not spent:
                continue
            try:
                levels = await asyncio.to_thread(buckets.charge, limiter.rate, limiter.burst, hub.clock.now(), spent)
            except Exception as exc:
                if not down:
                    log.warning("shared rate limits unavailable (%s): each hub limits on its own until the "
                                "%s is back", first_line(exc),
                                buckets.where)
                down = True
                continue
            if down:
                log.warning("shared rate limits back")
                down = False
            limiter.settle(levels)
    finally:
        await asyncio.to_thread(buckets.close)


def create_app(hub: Hub, *, no_auth: bool = False, max_body_bytes: int = 1_048_576,
               sweep_seconds: float = 5.0, retry_after: int = 30, rate_limit: float = 0.0,
               rate_burst: int = 200, limits: Limits | None = None, loopback_only: bool | None = None,
               retention: Policy | None = None, prune_seconds: float = 0.0,
               metrics_address: tuple[str, int] | None = None,
               rate_buckets: RateBuckets | None = None, hot_routes: bool = True) -> FastAPI:
    """Build the HTTP app over an opened hub.

    The caller owns the store's lifecycle (open before serving, close after).
    ``sweep_seconds <= 0`` disables the background sweeper (tests drive
    ``hub.sweep()`` themselves). ``retry_after`` is the seconds a 503 asks
    clients to wait (seed 001: 30). ``rate_limit`` is requests per second per
    token (bursts of ``rate_burst``); 0 turns it off. ``limits`` bounds what one
    client may hold or write (defaults: :class:`Limits`). ``loopback_only``
    answers only requests whose ``Host`` is a loopback name (DNS-rebinding
    protection, :mod:`coordhub.api.hosts`); ``None`` means ``no_auth``, and
    ``coord serve`` passes whether a ``--no-auth`` hub listens on loopback.
    A cross-origin ``Origin`` is refused always. ``retention`` says what the
    pruner keeps (default :class:`Policy`); it runs every ``prune_seconds``
    (0, the default here, leaves it off: ``coord serve`` passes 60). Prometheus metrics are at
    ``/metrics`` for admin tokens, and also without a token on
    ``metrics_address`` (host, port) when given (:mod:`coordhub.api.metrics`).
    ``rate_buckets`` shares the rate limit between hubs through Redis
    (:class:`coordhub.store.redisbuckets.RedisBuckets`) instead of the database.
    ``hot_routes`` serves the hottest routes without FastAPI's resolver
    (:mod:`coordhub.api.hotpath`; off only to compare the two, in tests and benchmarks).
    """
    limits = limits or Limits()
    pruner = Pruner(retention or Policy(), hub.stream_cursors)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bus = await hub.start_bus(ring_bytes=limits.event_ring_bytes)
        bus.listeners.append(app.state.auth.revocations)  # revocations through any hub end cached tokens
        bus.listeners.append(app.state.fanout.publish_soon)  # live SSE streams, one pass per publish
        hub.lag_observer = measured.observe_lag
        hub.store.set_batch_observer(measured.observe_batch)
        if hub.remote is not None:  # the writer process's batches, which write what this hub's calls asked
            hub.remote.on_batch = measured.observe_writer_process_batch
        app.state.up_since = hub.clock.now()  # the reconciler counts the hub's own downtime for no host
        tasks = [asyncio.create_task(_follow_forever(hub)),
                 asyncio.create_task(_share_rate_limits(hub, app.state.auth.limiter, rate_buckets))]
        exporter = None
        if metrics_address is not None:
            exporter, _ = start_http_server(metrics_address[1], metrics_address[0], registry=measured.registry)
            tasks.append(asyncio.create_task(metrics.refresh_forever(app)))
        if sweep_seconds > 0:
            tasks.append(asyncio.create_task(_sweep_forever(hub, sweep_seconds)))
            tasks.append(asyncio.create_task(_reconcile_forever(app, hub, sweep_seconds)))
        if prune_seconds > 0:
            tasks.append(asyncio.create_task(_prune_forever(hub, pruner, prune_seconds)))
        try:
            yield
        finally:
            hub.stop_bus()
            app.state.fanout.close()
            app.state.streams.close()
            hub.store.set_batch_observer(None)
            if hub.remote is not None:
                hub.remote.on_batch = None
            if exporter is not None:
                exporter.shutdown()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # No /docs or /redoc: FastAPI's pages run a CDN's script (floating versions) on the origin where the
    # dashboard's cookie acts as its token, an admin's included. The document stays at /openapi.json.
    # FastAPI's OpenTelemetry hooks off: the hub's own metrics are Prometheus (/metrics), and the hooks' per-request
    # check of the global providers costs ~2 % of a send's CPU (issue 15's profile).
    app = FastAPI(title="coordhub", version=__version__, lifespan=lifespan, redirect_slashes=False,
                  docs_url=None, redoc_url=None, openapi_url=None,  # the document: _serve_document
                  telemetry={"tracing": False, "metrics": False, "logs": False},
                  description="Coordination hub for fleets of AI coding-agent sessions: messages, fenced leases, "
                              "todos, workflows, components, halt. The seed-001 protocol under /api/coord/.")
    app.dependency_overrides = NoOverrides()
    app.state = AppState()
    app.state.hub = hub
    app.state.pruner = pruner
    app.state.up_since = hub.clock.now()
    app.state.heartbeats = Heartbeats(hub)
    app.state.auth = Authenticator(hub, no_auth=no_auth, limiter=RateLimiter(rate_limit, rate_burst))
    app.state.retry_after = retry_after
    app.state.limits = limits
    app.state.db_probe = DatabaseProbe(hub)
    app.state.max_connections = None  # set by `coord serve`, which owns the connections
    app.state.streams = StreamSlots(limits.streams_per_token, limits.max_streams)
    app.state.fanout = events.make_fanout()
    app.state.catch_up_turns = ReadTurns()
    app.state.event_quota = RateLimiter(limits.event_quota / 60.0, limits.event_quota)
    errors.install(app)
    _serve_document(app)
    app.state.hot_routes = hotpath.Counts()
    measured = metrics.install(app)
    # The route modules' routes join the app's as they are, not through `include_router`: FastAPI (0.16x) builds
    # an included router's routes again for each app that includes it (their parameter and response models:
    # 0.18 s for these routes in a warm process, 0.3 s in `coord serve`), though each was built when its module
    # was imported. So every app of a process shares them, and FastAPI's `dependency_overrides` could not reach
    # them: a hub app refuses one (`NoOverrides`).
    for module in ROUTE_MODULES:
        app.router.routes.extend(module.router.routes)
    hot = None
    if hot_routes:
        hotpath.plans(app)  # fails now, not at the first request, if a hot route stopped fitting the fast path
        hot = HotRoutes(lambda: app.router.routes, app.state.hot_routes)
    # The request rules, metrics and hot routes, in one layer outside FastAPI's stack (coordhub.api.door).
    # MCP bodies carry NUL to the tools, whose REST request (through this layer again) refuses it.
    door.install(app, measured, hot, max_body_bytes=max_body_bytes, body_timeout=limits.header_timeout,
                 loopback_only=no_auth if loopback_only is None else loopback_only, nul_ok_paths=("/mcp",))
    from coordhub.mcp.http import mount as mount_mcp  # the mcp SDK (~0.8 s to import) loads only with an app

    mount_mcp(app)
    mount_web(app)
    return app


class AppState(State):
    """The hub app's ``app.state``: each value is also an attribute of its own, so reading one is a plain
    attribute read.

    Starlette's ``State`` keeps values in a dict behind ``__getattr__``, which
    Python calls only after its own lookup has failed, with an
    ``AttributeError`` made and dropped: ~0.6 µs a read, where a plain
    attribute costs ~0.03 µs. Requests read it several times each (the hub,
    the authenticator; five times a lease cycle; issue 15).
    """

    def __setattr__(self, key: Any, value: Any) -> None:
        super().__setattr__(key, value)
        object.__setattr__(self, key, value)

    def __delattr__(self, key: Any) -> None:
        super().__delattr__(key)
        object.__delattr__(self, key)


class NoOverrides(dict[Any, Any]):
    """The hub app's ``dependency_overrides``: always empty; setting one raises ``TypeError``.

    The app's routes are shared by every app of the process (:func:`create_app`),
    so FastAPI's overrides could not reach them: an override set here would
    silently change nothing.
    """

    def __setitem__(self, key: Any, value: Any) -> None:
        self._refuse()

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Refused, as :meth:`__setitem__`."""
        self._refuse()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """Refused, as :meth:`__setitem__`."""
        self._refuse()

    def __ior__(self, other: Any) -> NoOverrides:  # type: ignore[misc]
        self._refuse()

    @staticmethod
    def _refuse() -> NoReturn:
        raise TypeError("the hub's routes are shared by every app of the process: FastAPI's dependency "
                        "overrides cannot reach them (coordhub.api.app.create_app)")


def build_routes(app: FastAPI) -> int:
    """Build now what the first request would build: the middleware stack and the hot routes' plans; the number
    of plans.

    Starlette builds the middleware stack (here the :class:`~coordhub.api.door.Door`)
    at the first request, and the hot routes planned themselves then too
    (~100 plans and their pydantic adapters): objects born after
    :func:`coordhub.heap.settle_heap` froze start-up's heap, which the young
    collections under load then walked (issue 15: the longest GC pauses
    ``coord bench`` reported). ``coord serve`` calls this before it freezes
    the heap, so all of it is start-up's. FastAPI's own route state needs no
    build here: the app's routes are the ones built at import
    (:func:`create_app`).
    """
    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    if isinstance(app.middleware_stack, door.Door) and app.middleware_stack.hot is not None:
        return app.middleware_stack.hot.load().planned
    return 0


def _serve_document(app: FastAPI) -> None:
    """Serve the app's OpenAPI document at ``/openapi.json``, built and encoded once, on a worker thread.

    FastAPI's own route builds the document on the event loop at its first
    request: ~1.1 s of CPU for this app's 110-odd operations (2026-12-07),
    seconds on a loaded machine, while every other request and stream of the
    hub waited. Later requests answer the kept bytes.
    """
    built: list[bytes] = []
    lock = threading.Lock()

    def encoded() -> bytes:
        with lock:  # two first requests build it once
            if not built:
                built.append(json.dumps(app.openapi(), ensure_ascii=False, separators=(",", ":")).encode())
        return built[0]

    async def document(request: Request) -> Response:
        body = built[0] if built else await run_in_threadpool(encoded)
        return Response(body, media_type="application/json")

    app.add_route("/openapi.json", document, include_in_schema=False)
